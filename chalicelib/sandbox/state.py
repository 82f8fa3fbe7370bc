"""The sandbox's memory: configuration, a controllable clock, the invoice ledger, red forms, credit
lines, the nonce replay cache and Nuonuo access tokens.

Everything is kept in memory behind one lock; time-driven transitions (an accepted invoice becoming
issued after ``issue_delay_seconds``, an unconfirmed red form expiring after 72 hours) are applied
lazily whenever a record is read, measured on ``Clock`` — so tests advance the clock instead of
sleeping. Business refusals are raised as ``Refusal`` with a protocol-neutral kind that each front end
maps to its own error code.
"""

# ruff: noqa: PLR0912 - rule checks are long flat lists of independent conditions

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from chalicelib.sandbox.faults import FaultInjector, FaultSettings
from chalicelib.sandbox.rules import RED, ChecksumPolicy, Draft, Line, TaxCodeTable

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
ZERO = Decimal(0)

# Refusal kinds (protocol neutral).
FIELD = "FIELD"
AMOUNT = "AMOUNT"
TAXCODE = "TAXCODE"
LIMIT = "LIMIT"
AUTH = "AUTH"
NOT_FOUND = "NOT_FOUND"
UNSUPPORTED = "UNSUPPORTED"

PENDING, ISSUED, FAILED = "pending", "issued", "failed"
FORM_OPEN = ("01", "02", "03", "04")


class Refusal(Exception):
    def __init__(self, kind: str, message: str, field: str = "", nuonuo_code: str = "E4000") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field
        self.nuonuo_code = nuonuo_code


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaApp:
    app_id: str
    sm4_key: bytes
    sign_key: str
    sellers: tuple[str, ...]  # empty: any configured seller


@dataclass(frozen=True)
class NuonuoApp:
    app_key: str
    app_secret: str
    user_taxes: tuple[str, ...]


@dataclass(frozen=True)
class Seller:
    tax_id: str
    name: str
    credit_line: Decimal
    single_invoice_limit: Decimal | None
    province: str
    address: str = ""
    phone: str = ""


@dataclass(frozen=True)
class SandboxConfig:
    sta_apps: dict[str, StaApp]
    nuonuo_apps: dict[str, NuonuoApp]
    sellers: dict[str, Seller]
    issue_delay_seconds: float = 5.0
    timestamp_window_seconds: int = 300
    nonce_ttl_seconds: int = 600
    token_ttl_seconds: int = 86400
    uscc_policy: ChecksumPolicy = ChecksumPolicy.WARN
    red_individual_state: str = "01"
    red_company_state: str = "02"
    red_expiry_hours: float = 72
    invoice_channel: str = "1"
    clock_start: float | None = None
    faults: FaultSettings = field(default_factory=FaultSettings)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SandboxConfig:
        sta_apps = {}
        for app_id, app in (raw.get("sta", {}).get("apps") or {}).items():
            key = bytes.fromhex(app["sm4_key"])
            if len(key) != 16:
                raise ValueError(f"sta app {app_id}: sm4_key must be 32 hex characters")
            sta_apps[app_id] = StaApp(app_id, key, str(app["sign_key"]), tuple(app.get("sellers") or ()))
        nuonuo_apps = {}
        for app_key, app in (raw.get("nuonuo", {}).get("apps") or {}).items():
            taxes = app.get("user_taxes") or ([app["user_tax"]] if app.get("user_tax") else [])
            nuonuo_apps[app_key] = NuonuoApp(app_key, str(app["app_secret"]), tuple(taxes))
        sellers = {}
        for tax_id, s in (raw.get("sellers") or {}).items():
            limit = s.get("single_invoice_limit")
            sellers[tax_id] = Seller(
                tax_id=tax_id,
                name=s.get("name", "沙箱测试企业"),
                credit_line=Decimal(str(s.get("credit_line", "1000000.00"))),
                single_invoice_limit=Decimal(str(limit)) if limit not in (None, "") else None,
                province=str(s.get("province", "33")),
                address=s.get("address", ""),
                phone=s.get("phone", ""),
            )
        red = raw.get("red_form") or {}
        clock = raw.get("clock") or {}
        start = clock.get("start")
        return cls(
            sta_apps=sta_apps,
            nuonuo_apps=nuonuo_apps,
            sellers=sellers,
            issue_delay_seconds=float(raw.get("issue_delay_seconds", 5)),
            timestamp_window_seconds=int(raw.get("timestamp_window_seconds", 300)),
            nonce_ttl_seconds=int(raw.get("nonce_ttl_seconds", 600)),
            token_ttl_seconds=int(raw.get("nuonuo", {}).get("token_ttl_seconds", 86400)),
            uscc_policy=ChecksumPolicy(raw.get("uscc_policy", "warn")),
            red_individual_state=str(red.get("individual_state", "01")),
            red_company_state=str(red.get("company_state", "02")),
            red_expiry_hours=float(red.get("expiry_hours", 72)),
            invoice_channel=str(raw.get("invoice_channel", "1")),
            clock_start=float(start) if start is not None else None,
            faults=FaultSettings.from_dict(raw.get("faults")),
            raw=raw,
        )


# --- clock ----------------------------------------------------------------------------------------


class Clock:
    """Wall time plus an offset, or frozen at a chosen instant; tests move it with ``advance``."""

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen = start
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            base = self._frozen if self._frozen is not None else time.time()
            return base + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
        return self.now()

    def set(self, instant: float, *, freeze: bool | None = None) -> float:
        with self._lock:
            frozen = self._frozen is not None if freeze is None else freeze
            self._offset = 0.0
            if frozen:
                self._frozen = instant
            else:
                self._frozen = None
                self._offset = instant - time.time()
        return self.now()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


def china_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def money(d: Decimal) -> str:
    return f"{d:.2f}"


# --- records --------------------------------------------------------------------------------------


@dataclass
class InvoiceRecord:
    protocol: str  # sta | nuonuo
    serial: str  # fpqqlsh (sta) / orderNo (nuonuo): the idempotency key
    order_no: str  # ddh (sta) / orderNo (nuonuo)
    provider_ref: str  # 受理流水号 slh / invoiceSerialNum
    seller_tax_id: str
    red: bool
    special: bool
    draft: Draft
    amount: Decimal
    tax: Decimal
    total: Decimal
    accepted_at: float
    ready_at: float
    will_fail: bool = False
    status: str = PENDING
    number: str = ""
    issued_at: float | None = None
    failure: str = ""
    blue_number: str = ""  # red: the blue invoice it reverses
    form_id: str = ""  # red: the confirmation form used
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    delivered_to: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "serial": self.serial,
            "order_no": self.order_no,
            "provider_ref": self.provider_ref,
            "seller_tax_id": self.seller_tax_id,
            "kind": "red" if self.red else "blue",
            "special": self.special,
            "status": self.status,
            "number": self.number,
            "amount": money(self.amount),
            "tax": money(self.tax),
            "total": money(self.total),
            "accepted_at": self.accepted_at,
            "issued_at": self.issued_at,
            "failure": self.failure,
            "blue_number": self.blue_number,
            "form_id": self.form_id,
            "buyer_name": self.draft.buyer_name,
            "buyer_tax_id": self.draft.buyer_tax_id,
            "lines": len(self.draft.lines),
            "warnings": self.warnings,
        }


@dataclass
class RedFormRecord:
    form_id: str  # 红字确认单编号 hzqrdbh / billNo
    uuid: str  # billUuid
    serial: str  # sqlsh / billId (our idempotency key)
    protocol: str
    seller_tax_id: str
    buyer_tax_id: str
    buyer_name: str
    blue_number: str
    reason: str
    amount: Decimal  # negative
    tax: Decimal  # negative
    lines: list[Line]
    state: str
    applied_at: float
    apply_source: str = "0"  # 0 seller, 1 buyer
    confirmed_at: float | None = None
    red_serial: str = ""  # the red invoice issued with it
    auto_order_no: str = ""  # nuonuo: issue the red invoice automatically under this orderNo
    history: list[tuple[float, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "form_id": self.form_id,
            "uuid": self.uuid,
            "serial": self.serial,
            "protocol": self.protocol,
            "state": self.state,
            "blue_number": self.blue_number,
            "amount": money(self.amount),
            "tax": money(self.tax),
            "applied_at": self.applied_at,
            "confirmed_at": self.confirmed_at,
            "red_serial": self.red_serial,
        }


# --- the state --------------------------------------------------------------------------------------


class SandboxState:
    """Everything the sandbox remembers; all public methods are thread-safe."""

    def __init__(self, config: SandboxConfig, table: TaxCodeTable | None = None) -> None:
        self.config = config
        self.table = table or TaxCodeTable.load()
        self.clock = Clock(config.clock_start)
        self.faults = FaultInjector(config.faults)
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

    # -- replay cache and tokens --

    def remember_nonce(self, app_id: str, nonce: str) -> bool:
        """False when the nonce was already seen within ``nonce_ttl_seconds``."""
        now = self.clock.now()
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

    # -- identifiers --

    def _now_prefix(self) -> str:
        return datetime.fromtimestamp(self.clock.now(), CHINA_TZ).strftime("%y%m%d%H%M%S")

    def _new_ref(self) -> str:
        return f"{self._now_prefix()}{next(self._ref_seq) % 10**8:08d}"

    def _new_number(self, seller: Seller) -> str:
        year = datetime.fromtimestamp(self.clock.now(), CHINA_TZ).strftime("%y")
        return f"{year}{seller.province[:2]:0>2}{self.config.invoice_channel[:1]}{next(self._seq):015d}"

    def _new_form_id(self, seller: Seller) -> str:
        year = datetime.fromtimestamp(self.clock.now(), CHINA_TZ).strftime("%y")
        return f"{year}{seller.province[:2]:0>2}{next(self._form_seq):016d}"

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

    def _refresh_form(self, form: RedFormRecord) -> RedFormRecord:
        expired = self.clock.now() - form.applied_at >= self.config.red_expiry_hours * 3600
        if form.state in ("02", "03") and expired:
            self._set_form_state(form, "07")
        return form

    def _set_form_state(self, form: RedFormRecord, state: str) -> None:
        form.state = state
        form.history.append((self.clock.now(), state))

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

    def snapshot(self, *, order_no: str = "", serial: str = "", protocol: str = "") -> list[dict[str, Any]]:
        with self.lock:
            self.settle_all()
            return [
                r.to_json()
                for r in self.invoices
                if (not order_no or r.order_no == order_no)
                and (not serial or r.serial == serial)
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

    def _reversed(self, blue: InvoiceRecord, *, exclude_form: str = "") -> tuple[Decimal, Decimal]:
        """What is already reversed or reserved for reversal on ``blue`` (positive numbers)."""
        amount, tax = ZERO, ZERO
        for form in self.forms.values():
            if form.blue_number != blue.number or form.form_id == exclude_form:
                continue
            red = self._by_key.get((form.protocol, form.seller_tax_id, form.red_serial)) if form.red_serial else None
            if red is not None and red.status == FAILED:
                continue
            if form.state in FORM_OPEN or red is not None:
                amount -= form.amount
                tax -= form.tax
        return amount, tax

    def _check_red(
        self, draft: Draft, *, blue_number: str, form_id: str, form_uuid: str, amount: Decimal, tax: Decimal
    ) -> RedFormRecord:
        form = None
        for f in self.forms.values():
            if (form_id and f.form_id == form_id) or (form_uuid and f.uuid == form_uuid):
                form = f
        if form is None:
            raise Refusal(NOT_FOUND, f"红字确认单 {form_id or form_uuid} 不存在", "hzqrdbh", "E9500")
        self._refresh_form(form)
        if blue_number and form.blue_number != blue_number:
            raise Refusal(RED, "红字确认单与蓝字发票不对应", "dylzfphm", "E9102")
        blue = self._by_number.get(form.blue_number)
        if blue is None or blue.seller_tax_id != draft.seller_tax_id:
            raise Refusal(NOT_FOUND, f"蓝字发票 {form.blue_number} 不存在", "dylzfphm", "E9500")
        if form.state not in ("01", "04"):
            raise Refusal(RED, f"红字确认单状态 {form.state} 不允许开具红字发票", "hzqrdbh", "E9103")
        if form.red_serial:
            raise Refusal(RED, "该红字确认单已开具红字发票", "hzqrdbh", "E9103")
        if amount != form.amount or tax != form.tax:
            raise Refusal(RED, "红字发票金额与红字确认单不一致", "hjje", "E9103")
        if draft.buyer_name != blue.draft.buyer_name:
            raise Refusal(FIELD, "红票购方名称与蓝票购方名称不符", "buyer_name", "E9117")
        if (draft.buyer_tax_id or "") != (blue.draft.buyer_tax_id or ""):
            raise Refusal(FIELD, "红票购方税号与蓝票购方税号不符", "buyer_tax_id", "E9118")
        return form

    def apply_red_form(
        self,
        *,
        protocol: str,
        serial: str,
        seller_tax_id: str,
        blue_number: str,
        reason: str,
        amount: Decimal | None,
        tax: Decimal | None,
        lines: list[Line] | None,
        apply_source: str = "0",
        buyer_tax_id: str | None = None,
        auto_order_no: str = "",
    ) -> tuple[RedFormRecord, bool]:
        """Apply for a red confirmation form; ``lines=None`` means full reversal of what remains."""
        with self.lock:
            self.settle_all()
            seller = self.seller(seller_tax_id)
            existing = self._form_by_serial.get((protocol, serial)) if serial else None
            if existing is not None:
                return existing, False
            blue = self._by_number.get(blue_number)
            if blue is None or blue.seller_tax_id != seller.tax_id or blue.status != ISSUED:
                raise Refusal(NOT_FOUND, f"蓝字发票 {blue_number} 不存在", "lzfphm", "E9500")
            if blue.red:
                raise Refusal(RED, "该发票为红字发票，不能冲红", "lzfphm", "E9522")
            if buyer_tax_id is not None and buyer_tax_id != (blue.draft.buyer_tax_id or ""):
                raise Refusal(FIELD, "购方税号与蓝字发票不符", "gmfnsrsbh", "E9118")
            done_amount, done_tax = self._reversed(blue)
            left_amount, left_tax = blue.amount - done_amount, blue.tax - done_tax
            if lines is None:
                if done_amount or done_tax:
                    raise Refusal(RED, "蓝字发票已部分冲红，请按明细申请", "detail", "E9103")
                lines = _mirror(blue.draft.lines)
            self._check_red_lines(blue, lines)
            s_amount = sum((ln.amount or ZERO for ln in lines), ZERO)
            s_tax = sum((ln.tax or ZERO for ln in lines), ZERO)
            if amount is None:
                amount, tax = s_amount, s_tax
            assert tax is not None
            if amount != s_amount or tax != s_tax:
                raise Refusal(AMOUNT, "红冲合计金额/税额不等于明细之和", "hzcxje", "E9130")
            if amount >= 0 or tax > 0:
                raise Refusal(AMOUNT, "红冲金额必须为负数", "hzcxje", "E4000")
            if -amount > left_amount or -tax > left_tax:
                raise Refusal(
                    RED, f"红冲金额超出蓝字发票可冲红金额 {money(left_amount)}/{money(left_tax)}", "hzcxje", "E9103"
                )
            if apply_source == "1":
                state = "03"
            elif blue.draft.buyer_individual or not blue.draft.buyer_tax_id:
                state = self.config.red_individual_state
            else:
                state = self.config.red_company_state
            now = self.clock.now()
            form = RedFormRecord(
                form_id=self._new_form_id(seller),
                uuid=uuid.uuid4().hex,
                serial=serial or uuid.uuid4().hex,
                protocol=protocol,
                seller_tax_id=seller.tax_id,
                buyer_tax_id=blue.draft.buyer_tax_id,
                buyer_name=blue.draft.buyer_name,
                blue_number=blue.number,
                reason=reason,
                amount=amount,
                tax=tax,
                lines=lines,
                state=state,
                applied_at=now,
                apply_source=apply_source,
                auto_order_no=auto_order_no,
                history=[(now, state)],
            )
            self.forms[form.form_id] = form
            self._form_by_serial[(protocol, form.serial)] = form
            self._auto_issue(form)
            return form, True

    def _check_red_lines(self, blue: InvoiceRecord, lines: list[Line]) -> None:
        blue_lines = _net_lines(blue.draft.lines)
        done: dict[int, Decimal] = {}
        for form in self.forms.values():
            if form.blue_number == blue.number and (form.state in FORM_OPEN or form.red_serial):
                for ln in form.lines:
                    if ln.original_line_no is not None:
                        done[ln.original_line_no] = done.get(ln.original_line_no, ZERO) - (ln.amount or ZERO)
        last = 0
        for ln in lines:
            no = ln.original_line_no
            if no is None or no not in blue_lines:
                raise Refusal(FIELD, f"蓝字发票明细序号 {no} 不存在", f"mxs[{ln.index}].lzmxxh", "E4000")
            if no <= last:
                raise Refusal(FIELD, "红冲明细必须按蓝字发票明细顺序排列", f"mxs[{ln.index}].lzmxxh", "E4000")
            last = no
            if ln.amount is None or ln.amount >= 0:
                raise Refusal(AMOUNT, "红冲明细金额必须为负数", f"mxs[{ln.index}].je", "E4000")
            if -ln.amount + done.get(no, ZERO) > blue_lines[no]:
                raise Refusal(RED, f"第{no}行红冲金额超出蓝字发票明细金额", f"mxs[{ln.index}].je", "E9103")

    def act_on_form(self, form: RedFormRecord, action: str) -> RedFormRecord:
        """Y confirm, N reject, C cancel (the applicant withdraws)."""
        with self.lock:
            self._refresh_form(form)
            state = form.state
            if action == "Y" and state in ("02", "03"):
                self._set_form_state(form, "04")
                form.confirmed_at = self.clock.now()
                self._auto_issue(form)
            elif action == "N" and state in ("02", "03"):
                self._set_form_state(form, "05" if state == "02" else "06")
            elif action == "C" and state in ("01", "02", "03", "04") and not form.red_serial:
                self._set_form_state(form, "09" if state == "04" else "08")
            else:
                raise Refusal(RED, f"红字确认单状态 {state} 不允许此操作({action})", "qrlx", "E4000")
            return form

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


def _net_lines(lines: list[Line]) -> dict[int, Decimal]:
    """Blue line number (1-based) → amount net of its discount line (discount lines have no entry)."""
    out: dict[int, Decimal] = {}
    for i, ln in enumerate(lines):
        if ln.kind == "1":
            continue
        amount = ln.amount or ZERO
        if ln.kind == "2" and i + 1 < len(lines) and lines[i + 1].kind == "1":
            amount += lines[i + 1].amount or ZERO
        out[i + 1] = amount
    return out


def _mirror(lines: list[Line]) -> list[Line]:
    """The full red mirror of blue lines, discounts netted into their line."""
    out: list[Line] = []
    for i, ln in enumerate(lines):
        if ln.kind == "1":
            continue
        amount, tax, total = ln.amount or ZERO, ln.tax or ZERO, ln.total or ZERO
        if ln.kind == "2" and i + 1 < len(lines) and lines[i + 1].kind == "1":
            d = lines[i + 1]
            amount, tax, total = amount + (d.amount or ZERO), tax + (d.tax or ZERO), total + (d.total or ZERO)
        out.append(
            Line(
                index=len(out),
                name=ln.name,
                code=ln.code,
                qty=-ln.qty if ln.qty is not None and ln.kind == "0" else None,
                price=ln.price if ln.kind == "0" else None,
                price_includes_tax=ln.price_includes_tax,
                amount=-amount,
                rate=ln.rate,
                tax=-tax,
                total=-total,
                kind="0",
                zero_rate_flag=ln.zero_rate_flag,
                original_line_no=i + 1,
            )
        )
    return out


def red_draft_from_form(blue: InvoiceRecord, form: RedFormRecord) -> Draft:
    b = blue.draft
    lines = []
    for i, ln in enumerate(form.lines):
        c = copy.copy(ln)
        c.index = i
        if c.total is None and c.amount is not None and c.tax is not None:
            c.total = c.amount + c.tax
        lines.append(c)
    return Draft(
        red=True,
        special=b.special,
        seller_tax_id=b.seller_tax_id,
        seller_name=b.seller_name,
        buyer_name=b.buyer_name,
        buyer_tax_id=b.buyer_tax_id,
        buyer_individual=b.buyer_individual,
        buyer_address=b.buyer_address,
        buyer_phone=b.buyer_phone,
        buyer_bank=b.buyer_bank,
        buyer_account=b.buyer_account,
        lines=lines,
    )
