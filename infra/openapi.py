"""``docs/openapi.yaml``, generated from the code: Chalice's routes, the pydantic models, a table of answers.

The paths and methods are ``app.app.routes`` (what API Gateway and ``chalice local`` serve). The routes
that only refuse — the ``405`` answers to methods a path does not serve (``method_not_allowed_*``,
``customer_not_allowed_*``) and the catch-all ``404`` routes ``/{p1}…/{p4}`` — are stated once in the
description rather than as operations. The webhook route ``/webhooks/{platform}/{store_id}`` is one
operation per platform (``chalicelib.webhooks.PLATFORMS``): each signs, encodes and is answered its own
way. Schemas (``infra/openapi_schemas.py``) come from the pydantic models where there is one; the answers of each
operation are :data:`ANSWERS`, keyed by the Chalice view's name, so a route added without an entry
fails :func:`document` (and the test that the committed file is current).

Refresh: ``make openapi`` (``.venv/bin/python -m infra.openapi``); ``--check`` exits 1 when the file is
not current (``tests/app/test_openapi.py`` does the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from infra.openapi_schemas import ref as _ref
from infra.openapi_schemas import schemas

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "openapi.yaml"
REFRESH = "make openapi  (or: .venv/bin/python -m infra.openapi)"
#: Views that only refuse (405 with Allow, the catch-all 404s): described once, not as operations.
REFUSING_VIEWS = ("method_not_allowed", "customer_not_allowed", "not_found_")
WEBHOOK_VIEW = "webhook"

JSON = "application/json"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"


def _json(description: str, schema: str | dict[str, Any] = "Error") -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": _ref(schema) if isinstance(schema, str) else schema}},
    }


def _html(description: str, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {HTML: {"schema": {"type": "string"}}}}
    if headers:
        answer["headers"] = {h: {"schema": {"type": "string"}} for h in headers}
    return answer


def _redirect(description: str) -> dict[str, Any]:
    return {"description": description, "headers": {"Location": {"schema": {"type": "string"}, "required": True}}}


# --- the answers of each operation (by Chalice view name) ----------------------------------------------
UNSUPPORTED = _json("the Content-Type is not one the route reads (Chalice's own answer, in the project's shape)")
WEBHOOK_ERRORS: dict[str, Any] = {
    "401": _json("the signature, its headers or the store's secret do not verify (`error: invalid_signature`)"),
    "404": _json("unknown platform or store, or the store does not take this platform"),
    "409": _json("the event id is already another order's (`event_id_conflict`); the order is recorded as rejected"),
    "413": _json("the body is over the size limit"),
    "415": UNSUPPORTED,
    "422": _json("signed, and refused: the order breaks a rule (recorded as rejected, `errors` lists them)"),
    "503": {
        **_json("AWS unavailable: retry (the platform does)"),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
}
CUSTOMER_ERRORS: dict[str, Any] = {
    "404": _html("unknown or forged link"),
    "410": _html("the link expired or was revoked"),
    "429": _html("too many requests from this address", ("Retry-After",)),
    "500": _html("an unexpected failure, as a page (never a trace)"),
    "503": _html("temporarily unavailable"),
}
ANSWERS: dict[str, dict[str, Any]] = {
    "health": {"200": _json("the API is up", "Health")},
    "store_invoice": {
        "200": _json("the order's invoice", "StoreInvoice"),
        "401": {**_json("no or a wrong API key"), "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
        "404": _json("no such order for this store (also: a key of another store)"),
        "409": _json("the order id is on several platforms of the store: name one (`platform`)"),
        "503": _json("temporarily unavailable"),
    },
    "invoice_page": {"200": _html("the invoice page"), **CUSTOMER_ERRORS},
    "invoice_pdf": {
        "302": _redirect("to a short-lived presigned URL of the PDF"),
        "202": _html("the PDF is being prepared", ("Retry-After",)),
        **CUSTOMER_ERRORS,
    },
    "title_form": {
        "200": _html("the form for the buyer's company title"),
        "303": _redirect("back to the page"),
        **CUSTOMER_ERRORS,
    },
    "title_submit": {
        "303": _redirect("back to the page, saying what happened"),
        "403": _html("the form expired"),
        "415": UNSUPPORTED,
        "422": _html("the form again, with what is wrong"),
        **CUSTOMER_ERRORS,
    },
    "login_form": {"200": _html("the sign-in page")},
    "login": {
        "303": _redirect("signed in: to /admin (sets the session cookie)"),
        "401": _html("wrong name or password"),
        "403": _html("the form expired"),
        "415": UNSUPPORTED,
        "429": _html("too many attempts", ("Retry-After",)),
    },
    "logout": {"303": _redirect("to the sign-in page"), "403": _html("CSRF token mismatch"), "415": UNSUPPORTED},
    "dashboard": {
        "200": _html("the dashboard"),
        "303": _redirect("no session: to the sign-in page"),
        "404": _html("not visible to this operator"),
    },
    "dashboard_api": {
        "200": _json("the dashboard's figures", "Dashboard"),
        "401": _json("no valid session"),
        "404": _json("not visible to this operator"),
    },
    "me": {"200": _json("the signed-in operator", "Operator"), "401": _json("no valid session")},
    "red_batch": {
        "200": _json("the plan (dry run, the default) or each item's result", "RedBatch"),
        "400": _json("the request is not a batch: `field` names what is wrong"),
        "401": _json("no valid session"),
        "403": _json("the CSRF token (X-CSRF-Token) does not match the session's"),
        "404": _json("no such store for this operator"),
        "415": UNSUPPORTED,
    },
    "nuonuo_callback": {
        code: _json(text, "NuonuoReply")
        for code, text in (
            ("200", "applied (Nuonuo's envelope, `code: E0000`)"),
            ("401", "the signature (X-Nuonuo-Sign) does not verify: nothing read or written"),
            ("404", "no such store"),
            ("413", "the body is over the size limit"),
            ("503", "a failure on our side: Nuonuo retries"),
        )
    },
    "other_admin_page": {"303": _redirect("no session: to the sign-in page"), "404": _json("no such page")},
    "other_admin_api": {"401": _json("no valid session"), "404": _json("no such page")},
}
PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "store_invoice": [
        {
            "name": "platform",
            "in": "query",
            "schema": {"type": "string"},
            "description": "the platform, when the id is on several",
        },
        {
            "name": "files",
            "in": "query",
            "schema": {"type": "string", "enum": ["1", "true", "yes", "0"]},
            "description": "add presigned URLs of the files",
        },
    ],
    "dashboard": [
        {"name": "days", "in": "query", "schema": {"type": "string"}},
        {"name": "store", "in": "query", "schema": {"type": "string"}},
    ],
    "dashboard_api": [
        {"name": "days", "in": "query", "schema": {"type": "string"}},
        {"name": "store", "in": "query", "schema": {"type": "string"}},
    ],
}
FORMS: dict[str, dict[str, Any]] = {
    "title_submit": {"title": {"type": "string"}, "tax_id": {"type": "string"}, "form_token": {"type": "string"}},
    "login": {"name": {"type": "string"}, "password": {"type": "string"}, "csrf": {"type": "string"}},
    "logout": {"csrf": {"type": "string"}},
}
#: view → its JSON request body's schema (built on first use: it reads the models)
JSON_BODIES: dict[str, Any] = {"red_batch": "RedBatchRequest", "nuonuo_callback": {"type": "object"}}
#: view → the headers it reads (each as a string parameter)
HEADERS: dict[str, tuple[str, ...]] = {"red_batch": ("X-CSRF-Token",), "nuonuo_callback": ("X-Nuonuo-Sign",)}
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "red_batch": [{"session": []}],
    "store_invoice": [{"bearer": []}, {"apiKey": []}],
    "dashboard": [{"session": []}],
    "dashboard_api": [{"session": []}],
    "me": [{"session": []}],
    "logout": [{"session": []}],
    "other_admin_page": [{"session": []}],
    "other_admin_api": [{"session": []}],
}

# --- the webhook operation of each platform -------------------------------------------------------------
#: platform → (its signature headers, the accepted answer's schema, its media type)
WEBHOOKS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "standard": (("webhook-id", "webhook-timestamp", "webhook-signature"), "WebhookAccepted", JSON),
    "stripe": (("stripe-signature",), "WebhookAccepted", JSON),
    "shopify": (("x-shopify-hmac-sha256", "x-shopify-topic"), "WebhookAccepted", JSON),
    "woocommerce": (("x-wc-webhook-signature", "x-wc-webhook-topic"), "WebhookAccepted", JSON),
    "wechatpay": (
        ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-serial", "wechatpay-signature"),
        "WechatPayAck",
        JSON,
    ),
    "alipay": ((), "AlipayAck", "text/plain"),
    "douyin": (("app-id", "event-sign"), "ShopAck", JSON),
    "youzan": (("client-id", "event-sign", "event-type"), "ShopAck", JSON),
}
STANDARD_BODY: dict[str, Any] = {
    "type": "object",
    "description": "docs/platforms/standard.md; money as decimal strings in yuan",
    "required": ["type", "data"],
    "properties": {
        "type": {"type": "string", "examples": ["order.paid", "order.refunded"]},
        "timestamp": {"type": "string"},
        "data": {
            "type": "object",
            "required": ["order_id"],
            "properties": {
                "order_id": {"type": "string", "maxLength": 256},
                "amount": {"type": "string"},
                "currency": {"type": "string"},
                "lines": {"type": "array", "items": {"type": "object"}},
                "shipping": {"type": "string"},
                "fees": {"type": "string"},
                "order_discount": {"type": "string"},
                "buyer": {"type": "object"},
                "refund_id": {"type": "string"},
                "refund_amount": {"type": "string"},
            },
        },
    },
}


def _webhook_operation(platform: str) -> dict[str, Any]:
    headers, accepted, media = WEBHOOKS[platform]
    body_media = FORM if platform == "alipay" else JSON
    body = (
        STANDARD_BODY if platform == "standard" else {"type": "object", "description": f"docs/platforms/{platform}.md"}
    )
    answer = {"content": {media: {"schema": _ref(accepted)}}}
    return {
        "operationId": f"webhook_{platform}",
        "tags": ["webhooks"],
        "summary": f"a {platform} webhook delivery (signed as {platform} signs it)",
        "parameters": [
            {"name": "store_id", "in": "path", "required": True, "schema": {"type": "string"}},
            *({"name": h, "in": "header", "required": True, "schema": {"type": "string"}} for h in headers),
        ],
        "requestBody": {"required": True, "content": {body_media: {"schema": body}}},
        "responses": {
            "200": {"description": "acknowledged: a duplicate, an ignored or an acknowledged rejected event", **answer},
            "202": {"description": "durably taken: queued, or held for issuing by hand", **answer},
            **WEBHOOK_ERRORS,
        },
    }


# --- the document ---------------------------------------------------------------------------------------
def _operation(view: str, path: str, method: str, view_args: list[str]) -> dict[str, Any]:
    if view not in ANSWERS:
        raise KeyError(f"route {method} {path} (view {view}) has no entry in infra/openapi.py ANSWERS")
    operation: dict[str, Any] = {
        "operationId": f"{view}_{method.lower()}" if view.startswith("other_") else view,
        "tags": [path.strip("/").split("/")[0] or "root"],
        "responses": ANSWERS[view],
    }
    parameters = [{"name": a, "in": "path", "required": True, "schema": {"type": "string"}} for a in view_args]
    parameters += PARAMETERS.get(view, [])
    parameters += [{"name": h, "in": "header", "schema": {"type": "string"}} for h in HEADERS.get(view, ())]
    if parameters:
        operation["parameters"] = parameters
    if view in JSON_BODIES:
        body = JSON_BODIES[view]
        schema = _ref(body) if isinstance(body, str) else body
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    if view in FORMS and method == "POST":
        schema = {"type": "object", "properties": FORMS[view]}
        operation["requestBody"] = {"required": True, "content": {FORM: {"schema": schema}}}
    if view in SECURITY:
        operation["security"] = SECURITY[view]
    return operation


def document() -> dict[str, Any]:
    import app as app_module
    from chalicelib.routes.auth import SESSION_COOKIE
    from chalicelib.webhooks import PLATFORMS

    paths: dict[str, dict[str, Any]] = {}
    for path, methods in sorted(app_module.app.routes.items()):
        for method, entry in sorted(methods.items()):
            view = entry.view_name
            if view.startswith(REFUSING_VIEWS):
                continue
            if view == WEBHOOK_VIEW:
                for platform in PLATFORMS:
                    literal = path.replace("{platform}", platform)
                    paths.setdefault(literal, {})[method.lower()] = _webhook_operation(platform)
                continue
            paths.setdefault(path, {})[method.lower()] = _operation(view, path, method, list(entry.view_args))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "einvoice gateway HTTP API",
            "version": "0.1.0",
            "description": (
                "Generated by infra/openapi.py from app.py's routes; do not edit by hand, run `make openapi`.\n\n"
                "Every method a path does not serve is answered 405 with `Allow`, every other path up to four "
                "segments deep 404 (`not_found`), both as `Error`. Webhooks: docs/integrators.md and "
                "docs/platforms/<platform>.md."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a store's API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
        },
    }


#: Every answer written out where it applies (no ``&id001`` anchors for the shared ones).
_Dumper = type("_Dumper", (yaml.SafeDumper,), {"ignore_aliases": lambda self, data: True})


def render() -> str:
    return str(yaml.dump(document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/openapi.yaml is not current")
    args = parser.parse_args(argv)
    try:
        text = render()
    except KeyError as exc:  # a route without its answers in the table
        print(exc.args[0], file=sys.stderr)
        return 2
    if args.check:
        if not TARGET.exists() or TARGET.read_text("utf-8") != text:
            print(f"docs/openapi.yaml is not current: run {REFRESH}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, "utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
