"""`einvoice`: the operator's command line (stores, secrets, tax codes, sample webhooks).

The commands are Typer commands on the one application of ``infra/cli_app.py``; this module holds the
``stores``, ``secrets``, ``taxcodes`` and ``webhook`` groups, the resolution of resources, and
:func:`main` (the ``einvoice`` script). Which AWS resources a command talks to, first match wins:
1. the environment (``STORES_TABLE``, ``CONFIG_BUCKET`` … as the functions see them);
2. ``--stack NAME``: a deployed CloudFormation stack, its resources looked up by logical id;
3. ``.local/stack.json``, written by ``make run``: the local stack (embedded AWS).
Secret values are read from standard input and never echoed. Exit codes: 0 done, 1 not found or done
with failures, 2 refused (bad input).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from infra.cli_app import group, print_table, table
from infra.webhook_samples import PLATFORMS as SAMPLE_PLATFORMS

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


# --- stores --------------------------------------------------------------------------------------
stores = group("stores", "the store registry")


@stores.command("put")
def stores_put(file: Annotated[Path, typer.Argument(help="store JSON (see examples/stores/)")]) -> None:
    """Create or replace a store from a JSON file."""
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.models import Store

    try:
        store = Store.model_validate_json(file.read_bytes())
    except ValidationError as exc:
        typer.echo(f"{file} is not a valid store:", err=True)
        for error in exc.errors():
            typer.echo(f"  {'.'.join(str(p) for p in error['loc'])}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    StoreRegistry(_need("STORES_TABLE")).put(store)
    typer.echo(f"stored {store.store_id} ({store.name})")


@stores.command("list")
def stores_list(json_: Annotated[bool, typer.Option("--json", help="full JSON instead of a table")] = False) -> None:
    """List every store."""
    from chalicelib.adapters.stores import StoreRegistry

    found = StoreRegistry(_need("STORES_TABLE")).list()
    if json_:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in found], ensure_ascii=False, indent=2))
        return
    grid = table("STORE", "MERCHANT", "PROVIDER", "PILOT", "NAME", right=("PILOT",))
    for s in found:
        grid.add_row(s.store_id, s.merchant or "-", s.provider.provider.value, f"{s.pilot_percentage}%", s.name)
    print_table(grid)


@stores.command("show")
def stores_show(store_id: Annotated[str, typer.Argument(help="the store's id")]) -> None:
    """Show one store as JSON (secret names only, never values)."""
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.errors import UnknownStore

    try:
        store = StoreRegistry(_need("STORES_TABLE")).get(store_id)
    except UnknownStore:
        typer.echo(f"no store {store_id!r}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(store.model_dump(mode="json"), ensure_ascii=False, indent=2))


# --- secrets -------------------------------------------------------------------------------------
secrets = group("secrets", "Secrets Manager values")


@secrets.command("put")
def secrets_put(name: Annotated[str, typer.Argument(help="secret name, starting with einvoice/")]) -> None:
    """Create or update a secret; the value is read from standard input (never echoed)."""
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.domain.models import SECRET_NAME_RE

    if not SECRET_NAME_RE.match(name):
        typer.echo("a secret name must start with 'einvoice/' (letters, digits, /_+=.@-)", err=True)
        raise typer.Exit(2)
    value = sys.stdin.read().strip()
    if not value:
        typer.echo("no value on standard input", err=True)
        raise typer.Exit(2)
    outcome = SecretStore().put(name, value)
    typer.echo(f"{outcome} {name} ({len(value)} characters; the value is not shown)")


# --- taxcodes ------------------------------------------------------------------------------------
taxcodes = group("taxcodes", "the tax classification table")


@taxcodes.command("import")
def taxcodes_import(
    file: Annotated[Path, typer.Argument(help="JSON table (see chalicelib/domain/data/taxcodes.json)")],
) -> None:
    """Validate a table file and make it current (no redeploy)."""
    import boto3

    from chalicelib.domain.taxcodes import TaxCodeTable
    from infra.seed import TAXCODES_KEY

    raw = file.read_bytes()
    try:
        codes = TaxCodeTable.from_json(raw)
    except ValueError as exc:
        typer.echo(f"{file} is not a valid tax code table: {exc}", err=True)
        raise typer.Exit(2) from None
    boto3.client("s3").put_object(Bucket=_need("CONFIG_BUCKET"), Key=TAXCODES_KEY, Body=raw)
    typer.echo(f"imported {len(codes)} tax codes (version {codes.version}); the functions read it within a minute")


# --- webhook samples -----------------------------------------------------------------------------
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


webhook = group("webhook", "webhook helpers")


def _sample_platform(value: str | None) -> str | None:
    if value is not None and value not in (*SAMPLE_PLATFORMS, "all"):
        raise typer.BadParameter(f"{value!r} is none of {', '.join(SAMPLE_PLATFORMS)}, all")
    return value


@webhook.command("sample")
def webhook_sample(
    store_id: Annotated[str, typer.Argument(help="the store whose secret signs it")],
    platform: Annotated[
        str | None,
        typer.Option(
            callback=_sample_platform,
            help=f"which of the store's platforms signs it: {', '.join(SAMPLE_PLATFORMS)} (default: standard if "
            "the store accepts it); all: one sample for each platform the store accepts",
        ),
    ] = None,
    api: Annotated[
        str | None, typer.Option(help="API base URL (default: PUBLIC_BASE_URL or http://127.0.0.1:8000)")
    ] = None,
    amount: Annotated[str, typer.Option(help="the order's amount")] = "88.00",
    order_id: Annotated[str | None, typer.Option(help="the shop's order id (default: a fresh DEMO-…)")] = None,
) -> None:
    """Print a freshly signed sample paid-order webhook as curl."""
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.errors import UnknownStore

    try:
        store = StoreRegistry(_need("STORES_TABLE")).get(store_id)
    except UnknownStore:
        typer.echo(f"no store {store_id!r}", err=True)
        raise typer.Exit(1) from None
    accepted = [p for p in SAMPLE_PLATFORMS if p in store.webhook_secrets]
    if platform == "all":
        platforms = accepted
    else:
        platforms = [platform or ("standard" if "standard" in accepted else next(iter(accepted), ""))]
    if not set(platforms) <= set(accepted) or not platforms:
        typer.echo(
            f"store {store.store_id} accepts {', '.join(accepted) or 'no platform'}, not {platforms[0]!r}"
            " (webhook_secrets of its store file)",
            err=True,
        )
        raise typer.Exit(1)
    base = api or os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
    samples = [_sample_of(store, p, base, order_id=order_id, amount=amount) for p in platforms]
    if any(samples):
        typer.echo("\n\n".join(s for s in samples if s))
    if not all(samples):
        raise typer.Exit(1)


def _sample_of(store: Store, platform: str, api: str, *, order_id: str | None, amount: str) -> str:
    """The curl command of one platform's sample for ``store`` ("" and a message when it cannot be signed)."""
    from chalicelib.adapters.secrets import SecretStore
    from infra import webhook_samples as ws
    from infra.seed import test_only_signing_keys

    secret = SecretStore().get_json(store.webhook_secrets[platform])
    key = None
    if platform in ws.RSA_SIGNED:
        key = ws.signing_key_for(platform, secret, test_only_signing_keys().get(platform, []))
        if key is None:
            typer.echo(
                f"{platform} signs with its own private key, and the store's secret "
                f"{store.webhook_secrets[platform]} holds a public key that none of the test-only keys in "
                "examples/secrets.local.json pairs with: samples are for the local stack's example keys only",
                err=True,
            )
            return ""
    sku = next(iter(store.catalogue), None)
    name = (store.catalogue[sku].name or sku) if sku else (store.default_item.name or store.default_item.short_name)
    buyer = SAMPLE_BUYER if platform == "standard" else None
    sale = ws.Sale.of(order_id or _sample_order_id(), amount, sku=sku, name=name, buyer=buyer)
    return ws.curl(f"{api}/webhooks/{platform}/{store.store_id}", ws.paid(platform, sale, secret, key))


# --- the script ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run ``einvoice`` with ``argv`` (default: the process's arguments); the exit code."""
    from infra.cli_app import application

    try:
        application()(args=argv, prog_name="einvoice")
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        typer.echo(done.code, err=True)  # resolve_environment / _need: the reason as the message
        return 1
    return 0


if __name__ == "__main__":  # `python -m infra.cli`: this module is infra.cli (its commands registered once)
    sys.modules.setdefault("infra.cli", sys.modules[__name__])
    raise SystemExit(main())
