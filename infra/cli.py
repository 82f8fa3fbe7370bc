"""`einvoice`: the operator's command line (stores, secrets, tax codes, sample webhooks).

Which AWS resources it talks to, first match wins:
1. the environment (``STORES_TABLE``, ``CONFIG_BUCKET`` … as the functions see them);
2. ``--stack NAME``: a deployed CloudFormation stack, its resources looked up by logical id;
3. ``.local/stack.json``, written by ``make run``: the local stack (embedded AWS).
Secret values are read from standard input and never echoed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from chalicelib.domain.models import Store

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


SAMPLE_BUYER = {"title": "上海示例科技有限公司", "tax_id": "91350100M000100Y43", "email": "buyer@example.com"}


def sample_webhook(api: str, store_id: str, secret: str, *, order_id: str | None = None, amount: str = "88.00") -> str:
    """A curl command posting a Standard Webhooks `order.paid` event signed with ``secret``."""
    from infra import webhook_samples as ws

    sale = ws.Sale.of(
        order_id or _sample_order_id(), amount, sku="LATTE-L", name="拿铁咖啡（大杯）", buyer=SAMPLE_BUYER
    )
    request = ws.paid("standard", sale, {"secrets": [secret]})
    return ws.curl(f"{api}/webhooks/standard/{store_id}", request)


def _sample_order_id() -> str:
    return f"DEMO-{uuid.uuid4().hex[:8].upper()}"


def cmd_webhook_sample(args: argparse.Namespace) -> int:
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.errors import UnknownStore
    from infra import webhook_samples as ws

    try:
        store = StoreRegistry(_need("STORES_TABLE")).get(args.store_id)
    except UnknownStore:
        print(f"no store {args.store_id!r}", file=sys.stderr)
        return 1
    accepted = [p for p in ws.PLATFORMS if p in store.webhook_secrets]
    if args.platform == "all":
        platforms = accepted
    else:
        platforms = [args.platform or ("standard" if "standard" in accepted else next(iter(accepted), ""))]
    if not set(platforms) <= set(accepted) or not platforms:
        print(
            f"store {store.store_id} accepts {', '.join(accepted) or 'no platform'}, not {platforms[0]!r}"
            " (webhook_secrets of its store file)",
            file=sys.stderr,
        )
        return 1
    api = args.api or os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
    samples = [_sample_of(store, platform, args, api) for platform in platforms]
    if any(samples):
        print("\n\n".join(s for s in samples if s))
    return 0 if all(samples) else 1


def _sample_of(store: Store, platform: str, args: argparse.Namespace, api: str) -> str:
    """The curl command of one platform's sample for ``store`` ("" and a message when it cannot be signed)."""
    from chalicelib.adapters.secrets import SecretStore
    from infra import webhook_samples as ws
    from infra.seed import test_only_signing_keys

    secret = SecretStore().get_json(store.webhook_secrets[platform])
    key = None
    if platform in ws.RSA_SIGNED:
        key = ws.signing_key_for(platform, secret, test_only_signing_keys().get(platform, []))
        if key is None:
            print(
                f"{platform} signs with its own private key, and the store's secret "
                f"{store.webhook_secrets[platform]} holds a public key that none of the test-only keys in "
                "examples/secrets.local.json pairs with: samples are for the local stack's example keys only",
                file=sys.stderr,
            )
            return ""
    sku = next(iter(store.catalogue), None)
    name = (store.catalogue[sku].name or sku) if sku else (store.default_item.name or store.default_item.short_name)
    buyer = SAMPLE_BUYER if platform == "standard" else None
    sale = ws.Sale.of(args.order_id or _sample_order_id(), args.amount, sku=sku, name=name, buyer=buyer)
    return ws.curl(f"{api}/webhooks/{platform}/{store.store_id}", ws.paid(platform, sale, secret, key))


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
    from infra.webhook_samples import PLATFORMS

    p = webhook.add_parser("sample", help="print a freshly signed sample paid-order webhook as curl")
    p.add_argument("store_id")
    p.add_argument(
        "--platform",
        choices=(*PLATFORMS, "all"),
        help="which of the store's platforms signs it (default: standard if the store accepts it); "
        "all: one sample for each platform the store accepts",
    )
    p.add_argument("--api", help="API base URL (default: PUBLIC_BASE_URL or http://127.0.0.1:8000)")
    p.add_argument("--amount", default="88.00")
    p.add_argument("--order-id", help="the shop's order id (default: a fresh DEMO-…)")
    p.set_defaults(func=cmd_webhook_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    resolve_environment(args.stack)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
