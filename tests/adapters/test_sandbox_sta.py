"""The sandbox's STA side over real HTTP: envelope, signatures, rules, async issue, credit, red forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest

from chalicelib.sandbox import SandboxHandle
from tests.support.sandbox_clients import (
    BUYER_CO,
    CATERING,
    DELAY,
    GOODS13,
    SELLER,
    SOFTWARE,
    StaClient,
    admin,
    config,
    http,
    individual,
    running,
    sm4_encrypt,
    sta_invoice,
    sta_line,
    sta_sign,
)


@pytest.fixture()
def sandbox() -> Iterator[SandboxHandle]:
    with running() as handle:
        yield handle


@pytest.fixture()
def sta(sandbox: SandboxHandle) -> StaClient:
    return StaClient(sandbox)


def advance(handle: SandboxHandle, seconds: float) -> None:
    admin(handle.url, "POST", "/admin/clock", {"advance": seconds})


def issue(sta: StaClient, serial: str, **kw: object) -> dict:
    reply = sta.call("QDFPSC", sta_invoice(serial, **kw))  # type: ignore[arg-type]
    assert reply.code == "00", reply.response
    return reply.data


def result(sta: StaClient, serial: str) -> dict:
    reply = sta.call("CXQDFPSCJG", {"fpqqlsh": [serial], "ddh": []})
    assert reply.code == "00", reply.response
    return reply.data["jgs"][0]


def issued_blue(sandbox: SandboxHandle, sta: StaClient, serial: str, **kw: object) -> dict:
    issue(sta, serial, **kw)
    advance(sandbox, DELAY)
    res = result(sta, serial)
    assert res["zt"] == "02"
    return res


# --- envelope and signatures ------------------------------------------------------------------------


def test_issue_is_accepted_pending_then_issued_after_the_clock_advances(sandbox: SandboxHandle, sta: StaClient) -> None:
    data = issue(sta, "S1")
    assert data["returnmsg"] == "成功" and data["fpqqlsh"] == "S1" and re.fullmatch(r"\d{20}", data["slh"])
    assert result(sta, "S1")["zt"] == "01"
    advance(sandbox, DELAY - 1)
    assert result(sta, "S1")["zt"] == "01"
    advance(sandbox, 1)
    res = result(sta, "S1")
    assert res["zt"] == "02"
    assert re.fullmatch(r"26331\d{15}", res["fphm"])  # year 26, province 33, channel 1, sequence
    assert res["kprq"] == "2026-01-01 08:01:00"  # Asia/Shanghai
    assert res["hjje"] == "100.00" and res["hjse"] == "6.00" and res["ddh"] == "ORDER-S1"
    pdf = http(sandbox.url, "GET", res["pdfurl"].removeprefix(sandbox.url))
    assert pdf.status == 200 and pdf.body.startswith(b"%PDF")


def test_query_by_order_number_and_unknown_serial(sta: StaClient) -> None:
    issue(sta, "S1")
    assert sta.call("CXQDFPSCJG", {"ddh": ["ORDER-S1"]}).data["jgs"][0]["fpqqlsh"] == "S1"
    assert sta.call("CXQDFPSCJG", {"fpqqlsh": ["NOPE"]}).code == "E4004"
    assert sta.call("CXQDFPSCJG", {"fpqqlsh": [str(i) for i in range(51)]}).code == "E1001"


def test_bad_signature_is_E2002(sta: StaClient) -> None:
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, sign_key="wrong-key").code == "E2002"
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, signature="0" * 64).code == "E2002"


def test_tampered_body_fails_the_signature(sta: StaClient) -> None:
    body = sm4_encrypt(b'{"xsfnsrsbh":"339902999999789113"}').encode()
    nonce, ts = "a" * 32, str(sta.now())
    sig = sta_sign("CXSXED", ts, nonce, body)
    tampered = sm4_encrypt(b'{"xsfnsrsbh":"339902999999789114"}').encode()
    assert sta.call("CXSXED", body=tampered, nonce=nonce, signature=sig).code == "E2002"


def test_stale_timestamp_is_E2003(sta: StaClient) -> None:
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=sta.now() - 301).code == "E2003"
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=sta.now() + 301).code == "E2003"
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=sta.now() - 300).code == "00"


def test_replayed_nonce_is_E2003_until_the_cache_forgets_it(sandbox: SandboxHandle, sta: StaClient) -> None:
    nonce = "0123456789abcdef0123456789abcdef"
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, nonce=nonce).code == "00"
    reply = sta.call("CXSXED", {"xsfnsrsbh": SELLER}, nonce=nonce)
    assert reply.code == "E2003" and "随机数重复" in reply.error["Message"]  # type: ignore[index]
    advance(sandbox, 601)
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, nonce=nonce).code == "00"


def test_unknown_app_gets_plain_401(sandbox: SandboxHandle) -> None:
    raw = StaClient(sandbox, app="NOBODY").post("CXSXED", {"xsfnsrsbh": SELLER})
    assert raw.status == 401 and raw.json()["code"] == "E2001"


def test_undecryptable_body_is_E1001_body(sta: StaClient) -> None:
    reply = sta.call("CXSXED", body=b"bm90IGNpcGhlcnRleHQ=")
    assert reply.code == "E1001" and "body" in reply.error["Message"]  # type: ignore[index]


def test_seller_outside_the_app_is_E2001(sta: StaClient) -> None:
    assert sta.call("QDFPSC", sta_invoice("S1", xsfnsrsbh="91330106MA2AYNWD8M")).code == "E2001"


# --- idempotency ---------------------------------------------------------------------------------------


def test_repeated_serial_is_E4001_with_the_existing_invoice_and_one_record(
    sandbox: SandboxHandle, sta: StaClient
) -> None:
    first = issue(sta, "DUP-1")
    again = sta.call("QDFPSC", sta_invoice("DUP-1"))
    assert again.code == "E4001"
    assert again.response["Response"]["Data"]["fpqqlsh"] == "DUP-1"  # type: ignore[index]
    assert again.response["Response"]["Data"]["slh"] == first["slh"]  # type: ignore[index]
    advance(sandbox, DELAY)
    number = result(sta, "DUP-1")["fphm"]
    # even a different payload under the same serial gets the existing invoice, never a second one
    third = sta.call("QDFPSC", sta_invoice("DUP-1", lines=[sta_line("5.00")]))
    assert third.code == "E4001" and third.error["Data"]["fphm"] == number  # type: ignore[index]
    count = admin(sandbox.url, "GET", "/admin/invoices/count?order_no=ORDER-DUP-1")
    assert count["count"] == 1


# --- rules ---------------------------------------------------------------------------------------------


def _lines_with_tax_error(n: int, off: str) -> list[dict]:
    out = []
    for _ in range(n):
        ln = sta_line("100.00")
        tax = Decimal(ln["se"]) + Decimal(off)
        ln.update(se=f"{tax:.2f}", hsje=f"{Decimal(ln['je']) + tax:.2f}")
        out.append(ln)
    return out


def _discount_pair(amount: str, discount: str, **over: str) -> list[dict]:
    a = sta_line(amount, fphxz="2")
    d_amount = Decimal(discount)
    d_tax = (d_amount * Decimal("0.06")).quantize(Decimal("0.01"))
    d = sta_line(amount, fphxz="1", spsl="", dj="")
    d.update(je=f"{d_amount:.2f}", se=f"{d_tax:.2f}", hsje=f"{d_amount + d_tax:.2f}", **over)
    return [a, d]


RULE_CASES = [
    ("buyer tax id lower case", lambda: sta_invoice("R", gmfnsrsbh="91330106ma2aynwd8m"), "E1001", "gmfnsrsbh"),
    ("buyer tax id length 16", lambda: sta_invoice("R", gmfnsrsbh="9133010612345678"), "E1001", "gmfnsrsbh"),
    ("company buyer without tax id", lambda: sta_invoice("R", gmfnsrsbh=""), "E1001", "gmfnsrsbh"),
    ("special invoice without tax id", lambda: individual(sta_invoice("R", fppz="01")), "E1001", "gmfnsrsbh"),
    (
        "unknown tax code",
        lambda: sta_invoice("R", lines=[sta_line("10.00", code="3999999999999999999")]),
        "E1003",
        "ssflbm",
    ),
    ("short tax code", lambda: sta_invoice("R", lines=[sta_line("10.00", code="304020101")]), "E1003", "ssflbm"),
    ("rate not allowed for the code", lambda: sta_invoice("R", lines=[sta_line("10.00", rate="0.13")]), "E1003", "sl"),
    ("rate outside the rate set", lambda: sta_invoice("R", lines=[sta_line("10.00", rate="0.07")]), "E1003", "sl"),
    ("wrong short name", lambda: sta_invoice("R", lines=[sta_line("10.00", name="*餐饮服务*软件")]), "E1003", "spmc"),
    ("zero rate without flag", lambda: sta_invoice("R", lines=[sta_line("10.00", rate="0")]), "E1001", "lslbs"),
    ("three-decimal money", lambda: sta_invoice("R", lines=[sta_line("10.00", je="10.001")]), "E1001", "je"),
    ("amount + tax != total", lambda: sta_invoice("R", lines=[sta_line("10.00", hsje="10.61")]), "E1002", "hsje"),
    ("line tax error > 0.06", lambda: sta_invoice("R", lines=_lines_with_tax_error(1, "0.07")), "E1002", "se"),
    ("price × quantity != amount", lambda: sta_invoice("R", lines=[sta_line("10.00", dj="10.02")]), "E1002", "je"),
    ("invoice tax error > 1.27", lambda: sta_invoice("R", lines=_lines_with_tax_error(26, "0.05")), "E1002", "hjse"),
    ("header total != lines", lambda: sta_invoice("R", hjje="99.00"), "E1002", "hjje"),
    ("negative blue line", lambda: sta_invoice("R", lines=[sta_line("-10.00", spsl="-1", dj="10.00")]), "E1002", "je"),
    ("discount line alone", lambda: sta_invoice("R", lines=[sta_line("10.00", fphxz="1")]), "E1001", "fphxz"),
    ("discount larger than line", lambda: sta_invoice("R", lines=_discount_pair("10.00", "-20.00")), "E1002", "je"),
    (
        "discount with other name",
        lambda: sta_invoice("R", lines=_discount_pair("10.00", "-1.00", spmc="x")),
        "E1001",
        "spmc",
    ),
    ("buyer name too long", lambda: sta_invoice("R", gmfmc="名" * 101), "E1001", "gmfmc"),
    ("address + phone too long", lambda: sta_invoice("R", gmfdz="址" * 90, gmfdh="0" * 11), "E1001", "gmfdz"),
    ("remark too long", lambda: sta_invoice("R", bz="备" * 231), "E1001", "bz"),
    ("no lines", lambda: sta_invoice("R", lines=[]), "E1001", "mxs"),
    ("bad blue/red flag", lambda: sta_invoice("R", lzfpbz="2"), "E1001", "lzfpbz"),
    ("over single invoice limit", lambda: sta_invoice("R", lines=[sta_line("5000.01")]), "E1004", ""),
]


@pytest.mark.parametrize(("case", "build", "code", "fld"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_rule_violation_is_refused_with_its_code(sta: StaClient, case: str, build, code: str, fld: str) -> None:
    reply = sta.call("QDFPSC", build())
    assert reply.code == code, reply.response
    assert fld in reply.error["Message"]  # type: ignore[index]
    if code == "E1001":
        assert reply.error["Message"].startswith("参数错误: ")  # type: ignore[index]


def test_valid_discount_pair_zero_rate_with_flag_and_goods_rate_are_accepted(sta: StaClient) -> None:
    lines = [
        *_discount_pair("10.00", "-1.00"),
        sta_line("20.00", rate="0", code=CATERING, name="*餐饮服务*工作餐", lslbs="1"),
        sta_line("30.00", rate="0.13", code=GOODS13, name="洗衣液"),
    ]
    assert sta.call("QDFPSC", sta_invoice("OK", lines=lines)).code == "00"


def test_uscc_checksum_warns_by_default_and_rejects_when_configured() -> None:
    bad = "91330106MA2AYNWD8N"
    with running() as handle:
        assert StaClient(handle).call("QDFPSC", sta_invoice("W", gmfnsrsbh=bad)).code == "00"
        assert admin(handle.url, "GET", "/admin/invoices?serial=W")["invoices"][0]["warnings"]
    with running(config(uscc_policy="reject")) as handle:
        reply = StaClient(handle).call("QDFPSC", sta_invoice("W", gmfnsrsbh=bad))
        assert reply.code == "E1001" and "gmfnsrsbh" in reply.error["Message"]  # type: ignore[index]


# --- credit line -----------------------------------------------------------------------------------------


def test_credit_line_is_consumed_excluding_tax_and_exhaustion_is_E1004(sandbox: SandboxHandle, sta: StaClient) -> None:
    issue(sta, "C1", lines=[sta_line("4000.00")])
    issue(sta, "C2", lines=[sta_line("4000.00")])
    credit = sta.call("CXSXED", {"xsfnsrsbh": SELLER}).data
    assert (credit["zsxed"], credit["ysyed"], credit["syed"]) == ("10000.00", "8000.00", "2000.00")
    reply = sta.call("QDFPSC", sta_invoice("C3", lines=[sta_line("2000.01")]))
    assert reply.code == "E1004" and "授信额度" in reply.error["Message"]  # type: ignore[index]
    assert sta.call("QDFPSC", sta_invoice("C4", lines=[sta_line("2000.00")])).code == "00"


# --- red forms and red invoices -----------------------------------------------------------------------------


def apply_form(sta: StaClient, blue: dict, serial: str = "F1", amount: str = "-100.00", tax: str = "-6.00") -> object:
    payload = {
        "sqlsh": serial,
        "lrfsf": "0",
        "xsfnsrsbh": SELLER,
        "gmfnsrsbh": BUYER_CO,
        "gmfmc": "浙江诺诺网络科技有限公司",
        "lzfphm": blue["fphm"],
        "lzkprq": blue["kprq"],
        "hzcxje": amount,
        "hzcxse": tax,
        "chyydm": "02",
        "mxs": [
            {
                "lzmxxh": "1",
                "spmc": "*信息技术服务*软件维护",
                "ssflbm": SOFTWARE,
                "spsl": "-1",
                "dj": "100.00",
                "je": amount,
                "sl": "0.06",
                "se": tax,
            }
        ],
    }
    return sta.call("QDHZQRDSQ", payload)


def red_invoice(serial: str, blue: dict, form_id: str, amount: str = "-100.00", tax: str = "-6.00") -> dict:
    line = sta_line("100.00", spsl="-1", dj="100.00", dylzfpmxxh="1")
    total = Decimal(amount) + Decimal(tax)
    line.update(je=amount, se=tax, hsje=f"{total:.2f}")
    return sta_invoice(serial, lines=[line], lzfpbz="1", dylzfphm=blue["fphm"], hzqrdbh=form_id)


def test_company_red_form_needs_confirmation_then_red_invoice_restores_credit(
    sandbox: SandboxHandle, sta: StaClient
) -> None:
    blue = issued_blue(sandbox, sta, "B1")
    form = apply_form(sta, blue).data  # type: ignore[attr-defined]
    assert form["hzqrxxztdm"] == "02" and form["lzfphm"] == blue["fphm"]
    assert apply_form(sta, blue).data["hzqrdbh"] == form["hzqrdbh"]  # type: ignore[attr-defined]  # same sqlsh
    refused = sta.call("QDFPSC", red_invoice("RED1", blue, form["hzqrdbh"]))
    assert refused.code == "E1005"
    confirmed = sta.call("QDHZQRDQR", {"hzqrdbh": form["hzqrdbh"], "qrlx": "Y"}).data
    assert confirmed["hzqrxxztdm"] == "04"
    assert sta.call("QDFPSC", red_invoice("RED1", blue, form["hzqrdbh"])).code == "00"
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}).data["ysyed"] == "0.00"
    advance(sandbox, DELAY)
    red = result(sta, "RED1")
    assert red["zt"] == "02" and red["hjje"] == "-100.00"
    # the form is used up, and nothing is left to reverse
    assert sta.call("QDFPSC", red_invoice("RED2", blue, form["hzqrdbh"])).code == "E1005"
    assert apply_form(sta, blue, serial="F2", amount="-0.01", tax="0.00").code == "E1005"  # type: ignore[attr-defined]


def test_individual_buyer_form_needs_no_confirmation(sandbox: SandboxHandle, sta: StaClient) -> None:
    blue = issued_blue(sandbox, sta, "B1", gmfnsrsbh="", gmfmc="个人", gmfzrrbs="Y")
    payload_form = apply_form(sta, blue)
    assert payload_form.code == "E1001"  # type: ignore[attr-defined]  # gmfnsrsbh differs from the blue invoice
    reply = sta.call(
        "QDHZQRDSQ",
        {
            "sqlsh": "F1",
            "lrfsf": "0",
            "xsfnsrsbh": SELLER,
            "gmfnsrsbh": "",
            "gmfmc": "个人",
            "lzfphm": blue["fphm"],
            "lzkprq": blue["kprq"],
            "hzcxje": "-40.00",
            "hzcxse": "-2.40",
            "chyydm": "04",
            "mxs": [
                {
                    "lzmxxh": "1",
                    "spmc": "*信息技术服务*软件维护",
                    "ssflbm": SOFTWARE,
                    "je": "-40.00",
                    "sl": "0.06",
                    "se": "-2.40",
                }
            ],
        },
    )
    assert reply.data["hzqrxxztdm"] == "01"
    line = sta_line("40.00", spsl="", dj="", dylzfpmxxh="1")
    line.update(je="-40.00", se="-2.40", hsje="-42.40")
    form_id = reply.data["hzqrdbh"]
    red = individual(sta_invoice("RED1", lines=[line], lzfpbz="1", dylzfphm=blue["fphm"], hzqrdbh=form_id))
    assert sta.call("QDFPSC", red).code == "00"


def test_unconfirmed_form_expires_after_72_hours(sandbox: SandboxHandle, sta: StaClient) -> None:
    blue = issued_blue(sandbox, sta, "B1")
    form_id = apply_form(sta, blue).data["hzqrdbh"]  # type: ignore[attr-defined]
    advance(sandbox, 72 * 3600 - 1)
    assert sta.call("CXHZQRD", {"hzqrdbh": form_id}).data["hzqrxxztdm"] == "02"
    advance(sandbox, 1)
    assert sta.call("CXHZQRD", {"hzqrdbh": form_id}).data["hzqrxxztdm"] == "07"
    assert sta.call("QDHZQRDQR", {"hzqrdbh": form_id, "qrlx": "Y"}).code == "E1005"
    # an expired form no longer reserves the amount: a new application is accepted
    assert apply_form(sta, blue, serial="F2").data["hzqrxxztdm"] == "02"  # type: ignore[attr-defined]


def test_rejected_and_cancelled_forms_are_voided(sandbox: SandboxHandle, sta: StaClient) -> None:
    blue = issued_blue(sandbox, sta, "B1")
    f1 = apply_form(sta, blue, serial="F1", amount="-10.00", tax="-0.60").data["hzqrdbh"]  # type: ignore[attr-defined]
    f2 = apply_form(sta, blue, serial="F2", amount="-10.00", tax="-0.60").data["hzqrdbh"]  # type: ignore[attr-defined]
    assert sta.call("QDHZQRDQR", {"hzqrdbh": f1, "qrlx": "N"}).data["hzqrxxztdm"] == "05"
    assert sta.call("QDHZQRDQR", {"hzqrdbh": f2, "qrlx": "C"}).data["hzqrxxztdm"] == "08"
    assert sta.call("CXHZQRD", {"hzqrdbh": "NOPE"}).code == "E4004"


def test_form_larger_than_the_blue_invoice_is_E1005(sandbox: SandboxHandle, sta: StaClient) -> None:
    blue = issued_blue(sandbox, sta, "B1")
    assert apply_form(sta, blue, amount="-100.01", tax="-6.00").code == "E1005"  # type: ignore[attr-defined]


def test_void_is_refused_for_digital_invoices(sandbox: SandboxHandle, sta: StaClient) -> None:
    blue = issued_blue(sandbox, sta, "B1")
    assert sta.call("ZFFP", {"fphm": blue["fphm"], "zflsh": "V1"}).code == "E5001"
    assert sta.call("ZFFP", {"fphm": "26331000000000009999", "zflsh": "V2"}).code == "E4004"


def test_tax_codes_are_served(sta: StaClient) -> None:
    data = sta.call("CXSSFLBM", {"page": 1, "size": 500}).data
    codes = {row["ssflbm"]: row for row in data["mxs"]}
    assert data["total"] == len(codes)
    assert codes["3070401000000000000"]["spmc"] == "餐饮服务" and "0.06" in codes["3070401000000000000"]["sl"]
    assert codes["3070402000000000000"]["spmc"] == "住宿服务"


def test_count_by_the_gateways_order_key_or_by_the_shops_order_id(sandbox: SandboxHandle, sta: StaClient) -> None:
    """STA carries both: the serial (``fpqqlsh``, from the order key) and the shop's order id (``ddh``)."""
    from urllib.parse import quote

    from chalicelib.domain.order_keys import order_key, serial_for

    key = order_key("demo-shanghai", "standard", "A-1")
    issued_blue(sandbox, sta, serial_for(key), ddh="A-1")

    by_key = admin(sandbox.url, "GET", f"/admin/invoices/count?order_key={quote(key)}")
    assert (by_key["count"], by_key["serial"]) == (1, serial_for(key))
    assert admin(sandbox.url, "GET", "/admin/invoices/count?order_no=A-1")["count"] == 1
    other = order_key("demo-shanghai", "wechatpay", "A-1")
    assert admin(sandbox.url, "GET", f"/admin/invoices/count?order_key={quote(other)}")["count"] == 0
