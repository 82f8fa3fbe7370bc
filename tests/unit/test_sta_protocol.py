"""The worked example in docs/tax-protocol.md, recomputed from its own inputs by the code.

The test reads the "Worked example" section, takes the inputs block, builds the request and the
reply with ``StaProvider`` / ``sta.build_reply``, and requires every value the page shows to be
exactly what the code produces. It also recomputes the crypto with the independent gmssl reference.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.crypto import reference, sm3
from chalicelib.taxapi import sta
from chalicelib.taxapi.base import Credentials, CreditLine, HttpRequest, HttpResponse

DOC = Path(__file__).resolve().parents[2] / "docs" / "tax-protocol.md"
BLOCK = re.compile(r"^\*\*(?P<label>[^*]+)\*\*[^\n]*\n```[a-z]*\n(?P<body>.*?)\n```", re.M | re.S)


def worked_example() -> dict[str, str]:
    assert DOC.is_file(), f"{DOC} is missing"
    text = DOC.read_text(encoding="utf-8")
    assert "\n## Worked example\n" in text, "docs/tax-protocol.md lost its Worked example section"
    section = text.split("\n## Worked example\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = {m["label"]: m["body"] for m in BLOCK.finditer(section)}
    expected = {
        "Inputs",
        "Payload JSON",
        "Body",
        "SM3 of the body",
        "Canonical string",
        "Signature",
        "Request",
        "Reply JSON",
        "Reply inner body",
        "Reply canonical string",
        "Reply signature",
        "Reply",
    }
    assert expected <= set(blocks), f"missing blocks: {expected - set(blocks)}"
    return blocks


@pytest.fixture(scope="module")
def doc() -> dict[str, str]:
    return worked_example()


@pytest.fixture(scope="module")
def inputs(doc: dict[str, str]) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in doc["Inputs"].splitlines())


@pytest.fixture(scope="module")
def request_(inputs: dict[str, str]) -> HttpRequest:
    provider = sta.StaProvider(
        Credentials({k: inputs[k] for k in ("app_id", "sm4_key", "sign_key")}),
        inputs["endpoint"],
        seller_tax_id=inputs["seller_tax_id"],
        options={"sandbox": inputs["sandbox"]},
        nonce_factory=lambda: inputs["nonce"],
    )
    return provider.build_query_credit(datetime.fromtimestamp(int(inputs["timestamp"]), UTC))


def test_payload_json_is_what_the_provider_encrypts(
    doc: dict[str, str], inputs: dict[str, str], request_: HttpRequest
) -> None:
    plain = reference.sm4_ecb_decrypt(bytes.fromhex(inputs["sm4_key"]), base64.b64decode(request_.body))
    assert plain.decode("utf-8") == doc["Payload JSON"]
    assert sta.encode_payload({"xsfnsrsbh": inputs["seller_tax_id"]}).decode() == doc["Payload JSON"]


def test_body_is_the_base64_of_the_sm4_ciphertext(doc: dict[str, str], request_: HttpRequest) -> None:
    assert request_.body.decode("ascii") == doc["Body"]


def test_sm3_digest_of_the_body(doc: dict[str, str]) -> None:
    body = doc["Body"].encode("ascii")
    assert sm3(body).hex() == doc["SM3 of the body"]
    assert reference.sm3(body).hex() == doc["SM3 of the body"]


def test_canonical_string_and_signature(doc: dict[str, str], inputs: dict[str, str], request_: HttpRequest) -> None:
    canonical = sta.canonical_string(
        inputs["app_id"], "CXSXED", inputs["timestamp"], inputs["nonce"], doc["Body"].encode("ascii")
    )
    assert canonical == doc["Canonical string"]
    assert reference.hmac_sm3(inputs["sign_key"].encode(), canonical.encode()).hex() == doc["Signature"]
    assert request_.header("access_signature") == doc["Signature"]


def test_the_whole_request_is_as_shown(doc: dict[str, str], request_: HttpRequest) -> None:
    head = [f"{request_.method} {request_.url}"] + [f"{k}: {v}" for k, v in request_.headers]
    assert "\n".join(head) + "\n\n" + request_.body.decode("ascii") == doc["Request"]


def reply(doc: dict[str, str], inputs: dict[str, str]) -> HttpResponse:
    return sta.build_reply(
        json.loads(doc["Reply JSON"]),
        service="CXSXED",
        app_id=inputs["app_id"],
        sm4_key=bytes.fromhex(inputs["sm4_key"]),
        sign_key=inputs["sign_key"].encode(),
        timestamp=inputs["reply_timestamp"],
        nonce=inputs["reply_nonce"],
    )


def test_reply_inner_body_canonical_string_and_signature(doc: dict[str, str], inputs: dict[str, str]) -> None:
    inner = doc["Reply inner body"]
    key = bytes.fromhex(inputs["sm4_key"])
    assert reference.sm4_ecb_decrypt(key, base64.b64decode(inner)).decode() == doc["Reply JSON"]
    assert json.loads(reply(doc, inputs).body)["body"] == inner
    canonical = sta.canonical_string(
        inputs["app_id"], "CXSXED", inputs["reply_timestamp"], inputs["reply_nonce"], inner.encode()
    )
    assert canonical == doc["Reply canonical string"]
    assert reference.hmac_sm3(inputs["sign_key"].encode(), canonical.encode()).hex() == doc["Reply signature"]


def test_the_reply_as_shown_parses_to_the_credit_line(
    doc: dict[str, str], inputs: dict[str, str], request_: HttpRequest
) -> None:
    head, body = doc["Reply"].split("\n\n", 1)
    headers = tuple(tuple(line.split(": ", 1)) for line in head.splitlines())
    shown = HttpResponse(200, headers, body.encode())  # type: ignore[arg-type]
    built = reply(doc, inputs)
    assert shown.headers == built.headers and shown.body == built.body
    provider = sta.StaProvider(
        Credentials({k: inputs[k] for k in ("app_id", "sm4_key", "sign_key")}),
        inputs["endpoint"],
        seller_tax_id=inputs["seller_tax_id"],
    )
    credit = provider.parse_query_credit(request_, shown)
    assert credit == CreditLine(total=Decimal("1000000.00"), used=Decimal("2500.00"), remaining=Decimal("997500.00"))
