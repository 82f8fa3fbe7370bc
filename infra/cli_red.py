"""After-sale commands: void, the void reminder, status sync, batch reversal.

- ``invoices void KEY`` voids an issued invoice where the store's provider can (else the bilingual
  refusal that points to a red reversal; ``chalicelib/services/void.py``).
- ``invoices void-eligible --store S`` lists the invoices that could still be voided instead of reversed
  and have a refund pending (empty, with the reason, where the provider cannot void).
- ``invoices sync KEY…`` / ``invoices sync --store S --since DATE`` reconciles the platform's status.
- ``red batch FILE --reason 01|02|03|04 [--store S] [--yes] [--out RESULT.csv]`` reverses a list of
  orders or invoice numbers: a dry run first, then (confirmed) a progress bar and a result CSV.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from infra.cli_app import console, err, group, print_table, table

invoices = group("invoices", "issued invoices: their files and their delivery to the customer")
red = group("red", "red-letter reversal (红冲): batch reversal of issued invoices")


@invoices.command("void")
def void(order_key: Annotated[str, typer.Argument(help="the order key (store:platform:order id)")]) -> None:
    """Void (作废) an issued invoice where the provider allows it; otherwise say why and what to do."""
    from chalicelib import wiring
    from chalicelib.domain.errors import NotFound
    from chalicelib.services.void import VoidRefused

    try:
        result = wiring.make_void().void(order_key)
    except VoidRefused as exc:
        err.print(f"{order_key}: {exc.en}\n{exc.zh}", markup=False)
        raise typer.Exit(1) from None
    except NotFound as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    console.print(f"{order_key}: invoice {result.invoice_number} {result.status.value}", markup=False)


@invoices.command("void-eligible")
def void_eligible(store: Annotated[str, typer.Option(help="the store id")]) -> None:
    """Invoices still eligible for void that have a refund pending (void them instead of reversing)."""
    from chalicelib import wiring
    from chalicelib.domain.china_time import CHINA_TZ as CHINA
    from chalicelib.services.sync import iso

    now = datetime.now(UTC).astimezone(CHINA)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    records = wiring.ledger().store_records(store, since=iso(month_start))
    found = wiring.make_void().eligible(store, records)
    console.print(found.explanation, markup=False)
    if found.items:
        grid = table("order key", "invoice", "issued at", "pending refunds")
        for i in found.items:
            grid.add_row(i["order_key"], i["invoice_number"], i["issued_at"], i["refunds"])
        print_table(grid)


def _since(value: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@invoices.command("sync")
def sync(
    order_keys: Annotated[list[str] | None, typer.Argument(help="order keys to sync")] = None,
    store: Annotated[str | None, typer.Option(help="sync the store's issued invoices …")] = None,
    since: Annotated[str | None, typer.Option(help="… recorded since this date (YYYY-MM-DD; default 7 days)")] = None,
) -> None:
    """Reconcile invoices with the tax platform's status (issued, voided …); differences are recorded
    and alerted, never changed silently."""
    from chalicelib import wiring
    from chalicelib.domain.errors import NotFound

    if bool(order_keys) == bool(store):
        err.print("give order keys or --store, not both (and not neither)")
        raise typer.Exit(2)
    syncer = wiring.make_status_sync()
    try:
        if order_keys:
            results = syncer.sync_keys(order_keys)
        else:
            start = _since(since) if since else datetime.now(UTC) - timedelta(days=7)
            results = syncer.sync_store(str(store), start)
    except NotFound as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    grid = table("order key", "status", "platform", "action", "detail")
    for r in results:
        grid.add_row(r.order_key, r.status, r.platform, r.action, r.detail)
    print_table(grid)
    differ = [r for r in results if r.action in ("recorded", "voided")]
    console.print(f"{len(results)} synced, {len(differ)} difference(s) recorded and alerted", markup=False)
    if differ:
        raise typer.Exit(3)


@red.command("batch")
def batch(  # noqa: PLR0917 (Typer: one parameter per option)
    file: Annotated[Path, typer.Argument(help="CSV or text: order keys or 20-digit invoice numbers", exists=True)],
    reason: Annotated[str, typer.Option(help="red reason: 01 开票有误, 02 销货退回, 03 服务中止, 04 销售折让")],
    store: Annotated[str | None, typer.Option(help="the store (needed for invoice numbers)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="run after the dry run without asking")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would be reversed")] = False,
    out: Annotated[Path | None, typer.Option(help="write the per-item result CSV here")] = None,
) -> None:
    """Reverse issued invoices in bulk: dry run, confirmation, progress, result CSV; safe to run again."""
    from chalicelib import wiring
    from chalicelib.domain.models import RedReason
    from chalicelib.services.red_batch import parse_items, write_results

    try:
        red_reason = RedReason(reason)
    except ValueError:
        raise typer.BadParameter("--reason must be 01, 02, 03 or 04") from None
    items = parse_items(file.read_text(encoding="utf-8-sig"))
    if not items:
        err.print(f"{file}: no order keys or invoice numbers")
        raise typer.Exit(2)
    runner = wiring.red_batch()
    plan = runner.plan(items, red_reason, store_id=store)
    grid = table("item", "order key", "invoice", "action", "amount", "why", right=("amount",))
    for i in plan.items:
        grid.add_row(i.item, i.order_key, i.invoice_number, i.action, str(i.amount), f"{i.reason} {i.detail}".strip())
    print_table(grid)
    console.print(
        f"dry run: {len(plan.to_reverse)} invoice(s) to reverse, total {plan.total} yuan (reason {red_reason.value}); "
        f"{len(plan.refused)} refused",
        markup=False,
    )
    if dry_run:
        return
    if not plan.to_reverse:
        results = runner.run(plan)
        console.print("nothing to reverse: this batch changes nothing", markup=False)
    else:
        if not yes and not typer.confirm(f"Reverse {len(plan.to_reverse)} invoice(s), {plan.total} yuan?"):
            raise typer.Exit(1)
        columns = (TextColumn("reversing"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
            task = progress.add_task("reverse", total=len(plan.items))
            results = runner.run(plan, each=lambda _: progress.advance(task))
        queued = [r for r in results if r.outcome == "queued"]
        console.print(
            f"{len(queued)} queued for red invoices, {len([r for r in results if r.outcome == 'unchanged'])} "
            f"unchanged, {len([r for r in results if r.outcome == 'refused'])} refused",
            markup=False,
        )
    if out is not None:
        out.write_text(write_results(results), encoding="utf-8")
        console.print(f"results: {out}", markup=False)
