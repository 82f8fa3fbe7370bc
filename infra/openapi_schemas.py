"""The schemas of ``docs/openapi.yaml`` (``infra/openapi.py``): the pydantic models where there is one
(``Violation``, ``RedReason``'s values), the answers' shapes as the routes write them otherwise."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- the schemas --------------------------------------------------------------------------------------------
def schemas() -> dict[str, Any]:
    from chalicelib.domain.models import RedReason, Violation

    violation = Violation.model_json_schema()
    nullable_text = {"type": ["string", "null"]}
    counts = {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in ("issued", "rejected", "failed", "blocked")}
        | {"day": nullable_text, "amount": {"type": "string"}},
    }
    return {
        "Violation": violation,
        "Error": {
            "type": "object",
            "description": "every error answer of the JSON routes: `error` is a stable code",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "message": {"type": "string"},
                "message_en": {"type": "string"},
                "reason": {"type": "string", "description": "why a signature was refused"},
                "order_key": {"type": "string"},
                "status": {"type": "string"},
                "held_by": {"type": "string"},
                "field": {"type": "string", "description": "the request field that is wrong (admin API)"},
                "platforms": {"type": "array", "items": {"type": "string"}},
                "errors": {"type": "array", "items": ref("Violation")},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "stage"],
            "properties": {"status": {"const": "ok"}, "stage": {"type": "string"}},
        },
        "WebhookAccepted": {
            "type": "object",
            "required": ["order_key", "status", "outcome"],
            "properties": {
                "order_key": {"type": "string"},
                "status": {"type": "string"},
                "outcome": {"enum": ["queued", "duplicate", "ignored", "held", "rejected"]},
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "errors": {"type": "array", "items": ref("Violation")},
            },
        },
        "WechatPayAck": {
            "type": "object",
            "required": ["code"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "ShopAck": {
            "type": "object",
            "required": ["code"],
            "properties": {"code": {"type": "integer"}, "msg": {"type": "string"}},
        },
        "AlipayAck": {"type": "string", "enum": ["success"]},
        "StoreInvoice": {
            "type": "object",
            "required": ["order_key", "status"],
            "properties": {
                "order_key": {"type": "string"},
                "order_id": nullable_text,
                "platform": nullable_text,
                "status": {"type": "string"},
                "invoice_number": nullable_text,
                "amount": nullable_text,
                "tax": nullable_text,
                "issued_date": nullable_text,
                "issued_at": nullable_text,
                "link": nullable_text,
                "files": {"type": "object", "additionalProperties": {"type": "object"}},
            },
        },
        "Dashboard": {
            "type": "object",
            "required": ["operator", "days", "series", "total"],
            "properties": {
                "operator": {"type": "string"},
                "scope": {},
                "days": {"type": "integer"},
                "series": {"type": "array", "items": counts},
                "total": counts,
                "exception_ratio": nullable_text,
                "tax_share": {"type": "array", "items": {"type": "object"}},
                "stores": {"type": "array", "items": {"type": "object"}},
            },
        },
        "RedBatchRequest": {
            "type": "object",
            "required": ["store_id", "items", "reason"],
            "properties": {
                "store_id": {"type": "string"},
                "items": {"type": "array", "items": {"type": "string"}, "description": "order keys or invoice numbers"},
                "reason": {"enum": [r.value for r in RedReason]},
                "dry_run": {"type": "boolean", "default": True},
            },
        },
        "RedBatch": {"type": "object", "required": ["dry_run"], "properties": {"dry_run": {"type": "boolean"}}},
        "NuonuoReply": {
            "type": "object",
            "required": ["code", "describe"],
            "properties": {
                "code": {"type": "string"},
                "describe": {"type": "string"},
                "applied": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Operator": {
            "type": "object",
            "required": ["operator", "stores", "expires_at"],
            "properties": {
                "operator": {"type": "string"},
                "stores": {"type": "array", "items": {"type": "string"}},
                "expires_at": {"type": "integer"},
            },
        },
    }
