"""What the customer's link page shows, the PDF download, and the per-IP rate limit of ``/i/…``.

:class:`CustomerPage` turns a live link (:class:`~chalicelib.services.links.LinkView`) into an
:class:`InvoicePage` — seller, buyer, amount (¥ and 大写), date, number, status, whether the PDF is
ready, the QR code — read from the order record and the store; :meth:`CustomerPage.pdf_url` is a
fresh presigned URL of the record's ``pdf_key`` (minutes), or None while the PDF is being prepared.

:class:`RateLimit` is a fixed-window counter per client IP: the IP is hashed (SHA-256, so the table
holds no address), one atomic ADD per request in the current window, the item expires by TTL after
two windows. A failing counter lets the request through (logged): the limit protects the links, it
must not take the page down with DynamoDB.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.domain.china_time import CHINA_TZ as CHINA
from chalicelib.domain.china_time import china_date
from chalicelib.domain.invoice_document import record_order
from chalicelib.domain.models import Store
from chalicelib.domain.order_state import OrderStatus
from chalicelib.domain.taxpayer import mask
from chalicelib.services.links import LinkView
from chalicelib.services.ports import OrderRecord
from chalicelib.services.reversals import Reversal, net_amount, reversals

PENDING = frozenset(
    {
        OrderStatus.RECEIVED,
        OrderStatus.QUEUED,
        OrderStatus.ISSUING,
        OrderStatus.RETRYING,
        OrderStatus.AMBIGUOUS,
        OrderStatus.ACCEPTED,
    }
)


class PageStatus(StrEnum):
    ISSUED = "issued"  # 已开具
    REVERSED = "reversed"  # 已冲红: red invoices reverse the whole blue one
    PARTLY_REVERSED = "partly_reversed"  # 部分冲红: a red invoice reverses part of it (a partial refund)
    RED = "red"  # the link is to a red invoice itself
    PENDING = "pending"  # 开具中
    NEEDS_CORRECTION = "needs_correction"  # rejected: the buyer's title form may fix it
    CANCELLED = "cancelled"  # refunded before it was issued
    WITH_SHOP = "with_shop"  # held / failed / blocked: the shop handles it
    REISSUING = "reissuing"  # 换开处理中: reversed for a new title, the new invoice not issued yet


class OrderReadPort(Protocol):
    def get_order(self, order_key: str) -> OrderRecord | None: ...


class StoreReadPort(Protocol):
    def get(self, store_id: str) -> Store: ...


class PresignPort(Protocol):
    def presign(self, key: str, *, seconds: int) -> str: ...


class RateCounterPort(Protocol):
    def hit(self, key: str, *, window: int, expires_at: float) -> int:
        """Add one to ``key``'s count in ``window``; the count, this one included."""
        ...


class LoggerPort(Protocol):
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


class QrPort(Protocol):
    def __call__(self, payload: dict[str, Any], fields: dict[str, str | int]) -> str | None:
        """The inline SVG of the invoice's verification QR code, None when it cannot be made."""
        ...


@dataclass(frozen=True)
class TitleChange:
    title: str
    tax_id: str
    requested_at: str
    stage: str  # before_issue (applied to the order) / after_issue (换开 queued) / with_shop


@dataclass(frozen=True)
class InvoicePage:
    store_name: str
    seller_name: str
    seller_tax_id: str
    buyer_name: str
    buyer_tax_id: str  # masked
    amount: Decimal | None
    amount_capitals: str | None
    date: str | None  # YYYY-MM-DD, China time
    number: str | None
    status: PageStatus
    pdf_ready: bool
    qr_svg: str | None
    title_change: TitleChange | None
    expires: str  # the link's last day, China time
    #: the red invoices issued against this blue one (``chalicelib.services.reversals``) and what is left
    reversals: tuple[Reversal, ...] = ()
    net_amount: Decimal | None = None
    #: 换开: the number of the (reversed) invoice this one replaces
    replaces: str | None = None

    @property
    def net_text(self) -> str:
        return "" if self.net_amount is None else f"{self.net_amount:,.2f}"

    @property
    def amount_text(self) -> str:
        return "" if self.amount is None else f"{self.amount:,.2f}"

    @property
    def title_form_open(self) -> bool:
        """Whether the buyer may still ask for a company title through this link."""
        return self.status in {PageStatus.ISSUED, PageStatus.PENDING, PageStatus.NEEDS_CORRECTION}


#: The statuses whose invoice exists (a number, a PDF, a QR code).
WITH_INVOICE = frozenset({PageStatus.ISSUED, PageStatus.REVERSED, PageStatus.PARTLY_REVERSED, PageStatus.RED})


def reversal(record: OrderRecord) -> PageStatus:
    """An issued blue record as the after-sale flow's refund book has it (``red_allocation``): red
    invoices issued against it (``red_invoices``) for all of its total, part of it, or none."""
    from chalicelib.domain.red_allocation import RefundBook

    book = RefundBook.of(record.fields)
    if not book.red_invoices:
        return PageStatus.ISSUED
    total = _decimal((record.payload.get("order") or {}).get("total"))
    # red invoices actually issued count, never reservations still in the red flow
    return PageStatus.REVERSED if total is not None and book.issued_total() >= total else PageStatus.PARTLY_REVERSED


def page_status(record: OrderRecord) -> PageStatus:
    status = record.status
    if status is OrderStatus.ISSUED:
        return reversal(record)
    if status.value == "red_issued":
        return PageStatus.RED
    if status in (OrderStatus.REISSUING, OrderStatus.REISSUED):  # CustomerPage shows the new one once issued
        return PageStatus.REISSUING
    if status in PENDING:
        return PageStatus.PENDING
    if status is OrderStatus.REJECTED:
        return PageStatus.NEEDS_CORRECTION
    if status.value == "cancelled":
        return PageStatus.CANCELLED
    return PageStatus.WITH_SHOP


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _capitals(amount: Decimal | None) -> str | None:
    if amount is None:
        return None
    try:
        from chalicelib.domain.capitals import amount_in_capitals
    except ImportError:  # pragma: no cover - the PDF work ships it
        return None
    return amount_in_capitals(amount)


def title_change_of(record: OrderRecord) -> TitleChange | None:
    raw = record.text("title_change")
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return TitleChange(str(data["title"]), str(data["tax_id"]), str(data["requested_at"]), str(data["stage"]))
    except (ValueError, KeyError, TypeError):
        return None


def build_page(record: OrderRecord, store: Store, link: LinkView, qr: QrPort | None) -> InvoicePage:
    """The page of ``record`` (pure: what the template shows)."""
    order: dict[str, Any] = dict(record_order(record.payload, record.fields) or {})  # a red's: RED_ORDER_FIELD
    event: dict[str, Any] = record.payload.get("event") or {}
    seller = order.get("seller") or {}
    buyer = order.get("buyer") or event.get("buyer") or {}
    amount = _decimal(order.get("total")) if order else _decimal(event.get("amount"))
    status = page_status(record)
    number = record.text("invoice_number")
    issued = status in WITH_INVOICE
    return InvoicePage(
        store_name=store.name,
        seller_name=str(seller.get("name") or store.seller.name),
        seller_tax_id=str(seller.get("tax_id") or store.seller.tax_id),
        buyer_name=str(buyer.get("name") or buyer.get("title") or "个人"),
        buyer_tax_id=mask(buyer.get("tax_id")),
        amount=amount,
        amount_capitals=_capitals(amount),
        date=china_date(record.text("issued_at")) if issued else None,
        number=number if issued else None,
        status=status,
        pdf_ready=issued and bool(record.text("pdf_key")),
        qr_svg=qr(record.payload, record.fields) if issued and qr is not None else None,
        title_change=title_change_of(record),
        expires=datetime.fromtimestamp(link.expires_at, CHINA).strftime("%Y-%m-%d"),
        replaces=str(record.payload.get("reissue_of_number") or "") or None,
    )


def verification_qr(payload: dict[str, Any], fields: dict[str, str | int]) -> str | None:
    """The QR code of the PDF work (``chalicelib.pdf.qr`` over ``invoice_document``), None until it
    is there or when the record cannot make a document."""
    try:
        from chalicelib.domain.invoice_document import document_from_record, verification_text
        from chalicelib.pdf.qr import qr_svg
    except ImportError:
        return None
    try:
        return str(qr_svg(verification_text(document_from_record(payload, fields))))
    except Exception:  # a record the document cannot be made of: the page goes on without the code
        return None


class CustomerPage:
    def __init__(
        self,
        *,
        orders: OrderReadPort,
        stores: StoreReadPort,
        files: PresignPort,
        qr: QrPort | None = verification_qr,
        pdf_url_seconds: int = 300,
    ) -> None:
        self.orders = orders
        self.stores = stores
        self.files = files
        self.qr = qr
        self.pdf_url_seconds = pdf_url_seconds

    def page(self, link: LinkView) -> InvoicePage | None:
        """None when the order record is gone (the link answers 404 then)."""
        record = self.orders.get_order(link.order_key)
        if record is None:
            return None
        record = self.current(record)
        page = build_page(record, self.stores.get(link.store_id), link, self.qr)
        if page.status in (PageStatus.REVERSED, PageStatus.PARTLY_REVERSED):
            found = reversals(record, lambda keys: [r for k in keys if (r := self.orders.get_order(k)) is not None])
            page = replace(page, reversals=found, net_amount=net_amount(record))
        return page

    def current(self, record: OrderRecord) -> OrderRecord:
        """换开: the new invoice's record once it is issued (the link stays the old one's), else ``record``."""
        for _ in range(5):  # a title changed more than once: follow the chain
            new_key = record.text("reissue_key") if record.status is OrderStatus.REISSUED else None
            new = self.orders.get_order(new_key) if new_key else None
            if new is None or not (page_status(new) in WITH_INVOICE or new.status is OrderStatus.REISSUED):
                return record  # the new invoice is not issued yet: 换开处理中
            record = new
        return record

    def pdf_url(self, link: LinkView) -> str | None:
        """A presigned URL of the invoice PDF, live ``pdf_url_seconds``; None while it is prepared."""
        record = self.orders.get_order(link.order_key)
        record = self.current(record) if record is not None else None
        if record is None or page_status(record) not in WITH_INVOICE:
            return None
        key = record.text("pdf_key")
        return self.files.presign(key, seconds=self.pdf_url_seconds) if key else None


# --- the rate limit ----------------------------------------------------------------------------------
def client_key(ip: str) -> str:
    """What the counter keeps of a client address: SHA-256, 32 hex digits (no address in the table)."""
    return hashlib.sha256(f"einvoice-link|{ip}".encode()).hexdigest()[:32]


class RateLimit:
    def __init__(self, counter: RateCounterPort, *, limit: int, window_seconds: int, logger: LoggerPort) -> None:
        self.counter = counter
        self.limit = limit
        self.window_seconds = window_seconds
        self.logger = logger

    def allow(self, ip: str, now: float) -> bool:
        """Whether one more request of ``ip`` fits its window (a limit ≤ 0 turns the limit off)."""
        if self.limit <= 0:
            return True
        window = int(now // self.window_seconds)
        try:
            count = self.counter.hit(client_key(ip), window=window, expires_at=(window + 2) * self.window_seconds)
        except Exception as exc:  # fail open: the counter must not take the page down
            self.logger.warning("link rate counter failed", extra={"error": exc.__class__.__name__})
            return True
        return count <= self.limit

    def retry_after(self, now: float) -> int:
        """Seconds until the current window ends."""
        return max(1, int(self.window_seconds - now % self.window_seconds))
