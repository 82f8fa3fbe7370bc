"""``sta`` wire format, sans-IO: the envelope, SM4 encoding, HMAC-SM3 signing and reply verification.

A request is ``POST {endpoint}/access/v2/invoke/{nlbm}/{fwbm}`` whose body is the payload as compact
JSON → PKCS#7 → SM4-ECB → Base64, signed (``access_signature``) with HMAC-SM3 over the canonical
five-line string, with the routing headers of ``docs/tax-protocol.md``. A reply is
``{"httpStatusCode": 200, "body": Base64(SM4(JSON))}`` signed over the inner body string;
:func:`open_reply` checks the HTTP status, verifies the signature, decrypts, and returns the
``Response.Data`` object or raises the ``TaxError`` that :mod:`chalicelib.taxapi.sta_mapping`'s error
table names. Key material arrives as arguments and never appears in a message.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from chalicelib.crypto import CryptoError, hmac_sm3, sm3, sm4_ecb_decrypt, sm4_ecb_encrypt
from chalicelib.domain.errors import AmbiguousTaxError, AuthTaxError, PermanentTaxError, RetryableTaxError
from chalicelib.taxapi import sta_mapping as m
from chalicelib.taxapi.base import HttpRequest, HttpResponse

# --- service codes (fwbm) ------------------------------------------------------------------------
ISSUE: Final = "QDFPSC"
QUERY: Final = "CXQDFPSCJG"
RED_FORM_APPLY: Final = "QDHZQRDSQ"
RED_FORM_CONFIRM: Final = "QDHZQRDQR"
RED_FORM_QUERY: Final = "CXHZQRD"
VOID: Final = "ZFFP"
CREDIT: Final = "CXSXED"
TAX_CODES: Final = "CXSSFLBM"

_NONCE_RE: Final = re.compile(r"^[0-9a-f]{32}$")
_SIGNATURE_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP_RE: Final = re.compile(r"^[0-9]{1,12}$")


def default_nonce() -> str:
    """32 lower-case hex characters from the OS CSPRNG."""
    return secrets.token_hex(16)


def unix_seconds(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp())


# --- encoding and signing ------------------------------------------------------------------------
def canonical_string(app_id: str, service: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The five signed lines: app id, service code, timestamp, nonce, hex(SM3(body))."""
    return "\n".join((app_id, service, timestamp, nonce, sm3(body).hex()))


def sign(sign_key: bytes, *, app_id: str, service: str, timestamp: str, nonce: str, body: bytes) -> str:
    """``access_signature``: hex(HMAC-SM3(sign_key, UTF-8(canonical string)))."""
    canonical = canonical_string(app_id, service, timestamp, nonce, body)
    return hmac_sm3(sign_key, canonical.encode("utf-8")).hex()


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON in the payload's key order, UTF-8 (non-ASCII kept as is)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encrypt_body(sm4_key: bytes, payload: Mapping[str, Any]) -> bytes:
    """Base64(SM4-ECB(PKCS#7(UTF-8(JSON(payload))))) as ASCII bytes."""
    return base64.b64encode(sm4_ecb_encrypt(sm4_key, encode_payload(payload)))


def decrypt_body(sm4_key: bytes, body: bytes | str) -> Any:
    """Inverse of :func:`encrypt_body`; JSON numbers become Decimal/int, never float."""
    raw = base64.b64decode(body, validate=True)
    return json.loads(sm4_ecb_decrypt(sm4_key, raw).decode("utf-8"), parse_float=Decimal)


# --- the request envelope ------------------------------------------------------------------------
def signed_request(
    *,
    endpoint: str,
    service: str,
    body: bytes,
    timestamp: str,
    nonce: str,
    app_id: str,
    sign_key: bytes,
    capability_code: str,
    using_platform_id: str,
    use_case: str,
    sandbox: str,
    idempotent: bool,
    operation: str,
) -> HttpRequest:
    """The signed ``POST`` that carries an encrypted ``body`` (:func:`encrypt_body`) to ``service``."""
    if not _NONCE_RE.match(nonce):
        raise ValueError("nonce must be 32 lower-case hex characters")
    signature = sign(sign_key, app_id=app_id, service=service, timestamp=timestamp, nonce=nonce, body=body)
    headers = (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("fwbm", service),
        ("nlbm", capability_code),
        ("jrdwptbh", app_id),
        ("sydwptbh", using_platform_id),
        ("ylbm", use_case),
        ("sxcsbz", sandbox),
        ("X-Timestamp", timestamp),
        ("X-Nonce", nonce),
        ("access_signature", signature),
    )
    url = f"{endpoint}/access/v2/invoke/{capability_code}/{service}"
    return HttpRequest(method="POST", url=url, headers=headers, body=body, idempotent=idempotent, operation=operation)


def build_reply(
    response: Mapping[str, Any],
    *,
    service: str,
    app_id: str,
    sm4_key: bytes,
    sign_key: bytes,
    timestamp: str,
    nonce: str,
) -> HttpResponse:
    """The receiver's side of the envelope: an HTTP 200 reply carrying ``response``, encrypted and signed.

    Used by the tests, the benchmark and the worked example; the sandbox may use it too (it is the
    same contract seen from the other end).
    """
    inner = encrypt_body(sm4_key, response).decode("ascii")
    signature = sign(sign_key, app_id=app_id, service=service, timestamp=timestamp, nonce=nonce, body=inner.encode())
    body = json.dumps({"httpStatusCode": 200, "body": inner}, separators=(",", ":")).encode("ascii")
    headers = (
        ("Content-Type", "application/json"),
        ("X-Timestamp", timestamp),
        ("X-Nonce", nonce),
        ("access_signature", signature),
    )
    return HttpResponse(status=200, headers=headers, body=body)


# --- reply verification --------------------------------------------------------------------------
def open_reply(
    request: HttpRequest, response: HttpResponse, service: str, *, app_id: str, sm4_key: bytes, sign_key: bytes
) -> dict[str, Any]:
    """Verify, decrypt and unwrap a reply: the ``Data`` object, or the mapped TaxError."""
    sent = request.header("fwbm")
    if sent != service:
        raise ValueError(f"this parser answers {service}, the request was {sent}")
    status = response.status
    if status in (401, 403):
        raise AuthTaxError(
            f"{service}: HTTP {status}",
            provider_code=plain_error_code(response.body) or f"HTTP{status}",
        )
    if status == 429 or 500 <= status <= 599:
        raise RetryableTaxError(f"{service}: HTTP {status}", provider_code=f"HTTP{status}")
    if status != 200:
        # Undocumented status: we cannot tell whether the platform acted on the request.
        raise AmbiguousTaxError(f"{service}: unexpected HTTP {status}", provider_code=f"HTTP{status}")
    inner = verified_inner_body(response, service, app_id=app_id, sm4_key=sm4_key, sign_key=sign_key)
    try:
        decrypted = decrypt_body(sm4_key, inner)
    except (ValueError, CryptoError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise AmbiguousTaxError(f"{service}: reply body cannot be decrypted") from None
    envelope = decrypted.get("Response") if isinstance(decrypted, dict) else None
    if not isinstance(envelope, dict):
        raise AmbiguousTaxError(f"{service}: reply lacks Response")
    data = envelope.get("Data")
    error = envelope.get("Error")
    if error is not None:
        raise m.map_error(service, error, data)
    if not isinstance(data, dict):
        raise AmbiguousTaxError(f"{service}: reply has neither Data nor Error")
    code = m.text(data.get("returncode"))
    if code is not None and code != "00":
        message = m.text(data.get("returnmsg")) or ""
        raise PermanentTaxError(f"{service}: returncode {code} {message}".strip(), provider_code=code)
    return data


def verified_inner_body(response: HttpResponse, service: str, *, app_id: str, sm4_key: bytes, sign_key: bytes) -> str:
    """The encrypted inner body of a reply whose ``access_signature`` verifies."""
    try:
        outer = json.loads(response.body.decode("utf-8"), parse_float=Decimal)
    except ValueError:
        raise AmbiguousTaxError(f"{service}: reply is not JSON") from None
    inner = outer.get("body") if isinstance(outer, dict) else None
    if not isinstance(inner, str) or not inner.isascii():
        raise AmbiguousTaxError(f"{service}: reply lacks the encrypted body")
    timestamp = response.header("X-Timestamp") or ""
    nonce = response.header("X-Nonce") or ""
    signature = response.header("access_signature") or ""
    if not (_TIMESTAMP_RE.match(timestamp) and _NONCE_RE.match(nonce) and _SIGNATURE_RE.match(signature)):
        raise AmbiguousTaxError(f"{service}: reply signature headers missing or malformed")
    expected = sign(
        sign_key,
        app_id=app_id,
        service=service,
        timestamp=timestamp,
        nonce=nonce,
        body=inner.encode("ascii"),
    )
    if not hmac.compare_digest(expected, signature):
        raise unverified_auth_error(inner, service, sm4_key=sm4_key) or AmbiguousTaxError(
            f"{service}: reply signature does not verify"
        )
    return inner


def unverified_auth_error(inner: str, service: str, *, sm4_key: bytes) -> AuthTaxError | None:
    """A reply we cannot verify is garbled (Ambiguous) — except the receiver's own auth refusal.

    The receiver signs its E2001–E2003 replies with the app's real sign key, so a client holding a
    wrong ``sign_key`` can never verify them: without this, a misconfigured key reads as "outcome
    unknown" forever instead of "alert, pause the store". The receiver refused before acting, and
    an unverified reply can only turn into this refusal, never into a success or a duplicate.
    """
    try:
        decrypted = decrypt_body(sm4_key, inner)
    except (ValueError, CryptoError, binascii.Error):
        return None
    envelope = decrypted.get("Response") if isinstance(decrypted, dict) else None
    error = envelope.get("Error") if isinstance(envelope, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, str) or m.ERROR_CLASSES.get(code) is not AuthTaxError:
        return None
    return AuthTaxError(
        f"{service}: {code} refused, and the reply signature does not verify (check sign_key)",
        provider_code=code,
    )


def plain_error_code(body: bytes) -> str | None:
    """The ``code`` of a plain (unencrypted) JSON error body such as the 401 reply, if any."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) and re.fullmatch(r"[A-Z0-9]{1,16}", code) else None
