"""Fault injection: what can go wrong between a client and a tax platform, on demand.

Settings come from the config file (``faults``) and can be changed at runtime (``POST /admin/faults``).
Each protocol request draws, in order: latency (always applied), *busy* (E3001 / HTTP 429 on Nuonuo),
*5xx* (HTTP 500/502/503, nothing done), then the work is done and committed, then *timeout after
commit* (the reply is dropped: the connection is closed, or the handler sleeps past the client's
timeout) and *garbled* (the reply fails decryption, signature or JSON parsing). ``issue_fail_pct``
makes an accepted issue request end in the failed state. ``only`` limits the faults to some services
(STA ``fwbm`` or the last part of a Nuonuo ``method``). ``seed`` makes the draws reproducible.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

TIMEOUT_MODES = ("close", "sleep")
GARBLE_MODES = ("any", "signature", "decrypt", "json")


@dataclass
class FaultSettings:
    busy_pct: float = 0
    error_5xx_pct: float = 0
    latency_ms: int = 0
    timeout_after_commit_pct: float = 0
    timeout_mode: str = "close"  # close | sleep
    timeout_sleep_seconds: float = 35.0
    garbled_pct: float = 0
    garble_mode: str = "any"  # any | signature | decrypt | json
    issue_fail_pct: float = 0
    seed: int | None = None
    only: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, base: FaultSettings | None = None) -> FaultSettings:
        current = asdict(base) if base else asdict(cls())
        known = {f.name for f in fields(cls)}
        for key, value in (raw or {}).items():
            if key not in known:
                raise ValueError(f"unknown fault setting: {key}")
            current[key] = value
        settings = cls(**current)
        settings._check()
        return settings

    def _check(self) -> None:
        for name in ("busy_pct", "error_5xx_pct", "timeout_after_commit_pct", "garbled_pct", "issue_fail_pct"):
            value = float(getattr(self, name))
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be between 0 and 100")
            setattr(self, name, value)
        self.latency_ms = int(self.latency_ms)
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        self.timeout_sleep_seconds = float(self.timeout_sleep_seconds)
        if self.timeout_mode not in TIMEOUT_MODES:
            raise ValueError(f"timeout_mode must be one of {TIMEOUT_MODES}")
        if self.garble_mode not in GARBLE_MODES:
            raise ValueError(f"garble_mode must be one of {GARBLE_MODES}")
        if not isinstance(self.only, list) or not all(isinstance(s, str) for s in self.only):
            raise ValueError("only must be a list of service names")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Thread-safe holder of the settings and the random source."""

    def __init__(self, settings: FaultSettings) -> None:
        self._lock = threading.Lock()
        self._initial = settings
        self.settings = settings
        self._rng = random.Random(settings.seed)

    def update(self, raw: dict[str, Any]) -> FaultSettings:
        with self._lock:
            self.settings = FaultSettings.from_dict(raw, self.settings)
            if "seed" in raw:
                self._rng = random.Random(self.settings.seed)
            return self.settings

    def reset(self) -> None:
        with self._lock:
            self.settings = self._initial
            self._rng = random.Random(self._initial.seed)

    def applies_to(self, service: str) -> bool:
        only = self.settings.only
        return not only or service in only

    def draw(self, name: str, service: str) -> bool:
        """True when the fault ``name`` (a ``*_pct`` setting) fires for this request."""
        with self._lock:
            pct = float(getattr(self.settings, name))
            if pct <= 0 or not self.applies_to(service):
                return False
            if pct >= 100:
                return True
            return self._rng.random() * 100 < pct

    def choice(self, options: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._rng.choice(options)
