"""``einvoice invoices``: an issued invoice's delivery.

- ``invoices resend KEY [--email ADDR | --sms NUMBER]`` delivers the invoice again, now, from this
  machine with the stack's adapters: the buyer's contact (the store's channels) or the address given,
  with a fresh customer link (the one sent before keeps working until it expires or is revoked).
- ``invoices deliveries KEY`` lists the delivery records of the order (one per attempt, masked).
"""

from __future__ import annotations

from typing import Annotated

import typer

from infra.cli_app import console, err, group, print_table, table

invoices = group("invoices", "issued invoices: their files and their delivery to the customer")


def _print(records: list[dict[str, str]]) -> None:
    grid = table("at", "channel", "to", "result", "attempt", "reason", "message id", "error")
    for r in records:
        grid.add_row(
            r.get("at", ""),
            r.get("channel", ""),
            r.get("to", ""),
            r.get("result", ""),
            r.get("attempt", ""),
            r.get("reason", ""),
            r.get("message_id", ""),
            r.get("error", ""),
        )
    print_table(grid)


@invoices.command("resend")
def resend(
    order_key: Annotated[str, typer.Argument(help="the order key (store:platform:order id)")],
    email: Annotated[str | None, typer.Option(help="send to this e-mail address instead of the buyer's")] = None,
    sms: Annotated[str | None, typer.Option(help="send to this phone number instead of the buyer's")] = None,
) -> None:
    """Deliver an issued invoice again (e-mail / SMS), with a fresh link."""
    from chalicelib import wiring
    from chalicelib.domain.delivery import DeliveryError, email_address, phone_number
    from chalicelib.services.deliver import Contacts

    if email and sms:
        err.print("give --email or --sms, not both")
        raise typer.Exit(2)
    try:
        contacts = Contacts(email=email_address(email), sms=phone_number(sms))
    except DeliveryError as exc:
        err.print(f"{exc.message} ({exc.code})")
        raise typer.Exit(2) from None
    outcome = wiring.deliver().deliver(order_key, resend=contacts)
    if outcome.status in ("no_record", "not_issued"):
        err.print(f"{order_key}: {'no such order' if outcome.status == 'no_record' else 'not issued yet'}")
        raise typer.Exit(1)
    if not outcome.records:
        console.print(f"{order_key}: no contact to send to (the buyer gave none; use --email or --sms)")
        raise typer.Exit(1)
    _print(outcome.records)
    if any(r["result"] != "sent" for r in outcome.records):
        raise typer.Exit(1)


@invoices.command("deliveries")
def deliveries(order_key: Annotated[str, typer.Argument(help="the order key")]) -> None:
    """The delivery records of an order: one per attempt and channel (addresses masked)."""
    from chalicelib import wiring

    view = wiring.ledger().delivery_view(order_key)
    if view is None:
        err.print(f"{order_key}: no such order")
        raise typer.Exit(1)
    record, history = view
    console.print(
        f"{order_key}: {record.status.value}, invoice {record.text('invoice_number') or '-'}, "
        f"pdf {record.text('pdf_key') or '-'}"
    )
    if history:
        _print(history)
    else:
        console.print("no delivery yet")
