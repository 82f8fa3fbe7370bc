"""NuonuoProvider: payload mapping, reply parsing, status tables and the red confirmation flow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.errors import (
    AmbiguousTaxError,
    ConfigurationError,
    PermanentTaxError,
    UnsupportedOperation,
)
from chalicelib.domain.models import (
    BuyerType,
    InvoiceBuyer,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    Party,
    RedReason,
    ZeroRateFlag,
)
from chalicelib.taxapi import nuonuo_mapping as m
from chalicelib.taxapi.base import (
    Credentials,
    HttpRequest,
    HttpResponse,
    InvoiceStatus,
    RedFormAction,
    RedFormRequest,
    RedFormState,
)
from chalicelib.taxapi.nuonuo import SANDBOX_ENDPOINT, SANDBOX_SELLER_TAX_ID, NuonuoProvider

NOW = datetime(2024, 5, 8, 2, 30, 0, tzinfo=UTC)  # 10:30:00 in China
CREDS = Credentials({"app_key": "SD63236305", "app_secret": "SDDED2523BED4643"})
TOKEN = "tok-0123456789abcdef"
SELLER = Party(name="诺诺测试销方", tax_id=SANDBOX_SELLER_TAX_ID, address="杭州市西湖区", phone="0571-88888888")


def provider(**options: str) -> NuonuoProvider:
    return NuonuoProvider(
        CREDS,
        SANDBOX_ENDPOINT,
        seller_tax_id=SANDBOX_SELLER_TAX_ID,
        access_token=TOKEN,
        senid_factory=lambda: "0123456789abcdef0123456789abcdef",
        nonce_factory=lambda: "12345678",
        options=options,
    )


def line(name: str, amount: str, tax: str, rate: str = "0.13", **kw: Any) -> InvoiceLine:
    a, t = Decimal(amount), Decimal(tax)
    return InvoiceLine(
        name=name,
        short_name=kw.pop("short_name", "日用杂品"),
        tax_code=kw.pop("tax_code", "1060512990000000000"),
        tax_rate=Decimal(rate),
        amount=a,
        tax=t,
        total=a + t,
        **kw,
    )


def three_line_order(**kw: Any) -> InvoiceOrder:
    lines = (
        line("保温杯", "100.00", "13.00", quantity=Decimal(2), unit="个", unit_price=Decimal("50"), sku="CUP-1"),
        line("毛巾", "20.00", "2.60", quantity=Decimal(1), unit="条", unit_price=Decimal("20")),
        line("运费", "9.43", "0.57", rate="0.06", short_name="物流辅助服务", tax_code="3040802010200000000"),
    )
    values: dict[str, Any] = {
        "order_key": "shop-1:A1001",
        "store_id": "shop-1",
        "order_id": "A1001",
        "seller": SELLER,
        "buyer": InvoiceBuyer(name="个人", type=BuyerType.INDIVIDUAL, email="buyer@example.com"),
        "lines": lines,
        "total_amount": Decimal("129.43"),
        "total_tax": Decimal("16.17"),
        "total": Decimal("145.60"),
        "issuer": "张三",
        "remark": "订单号 A1001",
    }
    values.update(kw)
    return InvoiceOrder(**values)


def reply(result: Any = None, code: str = "E0000", describe: str = "成功", status: int = 200) -> HttpResponse:
    body = {"code": code, "describe": describe, "result": result}
    return HttpResponse(status=status, headers=(), body=json.dumps(body, ensure_ascii=False).encode())


def body_of(request: HttpRequest) -> dict[str, Any]:
    data = json.loads(request.body, parse_float=Decimal)
    assert isinstance(data, dict)
    return data


# --- issue ---------------------------------------------------------------------------------------
def test_issue_maps_order_fields_to_request_billing_new() -> None:
    request = provider().build_issue(three_line_order(), "S20240508000001", NOW)
    order = body_of(request)["order"]
    assert request.header("method") == "nuonuo.ElectronInvoice.requestBillingNew"
    assert request.idempotent is False
    assert order["orderNo"] == "S20240508000001"
    assert order["invoiceDate"] == "2024-05-08 10:30:00"
    assert order["salerTaxNum"] == SANDBOX_SELLER_TAX_ID
    assert order["invoiceType"] == "1"
    assert order["invoiceLine"] == "pc"
    assert order["pushMode"] == "-1"
    assert order["clerk"] == "张三"
    assert order["email"] == "buyer@example.com"
    assert "buyerTaxNum" not in order
    first, _, freight = order["invoiceDetail"]
    assert first == {
        "goodsName": "保温杯",
        "goodsCode": "1060512990000000000",
        "selfCode": "CUP-1",
        "withTaxFlag": "0",
        "price": "50",
        "num": "2",
        "unit": "个",
        "tax": "13.00",
        "taxRate": "0.13",
        "taxExcludedAmount": "100.00",
        "taxIncludedAmount": "113.00",
        "invoiceLineProperty": "0",
    }
    assert "price" not in freight and "num" not in freight
    assert freight["taxRate"] == "0.06"


def test_special_invoice_uses_bs_and_options_override_lines() -> None:
    order = three_line_order(invoice_type=InvoiceType.SPECIAL)
    assert body_of(provider().build_issue(order, "S1", NOW))["order"]["invoiceLine"] == "bs"
    custom = provider(invoice_line_special="b", method_namespace="OpeMplatform")
    request = custom.build_issue(order, "S1", NOW)
    assert body_of(request)["order"]["invoiceLine"] == "b"
    assert request.header("method") == "nuonuo.OpeMplatform.requestBillingNew"


def test_discount_pair_is_marked_discounted_then_discount() -> None:
    lines = (
        line("保温杯", "100.00", "13.00"),
        line("保温杯", "-10.00", "-1.30", is_discount=True),
    )
    order = three_line_order(
        lines=lines, total_amount=Decimal("90.00"), total_tax=Decimal("11.70"), total=Decimal("101.70")
    )
    details = body_of(provider().build_issue(order, "S1", NOW))["order"]["invoiceDetail"]
    assert [d["invoiceLineProperty"] for d in details] == ["2", "1"]


def test_zero_rate_flags_become_digital_invoice_policy_codes() -> None:
    exempt = line("图书", "10.00", "0.00", rate="0", zero_rate_flag=ZeroRateFlag.EXEMPT)
    policy = line("农产品", "10.00", "0.00", rate="0", favoured_policy="04")
    order = three_line_order(
        lines=(exempt, policy), total_amount=Decimal("20.00"), total_tax=Decimal("0.00"), total=Decimal("20.00")
    )
    details = body_of(provider().build_issue(order, "S1", NOW))["order"]["invoiceDetail"]
    assert details[0]["favouredPolicyFlag"] == "03"
    assert details[0]["taxRate"] == "0"
    assert details[1]["favouredPolicyFlag"] == "04"
    assert "zeroRateFlag" not in details[0]


def test_company_buyer_fields_are_sent() -> None:
    buyer = InvoiceBuyer(
        name="杭州某某有限公司",
        tax_id="91330106MA2AYNWD8M",
        type=BuyerType.COMPANY,
        address="杭州",
        phone="0571-1",
        bank="工行",
        account="123",
        mobile="13800000000",
    )
    order = body_of(provider().build_issue(three_line_order(buyer=buyer), "S1", NOW))["order"]
    assert order["buyerTaxNum"] == "91330106MA2AYNWD8M"
    assert order["buyerAccount"] == "工行 123"
    assert order["buyerPhone"] == "13800000000"


@pytest.mark.parametrize("serial", ["", "X" * 21])
def test_serial_must_fit_order_no(serial: str) -> None:
    with pytest.raises(PermanentTaxError) as err:
        provider().build_issue(three_line_order(), serial, NOW)
    assert err.value.field == "orderNo"


def test_seller_tax_id_mismatch_is_a_configuration_error() -> None:
    order = three_line_order(seller=Party(name="别家", tax_id="91330000000000000X"))
    with pytest.raises(ConfigurationError):
        provider().build_issue(order, "S1", NOW)


def test_red_order_is_refused_by_build_issue() -> None:
    with pytest.raises(PermanentTaxError):
        provider().build_issue(three_line_order(colour=InvoiceColour.RED), "S1", NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        provider().build_issue(three_line_order(), "S1", datetime(2024, 5, 8, 10, 30))


def test_missing_token_is_a_configuration_error_without_secrets() -> None:
    bare = NuonuoProvider(CREDS, SANDBOX_ENDPOINT, seller_tax_id=SANDBOX_SELLER_TAX_ID)
    with pytest.raises(ConfigurationError) as err:
        bare.build_issue(three_line_order(), "S1", NOW)
    assert "SDDED2523BED4643" not in str(err.value)
    assert bare.with_access_token(TOKEN).build_issue(three_line_order(), "S1", NOW).header("accessToken") == TOKEN


def test_fixed_sandbox_token_from_credentials_is_used() -> None:
    creds = Credentials({**CREDS.values, "access_token": "fixed-token"})
    p = NuonuoProvider(creds, SANDBOX_ENDPOINT, seller_tax_id=SANDBOX_SELLER_TAX_ID)
    assert p.build_issue(three_line_order(), "S1", NOW).header("accessToken") == "fixed-token"


def test_repr_hides_credentials_and_token() -> None:
    text = repr(provider())
    assert TOKEN not in text and "SDDED2523BED4643" not in text


def test_endpoint_root_gets_services_path() -> None:
    p = NuonuoProvider(CREDS, "http://127.0.0.1:8080/", seller_tax_id="x" * 18, access_token=TOKEN)
    assert p.build_query(NOW, serials=("S1",)).url.startswith("http://127.0.0.1:8080/open/v1/services?")
    with pytest.raises(ValueError):
        NuonuoProvider(CREDS, "ftp://x", seller_tax_id="x", access_token=TOKEN)


@pytest.mark.parametrize(
    "options", [{"method_namespace": "Other"}, {"credit_source": "bank"}], ids=["namespace", "credit"]
)
def test_bad_options_are_configuration_errors(options: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        provider(**options)


def test_empty_seller_tax_id_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        NuonuoProvider(CREDS, SANDBOX_ENDPOINT, seller_tax_id="")


def test_parse_issue_returns_order_no_and_invoice_serial_num() -> None:
    p = provider()
    request = p.build_issue(three_line_order(), "S1", NOW)
    accepted = p.parse_issue(request, reply({"invoiceSerialNum": "20160108165823395151"}, describe="开票提交成功"))
    assert accepted.serial == "S1"
    assert accepted.provider_ref == "20160108165823395151"


def test_parse_issue_without_serial_num_is_ambiguous() -> None:
    p = provider()
    request = p.build_issue(three_line_order(), "S1", NOW)
    with pytest.raises(AmbiguousTaxError):
        p.parse_issue(request, reply({}))


# --- query ---------------------------------------------------------------------------------------
ISSUED_ITEM = {
    "serialNo": "19010211130401000006",
    "orderNo": "S1",
    "status": "2",
    "statusMsg": "开票完成（最终状态）",
    "failCause": "",
    "pdfUrl": "https://example.invalid/a.pdf",
    "ofdUrl": "https://example.invalid/a.ofd",
    "xmlUrl": "https://example.invalid/a.xml",
    "invoiceTime": 1546398919000,
    "invoiceCode": "",
    "invoiceNo": "24332000000012345678",
    "allElectronicInvoiceNumber": "24332000000012345678",
    "exTaxAmount": "129.43",
    "taxAmount": "16.17",
    "orderAmount": "145.60",
}


def test_query_sends_serials_as_order_nos() -> None:
    request = provider().build_query(NOW, serials=("S1", "S2"), order_nos=("S2", "S3"))
    assert body_of(request) == {"orderNos": ["S1", "S2", "S3"], "isOfferInvoiceDetail": "0"}
    assert request.idempotent is True
    assert request.header("method") == "nuonuo.ElectronInvoice.queryInvoiceResult"


def test_query_limits() -> None:
    with pytest.raises(PermanentTaxError):
        provider().build_query(NOW)
    with pytest.raises(PermanentTaxError):
        provider().build_query(NOW, serials=tuple(f"S{i}" for i in range(51)))


def test_parse_query_issued_result() -> None:
    p = provider()
    request = p.build_query(NOW, serials=("S1",))
    [result] = p.parse_query(request, reply([ISSUED_ITEM]))
    assert result.serial == "S1"
    assert result.status is InvoiceStatus.ISSUED
    assert result.invoice_number == "24332000000012345678"
    assert result.issued_at == datetime(2019, 1, 2, 3, 15, 19, tzinfo=UTC)
    assert result.issued_at is not None and result.issued_at.utcoffset() == timedelta(hours=8)
    assert result.total_amount == Decimal("129.43") and isinstance(result.total_amount, Decimal)
    assert result.total_tax == Decimal("16.17")
    assert (result.pdf_url, result.ofd_url, result.xml_url) == (
        "https://example.invalid/a.pdf",
        "https://example.invalid/a.ofd",
        "https://example.invalid/a.xml",
    )
    assert result.provider_status == "2"


def test_truncated_number_key_from_the_pdf_table_is_accepted() -> None:
    item = {k: v for k, v in ISSUED_ITEM.items() if k not in ("allElectronicInvoiceNumber", "invoiceNo")}
    item["allElectronicInvoiceNumbe"] = "24332000000012345678"
    p = provider()
    [result] = p.parse_query(p.build_query(NOW, serials=("S1",)), reply([item]))
    assert result.invoice_number == "24332000000012345678"


def test_issued_without_twenty_digit_number_stays_pending() -> None:
    item = {**ISSUED_ITEM, "allElectronicInvoiceNumber": "", "invoiceNo": "19902643"}
    p = provider()
    [result] = p.parse_query(p.build_query(NOW, serials=("S1",)), reply([item]))
    assert result.status is InvoiceStatus.PENDING
    assert result.invoice_number is None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("20", InvoiceStatus.PENDING),
        ("21", InvoiceStatus.PENDING),
        ("2", InvoiceStatus.ISSUED),
        ("22", InvoiceStatus.FAILED),
        ("24", InvoiceStatus.PENDING),
        ("3", InvoiceStatus.VOIDED),
        ("31", InvoiceStatus.VOIDING),
        ("99", InvoiceStatus.PENDING),
    ],
)
def test_status_codes_map_to_neutral_status(code: str, status: InvoiceStatus) -> None:
    item = {**ISSUED_ITEM, "status": code, "statusMsg": "m", "failCause": "税局拒绝" if code == "22" else ""}
    p = provider()
    [result] = p.parse_query(p.build_query(NOW, serials=("S1",)), reply([item]))
    assert result.status is status
    assert result.provider_status == code
    if code == "22":
        assert result.failure_reason == "税局拒绝"
    if code in ("24", "99"):
        assert result.failure_reason


def test_status_table_covers_every_documented_code() -> None:
    assert set(m.STATUS_MAP) == {"20", "21", "2", "22", "24", "3", "31"}


def test_invoice_time_as_digit_string_is_accepted() -> None:
    p = provider()
    item = {**ISSUED_ITEM, "invoiceTime": "1546398919000"}
    [result] = p.parse_query(p.build_query(NOW, serials=("S1",)), reply([item]))
    assert result.issued_at == datetime(2019, 1, 2, 11, 15, 19, tzinfo=timezone(timedelta(hours=8)))


@pytest.mark.parametrize(
    "result",
    [
        {"not": "a list"},
        ["not an object"],
        [{"status": "2"}],
        [{**ISSUED_ITEM, "exTaxAmount": "abc"}],
        [{**ISSUED_ITEM, "exTaxAmount": True}],
        [{**ISSUED_ITEM, "invoiceTime": "yesterday"}],
        [{**ISSUED_ITEM, "invoiceTime": 1.5}],
    ],
    ids=["dict", "item", "no-order-no", "amount-text", "amount-bool", "time-text", "time-float"],
)
def test_malformed_query_results_are_ambiguous(result: Any) -> None:
    p = provider()
    with pytest.raises(AmbiguousTaxError):
        p.parse_query(p.build_query(NOW, serials=("S1",)), reply(result))


def test_money_in_replies_is_parsed_as_decimal_even_when_numeric() -> None:
    p = provider()
    body = (
        b'{"code":"E0000","describe":"ok","result":[{"orderNo":"S1","status":"20","exTaxAmount":0.1,"taxAmount":0.2}]}'
    )
    [result] = p.parse_query(p.build_query(NOW, serials=("S1",)), HttpResponse(200, (), body))
    assert result.total_amount == Decimal("0.1") and result.total_tax == Decimal("0.2")


def test_query_with_null_result_is_empty() -> None:
    p = provider()
    assert p.parse_query(p.build_query(NOW, serials=("S1",)), reply(None)) == []


# --- red confirmation form -------------------------------------------------------------------------
def red_request(**kw: Any) -> RedFormRequest:
    red_lines = (
        line(
            "保温杯", "-100.00", "-13.00", quantity=Decimal(-2), unit="个", unit_price=Decimal("50"), original_line_no=1
        ),
    )
    order = three_line_order(
        colour=InvoiceColour.RED,
        lines=red_lines,
        total_amount=Decimal("-100.00"),
        total_tax=Decimal("-13.00"),
        total=Decimal("-113.00"),
        original_invoice_number="24332000000012345678",
        red_reason=RedReason.RETURN,
    )
    values: dict[str, Any] = {
        "serial": "RF20240508000001",
        "original_invoice_number": "24332000000012345678",
        "original_issued_at": NOW,
        "reason": RedReason.RETURN,
        "seller_tax_id": SANDBOX_SELLER_TAX_ID,
        "buyer_name": "个人",
        "buyer_tax_id": None,
        "order": order,
    }
    values.update(kw)
    return RedFormRequest(**values)


@pytest.mark.parametrize(
    ("ours", "nuonuo"),
    [
        (RedReason.WRONG_INVOICE, "2"),  # 01 开票有误 → Nuonuo 2
        (RedReason.RETURN, "1"),  # 02 销货退回 → Nuonuo 1
        (RedReason.SERVICE_STOPPED, "3"),
        (RedReason.ALLOWANCE, "4"),
    ],
)
def test_red_reason_codes_swap_one_and_two(ours: RedReason, nuonuo: str) -> None:
    assert m.RED_REASON_TO_NUONUO[ours] == nuonuo
    assert m.RED_REASON_FROM_NUONUO[nuonuo] is ours
    request = provider().build_red_form_apply(red_request(reason=ours), NOW)
    assert body_of(request)["redReason"] == nuonuo


def test_red_form_apply_payload() -> None:
    request = provider().build_red_form_apply(red_request(), NOW)
    payload = body_of(request)
    assert request.header("method") == "nuonuo.OpeMplatform.saveInvoiceRedConfirm"
    assert request.idempotent is False
    assert payload["billId"] == "RF20240508000001"
    assert payload["orderNo"] == "RF20240508000001"
    assert payload["applySource"] == "0"
    assert payload["blueInvoiceLine"] == "pc"
    assert payload["blueElecInvoiceNumber"] == "24332000000012345678"
    assert "buyerTaxNo" not in payload
    assert payload["detail"] == [
        {
            "blueDetailIndex": "1",
            "goodsName": "保温杯",
            "unit": "个",
            "num": "-2",
            "taxExcludedPrice": "50",
            "taxExcludedAmount": "-100.00",
            "taxAmount": "-13.00",
            "taxRate": "0.13",
            "goodsCode": "1060512990000000000",
        }
    ]


def test_red_form_lines_must_name_their_blue_line() -> None:
    order = red_request().order.model_copy(update={"lines": (line("保温杯", "-100.00", "-13.00"),)})
    with pytest.raises(PermanentTaxError) as err:
        provider().build_red_form_apply(red_request(order=order), NOW)
    assert err.value.field == "lines[0].original_line_no"


def test_red_form_refuses_discount_lines() -> None:
    order = red_request().order.model_copy(
        update={"lines": (line("保温杯", "-10.00", "-1.30", is_discount=True, original_line_no=1),)}
    )
    with pytest.raises(PermanentTaxError) as err:
        provider().build_red_form_apply(red_request(order=order), NOW)
    assert err.value.field == "lines[0].is_discount"


def test_red_form_seller_mismatch() -> None:
    with pytest.raises(ConfigurationError):
        provider().build_red_form_apply(red_request(seller_tax_id="91330000000000000X"), NOW)


def test_parse_red_form_apply_reports_applying() -> None:
    p = provider()
    request = p.build_red_form_apply(red_request(), NOW)
    form = p.parse_red_form_apply(request, reply("RF20240508000001"))
    assert form.form_id == "RF20240508000001"
    assert form.state is RedFormState.WAITING_BUYER and not form.state.allows_red_invoice
    assert form.provider_status == "15"
    assert form.red_amount == Decimal("-100.00") and form.red_tax == Decimal("-13.00")
    assert form.original_invoice_number == "24332000000012345678"
    # an empty result falls back to the billId we sent; an object result is read too
    assert p.parse_red_form_apply(request, reply(None)).form_id == "RF20240508000001"
    assert p.parse_red_form_apply(request, reply({"billId": "X9"})).form_id == "X9"


@pytest.mark.parametrize(
    ("action", "method", "agreement", "state"),
    [
        (RedFormAction.CONFIRM, "nuonuo.OpeMplatform.confirm", "1", RedFormState.CONFIRMED),
        (RedFormAction.REJECT, "nuonuo.OpeMplatform.confirm", "0", RedFormState.VOIDED_BUYER),
        (RedFormAction.CANCEL, "nuonuo.OpeMplatform.confirmInfoCancel", None, RedFormState.VOIDED_OTHER_08),
    ],
)
def test_red_form_actions(action: RedFormAction, method: str, agreement: str | None, state: RedFormState) -> None:
    p = provider()
    request = p.build_red_form_confirm("RF1", action, NOW)
    payload = body_of(request)
    assert request.header("method") == method
    assert payload["billId"] == "RF1" and payload["identity"] == "0"
    assert payload.get("confirmAgreement") == agreement
    form = p.parse_red_form_confirm(request, reply({}))
    assert form.form_id == "RF1" and form.state is state


def form_item(status: str, **kw: Any) -> dict[str, Any]:
    item = {
        "billNo": "44011222081000800025",
        "billUuid": "1d7f08b6ddb64cb19b095b0360f074d0",
        "billId": "RF1",
        "billStatus": status,
        "billMessage": "",
        "blueInvoiceNumber": "24332000000012345678",
        "taxExcludedAmount": "-100.00",
        "taxAmount": "-13.00",
        "redReason": "1",
    }
    item.update(kw)
    return item


@pytest.mark.parametrize("status", ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"])
def test_red_form_query_states(status: str) -> None:
    p = provider()
    request = p.build_red_form_query("RF1", NOW)
    assert body_of(request) == {"identity": "0", "billId": "RF1", "pageNo": "1", "pageSize": "10"}
    form = p.parse_red_form_query(request, reply({"total": 1, "list": [form_item(status)]}))
    assert form.state is RedFormState(status)
    assert form.state.allows_red_invoice is (status in ("01", "04"))
    assert form.red_amount == Decimal("-100.00")
    assert form.original_invoice_number == "24332000000012345678"


def test_red_form_applying_and_failed() -> None:
    p = provider()
    request = p.build_red_form_query("RF1", NOW)
    applying = p.parse_red_form_query(request, reply({"list": [form_item("15")]}))
    assert applying.state is RedFormState.WAITING_BUYER and applying.provider_status == "15"
    with pytest.raises(PermanentTaxError, match="蓝票已冲红"):
        p.parse_red_form_query(request, reply({"list": [form_item("16", billMessage="蓝票已冲红")]}))


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"list": []}, PermanentTaxError),
        ({"list": [form_item("04", billId="OTHER")]}, AmbiguousTaxError),
        ({"list": [form_item("42")]}, AmbiguousTaxError),
        ({"total": 0}, AmbiguousTaxError),
    ],
    ids=["missing", "other-form", "unknown-state", "no-list"],
)
def test_red_form_query_bad_replies(result: Any, error: type[Exception]) -> None:
    p = provider()
    with pytest.raises(error):
        p.parse_red_form_query(p.build_red_form_query("RF1", NOW), reply(result))


# --- red invoice -------------------------------------------------------------------------------------
def red_order(**kw: Any) -> InvoiceOrder:
    return red_request().order.model_copy(update={"red_form_id": "RF1", **kw})


def test_issue_red_uses_fast_invoice_red() -> None:
    p = provider()
    request = p.build_issue_red(red_order(), "RF1", NOW)
    payload = body_of(request)
    assert request.header("method") == "nuonuo.OpeMplatform.fastInvoiceRed"
    assert payload == {
        "orderNo": "RF1",
        "orderTime": "2024-05-08 10:30:00",
        "taxNum": SANDBOX_SELLER_TAX_ID,
        "elecInvoiceNumber": "24332000000012345678",
        "billId": "RF1",
        "invoiceLine": "pc",
    }
    accepted = p.parse_issue_red(request, reply({"invoiceSerialNum": "24050810300000000001"}))
    assert (accepted.serial, accepted.provider_ref) == ("RF1", "24050810300000000001")
    with pytest.raises(AmbiguousTaxError):
        p.parse_issue_red(request, reply({}))


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"colour": InvoiceColour.BLUE}, "colour"),
        ({"original_invoice_number": None}, "original_invoice_number"),
        ({"red_form_id": None}, "red_form_id"),
    ],
)
def test_issue_red_needs_red_order_number_and_form(update: dict[str, Any], field: str) -> None:
    with pytest.raises(PermanentTaxError) as err:
        provider().build_issue_red(red_order(**update), "RF1", NOW)
    assert err.value.field == field


# --- void, credit, tax codes, extras ----------------------------------------------------------------
def test_void_is_declared_unsupported_but_built() -> None:
    p = provider()
    assert p.capabilities.void is False
    request = p.build_void("24332000000012345678", "20052622361801000032", NOW)
    assert request.header("method") == "nuonuo.electronInvoice.invoiceCancellation"
    assert body_of(request) == {
        "invoiceId": "20052622361801000032",
        "invoiceCode": "",
        "invoiceNo": "24332000000012345678",
    }
    result = p.parse_void(request, reply({"invoiceId": "20052622361801000032"}))
    assert (result.invoice_number, result.status) == ("24332000000012345678", InvoiceStatus.VOIDING)
    with pytest.raises(PermanentTaxError):
        p.parse_void(request, reply(None, code="E9999", describe="数电票不允许作废"))


def test_credit_from_invoice_stock_sums_remaining_counts() -> None:
    p = provider(department_id="D1")
    request = p.build_query_credit(NOW)
    assert request.header("method") == "nuonuo.ElectronInvoice.getInvoiceStock"
    assert body_of(request) == {"departmentId": "D1"}
    rows = [{"invoiceLine": "pc", "remainNum": 140}, {"invoiceLine": "bs", "remainNum": "60"}]
    credit = p.parse_query_credit(request, reply(rows))
    assert (credit.total, credit.used, credit.remaining) == (Decimal(200), Decimal(0), Decimal(200))
    assert p.parse_query_credit(request, reply(None)).remaining == Decimal(0)
    for bad in ({"x": 1}, ["row"]):
        with pytest.raises(AmbiguousTaxError):
            p.parse_query_credit(request, reply(bad))


def test_credit_line_source_reads_yuan() -> None:
    p = provider(credit_source="credit_line")
    request = p.build_query_credit(NOW)
    assert request.header("method") == "nuonuo.OpeMplatform.getCreditLine"
    credit = p.parse_query_credit(
        request, reply({"availableCreditLine": "8000.00", "usedCreditLine": "2000.00", "totalCreditLine": "10000.00"})
    )
    assert (credit.total, credit.used, credit.remaining) == (
        Decimal("10000.00"),
        Decimal("2000.00"),
        Decimal("8000.00"),
    )
    assert p.parse_query_credit(request, reply({"availableCreditLine": "5"})).total == Decimal(5)
    for bad in (["x"], {"usedCreditLine": "1"}):
        with pytest.raises(AmbiguousTaxError):
            p.parse_query_credit(request, reply(bad))


def test_tax_codes_are_unsupported() -> None:
    p = provider()
    with pytest.raises(UnsupportedOperation):
        p.build_fetch_tax_codes(NOW)
    with pytest.raises(UnsupportedOperation):
        p.parse_fetch_tax_codes(p.build_query(NOW, serials=("S1",)), reply([]))


def test_retry_and_redeliver_extras() -> None:
    p = provider()
    retry = p.build_retry("S1", NOW, provider_ref="22082521581301066266")
    assert retry.header("method") == "nuonuo.ElectronInvoice.reInvoice"
    assert body_of(retry) == {"fpqqlsh": "22082521581301066266", "orderno": "S1"}
    p.parse_retry(retry, reply("重试成功"))
    with pytest.raises(PermanentTaxError) as err:
        p.parse_retry(retry, reply(None, code="E9613", describe="同一流水号(订单号)单日最多重试20次"))
    assert err.value.code == "tax_retry_cap"
    deliver = p.build_redeliver("24332000000012345678", NOW, mail="a@example.com")
    assert body_of(deliver) == {
        "taxnum": SANDBOX_SELLER_TAX_ID,
        "invoiceNum": "24332000000012345678",
        "mail": "a@example.com",
    }
    p.parse_redeliver(deliver, reply(None, describe="交付成功"))
    with pytest.raises(PermanentTaxError):
        p.build_redeliver("24332000000012345678", NOW)
