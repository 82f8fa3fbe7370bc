"""`einvoice stores api-key` and `einvoice operators add`: the credentials of the invoice API and /admin.

A store's API key is printed once, on standard output (nothing else is, so ``KEY=$(einvoice stores
api-key S)`` works); only its SHA-256 is stored. An operator's password is read from the prompt
(hidden, asked twice) or, when standard input is not a terminal, from its first line; it is never
echoed and only its scrypt hash is stored (``chalicelib/services/auth.py``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import typer

from infra.cli_app import err, group

stores = group("stores", "the store registry")
operators = group("operators", "the operators of /admin (headquarters' dashboard)")


def _table(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        err.print(f"{var} is not set")
        raise typer.Exit(2)
    return value


def _known_store(store_id: str) -> bool:
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.errors import UnknownStore

    try:
        StoreRegistry(_table("STORES_TABLE")).get(store_id)
    except UnknownStore:
        return False
    return True


@stores.command("api-key")
def api_key(
    store_id: Annotated[str, typer.Argument(help="the store whose invoice API key is made")],
    rotate: Annotated[
        bool, typer.Option("--rotate", help="replace the store's key (the old one keeps working for the grace period)")
    ] = False,
    grace_hours: Annotated[
        int, typer.Option(help="how long the replaced key stays valid after --rotate", min=0, max=720)
    ] = 24,
) -> None:
    """Make the store's API key for GET /stores/{store}/orders/{order}/invoice: printed once, stored hashed."""
    from chalicelib.adapters.auth_store import AuthStore
    from chalicelib.services.auth import KeyExists, StoreKeys

    if not _known_store(store_id):
        err.print(f"no store {store_id!r}")
        raise typer.Exit(2)
    keys = StoreKeys(AuthStore(_table("LEDGER_TABLE")), clock=time.time)
    try:
        key = keys.issue(store_id, rotate=rotate, grace_seconds=grace_hours * 3600)
    except KeyExists as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    typer.echo(key)
    note = f"; the previous key stays valid for {grace_hours} h" if rotate and grace_hours else ""
    err.print(f"the API key of {store_id}: shown once, only its SHA-256 is stored{note}", highlight=False)


def _password() -> str:
    if sys.stdin.isatty():
        value: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        return value
    return sys.stdin.readline().rstrip("\r\n")


@operators.command("add")
def operators_add(
    name: Annotated[str, typer.Argument(help="the operator's sign-in name (a-z, 0-9, '.', '_', '-')")],
    stores_: Annotated[str | None, typer.Option("--stores", help="the stores it sees, comma-separated: S1,S2")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every store (headquarters)")] = False,
) -> None:
    """Create (or replace) an operator; the password is read from the prompt or standard input."""
    from chalicelib.adapters.auth_store import AuthStore
    from chalicelib.services.auth import OperatorAuth

    if all_ == (stores_ is not None):
        err.print("give either --stores S1,S2 or --all")
        raise typer.Exit(2)
    chosen = None if all_ else [s.strip() for s in (stores_ or "").split(",") if s.strip()]
    unknown = [s for s in chosen or [] if not _known_store(s)]
    if unknown:
        err.print(f"no store {', '.join(unknown)}")
        raise typer.Exit(2)
    try:
        record = OperatorAuth(AuthStore(_table("LEDGER_TABLE")), clock=time.time).add(name, _password(), chosen)
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    sees = "every store" if chosen is None else ", ".join(sorted(record.stores))
    typer.echo(f"operator {record.name} can sign in at /admin/login and sees {sees}")
