"""Alipay async notifications: signed with python-alipay-sdk (``AliPay._sign``) the way Alipay signs,
cross-checked with the SDK's ``verify``."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from alipay import AliPay
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid, WebhookError
from chalicelib.domain.models import EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import alipay
from chalicelib.webhooks.base import Outcome

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 5, 1, 2, 20, 3, tzinfo=UTC)
APP_ID = "2021000122671234"
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Keys:
    alipay_key: rsa.RSAPrivateKey  # Alipay's own key pair: it signs notifies with the private half
    other: rsa.RSAPrivateKey
    sdk: AliPay  # python-alipay-sdk configured with Alipay's key pair (signs like Alipay, verifies like us)
    public_b64: str  # the "支付宝公钥" as the console shows it: bare base64
    public_pem: str
    cert_pem: str


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def keys() -> Keys:
    alipay_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        alipay_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sdk = AliPay(
        appid=APP_ID,
        app_private_key_string=_pem_private(alipay_key),
        alipay_public_key_string=public_pem,
        sign_type="RSA2",
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ant Financial Certification Authority Class 2 R1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(alipay_key.public_key())
        .serial_number(4096)
        .not_valid_before(datetime(2023, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2028, 1, 1, tzinfo=UTC))
        .sign(alipay_key, hashes.SHA256())
    )
    b64 = "".join(public_pem.strip().splitlines()[1:-1])
    return Keys(alipay_key, other, sdk, b64, public_pem, cert.public_bytes(serialization.Encoding.PEM).decode())


@pytest.fixture(scope="session")
def secrets(keys: Keys) -> dict[str, Any]:
    return {"app_id": APP_ID, "alipay_public_key": keys.public_b64}


def params_of(name: str) -> dict[str, str]:
    return dict(parse_qsl((FIXTURES / name).read_text(encoding="ascii").strip(), keep_blank_values=True))


def unsigned_string(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v)


def signed_body(keys: Keys, params: dict[str, str], *, signer: rsa.RSAPrivateKey | None = None) -> bytes:
    """The form Alipay POSTs: every parameter URL-encoded, plus sign_type and sign."""
    content = unsigned_string(params)
    if signer is None:
        sign = keys.sdk._sign(content)  # the SDK's RSA2 signer (PKCS#1 v1.5, SHA-256, base64)
    else:
        sign = base64.b64encode(signer.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return urlencode({**params, "sign_type": "RSA2", "sign": sign}).encode("ascii")


# --- happy paths -------------------------------------------------------------------------------
def test_trade_success_is_paid_and_cross_checks_with_the_sdk(keys: Keys, secrets: dict[str, Any]) -> None:
    params = params_of("alipay_trade_success.txt")
    body = signed_body(keys, params)
    received = dict(parse_qsl(body.decode(), keep_blank_values=True))
    sign = received.pop("sign")
    assert keys.sdk.verify(received, sign)  # the SDK's notify verification agrees

    event = alipay.verify(body, {"content-type": "application/x-www-form-urlencoded"}, secrets, NOW)
    assert event.kind is EventKind.PAID
    assert event.platform == "alipay"
    assert event.event_id == "2024050100222101959046875548751102"
    assert event.order_id == "SH20240501000124"
    assert event.amount == Decimal("128.00") and isinstance(event.amount, Decimal)
    assert event.occurred_at == datetime(2024, 5, 1, 10, 20, 1, tzinfo=CHINA)
    assert event.event_type == "trade_status_sync:TRADE_SUCCESS"


def test_trade_finished_is_paid(keys: Keys, secrets: dict[str, Any]) -> None:
    params = {**params_of("alipay_trade_success.txt"), "trade_status": "TRADE_FINISHED"}
    assert alipay.verify(signed_body(keys, params), {}, secrets, NOW).kind is EventKind.PAID


def test_partial_refund_notify_is_refunded(keys: Keys, secrets: dict[str, Any]) -> None:
    event = alipay.verify(signed_body(keys, params_of("alipay_refund_partial.txt")), {}, secrets, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.order_id == "SH20240501000124"
    assert event.refund_id == "RF20240503000008"
    assert event.refund_amount == Decimal("30.00")
    assert event.amount == Decimal("128.00")
    assert event.occurred_at == datetime(2024, 5, 3, 16, 0, 1, 318000, tzinfo=CHINA)


def test_trade_closed_after_full_refund_is_refunded(keys: Keys, secrets: dict[str, Any]) -> None:
    event = alipay.verify(signed_body(keys, params_of("alipay_trade_closed_refund.txt")), {}, secrets, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.refund_id == "RF20240504000009"
    assert event.refund_amount == Decimal("128.00")


def test_trade_closed_refund_without_out_biz_no_gets_a_stable_id(keys: Keys, secrets: dict[str, Any]) -> None:
    params = params_of("alipay_trade_closed_refund.txt")
    del params["out_biz_no"]
    event = alipay.verify(signed_body(keys, params), {}, secrets, NOW)
    assert event.refund_id == "2024050122001446870501234567:closed"


def test_gbk_charset_is_verified_over_gbk_bytes(keys: Keys, secrets: dict[str, Any]) -> None:
    params = {**params_of("alipay_trade_success.txt"), "charset": "gbk", "body": "西湖·湖景房"}
    content = unsigned_string(params).encode("gbk")
    sign = base64.b64encode(keys.alipay_key.sign(content, padding.PKCS1v15(), hashes.SHA256())).decode()
    body = urlencode({**params, "sign_type": "RSA2", "sign": sign}, encoding="gbk").encode("ascii")
    assert alipay.verify(body, {}, secrets, NOW).order_id == "SH20240501000124"


def test_empty_values_are_left_out_of_the_signed_string(keys: Keys, secrets: dict[str, Any]) -> None:
    params = {**params_of("alipay_trade_success.txt"), "passback_params": ""}
    body = signed_body(keys, params)
    assert b"passback_params=&" in body or body.endswith(b"passback_params=")
    assert alipay.verify(body, {}, secrets, NOW).kind is EventKind.PAID


@pytest.mark.parametrize("form", ["pem", "cert", "list"])
def test_key_formats_and_rotation(keys: Keys, form: str) -> None:
    other_pem = (
        keys.other.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    options: dict[str, dict[str, Any]] = {
        "pem": {"app_id": APP_ID, "alipay_public_key": keys.public_pem},
        "cert": {"app_id": APP_ID, "alipay_public_key": keys.cert_pem},
        "list": {"app_ids": ["2021000000000001", APP_ID], "alipay_public_keys": [other_pem, keys.public_b64]},
    }
    secrets = options[form]
    assert alipay.verify(signed_body(keys, params_of("alipay_trade_success.txt")), {}, secrets, NOW).kind is (
        EventKind.PAID
    )


def test_reply_is_plain_success() -> None:
    for outcome in Outcome:
        r = alipay.reply(outcome, order_key=order_key("s", alipay.NAME, "o"), status="queued")
        assert (r.status, r.body, r.content_type) == (200, b"success", "text/plain")
    assert alipay.NAME == "alipay" and alipay.SIGNS_TIMESTAMP is False


# --- rejections --------------------------------------------------------------------------------
def test_tampered_amount_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    body = signed_body(keys, params_of("alipay_trade_success.txt"))
    with pytest.raises(SignatureInvalid) as err:
        alipay.verify(body.replace(b"total_amount=128.00", b"total_amount=1280.00"), {}, secrets, NOW)
    assert err.value.code == "bad_signature"


def test_added_parameter_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    body = signed_body(keys, params_of("alipay_trade_success.txt")) + b"&refund_fee=128.00"
    with pytest.raises(SignatureInvalid) as err:
        alipay.verify(body, {}, secrets, NOW)
    assert err.value.code == "bad_signature"


def test_wrong_key_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    body = signed_body(keys, params_of("alipay_trade_success.txt"), signer=keys.other)
    with pytest.raises(SignatureInvalid) as err:
        alipay.verify(body, {}, secrets, NOW)
    assert err.value.code == "bad_signature"


def test_other_app_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    params = {**params_of("alipay_trade_success.txt"), "app_id": "2021000000009999"}
    with pytest.raises(SignatureInvalid) as err:
        alipay.verify(signed_body(keys, params), {}, secrets, NOW)
    assert err.value.code == "app_mismatch"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b.replace(b"sign_type=RSA2", b"sign_type=RSA"), "unsupported_algorithm"),
        (lambda b: b.replace(b"sign_type=RSA2", b"sign_type="), "unsupported_algorithm"),
        (lambda b: b.replace(b"&sign_type=RSA2", b""), "unsupported_algorithm"),
        (lambda b: b.split(b"&sign=")[0], "missing_signature"),
        (lambda b: b.split(b"&sign=")[0] + b"&sign=", "missing_signature"),
        (lambda b: b.split(b"&sign=")[0] + b"&sign=%21%21not-base64", "malformed_signature"),
        (lambda b: b.split(b"&sign=")[0] + b"&sign=%E7%AD%BE%E5%90%8D", "malformed_signature"),
        (lambda b: b.split(b"&sign=")[0] + b"&sign=%FF%FE", "malformed_signature"),
        (lambda b: b + b"&sign=QUJD", "malformed_body"),
        (lambda b: b.replace(b"charset=utf-8", b"charset=latin-1"), "malformed_body"),
        (lambda b: b + b"&%FF=1", "malformed_body"),
        (lambda b: b"", "missing_signature"),
        (lambda b: b"&&&", "missing_signature"),
    ],
)
def test_malformed_signature_fields_are_signature_invalid(
    keys: Keys, secrets: dict[str, Any], mutate: Any, code: str
) -> None:
    body = mutate(signed_body(keys, params_of("alipay_trade_success.txt")))
    with pytest.raises(SignatureInvalid) as err:
        alipay.verify(body, {}, secrets, NOW)
    assert err.value.code == code


def test_unusable_secrets(keys: Keys) -> None:
    body = signed_body(keys, params_of("alipay_trade_success.txt"))
    for secrets, code in [
        ({"app_id": APP_ID}, "no_secret"),
        ({"app_id": APP_ID, "alipay_public_key": "not a key"}, "bad_secret"),
        ({"alipay_public_key": keys.public_b64}, "no_secret"),
    ]:
        with pytest.raises(SignatureInvalid) as err:
            alipay.verify(body, {}, secrets, NOW)
        assert err.value.code == code


# --- genuine but irrelevant, or signed but malformed ------------------------------------------
def test_wait_buyer_pay_is_ignored(keys: Keys, secrets: dict[str, Any]) -> None:
    with pytest.raises(IgnoredEvent):
        alipay.verify(signed_body(keys, params_of("alipay_wait_buyer_pay.txt")), {}, secrets, NOW)


def test_trade_closed_unpaid_is_ignored(keys: Keys, secrets: dict[str, Any]) -> None:
    params = {**params_of("alipay_wait_buyer_pay.txt"), "trade_status": "TRADE_CLOSED"}
    with pytest.raises(IgnoredEvent):
        alipay.verify(signed_body(keys, params), {}, secrets, NOW)


def test_other_notify_type_is_ignored(keys: Keys, secrets: dict[str, Any]) -> None:
    params = {**params_of("alipay_trade_success.txt"), "notify_type": "fund_auth_freeze"}
    with pytest.raises(IgnoredEvent):
        alipay.verify(signed_body(keys, params), {}, secrets, NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_amount": "12.345"}, "total_amount"),
        ({"total_amount": "1e3"}, "total_amount"),
        ({"total_amount": ""}, "total_amount"),
        ({"out_trade_no": ""}, "out_trade_no"),
        ({"notify_id": ""}, "notify_id"),
        ({"trade_status": ""}, "trade_status"),
        ({"refund_fee": "-1.00"}, "refund_fee"),
        ({"out_biz_no": "RF1"}, "refund_fee"),
    ],
)
def test_signed_wrong_shape_is_malformed(
    keys: Keys, secrets: dict[str, Any], change: dict[str, str], field: str
) -> None:
    params = {**params_of("alipay_trade_success.txt"), **change}
    with pytest.raises(MalformedPayload) as err:
        alipay.verify(signed_body(keys, params), {}, secrets, NOW)
    assert field in err.value.message


def test_signed_invalid_utf8_is_malformed(keys: Keys, secrets: dict[str, Any]) -> None:
    params = params_of("alipay_trade_success.txt")
    content = unsigned_string(params).encode() + b"&zz=\xff"
    sign = base64.b64encode(keys.alipay_key.sign(content, padding.PKCS1v15(), hashes.SHA256())).decode()
    body = urlencode(params).encode() + b"&zz=%FF&sign_type=RSA2&sign=" + quote(sign, safe="").encode()
    with pytest.raises(MalformedPayload):
        alipay.verify(body, {}, secrets, NOW)


# --- properties --------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.lists(
            st.tuples(
                st.sampled_from(["sign", "sign_type", "charset", "app_id", "trade_status", "x"]) | st.text(max_size=8),
                st.text(max_size=40),
            ),
            max_size=8,
        ).map(lambda pairs: urlencode(pairs).encode()),
    ),
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3),
)
def test_any_body_raises_only_webhook_errors(secrets: dict[str, Any], body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(WebhookError):
        alipay.verify(body, headers, secrets, NOW)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.dictionaries(
        st.sampled_from(
            ["trade_status", "total_amount", "refund_fee", "out_biz_no", "out_trade_no", "notify_id", "gmt_payment"]
        ),
        st.text(max_size=20) | st.sampled_from(["TRADE_SUCCESS", "TRADE_CLOSED", "0.00", "1.00", "12.3"]),
        max_size=5,
    )
)
def test_signed_arbitrary_fields_raise_only_webhook_errors_or_parse(
    keys: Keys, secrets: dict[str, Any], extra: dict[str, str]
) -> None:
    params = {**params_of("alipay_trade_success.txt"), **extra}
    try:
        event = alipay.verify(signed_body(keys, params), {}, secrets, NOW)
    except WebhookError:
        return
    assert isinstance(event.amount, Decimal)
