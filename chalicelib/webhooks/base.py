"""What every webhook platform module provides, and the helpers they share.

Each platform module (``chalicelib/webhooks/<platform>.py``) exposes::

    NAME: str                                     # the {platform} path segment
    SIGNS_TIMESTAMP: bool                         # whether a ±5 min window applies
    def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any],
               now: datetime) -> PaymentEvent     # raises WebhookError subclasses
    def reply(outcome: Outcome, *, order_key: str, status: str) -> Reply   # the answer it expects

``verify`` checks the signature over the raw bytes *before* parsing, with constant-time comparison,
and turns every malformed header into ``SignatureInvalid`` (never a 500). ``headers`` arrive with
lower-case keys. ``secrets`` is the parsed Secrets Manager value of the store's secret for the
platform (a JSON object; a plain string value arrives as ``{"secret": value}``); each module documents
the keys it reads.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from chalicelib.domain.errors import MalformedPayload, SignatureInvalid, TimestampOutOfWindow

TOLERANCE_SECONDS = 300


class Outcome(StrEnum):
    QUEUED = "queued"  # durably queued now
    DUPLICATE = "duplicate"  # seen before; existing status returned
    IGNORED = "ignored"  # genuine, nothing to invoice


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_reply(status: int, payload: Mapping[str, Any]) -> Reply:
    return Reply(status, json.dumps(payload, ensure_ascii=False).encode())


def accepted_reply(outcome: Outcome, *, order_key: str, status: str) -> Reply:
    """The gateway's own answer for platforms that only read the status: 202 queued, 200 otherwise."""
    code = 202 if outcome is Outcome.QUEUED else 200
    return json_reply(code, {"order_key": order_key, "status": status, "outcome": outcome.value})


def header(headers: Mapping[str, str], name: str) -> str:
    """A required header, or SignatureInvalid('missing_header')."""
    value = headers.get(name.lower())
    if value is None or value == "":
        raise SignatureInvalid(f"missing header {name}", code="missing_header")
    return value


def secret_list(secrets: Mapping[str, Any], key: str = "secret") -> list[str]:
    """The secret(s) under ``key`` or ``key + 's'`` (several at once during rotation)."""
    values: list[str] = []
    plural = secrets.get(key + "s")
    if isinstance(plural, list):
        values.extend(str(v) for v in plural if v)
    single = secrets.get(key)
    if isinstance(single, str) and single:
        values.append(single)
    if not values:
        raise SignatureInvalid("no secret configured", code="no_secret")
    return values


def constant_time_in(candidate: bytes, expected: list[bytes]) -> bool:
    """True when ``candidate`` equals any of ``expected``; every comparison is constant-time."""
    found = False
    for e in expected:
        found |= hmac.compare_digest(candidate, e)
    return found


def check_timestamp(ts: int, now: datetime, tolerance: int = TOLERANCE_SECONDS) -> None:
    delta = abs(now.timestamp() - ts)
    if delta > tolerance:
        raise TimestampOutOfWindow(f"timestamp {int(delta)} s away from now", code="stale_timestamp")


def parse_int_header(value: str, name: str) -> int:
    try:
        result = int(value.strip())
    except (ValueError, AttributeError):
        raise SignatureInvalid(f"header {name} is not an integer", code="malformed_header") from None
    if result < 0 or result > 10**11:
        raise SignatureInvalid(f"header {name} is out of range", code="malformed_header")
    return result


def load_json(raw_body: bytes) -> Any:
    """Parse a verified body; numbers become Decimal (never float); bad JSON → MalformedPayload."""
    try:
        return json.loads(raw_body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"body is not JSON: {exc.__class__.__name__}") from None


def utc_from_timestamp(ts: int | float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
