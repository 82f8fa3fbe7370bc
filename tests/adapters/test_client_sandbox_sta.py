"""The real ``StaProvider`` + real ``HttpTransport`` against the local sandbox over loopback HTTP.

Nothing here builds wire bytes by hand: every request is the provider's, every reply is parsed by the
provider, so a disagreement between client and sandbox on ``docs/tax-protocol.md`` fails here. The
sandbox clock is frozen at ``T0`` and advanced through ``/admin/clock``; the provider's ``now`` is
the sandbox's clock (the ±300 s window is checked against it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from chalicelib.adapters.http import HttpTransport
from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    UnsupportedOperation,
)
from chalicelib.domain.models import InvoiceOrder
from chalicelib.sandbox import SandboxHandle
from chalicelib.taxapi.base import (
    Credentials,
    HttpRequest,
    HttpResponse,
    InvoiceResult,
    InvoiceStatus,
    RedForm,
    RedFormAction,
    RedFormState,
)
from chalicelib.taxapi.sta import StaProvider
from tests.support import orders as o
from tests.support.sandbox_clients import DELAY, SELLER, SIGN_KEY, SM4_KEY_HEX, STA_APP, admin, config, running

T = TypeVar("T")


@dataclass
class Sta:
    """One store's STA client: provider + transport + the sandbox's clock as ``now``."""

    handle: SandboxHandle
    provider: StaProvider
    transport: HttpTransport

    def now(self, skew: float = 0) -> datetime:
        return datetime.fromtimestamp(self.handle.state.clock.now() + skew, UTC)

    def call(self, request: HttpRequest, parse: Callable[[HttpRequest, HttpResponse], T]) -> T:
        return parse(request, self.transport.send(request))

    # operations
    def issue(self, order: InvoiceOrder, serial: str) -> Any:
        p = self.provider
        return self.call(p.build_issue(order, serial, self.now()), p.parse_issue)

    def query(self, serial: str) -> InvoiceResult:
        p = self.provider
        results = self.call(p.build_query(self.now(), serials=(serial,)), p.parse_query)
        assert [r.serial for r in results] == [serial]
        return results[0]

    def apply(self, serial: str, red: InvoiceOrder) -> RedForm:
        p = self.provider
        return self.call(p.build_red_form_apply(o.red_form_request(serial, red), self.now()), p.parse_red_form_apply)

    def confirm(self, form_id: str, action: RedFormAction) -> RedForm:
        p = self.provider
        return self.call(p.build_red_form_confirm(form_id, action, self.now()), p.parse_red_form_confirm)

    def form(self, form_id: str) -> RedForm:
        p = self.provider
        return self.call(p.build_red_form_query(form_id, self.now()), p.parse_red_form_query)

    def issue_red(self, red: InvoiceOrder, serial: str) -> Any:
        p = self.provider
        return self.call(p.build_issue_red(red, serial, self.now()), p.parse_issue_red)


def sta_client(
    handle: SandboxHandle, *, sign_key: str = SIGN_KEY, read_timeout: float = 5.0, app_id: str = STA_APP
) -> Sta:
    creds = Credentials({"app_id": app_id, "sm4_key": SM4_KEY_HEX, "sign_key": sign_key})
    provider = StaProvider(creds, handle.url, seller_tax_id=SELLER, options={"sandbox": "1"})
    return Sta(handle, provider, HttpTransport(connect_timeout=2.0, read_timeout=read_timeout, retries=0))


def advance(handle: SandboxHandle, seconds: float) -> None:
    admin(handle.url, "POST", "/admin/clock", {"advance": seconds})


def faults(handle: SandboxHandle, **settings: Any) -> None:
    admin(handle.url, "POST", "/admin/faults", settings)


def count(handle: SandboxHandle, order_no: str, kind: str = "") -> int:
    path = f"/admin/invoices/count?order_no={order_no}&protocol=sta" + (f"&kind={kind}" if kind else "")
    return int(admin(handle.url, "GET", path)["count"])


@pytest.fixture()
def sandbox() -> Iterator[SandboxHandle]:
    with running(config()) as handle:
        yield handle


@pytest.fixture()
def sta(sandbox: SandboxHandle) -> Sta:
    return sta_client(sandbox)


def issued_blue(sta: Sta, blue: InvoiceOrder, serial: str) -> InvoiceResult:
    accepted = sta.issue(blue, serial)
    assert accepted.serial == serial
    advance(sta.handle, DELAY)
    res = sta.query(serial)
    assert res.status is InvoiceStatus.ISSUED, res
    return res


# --- blue invoices ---------------------------------------------------------------------------------


def test_blue_issue_is_pending_then_issued_with_a_20_digit_number(sta: Sta) -> None:
    blue = o.order([o.line("100.00"), o.line("50.00", "0.03", code=o.SOFTWARE_DEV, name="软件开发")], order_id="B1")
    accepted = sta.issue(blue, "SER-B1")
    assert accepted.serial == "SER-B1" and accepted.provider_ref and re.fullmatch(r"\d{20}", accepted.provider_ref)

    pending = sta.query("SER-B1")
    assert pending.status is InvoiceStatus.PENDING and pending.invoice_number is None
    assert pending.order_no == "B1" and pending.provider_status == "01"

    advance(sta.handle, DELAY)
    done = sta.query("SER-B1")
    assert done.status is InvoiceStatus.ISSUED and done.provider_status == "02"
    assert done.invoice_number is not None and re.fullmatch(r"\d{20}", done.invoice_number)
    assert done.total_amount == Decimal("150.00") and done.total_tax == Decimal("7.50")
    assert done.issued_at == datetime(2026, 1, 1, 8, 1, tzinfo=timezone_cn())
    assert done.pdf_url and done.pdf_url.endswith(f"/files/{done.invoice_number}.pdf")

    # query by order number finds the same invoice
    by_order = sta.call(sta.provider.build_query(sta.now(), order_nos=("B1",)), sta.provider.parse_query)
    assert [r.invoice_number for r in by_order] == [done.invoice_number]


def timezone_cn() -> Any:
    return datetime.fromisoformat("2026-01-01T08:00:00+08:00").tzinfo


@pytest.mark.parametrize("settled", [False, True], ids=["pending", "issued"])
def test_reissuing_a_serial_is_duplicate_carrying_the_existing_invoice(sta: Sta, settled: bool) -> None:
    blue = o.order(order_id="D1")
    sta.issue(blue, "SER-D1")
    if settled:
        advance(sta.handle, DELAY)
    changed = o.order([o.line("999.00")], order_id="D1")  # whatever the new payload says
    with pytest.raises(DuplicateTaxError) as caught:
        sta.issue(changed, "SER-D1")
    assert caught.value.provider_code == "E4001"
    if settled:
        number = sta.query("SER-D1").invoice_number
        assert number and caught.value.existing == number
    else:
        assert caught.value.existing == "SER-D1"  # fphm is empty while pending: the serial
    assert count(sta.handle, "D1") == 1


def test_credit_line_reflects_the_issued_amount(sta: Sta) -> None:
    before = sta.call(sta.provider.build_query_credit(sta.now()), sta.provider.parse_query_credit)
    assert (before.total, before.used, before.remaining) == (Decimal("10000.00"), Decimal(0), Decimal("10000.00"))
    sta.issue(o.order([o.line("123.45")], order_id="C1"), "SER-C1")
    after = sta.call(sta.provider.build_query_credit(sta.now()), sta.provider.parse_query_credit)
    assert after.used == Decimal("123.45") and after.remaining == Decimal("9876.55") and after.total == before.total


def test_tax_codes_are_the_sandbox_table(sta: Sta) -> None:
    entries = sta.call(sta.provider.build_fetch_tax_codes(sta.now()), sta.provider.parse_fetch_tax_codes)
    by_code = {e.code: e for e in entries}
    assert o.CATERING in by_code
    catering = by_code[o.CATERING]
    assert catering.short_name == "餐饮服务" and Decimal("0.06") in catering.rates
    assert all(re.fullmatch(r"\d{19}", e.code) and e.rates for e in entries)
    shared = {c.code for c in o.shared_codes()}
    assert shared <= set(by_code)


def test_void_is_unsupported_and_the_capability_says_so(sta: Sta) -> None:
    assert sta.provider.capabilities.void is False
    res = issued_blue(sta, o.order(order_id="V1"), "SER-V1")
    assert res.invoice_number
    with pytest.raises(UnsupportedOperation) as caught:
        sta.call(sta.provider.build_void(res.invoice_number, "VOID-1", sta.now()), sta.provider.parse_void)
    assert caught.value.provider_code == "E5001"


# --- red flow --------------------------------------------------------------------------------------


def _red_for(sta: Sta, blue: InvoiceOrder, serial: str) -> InvoiceOrder:
    res = issued_blue(sta, blue, serial)
    assert res.invoice_number and res.issued_at
    return o.red_mirror(blue, original_invoice_number=res.invoice_number, original_issued_at=res.issued_at)


def test_red_flow_individual_buyer_form_needs_no_confirmation(sta: Sta) -> None:
    blue = o.order([o.line("80.00"), o.line("20.00")], order_id="R1", buyer=o.individual_buyer())
    red = _red_for(sta, blue, "SER-R1")
    form = sta.apply("FORM-R1", red)
    assert form.state is RedFormState.NO_CONFIRMATION_NEEDED and form.state.allows_red_invoice
    assert form.original_invoice_number == red.original_invoice_number
    # the QDHZQRDSQ reply carries no amounts (tax-protocol.md: hzqrdbh, hzqrxxztdm, lzfphm)
    assert sta.apply("FORM-R1", red).form_id == form.form_id  # a repeated form serial: the same form

    red = red.model_copy(update={"red_form_id": form.form_id})
    accepted = sta.issue_red(red, "SER-R1-RED")
    assert accepted.serial == "SER-R1-RED"
    assert sta.query("SER-R1-RED").status is InvoiceStatus.PENDING
    advance(sta.handle, DELAY)
    done = sta.query("SER-R1-RED")
    assert (
        done.status is InvoiceStatus.ISSUED
        and done.invoice_number
        and done.invoice_number != red.original_invoice_number
    )
    assert done.total_amount == Decimal("-100.00") and done.total_tax == Decimal("-6.00")
    assert count(sta.handle, "R1", "red") == 1 and count(sta.handle, "R1", "blue") == 1

    with pytest.raises(DuplicateTaxError):  # the same red serial again
        sta.issue_red(red, "SER-R1-RED")
    with pytest.raises(PermanentTaxError) as caught:  # a second red invoice on a used form
        sta.issue_red(red, "SER-R1-RED2")
    assert caught.value.provider_code == "E1005"


def test_red_flow_company_buyer_waits_for_confirmation(sta: Sta) -> None:
    blue = o.order(order_id="R2")
    red = _red_for(sta, blue, "SER-R2")
    form = sta.apply("FORM-R2", red)
    assert form.state is RedFormState.WAITING_BUYER
    red = red.model_copy(update={"red_form_id": form.form_id})
    with pytest.raises(PermanentTaxError) as early:
        sta.issue_red(red, "SER-R2-EARLY")
    assert early.value.provider_code == "E1005"

    confirmed = sta.confirm(form.form_id, RedFormAction.CONFIRM)
    assert confirmed.state is RedFormState.CONFIRMED
    assert sta.form(form.form_id).state is RedFormState.CONFIRMED
    sta.issue_red(red, "SER-R2-RED")
    advance(sta.handle, DELAY)
    assert sta.query("SER-R2-RED").status is InvoiceStatus.ISSUED
    assert count(sta.handle, "R2", "red") == 1


def test_unconfirmed_form_expires_after_72_hours_and_red_is_refused(sta: Sta) -> None:
    blue = o.order(order_id="R3")
    red = _red_for(sta, blue, "SER-R3")
    form = sta.apply("FORM-R3", red)
    assert form.state is RedFormState.WAITING_BUYER
    advance(sta.handle, 72 * 3600 - 60)
    assert sta.form(form.form_id).state is RedFormState.WAITING_BUYER
    advance(sta.handle, 61)
    expired = sta.form(form.form_id)
    assert expired.state is RedFormState.EXPIRED and not expired.state.allows_red_invoice
    with pytest.raises(PermanentTaxError) as caught:
        sta.issue_red(red.model_copy(update={"red_form_id": form.form_id}), "SER-R3-RED")
    assert caught.value.provider_code == "E1005"
    assert count(sta.handle, "R3", "red") == 0


# --- authentication --------------------------------------------------------------------------------


def test_wrong_sign_key_is_auth_error(sandbox: SandboxHandle) -> None:
    bad = sta_client(sandbox, sign_key="not-the-sign-key")
    with pytest.raises(AuthTaxError) as caught:
        bad.issue(o.order(order_id="X1"), "SER-X1")
    assert caught.value.provider_code == "E2002"
    assert count(sandbox, "X1") == 0


def test_unknown_app_id_is_auth_error(sandbox: SandboxHandle) -> None:
    bad = sta_client(sandbox, app_id="NO-SUCH-APP")
    with pytest.raises(AuthTaxError) as caught:
        bad.issue(o.order(order_id="X2"), "SER-X2")
    assert caught.value.provider_code == "E2001"


@pytest.mark.parametrize("skew", [-600, 600], ids=["10-min-behind", "10-min-ahead"])
def test_stale_timestamp_is_auth_error(sta: Sta, skew: int) -> None:
    request = sta.provider.build_issue(o.order(order_id="X3"), "SER-X3", sta.now(skew))
    with pytest.raises(AuthTaxError) as caught:
        sta.call(request, sta.provider.parse_issue)
    assert caught.value.provider_code == "E2003"
    assert count(sta.handle, "X3") == 0


def test_replayed_request_is_auth_error(sta: Sta) -> None:
    request = sta.provider.build_query_credit(sta.now())
    sta.call(request, sta.provider.parse_query_credit)
    with pytest.raises(AuthTaxError) as caught:  # same nonce within 600 s
        sta.call(request, sta.provider.parse_query_credit)
    assert caught.value.provider_code == "E2003"


# --- faults (100 %, seeded) ------------------------------------------------------------------------


def test_busy_is_retryable_and_nothing_is_done(sta: Sta) -> None:
    faults(sta.handle, busy_pct=100)
    with pytest.raises(RetryableTaxError) as caught:
        sta.issue(o.order(order_id="F1"), "SER-F1")
    assert caught.value.provider_code == "E3001"
    assert count(sta.handle, "F1") == 0


def test_5xx_is_retryable_and_nothing_is_done(sta: Sta) -> None:
    faults(sta.handle, error_5xx_pct=100)
    with pytest.raises(RetryableTaxError) as caught:
        sta.issue(o.order(order_id="F2"), "SER-F2")
    assert caught.value.provider_code in ("HTTP500", "HTTP502", "HTTP503")
    assert count(sta.handle, "F2") == 0


def test_latency_above_the_read_timeout_is_ambiguous(sandbox: SandboxHandle) -> None:
    slow = sta_client(sandbox, read_timeout=0.3)
    faults(sandbox, latency_ms=1200, only=["QDFPSC"])
    with pytest.raises(AmbiguousTaxError):
        slow.issue(o.order(order_id="F3"), "SER-F3")


@pytest.mark.parametrize("mode", ["close", "sleep"])
def test_timeout_after_commit_is_ambiguous_and_the_work_was_done(sandbox: SandboxHandle, mode: str) -> None:
    sta = sta_client(sandbox, read_timeout=0.5)
    faults(sandbox, timeout_after_commit_pct=100, timeout_mode=mode, timeout_sleep_seconds=1.5, only=["QDFPSC"])
    blue = o.order(order_id="F4")
    with pytest.raises(AmbiguousTaxError):
        sta.issue(blue, "SER-F4")
    found = sta.query("SER-F4")  # query by serial: the invoice exists
    assert found.status is InvoiceStatus.PENDING and found.order_no == "F4"
    faults(sandbox, timeout_after_commit_pct=0)
    with pytest.raises(DuplicateTaxError) as caught:  # re-issuing the same serial after the ambiguity
        sta.issue(blue, "SER-F4")
    assert caught.value.existing == "SER-F4"
    assert count(sandbox, "F4") == 1


@pytest.mark.parametrize("mode", ["signature", "decrypt", "json"])
def test_garbled_reply_is_ambiguous_and_the_work_was_done(sta: Sta, mode: str) -> None:
    faults(sta.handle, garbled_pct=100, garble_mode=mode, only=["QDFPSC"])
    blue = o.order(order_id="F5")
    with pytest.raises(AmbiguousTaxError):
        sta.issue(blue, "SER-F5")
    assert sta.query("SER-F5").status is InvoiceStatus.PENDING
    faults(sta.handle, garbled_pct=0)
    with pytest.raises(DuplicateTaxError):
        sta.issue(blue, "SER-F5")
    assert count(sta.handle, "F5") == 1


def test_issue_failure_fault_ends_failed_with_a_reason(sta: Sta) -> None:
    faults(sta.handle, issue_fail_pct=100)
    sta.issue(o.order(order_id="F6"), "SER-F6")
    advance(sta.handle, DELAY)
    res = sta.query("SER-F6")
    assert res.status is InvoiceStatus.FAILED and res.failure_reason and res.provider_status == "03"


def test_now_is_checked_against_the_sandbox_clock_not_wall_time(sta: Sta) -> None:
    # the sandbox clock is frozen at 2026-01-01; wall time is far from it
    wall = datetime.now(UTC)
    if abs((wall - sta.now()).total_seconds()) <= 300:
        pytest.skip("wall clock happens to be within the window")
    request = sta.provider.build_query_credit(wall + timedelta(seconds=0))
    with pytest.raises(AuthTaxError):
        sta.call(request, sta.provider.parse_query_credit)
