"""The ``einvoice`` command line's one Typer application: every command group registers on it.

A module of commands (``infra/cli_<topic>.py``) adds its commands at import time::

    from infra.cli_app import console, group

    links = group("links", "the customers' invoice links")

    @links.command("revoke")
    def revoke(token_or_key: str) -> None: ...

and is named once in :data:`COMMAND_MODULES`. Groups are shared: two modules asking for
``group("invoices", …)`` get the same sub-application. ``--stack`` (a deployed stack) is the one
global option; the resources a command talks to are resolved before it runs
(``infra.cli.resolve_environment``; never for ``--help``, which needs no stack). Output: Rich tables
(:func:`table` + :func:`print_table`: piped or captured, a row stays on one line) and progress on
:data:`console`, errors on :data:`err`; what a program reads back (JSON, a curl command) plainly with
``typer.echo``; exit codes: 0 done, 1 done with failures or differences, 2 refused (bad input).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click.core import Context as ClickContext  # the click Typer vendors and runs on

console = Console()
err = Console(stderr=True)


class _Root(TyperGroup):
    """The root group: notes before its callback runs whether a command will run at all (not ``--help``,
    not a group's help for want of a command), so that resources are resolved only for a command."""

    def invoke(self, ctx: ClickContext) -> object:
        args = [*ctx._protected_args, *ctx.args]
        ctx.meta["einvoice.runs_a_command"] = _runs_a_command(self, ctx, args)
        ctx.meta["einvoice.offline"] = any(tuple(args[i : i + 2]) in OFFLINE_COMMANDS for i in range(len(args)))
        return super().invoke(ctx)


def _runs_a_command(group: TyperGroup, ctx: ClickContext, args: list[str]) -> bool:
    if "--help" in args:
        return False
    command: object = group
    for token in args:
        if not isinstance(command, TyperGroup):
            return True
        if token.startswith("-"):
            return True  # an option of a group: let the parser judge it
        command = command.get_command(ctx, token)
    return command is not None and not isinstance(command, TyperGroup)


root = typer.Typer(
    cls=_Root,
    name="einvoice",
    help="The e-invoicing gateway's command line: stores, orders, invoices, links, logs, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # never print a secret held in a local variable
    rich_markup_mode="rich",
)
_groups: dict[str, typer.Typer] = {}


@root.callback()
def _resources(
    ctx: typer.Context,
    stack: Annotated[
        str | None,
        typer.Option(help="a deployed CloudFormation stack name (default: the environment, then the local stack)"),
    ] = None,
) -> None:
    """Resolve the resources a command talks to before it runs (never for ``--help``)."""
    if ctx.meta.get("einvoice.runs_a_command", True) and not ctx.meta.get("einvoice.offline"):
        from infra.cli import resolve_environment

        try:
            resolve_environment(stack)
        except SystemExit as refused:  # no stack: the reason on standard error, exit code 1
            if isinstance(refused.code, int | None):
                raise
            err.print(str(refused.code), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


#: The modules whose import registers their commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "infra.cli",
    "infra.cli_orders",
    "infra.cli_auth",
    "infra.cli_logs",
    "infra.cli_invoices",
    "infra.cli_dev",
    "infra.cli_links",
    "infra.cli_report",
    "infra.cli_retitle",
    "infra.cli_red",
)
#: Commands that read local files only and need no stack (``einvoice logs verify DIR``).
OFFLINE_COMMANDS: set[tuple[str, str]] = {("logs", "verify")}


def group(name: str, help: str) -> typer.Typer:
    """The sub-application ``einvoice NAME`` (made on first use, shared by every module)."""
    if name not in _groups:
        sub = typer.Typer(help=help, no_args_is_help=True, pretty_exceptions_show_locals=False)
        root.add_typer(sub, name=name)
        _groups[name] = sub
    return _groups[name]


def table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    """A list's table: a header row, no frame; ``right`` names the columns aligned right (numbers)."""
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, no_wrap=True, justify="right" if column in right else "left")
    return grid


def print_table(grid: Table) -> None:
    """Print a table on :data:`console`; piped or captured, as wide as its rows (one row, one line, whole)."""
    if console.is_terminal:
        console.print(grid)
        return
    natural = console.measure(grid, options=console.options.update(max_width=100_000)).maximum
    Console(file=console.file, width=max(natural, 20), color_system=None).print(grid)


def application() -> typer.Typer:
    """The whole command line, every module's commands registered."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return root
