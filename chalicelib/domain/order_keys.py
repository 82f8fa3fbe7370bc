"""The order key and the request serial (pure): the one format every record, message and archive line uses.

Order key: ``<store>:<platform>:<order id>`` for a paid order, ``…:refund:<refund id>`` for a refund
of it. The platform is part of the key because one store may take orders from several platforms
whose order numbers overlap (Shopify ``1001`` and WooCommerce ``1001`` are two sales). Components are
percent-escaped for ``%`` and ``:`` only, so the key stays readable and parses back exactly.

An event whose order id cannot be read is recorded (as ``rejected``) under
:func:`event_order_key` — the event id in the order id's place — and never issued from there.

Serial: every order has one request serial for ever (:func:`serial_for`), so the tax platform's own
duplicate check makes a second invoice for the order impossible whatever is resent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# --- order key -----------------------------------------------------------------------------------
REFUND_MARK = "refund"


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _unescape(part: str) -> str:
    return part.replace("%3A", ":").replace("%3a", ":").replace("%25", "%")


@dataclass(frozen=True)
class OrderKey:
    """The parts of an order key. ``refund_id`` is set for a refund record."""

    store_id: str
    platform: str
    order_id: str
    refund_id: str | None = None

    def __str__(self) -> str:
        base = f"{_escape(self.store_id)}:{_escape(self.platform)}:{_escape(self.order_id)}"
        if self.refund_id is None:
            return base
        return f"{base}:{REFUND_MARK}:{_escape(self.refund_id)}"

    @property
    def blue(self) -> OrderKey:
        """The key of the paid order a refund belongs to (itself for a paid order)."""
        return OrderKey(self.store_id, self.platform, self.order_id)

    @property
    def is_refund(self) -> bool:
        return self.refund_id is not None


def order_key(store_id: str, platform: str, order_id: str, refund_id: str | None = None) -> str:
    """The ledger key of an order (or of one refund of it)."""
    if not store_id or not platform or not order_id or refund_id == "":
        raise ValueError("an order key needs a store, a platform and an order id (and a non-empty refund id)")
    return str(OrderKey(store_id, platform, order_id, refund_id))


def parse_order_key(key: str) -> OrderKey:
    """The parts of a key built by :func:`order_key`; ValueError for anything else."""
    parts = key.split(":")
    if len(parts) == 3 and all(parts):
        return OrderKey(*(_unescape(p) for p in parts))
    if len(parts) == 5 and parts[3] == REFUND_MARK and all(parts):
        store, platform, order, _, refund = (_unescape(p) for p in parts)
        return OrderKey(store, platform, order, refund)
    raise ValueError(f"not an order key: {key!r}")


#: 换开: the refund id of the full red reversal of blue invoice ``number`` (one per invoice: exactly once),
#: and the order id of the new blue that replaces it (``<order id>:reissue:<n>``, escaped in the key).
RETITLE_REFUND_PREFIX = "retitle-"
REISSUE_MARK = "reissue"


def retitle_refund_key(blue_key: str, invoice_number: str) -> str:
    """The refund record of the 换开 reversal of the blue ``blue_key`` (issued as ``invoice_number``)."""
    k = parse_order_key(blue_key)
    return order_key(k.store_id, k.platform, k.order_id, RETITLE_REFUND_PREFIX + invoice_number)


def is_retitle_refund(key: str) -> bool:
    refund = parse_order_key(key).refund_id
    return refund is not None and refund.startswith(RETITLE_REFUND_PREFIX)


def reissue_key(blue_key: str, round_no: int = 1) -> str:
    """The key of the new blue of 换开 number ``round_no`` of ``blue_key`` (the original order's key)."""
    k = parse_order_key(blue_key)
    base = k.order_id.split(f":{REISSUE_MARK}:")[0]
    return order_key(k.store_id, k.platform, f"{base}:{REISSUE_MARK}:{round_no}")


def store_of(key: str) -> str:
    """The store id of an order key."""
    return parse_order_key(key).store_id


#: The order id part of the key of a signed event whose order id could not be read: the event id
#: behind this mark (``demo-shanghai:standard:event%3Amsg_1``), so a re-delivery finds the same record.
EVENT_MARK = "event:"


def event_order_key(store_id: str, platform: str, event_id: str) -> str:
    """The key of an event whose order id cannot be read (recorded as rejected, never issued)."""
    return order_key(store_id, platform, EVENT_MARK + event_id)


def keyed_by_event(key: str) -> bool:
    """Whether ``key`` names an event whose order id could not be read (see :func:`event_order_key`)."""
    return parse_order_key(key).order_id.startswith(EVENT_MARK)


# --- serial --------------------------------------------------------------------------------------
#: Serial = prefix + the first hex digits of SHA-256(order key), upper case: 20 characters fits
#: Nuonuo's orderNo (≤ 20) and the STA fpqqlsh (≤ 40); 72 bits make a collision practically impossible.
SERIAL_PREFIX = "EI"
SERIAL_LENGTH = 20


def serial_for(key: str) -> str:
    """The deterministic request serial of an order: the same on every attempt and every worker."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest().upper()
    return SERIAL_PREFIX + digest[: SERIAL_LENGTH - len(SERIAL_PREFIX)]


def red_form_serial(key: str, round_no: int = 1) -> str:
    """The serial of a refund's red confirmation form, application number ``round_no`` (a form that
    expired is applied again under the next). The red invoice is issued under the serial of the form
    it reverses by (Nuonuo issues it itself under the form's ``orderNo``), so round 1 is the refund
    record's own :func:`serial_for` and a re-applied form never meets an old one's invoice."""
    if round_no < 1:
        raise ValueError("form rounds start at 1")
    return serial_for(key if round_no == 1 else f"{key}#form{round_no}")
