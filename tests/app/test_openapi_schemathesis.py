"""schemathesis against the app in-process: every operation of ``docs/openapi.yaml``, no 5xx, no answer
outside the document (status, media type, headers, body schema).

The app runs as the Lambda would, through ``chalice.test.Client`` (API Gateway's event, Chalice's
routing and middleware), behind a tiny WSGI adapter (:func:`wsgi`) so that schemathesis can call it
in-process — no ``chalice local`` process to start. One moto stack for the module, seeded with a
store that takes all eight platforms. Requests are schemathesis's: mostly unsigned webhooks (401),
unknown stores and tokens (404), no session (303 / 401), each answer checked against the document.

Examples per operation: ``SCHEMATHESIS_EXAMPLES`` (default 8).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from infra import openapi
from tests.support import platform_events as pe

STORE = "openapi-fuzz"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,  # an undocumented method: 405 with Allow
    missing_required_header,  # a webhook without its signature headers: 4xx
]
UNEXPECTED_METHODS = {"put", "patch", "delete"}
_STATUS_TEXT = {200: "OK", 202: "Accepted", 302: "Found", 303: "See Other", 404: "Not Found"}


def wsgi(client: Any) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI application answering through ``chalice.test.Client`` (API Gateway's event to the handler).

    As API Gateway's Lambda proxy does, an answer with a body and no ``Content-Type`` (``/health``
    returns a dict; Chalice sets none) goes out as ``application/json``."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        path = environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        answer = client.http.request(environ["REQUEST_METHOD"], path, headers=headers, body=body)
        pairs: list[tuple[str, str]] = []
        for name, value in answer.headers.items():
            for one in value if isinstance(value, list) else [value]:
                pairs.append((name, str(one)))
        if answer.body and not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.append(("Content-Type", "application/json"))  # API Gateway's default for a proxy answer
        status = answer.status_code
        start_response(f"{status} {_STATUS_TEXT.get(status, 'Status')}", pairs)
        return [answer.body if isinstance(answer.body, bytes) else str(answer.body).encode()]

    return application


@pytest.fixture(scope="module")
def app_client(moto_url: str, _boto3_session: Any, _bootstrap_clients: Any) -> Iterator[Any]:
    from chalice.test import Client

    import app as app_module
    from chalicelib import config, wiring
    from chalicelib.adapters import aws as aws_clients
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.models import Store
    from infra.local import bootstrap

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        aws_clients.set_session(_boto3_session)
        created = bootstrap(_bootstrap_clients, prefix=f"o{uuid.uuid4().hex[:8]}")
        for key, value in created.env.items():
            mp.setenv(key, value)
        config.settings.cache_clear()
        StoreRegistry(created.env["STORES_TABLE"]).put(Store.model_validate(pe.test_store(STORE)))
        secrets = SecretStore()
        for platform in pe.PLATFORMS:
            secrets.put(pe.secret_name(STORE, platform), json.dumps(pe.secret_values(platform)))
        wiring.reset()
        try:
            with Client(app_module.app, stage_name="local") as client:
                yield client
        finally:
            wiring.reset()
            config.settings.cache_clear()
            aws_clients.set_session(None)


schema = schemathesis.openapi.from_path(openapi.TARGET)
#: The coverage phase also sends methods a path does not document. OPTIONS is left out: on a path that
#: does not register it, ``chalice.test`` answers a CORS preflight itself (no body, which it cannot read
#: back) — API Gateway, without CORS configured, would not.
schema.config.phases.coverage.unexpected_methods = UNEXPECTED_METHODS


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("SCHEMATHESIS_EXAMPLES") is None,
    suppress_health_check=list(HealthCheck),
)
def test_the_app_answers_every_operation_as_documented_and_never_5xx(app_client: Any, case: Any) -> None:
    case.call_and_validate(app=wsgi(app_client), checks=CHECKS)
