"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`` over ``{t}.{raw body}``, at most 5 min old.

The age is checked as Stripe's own library checks it (``check_age``): older than 5 minutes is refused,
a timestamp ahead of our clock is accepted.

The HMAC-SHA256 key is the whole ``whsec_…`` string; the secret value is ``{"secrets": ["whsec_…",
…]}`` (several endpoints or a rolled secret at once) or ``{"secret": "whsec_…"}``, and any ``v1``
entry matching any secret passes. Handled event types: ``checkout.session.completed`` and
``checkout.session.async_payment_succeeded`` (when ``payment_status`` is ``paid``; buyer from
``customer_details``: the first ``tax_ids[]`` entry of type ``cn_tin`` is the tax id and then
``business_name`` or ``name`` the title), ``payment_intent.succeeded`` (``amount_received``) and
``charge.refunded`` (the newest refund of ``refunds.data`` when the charge carries it, else the
increase of ``amount_refunded`` over ``previous_attributes``; refund id ``<charge id>:<cumulative
amount refunded>`` when no refund object is included). Amounts are in the currency's minor unit and
converted with its exponent (fen → yuan; zero-decimal currencies such as JPY unchanged; three-decimal
ones such as KWD ÷ 1000). Order id: ``metadata.order_id`` when present, else the PaymentIntent id
(shared by the session, the intent and its charges, so a refund finds its order), else the object's
own id. Metadata keys ``invoice_title`` / ``tax_id`` are a fallback for the buyer. The de-duplication
key is the event ``id``; other event types are genuine but ignored.

A Checkout session labels what is not goods (:func:`_checkout_labels`): ``shipping`` is
``shipping_cost.amount_total`` (what the buyer paid for shipping, after its discounts and with its tax),
else ``total_details.amount_shipping``; ``order_discount`` is ``total_details.amount_discount``; each
None when zero or absent. The session sends no lines, so its one ``default_item`` line carries the
rest (``normalise``: amount − shipping + discount, less the discount line). A PaymentIntent labels
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid, TimestampOutOfWindow
from chalicelib.domain.models import Buyer, EventKind, PaymentEvent
from chalicelib.webhooks.base import (
    TOLERANCE_SECONDS,
    ContentIdentity,
    Outcome,
    Reply,
    accepted_reply,
    constant_time_in,
    header,
    load_json,
    mapping_at,
    parse_int_header,
    plain_id,
    secret_list,
    signed_content,
)
from chalicelib.webhooks.fields import obj as _obj
from chalicelib.webhooks.fields import text as _str

NAME = "stripe"
SIGNS_TIMESTAMP = True

PAID_TYPES = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded", "payment_intent.succeeded"}
)
REFUND_TYPE = "charge.refunded"

#: https://docs.stripe.com/currencies — amounts are integers in the minor unit, except these.
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_TS_RE = re.compile(r"^[0-9]{1,11}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_MAX_SIGNATURE_HEADER = 8192
_MAX_ENTRIES = 32
_MAX_MINOR = 10**15


# --- signature ---------------------------------------------------------------------------------
def _parse_signature_header(headers: Mapping[str, str]) -> tuple[int, list[bytes]]:
    """(timestamp, v1 signatures) from ``Stripe-Signature``; anything odd → SignatureInvalid."""
    try:
        value = header(headers, "stripe-signature")
        if len(value) > _MAX_SIGNATURE_HEADER:
            raise SignatureInvalid("header Stripe-Signature is too long", code="malformed_header")
        items = value.split(",")
        if len(items) > _MAX_ENTRIES:
            raise SignatureInvalid("header Stripe-Signature has too many entries", code="malformed_header")
        timestamps: list[str] = []
        signatures: list[bytes] = []
        for item in items:
            key, sep, val = item.strip().partition("=")
            if not sep:
                raise SignatureInvalid("header Stripe-Signature entry lacks '='", code="malformed_header")
            if key == "t":
                timestamps.append(val.strip())
            elif key == "v1" and _HEX_RE.match(val.strip()):
                signatures.append(bytes.fromhex(val.strip()))
        if len(timestamps) != 1 or not _TS_RE.match(timestamps[0]):
            raise SignatureInvalid("header Stripe-Signature needs exactly one integer t=", code="malformed_header")
        timestamp = parse_int_header(timestamps[0], "Stripe-Signature t")
        if not signatures:
            raise SignatureInvalid("header Stripe-Signature has no valid v1= entry", code="malformed_header")
        return timestamp, signatures
    except SignatureInvalid:
        raise
    except Exception:  # any parsing surprise is a bad header, never a 500
        raise SignatureInvalid("malformed Stripe-Signature header", code="malformed_header") from None


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """Verify a Stripe delivery (any configured ``whsec_`` secret) and parse it into a ``PaymentEvent``."""
    timestamp, signatures = _parse_signature_header(headers)
    keys = [s.strip().encode() for s in secret_list(secrets) if s.strip()]
    if not keys:
        raise SignatureInvalid("no usable secret configured", code="no_secret")
    signed = f"{timestamp}.".encode() + bytes(raw_body)
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
    matched = False
    for sig in signatures:  # no short-circuit: every entry costs the same
        matched |= constant_time_in(sig, expected)
    if not matched:
        raise SignatureInvalid("no matching signature", code="bad_signature")
    check_age(timestamp, now)
    payload: Any = None
    with signed_content(lambda: _identity(payload)):
        payload = load_json(raw_body)
        return _parse_event(payload)


def check_age(timestamp: int, now: datetime, tolerance: int = TOLERANCE_SECONDS) -> None:
    """Stripe's own check (``stripe.WebhookSignature.verify_header``): an event signed more than
    ``tolerance`` seconds ago is refused; a timestamp ahead of our clock is not (Stripe checks the age
    only, so a sender whose clock runs fast is never locked out)."""
    if timestamp < now.timestamp() - tolerance:
        raise TimestampOutOfWindow(f"timestamp {int(now.timestamp()) - timestamp} s old", code="stale_timestamp")


def _identity(payload: Any) -> ContentIdentity:
    """What identifies the order of a signed event that cannot be used (best effort; a refund is keyed
    by the event id, as when it names no refund)."""
    event = payload if isinstance(payload, Mapping) else {}
    event_type = event.get("type") if isinstance(event.get("type"), str) else ""
    kind = EventKind.PAID if event_type in PAID_TYPES else EventKind.REFUNDED if event_type == REFUND_TYPE else None
    obj = mapping_at(mapping_at(event, "data"), "object")
    if event_type == "payment_intent.succeeded":
        pi_id = plain_id(obj.get("id"))
    else:
        pi = obj.get("payment_intent")
        pi_id = plain_id(pi.get("id") if isinstance(pi, Mapping) else pi)
    return ContentIdentity(
        event_id=plain_id(event.get("id")),
        kind=kind.value if kind else None,
        order_id=_order_id(obj, "data.object", pi_id) if kind else None,
    )


def reply(outcome: Outcome, *, order_key: str, status: str, detail: Mapping[str, Any] | None = None) -> Reply:
    """Stripe only needs a quick 2xx (202 when queued); the JSON body shows in the dashboard's delivery log."""
    return accepted_reply(outcome, order_key=order_key, status=status, detail=detail)


# --- payload -----------------------------------------------------------------------------------


def _minor(value: Any, path: str) -> int:
    """An integer amount in the minor unit (Stripe never sends fractions)."""
    if value is None:
        raise MalformedPayload(f"missing field {path}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"field {path} must be an integer in the currency's minor unit")
    if value < 0 or value > _MAX_MINOR:
        raise MalformedPayload(f"field {path} is out of range")
    return value


def _currency(obj: Mapping[str, Any], path: str) -> str:
    currency = _str(obj.get("currency"), path, required=True)
    if currency is None or not _CURRENCY_RE.match(currency):
        raise MalformedPayload(f"field {path} must be a 3-letter ISO code")
    return currency.upper()


def to_major(amount: int, currency: str) -> Decimal:
    """Minor units → major units with the currency's exponent (fen → yuan), exactly."""
    code = currency.upper()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return Decimal(amount).scaleb(-places)


def _metadata(obj: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _ref_id(value: Any, path: str) -> str | None:
    """An id field that may be expanded into an object (``payment_intent``)."""
    if isinstance(value, dict):
        return _str(value.get("id"), f"{path}.id")
    return _str(value, path)


def _order_id(obj: Mapping[str, Any], path: str, pi_id: str | None) -> str:
    from_meta = _str(_metadata(obj, path).get("order_id"), f"{path}.metadata.order_id")
    result = from_meta or pi_id or _str(obj.get("id"), f"{path}.id", required=True)
    if result is None:  # pragma: no cover - _str(required=True) raised already
        raise MalformedPayload(f"missing field {path}.id")
    return result


def _buyer(details: Mapping[str, Any], meta: Mapping[str, Any], path: str, *, email: Any = None) -> Buyer | None:
    tax_id: str | None = None
    tax_ids = details.get("tax_ids")
    if isinstance(tax_ids, list):
        for i, entry in enumerate(tax_ids):
            if isinstance(entry, dict) and entry.get("type") == "cn_tin":
                tax_id = _str(entry.get("value"), f"{path}.tax_ids[{i}].value")
                if tax_id:
                    break
    tax_id = tax_id or _str(meta.get("tax_id"), f"{path}.metadata.tax_id")
    title = _str(meta.get("invoice_title"), f"{path}.metadata.invoice_title")
    if title is None and tax_id is not None:
        title = _str(details.get("business_name"), f"{path}.business_name") or _str(details.get("name"), f"{path}.name")
    buyer_email = _str(details.get("email"), f"{path}.email") or _str(email, f"{path}.email")
    mobile = _str(details.get("phone"), f"{path}.phone")
    if not any((tax_id, title, buyer_email, mobile)):
        return None
    return Buyer(title=title, tax_id=tax_id, email=buyer_email, mobile=mobile)


def _checkout_labels(session: Mapping[str, Any], path: str, currency: str) -> tuple[Decimal | None, Decimal | None]:
    """(shipping, order discount) a Checkout session labels, in major units; None when zero or absent."""
    cost = _obj(session.get("shipping_cost"), f"{path}.shipping_cost", required=False)
    totals = _obj(session.get("total_details"), f"{path}.total_details", required=False)
    if cost.get("amount_total") is not None:
        shipping = _minor(cost.get("amount_total"), f"{path}.shipping_cost.amount_total")
    elif totals.get("amount_shipping") is not None:
        shipping = _minor(totals.get("amount_shipping"), f"{path}.total_details.amount_shipping")
    else:
        shipping = 0
    discount = totals.get("amount_discount")
    discount = 0 if discount is None else _minor(discount, f"{path}.total_details.amount_discount")
    return (
        to_major(shipping, currency) if shipping else None,
        to_major(discount, currency) if discount else None,
    )


def _created(event: Mapping[str, Any]) -> datetime | None:
    created = event.get("created")
    if isinstance(created, int) and not isinstance(created, bool) and 0 <= created <= 10**11:
        return datetime.fromtimestamp(created, tz=UTC)
    return None


def _parse_event(payload: Any) -> PaymentEvent:
    event = _obj(payload, "body")
    event_type = _str(event.get("type"), "type", required=True)
    event_id = _str(event.get("id"), "id", required=True)
    if event_type not in PAID_TYPES and event_type != REFUND_TYPE:
        raise IgnoredEvent(f"event type {event_type} needs no invoice")
    if event_type is None or event_id is None:  # pragma: no cover - required above
        raise MalformedPayload("missing field type")
    data = _obj(event.get("data"), "data")
    obj = _obj(data.get("object"), "data.object")
    path = "data.object"
    common: dict[str, Any] = {
        "platform": NAME,
        "event_id": event_id,
        "occurred_at": _created(event),
        "event_type": event_type,
    }
    if event_type.startswith("checkout.session."):
        status = obj.get("payment_status")
        if status != "paid":
            raise IgnoredEvent(f"checkout session payment_status {status!r} is not paid")
        currency = _currency(obj, f"{path}.currency")
        amount = to_major(_minor(obj.get("amount_total"), f"{path}.amount_total"), currency)
        pi_id = _ref_id(obj.get("payment_intent"), f"{path}.payment_intent")
        details = _obj(obj.get("customer_details"), f"{path}.customer_details", required=False)
        shipping, discount = _checkout_labels(obj, path, currency)
        return PaymentEvent(
            kind=EventKind.PAID,
            order_id=_order_id(obj, path, pi_id),
            amount=amount,
            currency=currency,
            buyer=_buyer(details, _metadata(obj, path), f"{path}.customer_details", email=obj.get("customer_email")),
            shipping=shipping,
            order_discount=discount,
            **common,
        )
    if event_type == "payment_intent.succeeded":
        currency = _currency(obj, f"{path}.currency")
        received = obj.get("amount_received")
        minor = _minor(received if received is not None else obj.get("amount"), f"{path}.amount_received")
        pi_id = _str(obj.get("id"), f"{path}.id", required=True)
        return PaymentEvent(
            kind=EventKind.PAID,
            order_id=_order_id(obj, path, pi_id),
            amount=to_major(minor, currency),
            currency=currency,
            buyer=_buyer({}, _metadata(obj, path), path, email=obj.get("receipt_email")),
            **common,
        )
    return _refund(obj, data, common)


def _refund(charge: Mapping[str, Any], data: Mapping[str, Any], common: dict[str, Any]) -> PaymentEvent:
    path = "data.object"
    charge_id = _str(charge.get("id"), f"{path}.id", required=True)
    currency = _currency(charge, f"{path}.currency")
    amount = _minor(charge.get("amount"), f"{path}.amount")
    refunded_total = _minor(charge.get("amount_refunded"), f"{path}.amount_refunded")
    refund_id: str | None = None
    refund_minor: int | None = None
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, dict) else refunds
    if isinstance(listed, list):
        newest: Mapping[str, Any] | None = None
        for i, item in enumerate(listed):
            refund = _obj(item, f"{path}.refunds.data[{i}]")
            if refund.get("status") in ("failed", "canceled"):
                continue
            created = refund.get("created")
            rank = created if isinstance(created, int) and not isinstance(created, bool) else -1
            newest_created = newest.get("created") if newest is not None else None
            newest_rank = newest_created if isinstance(newest_created, int) else -1
            if newest is None or rank > newest_rank:
                newest = refund
        if newest is not None:
            refund_id = _str(newest.get("id"), f"{path}.refunds.data[].id", required=True)
            refund_minor = _minor(newest.get("amount"), f"{path}.refunds.data[].amount")
    if refund_minor is None:
        previous = _obj(data.get("previous_attributes"), "data.previous_attributes", required=False)
        before = previous.get("amount_refunded")
        if isinstance(before, int) and not isinstance(before, bool) and 0 <= before <= refunded_total:
            refund_minor = refunded_total - before
        else:
            refund_minor = refunded_total
        refund_id = f"{charge_id}:{refunded_total}"
    if refund_minor <= 0:
        raise IgnoredEvent("charge.refunded without a refunded amount")
    pi_id = _ref_id(charge.get("payment_intent"), f"{path}.payment_intent")
    details = _obj(charge.get("billing_details"), f"{path}.billing_details", required=False)
    return PaymentEvent(
        kind=EventKind.REFUNDED,
        order_id=_order_id(charge, path, pi_id),
        amount=to_major(amount, currency),
        currency=currency,
        buyer=_buyer(details, _metadata(charge, path), f"{path}.billing_details", email=charge.get("receipt_email")),
        refund_id=refund_id,
        refund_amount=to_major(refund_minor, currency),
        **common,
    )
