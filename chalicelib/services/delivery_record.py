"""What a delivery reads off an issued order record: its number and date, the buyer's contact, the
messages' variables; and the deliver queue's message shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.delivery import DeliveryError, china_date
from chalicelib.domain.models import Store
from chalicelib.services.delivery_ports import IssuedLinkView
from chalicelib.services.delivery_templates import MessageContext
from chalicelib.services.ports import OrderRecord


def iso_text(value: float | datetime | str) -> str:
    """Epoch seconds, a datetime or a text as ISO 8601 text (seconds)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def invoice_number(record: OrderRecord) -> str:
    number = record.text("invoice_number")
    if not number:
        raise DeliveryError("an issued record without invoice_number", code="no_invoice_number")
    return number


def issued_at(record: OrderRecord) -> str:
    return record.text("issued_at") or record.created_at.replace("Z", "+00:00")


def buyer_contact(payload: Mapping[str, Any]) -> dict[str, str]:
    """The buyer's ``email`` / ``mobile`` as the order (or, failing that, the event) carries them."""
    for part in ("order", "event"):
        section = payload.get(part)
        buyer = section.get("buyer") if isinstance(section, Mapping) else None
        if isinstance(buyer, Mapping) and (buyer.get("email") or buyer.get("mobile")):
            return {k: str(buyer[k]) for k in ("email", "mobile") if buyer.get(k)}
    return {}


def message_context(record: OrderRecord, store: Store, link: IssuedLinkView) -> MessageContext:
    """The templates' variables: 价税合计 from the order (else the platform's amount + tax)."""
    order = record.payload.get("order")
    total = order.get("total") if isinstance(order, Mapping) else None
    amount = Decimal(str(total)) if total else None
    if amount is None and record.text("total_amount"):
        amount = Decimal(record.text("total_amount") or "0") + Decimal(record.text("total_tax") or "0")
    return MessageContext(
        seller=store.seller.name,
        number=invoice_number(record),
        amount=f"¥{amount:.2f}" if amount is not None else "",
        date=f"{china_date(issued_at(record)):%Y-%m-%d}",
        link=link.url,
        expires=iso_text(link.expires_at)[:10],
    )


def parse_message(body: str) -> tuple[str, str]:
    """A deliver message: ``(order_key, reason)``; ValueError when it is not one."""
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("order_key"), str) or not data["order_key"]:
        raise ValueError("a deliver message needs an order_key")
    return data["order_key"], str(data.get("reason", "issued"))
