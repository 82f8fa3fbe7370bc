"""Operator commands on orders: ``einvoice orders list|show|fix|retry`` and ``einvoice dlq list|redrive``
(Typer commands on the application of ``infra/cli_app.py``).

``orders list`` shows a rejected order's first violation, and ``--status`` is filtered by the ledger,
so a store's rejected orders are found however many newer orders it has. ``orders fix KEY`` corrects a
rejected order (the buyer from the flags, or the corrected fields from ``--from-file``; the format is in
``chalicelib/services/rejections.py`` and docs/operator.md): it is validated again under the store's
current settings and, when valid, issued.

A retry is always safe: the record goes to ``ambiguous`` (``order_state.OPERATOR_RETRY``), so the next
attempt queries the platform by the order's serial before it could send anything, and the serial
never changes — a platform that did act answers with the invoice it holds. ``--repin`` also forgets the
tax configuration the order was first sent under: only for an order ``blocked`` by a configuration
change, after checking on the *old* platform that it holds no invoice under the serial.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chalicelib.config import SWEEP_GRACE_SECONDS
from chalicelib.domain.order_keys import parse_order_key, serial_for
from chalicelib.domain.order_state import (
    CLAIMABLE,
    OPERATOR_RETRYABLE,
    RED_CLAIMABLE,
    RED_OPERATOR_RETRYABLE,
    OrderEvent,
    OrderStatus,
)
from infra.cli_app import group, print_table, table

if TYPE_CHECKING:
    from chalicelib.services.archive import TransitionRecorder
    from chalicelib.services.ports import OrderRecord
    from chalicelib.services.rejections import FixResult


def _need(var: str) -> str:
    value = os.environ.get(var, "")
    if not value:
        typer.echo(f"{var} is not set: run `make run` (it writes .local/stack.json) or pass --stack", err=True)
        raise SystemExit(2)
    return value


orders = group("orders", "the ledger: what was queued, held, rejected, issued")
dlq = group("dlq", "the issue queue's dead letters")

ORDER_KEY_HELP = "store_id:platform:order_id (refunds: store_id:platform:order_id:refund:refund_id)"


@orders.command("list")
def orders_list(
    store_id: Annotated[str, typer.Argument(help="the store's id")],
    status: Annotated[
        str | None, typer.Option(help="only this status (queued, held, rejected, issued, failed …)")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many orders")] = 50,
) -> None:
    """A store's recent orders, newest first (a rejected order with its first violation)."""
    from chalicelib.adapters.ledger import Ledger

    if status is not None and status not in {s.value for s in OrderStatus}:
        typer.echo(f"no status {status!r}; one of {', '.join(s.value for s in OrderStatus)}", err=True)
        raise typer.Exit(2)
    records = Ledger(_need("LEDGER_TABLE")).orders_of_store(store_id, limit=limit, status=status)
    grid = table("CREATED", "STATUS", "KIND", "ORDER KEY", "FIRST VIOLATION")
    for r in records:
        grid.add_row(r.created_at, r.status, r.kind, r.order_key, first_violation(r))
    print_table(grid)


@orders.command("show")
def orders_show(order_key: Annotated[str, typer.Argument(help=ORDER_KEY_HELP)]) -> None:
    """One order record: status, violations, the invoice order as queued (JSON)."""
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.domain.order_keys import parse_order_key

    ledger = Ledger(_need("LEDGER_TABLE"))
    record = ledger.get_order(order_key)  # looked up as given: records of the old key format too
    if record is None:
        try:
            parse_order_key(order_key)
            hint = ""
        except ValueError:
            hint = " (an order key is store_id:platform:order_id)"
        typer.echo(f"no order {order_key!r}{hint}", err=True)
        raise typer.Exit(1)
    shown = {
        "order_key": record.order_key,
        "store_id": record.store_id,
        "status": record.status,
        "kind": record.kind,
        "created_at": record.created_at,
        "waiting_for_queue": record.outbox_pending,
        "violations": record.violations,
        "issue": {k: v for k, v in ledger.issue_fields(order_key).items() if k != "claim_id"},
        "payload": record.payload,
    }
    typer.echo(json.dumps(shown, ensure_ascii=False, indent=2))


def first_violation(record: OrderRecord, width: int = 90) -> str:
    """A rejected record's first violation, one line: ``field: code — English message (+n more)``."""
    violations = record.violations or []
    if not violations:
        return ""
    v = violations[0]
    text = f"{v.get('field', '?')}: {v.get('code', '?')} — {v.get('message_en', '')}"
    more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
    return (text[: width - 1] + "…" if len(text) > width else text) + more


def fix_order(order_key: str, corrections: dict[str, Any], *, by: str) -> FixResult:
    """Correct one rejected order against the configured stack (``chalicelib/services/rejections.py``)."""
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.queue import IssueQueue
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.adapters.taxcodes import TaxCodeSource
    from chalicelib.services.rejections import FixRejected
    from infra.cli_logs import operator_log

    with operator_log(by) as recorder:  # the status change is archived as operator:<by>
        use_case = FixRejected(
            ledger=Ledger(_need("LEDGER_TABLE"), recorder=recorder),
            stores=StoreRegistry(_need("STORES_TABLE")),
            taxcodes=TaxCodeSource(_need("CONFIG_BUCKET")),
            queue=IssueQueue(_need("ISSUE_QUEUE_URL")),
        )
        return use_case(order_key, corrections, by=by)


def _corrections(buyer_title: str | None, buyer_tax_id: str | None, from_file: Path | None) -> dict[str, Any]:
    """The corrections the flags or ``--from-file`` give (CorrectionError when unusable)."""
    from chalicelib.services.rejections import CorrectionError

    buyer = {k: v for k, v in (("title", buyer_title), ("tax_id", buyer_tax_id)) if v is not None}
    if from_file is None:
        return {"buyer": buyer} if buyer else {}
    if buyer:
        raise CorrectionError("give the buyer flags or --from-file, not both")
    try:
        doc = json.loads(from_file.read_bytes(), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise CorrectionError(f"{from_file}: {exc}") from None
    if not isinstance(doc, dict):
        raise CorrectionError(f"{from_file}: the corrections are one JSON object")
    return doc


@orders.command(
    "fix",
    help="Correct a rejected order; valid under the store's current settings, it is issued.\n\n"
    "The buyer from the flags, or any invoice-relevant field from --from-file (docs/operator.md#rejected-orders). "
    "Without either, the order is checked again under the store's current settings. Still invalid: the "
    "violations are shown, nothing changes.",
)
def orders_fix(
    order_key: Annotated[str, typer.Argument(help=ORDER_KEY_HELP)],
    buyer_title: Annotated[str | None, typer.Option(help="the buyer's invoice title (抬头)")] = None,
    buyer_tax_id: Annotated[str | None, typer.Option(help="the buyer's tax id (纳税人识别号)")] = None,
    from_file: Annotated[
        Path | None, typer.Option(metavar="CORRECTED_JSON", help="the corrected fields as one JSON object")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(help="who corrects it, recorded on the order (default: $EINVOICE_OPERATOR or the login)"),
    ] = None,
) -> None:
    """Correct a rejected order (``chalicelib/services/rejections.py``)."""
    from chalicelib.domain.errors import UnknownStore
    from chalicelib.services.rejections import CorrectionError

    who = by or os.environ.get("EINVOICE_OPERATOR") or getpass.getuser()
    try:
        result = fix_order(order_key, _corrections(buyer_title, buyer_tax_id, from_file), by=who)
    except CorrectionError as exc:
        typer.echo(f"unusable corrections: {exc}", err=True)
        raise typer.Exit(2) from None
    except UnknownStore as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    if not result.ok:
        typer.echo(result.message, err=True)
        for v in result.violations:
            typer.echo(f"  {v.field}: {v.code} — {v.message} / {v.message_en}", err=True)
        raise typer.Exit(1)
    changed = ", ".join(result.changes) or "nothing (checked again under the store's current settings)"
    typer.echo(f"{result.message} (by {who}; changed: {changed})")


def retry_order(order_key: str, *, repin: bool = False, by: str | None = None) -> tuple[int, str]:
    """Ask for another attempt of one order: (exit code, what was done); archived as operator:<by>."""
    from infra.cli_logs import operator_log, operator_name

    with operator_log(operator_name(by)) as recorder:
        return _retry_order(order_key, repin=repin, recorder=recorder)


def _retry_order(order_key: str, *, repin: bool, recorder: TransitionRecorder | None) -> tuple[int, str]:
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.queue import IssueQueue

    ledger = Ledger(_need("LEDGER_TABLE"), recorder=recorder)
    record = ledger.get_order(order_key)
    if record is None:
        return 1, f"no order {order_key!r}"
    status = record.status
    if parse_order_key(order_key).is_refund:  # a refund record: the red flow's own retry event
        return _retry_refund(ledger, order_key, status)
    if status in OPERATOR_RETRYABLE:
        fields: dict[str, str | int | None] = {
            "retries": 0,
            "checks": 0,
            "gave_up_at": None,
            "last_error": "operator retry" + (" with a new configuration pin" if repin else ""),
        }
        if repin:
            fields["pin"] = None
            fields["blocked_pin"] = None
        done = ledger.transition(
            order_key,
            OrderEvent.OPERATOR_RETRY,
            now=time.time(),
            due_at=time.time() + SWEEP_GRACE_SECONDS,
            fields=fields,
        )
        if not done.ok:
            now_status = done.before.status.value if done.before else "gone"
            return 1, f"order {order_key} changed meanwhile (now {now_status}); try again"
    elif status in CLAIMABLE:
        pass  # already claimable: a fresh message is all it needs
    else:
        reason = {
            OrderStatus.ISSUED: "it is issued",
            OrderStatus.HELD: "it is held for manual issuing (pilot share)",
            OrderStatus.REJECTED: f"it was rejected: correct it with `einvoice orders fix {order_key} …`",
        }.get(status, f"its status is {status.value}")
        return 1, f"nothing to retry for {order_key}: {reason}"
    if repin and status is not OrderStatus.BLOCKED:
        typer.echo("note: --repin matters only for a blocked order; ignored otherwise", err=True)
    IssueQueue(_need("ISSUE_QUEUE_URL")).send(order_key, record.kind)
    note = ""
    if status is OrderStatus.BLOCKED and not repin:
        note = " (still blocked unless the store's tax configuration is restored; see docs/operator.md)"
    return (
        0,
        f"order {order_key} queued again from {status.value}; it queries serial {serial_for(order_key)} first{note}",
    )


def _retry_refund(ledger: Any, order_key: str, status: OrderStatus) -> tuple[int, str]:
    """``red_operator_retry`` (restarts the hold, re-applies an expired form, queries first), then a
    ``refunded`` message; a refund the red flow can still claim only needs the message."""
    from chalicelib.adapters.queue import IssueQueue

    if status in RED_OPERATOR_RETRYABLE:
        now = time.time()
        done = ledger.transition(
            order_key,
            OrderEvent.RED_OPERATOR_RETRY,
            now=now,
            due_at=now + SWEEP_GRACE_SECONDS,
            fields={"retries": 0, "checks": 0, "operator_retry_at": str(int(now)), "last_error": "operator retry"},
        )
        if not done.ok:
            now_status = done.before.status.value if done.before else "gone"
            return 1, f"refund {order_key} changed meanwhile (now {now_status}); try again"
    elif status not in RED_CLAIMABLE:
        return 1, f"nothing to retry for refund {order_key}: its status is {status.value}"
    IssueQueue(_need("ISSUE_QUEUE_URL")).send(order_key, "refunded")
    return 0, f"refund {order_key} queued again from {status.value} (red_operator_retry; it queries first)"


@orders.command("retry")
def orders_retry(
    order_key: Annotated[str, typer.Argument(help=ORDER_KEY_HELP)],
    repin: Annotated[
        bool,
        typer.Option(
            help="blocked orders only: forget the old tax configuration (check the old platform has no invoice first)"
        ),
    ] = False,
) -> None:
    """Another attempt for a failed, blocked or stuck order (always queries first)."""
    code, message = retry_order(order_key, repin=repin)
    typer.echo(message, err=bool(code))
    if code:
        raise typer.Exit(code)


def _dead_letters(sqs: Any, url: str, *, hold_seconds: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        reply = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=hold_seconds, AttributeNames=["All"]
        )
        batch = reply.get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


@dlq.command("list")
def dlq_list() -> None:
    """What is in the dead-letter queue (left in place)."""
    from chalicelib.adapters import aws

    url = _need("ISSUE_DLQ_URL")
    sqs = aws.client("sqs")
    messages = _dead_letters(sqs, url, hold_seconds=30)
    grid = table("SENT", "RECEIVES", "BODY", right=("RECEIVES",))
    for m in messages:
        sent = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(m["Attributes"].get("SentTimestamp", "0")) / 1000))
        grid.add_row(sent, m["Attributes"].get("ApproximateReceiveCount", "?"), m["Body"][:200])
    print_table(grid)
    if messages:  # only looked at: visible again at once
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )
    typer.echo(f"{len(messages)} message(s) in the dead-letter queue")


@dlq.command(
    "redrive",
    help="Put every dead letter back to work (orders retried, query first).\n\n"
    "Order messages go through the retry (counters reset, query first), check messages as one order message "
    "per entry; a message that is no issue message stays in the dead-letter queue (exit code 1).",
)
def dlq_redrive() -> None:
    """Every dead letter back to work; a malformed body stays where it is."""
    from chalicelib.adapters import aws

    url = _need("ISSUE_DLQ_URL")
    sqs = aws.client("sqs")
    moved = kept = 0
    for m in _dead_letters(sqs, url, hold_seconds=120):
        try:
            body = json.loads(m["Body"])
            keys = [e["order_key"] for e in body["check"]] if "check" in body else [body["order_key"]]
        except (ValueError, KeyError, TypeError):
            typer.echo(f"kept (not an issue message): {m['Body'][:120]}", err=True)
            kept += 1
            continue
        for key in keys:
            code, message = retry_order(str(key))
            typer.echo(message, err=bool(code))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        moved += 1
    typer.echo(f"redriven {moved} message(s); {kept} kept in the dead-letter queue")
    if kept:
        raise typer.Exit(1)
