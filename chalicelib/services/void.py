"""Void (作废): where the store's provider can void and the invoice is eligible, else a clear refusal.

数电票 (fully digitalised invoices) cannot be voided: only paper and legacy tax-control invoices can,
within the month of issue (``/work/shared/reference/tax-rules.md``, *inferred*). A provider declares
it in ``Capabilities.void``; both shipped providers (STA, Nuonuo) say False, so today every void is
refused with the bilingual reason and the way out: a red reversal (``einvoice red batch`` or a
refund). Where a provider says True, the void is one tax call (``AdminProvider.build_void``) and the
``void`` event of the state machine (``issued`` → ``voided``) — *assumed*: the platform answers the
void synchronously (Nuonuo answers "作废提交成功" and reports 31 作废中 → 3 已作废 later; the status
sync records the final state).

Eligible: an issued blue invoice (or red), issued in the current calendar month (China time), with
nothing reversed against it yet (no reservation in its refund book).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from aws_lambda_powertools import Logger

from chalicelib.domain.china_time import CHINA_TZ as CHINA
from chalicelib.domain.errors import EInvoiceError, NotFound
from chalicelib.domain.models import Store
from chalicelib.domain.order_keys import parse_order_key, store_of
from chalicelib.domain.order_state import RED_CLAIMABLE, OrderEvent, OrderStatus
from chalicelib.domain.red_allocation import RefundBook
from chalicelib.services.exchange import Exchange, Session
from chalicelib.services.ports import AlertPort, CredentialsPort, OrderRecord, ProviderPort, StorePort
from chalicelib.services.red_ports import RedLedger
from chalicelib.taxapi.base import AdminProvider, HttpRequest, HttpResponse, IssueProvider, VoidResult

#: Bilingual reasons a void is refused (code → (中文, English)).
REFUSALS: dict[str, tuple[str, str]] = {
    "void_not_supported": (
        "该店铺的开票平台不支持作废：数电票不能作废，请开具红字发票冲红（einvoice red batch 或退款）",
        "the store's tax platform cannot void: fully digitalised invoices (数电票) cannot be voided; "
        "reverse it with a red invoice instead (einvoice red batch, or a refund)",
    ),
    "void_not_issued": (
        "只有已开具的发票才能作废（当前状态：{status}）",
        "only an issued invoice can be voided (status: {status})",
    ),
    "void_other_month": (
        "发票只能在开具当月作废（开具于 {issued}），请开具红字发票冲红",
        "an invoice can be voided only in the month of issue (issued {issued}); reverse it with a red invoice",
    ),
    "void_already_reversed": (
        "该发票已部分或全部冲红，不能作废",
        "the invoice is already reversed in part or in full: it cannot be voided",
    ),
}


class VoidRefused(EInvoiceError):
    """A void that cannot be made: ``code`` (a key of :data:`REFUSALS`), the message in both languages."""

    code = "void_refused"

    def __init__(self, code: str, **values: str) -> None:
        zh, en = REFUSALS[code]
        self.code = code
        self.zh, self.en = zh.format(**values), en.format(**values)
        super().__init__(f"{self.en} / {self.zh}")

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message_zh": self.zh, "message_en": self.en}


@dataclass(frozen=True)
class Eligible:
    """``void-eligible``: invoices that could still be voided and have a refund pending."""

    supported: bool
    explanation: str
    items: list[dict[str, str]] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class VoidInvoices:
    def __init__(
        self,
        *,
        ledger: RedLedger,
        stores: StorePort,
        credentials: CredentialsPort,
        providers: ProviderPort,
        exchange: Exchange,
        alerts: AlertPort,
        logger: Logger,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.ledger, self.stores, self.credentials = ledger, stores, credentials
        self.providers, self.exchange, self.alerts, self.log, self.clock = providers, exchange, alerts, logger, clock

    def _session(self, store: Store) -> Session:
        credentials = self.credentials.load(store)
        return Session(store, credentials, self.providers.get(store, credentials))

    def supported(self, session: Session) -> bool:
        return session.provider.capabilities.void and hasattr(session.provider, "build_void")

    def check(self, record: OrderRecord, session: Session) -> None:
        """Raise :class:`VoidRefused` unless ``record`` may be voided now."""
        if not self.supported(session):
            raise VoidRefused("void_not_supported")
        if record.status not in (OrderStatus.ISSUED, OrderStatus.RED_ISSUED):
            raise VoidRefused("void_not_issued", status=record.status.value)
        issued = record.text("issued_at") or ""
        month = self.clock().astimezone(CHINA).strftime("%Y-%m")
        if not issued or datetime.fromisoformat(issued).astimezone(CHINA).strftime("%Y-%m") != month:
            raise VoidRefused("void_other_month", issued=issued or "?")
        if RefundBook.of(record.fields).entries:
            raise VoidRefused("void_already_reversed")

    def void(self, order_key: str) -> VoidResult:
        record = self.ledger.get_order(order_key)
        if record is None:
            raise NotFound(f"no order record {order_key}")
        store = self.stores.get(store_of(order_key))
        session = self._session(store)
        self.check(record, session)
        number, ref = record.text("invoice_number") or "", record.text("provider_ref") or record.text("serial") or ""
        now = self.clock()

        def build(p: IssueProvider) -> HttpRequest:
            return cast(AdminProvider, p).build_void(number, ref, now)

        def parse(p: IssueProvider, rq: HttpRequest, rs: HttpResponse) -> VoidResult:
            return cast(AdminProvider, p).parse_void(rq, rs)

        result = self.exchange.call(session, "void", build, parse, keys={"order_key": order_key}, params={})
        self.ledger.transition(
            order_key,
            OrderEvent.VOID,
            now=now.timestamp(),
            fields={"voided_at": now.isoformat(), "platform_status": result.status.value, "last_error": None},
        )
        self.log.info("invoice voided", extra={"order_key": order_key, "invoice_number": number})
        return result

    def eligible(self, store_id: str, records: list[OrderRecord]) -> Eligible:
        """Of ``records`` (the store's, this month), the issued invoices with a refund pending that
        could still be voided — none, with the reason, where the provider cannot void."""
        store = self.stores.get(store_id)
        session = self._session(store)
        if not self.supported(session):
            return Eligible(False, REFUSALS["void_not_supported"][1] + " / " + REFUSALS["void_not_supported"][0])
        pending: dict[str, list[str]] = {}
        for r in records:
            key = parse_order_key(r.order_key)
            if key.is_refund and r.status in RED_CLAIMABLE:
                pending.setdefault(str(key.blue), []).append(r.order_key)
        items = []
        for r in records:
            if r.order_key not in pending:
                continue
            try:
                self.check(r, session)
            except VoidRefused:
                continue
            items.append(
                {
                    "order_key": r.order_key,
                    "invoice_number": r.text("invoice_number") or "",
                    "issued_at": r.text("issued_at") or "",
                    "refunds": ",".join(pending[r.order_key]),
                }
            )
        return Eligible(True, f"{len(items)} invoice(s) can still be voided instead of reversed", items)
