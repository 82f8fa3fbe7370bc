"""Nuonuo error codes and HTTP failures → the project's TaxError taxonomy, for every code path."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
)
from chalicelib.taxapi import nuonuo_wire as wire
from chalicelib.taxapi.base import HttpResponse
from tests.unit.test_nuonuo_provider import NOW, TOKEN, provider, reply, three_line_order


def parse_issue_with(response: HttpResponse) -> None:
    p = provider()
    p.parse_issue(p.build_issue(three_line_order(), "S1", NOW), response)


@pytest.mark.parametrize(
    ("code", "describe", "error", "field"),
    [
        ("E9106", "订单编号或流水号不能重复", DuplicateTaxError, "order.orderNo"),
        ("E4000", "接口调用失败", PermanentTaxError, None),
        ("E4000", "buyerName不能为空", PermanentTaxError, "order.buyerName"),
        ("E4000", "goodsCode格式不正确", PermanentTaxError, "order.invoiceDetail.goodsCode"),
        ("E9101", "开票类型错误", PermanentTaxError, "order.invoiceType"),
        ("E9103", "该发票不能重复冲红", PermanentTaxError, "order.invoiceNum"),
        ("E9105", "折扣行的商品名称必须和被折扣行相同", PermanentTaxError, "order.invoiceDetail.goodsName"),
        ("E9108", "折扣行金额不能大于被折扣行的金额", PermanentTaxError, "order.invoiceDetail.taxIncludedAmount"),
        ("E9110", "折扣行必须紧挨被折扣行之后", PermanentTaxError, "order.invoiceDetail.invoiceLineProperty"),
        ("E9111", "蓝票折扣行商品数量应为负", PermanentTaxError, "order.invoiceDetail.num"),
        ("E9112", "折扣行商品税率必须和被折扣行商品税率相同", PermanentTaxError, "order.invoiceDetail.taxRate"),
        ("E9121", "获取商品编码失败", PermanentTaxError, "order.invoiceDetail.goodsCode"),
        ("E9138", "商品编码获取出现异常", PermanentTaxError, "order.invoiceDetail.goodsCode"),
        ("E9130", "（不含税金额+税额）不等于含税金额", PermanentTaxError, "order.invoiceDetail.taxIncludedAmount"),
        ("E9131", "金额*税率-税额大于0.06,明细行名称:毛巾,第2行", PermanentTaxError, "order.invoiceDetail[1].tax"),
        ("E9154", "订单被拆分后大于10张发票", PermanentTaxError, "order.invoiceDetail"),
        ("E9338", "该企业无权限调用API开票", AuthTaxError, None),
        ("E9301", "企业信息备案错误,请联系诺诺网", AuthTaxError, None),
        ("E9302", "身份认证与当前企业税号不相符", AuthTaxError, "order.salerTaxNum"),
        ("070101", "获取app密钥失败或appkey无效", AuthTaxError, None),
        ("070304", "token已过期", AuthTaxError, None),
        ("070305", "token无效", AuthTaxError, None),
        ("070306", "token调用次数超限", AuthTaxError, None),
        ("070307", "应用类型错误", AuthTaxError, None),
        ("070601", "签名验证失败", AuthTaxError, None),
        ("E9613", "同一流水号(订单号)单日最多重试20次", PermanentTaxError, None),
        ("E9500", "发票不存在", PermanentTaxError, None),
        ("E9601", "查询发票信息异常", PermanentTaxError, None),
        ("E9999", "系统繁忙，请稍后重试", RetryableTaxError, None),
        ("E3001", "系统繁忙", RetryableTaxError, None),
        ("E1234", "调用过于频繁", RetryableTaxError, None),
        ("E7777", "未知错误", AmbiguousTaxError, None),  # undocumented: the create may have been acted on
    ],
)
def test_error_codes_map_to_taxonomy(code: str, describe: str, error: type[TaxError], field: str | None) -> None:
    with pytest.raises(TaxError) as err:
        parse_issue_with(reply(None, code=code, describe=describe))
    assert type(err.value) is error
    assert err.value.provider_code == code
    assert err.value.field == field
    assert describe in str(err.value)


def test_not_found_and_retry_cap_carry_their_own_codes() -> None:
    with pytest.raises(PermanentTaxError) as err:
        parse_issue_with(reply(None, code="E9500", describe="发票不存在"))
    assert err.value.code == "tax_not_found"
    with pytest.raises(PermanentTaxError) as err:
        parse_issue_with(reply(None, code="E9613", describe="重试超限"))
    assert err.value.code == "tax_retry_cap"


def test_token_errors_are_recognised_for_one_refresh() -> None:
    assert wire.is_token_error(AuthTaxError("x", provider_code="070305"))
    assert not wire.is_token_error(AuthTaxError("x", provider_code="E9338"))
    assert not wire.is_token_error(PermanentTaxError("x", provider_code="070305"))


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b"<html>oops</html>", RetryableTaxError),
        (502, b"", RetryableTaxError),
        (503, b'{"code":"E0000"}', AmbiguousTaxError),
        (429, b"Too Many Requests", RetryableTaxError),
        (401, b"", AuthTaxError),
        (403, b"forbidden", AuthTaxError),
        (404, b"not found", AmbiguousTaxError),  # no envelope says what was done
        (200, b"<html>gateway</html>", AmbiguousTaxError),
        (200, b"\xff\xfe garbage", AmbiguousTaxError),
        (200, b"[1,2,3]", AmbiguousTaxError),
        (200, b'{"describe":"no code"}', AmbiguousTaxError),
        (200, b'{"code":""}', AmbiguousTaxError),
        (302, b"", AmbiguousTaxError),
    ],
    ids=[
        "500-html",
        "502-empty",
        "503-success-code",
        "429",
        "401",
        "403",
        "404",
        "200-html",
        "200-bytes",
        "200-array",
        "200-no-code",
        "200-empty-code",
        "302",
    ],
)
def test_http_failures_and_garbled_replies(status: int, body: bytes, error: type[TaxError]) -> None:
    with pytest.raises(TaxError) as err:
        parse_issue_with(HttpResponse(status=status, headers=(), body=body))
    assert type(err.value) is error


def test_envelope_error_code_wins_over_http_status() -> None:
    body = json.dumps({"code": "070304", "describe": "token已过期"}, ensure_ascii=False).encode()
    with pytest.raises(AuthTaxError):
        parse_issue_with(HttpResponse(status=401, headers=(), body=body))


def test_error_messages_never_carry_secrets() -> None:
    with pytest.raises(TaxError) as err:
        parse_issue_with(reply(None, code="070601", describe="签名验证失败"))
    text = f"{err.value} {err.value!r} {err.value.field}"
    assert TOKEN not in text and "SDDED2523BED4643" not in text


def test_blamed_field_without_request_uses_documented_field() -> None:
    assert wire.blamed_field("E9118", "红票购方税号与蓝票购方税号不符", None) == "order.buyerTaxNum"
    assert wire.blamed_field("E4000", "xyz第3行", None) is None
