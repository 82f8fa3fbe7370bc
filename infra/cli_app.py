"""The ``einvoice`` command line's one Typer application: every command group registers on it.

A module of commands (``infra/cli_<topic>.py``) adds its commands at import time::

    from infra.cli_app import console, group

    links = group("links", "the customers' invoice links")

    @links.command("revoke")
    def revoke(token_or_key: str) -> None: ...

and is named once in :data:`COMMAND_MODULES`. Groups are shared: two modules asking for
``group("invoices", …)`` get the same sub-application. ``--stack`` (a deployed stack) is the one
global option; the resources a command talks to are resolved before it runs
(``infra.cli.resolve_environment``). Output: Rich tables and progress on :data:`console`, errors on
:data:`err`; exit codes: 0 done, 1 done with failures or differences, 2 refused (bad input).
"""

from __future__ import annotations

import importlib

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

root = typer.Typer(
    name="einvoice",
    help="The e-invoicing gateway's command line: stores, orders, invoices, links, logs, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # never print a secret held in a local variable
    rich_markup_mode="rich",
)
_groups: dict[str, typer.Typer] = {}

#: The modules whose import registers their commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = ("infra.cli", "infra.cli_orders")


def group(name: str, help: str) -> typer.Typer:
    """The sub-application ``einvoice NAME`` (made on first use, shared by every module)."""
    if name not in _groups:
        sub = typer.Typer(help=help, no_args_is_help=True, pretty_exceptions_show_locals=False)
        root.add_typer(sub, name=name)
        _groups[name] = sub
    return _groups[name]


def application() -> typer.Typer:
    """The whole command line, every module's commands registered."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return root
