"""Load the examples into a (local) stack: stores, their fake secrets, the tax classification table.

``examples/secrets.local.json`` maps secret names to their (fake) JSON values; entries whose name
starts with ``_`` are not secrets: ``_comment``, and ``_test_only_signing_keys``, the private halves of
the example WeChat Pay / Alipay public keys, which only ``einvoice webhook sample`` reads
(:func:`test_only_signing_keys`) — a platform keeps those to itself, so no store secret holds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib.domain.models import Store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SECRETS_FILE = EXAMPLES / "secrets.local.json"
SIGNING_KEYS = "_test_only_signing_keys"
TAXCODES = ROOT / "chalicelib" / "domain" / "data" / "taxcodes.json"
TAXCODES_KEY = "taxcodes/current.json"


def load_store_files(folder: Path = EXAMPLES / "stores") -> list[Store]:
    return [Store.model_validate_json(p.read_bytes()) for p in sorted(folder.glob("*.json"))]


def example_secrets() -> dict[str, Any]:
    """Every entry of examples/secrets.local.json (``_``-prefixed ones included)."""
    loaded: dict[str, Any] = json.loads(SECRETS_FILE.read_text(encoding="utf-8"))
    return loaded


def test_only_signing_keys() -> dict[str, list[str]]:
    """platform → the test-only private keys (PEM) that sign as that platform (WeChat Pay, Alipay)."""
    keys = example_secrets().get(SIGNING_KEYS, {})
    return {
        p: [str(v) for k, v in by_id.items() if not k.startswith("_")]
        for p, by_id in keys.items()
        if not p.startswith("_")
    }


def seed(session: Any, env: dict[str, str]) -> dict[str, Any]:
    from chalicelib.adapters import aws
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry

    aws.set_session(session)
    registry = StoreRegistry(env["STORES_TABLE"])
    stores = load_store_files()
    for store in stores:
        registry.put(store)
    secrets = example_secrets()
    store_secrets = SecretStore()
    for name, value in secrets.items():
        if not name.startswith("_"):
            store_secrets.put(name, json.dumps(value))
    if TAXCODES.exists():
        session.client("s3").put_object(Bucket=env["CONFIG_BUCKET"], Key=TAXCODES_KEY, Body=TAXCODES.read_bytes())
    sample = "demo-shanghai"
    return {
        "stores": [s.store_id for s in stores],
        "store_files": stores,
        "sample_store": sample,
        "sample_secret": secrets[f"einvoice/{sample}/webhook/standard"]["secrets"][0],
    }
