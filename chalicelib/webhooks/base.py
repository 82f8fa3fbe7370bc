"""What every webhook platform module provides, and the helpers they share.

Each platform module (``chalicelib/webhooks/<platform>.py``) exposes::

    NAME: str                                     # the {platform} path segment
    SIGNS_TIMESTAMP: bool                         # whether a ±5 min window applies
    def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any],
               now: datetime) -> PaymentEvent     # raises WebhookError subclasses
    def reply(outcome: Outcome, *, order_key: str, status: str,
              detail: Mapping[str, Any] | None = None) -> Reply   # the answer it expects

``verify`` checks the signature over the raw bytes *before* parsing, with constant-time comparison,
and turns every malformed header into ``SignatureInvalid`` (never a 500). What follows the signature
check runs inside :func:`signed_content`: a ``MalformedPayload`` raised there (a negative or
non-numeric amount, a missing field, a body of the wrong shape) becomes ``UnusableContent``, carrying
a violation and whatever identifies the order, so the intake records the order as ``rejected``
instead of losing it. ``reply`` gets the outcome's ``detail`` (why an order is held, the violations of
an acknowledged rejection); a platform whose success answer is fixed ignores it. ``headers`` arrive with
lower-case keys. ``secrets`` is the parsed Secrets Manager value of the store's secret for the
platform (a JSON object; a plain string value arrives as ``{"secret": value}``); each module documents
the keys it reads.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from itertools import accumulate
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from chalicelib.config import MAX_WEBHOOK_BYTES
from chalicelib.domain.errors import (
    MalformedPayload,
    PayloadTooLarge,
    SignatureInvalid,
    TimestampOutOfWindow,
    UnusableContent,
)
from chalicelib.domain.limits import MAX_ID_BYTES

if TYPE_CHECKING:
    from chalicelib.domain.models import Violation

TOLERANCE_SECONDS = 300


class Outcome(StrEnum):
    QUEUED = "queued"  # durably queued now
    DUPLICATE = "duplicate"  # seen before; existing status returned
    IGNORED = "ignored"  # genuine, nothing to invoice
    HELD = "held"  # recorded for issuing by hand (outside the pilot share, or the store is inactive)
    REJECTED = "rejected"  # recorded as rejected and acknowledged (the store's ``rejection_replies``)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_reply(status: int, payload: Mapping[str, Any]) -> Reply:
    return Reply(status, json.dumps(payload, ensure_ascii=False).encode())


def accepted_reply(outcome: Outcome, *, order_key: str, status: str, detail: Mapping[str, Any] | None = None) -> Reply:
    """The gateway's own answer for platforms that only read the status: 202 when queued or held (the
    order is durably taken), 200 otherwise; ``detail`` (a held order's reason, an acknowledged
    rejection's errors) is added to the body."""
    code = 202 if outcome in (Outcome.QUEUED, Outcome.HELD) else 200
    return json_reply(code, {"order_key": order_key, "status": status, "outcome": outcome.value, **(detail or {})})


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


#: The deepest nesting a body may have. Webhook documents are a handful of levels deep; Python's parser
#: overflows the interpreter's recursion limit (``RecursionError``: a 500) a few thousand levels down.
MAX_JSON_DEPTH = 64
#: A JSON string, escapes included, or an unterminated one to the end of the body: every quote starts a
#: match, so stripping strings is one linear pass even on crafted input (possessive, never retried).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 for b in range(256)]  # read only at brackets
#: A UTF-16 surrogate in the raw bytes, escaped (``\ud800``) or UTF-8-encoded: the parser turns a lone one
#: into a ``str`` no UTF-8 encoder accepts (DynamoDB, SQS: a 500 far from here). A valid escaped pair
#: becomes one character, so the parsed text is checked only when the bytes hint at one.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(raw_body: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a verified body (or a JSON text nested in one); numbers become Decimal (never float).

    Whatever the sender wrote is answered as a client error, never a 500: over ``MAX_WEBHOOK_BYTES`` →
    ``PayloadTooLarge``; not JSON, nested deeper than ``max_depth`` (checked before parsing), ``NaN`` /
    ``Infinity`` (not JSON) or a lone UTF-16 surrogate in a string → ``MalformedPayload``.
    """
    data = raw_body.encode("utf-8", "surrogatepass") if isinstance(raw_body, str) else raw_body
    if len(data) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge(f"JSON of {len(data)} bytes is over {MAX_WEBHOOK_BYTES}")
    if _nested_deeper_than(data, max_depth):
        raise MalformedPayload(f"body is nested deeper than {max_depth} levels")
    try:
        value = json.loads(data, parse_float=Decimal, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON: {exc.__class__.__name__}") from None
    if _SURROGATE_HINT.search(data) and _has_lone_surrogate(value):
        raise MalformedPayload("body is not JSON: a string holds a lone UTF-16 surrogate")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _nested_deeper_than(data: bytes, limit: int) -> bool:
    """Whether the arrays and objects of ``data`` nest deeper than ``limit``, strings skipped (at C
    speed: strip the strings, keep the brackets, running sum); nothing to do when there are too few
    brackets to get there. An unterminated string runs to the end: the parser stops there too."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def utc_from_timestamp(ts: int | float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


# --- signed but unusable content -----------------------------------------------------------------
@dataclass(frozen=True)
class ContentIdentity:
    """What identifies the order of a signed body, as far as it can be read (None: it cannot)."""

    event_id: str | None = None
    kind: str | None = None  # "paid" | "refunded"
    order_id: str | None = None
    refund_id: str | None = None


def mapping_at(obj: Any, key: str) -> Mapping[str, Any]:
    """``obj[key]`` when ``obj`` is a JSON object and that is one too, else {} (reading odd bodies)."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def plain_id(value: Any) -> str | None:
    """An id as the platform modules read it (a string or an integer, stripped), else None — also when
    it could not be a key: over MAX_ID_BYTES in UTF-8 (or not encodable), as ``PaymentEvent`` refuses."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None
    return text if 0 < size <= MAX_ID_BYTES else None


class signed_content:  # a context manager named like the function it reads as: ``with signed_content(…):``
    """The part of ``verify`` that follows the signature check: a ``MalformedPayload`` (or a pydantic
    ``ValidationError`` of a model built from the body, or the ``RecursionError`` of JSON nested too deep
    for ``json.loads``) raised in it becomes ``UnusableContent`` with
    its violation and ``identity()``, best effort (``event_id`` stands in when ``identity`` fails or
    gives none). ``IgnoredEvent``, ``SignatureInvalid`` and ``UnusableContent`` pass unchanged."""

    def __init__(self, identity: Callable[[], ContentIdentity], *, event_id: str | None = None) -> None:
        self.identity = identity
        self.event_id = event_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(exc, ValidationError):
            errors = exc.errors()
            exc = MalformedPayload(f"invalid field {'.'.join(str(p) for p in errors[0]['loc']) if errors else '?'}")
        elif isinstance(exc, RecursionError):
            # JSON nested in the body (a ``data`` or ``msg`` string) parsed with ``json.loads`` rather
            # than ``load_json``, which bounds the depth first: the sender's structure, never a 500
            exc = MalformedPayload("body is nested too deeply to read")
        if not isinstance(exc, MalformedPayload) or isinstance(exc, UnusableContent):
            return
        try:
            found = self.identity()
        except Exception:  # the body is known to be odd: identify what can be, never fail here
            found = ContentIdentity()
        # The ids end up in the rejected record's key: one that could not be a key (over MAX_ID_BYTES)
        # is treated as unreadable, whichever way the module read it.
        raise UnusableContent(
            [content_violation(exc)],
            event_id=plain_id(found.event_id) or plain_id(self.event_id),
            kind=found.kind,
            order_id=plain_id(found.order_id),
            refund_id=plain_id(found.refund_id),
            message=exc.message,
        ) from None


#: A field path as the modules name it (``data.lines[2].total``, ``[0].data.refund_amount``, a
#: pydantic location ``lines.0.total``) at the start of their message, before what is wrong with it.
_FIELD_RE = re.compile(r"^(?:missing field |invalid field |field )?(?P<path>[\w\[\].]+)(?= is | must | has | or |$)")
_AMOUNT_WORDS = ("amount", "(fen)", "minor unit", "out of range", "decimals", "positive", "non-negative")


def content_violation(exc: MalformedPayload) -> Violation:
    # Imported here: the models (pydantic) cost ~90 ms at import, and most requests never get here.
    from chalicelib.domain.validation_catalogue import violation

    """The violation of a signed body's ``MalformedPayload``: the field its message names (else
    ``body``), a stable code, and the module's own English message as the detail."""
    message = exc.message
    match = _FIELD_RE.match(message)
    field = match.group("path") if match else "body"
    lowered = message.lower()
    if "missing" in lowered:
        code = "event_field_missing"
    elif any(word in lowered for word in _AMOUNT_WORDS):
        code = "event_amount_invalid"
    elif field == "body":
        code = "event_unreadable"
    else:
        code = "event_field_invalid"
    return violation(field, code, field=field, detail=message)
