"""The sandbox's controllable clock and China time.

``Clock`` is wall time plus an offset, or frozen at a chosen instant: every time-driven transition of
the ledger is measured on it, so tests advance it instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


class Clock:
    """Wall time plus an offset, or frozen at a chosen instant; tests move it with ``advance``."""

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen = start
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            base = self._frozen if self._frozen is not None else time.time()
            return base + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
        return self.now()

    def set(self, instant: float, *, freeze: bool | None = None) -> float:
        with self._lock:
            frozen = self._frozen is not None if freeze is None else freeze
            self._offset = 0.0
            if frozen:
                self._frozen = instant
            else:
                self._frozen = None
                self._offset = instant - time.time()
        return self.now()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


def china_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")
