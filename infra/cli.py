"""`einvoice`: the operator's command line (stores, secrets, tax codes, sample webhooks).

Which AWS resources it talks to, first match wins:
1. the environment (``STORES_TABLE``, ``CONFIG_BUCKET`` … as the functions see them);
2. ``--stack NAME``: a deployed CloudFormation stack, its resources looked up by logical id;
3. ``.local/stack.json``, written by ``make run``: the local stack (embedded AWS).
Secret values are read from standard input and never echoed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

from pydantic import ValidationError

ROOT = Path(__file__).resolve().parent.parent
STACK_FILE = Path(os.environ.get("EINVOICE_STATE_DIR", str(ROOT / ".local"))) / "stack.json"


# --- resource resolution -------------------------------------------------------------------------
def resolve_environment(stack_name: str | None) -> None:
    """Fill os.environ with resource names (and the local endpoint) unless already set."""
    if os.environ.get("STORES_TABLE"):
        return
    if stack_name:
        import boto3

        from infra.resources import resource_set

        cfn = boto3.client("cloudformation")
        physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
        }
        for logical, binding in resource_set().bindings.items():
            if logical in physical:
                os.environ[binding.env] = physical[logical]
        return
    if STACK_FILE.exists():
        local = json.loads(STACK_FILE.read_text())
        os.environ.setdefault("AWS_ENDPOINT_URL", local["aws_endpoint"])
        os.environ.setdefault("AWS_DEFAULT_REGION", local["region"])
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        for key, value in local["env"].items():
            os.environ.setdefault(key, value)
        return
    raise SystemExit("no stack: set STORES_TABLE etc., pass --stack NAME, or start the local stack with `make run`")


def _need(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise SystemExit(f"{var} is not set")
    return value


# --- commands ------------------------------------------------------------------------------------
def cmd_stores_put(args: argparse.Namespace) -> int:
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.models import Store

    try:
        store = Store.model_validate_json(Path(args.file).read_bytes())
    except ValidationError as exc:
        print(f"{args.file} is not a valid store:", file=sys.stderr)
        for err in exc.errors():
            print(f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}", file=sys.stderr)
        return 2
    StoreRegistry(_need("STORES_TABLE")).put(store)
    print(f"stored {store.store_id} ({store.name})")
    return 0


def cmd_stores_list(args: argparse.Namespace) -> int:
    from chalicelib.adapters.stores import StoreRegistry

    stores = StoreRegistry(_need("STORES_TABLE")).list()
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in stores], ensure_ascii=False, indent=2))
        return 0
    print(f"{'STORE':<24} {'MERCHANT':<16} {'PROVIDER':<8} {'PILOT':>5}  NAME")
    for s in stores:
        merchant = s.merchant or "-"
        print(f"{s.store_id:<24} {merchant:<16} {s.provider.provider.value:<8} {s.pilot_percentage:>4}%  {s.name}")
    return 0


def cmd_stores_show(args: argparse.Namespace) -> int:
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.errors import UnknownStore

    try:
        store = StoreRegistry(_need("STORES_TABLE")).get(args.store_id)
    except UnknownStore:
        print(f"no store {args.store_id!r}", file=sys.stderr)
        return 1
    print(json.dumps(store.model_dump(mode="json"), ensure_ascii=False, indent=2))
    return 0


def cmd_orders_list(args: argparse.Namespace) -> int:
    from chalicelib.adapters.ledger import Ledger

    records = Ledger(_need("LEDGER_TABLE")).orders_of_store(args.store_id, limit=args.limit)
    if args.status:
        records = [r for r in records if r.status == args.status]
    print(f"{'CREATED':<28} {'STATUS':<12} {'KIND':<9} ORDER KEY")
    for r in records:
        print(f"{r.created_at:<28} {r.status:<12} {r.kind:<9} {r.order_key}")
    return 0


def cmd_orders_show(args: argparse.Namespace) -> int:
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.domain.order_state import parse_order_key

    ledger = Ledger(_need("LEDGER_TABLE"))
    record = ledger.get_order(args.order_key)  # looked up as given: records of the old key format too
    if record is None:
        try:
            parse_order_key(args.order_key)
            hint = ""
        except ValueError:
            hint = " (an order key is store_id:platform:order_id)"
        print(f"no order {args.order_key!r}{hint}", file=sys.stderr)
        return 1
    shown = {
        "order_key": record.order_key,
        "store_id": record.store_id,
        "status": record.status,
        "kind": record.kind,
        "created_at": record.created_at,
        "waiting_for_queue": record.outbox_pending,
        "violations": record.violations,
        "issue": {k: v for k, v in ledger.issue_fields(args.order_key).items() if k != "claim_id"},
        "payload": record.payload,
    }
    print(json.dumps(shown, ensure_ascii=False, indent=2))
    return 0


def cmd_secrets_put(args: argparse.Namespace) -> int:
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.domain.models import SECRET_NAME_RE

    if not SECRET_NAME_RE.match(args.name):
        print("a secret name must start with 'einvoice/' (letters, digits, /_+=.@-)", file=sys.stderr)
        return 2
    value = sys.stdin.read().strip()
    if not value:
        print("no value on standard input", file=sys.stderr)
        return 2
    outcome = SecretStore().put(args.name, value)
    print(f"{outcome} {args.name} ({len(value)} characters; the value is not shown)")
    return 0


def cmd_taxcodes_import(args: argparse.Namespace) -> int:
    import boto3

    from chalicelib.domain.taxcodes import TaxCodeTable
    from infra.seed import TAXCODES_KEY

    raw = Path(args.file).read_bytes()
    try:
        table = TaxCodeTable.from_json(raw)
    except ValueError as exc:
        print(f"{args.file} is not a valid tax code table: {exc}", file=sys.stderr)
        return 2
    boto3.client("s3").put_object(Bucket=_need("CONFIG_BUCKET"), Key=TAXCODES_KEY, Body=raw)
    print(f"imported {len(table)} tax codes (version {table.version}); the functions read it within a minute")
    return 0


def sample_webhook(api: str, store_id: str, secret: str, *, order_id: str | None = None, amount: str = "88.00") -> str:
    """A curl command posting a Standard Webhooks `order.paid` event signed with ``secret``."""
    order_id = order_id or f"DEMO-{uuid.uuid4().hex[:8].upper()}"
    msg_id = f"msg_{uuid.uuid4().hex}"
    ts = int(time.time())
    body = json.dumps(
        {
            "type": "order.paid",
            "timestamp": ts,
            "data": {
                "order_id": order_id,
                "amount": amount,
                "currency": "CNY",
                "lines": [
                    {
                        "sku": "LATTE-L",
                        "name": "拿铁咖啡（大杯）",
                        "quantity": "2",
                        "unit_price": "44.00",
                        "total": amount,
                    }
                ],
                "buyer": {
                    "title": "上海示例科技有限公司",
                    "tax_id": "91350100M000100Y43",
                    "email": "buyer@example.com",
                },
            },
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
    return (
        f"curl -sS -X POST {api}/webhooks/standard/{store_id} \\\n"
        f"  -H 'content-type: application/json' \\\n"
        f"  -H 'webhook-id: {msg_id}' -H 'webhook-timestamp: {ts}' \\\n"
        f"  -H 'webhook-signature: v1,{signature}' \\\n"
        f"  --data-binary {shlex.quote(body)}"
    )


def cmd_webhook_sample(args: argparse.Namespace) -> int:
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry

    store = StoreRegistry(_need("STORES_TABLE")).get(args.store_id)
    name = store.webhook_secrets.get("standard")
    if not name:
        print(f"store {args.store_id} has no Standard Webhooks secret", file=sys.stderr)
        return 1
    secret = SecretStore().get_json(name)
    first = (secret.get("secrets") or [secret.get("secret")])[0]
    api = args.api or os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
    print(sample_webhook(api, store.store_id, first, amount=args.amount))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from infra.cli_orders import add_commands as add_order_commands

    parser = argparse.ArgumentParser(prog="einvoice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="a deployed CloudFormation stack name (default: env, then the local stack)")
    sub = parser.add_subparsers(dest="group", required=True)

    stores = sub.add_parser("stores", help="the store registry").add_subparsers(dest="command", required=True)
    p = stores.add_parser("put", help="create or replace a store from a JSON file")
    p.add_argument("file", help="store JSON (see examples/stores/)")
    p.set_defaults(func=cmd_stores_put)
    p = stores.add_parser("list", help="list every store")
    p.add_argument("--json", action="store_true", help="full JSON instead of a table")
    p.set_defaults(func=cmd_stores_list)
    p = stores.add_parser("show", help="show one store as JSON (secret names only, never values)")
    p.add_argument("store_id")
    p.set_defaults(func=cmd_stores_show)

    orders = sub.add_parser("orders", help="the ledger: what was queued, held, rejected, issued").add_subparsers(
        dest="command", required=True
    )
    p = orders.add_parser("list", help="a store's recent orders, newest first")
    p.add_argument("store_id")
    p.add_argument("--status", help="only this status (queued, held, rejected, issued, failed …)")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_orders_list)
    p = orders.add_parser("show", help="one order record: status, violations, the invoice order as queued")
    p.add_argument(
        "order_key", help="store_id:platform:order_id (refunds: store_id:platform:order_id:refund:refund_id)"
    )
    p.set_defaults(func=cmd_orders_show)
    add_order_commands(orders, sub)

    secrets = sub.add_parser("secrets", help="Secrets Manager values").add_subparsers(dest="command", required=True)
    p = secrets.add_parser("put", help="create or update a secret; the value is read from standard input")
    p.add_argument("name", help="secret name, starting with einvoice/")
    p.set_defaults(func=cmd_secrets_put)

    taxcodes = sub.add_parser("taxcodes", help="the tax classification table").add_subparsers(
        dest="command", required=True
    )
    p = taxcodes.add_parser("import", help="validate a table file and make it current (no redeploy)")
    p.add_argument("file", help="JSON table (see chalicelib/domain/data/taxcodes.json)")
    p.set_defaults(func=cmd_taxcodes_import)

    webhook = sub.add_parser("webhook", help="webhook helpers").add_subparsers(dest="command", required=True)
    p = webhook.add_parser("sample", help="print a freshly signed sample Standard Webhooks request as curl")
    p.add_argument("store_id")
    p.add_argument("--api", help="API base URL (default: PUBLIC_BASE_URL or http://127.0.0.1:8000)")
    p.add_argument("--amount", default="88.00")
    p.set_defaults(func=cmd_webhook_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    resolve_environment(args.stack)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
