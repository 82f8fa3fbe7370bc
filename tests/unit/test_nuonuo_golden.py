"""Golden requests: fixed senid/nonce/timestamp/credentials → exact URL, headers and body bytes.

The golden files (``tests/unit/golden/nuonuo_*.http``) are ``METHOD URL``, one ``Name: value`` line
per header, a blank line, the body bytes and a final newline. A missing golden fails the test: they
are written by hand-review only, never created by the test run. The signature is verified here
independently with hmac/hashlib/base64 over the body bytes exactly as sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from chalicelib.taxapi.base import HttpRequest
from tests.unit.test_nuonuo_provider import CREDS, NOW, TOKEN, provider, red_request, three_line_order

GOLDEN = Path(__file__).parent / "golden"
SENID, NONCE, TIMESTAMP = "0123456789abcdef0123456789abcdef", "12345678", "1715135400"


def render(request: HttpRequest) -> bytes:
    head = [f"{request.method} {request.url}", *(f"{k}: {v}" for k, v in request.headers)]
    return ("\n".join(head) + "\n\n").encode() + request.body + b"\n"


def golden(name: str) -> bytes:
    path = GOLDEN / name
    if not path.is_file():
        pytest.fail(f"golden file {path} is missing: write it by hand after review (never auto-created)")
    return path.read_bytes()


def independent_signature(body: bytes) -> str:
    app_key, app_secret = CREDS.values["app_key"], CREDS.values["app_secret"]
    message = f"a=services&l=v1&p=open&k={app_key}&i={SENID}&n={NONCE}&t={TIMESTAMP}&f={body.decode('utf-8')}"
    digest = hmac.new(app_secret.encode(), message.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


CASES = {
    "nuonuo_issue.http": lambda: provider().build_issue(three_line_order(), "S20240508000001", NOW),
    "nuonuo_query.http": lambda: provider().build_query(NOW, serials=("S20240508000001",)),
    "nuonuo_red_form_apply.http": lambda: provider().build_red_form_apply(red_request(), NOW),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_request_matches_golden_bytes(name: str) -> None:
    assert render(CASES[name]()) == golden(name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_signature_verifies_independently(name: str) -> None:
    request = CASES[name]()
    assert request.header("X-Nuonuo-Sign") == independent_signature(request.body)


@pytest.mark.parametrize("name", sorted(CASES))
def test_url_query_and_headers(name: str) -> None:
    request = CASES[name]()
    url = urlsplit(request.url)
    assert (url.scheme, url.netloc, url.path) == ("https", "sandbox.nuonuocs.cn", "/open/v1/services")
    assert parse_qsl(url.query) == [
        ("senid", SENID),
        ("nonce", NONCE),
        ("timestamp", TIMESTAMP),
        ("appkey", "SD63236305"),
    ]
    assert [k for k, _ in request.headers] == ["Content-Type", "X-Nuonuo-Sign", "accessToken", "userTax", "method"]
    assert request.header("accessToken") == TOKEN
    assert request.method == "POST"


@pytest.mark.parametrize("name", sorted(CASES))
def test_body_is_compact_utf8_without_ascii_escapes(name: str) -> None:
    body = CASES[name]().body
    parsed = json.loads(body, parse_float=Decimal)
    assert body == json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert b"\\u" not in body and b": " not in body and b", " not in body


def test_issue_body_carries_chinese_as_utf8() -> None:
    body = CASES["nuonuo_issue.http"]().body
    assert "保温杯".encode() in body


def test_signature_changes_with_any_body_byte() -> None:
    request = CASES["nuonuo_query.http"]()
    assert request.header("X-Nuonuo-Sign") != independent_signature(request.body.replace(b'"0"', b'"1"'))


def test_default_senid_and_nonce_have_the_documented_shape() -> None:
    from chalicelib.taxapi.nuonuo import SANDBOX_ENDPOINT, SANDBOX_SELLER_TAX_ID, NuonuoProvider

    p = NuonuoProvider(CREDS, SANDBOX_ENDPOINT, seller_tax_id=SANDBOX_SELLER_TAX_ID, access_token=TOKEN)
    query = dict(parse_qsl(urlsplit(p.build_query(NOW, serials=("S1",)).url).query))
    assert len(query["senid"]) == 32 and all(c in "0123456789abcdef" for c in query["senid"])
    assert len(query["nonce"]) == 8 and query["nonce"].isdigit() and query["nonce"][0] != "0"
    assert query["timestamp"] == TIMESTAMP
