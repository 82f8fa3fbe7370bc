"""The parties and the remark of the blue invoice: buyer, seller, remark template.

Owns the buyer (no title → individual ``个人``; a tax id → company unless the platform says
otherwise; tax ids cleaned), the seller from the store, and the store's remark template filled
from the event. See :mod:`chalicelib.domain.normalise` for the rules.
"""

from __future__ import annotations

from chalicelib.domain.models import BuyerType, InvoiceBuyer, Party, PaymentEvent, Store
from chalicelib.domain.taxpayer import clean_tax_id

INDIVIDUAL_NAME = "个人"


def _buyer(event: PaymentEvent) -> InvoiceBuyer:
    source = event.buyer
    if source is None:
        return InvoiceBuyer(name=INDIVIDUAL_NAME, type=BuyerType.INDIVIDUAL)
    tax_id = clean_tax_id(source.tax_id) if source.tax_id else None
    tax_id = tax_id or None
    inferred = BuyerType.COMPANY if tax_id else BuyerType.INDIVIDUAL
    kind = source.type if source.type is not None else inferred
    name = source.title or ("" if kind is BuyerType.COMPANY else INDIVIDUAL_NAME)
    return InvoiceBuyer(
        name=name,
        tax_id=tax_id,
        type=kind,
        address=source.address,
        phone=source.phone,
        bank=source.bank,
        account=source.account,
        email=source.email,
        mobile=source.mobile,
    )


def _seller(store: Store) -> Party:
    s = store.seller
    return Party(
        name=s.name,
        tax_id=s.tax_id,
        address=s.address or None,
        phone=s.phone or None,
        bank=s.bank or None,
        account=s.account or None,
    )


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _remark(template: str | None, event: PaymentEvent, store: Store) -> str | None:
    if not template:
        return None
    fields = _Fields(
        order_id=event.order_id,
        store_id=store.store_id,
        platform=event.platform,
        event_id=event.event_id,
        refund_id=event.refund_id or "",
    )
    try:
        return template.format_map(fields)
    except (ValueError, IndexError, AttributeError, KeyError):
        # A template with a stray brace or an attribute lookup is the merchant's text: keep it as is.
        return template
