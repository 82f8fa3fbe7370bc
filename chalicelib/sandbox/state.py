"""The sandbox's memory: the invoice ledger (issue, settle, read, void, retry), credit lines, the
nonce replay cache and Nuonuo access tokens, in ``SandboxState``.

Everything is kept in memory behind one lock; time-driven transitions (an accepted invoice becoming
issued after ``issue_delay_seconds``, an unconfirmed red form expiring after 72 hours) are applied
lazily whenever a record is read, measured on ``Clock`` — so tests advance the clock instead of
sleeping. Business refusals are raised as ``Refusal`` with a protocol-neutral kind that each front end
maps to its own error code. Red confirmation forms are the ``RedFormDesk`` mixin
(:mod:`chalicelib.sandbox.red_forms`); the configuration (:mod:`~chalicelib.sandbox.config`), the clock
(:mod:`~chalicelib.sandbox.clock`) and the records (:mod:`~chalicelib.sandbox.records`) have modules of
their own, whose names are re-exported here.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import secrets
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.sandbox.clock import CHINA_TZ, Clock, china_time
from chalicelib.sandbox.config import NuonuoApp, SandboxConfig, Seller, StaApp
from chalicelib.sandbox.faults import FaultInjector
from chalicelib.sandbox.outage import Outage, TokenRefusals
from chalicelib.sandbox.records import (
    AMOUNT,
    AUTH,
    FAILED,
    FIELD,
    FORM_OPEN,
    ISSUED,
    LIMIT,
    NOT_FOUND,
    PENDING,
    TAXCODE,
    UNSUPPORTED,
    VOIDED,
    ZERO,
    InvoiceRecord,
    RedFormRecord,
    Refusal,
    money,
)
from chalicelib.sandbox.red_forms import RedFormDesk, red_draft_from_form
from chalicelib.sandbox.rules import Draft, TaxCodeTable

__all__ = [
    "AMOUNT",
    "AUTH",
    "CHINA_TZ",
    "FAILED",
    "FIELD",
    "FORM_OPEN",
    "ISSUED",
    "LIMIT",
    "NOT_FOUND",
    "PENDING",
    "TAXCODE",
    "UNSUPPORTED",
    "ZERO",
    "Clock",
    "InvoiceRecord",
    "NuonuoApp",
    "RedFormRecord",
    "Refusal",
    "SandboxConfig",
    "SandboxState",
    "Seller",
    "StaApp",
    "china_time",
    "money",
    "red_draft_from_form",
    "serial_of_order_key",
]


#: The gateway's request serial of an order (docs/issuing.md): "EI" + the first 18 hex digits of
#: SHA-256(order key), upper case. Derived here on its own, as the sandbox shares no code with the client.
SERIAL_PREFIX, SERIAL_LENGTH = "EI", 20


def serial_of_order_key(order_key: str) -> str:
    """The serial (STA ``fpqqlsh``, Nuonuo ``orderNo``) the gateway sends for ``order_key``."""
    digest = hashlib.sha256(order_key.encode("utf-8")).hexdigest().upper()
    return SERIAL_PREFIX + digest[: SERIAL_LENGTH - len(SERIAL_PREFIX)]


class SandboxState(RedFormDesk):
    """Everything the sandbox remembers; all public methods are thread-safe."""

    def __init__(self, config: SandboxConfig, table: TaxCodeTable | None = None) -> None:
        self.config = config
        self.table = table or TaxCodeTable.load()
        self.clock = Clock(config.clock_start)
        self.faults = FaultInjector(config.faults)
        self.outage = Outage(self.clock)  # chaos controls (outage.py): platform down, token refusals
        self.token_refusals = TokenRefusals()
        self.lock = threading.RLock()
        self.base_url = ""
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.invoices: list[InvoiceRecord] = []
            self._by_key: dict[tuple[str, str, str], InvoiceRecord] = {}
            self._by_number: dict[str, InvoiceRecord] = {}
            self._by_ref: dict[str, InvoiceRecord] = {}
            self.forms: dict[str, RedFormRecord] = {}
            self._form_by_serial: dict[tuple[str, str], RedFormRecord] = {}
            self.credit_used: dict[str, Decimal] = dict.fromkeys(self.config.sellers, ZERO)
            self._nonces: dict[tuple[str, str], float] = {}
            self.tokens: dict[str, tuple[str, float]] = {}
            self._seq = itertools.count(1)
            self._ref_seq = itertools.count(1)
            self._form_seq = itertools.count(1)
            self.retries: dict[str, int] = {}
            self.faults.reset()
            self.outage.end()
            self.token_refusals.reset()

    # -- replay cache and tokens --

    def transport_now(self) -> float:
        """The time transport freshness is measured on (timestamp window, nonce TTL, reply timestamps):
        wall time — the client's clock, which ``/admin/clock`` cannot move — unless the sandbox clock is
        frozen (tests that freeze it play the client's clock too) or ``transport_clock`` says otherwise.
        Business time (issue delay, token expiry, red forms, invoice dates) stays on ``clock``."""
        mode = self.config.transport_clock
        if mode == "sandbox" or (mode == "auto" and self.clock.frozen):
            return self.clock.now()
        return time.time()

    def remember_nonce(self, app_id: str, nonce: str) -> bool:
        """False when the nonce was already seen within ``nonce_ttl_seconds`` (on :meth:`transport_now`)."""
        now = self.transport_now()
        ttl = self.config.nonce_ttl_seconds
        with self.lock:
            if len(self._nonces) > 10000:
                self._nonces = {k: t for k, t in self._nonces.items() if now - t <= ttl}
            seen = self._nonces.get((app_id, nonce))
            if seen is not None and now - seen <= ttl:
                return False
            self._nonces[(app_id, nonce)] = now
            return True

    def issue_token(self, app_key: str) -> tuple[str, int]:
        token = secrets.token_hex(16)
        ttl = self.config.token_ttl_seconds
        with self.lock:
            self.tokens[token] = (app_key, self.clock.now() + ttl)
        return token, ttl

    def expire_tokens(self) -> int:
        """Every live token expires now (``POST /admin/tokens {"expire": "all"}``); how many did."""
        now = self.clock.now()
        with self.lock:
            live = [t for t, (_, expires) in self.tokens.items() if now <= expires]
            for t in live:
                self.tokens[t] = (self.tokens[t][0], now - 1)
            return len(live)

    # -- identifiers --

    def _now_prefix(self) -> str:
        return datetime.fromtimestamp(self.clock.now(), CHINA_TZ).strftime("%y%m%d%H%M%S")

    def _new_ref(self) -> str:
        return f"{self._now_prefix()}{next(self._ref_seq) % 10**8:08d}"

    def _new_number(self, seller: Seller) -> str:
        year = datetime.fromtimestamp(self.clock.now(), CHINA_TZ).strftime("%y")
        return f"{year}{seller.province[:2]:0>2}{self.config.invoice_channel[:1]}{next(self._seq):015d}"

    def seller(self, tax_id: str) -> Seller:
        s = self.config.sellers.get(tax_id)
        if s is None:
            raise Refusal(AUTH, f"销方 {tax_id} 未在沙箱登记", "seller", "E9301")
        return s

    # -- lazy time transitions --

    def _settle(self, rec: InvoiceRecord) -> InvoiceRecord:
        if rec.status == PENDING and self.clock.now() >= rec.ready_at:
            if rec.will_fail:
                rec.status = FAILED
                rec.failure = "沙箱故障注入: 开票失败"
                if not rec.red:
                    self.credit_used[rec.seller_tax_id] -= rec.amount
                else:
                    self.credit_used[rec.seller_tax_id] += -rec.amount
            else:
                rec.status = ISSUED
                rec.issued_at = rec.ready_at
                rec.number = self._new_number(self.seller(rec.seller_tax_id))
                self._by_number[rec.number] = rec
        return rec

    def settle_all(self) -> None:
        with self.lock:
            for rec in sorted(self.invoices, key=lambda r: r.ready_at):
                self._settle(rec)
            for form in self.forms.values():
                self._refresh_form(form)

    # -- reads --

    def find_invoice(self, protocol: str, seller: str, serial: str) -> InvoiceRecord | None:
        with self.lock:
            self.settle_all()
            return self._by_key.get((protocol, seller, serial))

    def find_by_order(self, protocol: str, sellers: tuple[str, ...], order_no: str) -> list[InvoiceRecord]:
        with self.lock:
            self.settle_all()
            return [
                r
                for r in self.invoices
                if r.protocol == protocol and r.order_no == order_no and (not sellers or r.seller_tax_id in sellers)
            ]

    def find_by_ref(self, ref: str) -> InvoiceRecord | None:
        with self.lock:
            self.settle_all()
            return self._by_ref.get(ref)

    def find_by_number(self, number: str) -> InvoiceRecord | None:
        with self.lock:
            self.settle_all()
            return self._by_number.get(number)

    def find_form(self, form_id: str = "", uuid_: str = "", serial: str = "") -> RedFormRecord | None:
        with self.lock:
            self.settle_all()
            for form in self.forms.values():
                if (
                    (form_id and form.form_id == form_id)
                    or (uuid_ and form.uuid == uuid_)
                    or (serial and form.serial == serial)
                ):
                    return form
            return None

    def credit(self, seller_tax_id: str) -> tuple[Decimal, Decimal, Decimal]:
        with self.lock:
            self.settle_all()
            seller = self.seller(seller_tax_id)
            used = self.credit_used.get(seller_tax_id, ZERO)
            return seller.credit_line, used, seller.credit_line - used

    def snapshot(
        self, *, order_no: str = "", serial: str = "", protocol: str = "", order_key: str = ""
    ) -> list[dict[str, Any]]:
        """Every invoice, or those matching each filter given: ``order_no`` (STA ``ddh`` — the shop's
        order id —, Nuonuo ``orderNo`` — the gateway's serial), ``serial``, ``protocol``, and
        ``order_key`` (the gateway's ``store:platform:order id``, matched through the serial it derives
        from it: :func:`serial_of_order_key`, so the same for both protocols)."""
        derived = serial_of_order_key(order_key) if order_key else ""
        with self.lock:
            self.settle_all()
            return [
                r.to_json()
                for r in self.invoices
                if (not order_no or r.order_no == order_no)
                and (not serial or r.serial == serial)
                and (not derived or r.serial == derived)
                and (not protocol or r.protocol == protocol)
            ]

    # -- writes --

    def issue(
        self,
        *,
        protocol: str,
        serial: str,
        order_no: str,
        draft: Draft,
        raw: dict[str, Any],
        warnings: list[str],
        blue_number: str = "",
        form_id: str = "",
        form_uuid: str = "",
    ) -> tuple[InvoiceRecord, bool]:
        """Accept an issue request; returns (record, created). ``created`` False: a repeated serial."""
        with self.lock:
            self.settle_all()
            seller = self.seller(draft.seller_tax_id)
            existing = self._by_key.get((protocol, seller.tax_id, serial))
            if existing is not None:
                return existing, False
            amount, tax, total = draft.sums()
            form = None
            if draft.red:
                form = self._check_red(
                    draft, blue_number=blue_number, form_id=form_id, form_uuid=form_uuid, amount=amount, tax=tax
                )
                blue_number = form.blue_number
            else:
                used = self.credit_used.get(seller.tax_id, ZERO)
                if used + amount > seller.credit_line:
                    raise Refusal(
                        LIMIT,
                        f"授信额度不足: 剩余 {money(seller.credit_line - used)}, 本次 {money(amount)}",
                        "credit_line",
                        "E9154",
                    )
            now = self.clock.now()
            rec = InvoiceRecord(
                protocol=protocol,
                serial=serial,
                order_no=order_no,
                provider_ref=self._new_ref(),
                seller_tax_id=seller.tax_id,
                red=draft.red,
                special=draft.special,
                draft=copy.deepcopy(draft),
                amount=amount,
                tax=tax,
                total=total,
                accepted_at=now,
                ready_at=now + self.config.issue_delay_seconds,
                will_fail=self.faults.draw("issue_fail_pct", "QDFPSC" if protocol == "sta" else "requestBillingNew"),
                blue_number=blue_number,
                form_id=form.form_id if form else "",
                raw=raw,
                warnings=list(warnings),
            )
            if draft.red:
                assert form is not None
                form.red_serial = serial
                self.credit_used[seller.tax_id] = max(ZERO, self.credit_used[seller.tax_id] + amount)
            else:
                self.credit_used[seller.tax_id] = self.credit_used.get(seller.tax_id, ZERO) + amount
            self.invoices.append(rec)
            self._by_key[(protocol, seller.tax_id, serial)] = rec
            self._by_ref[rec.provider_ref] = rec
            self._settle(rec)
            return rec, True

    def _auto_issue(self, form: RedFormRecord) -> None:
        """Nuonuo: a form with an ``orderNo`` issues its red invoice once it reaches 01/04."""
        if not form.auto_order_no or form.state not in ("01", "04") or form.red_serial:
            return
        blue = self._by_number[form.blue_number]
        draft = red_draft_from_form(blue, form)
        self.issue(
            protocol=form.protocol,
            serial=form.auto_order_no,
            order_no=form.auto_order_no,
            draft=draft,
            raw={"auto": form.form_id},
            warnings=[],
            form_id=form.form_id,
        )

    def void(self, number: str) -> None:
        with self.lock:
            self.settle_all()
            if number not in self._by_number:
                raise Refusal(NOT_FOUND, f"发票 {number} 不存在", "fphm", "E9500")
            raise Refusal(UNSUPPORTED, "该发票不支持作废: 数电票不能作废，请开具红字发票", "fphm", "E9999")

    def platform_void(self, number: str) -> None:
        """A void made outside the API (the platform's workbench, a paper invoice): what the status
        sync must notice. The protocols' own void still refuses 数电票 (:meth:`void`)."""
        with self.lock:
            self.settle_all()
            rec = self._by_number.get(number)
            if rec is None:
                raise ValueError(f"no invoice {number}")
            rec.status = VOIDED

    def retry(self, rec: InvoiceRecord) -> str:
        """Nuonuo reInvoice: a failed invoice goes back to pending (at most 20 retries a day)."""
        with self.lock:
            self._settle(rec)
            day = datetime.fromtimestamp(self.clock.now(), CHINA_TZ).strftime("%Y%m%d")
            key = f"{rec.serial}:{day}"
            if self.retries.get(key, 0) >= 20:
                raise Refusal(LIMIT, "同一流水号(订单号)单日最多重试20次", "fpqqlsh", "E9613")
            self.retries[key] = self.retries.get(key, 0) + 1
            if rec.status == ISSUED:
                return "发票已生成，无需再重试开票"
            if rec.status == PENDING:
                return "开票中（重试中），请耐心等待开票结果"
            rec.status, rec.failure, rec.will_fail = PENDING, "", False
            rec.ready_at = self.clock.now() + self.config.issue_delay_seconds
            if not rec.red:
                self.credit_used[rec.seller_tax_id] += rec.amount
            return "重试成功"
