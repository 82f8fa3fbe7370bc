"""The sandbox's red confirmation forms (红字发票信息确认单): apply, confirm / reject / cancel, expiry,
and the checks a red invoice must pass against its form and its blue invoice.

:class:`RedFormDesk` is a mixin of :class:`chalicelib.sandbox.state.SandboxState`: it works on the
state's ledger (forms by id and by serial, blue invoices by number) under the state's lock, and
leaves issuing to the state. Amounts already reversed or reserved on a blue invoice (Σ red ≤ blue,
per invoice and per line) are checked here; an unconfirmed form expires after ``red_expiry_hours``,
applied lazily whenever a form is read.
"""

# ruff: noqa: PLR0912 - rule checks are long flat lists of independent conditions

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from chalicelib.sandbox.clock import CHINA_TZ, Clock
from chalicelib.sandbox.config import SandboxConfig, Seller
from chalicelib.sandbox.draft import RED, Draft, Line
from chalicelib.sandbox.records import (
    AMOUNT,
    FAILED,
    FIELD,
    FORM_OPEN,
    ISSUED,
    NOT_FOUND,
    ZERO,
    InvoiceRecord,
    RedFormRecord,
    Refusal,
    money,
)


class RedFormDesk:
    """Red forms on the ledger of :class:`~chalicelib.sandbox.state.SandboxState` (see the module)."""

    # The state's ledger, set up by ``SandboxState.reset``.
    config: SandboxConfig
    clock: Clock
    lock: threading.RLock
    forms: dict[str, RedFormRecord]
    _form_by_serial: dict[tuple[str, str], RedFormRecord]
    _by_key: dict[tuple[str, str, str], InvoiceRecord]
    _by_number: dict[str, InvoiceRecord]
    _form_seq: itertools.count[int]

    if TYPE_CHECKING:  # provided by SandboxState

        def settle_all(self) -> None: ...

        def seller(self, tax_id: str) -> Seller: ...

        def _auto_issue(self, form: RedFormRecord) -> None: ...

    def _new_form_id(self, seller: Seller) -> str:
        year = datetime.fromtimestamp(self.clock.now(), CHINA_TZ).strftime("%y")
        return f"{year}{seller.province[:2]:0>2}{next(self._form_seq):016d}"

    def _refresh_form(self, form: RedFormRecord) -> RedFormRecord:
        expired = self.clock.now() - form.applied_at >= self.config.red_expiry_hours * 3600
        if form.state in ("02", "03") and expired:
            self._set_form_state(form, "07")
        return form

    def _set_form_state(self, form: RedFormRecord, state: str) -> None:
        form.state = state
        form.history.append((self.clock.now(), state))

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
