"""The chaos run as one table: the figures, then each invariant with ✓ / ✗ and its first offenders.

Rich, with colour on a terminal and plain text otherwise (CI logs, ``make chaos > out.txt``).
"""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chaos.check import CheckReport
from chaos.journal import Journal

WIDTH = 140


def _title(journal: Journal, report: CheckReport) -> str:
    started = datetime.fromtimestamp(journal.started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    seconds = max(0.0, journal.ended - journal.started)
    verdict = "all invariants hold" if report.ok else f"{sum(not r.ok for r in report.rows)} invariants broken"
    return f"chaos run {started}, {seconds:.0f} s, {journal.orders} orders: {verdict}"


def build(report: CheckReport, journal: Journal, *, colour: bool) -> Table:
    table = Table(title=_title(journal, report), show_lines=False, expand=False)
    table.add_column("", no_wrap=True)
    table.add_column("figure / invariant", overflow="fold")
    table.add_column("expected", overflow="fold")
    table.add_column("observed", overflow="fold")
    for name, value in report.figures:
        table.add_row("", Text(name), "", Text(value))
    table.add_section()
    for row in report.rows:
        mark = "✓" if row.ok else "✗"
        if colour:
            mark = f"[green]{mark}[/]" if row.ok else f"[bold red]{mark}[/]"
        table.add_row(mark, Text(row.name), Text(row.expected), Text(row.observed))
        for offender in row.detail:
            table.add_row("", "", "", Text(f"  {offender}"))
    return table


def render(report: CheckReport, journal: Journal, *, tty: bool | None = None) -> str:
    """The table as text (colour only when ``tty``, by default when stdout is a terminal)."""
    tty = sys.stdout.isatty() if tty is None else tty
    out = io.StringIO()
    console = Console(
        file=out,
        width=WIDTH,
        force_terminal=tty,
        color_system="auto" if tty else None,
        no_color=not tty,
        highlight=False,
        emoji=False,
        markup=True,
    )
    console.print(build(report, journal, colour=tty))
    return out.getvalue()
