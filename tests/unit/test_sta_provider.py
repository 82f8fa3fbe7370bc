"""StaProvider: request construction (payload mapping, envelope, golden bytes) and successful replies.

Error replies are covered in ``test_sta_errors.py``; the worked example in the docs in
``test_sta_protocol.py``. Helpers here (``provider``, ``reply``, ``blue_order`` …) are shared by them.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chalicelib.crypto import reference
from chalicelib.domain.errors import AmbiguousTaxError, ConfigurationError
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
from chalicelib.taxapi import sta
from chalicelib.taxapi.base import (
    Credentials,
    HttpRequest,
    HttpResponse,
    InvoiceStatus,
    RedFormAction,
    RedFormRequest,
    RedFormState,
)

GOLDEN = Path(__file__).parent / "golden"
APP_ID = "app-test-0001"
SM4_KEY_HEX = "00112233445566778899aabbccddeeff"
SIGN_KEY = "test-sign-key-不要外传"
SELLER_TAX_ID = "91310101MA1FPX1234"
ENDPOINT = "https://lq.example.test:8443/"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)  # 1735787045
NONCE = "0123456789abcdef0123456789abcdef"
REPLY_NONCE = "fedcba9876543210fedcba9876543210"


def credentials(**overrides: str) -> Credentials:
    values = {"app_id": APP_ID, "sm4_key": SM4_KEY_HEX, "sign_key": SIGN_KEY}
    values.update(overrides)
    return Credentials(values)


def provider(options: dict[str, str] | None = None, nonce: str = NONCE) -> sta.StaProvider:
    return sta.StaProvider(
        credentials(), ENDPOINT, seller_tax_id=SELLER_TAX_ID, options=options, nonce_factory=lambda: nonce
    )


def reply(request: HttpRequest, response: dict[str, Any], *, sign_key: str = SIGN_KEY) -> HttpResponse:
    service = request.header("fwbm")
    assert service is not None
    return sta.build_reply(
        response,
        service=service,
        app_id=APP_ID,
        sm4_key=bytes.fromhex(SM4_KEY_HEX),
        sign_key=sign_key.encode(),
        timestamp="1735787046",
        nonce=REPLY_NONCE,
    )


def data_reply(request: HttpRequest, **fields: Any) -> HttpResponse:
    return reply(request, {"Response": {"Data": {"returncode": "00", "returnmsg": "成功", **fields}}})


def sent_payload(request: HttpRequest) -> Any:
    """Decrypt a request body with the *reference* implementation (independent of the code under test)."""
    plain = reference.sm4_ecb_decrypt(bytes.fromhex(SM4_KEY_HEX), base64.b64decode(request.body))
    return json.loads(plain.decode("utf-8"))


SELLER = Party(
    name="上海示例商贸有限公司",
    tax_id=SELLER_TAX_ID,
    address="上海市黄浦区示例路1号",
    phone="021-12345678",
    bank="示例银行上海分行",
    account="6222000011112222",
)


def blue_order(buyer: InvoiceBuyer | None = None, invoice_type: InvoiceType = InvoiceType.NORMAL) -> InvoiceOrder:
    """A 3-line blue invoice: goods at 13 % with a discount line, then a service at 6 %."""
    return InvoiceOrder(
        order_key="shop-1:SO-1001",
        store_id="shop-1",
        order_id="SO-1001",
        invoice_type=invoice_type,
        seller=SELLER,
        buyer=buyer or InvoiceBuyer(name="北京买方科技有限公司", tax_id="91110108MA01ABCD2X", type=BuyerType.COMPANY),
        lines=(
            InvoiceLine(
                name="无线鼠标",
                short_name="计算机外部设备",
                tax_code="1090511030000000000",
                tax_rate=Decimal("0.13"),
                quantity=Decimal("2"),
                unit="个",
                unit_price=Decimal("88.49557522"),
                amount=Decimal("176.99"),
                tax=Decimal("23.01"),
                total=Decimal("200.00"),
                specification="M-100",
            ),
            InvoiceLine(
                name="无线鼠标",
                short_name="计算机外部设备",
                tax_code="1090511030000000000",
                tax_rate=Decimal("0.13"),
                amount=Decimal("-17.70"),
                tax=Decimal("-2.30"),
                total=Decimal("-20.00"),
                is_discount=True,
            ),
            InvoiceLine(
                name="软件维护",
                short_name="信息技术服务",
                tax_code="3040201030000000000",
                tax_rate=Decimal("0.06"),
                quantity=Decimal("1"),
                unit_price=Decimal("94.33962264"),
                amount=Decimal("94.34"),
                tax=Decimal("5.66"),
                total=Decimal("100.00"),
            ),
        ),
        total_amount=Decimal("253.63"),
        total_tax=Decimal("26.37"),
        total=Decimal("280.00"),
        issuer="张三",
        reviewer="李四",
        remark="订单号 SO-1001",
    )


def red_order() -> InvoiceOrder:
    return InvoiceOrder(
        order_key="shop-1:SO-1001:refund:R1",
        store_id="shop-1",
        order_id="SO-1001",
        colour=InvoiceColour.RED,
        seller=SELLER,
        buyer=InvoiceBuyer(name="个人"),
        lines=(
            InvoiceLine(
                name="软件维护",
                short_name="信息技术服务",
                tax_code="3040201030000000000",
                tax_rate=Decimal("0.06"),
                quantity=Decimal("-1"),
                unit_price=Decimal("94.33962264"),
                amount=Decimal("-94.34"),
                tax=Decimal("-5.66"),
                total=Decimal("-100.00"),
                original_line_no=3,
            ),
        ),
        total_amount=Decimal("-94.34"),
        total_tax=Decimal("-5.66"),
        total=Decimal("-100.00"),
        issuer="张三",
        original_invoice_number="25312000000000012345",
        original_issued_at=datetime(2025, 1, 1, 16, 30, tzinfo=UTC),
        red_reason=RedReason.RETURN,
        red_form_id="HZ3100002025010200000001",
    )


# The QDFPSC payload of blue_order(), written out by hand from docs/tax-protocol.md.
EXPECTED_BLUE_PAYLOAD: dict[str, Any] = {
    "fpqqlsh": "SER-0001",
    "lzfpbz": "0",
    "fppz": "02",
    "xsfnsrsbh": SELLER_TAX_ID,
    "xsfmc": "上海示例商贸有限公司",
    "xsfdz": "上海市黄浦区示例路1号",
    "xsfdh": "021-12345678",
    "xsfkhh": "示例银行上海分行",
    "xsfzh": "6222000011112222",
    "gmfnsrsbh": "91110108MA01ABCD2X",
    "gmfmc": "北京买方科技有限公司",
    "gmfdz": "",
    "gmfdh": "",
    "gmfkhh": "",
    "gmfzh": "",
    "gmfzrrbs": "N",
    "hjje": "253.63",
    "hjse": "26.37",
    "jshj": "280.00",
    "kpr": "张三",
    "fhr": "李四",
    "skr": "",
    "bz": "订单号 SO-1001",
    "ddh": "SO-1001",
    "dylzfphm": "",
    "hzqrdbh": "",
    "mxs": [
        {
            "xh": 1,
            "spmc": "*计算机外部设备*无线鼠标",
            "ssflbm": "1090511030000000000",
            "ggxh": "M-100",
            "dw": "个",
            "spsl": "2",
            "dj": "88.49557522",
            "je": "176.99",
            "sl": "0.13",
            "se": "23.01",
            "hsje": "200.00",
            "fphxz": "2",
            "yhzcbs": "0",
            "lslbs": "",
            "zzstsgl": "",
            "dylzfpmxxh": None,
        },
        {
            "xh": 2,
            "spmc": "*计算机外部设备*无线鼠标",
            "ssflbm": "1090511030000000000",
            "ggxh": "",
            "dw": "",
            "spsl": "",
            "dj": "",
            "je": "-17.70",
            "sl": "0.13",
            "se": "-2.30",
            "hsje": "-20.00",
            "fphxz": "1",
            "yhzcbs": "0",
            "lslbs": "",
            "zzstsgl": "",
            "dylzfpmxxh": None,
        },
        {
            "xh": 3,
            "spmc": "*信息技术服务*软件维护",
            "ssflbm": "3040201030000000000",
            "ggxh": "",
            "dw": "",
            "spsl": "1",
            "dj": "94.33962264",
            "je": "94.34",
            "sl": "0.06",
            "se": "5.66",
            "hsje": "100.00",
            "fphxz": "0",
            "yhzcbs": "0",
            "lslbs": "",
            "zzstsgl": "",
            "dylzfpmxxh": None,
        },
    ],
}


def render_http(request: HttpRequest) -> str:
    head = [f"{request.method} {request.url}"] + [f"{k}: {v}" for k, v in request.headers]
    return "\n".join(head) + "\n\n" + request.body.decode("ascii") + "\n"


def read_golden(name: str) -> str:
    path = GOLDEN / name
    assert path.is_file(), f"golden file {path} is missing: golden files are never created by the tests"
    return path.read_text(encoding="utf-8")


# --- the envelope --------------------------------------------------------------------------------
def test_issue_request_matches_the_golden_bytes() -> None:
    request = provider().build_issue(blue_order(), "SER-0001", NOW)
    assert render_http(request) == read_golden("sta_issue_blue.http")


def test_golden_issue_request_carries_the_documented_payload_and_signature() -> None:
    # Independent of the code under test: parse the golden text, decrypt and re-sign with gmssl.
    text = read_golden("sta_issue_blue.http")
    head, body = text.split("\n\n", 1)
    request_line, *header_lines = head.split("\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    body_bytes = body.rstrip("\n").encode("ascii")
    assert request_line == "POST https://lq.example.test:8443/access/v2/invoke/LQKP/QDFPSC"
    plain = reference.sm4_ecb_decrypt(bytes.fromhex(SM4_KEY_HEX), base64.b64decode(body_bytes, validate=True))
    assert plain == json.dumps(EXPECTED_BLUE_PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
    canonical = "\n".join([APP_ID, "QDFPSC", "1735787045", NONCE, reference.sm3(body_bytes).hex()])
    assert headers["access_signature"] == reference.hmac_sm3(SIGN_KEY.encode(), canonical.encode()).hex()
    assert headers == {
        "Content-Type": "text/plain; charset=utf-8",
        "fwbm": "QDFPSC",
        "nlbm": "LQKP",
        "jrdwptbh": APP_ID,
        "sydwptbh": SELLER_TAX_ID,
        "ylbm": "01",
        "sxcsbz": "0",
        "X-Timestamp": "1735787045",
        "X-Nonce": NONCE,
        "access_signature": headers["access_signature"],
    }


def test_issue_payload_maps_the_order_field_by_field() -> None:
    assert sent_payload(provider().build_issue(blue_order(), "SER-0001", NOW)) == EXPECTED_BLUE_PAYLOAD


def test_issue_is_never_marked_idempotent() -> None:
    request = provider().build_issue(blue_order(), "SER-0001", NOW)
    assert request.idempotent is False
    assert request.operation == "issue"


def test_options_set_the_url_and_routing_headers() -> None:
    options = {"using_platform_id": "PLAT-9", "capability_code": "LQX", "use_case": "07", "sandbox": "1"}
    request = provider(options).build_query_credit(NOW)
    assert request.url == "https://lq.example.test:8443/access/v2/invoke/LQX/CXSXED"
    assert (request.header("nlbm"), request.header("sydwptbh")) == ("LQX", "PLAT-9")
    assert (request.header("ylbm"), request.header("sxcsbz")) == ("07", "1")


def test_the_default_nonce_is_fresh_32_hex_characters() -> None:
    p = sta.StaProvider(credentials(), ENDPOINT, seller_tax_id=SELLER_TAX_ID)
    first, second = p.build_query_credit(NOW), p.build_query_credit(NOW)
    assert first.header("X-Nonce") != second.header("X-Nonce")
    assert len(first.header("X-Nonce") or "") == 32


def test_a_malformed_nonce_from_the_factory_is_refused() -> None:
    with pytest.raises(ValueError, match="nonce"):
        provider(nonce="XYZ").build_query_credit(NOW)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        provider().build_query_credit(datetime(2025, 1, 2, 3, 4, 5))


def test_special_invoice_for_an_individual_sets_fppz_and_gmfzrrbs() -> None:
    special = blue_order(invoice_type=InvoiceType.SPECIAL)
    assert sent_payload(provider().build_issue(special, "S", NOW))["fppz"] == "01"
    person = blue_order(buyer=InvoiceBuyer(name="王五", type=BuyerType.INDIVIDUAL))
    payload = sent_payload(provider().build_issue(person, "S", NOW))
    assert (payload["gmfzrrbs"], payload["gmfnsrsbh"], payload["gmfmc"]) == ("Y", "", "王五")


def test_zero_rate_line_carries_its_flag_and_policy_text() -> None:
    order = blue_order()
    exempt = order.lines[2].model_copy(
        update={
            "tax_rate": Decimal("0"),
            "tax": Decimal("0.00"),
            "amount": Decimal("100.00"),
            "unit_price": Decimal("100"),
            "zero_rate_flag": ZeroRateFlag.EXEMPT,
        }
    )
    zero = order.lines[2].model_copy(update={"tax_rate": Decimal("0.00"), "zero_rate_flag": ZeroRateFlag.ZERO_RATE})
    order = order.model_copy(update={"lines": (order.lines[0], order.lines[1], exempt, zero)})
    lines = sent_payload(provider().build_issue(order, "S", NOW))["mxs"]
    assert (lines[2]["sl"], lines[2]["lslbs"], lines[2]["yhzcbs"], lines[2]["zzstsgl"]) == ("0", "1", "1", "免税")
    assert (lines[3]["sl"], lines[3]["lslbs"], lines[3]["yhzcbs"], lines[3]["zzstsgl"]) == ("0", "3", "0", "")


def test_money_with_more_than_two_decimals_is_refused_not_rounded() -> None:
    order = blue_order().model_copy(update={"total": Decimal("280.001")})
    with pytest.raises(ValueError, match="2 decimals"):
        provider().build_issue(order, "S", NOW)


def test_a_discount_line_first_is_refused() -> None:
    order = blue_order()
    order = order.model_copy(update={"lines": (order.lines[1], order.lines[0])})
    with pytest.raises(ValueError, match="discount"):
        provider().build_issue(order, "S", NOW)


def test_an_order_for_another_seller_is_refused() -> None:
    order = blue_order().model_copy(update={"seller": SELLER.model_copy(update={"tax_id": "91440300MA5XXXXX1Y"})})
    with pytest.raises(ValueError, match="seller"):
        provider().build_issue(order, "S", NOW)


def test_red_invoice_payload_names_the_blue_invoice_form_and_lines() -> None:
    request = provider().build_issue_red(red_order(), "RED-0001", NOW)
    payload = sent_payload(request)
    assert request.operation == "issue_red" and request.idempotent is False
    assert (payload["lzfpbz"], payload["dylzfphm"], payload["hzqrdbh"]) == (
        "1",
        "25312000000000012345",
        "HZ3100002025010200000001",
    )
    assert (payload["hjje"], payload["hjse"], payload["jshj"], payload["gmfzrrbs"]) == (
        "-94.34",
        "-5.66",
        "-100.00",
        "Y",
    )
    line = payload["mxs"][0]
    assert (line["spsl"], line["je"], line["se"], line["hsje"], line["dylzfpmxxh"]) == (
        "-1",
        "-94.34",
        "-5.66",
        "-100.00",
        3,
    )


def test_blue_and_red_builders_refuse_the_other_colour() -> None:
    with pytest.raises(ValueError):
        provider().build_issue(red_order(), "S", NOW)
    with pytest.raises(ValueError):
        provider().build_issue_red(blue_order(), "S", NOW)


def test_red_invoice_with_positive_amounts_is_refused() -> None:
    order = red_order()
    positive = order.lines[0].model_copy(
        update={"amount": Decimal("94.34"), "tax": Decimal("5.66"), "total": Decimal("100.00")}
    )
    order = order.model_copy(update={"lines": (positive,), "total": Decimal("100.00")})
    with pytest.raises(ValueError, match="negative"):
        provider().build_issue_red(order, "S", NOW)


def red_form() -> RedFormRequest:
    return RedFormRequest(
        serial="HZSQ-0001",
        original_invoice_number="25312000000000012345",
        original_issued_at=datetime(2025, 1, 1, 16, 30, tzinfo=UTC),
        reason=RedReason.RETURN,
        seller_tax_id=SELLER_TAX_ID,
        buyer_name="个人",
        buyer_tax_id=None,
        order=red_order(),
    )


def test_red_form_apply_payload_is_the_negative_mirror_in_shanghai_time() -> None:
    request = provider().build_red_form_apply(red_form(), NOW)
    assert request.idempotent is False
    assert sent_payload(request) == {
        "sqlsh": "HZSQ-0001",
        "lrfsf": "0",
        "xsfnsrsbh": SELLER_TAX_ID,
        "gmfnsrsbh": "",
        "gmfmc": "个人",
        "lzfphm": "25312000000000012345",
        "lzkprq": "2025-01-02 00:30:00",
        "hzcxje": "-94.34",
        "hzcxse": "-5.66",
        "chyydm": "02",
        "mxs": [
            {
                "lzmxxh": 3,
                "spmc": "*信息技术服务*软件维护",
                "ssflbm": "3040201030000000000",
                "spsl": "-1",
                "dj": "94.33962264",
                "je": "-94.34",
                "sl": "0.06",
                "se": "-5.66",
            }
        ],
    }


def test_small_payloads_match_the_documented_shapes() -> None:
    p = provider()
    assert sent_payload(p.build_query(NOW, serials=("A", "B"))) == {"fpqqlsh": ["A", "B"], "ddh": []}
    assert sent_payload(p.build_query(NOW, order_nos=("SO-1",))) == {"fpqqlsh": [], "ddh": ["SO-1"]}
    assert sent_payload(p.build_red_form_confirm("HZ1", RedFormAction.CANCEL, NOW)) == {"hzqrdbh": "HZ1", "qrlx": "C"}
    assert sent_payload(p.build_red_form_query("HZ1", NOW)) == {"hzqrdbh": "HZ1"}
    assert sent_payload(p.build_void("25312000000000012345", "ZF-1", NOW)) == {
        "fphm": "25312000000000012345",
        "zflsh": "ZF-1",
    }
    assert sent_payload(p.build_query_credit(NOW)) == {"xsfnsrsbh": SELLER_TAX_ID}
    assert sent_payload(p.build_fetch_tax_codes(NOW, page=3)) == {"page": 3, "size": 500}


def test_queries_are_idempotent_and_writes_are_not() -> None:
    p = provider()
    assert p.build_query(NOW, serials=("A",)).idempotent
    assert p.build_red_form_query("HZ1", NOW).idempotent
    assert p.build_query_credit(NOW).idempotent
    assert p.build_fetch_tax_codes(NOW).idempotent
    assert not p.build_red_form_confirm("HZ1", RedFormAction.CONFIRM, NOW).idempotent
    assert not p.build_void("1", "ZF-1", NOW).idempotent


def test_query_refuses_an_empty_or_oversized_batch() -> None:
    with pytest.raises(ValueError):
        provider().build_query(NOW)
    with pytest.raises(ValueError):
        provider().build_query(NOW, serials=tuple(str(i) for i in range(51)))


def test_void_is_declared_unsupported() -> None:
    assert sta.StaProvider.capabilities.void is False


# --- configuration and secrets -------------------------------------------------------------------
@pytest.mark.parametrize("bad_key", ["0011", "zz" * 16, "00" * 17])
def test_a_malformed_sm4_key_is_a_configuration_error_that_does_not_echo_it(bad_key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        sta.StaProvider(credentials(sm4_key=bad_key), ENDPOINT, seller_tax_id=SELLER_TAX_ID)
    assert bad_key not in str(info.value)


def test_missing_credentials_name_the_key() -> None:
    with pytest.raises(ConfigurationError, match="sign_key"):
        sta.StaProvider(Credentials({"app_id": "a", "sm4_key": SM4_KEY_HEX}), ENDPOINT, seller_tax_id=SELLER_TAX_ID)


def test_a_bad_sandbox_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        provider({"sandbox": "yes"})


def test_repr_and_requests_never_contain_the_keys() -> None:
    p = provider()
    request = p.build_issue(blue_order(), "SER-0001", NOW)
    rendered = repr(p) + repr(request) + render_http(request)
    assert SM4_KEY_HEX not in rendered
    assert SIGN_KEY not in rendered


# --- successful replies --------------------------------------------------------------------------
def test_parse_issue_returns_the_acceptance() -> None:
    p = provider()
    request = p.build_issue(blue_order(), "SER-0001", NOW)
    accepted = p.parse_issue(request, data_reply(request, fpqqlsh="SER-0001", slh="SL-77"))
    assert (accepted.serial, accepted.provider_ref) == ("SER-0001", "SL-77")


def test_an_acceptance_for_another_serial_is_ambiguous() -> None:
    p = provider()
    request = p.build_issue(blue_order(), "SER-0001", NOW)
    with pytest.raises(AmbiguousTaxError):
        p.parse_issue(request, data_reply(request, fpqqlsh="SER-9999", slh="SL-77"))


def test_parse_issue_red_returns_the_acceptance() -> None:
    p = provider()
    request = p.build_issue_red(red_order(), "RED-0001", NOW)
    assert p.parse_issue_red(request, data_reply(request, fpqqlsh="RED-0001", slh="SL-8")).serial == "RED-0001"


def test_parse_query_maps_every_state_and_field() -> None:
    p = provider()
    request = p.build_query(NOW, serials=("A", "B", "C"))
    response = data_reply(
        request,
        jgs=[
            {
                "fpqqlsh": "A",
                "ddh": "SO-1",
                "zt": "02",
                "fphm": "25312000000000012345",
                "kprq": "2025-01-02 11:04:05",
                "hjje": "253.63",
                "hjse": "26.37",
                "sbyy": "",
                "pdfurl": "https://x/a.pdf",
                "ofdurl": "https://x/a.ofd",
                "xmlurl": "https://x/a.xml",
            },
            {"fpqqlsh": "B", "ddh": "SO-2", "zt": "01", "fphm": "", "kprq": "", "hjje": "", "hjse": "", "sbyy": ""},
            {"fpqqlsh": "C", "ddh": "SO-3", "zt": "03", "fphm": "", "kprq": "", "sbyy": "购买方名称与税号不符"},
        ],
    )
    issued, pending, failed = p.parse_query(request, response)
    assert issued.status is InvoiceStatus.ISSUED
    assert issued.invoice_number == "25312000000000012345"
    assert issued.issued_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (issued.total_amount, issued.total_tax) == (Decimal("253.63"), Decimal("26.37"))
    assert (issued.pdf_url, issued.ofd_url, issued.xml_url) == ("https://x/a.pdf", "https://x/a.ofd", "https://x/a.xml")
    assert (issued.order_no, issued.provider_status) == ("SO-1", "02")
    assert pending.status is InvoiceStatus.PENDING and pending.invoice_number is None and pending.total_amount is None
    assert failed.status is InvoiceStatus.FAILED and failed.failure_reason == "购买方名称与税号不符"


def test_query_amounts_sent_as_json_numbers_are_decimals_not_floats() -> None:
    p = provider()
    request = p.build_query(NOW, serials=("A",))
    response = data_reply(request, jgs=[{"fpqqlsh": "A", "zt": "02", "fphm": "25312000000000012345", "hjje": 0.1}])
    [result] = p.parse_query(request, response)
    assert result.total_amount == Decimal("0.1")
    assert isinstance(result.total_amount, Decimal)


@pytest.mark.parametrize(
    "item",
    [
        {"fpqqlsh": "A", "zt": "09"},
        {"fpqqlsh": "A", "zt": "02", "fphm": ""},
        {"fpqqlsh": "A", "zt": "02", "fphm": "25312000000000012345", "kprq": "02/01/2025"},
        {"fpqqlsh": "A", "zt": "02", "fphm": "25312000000000012345", "hjje": "abc"},
        {"zt": "01"},
    ],
)
def test_a_query_result_outside_the_contract_is_ambiguous(item: dict[str, Any]) -> None:
    p = provider()
    request = p.build_query(NOW, serials=("A",))
    with pytest.raises(AmbiguousTaxError):
        p.parse_query(request, data_reply(request, jgs=[item]))


@pytest.mark.parametrize(
    ("build", "parse"),
    [
        (lambda p: p.build_red_form_apply(red_form(), NOW), "parse_red_form_apply"),
        (lambda p: p.build_red_form_confirm("HZ1", RedFormAction.CONFIRM, NOW), "parse_red_form_confirm"),
        (lambda p: p.build_red_form_query("HZ1", NOW), "parse_red_form_query"),
    ],
)
def test_red_form_replies_map_to_a_red_form(build: Any, parse: str) -> None:
    p = provider()
    request = build(p)
    response = data_reply(
        request, hzqrdbh="HZ1", hzqrxxztdm="04", lzfphm="25312000000000012345", hzcxje="-94.34", hzcxse="-5.66"
    )
    form = getattr(p, parse)(request, response)
    assert (form.form_id, form.state, form.original_invoice_number) == (
        "HZ1",
        RedFormState.CONFIRMED,
        "25312000000000012345",
    )
    assert (form.red_amount, form.red_tax, form.provider_status) == (Decimal("-94.34"), Decimal("-5.66"), "04")
    assert form.state.allows_red_invoice


def test_an_unknown_red_form_state_is_ambiguous() -> None:
    p = provider()
    request = p.build_red_form_query("HZ1", NOW)
    with pytest.raises(AmbiguousTaxError):
        p.parse_red_form_query(request, data_reply(request, hzqrdbh="HZ1", hzqrxxztdm="99"))


def test_parse_void_success_reports_voided() -> None:
    p = provider()
    request = p.build_void("25312000000000012345", "ZF-1", NOW)
    result = p.parse_void(request, data_reply(request))
    assert (result.invoice_number, result.status) == ("25312000000000012345", InvoiceStatus.VOIDED)


def test_parse_query_credit_returns_decimals() -> None:
    p = provider()
    request = p.build_query_credit(NOW)
    credit = p.parse_query_credit(request, data_reply(request, zsxed="1000000.00", ysyed="2500.50", syed="997499.50"))
    assert (credit.total, credit.used, credit.remaining) == (
        Decimal("1000000.00"),
        Decimal("2500.50"),
        Decimal("997499.50"),
    )


def test_parse_query_credit_without_a_field_is_ambiguous() -> None:
    p = provider()
    request = p.build_query_credit(NOW)
    with pytest.raises(AmbiguousTaxError):
        p.parse_query_credit(request, data_reply(request, zsxed="1.00", ysyed="0.00"))


def test_parse_fetch_tax_codes_returns_entries_with_decimal_rates() -> None:
    p = provider()
    request = p.build_fetch_tax_codes(NOW)
    response = data_reply(
        request,
        total=1,
        mxs=[{"ssflbm": "3070401000000000000", "spmc": "餐饮服务", "sphfwjc": "餐饮服务", "sl": ["0.06", "0.03"]}],
    )
    [entry] = p.parse_fetch_tax_codes(request, response)
    assert (entry.code, entry.name, entry.short_name) == ("3070401000000000000", "餐饮服务", "餐饮服务")
    assert entry.rates == (Decimal("0.06"), Decimal("0.03"))


def test_a_parser_given_another_services_request_is_a_programming_error() -> None:
    p = provider()
    request = p.build_query_credit(NOW)
    with pytest.raises(ValueError, match="CXSSFLBM"):
        p.parse_fetch_tax_codes(request, data_reply(request))
