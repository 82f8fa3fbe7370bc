"""The sandbox's Nuonuo side over real HTTP: token, signature, official methods and codes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from chalicelib.sandbox import SandboxHandle
from tests.support.sandbox_clients import (
    DELAY,
    SELLER,
    NuonuoClient,
    admin,
    nn_line,
    nn_order,
    running,
)


@pytest.fixture()
def sandbox() -> Iterator[SandboxHandle]:
    with running() as handle:
        yield handle


@pytest.fixture()
def nn(sandbox: SandboxHandle) -> NuonuoClient:
    return NuonuoClient(sandbox)


def advance(handle: SandboxHandle, seconds: float) -> None:
    admin(handle.url, "POST", "/admin/clock", {"advance": seconds})


def code_of(raw) -> str:  # type: ignore[no-untyped-def]
    return raw.json()["code"]


def issued(sandbox: SandboxHandle, nn: NuonuoClient, order_no: str, **over: object) -> dict:
    nn.ok("requestBillingNew", nn_order(order_no, **over))
    advance(sandbox, DELAY)
    res = nn.ok("queryInvoiceResult", {"orderNos": [order_no], "isOfferInvoiceDetail": "1"})[0]
    assert res["status"] == "2"
    return res


def test_token_endpoint(nn: NuonuoClient) -> None:
    raw = nn.get_token()
    assert raw.status == 200 and raw.json()["expires_in"] == 86400 and len(raw.json()["access_token"]) == 32
    assert nn.get_token(secret="wrong").status == 400


def test_issue_pending_then_done(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    serial = nn.ok("requestBillingNew", nn_order("N1"))["invoiceSerialNum"]
    assert re.fullmatch(r"\d{20}", serial)
    pending = nn.ok("queryInvoiceResult", {"serialNos": [serial]})[0]
    assert pending["status"] == "20" and pending["allElectronicInvoiceNumber"] == ""
    advance(sandbox, DELAY)
    done = nn.ok("queryInvoiceResult", {"serialNos": [serial], "isOfferInvoiceDetail": "1"})[0]
    assert done["status"] == "2" and done["statusMsg"] == "开票完成（最终状态）"
    assert re.fullmatch(r"26331\d{15}", done["allElectronicInvoiceNumber"])
    assert done["invoiceTime"] == (1767225600 + DELAY) * 1000
    assert (done["exTaxAmount"], done["taxAmount"], done["orderAmount"]) == ("100.00", "6.00", "106.00")
    assert done["invoiceItems"][0]["itemCode"] == "3040201000000000000"
    assert done["pdfUrl"].endswith(".pdf") and done["orderNo"] == "N1"


def test_method_prefix_opemplatform_is_accepted(nn: NuonuoClient) -> None:
    raw = nn.call("nuonuo.OpeMplatform.requestBillingNew", nn_order("N1"))
    assert code_of(raw) == "E0000"


def test_signature_over_other_bytes_is_070601(nn: NuonuoClient) -> None:
    content = nn_order("N1")
    sent = json.dumps(content, ensure_ascii=False).encode()  # spaces: not what was signed
    signed = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    assert code_of(nn.call("requestBillingNew", body=sent, sign_body=signed)) == "070601"
    assert code_of(nn.call("requestBillingNew", content, secret="wrong")) == "070601"


def test_stale_timestamp_and_token_errors(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    assert code_of(nn.call("requestBillingNew", nn_order("N1"), ts=nn.now() - 301)) == "070601"
    assert code_of(nn.call("requestBillingNew", nn_order("N1"), token="")) == "070304"
    assert code_of(nn.call("requestBillingNew", nn_order("N1"), token="nope")) == "070305"
    nn.get_token()
    advance(sandbox, 86401)
    assert code_of(nn.call("requestBillingNew", nn_order("N1"))) == "070306"


def test_duplicate_order_no_is_E9106_with_the_existing_serial(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    serial = nn.ok("requestBillingNew", nn_order("DUP1"))["invoiceSerialNum"]
    env = nn.call("requestBillingNew", nn_order("DUP1")).json()
    assert env["code"] == "E9106" and env["result"]["invoiceSerialNum"] == serial
    assert admin(sandbox.url, "GET", "/admin/invoices/count?order_no=DUP1")["count"] == 1


def _discount(amount: str, disc: str, rate: str = "0.06", **over: str) -> list[dict]:
    a = nn_line(amount, invoiceLineProperty="2")
    d = nn_line(disc.removeprefix("-"), rate, invoiceLineProperty="1", price="", num="")
    for key in ("tax", "taxExcludedAmount", "taxIncludedAmount"):
        d[key] = "-" + d[key]
    d.update(over)
    return [a, d]


CASES = [
    ("amount + tax != total", [nn_line("106.00", taxIncludedAmount="106.01", price="106.01")], "E9130"),
    ("tax error > 0.06", [nn_line("106.00", tax="6.07", taxExcludedAmount="99.93")], "E9131"),
    ("unknown goods code", [nn_line("10.00", goodsCode="1234567890123456789")], "E9121"),
    ("discount with other name", _discount("106.00", "-10.60", goodsName="别的"), "E9105"),
    ("discount larger", _discount("10.60", "-21.20"), "E9108"),
    ("discount not after line", [nn_line("10.60", invoiceLineProperty="1")], "E9110"),
    ("discount other rate", _discount("106.00", "-10.30", rate="0.03"), "E9112"),
    ("no price and no amounts", [nn_line("10.60", price="", num="", tax="")], "E9123"),
    ("zero rate without flag", [nn_line("10.00", taxRate="0")], "E4000"),
    ("too many lines", [nn_line("1.06")] * 2001, "E4000"),
]


@pytest.mark.parametrize(("case", "lines", "code"), CASES, ids=[c[0] for c in CASES])
def test_rule_violation_codes(nn: NuonuoClient, case: str, lines: list[dict], code: str) -> None:
    assert code_of(nn.call("requestBillingNew", nn_order("R1", lines=lines))) == code


def test_order_level_codes(nn: NuonuoClient) -> None:
    assert code_of(nn.call("requestBillingNew", nn_order("R1", invoiceType="3"))) == "E9101"
    assert code_of(nn.call("requestBillingNew", nn_order("R1", salerTaxNum="91330106MA2AYNWD8M"))) == "E9302"
    assert code_of(nn.call("requestBillingNew", nn_order("R1", buyerTaxNum="123"))) == "E9306"
    assert code_of(nn.call("requestBillingNew", nn_order("R1", buyerTaxNum="", invoiceLine="bs"))) == "E4000"
    assert code_of(nn.call("requestBillingNew", nn_order("R1", orderNo=""))) == "E4000"
    assert code_of(nn.call("queryInvoiceResult", {"serialNos": [], "orderNos": []})) == "E9611"
    assert code_of(nn.call("queryInvoiceResult", {"orderNos": ["NOPE"]})) == "E9500"
    assert code_of(nn.call("nuonuo.ElectronInvoice.noSuchMethod", {})) == "E4000"


def test_amounts_are_computed_from_price_when_omitted(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    line = nn_line("10.60", tax="", taxExcludedAmount="", taxIncludedAmount="")
    nn.ok("requestBillingNew", nn_order("P1", lines=[line]))
    res = admin(sandbox.url, "GET", "/admin/invoices?order_no=P1")["invoices"][0]
    assert (res["amount"], res["tax"], res["total"]) == ("10.00", "0.60", "10.60")


def test_red_flow_company_buyer_confirm_then_fast_red(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    blue = issued(sandbox, nn, "B1")
    form_request = {
        "billId": "RF1",
        "blueInvoiceLine": "pc",
        "applySource": "0",
        "blueElecInvoiceNumber": blue["allElectronicInvoiceNumber"],
        "sellerTaxNo": SELLER,
        "sellerName": "沙箱测试销方",
        "buyerTaxNo": blue["payerTaxNo"],
        "buyerName": blue["payerName"],
        "redReason": "1",
    }
    assert nn.ok("saveInvoiceRedConfirm", form_request) == "RF1"
    item = nn.ok("queryInvoiceRedConfirm", {"identity": "0", "billId": "RF1"})["list"][0]
    assert item["billStatus"] == "02" and item["taxExcludedAmount"] == "-100.00" and item["openStatus"] == 0
    fast = {
        "orderNo": "RED1",
        "taxNum": SELLER,
        "elecInvoiceNumber": blue["allElectronicInvoiceNumber"],
        "billNo": item["billNo"],
        "billUuid": item["billUuid"],
    }
    assert code_of(nn.call("nuonuo.OpeMplatform.fastInvoiceRed", fast)) == "E9103"  # not confirmed yet
    confirmed = nn.ok("nuonuo.OpeMplatform.confirm", {"billId": "RF1", "identity": "1", "confirmAgreement": "1"})
    assert confirmed["billStatus"] == "04"
    serial = nn.ok("nuonuo.OpeMplatform.fastInvoiceRed", fast)["invoiceSerialNum"]
    assert nn.call("nuonuo.OpeMplatform.fastInvoiceRed", fast).json()["result"]["invoiceSerialNum"] == serial
    advance(sandbox, DELAY)
    red = nn.ok("queryInvoiceResult", {"serialNos": [serial]})[0]
    assert red["status"] == "2" and red["invoiceType"] == "2" and red["orderAmount"] == "-106.00"
    assert red["oldEleInvoiceNumber"] == blue["allElectronicInvoiceNumber"]
    # Σ red ≤ blue: nothing is left
    again = dict(form_request, billId="RF2")
    assert code_of(nn.call("saveInvoiceRedConfirm", again)) == "E9103"


def test_individual_red_form_with_order_no_issues_the_red_invoice_itself(
    sandbox: SandboxHandle, nn: NuonuoClient
) -> None:
    blue = issued(sandbox, nn, "B1", buyerTaxNum="", buyerName="个人")
    form_request = {
        "blueInvoiceLine": "pc",
        "applySource": "0",
        "blueElecInvoiceNumber": blue["allElectronicInvoiceNumber"],
        "sellerTaxNo": SELLER,
        "buyerName": "个人",
        "redReason": "2",
        "orderNo": "RED1",
        "detail": [
            {
                "blueDetailIndex": "1",
                "goodsName": "软件维护",
                "num": "-1",
                "taxExcludedPrice": "50",
                "taxExcludedAmount": "-50.00",
                "taxAmount": "-3.00",
                "taxRate": "0.06",
                "goodsCode": "3040201000000000000",
            }
        ],
    }
    bill_id = nn.ok("saveInvoiceRedConfirm", form_request)
    item = nn.ok("queryInvoiceRedConfirm", {"identity": "0", "billId": bill_id})["list"][0]
    assert item["billStatus"] == "01" and item["openStatus"] == 1 and item["redReason"] == "2"
    red = nn.ok("queryInvoiceResult", {"orderNos": ["RED1"]})[0]
    assert red["exTaxAmount"] == "-50.00" and red["status"] == "20"


def test_company_form_expires_and_cancel(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    blue = issued(sandbox, nn, "B1")
    base = {
        "blueInvoiceLine": "pc",
        "applySource": "0",
        "blueElecInvoiceNumber": blue["allElectronicInvoiceNumber"],
        "sellerTaxNo": SELLER,
        "buyerName": blue["payerName"],
        "redReason": "1",
    }
    detail = [
        {
            "blueDetailIndex": "1",
            "goodsName": "软件维护",
            "taxExcludedAmount": "-10.00",
            "taxAmount": "-0.60",
            "taxRate": "0.06",
            "goodsCode": "3040201000000000000",
        }
    ]
    nn.ok("saveInvoiceRedConfirm", dict(base, billId="A", detail=detail))
    nn.ok("saveInvoiceRedConfirm", dict(base, billId="B", detail=detail))
    cancelled = nn.ok("nuonuo.OpeMplatform.confirmInfoCancel", {"billId": "B", "identity": "0"})
    assert cancelled["billStatus"] == "08"
    advance(sandbox, 72 * 3600)
    nn.get_token()  # 72 h outlive the 24 h token
    assert nn.ok("queryInvoiceRedConfirm", {"identity": "0", "billId": "A"})["list"][0]["billStatus"] == "07"
    assert nn.ok("queryInvoiceRedConfirm", {"identity": "0", "billStatus": "07"})["total"] == 1


def test_cancellation_delivery_stock_and_retry(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    blue = issued(sandbox, nn, "B1")
    void = nn.call(
        "nuonuo.electronInvoice.invoiceCancellation",
        {"invoiceId": blue["serialNo"], "invoiceCode": "", "invoiceNo": blue["invoiceNo"]},
    )
    assert code_of(void) == "E9999" and "作废" in void.json()["describe"]
    delivery = {"taxnum": SELLER, "invoiceCode": "", "invoiceNum": blue["invoiceNo"], "phone": "13000000000"}
    assert code_of(nn.call("deliveryInvoice", delivery)) == "E0000"
    assert code_of(nn.call("deliveryInvoice", dict(delivery, invoiceNum="2633100000000000999"))) == "E9999"
    assert nn.ok("getInvoiceStock", {})[0]["invoiceLine"] == "pc"
    assert nn.ok("reInvoice", {"fpqqlsh": blue["serialNo"]}) == "发票已生成，无需再重试开票"


def test_red_invoice_through_request_billing_new(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    blue = issued(sandbox, nn, "B1")
    form = {
        "billId": "RF1",
        "blueInvoiceLine": "pc",
        "applySource": "0",
        "blueElecInvoiceNumber": blue["allElectronicInvoiceNumber"],
        "sellerTaxNo": SELLER,
        "buyerName": blue["payerName"],
        "redReason": "2",
    }
    nn.ok("saveInvoiceRedConfirm", form)
    item = nn.ok("confirm", {"billId": "RF1", "identity": "1", "confirmAgreement": "1"})
    line = nn_line("106.00", num="-1", tax="-6.00", taxExcludedAmount="-100.00", taxIncludedAmount="-106.00")
    red = nn_order(
        "RED1", lines=[line], invoiceType="2", invoiceNum=blue["allElectronicInvoiceNumber"], billInfoNo=item["billNo"]
    )
    assert nn.ok("requestBillingNew", red)["invoiceSerialNum"]
    assert code_of(nn.call("requestBillingNew", dict(red, order=dict(red["order"], orderNo="RED2")))) == "E9103"


def test_count_by_the_gateways_order_key_finds_its_invoice(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    """Nuonuo's orderNo is the gateway's serial, not the shop's order id: ``order_key=`` maps to it."""
    from urllib.parse import quote

    from chalicelib.domain.order_keys import order_key, serial_for

    key = order_key("demo-hangzhou", "shopify", "1001")
    issued(sandbox, nn, serial_for(key))  # what the worker sends as orderNo

    count = admin(sandbox.url, "GET", f"/admin/invoices/count?order_key={quote(key)}")
    assert count == {"order_no": "", "order_key": key, "serial": serial_for(key), "count": 1}
    other = order_key("demo-hangzhou", "woocommerce", "1001")  # the same order id on another platform
    assert admin(sandbox.url, "GET", f"/admin/invoices/count?order_key={quote(other)}")["count"] == 0
    listed = admin(sandbox.url, "GET", f"/admin/invoices?order_key={quote(key)}")["invoices"]
    assert [i["order_no"] for i in listed] == [serial_for(key)]
