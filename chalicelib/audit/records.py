"""The archive's records: what one tax call and one status change leave behind, masked, as JSON Lines.

Two record kinds, one JSON object per line (``docs/finance.md`` lists every field):

- ``interaction``: time, store, order key, serials, provider, operation, attempt (1, or 2 after a
  token refresh), latency, the request (method, URL without its query values of credentials,
  headers with signatures and tokens removed and tax ids masked, the operation's parameters with tax
  ids, e-mail addresses, phone and bank account numbers masked), the **exact body as sent** (base64:
  the STA body is SM4-encrypted under the store's key; Nuonuo's is the signed JSON), the reply as
  received (status, headers without tokens, base64 body), outcome, provider code, message, error
  class, actor and invocation;
- ``transition``: time, store, order key, event, from, to, cause, actor, invocation.

A **token** call (operation ``token:…``: Nuonuo's access-token request) is an interaction whose body
is the app secret and whose reply is the access token: its exact bytes are **not** kept. The record
holds instead the form fields and the reply's JSON with the secret and the token redacted, and the
SHA-256 of each body as sent and received (``request_body_sha256``, ``response.body_sha256``), which
an inspector can still match against the platform's own log.

Masking is by field name, so a parameter added later is masked if its name says what it is. A
signature, token, secret or password never appears: its header or query value is replaced by
``[redacted]`` and nothing else of it is kept.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chalicelib.domain.taxpayer import mask

SCHEMA = 1
REDACTED = "[redacted]"
#: The operation (before its ``:``) of a credential exchange: bodies hashed and masked, never kept.
TOKEN = "token"  # noqa: S105 (an operation name)
#: Header / query names whose values are credentials: never kept.
_SECRET_NAME = re.compile(r"sign|token|secret|password|authori[sz]ation|cookie|credential|api[-_]?key", re.I)
#: Names whose values identify a taxpayer: masked (first and last four characters kept). STA's
#: ``sydwptbh`` (the using unit's platform id) is the seller's tax id by default.
_TAX_NAME = re.compile(r"tax[-_]?(id|no|num)|usertax|taxnum|nsrsbh|sydwptbh|^taxpayer", re.I)
_CONTACT_NAME = re.compile(r"e-?mail|phone|mobile|tel$|account|yhzh|dh$|lxdh", re.I)


def mask_contact(value: str) -> str:
    """An e-mail address keeps its first character and domain; any other contact its last four."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return (local[:1] + "***@" + domain) if local else "***@" + domain
    return "*" * max(0, len(value) - 4) + value[-4:] if len(value) > 4 else "*" * len(value)


def mask_value(name: str, value: Any) -> Any:
    """``value`` of a field called ``name``, masked as its name says (recursing into containers)."""
    if isinstance(value, Mapping):
        return {str(k): mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(name, v) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if _SECRET_NAME.search(name):
        return REDACTED
    if _TAX_NAME.search(name):
        return mask(value)
    if _CONTACT_NAME.search(name):
        return mask_contact(value)
    return value


def masked_headers(headers: Iterable[tuple[str, str]]) -> list[list[str]]:
    return [[k, mask_value(k, v)] for k, v in headers]


def masked_url(url: str) -> str:
    """The URL with credential query values redacted and tax ids masked."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, str(mask_value(k, v))) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]*")))


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def is_token(operation: str) -> bool:
    return operation.partition(":")[0] == TOKEN


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def masked_body(data: bytes | None) -> Any:
    """A credential exchange's body without its credentials: a JSON object or a form, masked by field
    name; anything else is not kept (None)."""
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = dict(parse_qsl(text, keep_blank_values=True)) if "=" in text else None
    return mask_value("body", parsed) if isinstance(parsed, dict) else None


def iso_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def interaction(
    *,
    at: datetime,
    store: str,
    provider: str,
    operation: str,
    attempt: int,
    latency_ms: int,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    params: Mapping[str, object],
    body: bytes,
    response_status: int | None,
    response_headers: Iterable[tuple[str, str]],
    response_body: bytes | None,
    outcome: str,
    provider_code: str | None,
    message: str | None,
    error_class: str | None,
    keys: Mapping[str, str],
    actor: str,
    invocation: str,
) -> dict[str, Any]:
    """One tax call as a record (see the module docstring)."""
    if is_token(operation):
        return _token_record(
            base=interaction(
                at=at,
                store=store,
                provider=provider,
                operation="-",
                attempt=attempt,
                latency_ms=latency_ms,
                method=method,
                url=url,
                headers=headers,
                params=params,
                body=b"",
                response_status=response_status,
                response_headers=response_headers,
                response_body=None,
                outcome=outcome,
                provider_code=provider_code,
                message=message,
                error_class=error_class,
                keys=keys,
                actor=actor,
                invocation=invocation,
            ),
            operation=operation,
            body=body,
            response_body=response_body,
        )
    return {
        "v": SCHEMA,
        "kind": "interaction",
        "time": iso_time(at),
        "store": store,
        "order_key": keys.get("order_key"),
        "serials": [s for s in (keys.get("serials") or keys.get("serial") or "").split(",") if s],
        "provider": provider,
        "operation": operation,
        "attempt": attempt,
        "latency_ms": latency_ms,
        "request": {
            "method": method,
            "url": masked_url(url),
            "headers": masked_headers(headers),
            "params": mask_value("params", dict(params)),
        },
        "request_body_b64": b64(body),
        "response": None
        if response_status is None
        else {"status": response_status, "headers": masked_headers(response_headers), "body_b64": b64(response_body)},
        "outcome": outcome,
        "provider_code": provider_code,
        "message": message,
        "error_class": error_class,
        "actor": actor,
        "invocation": invocation,
    }


def _token_record(*, base: dict[str, Any], operation: str, body: bytes, response_body: bytes | None) -> dict[str, Any]:
    """A credential exchange: the bodies' SHA-256 and their masked fields, never their bytes."""
    record = {**base, "operation": operation, "request_body_b64": None, "request_body_sha256": sha256(body)}
    record["request"] = {**base["request"], "form": masked_body(body)}
    if base["response"] is not None:
        record["response"] = {
            **base["response"],
            "body_b64": None,
            "body_sha256": sha256(response_body),
            "body": masked_body(response_body),
        }
    return record


def transition(
    *,
    at: datetime,
    store: str,
    order_key: str,
    event: str,
    before: str | None,
    after: str,
    cause: str | None,
    actor: str,
    invocation: str,
) -> dict[str, Any]:
    """One status change of the order state machine as a record."""
    return {
        "v": SCHEMA,
        "kind": "transition",
        "time": iso_time(at),
        "store": store,
        "order_key": order_key,
        "event": event,
        "from": before,
        "to": after,
        "cause": cause,
        "actor": actor,
        "invocation": invocation,
    }


def encode_lines(records: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON Lines (UTF-8, one record a line), gzip-compressed with a zero timestamp (the same records
    always give the same bytes, so a re-written object has the same SM3)."""
    text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n" for r in records)
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def decode_lines(blob: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(blob).decode("utf-8").splitlines() if line]
