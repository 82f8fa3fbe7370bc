"""App-tier fixtures: the Chalice app in-process (chalice.test.Client) over a fresh moto stack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"app-tier-test-secret-0123456789").decode()
#: The store of ``platform_client``: it accepts all eight platforms (``platform_events.test_store``).
PLATFORM_STORE = "all-platforms"


@pytest.fixture()
def seeded(stack: Any) -> Any:
    """The example stores with a known Standard Webhooks secret."""
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from infra.seed import load_store_files

    registry = StoreRegistry(stack.env["STORES_TABLE"])
    for store in load_store_files():
        registry.put(store)
    secrets = SecretStore()
    for name, value in json.loads((ROOT / "examples" / "secrets.local.json").read_text()).items():
        if not name.startswith("_"):
            secrets.put(name, json.dumps(value))
    secrets.put("einvoice/demo-shanghai/webhook/standard", json.dumps({"secrets": [SECRET]}))
    return stack


@pytest.fixture()
def client(seeded: Any) -> Iterator[Any]:
    from chalice.test import Client

    import app as app_module

    app_module._ingest.cache_clear()
    with Client(app_module.app, stage_name="local") as c:
        yield c
    app_module._ingest.cache_clear()


@pytest.fixture()
def platform_client(stack: Any) -> Iterator[Any]:
    """The all-platform store and its eight secrets registered; the app in-process."""
    from chalice.test import Client

    import app as app_module
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.models import Store
    from tests.support import platform_events as pe

    StoreRegistry(stack.env["STORES_TABLE"]).put(Store.model_validate(pe.test_store(PLATFORM_STORE)))
    secrets = SecretStore()
    for platform in pe.PLATFORMS:
        secrets.put(pe.secret_name(PLATFORM_STORE, platform), json.dumps(pe.secret_values(platform)))
    app_module._ingest.cache_clear()
    with Client(app_module.app, stage_name="local") as c:
        yield c
    app_module._ingest.cache_clear()


def standard_event(
    order_id: str | None = None,
    *,
    amount: str = "88.00",
    buyer: dict[str, Any] | None = None,
    kind: str = "order.paid",
    lines: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {"order_id": order_id or f"O-{uuid.uuid4().hex[:10]}", "amount": amount, "currency": "CNY"}
    if lines is not None:
        data["lines"] = lines
    if buyer is not None:
        data["buyer"] = buyer
    data.update(extra)
    return {"type": kind, "data": data}


def signed(
    payload: dict[str, Any] | bytes, *, secret: str = SECRET, msg_id: str | None = None, ts: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return body, {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{sig}",
    }
