"""``einvoice links``: the customers' invoice links (``chalicelib/services/links.py``).

- ``links list ORDER_KEY`` — every link of an order: its id (the first 12 hex digits of the token's
  SHA-256: the token itself is stored nowhere), issued, expires, state;
- ``links revoke TOKEN|ORDER_KEY`` — one link, or every live link of an order; its page answers 410;
- ``links issue ORDER_KEY [--ttl-days N]`` — a new link (e.g. a request link for a buyer's company
  title before the invoice is issued); the URL is printed once and cannot be shown again.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer

from infra.cli_app import console, err, group, print_table, table

links_app = group("links", "the customers' invoice links: list, revoke, issue")
CHINA = timezone(timedelta(hours=8))


def _when(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, CHINA).strftime("%Y-%m-%d %H:%M")


@links_app.command("list")
def list_links(order_key: Annotated[str, typer.Argument(help="store:platform:order_id")]) -> None:
    """Every link of an order, oldest first."""
    from chalicelib import wiring
    from chalicelib.services.links import is_order_key

    if not is_order_key(order_key):
        err.print(f"not an order key: {order_key!r} (store:platform:order_id)", markup=False)
        raise typer.Exit(2)
    found = wiring.links().of_order(order_key)
    if not found:
        console.print(f"no links for {order_key}", markup=False)
        return
    now = time.time()
    grid = table("link", "issued", "expires", "state")
    for link in found:
        state = link.state(now)
        grid.add_row(link.token_hash[:12], _when(link.issued_at), _when(link.expires_at), state or "live")
    print_table(grid)


@links_app.command("revoke")
def revoke(
    token_or_key: Annotated[str, typer.Argument(help="a link's token, or an order key (all its links)")],
) -> None:
    """Revoke a link (its page answers 410 from now on), or every live link of an order."""
    from chalicelib import wiring

    try:
        count = wiring.links().revoke(token_or_key, now=time.time())
    except ValueError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    if count == 0:
        err.print("nothing revoked: no such live link", markup=False)
        raise typer.Exit(1)
    console.print(f"revoked {count} link{'s' if count != 1 else ''}", markup=False)


@links_app.command("issue")
def issue(
    order_key: Annotated[str, typer.Argument(help="store:platform:order_id")],
    ttl_days: Annotated[
        int | None, typer.Option(help="days the link lives (default: the store's link_ttl_days)")
    ] = None,
) -> None:
    """A new link to an order's page (printed once: only its hash is kept)."""
    from chalicelib import wiring
    from chalicelib.domain.errors import NotFound
    from chalicelib.services.links import is_order_key

    if not is_order_key(order_key):
        err.print(f"not an order key: {order_key!r} (store:platform:order_id)", markup=False)
        raise typer.Exit(2)
    if wiring.ledger().get_order(order_key) is None:
        err.print(f"no order {order_key}", markup=False)
        raise typer.Exit(2)
    from chalicelib.domain.order_keys import store_of

    store_id = store_of(order_key)
    try:
        days = ttl_days or wiring.stores().get(store_id).delivery.link_ttl_days
    except NotFound:
        err.print(f"no store {store_id}", markup=False)
        raise typer.Exit(2) from None
    link = wiring.links().issue(store_id, order_key, now=time.time(), ttl_days=days)
    typer.echo(link.url)
    err.print(f"expires {_when(link.expires_at)} (China time); the token is not stored and cannot be shown again")
