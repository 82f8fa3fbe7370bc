"""Platform outages and token controls for chaos runs: what a tax platform does when it is down, and
what its token endpoint does when it expires or refuses tokens.

**Outage.** ``POST /admin/outage {"seconds": 7200}`` starts a window measured on the sandbox's
controllable clock (:mod:`chalicelib.sandbox.clock`): while ``clock.now() < until`` every protocol
request (STA invoke, Nuonuo services and the Nuonuo token endpoint) is answered HTTP 503 before
anything is parsed: nothing done, nothing committed. The window ends when the clock passes ``until``
(a chaos run ends a 2-hour outage with ``POST /admin/clock {"advance": 7200}``) or on
``{"end": true}``. ``GET /admin/outage`` shows it.

**Tokens.** ``GET /admin/tokens`` lists the tokens issued (value, app key, expiry on the sandbox
clock); ``POST /admin/tokens {"expire": "all"}`` makes every live token expire now (the next call gets
``070306``); ``{"refuse": N}`` makes the next N token requests refuse with the configured refusal
(``nuonuo.token_refusal``, an assumption: see ``docs/nuonuo.md``).
"""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.sandbox.clock import Clock
from chalicelib.sandbox.common import Reply, json_reply

DOWN_BODY = "503 Service Unavailable: 平台维护中，请稍后重试 (sandbox outage)".encode()


class Outage:
    """A window of the sandbox clock during which the platform is down."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: float | None = None
        self._started: float | None = None

    def start(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError("seconds must be > 0")
        now = self._clock.now()
        with self._lock:
            self._started, self._until = now, now + seconds

    def end(self) -> None:
        with self._lock:
            self._started = self._until = None

    def active(self) -> bool:
        with self._lock:
            until = self._until
        return until is not None and self._clock.now() < until

    def to_json(self) -> dict[str, Any]:
        now = self._clock.now()
        with self._lock:
            started, until = self._started, self._until
        active = until is not None and now < until
        return {
            "active": active,
            "started": started,
            "until": until,
            "now": now,
            "remaining": max(0.0, until - now) if until is not None else 0.0,
        }


def down_reply() -> Reply:
    """What a platform that is down answers: HTTP 503, a short text body, ``Retry-After``."""
    return Reply(503, DOWN_BODY, [("Retry-After", "60")], content_type="text/plain; charset=utf-8")


class TokenRefusals:
    """How many of the next token requests refuse (``POST /admin/tokens {"refuse": N}``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left = 0
        self.refused = 0  # how many were refused since the last reset

    def refuse(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError("refuse must be an integer >= 0")
        with self._lock:
            self._left = n

    def take(self) -> bool:
        """True when this token request must refuse (and counts it)."""
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            self.refused += 1
            return True

    @property
    def left(self) -> int:
        with self._lock:
            return self._left

    def reset(self) -> None:
        with self._lock:
            self._left = self.refused = 0


def admin(state: Any, method: str, path: str, payload: dict[str, Any]) -> Reply | None:
    """The ``/admin/outage`` and ``/admin/tokens`` routes; None for any other route.

    ``state`` is the :class:`~chalicelib.sandbox.state.SandboxState` (typed loosely: state imports this
    module).
    """
    route = (method, path.rstrip("/"))
    outage: Outage = state.outage
    refusals: TokenRefusals = state.token_refusals
    if route == ("GET", "/admin/outage"):
        return json_reply(200, outage.to_json())
    if route == ("POST", "/admin/outage"):
        if payload.get("end") is True:
            outage.end()
        elif "seconds" in payload:
            outage.start(float(payload["seconds"]))
        else:
            raise ValueError('give {"seconds": s} or {"end": true}')
        state.settle_all()
        return json_reply(200, outage.to_json())
    if route == ("GET", "/admin/tokens"):
        return json_reply(200, _tokens(state, refusals))
    if route == ("POST", "/admin/tokens"):
        if "expire" in payload:
            if payload["expire"] != "all":
                raise ValueError('expire must be "all"')
            state.expire_tokens()
        if "refuse" in payload:
            refusals.refuse(payload["refuse"])
        if "expire" not in payload and "refuse" not in payload:
            raise ValueError('give {"expire": "all"} and/or {"refuse": n}')
        return json_reply(200, _tokens(state, refusals))
    return None


def _tokens(state: Any, refusals: TokenRefusals) -> dict[str, Any]:
    now = state.clock.now()
    with state.lock:
        items = [
            {"token": token, "app_key": app_key, "expires_at": expires, "live": now <= expires}
            for token, (app_key, expires) in state.tokens.items()
        ]
    return {"tokens": items, "count": len(items), "refuse_left": refusals.left, "refused": refusals.refused}
