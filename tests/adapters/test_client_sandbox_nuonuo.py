"""The real ``NuonuoProvider`` + ``TokenCache`` + ``HttpTransport`` against the local sandbox over HTTP.

The token comes from the sandbox's ``/accessToken`` through ``TokenCache`` (never a fixed token,
except where a test says so); every call goes through ``TokenCache.call`` so a token error is
refreshed once. The provider's ``now`` and the cache's clock are the sandbox's frozen clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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
    InvoiceResult,
    InvoiceStatus,
    IssueAccepted,
    RedForm,
    RedFormAction,
    RedFormState,
)
from chalicelib.taxapi.nuonuo import NuonuoProvider
from chalicelib.taxapi.tokens import TokenCache
from tests.support import orders as o
from tests.support.sandbox_clients import DELAY, NN_KEY, NN_SECRET, SELLER, admin, config, running

T = TypeVar("T")


@dataclass
class Nuonuo:
    handle: SandboxHandle
    provider: NuonuoProvider
    transport: HttpTransport
    tokens: TokenCache

    def now(self, skew: float = 0) -> datetime:
        return datetime.fromtimestamp(self.handle.state.clock.now() + skew, UTC)

    def call(
        self, build: Callable[[NuonuoProvider], HttpRequest], parse: Callable[[NuonuoProvider], Callable[..., T]]
    ) -> T:
        def attempt(token: str) -> T:
            p = self.provider.with_access_token(token)
            request = build(p)
            return parse(p)(request, self.transport.send(request))

        return self.tokens.call(attempt)

    def issue(self, order: InvoiceOrder, serial: str) -> IssueAccepted:
        return self.call(lambda p: p.build_issue(order, serial, self.now()), lambda p: p.parse_issue)

    def query(self, serial: str) -> InvoiceResult:
        results = self.call(lambda p: p.build_query(self.now(), serials=(serial,)), lambda p: p.parse_query)
        assert [r.serial for r in results] == [serial]
        return results[0]

    def apply(self, serial: str, red: InvoiceOrder) -> RedForm:
        req = o.red_form_request(serial, red)
        return self.call(lambda p: p.build_red_form_apply(req, self.now()), lambda p: p.parse_red_form_apply)

    def confirm(self, form_id: str, action: RedFormAction) -> RedForm:
        return self.call(
            lambda p: p.build_red_form_confirm(form_id, action, self.now()), lambda p: p.parse_red_form_confirm
        )

    def form(self, form_id: str) -> RedForm:
        return self.call(lambda p: p.build_red_form_query(form_id, self.now()), lambda p: p.parse_red_form_query)

    def issue_red(self, red: InvoiceOrder, serial: str) -> IssueAccepted:
        return self.call(lambda p: p.build_issue_red(red, serial, self.now()), lambda p: p.parse_issue_red)


def nuonuo_client(
    handle: SandboxHandle,
    *,
    app_secret: str = NN_SECRET,
    access_token: str | None = None,
    read_timeout: float = 5.0,
    token_clock: Callable[[], datetime] | None = None,
) -> Nuonuo:
    values = {"app_key": NN_KEY, "app_secret": app_secret}
    if access_token:
        values["access_token"] = access_token
    creds = Credentials(values)
    transport = HttpTransport(connect_timeout=2.0, read_timeout=read_timeout, retries=0)
    provider = NuonuoProvider(creds, handle.url, seller_tax_id=SELLER)
    client = Nuonuo(handle, provider, transport, None)  # type: ignore[arg-type]
    client.tokens = TokenCache(
        creds, transport.send, token_url=f"{handle.url}/accessToken", clock=token_clock or client.now
    )
    return client


def advance(handle: SandboxHandle, seconds: float) -> None:
    admin(handle.url, "POST", "/admin/clock", {"advance": seconds})


def faults(handle: SandboxHandle, **settings: Any) -> None:
    admin(handle.url, "POST", "/admin/faults", settings)


def count(handle: SandboxHandle, order_no: str, kind: str = "") -> int:
    path = f"/admin/invoices/count?order_no={order_no}&protocol=nuonuo" + (f"&kind={kind}" if kind else "")
    return int(admin(handle.url, "GET", path)["count"])


@pytest.fixture()
def sandbox() -> Iterator[SandboxHandle]:
    with running(config()) as handle:
        yield handle


@pytest.fixture()
def nn(sandbox: SandboxHandle) -> Nuonuo:
    return nuonuo_client(sandbox)


def issued_blue(nn: Nuonuo, blue: InvoiceOrder, serial: str) -> InvoiceResult:
    nn.issue(blue, serial)
    advance(nn.handle, DELAY)
    res = nn.query(serial)
    assert res.status is InvoiceStatus.ISSUED, res
    return res


# --- tokens ----------------------------------------------------------------------------------------


def test_token_is_obtained_from_the_sandbox_and_reused(nn: Nuonuo) -> None:
    nn.issue(o.order(order_id="T1"), "NN-T1")
    nn.query("NN-T1")
    assert nn.tokens.fetches == 1
    assert nn.tokens.expires_at is not None
    assert (nn.tokens.expires_at - nn.now()).total_seconds() == 86400  # the sandbox's expires_in


def test_token_near_expiry_is_refreshed_before_use(nn: Nuonuo) -> None:
    nn.issue(o.order(order_id="T2"), "NN-T2")
    advance(nn.handle, 86400 * 0.95)  # 5 % of the lifetime left: below the 10 % refresh ratio
    assert nn.query("NN-T2").status is InvoiceStatus.ISSUED
    assert nn.tokens.fetches == 2


def test_expired_token_is_refreshed_once_on_the_token_error(sandbox: SandboxHandle) -> None:
    frozen = datetime.fromtimestamp(sandbox.state.clock.now(), UTC)
    # the cache's clock does not move: it believes its token is fresh; the sandbox says 070306
    nn = nuonuo_client(sandbox, token_clock=lambda: frozen)
    nn.issue(o.order(order_id="T3"), "NN-T3")
    advance(sandbox, 86400 + 1)
    assert nn.query("NN-T3").status is InvoiceStatus.ISSUED
    assert nn.tokens.fetches == 2
    # a second expiry right away: the forced refresh is rate-limited (one a minute) → Auth, not a loop
    advance(sandbox, 86400 + 1)
    with pytest.raises(AuthTaxError):
        nn.query("NN-T3")
    assert nn.tokens.fetches == 2


def test_wrong_app_secret_is_auth_error_at_the_token_endpoint(sandbox: SandboxHandle) -> None:
    bad = nuonuo_client(sandbox, app_secret="WRONG-SECRET")
    with pytest.raises(AuthTaxError) as caught:
        bad.issue(o.order(order_id="X1"), "NN-X1")
    assert caught.value.provider_code == "070101"
    assert count(sandbox, "NN-X1") == 0


def test_wrong_app_secret_signature_is_auth_error(sandbox: SandboxHandle, nn: Nuonuo) -> None:
    token = nn.tokens.get()  # a genuine token, then requests signed with the wrong secret
    bad = nuonuo_client(sandbox, app_secret="WRONG-SECRET", access_token=token)
    with pytest.raises(AuthTaxError) as caught:
        bad.issue(o.order(order_id="X2"), "NN-X2")
    assert caught.value.provider_code == "070601"
    assert count(sandbox, "NN-X2") == 0


@pytest.mark.parametrize("skew", [-600, 600], ids=["10-min-behind", "10-min-ahead"])
def test_stale_timestamp_is_auth_error(nn: Nuonuo, skew: int) -> None:
    with pytest.raises(AuthTaxError) as caught:
        nn.call(lambda p: p.build_issue(o.order(order_id="X3"), "NN-X3", nn.now(skew)), lambda p: p.parse_issue)
    assert caught.value.provider_code == "070601"
    assert count(nn.handle, "NN-X3") == 0


# --- blue invoices ---------------------------------------------------------------------------------


def test_blue_issue_is_pending_then_issued_with_a_20_digit_number(nn: Nuonuo) -> None:
    blue = o.order([o.line("100.00"), o.line("50.00", "0.03", code=o.SOFTWARE_DEV, name="软件开发")], order_id="B1")
    accepted = nn.issue(blue, "NN-B1")
    assert accepted.serial == "NN-B1" and accepted.provider_ref
    pending = nn.query("NN-B1")
    assert pending.status is InvoiceStatus.PENDING and pending.invoice_number is None
    advance(nn.handle, DELAY)
    done = nn.query("NN-B1")
    assert done.status is InvoiceStatus.ISSUED and done.provider_status == "2"
    assert done.invoice_number is not None and re.fullmatch(r"\d{20}", done.invoice_number)
    assert done.total_amount == Decimal("150.00") and done.total_tax == Decimal("7.50")
    assert done.issued_at is not None and done.issued_at.utcoffset() is not None
    assert done.issued_at.timestamp() == nn.now().timestamp()


@pytest.mark.parametrize("settled", [False, True], ids=["pending", "issued"])
def test_reissuing_a_serial_is_duplicate_carrying_the_existing_invoice(nn: Nuonuo, settled: bool) -> None:
    accepted = nn.issue(o.order(order_id="D1"), "NN-D1")
    if settled:
        advance(nn.handle, DELAY)
    with pytest.raises(DuplicateTaxError) as caught:
        nn.issue(o.order([o.line("999.00")], order_id="D1"), "NN-D1")
    assert caught.value.provider_code == "E9106" and caught.value.field == "order.orderNo"
    assert caught.value.existing == accepted.provider_ref  # Nuonuo's invoiceSerialNum of the first
    assert count(nn.handle, "NN-D1") == 1


def test_credit_is_the_invoice_stock_count(nn: Nuonuo) -> None:
    credit = nn.call(lambda p: p.build_query_credit(nn.now()), lambda p: p.parse_query_credit)
    assert credit.used == 0 and credit.total == credit.remaining and credit.remaining >= 0


def test_tax_codes_and_void_are_unsupported(nn: Nuonuo) -> None:
    with pytest.raises(UnsupportedOperation):
        nn.provider.build_fetch_tax_codes(nn.now())
    assert nn.provider.capabilities.void is False
    accepted = nn.issue(o.order(order_id="V1"), "NN-V1")
    advance(nn.handle, DELAY)
    number = nn.query("NN-V1").invoice_number
    assert number and accepted.provider_ref
    # the call exists for completeness; the platform refuses it for 数电票 (E9999, a permanent refusal)
    with pytest.raises(PermanentTaxError) as caught:
        nn.call(lambda p: p.build_void(number, accepted.provider_ref or "", nn.now()), lambda p: p.parse_void)
    assert caught.value.provider_code == "E9999"
    assert nn.query("NN-V1").status is InvoiceStatus.ISSUED


# --- red flow: Nuonuo issues the red invoice itself under the form serial --------------------------


def _red_for(nn: Nuonuo, blue: InvoiceOrder, serial: str) -> InvoiceOrder:
    res = issued_blue(nn, blue, serial)
    assert res.invoice_number and res.issued_at
    return o.red_mirror(blue, original_invoice_number=res.invoice_number, original_issued_at=res.issued_at)


def test_red_flow_individual_buyer(nn: Nuonuo) -> None:
    blue = o.order([o.line("80.00"), o.line("20.00")], order_id="R1", buyer=o.individual_buyer())
    red = _red_for(nn, blue, "NN-R1")
    applied = nn.apply("NN-R1-F", red)
    assert applied.form_id == "NN-R1-F" and applied.provider_status == "15"  # 申请中 until queried
    assert applied.red_amount == Decimal("-100.00") and applied.red_tax == Decimal("-6.00")
    form = nn.form("NN-R1-F")
    assert form.state is RedFormState.NO_CONFIRMATION_NEEDED

    red = red.model_copy(update={"red_form_id": form.form_id})
    with pytest.raises(DuplicateTaxError):  # already issued by Nuonuo under the form serial
        nn.issue_red(red, "NN-R1-F")
    assert nn.query("NN-R1-F").status is InvoiceStatus.PENDING
    advance(nn.handle, DELAY)
    done = nn.query("NN-R1-F")
    assert (
        done.status is InvoiceStatus.ISSUED
        and done.invoice_number
        and done.invoice_number != red.original_invoice_number
    )
    assert done.total_amount == Decimal("-100.00") and done.total_tax == Decimal("-6.00")
    assert count(nn.handle, "NN-R1-F", "red") == 1


def test_red_flow_company_buyer_confirms(nn: Nuonuo) -> None:
    red = _red_for(nn, o.order(order_id="R2"), "NN-R2")
    nn.apply("NN-R2-F", red)
    assert nn.form("NN-R2-F").state is RedFormState.WAITING_BUYER
    assert count(nn.handle, "NN-R2-F") == 0
    assert nn.confirm("NN-R2-F", RedFormAction.CONFIRM).state is RedFormState.CONFIRMED
    assert nn.form("NN-R2-F").state is RedFormState.CONFIRMED
    with pytest.raises(DuplicateTaxError):
        nn.issue_red(red.model_copy(update={"red_form_id": "NN-R2-F"}), "NN-R2-F")
    advance(nn.handle, DELAY)
    assert nn.query("NN-R2-F").status is InvoiceStatus.ISSUED
    assert count(nn.handle, "NN-R2-F", "red") == 1


def test_unconfirmed_form_expires_after_72_hours_and_red_is_refused(nn: Nuonuo) -> None:
    red = _red_for(nn, o.order(order_id="R3"), "NN-R3")
    nn.apply("NN-R3-F", red)
    advance(nn.handle, 72 * 3600 + 1)
    assert nn.form("NN-R3-F").state is RedFormState.EXPIRED
    with pytest.raises(PermanentTaxError) as caught:
        nn.issue_red(red.model_copy(update={"red_form_id": "NN-R3-F"}), "NN-R3-F")
    assert not isinstance(caught.value, DuplicateTaxError)
    assert count(nn.handle, "NN-R3-F") == 0


# --- faults ----------------------------------------------------------------------------------------


def test_busy_is_retryable(nn: Nuonuo) -> None:
    nn.tokens.get()
    faults(nn.handle, busy_pct=100)
    with pytest.raises(RetryableTaxError) as caught:
        nn.issue(o.order(order_id="F1"), "NN-F1")
    assert caught.value.provider_code == "E9999"
    assert count(nn.handle, "NN-F1") == 0


def test_5xx_is_retryable(nn: Nuonuo) -> None:
    faults(nn.handle, error_5xx_pct=100)
    with pytest.raises(RetryableTaxError):
        nn.issue(o.order(order_id="F2"), "NN-F2")
    assert count(nn.handle, "NN-F2") == 0


def test_latency_above_the_read_timeout_is_ambiguous(sandbox: SandboxHandle) -> None:
    nn = nuonuo_client(sandbox, read_timeout=0.3)
    faults(sandbox, latency_ms=1200, only=["requestBillingNew"])
    with pytest.raises(AmbiguousTaxError):
        nn.issue(o.order(order_id="F3"), "NN-F3")


@pytest.mark.parametrize("mode", ["close", "sleep"])
def test_timeout_after_commit_is_ambiguous_and_the_work_was_done(sandbox: SandboxHandle, mode: str) -> None:
    nn = nuonuo_client(sandbox, read_timeout=0.5)
    faults(
        sandbox, timeout_after_commit_pct=100, timeout_mode=mode, timeout_sleep_seconds=1.5, only=["requestBillingNew"]
    )
    blue = o.order(order_id="F4")
    with pytest.raises(AmbiguousTaxError):
        nn.issue(blue, "NN-F4")
    assert nn.query("NN-F4").status is InvoiceStatus.PENDING
    faults(sandbox, timeout_after_commit_pct=0)
    with pytest.raises(DuplicateTaxError):
        nn.issue(blue, "NN-F4")
    assert count(sandbox, "NN-F4") == 1


def test_garbled_reply_is_ambiguous_and_the_work_was_done(nn: Nuonuo) -> None:
    faults(nn.handle, garbled_pct=100, only=["requestBillingNew"])
    blue = o.order(order_id="F5")
    with pytest.raises(AmbiguousTaxError):
        nn.issue(blue, "NN-F5")
    assert nn.query("NN-F5").status is InvoiceStatus.PENDING
    faults(nn.handle, garbled_pct=0)
    with pytest.raises(DuplicateTaxError):
        nn.issue(blue, "NN-F5")
    assert count(nn.handle, "NN-F5") == 1
