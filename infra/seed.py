"""Load the examples into a (local) stack: stores, their fake secrets, the tax classification table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib.domain.models import Store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TAXCODES = ROOT / "chalicelib" / "domain" / "data" / "taxcodes.json"
TAXCODES_KEY = "taxcodes/current.json"


def load_store_files(folder: Path = EXAMPLES / "stores") -> list[Store]:
    return [Store.model_validate_json(p.read_bytes()) for p in sorted(folder.glob("*.json"))]


def seed(session: Any, env: dict[str, str]) -> dict[str, Any]:
    from chalicelib.adapters import aws
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry

    aws.set_session(session)
    registry = StoreRegistry(env["STORES_TABLE"])
    stores = load_store_files()
    for store in stores:
        registry.put(store)
    secrets = json.loads((EXAMPLES / "secrets.local.json").read_text())
    store_secrets = SecretStore()
    for name, value in secrets.items():
        if not name.startswith("_"):
            store_secrets.put(name, json.dumps(value))
    if TAXCODES.exists():
        session.client("s3").put_object(Bucket=env["CONFIG_BUCKET"], Key=TAXCODES_KEY, Body=TAXCODES.read_bytes())
    sample = "demo-shanghai"
    return {
        "stores": [s.store_id for s in stores],
        "sample_store": sample,
        "sample_secret": secrets[f"einvoice/{sample}/webhook/standard"]["secrets"][0],
    }
