"""``einvoice report``: the finance reports of one store and month (docs/finance.md).

- ``report audit --store S --month YYYY-MM --out FILE.pdf``: invoices issued, reversed, voided and
  failed; status changes (the archive's transitions); exceptions and their causes; operators;
  charts; the month's manifest roots.
- ``report reconcile --store S --month YYYY-MM --out FILE.csv``: orders vs invoices vs refunds vs the
  tax platform (queried by serial, batched); every difference with its kind. Exit code 1 when there
  is any difference.
- ``report receivables --store S --month YYYY-MM --out FILE.csv``: one row per invoice and reversal.
- ``report all --store S --month YYYY-MM --out-dir DIR``: the three from one read of the month (the
  read is most of a report's time: docs/benchmarks.md).

The month is a local month (``--utc-offset``, UTC+8 by default); the reads are
``chalicelib/adapters/report_reads.py``, the reports ``chalicelib/reports``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from chalicelib.reports.month import LOOKBACK_DAYS, UTC_OFFSET_HOURS, Month
from chalicelib.reports.run import Loaded, audit_report, load, receivables_report, reconcile_report
from chalicelib.services.archive import InteractionRecorder
from chalicelib.taxapi.base import InvoiceResult
from infra.cli_app import console, err, group, print_table, table

report = group("report", "finance reports of a store and month: audit (PDF), reconcile and receivables (CSV)")

StoreOpt = Annotated[str, typer.Option("--store", help="the store id")]
MonthOpt = Annotated[str, typer.Option("--month", metavar="YYYY-MM", help="the month (local, see --utc-offset)")]
OffsetOpt = Annotated[int, typer.Option("--utc-offset", help="the month's time zone in hours from UTC (China: +8)")]
LookbackOpt = Annotated[
    int,
    typer.Option("--lookback-days", help="also read orders received this many days before the month (issued in it)"),
]


def _need(var: str) -> str:
    value = os.environ.get(var, "")
    if not value:
        err.print(f"{var} is not set: run `make run` (it writes .local/stack.json) or pass --stack", markup=False)
        raise typer.Exit(2)
    return value


def _month(text: str, offset: int, lookback: int) -> Month:
    try:
        return Month.parse(text, utc_offset_hours=offset, lookback_days=lookback)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None


def _write(out: Path, body: bytes) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(body)
    tmp.replace(out)


def _load(store: str, month: Month) -> Loaded:
    from chalicelib.adapters.report_reads import MonthReader

    reader = MonthReader(_need("LEDGER_TABLE"))
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} records"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"reading {store} {month}", total=None)
        loaded = load(reader, store, month, lambda step, n: bar.advance(task, n) if step == "read" else None)
    console.print(f"{len(loaded.facts)} records of {store} read for {month}", highlight=False, soft_wrap=True)
    return loaded


def _audit(loaded: Loaded, store: str, m: Month, out: Path) -> None:
    from chalicelib.adapters.report_reads import ArchiveReader

    built, pdf = audit_report(loaded, store, m, ArchiveReader(os.environ.get("ARCHIVE_BUCKET", "")))
    _write(out, pdf)
    grid = table("", "count", "total", right=("count", "total"))
    for t in built.summary:
        grid.add_row(t.label, str(t.count), f"{t.total:f}")
    print_table(grid)
    sealed = sum(1 for r in built.manifests if r.merkle_root)
    console.print(
        f"{out}: {len(pdf)} bytes; manifests {sealed}/{len(built.manifests)} days", highlight=False, soft_wrap=True
    )


@report.command("audit")
def audit_command(
    *,
    store: StoreOpt,
    month: MonthOpt,
    out: Annotated[Path, typer.Option("--out", help="the PDF to write")],
    utc_offset: OffsetOpt = UTC_OFFSET_HOURS,
    lookback_days: LookbackOpt = LOOKBACK_DAYS,
) -> None:
    """The month's audit report (PDF): invoices, reversals, exceptions, operators, charts, manifests."""
    m = _month(month, utc_offset, lookback_days)
    _audit(_load(store, m), store, m, out)


#: Query calls in flight at once (each with its own provider session); the platform's rate limits are
#: unknown (docs/finance.md): ``--query-concurrency 1`` makes the calls one after another.
QUERY_CONCURRENCY = 4


class ExchangeLookup:
    """The tax platform's records by serial, through the issuing path's own query (batched at the
    provider's ``max_query_batch``, ``concurrency`` batches at once; every call archived like the
    worker's when a recorder is given)."""

    def __init__(
        self, store_id: str, recorder: InteractionRecorder | None = None, *, concurrency: int = QUERY_CONCURRENCY
    ) -> None:
        from aws_lambda_powertools import Logger

        from chalicelib import wiring
        from chalicelib.adapters.credentials import SecretCredentials
        from chalicelib.config import settings
        from chalicelib.services.exchange import Exchange
        from chalicelib.taxapi.registry import Providers

        self.store = wiring.stores().get(store_id)
        self.credentials = SecretCredentials(wiring.secrets()).load(self.store)
        self.providers = Providers(settings(), send=wiring.transport().send)
        quiet = Logger(service="einvoice-report", level="ERROR")  # "not found" answers are the normal case here
        self.exchange = Exchange(
            providers=self.providers, transport=wiring.transport(), logger=quiet, recorder=recorder
        )
        self.concurrency = max(1, concurrency)

    def _query(self, chunk: tuple[str, ...]) -> Mapping[str, InvoiceResult]:
        from chalicelib.services.exchange import Session

        session = Session(self.store, self.credentials, self.providers.get(self.store, self.credentials))
        return self.exchange.query(session, chunk, datetime.now(UTC), {"store_id": self.store.store_id})

    def lookup(self, serials: Iterable[str]) -> Mapping[str, InvoiceResult]:
        from concurrent.futures import ThreadPoolExecutor

        wanted = tuple(serials)
        if not wanted:
            return {}
        step = max(1, self.providers.get(self.store, self.credentials).capabilities.max_query_batch) * 4
        chunks = [wanted[i : i + step] for i in range(0, len(wanted), step)]
        found: dict[str, InvoiceResult] = {}
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chunks))) as pool:
            for part in pool.map(self._query, chunks):
                found.update(part)
        return found


def _reconcile(loaded: Loaded, store: str, m: Month, out: Path, *, by: str | None, concurrency: int) -> int:
    """Write the differences; the number found."""
    from chalicelib.reports.reconcile import KINDS
    from infra.cli_logs import operator_log, operator_name

    with operator_log(operator_name(by)) as recorder, console.status("asking the tax platform by serial …"):
        lookup = ExchangeLookup(store, recorder, concurrency=concurrency)
        differences, body, asked = reconcile_report(loaded, m, lookup)
    _write(out, body)
    grid = table("kind", "count", right=("count",))
    for kind in KINDS:
        grid.add_row(kind, str(sum(1 for d in differences if d.kind == kind)))
    print_table(grid)
    console.print(
        f"{out}: {len(differences)} differences; {asked} serials asked of the platform", highlight=False, soft_wrap=True
    )
    return len(differences)


def _receivables(loaded: Loaded, m: Month, out: Path) -> None:
    rows, body = receivables_report(loaded, m)
    _write(out, body)
    invoices = sum(1 for r in rows if r.kind == "invoice")
    console.print(f"{out}: {invoices} invoices, {len(rows) - invoices} reversals", highlight=False, soft_wrap=True)


ByOpt = Annotated[str | None, typer.Option(help="who runs it (its platform queries are archived as operator:<by>)")]
ConcurrencyOpt = Annotated[int, typer.Option(help="query calls to the tax platform in flight at once")]


@report.command("reconcile")
def reconcile_command(
    *,
    store: StoreOpt,
    month: MonthOpt,
    out: Annotated[Path, typer.Option("--out", help="the CSV of differences to write")],
    utc_offset: OffsetOpt = UTC_OFFSET_HOURS,
    lookback_days: LookbackOpt = LOOKBACK_DAYS,
    by: ByOpt = None,
    query_concurrency: ConcurrencyOpt = QUERY_CONCURRENCY,
) -> None:
    """Orders vs invoices vs refunds vs the tax platform: every difference with its kind (exit 1 if any)."""
    m = _month(month, utc_offset, lookback_days)
    if _reconcile(_load(store, m), store, m, out, by=by, concurrency=query_concurrency):
        raise typer.Exit(1)


@report.command("receivables")
def receivables_command(
    *,
    store: StoreOpt,
    month: MonthOpt,
    out: Annotated[Path, typer.Option("--out", help="the CSV to write (UTF-8 with BOM)")],
    utc_offset: OffsetOpt = UTC_OFFSET_HOURS,
    lookback_days: LookbackOpt = LOOKBACK_DAYS,
) -> None:
    """One row per invoice and per reversal issued in the month, for a receivables import."""
    m = _month(month, utc_offset, lookback_days)
    _receivables(_load(store, m), m, out)


@report.command("all")
def all_command(
    *,
    store: StoreOpt,
    month: MonthOpt,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="the folder for the three files")],
    utc_offset: OffsetOpt = UTC_OFFSET_HOURS,
    lookback_days: LookbackOpt = LOOKBACK_DAYS,
    by: ByOpt = None,
    query_concurrency: ConcurrencyOpt = QUERY_CONCURRENCY,
) -> None:
    """The three reports from one read of the month: audit-S-M.pdf, reconcile-S-M.csv, receivables-S-M.csv
    (exit 1 if reconcile finds differences)."""
    m = _month(month, utc_offset, lookback_days)
    loaded = _load(store, m)
    _audit(loaded, store, m, out_dir / f"audit-{store}-{m}.pdf")
    _receivables(loaded, m, out_dir / f"receivables-{store}-{m}.csv")
    if _reconcile(loaded, store, m, out_dir / f"reconcile-{store}-{m}.csv", by=by, concurrency=query_concurrency):
        raise typer.Exit(1)
