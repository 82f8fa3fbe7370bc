"""StaProvider reply errors: every row of the error table in docs/tax-protocol.md, and garbled replies."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.crypto import primitives
from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
    UnsupportedOperation,
)
from chalicelib.taxapi import sta
from chalicelib.taxapi.base import HttpRequest, HttpResponse, RedFormAction
from tests.unit.test_sta_provider import (
    APP_ID,
    NOW,
    REPLY_NONCE,
    SIGN_KEY,
    SM4_KEY_HEX,
    blue_order,
    data_reply,
    provider,
    red_form,
    red_order,
    reply,
)

P = provider()

# (operation, build, parse) for every operation of the Provider interface.
OPERATIONS: list[tuple[str, Callable[[], HttpRequest], Callable[[HttpRequest, HttpResponse], object]]] = [
    ("issue", lambda: P.build_issue(blue_order(), "SER-1", NOW), P.parse_issue),
    ("issue_red", lambda: P.build_issue_red(red_order(), "RED-1", NOW), P.parse_issue_red),
    ("query", lambda: P.build_query(NOW, serials=("SER-1",)), P.parse_query),
    ("red_form_apply", lambda: P.build_red_form_apply(red_form(), NOW), P.parse_red_form_apply),
    ("red_form_confirm", lambda: P.build_red_form_confirm("HZ1", RedFormAction.CONFIRM, NOW), P.parse_red_form_confirm),
    ("red_form_query", lambda: P.build_red_form_query("HZ1", NOW), P.parse_red_form_query),
    ("void", lambda: P.build_void("25312000000000012345", "ZF-1", NOW), P.parse_void),
    ("query_credit", lambda: P.build_query_credit(NOW), P.parse_query_credit),
    ("fetch_tax_codes", lambda: P.build_fetch_tax_codes(NOW), P.parse_fetch_tax_codes),
]
OPERATION_IDS = [name for name, _, _ in OPERATIONS]


def error_reply(request: HttpRequest, code: str, message: str, data: dict[str, Any] | None = None) -> HttpResponse:
    response: dict[str, Any] = {"Error": {"code": code, "Message": message}}
    if data is not None:
        response["Data"] = data
    return reply(request, {"Response": response})


def signed(request: HttpRequest, inner: str, *, status: int = 200) -> HttpResponse:
    """A correctly signed reply around an arbitrary inner body string."""
    service = request.header("fwbm") or ""
    signature = sta.sign(
        SIGN_KEY.encode(),
        app_id=APP_ID,
        service=service,
        timestamp="1735787046",
        nonce=REPLY_NONCE,
        body=inner.encode(),
    )
    headers = (("X-Timestamp", "1735787046"), ("X-Nonce", REPLY_NONCE), ("access_signature", signature))
    return HttpResponse(status, headers, json.dumps({"httpStatusCode": status, "body": inner}).encode())


def raises(
    request: HttpRequest, response: HttpResponse, parse: Callable[[HttpRequest, HttpResponse], object]
) -> TaxError:
    with pytest.raises(TaxError) as info:
        parse(request, response)
    return info.value


# --- the error table -----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "build", "parse"), OPERATIONS, ids=OPERATION_IDS)
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("E1002", PermanentTaxError),
        ("E1003", PermanentTaxError),
        ("E1004", PermanentTaxError),
        ("E1005", PermanentTaxError),
        ("E2001", AuthTaxError),
        ("E2002", AuthTaxError),
        ("E2003", AuthTaxError),
        ("E3001", RetryableTaxError),
        ("E4004", PermanentTaxError),
    ],
)
def test_error_codes_map_to_the_documented_class_for_every_operation(
    name: str, build: Callable[[], HttpRequest], parse: Any, code: str, expected: type[TaxError]
) -> None:
    request = build()
    error = raises(request, error_reply(request, code, "某个错误"), parse)
    assert type(error) is expected
    assert error.provider_code == code
    assert code in str(error)


def test_e1001_is_permanent_and_names_the_field() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    error = raises(request, error_reply(request, "E1001", "参数错误: gmfnsrsbh 格式不正确"), P.parse_issue)
    assert type(error) is PermanentTaxError
    assert (error.provider_code, error.field) == ("E1001", "gmfnsrsbh")


def test_e1001_field_is_parsed_after_a_full_width_colon_and_with_a_path() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    error = raises(request, error_reply(request, "E1001", "参数错误：mxs[2].sl 不允许"), P.parse_issue)
    assert error.field == "mxs[2].sl"


def test_e1001_without_a_named_field_is_permanent_with_no_field() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    error = raises(request, error_reply(request, "E1001", "参数错误"), P.parse_issue)
    assert type(error) is PermanentTaxError and error.field is None


def test_e4001_is_a_duplicate_carrying_the_existing_invoice_number() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    existing = {"fpqqlsh": "SER-1", "fphm": "25312000000000012345"}
    error = raises(request, error_reply(request, "E4001", "发票已开具", data=existing), P.parse_issue)
    assert isinstance(error, DuplicateTaxError)
    assert (error.existing, error.provider_code) == ("25312000000000012345", "E4001")


def test_e4001_without_a_number_yet_carries_the_existing_serial() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    error = raises(
        request, error_reply(request, "E4001", "发票已开具", data={"fpqqlsh": "SER-1", "fphm": ""}), P.parse_issue
    )
    assert isinstance(error, DuplicateTaxError) and error.existing == "SER-1"


def test_e4001_with_the_existing_invoice_inside_error_is_still_understood() -> None:
    request = P.build_issue_red(red_order(), "RED-1", NOW)
    response = reply(
        request, {"Response": {"Error": {"code": "E4001", "Message": "发票已开具", "fphm": "25312000000000099999"}}}
    )
    error = raises(request, response, P.parse_issue_red)
    assert isinstance(error, DuplicateTaxError) and error.existing == "25312000000000099999"


def test_e5001_on_void_is_an_unsupported_operation() -> None:
    request = P.build_void("25312000000000012345", "ZF-1", NOW)
    error = raises(request, error_reply(request, "E5001", "该发票不支持作废"), P.parse_void)
    assert isinstance(error, UnsupportedOperation) and isinstance(error, PermanentTaxError)
    assert error.provider_code == "E5001"


def test_an_undocumented_error_code_is_ambiguous_never_permanent() -> None:
    """A create the platform may have acted on must be queried before anything is sent again."""
    request = P.build_query_credit(NOW)
    error = raises(request, error_reply(request, "E7777", "未知"), P.parse_query_credit)
    assert type(error) is AmbiguousTaxError and error.provider_code == "E7777" and error.code == "tax_unknown_reply"


def test_a_non_success_returncode_without_error_is_permanent() -> None:
    request = P.build_query_credit(NOW)
    response = reply(request, {"Response": {"Data": {"returncode": "99", "returnmsg": "失败"}}})
    error = raises(request, response, P.parse_query_credit)
    assert type(error) is PermanentTaxError and error.provider_code == "99"


# --- HTTP status -------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "build", "parse"), OPERATIONS, ids=OPERATION_IDS)
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_http_5xx_and_429_are_retryable(name: str, build: Callable[[], HttpRequest], parse: Any, status: int) -> None:
    error = raises(build(), HttpResponse(status, (), b"<html>busy</html>"), parse)
    assert type(error) is RetryableTaxError


def test_http_401_with_the_plain_json_error_is_auth() -> None:
    body = json.dumps({"httpStatusCode": 401, "code": "E2001", "message": "unknown app"}).encode()
    error = raises(P.build_query_credit(NOW), HttpResponse(401, (), body), P.parse_query_credit)
    assert type(error) is AuthTaxError and error.provider_code == "E2001"


def test_http_401_without_a_body_is_still_auth() -> None:
    error = raises(P.build_query_credit(NOW), HttpResponse(401, (), b""), P.parse_query_credit)
    assert type(error) is AuthTaxError


@pytest.mark.parametrize("status", [302, 400, 404])
def test_an_undocumented_http_status_on_issue_is_ambiguous(status: int) -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    assert type(raises(request, HttpResponse(status, (), b""), P.parse_issue)) is AmbiguousTaxError


# --- garbled replies ---------------------------------------------------------------------------
def test_reply_with_bad_signature_is_ambiguous() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    response = reply(request, {"Response": {"Data": {"returncode": "00", "fpqqlsh": "SER-1"}}}, sign_key="wrong")
    assert type(raises(request, response, P.parse_issue)) is AmbiguousTaxError


def test_reply_signed_for_another_service_is_ambiguous() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    other = P.build_query_credit(NOW)
    response = data_reply(other, fpqqlsh="SER-1")  # signed with fwbm CXSXED
    assert type(raises(request, response, P.parse_issue)) is AmbiguousTaxError


def test_reply_whose_body_was_altered_after_signing_is_ambiguous() -> None:
    request = P.build_query_credit(NOW)
    good = data_reply(request, zsxed="1.00", ysyed="0.00", syed="1.00")
    outer = json.loads(good.body)
    forged = data_reply(request, zsxed="9.00", ysyed="0.00", syed="9.00")
    outer["body"] = json.loads(forged.body)["body"]
    response = HttpResponse(200, good.headers, json.dumps(outer).encode())
    assert type(raises(request, response, P.parse_query_credit)) is AmbiguousTaxError


@pytest.mark.parametrize("missing", ["X-Timestamp", "X-Nonce", "access_signature"])
def test_reply_without_a_signature_header_is_ambiguous(missing: str) -> None:
    request = P.build_query_credit(NOW)
    good = data_reply(request, zsxed="1.00", ysyed="0.00", syed="1.00")
    headers = tuple((k, v) for k, v in good.headers if k != missing)
    assert type(raises(request, HttpResponse(200, headers, good.body), P.parse_query_credit)) is AmbiguousTaxError


def test_reply_with_an_upper_case_signature_is_ambiguous() -> None:
    request = P.build_query_credit(NOW)
    good = data_reply(request, zsxed="1.00", ysyed="0.00", syed="1.00")
    headers = tuple((k, v.upper() if k == "access_signature" else v) for k, v in good.headers)
    assert type(raises(request, HttpResponse(200, headers, good.body), P.parse_query_credit)) is AmbiguousTaxError


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe", b"[]", b'{"httpStatusCode": 200}', b'{"httpStatusCode": 200, "body": 5}'],
)
def test_reply_that_is_not_the_json_envelope_is_ambiguous(body: bytes) -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    assert type(raises(request, HttpResponse(200, (), body), P.parse_issue)) is AmbiguousTaxError


def _encrypted(plain: bytes, key: bytes | None = None) -> str:
    return base64.b64encode(primitives.sm4_ecb_encrypt(key or bytes.fromhex(SM4_KEY_HEX), plain)).decode()


@pytest.mark.parametrize(
    "inner",
    [
        "not base64 at all!",
        base64.b64encode(b"short").decode(),  # not whole SM4 blocks
        _encrypted(b'{"Response": {"Data": {}}}', key=bytes(16)),  # another key: padding fails (pinned)
        _encrypted(b"\xff\xfe not utf-8"),
        _encrypted(b"not json"),
        _encrypted(b'["a list"]'),
        _encrypted(b'{"NoResponse": {}}'),
        _encrypted(b'{"Response": {}}'),
        _encrypted(b'{"Response": {"Error": "E3001"}}'),
        _encrypted(b'{"Response": {"Error": {"Message": "no code"}}}'),
    ],
)
def test_signed_reply_that_does_not_decrypt_to_the_envelope_is_ambiguous(inner: str) -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    assert type(raises(request, signed(request, inner), P.parse_issue)) is AmbiguousTaxError


def test_ambiguous_errors_never_contain_key_material() -> None:
    request = P.build_issue(blue_order(), "SER-1", NOW)
    for response in (
        reply(request, {"Response": {}}, sign_key="wrong"),
        signed(request, _encrypted(b"not json")),
    ):
        error = raises(request, response, P.parse_issue)
        assert SM4_KEY_HEX not in str(error) and SIGN_KEY not in str(error)
