"""``einvoice invoices retitle KEY --title T --tax-id X``: 换开 — an issued invoice re-issued to another
title (a full red reversal, then a new blue; ``chalicelib/services/retitle.py``).

Run again on a 换开 under way, it continues from where it stands (``Retitle.resume``) and says where
that is. Exit codes: 0 queued / done, 1 refused or changed meanwhile, 2 the title breaks a rule.
"""

from __future__ import annotations

from typing import Annotated

import typer

from chalicelib.domain.taxpayer import mask
from infra.cli_app import console, err, group

invoices = group("invoices", "issued invoices: their files and their delivery to the customer")

#: What each step tells the operator.
SAYS = {
    "reversing": "换开 under way: the red reversal is queued (the new invoice follows once it is issued)",
    "reissued": "reversed; the new invoice is queued or issued",
}


@invoices.command("retitle")
def retitle(
    order_key: Annotated[str, typer.Argument(help="the order key of the issued invoice (store:platform:order id)")],
    title: Annotated[str, typer.Option(help="the new buyer title (购买方名称)")],
    tax_id: Annotated[str, typer.Option(help="the new buyer's tax id (统一社会信用代码); a company needs one")] = "",
    individual: Annotated[bool, typer.Option(help="the new buyer is an individual (no tax id needed)")] = False,
) -> None:
    """换开: reverse an issued invoice in full (red) and issue it again to another title."""
    from chalicelib import wiring

    result = wiring.retitle().request(order_key, title, tax_id, individual=individual, source="cli")
    step = result.step.value
    if step == "invalid":
        for field_name, problems in result.errors.items():
            for v in problems:
                err.print(f"{field_name or 'order'}: {v.message} / {v.message_en}", markup=False)
        raise typer.Exit(2)
    if step in ("refused", "conflict"):
        err.print(f"{order_key}: {result.detail}", markup=False)
        raise typer.Exit(1)
    detail = f" (the red reversal is {result.detail})" if result.detail else ""
    console.print(f"{order_key}: {SAYS[step]}{detail}", markup=False, highlight=False)
    console.print(f"  title {title} ({mask(tax_id) or 'no tax id'})", markup=False, highlight=False)
    console.print(f"  red reversal  {result.refund_key}", markup=False, highlight=False)
    console.print(f"  new invoice   {result.reissue_key}", markup=False, highlight=False)
