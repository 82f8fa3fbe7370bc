"""WeChat Pay v3 notifications: signed with an RSA key and encrypted with AES-GCM the way WeChat does,
cross-checked with ``wechatpayv3``'s own verify / decrypt helpers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpayv3.utils import aes_decrypt, rsa_verify

from chalicelib.domain.errors import (
    IgnoredEvent,
    MalformedPayload,
    SignatureInvalid,
    TimestampOutOfWindow,
    WebhookError,
)
from chalicelib.domain.models import EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import wechatpay
from chalicelib.webhooks.base import Outcome

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 5, 1, 2, 20, 34, tzinfo=UTC)
APIV3_KEY = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"  # 32 characters
CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"


@dataclass(frozen=True)
class Keys:
    platform: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey
    cert_pem: str
    public_pem: str


@pytest.fixture(scope="session")
def keys() -> Keys:
    platform = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(platform.public_key())
        .serial_number(int(CERT_SERIAL, 16))
        .not_valid_before(datetime(2023, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2028, 1, 1, tzinfo=UTC))
        .sign(platform, hashes.SHA256())
    )
    public_pem = (
        platform.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return Keys(platform, other, cert.public_bytes(serialization.Encoding.PEM).decode(), public_pem)


@pytest.fixture(scope="session")
def secrets(keys: Keys) -> dict[str, Any]:
    return {"apiv3_key": APIV3_KEY, "platform_keys": {CERT_SERIAL: keys.cert_pem, PUB_KEY_ID: keys.public_pem}}


def encrypt_resource(plain: Mapping[str, Any], original_type: str, key: str = APIV3_KEY) -> dict[str, str]:
    nonce = os.urandom(6).hex()  # WeChat uses 12 printable characters
    associated = original_type
    data = json.dumps(plain, ensure_ascii=False).encode()
    ciphertext = AESGCM(key.encode()).encrypt(nonce.encode(), data, associated.encode())
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": associated,
        "nonce": nonce,
    }


def notification(event_type: str, resource: Mapping[str, Any], event_id: str = "EV-2018022511223320873") -> bytes:
    envelope = {
        "id": event_id,
        "create_time": "2024-05-01T10:20:34+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": resource,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def sign(body: bytes, key: rsa.RSAPrivateKey, *, ts: int | None = None, nonce: str = "fdasflkja484w") -> dict[str, str]:
    timestamp = str(int(NOW.timestamp()) if ts is None else ts)
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    return {
        "wechatpay-timestamp": timestamp,
        "wechatpay-nonce": nonce,
        "wechatpay-serial": CERT_SERIAL,
        "wechatpay-signature": signature,
        "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
    }


def fixture(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return result


def paid_body() -> bytes:
    plain = fixture("wechatpay_transaction_success.json")
    return notification("TRANSACTION.SUCCESS", encrypt_resource(plain, "transaction"))


# --- happy paths -------------------------------------------------------------------------------
def test_transaction_success_is_paid_and_cross_checks_with_wechatpayv3(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    headers = sign(body, keys.platform)
    # the platform's own library agrees with the signature and decrypts the resource
    assert rsa_verify(
        headers["wechatpay-timestamp"],
        headers["wechatpay-nonce"],
        body.decode(),
        headers["wechatpay-signature"],
        keys.platform.public_key(),
    )
    resource = json.loads(body)["resource"]
    plain = aes_decrypt(resource["nonce"], resource["ciphertext"], resource["associated_data"], APIV3_KEY)
    assert json.loads(plain)["out_trade_no"] == "SH20240501000123"

    event = wechatpay.verify(body, headers, secrets, NOW)
    assert event.kind is EventKind.PAID
    assert event.platform == "wechatpay"
    assert event.event_id == "EV-2018022511223320873"
    assert event.order_id == "SH20240501000123"
    assert event.amount == Decimal("128.00") and isinstance(event.amount, Decimal)
    assert event.currency == "CNY"
    assert event.occurred_at == datetime(2024, 5, 1, 2, 20, 33, tzinfo=UTC)
    assert event.event_type == "TRANSACTION.SUCCESS"


def test_refund_success_is_refunded(keys: Keys, secrets: dict[str, Any]) -> None:
    plain = fixture("wechatpay_refund_success.json")
    body = notification("REFUND.SUCCESS", encrypt_resource(plain, "refund"), "EV-2024050316000201")
    event = wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.order_id == "SH20240501000123"
    assert event.refund_id == "RF20240503000007"
    assert event.refund_amount == Decimal("30.00")
    assert event.amount == Decimal("128.00")
    assert event.event_id == "EV-2024050316000201"


def test_platform_public_key_id_is_accepted(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    headers = {**sign(body, keys.platform), "wechatpay-serial": PUB_KEY_ID}
    assert wechatpay.verify(body, headers, secrets, NOW).order_id == "SH20240501000123"


def test_rotation_several_serials_and_lower_case_serial(keys: Keys) -> None:
    other_pem = (
        keys.other.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    bare_b64 = "".join(keys.public_pem.strip().splitlines()[1:-1])
    rotating = {
        "apiv3_keys": ["N" * 32, APIV3_KEY],  # new key first, old key still decrypts
        "platform_keys": {"0000NEWSERIAL": other_pem, CERT_SERIAL.lower(): bare_b64},
    }
    body = paid_body()
    assert wechatpay.verify(body, sign(body, keys.platform), rotating, NOW).amount == Decimal("128.00")
    new_headers = {**sign(body, keys.other), "wechatpay-serial": "0000NEWSERIAL"}
    assert wechatpay.verify(body, new_headers, rotating, NOW).amount == Decimal("128.00")


def test_missing_signature_type_is_tolerated(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    headers = sign(body, keys.platform)
    del headers["wechatpay-signature-type"]
    assert wechatpay.verify(body, headers, secrets, NOW).kind is EventKind.PAID


def test_reply_is_what_wechat_expects() -> None:
    for outcome in Outcome:
        r = wechatpay.reply(outcome, order_key=order_key("s", wechatpay.NAME, "o"), status="queued")
        assert r.status == 200
        assert json.loads(r.body) == {"code": "SUCCESS", "message": "成功"}
        assert r.content_type == "application/json"
    assert wechatpay.NAME == "wechatpay" and wechatpay.SIGNS_TIMESTAMP is True


# --- rejections --------------------------------------------------------------------------------
def test_tampered_body_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    headers = sign(body, keys.platform)
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body.replace(b"EV-", b"EX-"), headers, secrets, NOW)
    assert err.value.code == "bad_signature"


def test_wrong_key_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body, sign(body, keys.other), secrets, NOW)
    assert err.value.code == "bad_signature"


@pytest.mark.parametrize("offset", [-301, 301, -86400, 10**6])
def test_stale_or_future_timestamp_is_rejected(keys: Keys, secrets: dict[str, Any], offset: int) -> None:
    body = paid_body()
    headers = sign(body, keys.platform, ts=int(NOW.timestamp()) + offset)
    with pytest.raises(TimestampOutOfWindow) as err:
        wechatpay.verify(body, headers, secrets, NOW)
    assert err.value.code == "stale_timestamp"


def test_timestamp_within_window_is_accepted(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    headers = sign(body, keys.platform, ts=int(NOW.timestamp()) - 299)
    assert wechatpay.verify(body, headers, secrets, NOW).kind is EventKind.PAID


def test_signtest_probe_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    headers = {**sign(body, keys.platform), "wechatpay-signature": "WECHATPAY/SIGNTEST/" + "A" * 40}
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body, headers, secrets, NOW)
    assert err.value.code == "probe_signature"


def test_unknown_serial_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    headers = {**sign(body, keys.platform), "wechatpay-serial": "7132D72A03E93CDDF8C03BBD1F37EEDF"}
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body, headers, secrets, NOW)
    assert err.value.code == "unknown_key"


def test_expired_certificate_is_rejected(keys: Keys, secrets: dict[str, Any]) -> None:
    later = datetime(2029, 1, 1, tzinfo=UTC)
    body = paid_body()
    headers = sign(body, keys.platform, ts=int(later.timestamp()))
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body, headers, secrets, later)
    assert err.value.code == "key_expired"


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("wechatpay-signature", "", "missing_header"),
        ("wechatpay-signature", "not base64 !!!", "malformed_header"),
        ("wechatpay-signature", "QUJD=ZZ", "malformed_header"),
        ("wechatpay-signature", "签名😀", "malformed_header"),
        ("wechatpay-signature", "\udcff", "malformed_header"),
        ("wechatpay-signature", "A" * 5000, "malformed_header"),
        ("wechatpay-signature", base64.b64encode(b"short").decode(), "bad_signature"),
        ("wechatpay-timestamp", "", "missing_header"),
        ("wechatpay-timestamp", "12.5", "malformed_header"),
        ("wechatpay-timestamp", "-1", "malformed_header"),
        ("wechatpay-timestamp", "１２３", "stale_timestamp"),  # full-width digits parse as int: far in the past
        ("wechatpay-timestamp", "9" * 40, "malformed_header"),
        ("wechatpay-nonce", "", "missing_header"),
        ("wechatpay-nonce", "\udcff", "malformed_header"),
        ("wechatpay-serial", "", "missing_header"),
        ("wechatpay-serial", "序列号", "unknown_key"),
        ("wechatpay-signature-type", "WECHATPAY2-SM2-WITH-SM3", "unsupported_algorithm"),
        ("wechatpay-signature-type", "", "unsupported_algorithm"),
    ],
)
def test_malformed_headers_are_signature_invalid(
    keys: Keys, secrets: dict[str, Any], name: str, value: str, code: str
) -> None:
    body = paid_body()
    headers = {**sign(body, keys.platform), name: value}
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body, headers, secrets, NOW)
    assert err.value.code == code


@pytest.mark.parametrize("name", ["wechatpay-signature", "wechatpay-timestamp", "wechatpay-nonce", "wechatpay-serial"])
def test_absent_headers_are_missing_header(keys: Keys, secrets: dict[str, Any], name: str) -> None:
    body = paid_body()
    headers = sign(body, keys.platform)
    del headers[name]
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body, headers, secrets, NOW)
    assert err.value.code == "missing_header"


def test_wrong_apiv3_key_is_decrypt_failed(keys: Keys, secrets: dict[str, Any]) -> None:
    plain = fixture("wechatpay_transaction_success.json")
    body = notification("TRANSACTION.SUCCESS", encrypt_resource(plain, "transaction", key="X" * 32))
    with pytest.raises(SignatureInvalid) as err:
        wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)
    assert err.value.code == "decrypt_failed"


def test_garbled_ciphertext_is_decrypt_failed(keys: Keys, secrets: dict[str, Any]) -> None:
    resource = encrypt_resource(fixture("wechatpay_transaction_success.json"), "transaction")
    for broken in ({"ciphertext": "@@not-base64@@"}, {"nonce": "x" * 200}, {"associated_data": "other"}):
        body = notification("TRANSACTION.SUCCESS", {**resource, **broken})
        with pytest.raises(SignatureInvalid) as err:
            wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)
        assert err.value.code == "decrypt_failed"


def test_unusable_secrets(keys: Keys) -> None:
    body = paid_body()
    headers = sign(body, keys.platform)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"apiv3_key": APIV3_KEY}, "no_secret"),
        ({"apiv3_key": APIV3_KEY, "platform_keys": {CERT_SERIAL: "garbage"}}, "bad_secret"),
        ({"apiv3_key": "short", "platform_keys": {CERT_SERIAL: keys.cert_pem}}, "bad_secret"),
        ({"platform_keys": {CERT_SERIAL: keys.cert_pem}}, "no_secret"),
    ]
    for secrets, code in cases:
        with pytest.raises(SignatureInvalid) as err:
            wechatpay.verify(body, headers, secrets, NOW)
        assert err.value.code == code


# --- genuine but irrelevant, or signed but malformed ------------------------------------------
@pytest.mark.parametrize("event_type", ["REFUND.ABNORMAL", "REFUND.CLOSED", "FAPIAO.USER_APPLIED", "TRANSACTION.X"])
def test_irrelevant_events_are_ignored(keys: Keys, secrets: dict[str, Any], event_type: str) -> None:
    body = notification(event_type, encrypt_resource({"out_trade_no": "X"}, "refund"))
    with pytest.raises(IgnoredEvent):
        wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)


def test_unpaid_trade_state_is_ignored(keys: Keys, secrets: dict[str, Any]) -> None:
    plain = {**fixture("wechatpay_transaction_success.json"), "trade_state": "NOTPAY"}
    body = notification("TRANSACTION.SUCCESS", encrypt_resource(plain, "transaction"))
    with pytest.raises(IgnoredEvent):
        wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"out_trade_no": None}, "out_trade_no"),
        ({"amount": {"total": "128.00", "currency": "CNY"}}, "amount.total"),
        ({"amount": {"total": 1.5, "currency": "CNY"}}, "amount.total"),
        ({"amount": {"total": True}}, "amount.total"),
        ({"amount": None}, "amount"),
    ],
)
def test_signed_wrong_shape_is_malformed(
    keys: Keys, secrets: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    plain = {**fixture("wechatpay_transaction_success.json"), **change}
    body = notification("TRANSACTION.SUCCESS", encrypt_resource(plain, "transaction"))
    with pytest.raises(MalformedPayload) as err:
        wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)
    assert field in err.value.message


def test_signed_non_json_body_is_malformed(keys: Keys, secrets: dict[str, Any]) -> None:
    for body in (b"not json", b"[1,2]", b'{"id": "x"}', b'{"id":"x","event_type":"REFUND.SUCCESS"}'):
        with pytest.raises(MalformedPayload):
            wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)


def test_refund_without_refund_id_is_malformed(keys: Keys, secrets: dict[str, Any]) -> None:
    plain = {**fixture("wechatpay_refund_success.json"), "out_refund_no": None, "refund_id": None}
    body = notification("REFUND.SUCCESS", encrypt_resource(plain, "refund"))
    with pytest.raises(MalformedPayload) as err:
        wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)
    assert "out_refund_no" in err.value.message


# --- properties --------------------------------------------------------------------------------
HEADER_NAMES = [
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-serial",
    "wechatpay-signature",
    "wechatpay-signature-type",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=512),
    values=st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(
                st.text(max_size=80),
                st.just(str(int(NOW.timestamp()))),
                st.just(CERT_SERIAL),
                st.just(PUB_KEY_ID),
                st.just("WECHATPAY2-SHA256-RSA2048"),
                st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
            )
            for name in HEADER_NAMES
        },
    ),
)
def test_any_body_and_headers_raise_only_webhook_errors(
    secrets: dict[str, Any], body: bytes, values: dict[str, str]
) -> None:
    with pytest.raises(WebhookError):
        wechatpay.verify(body, values, secrets, NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plain=st.fixed_dictionaries(
        {},
        optional={
            "out_trade_no": json_values,
            "trade_state": st.sampled_from(["SUCCESS", "NOTPAY"]) | json_values,
            "amount": st.fixed_dictionaries({}, optional={"total": json_values, "currency": json_values}) | json_values,
            "success_time": json_values,
            "out_refund_no": json_values,
            "refund_status": json_values,
        },
    ),
    event_type=st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]),
)
def test_signed_arbitrary_resources_raise_only_webhook_errors_or_parse(
    keys: Keys, secrets: dict[str, Any], plain: dict[str, Any], event_type: str
) -> None:
    body = notification(event_type, encrypt_resource(plain, "transaction"))
    try:
        event = wechatpay.verify(body, sign(body, keys.platform), secrets, NOW)
    except WebhookError:
        return
    assert isinstance(event.amount, Decimal)


def test_time_of_day_does_not_matter_for_the_window(keys: Keys, secrets: dict[str, Any]) -> None:
    body = paid_body()
    ts = int((NOW + timedelta(seconds=120)).timestamp())
    assert wechatpay.verify(body, sign(body, keys.platform, ts=ts), secrets, NOW).kind is EventKind.PAID
