"""Operator commands on stuck and rejected orders: ``einvoice orders list|retry|fix`` and ``einvoice dlq
list|redrive``.

``orders list`` (its parser is in ``infra/cli.py``; its handler here) shows a rejected order's first
violation, and ``--status`` is filtered by the ledger, so a store's rejected orders are found however
many newer orders it has. ``orders fix KEY`` corrects a rejected order (the buyer from the flags, or
the corrected fields from ``--from-file``; the format is in ``chalicelib/services/rejections.py`` and
docs/operator.md): it is validated again under the store's current settings and, when valid, issued.

A retry is always safe: the record goes to ``ambiguous`` (``order_state.OPERATOR_RETRY``), so the next
attempt queries the platform by the order's serial before it could send anything, and the serial
never changes — a platform that did act answers with the invoice it holds. ``--repin`` also forgets the
tax configuration the order was first sent under: only for an order ``blocked`` by a configuration
change, after checking on the *old* platform that it holds no invoice under the serial.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.config import SWEEP_GRACE_SECONDS
from chalicelib.domain.order_state import CLAIMABLE, OPERATOR_RETRYABLE, OrderEvent, OrderStatus, serial_for

if TYPE_CHECKING:
    from chalicelib.services.ports import OrderRecord
    from chalicelib.services.rejections import FixResult


def _need(var: str) -> str:
    import os

    value = os.environ.get(var, "")
    if not value:
        print(f"{var} is not set: run `make run` (it writes .local/stack.json) or pass --stack", file=sys.stderr)
        raise SystemExit(2)
    return value


def retry_order(order_key: str, *, repin: bool = False) -> tuple[int, str]:
    """Ask for another attempt of one order: (exit code, what was done)."""
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.queue import IssueQueue

    ledger = Ledger(_need("LEDGER_TABLE"))
    record = ledger.get_order(order_key)
    if record is None:
        return 1, f"no order {order_key!r}"
    status = record.status
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
        print("note: --repin matters only for a blocked order; ignored otherwise", file=sys.stderr)
    IssueQueue(_need("ISSUE_QUEUE_URL")).send(order_key, record.kind)
    note = ""
    if status is OrderStatus.BLOCKED and not repin:
        note = " (still blocked unless the store's tax configuration is restored; see docs/operator.md)"
    return (
        0,
        f"order {order_key} queued again from {status.value}; it queries serial {serial_for(order_key)} first{note}",
    )


def cmd_orders_retry(args: argparse.Namespace) -> int:
    code, message = retry_order(args.order_key, repin=args.repin)
    print(message, file=sys.stderr if code else sys.stdout)
    return code


def first_violation(record: OrderRecord, width: int = 90) -> str:
    """A rejected record's first violation, one line: ``field: code — English message (+n more)``."""
    violations = record.violations or []
    if not violations:
        return ""
    v = violations[0]
    text = f"{v.get('field', '?')}: {v.get('code', '?')} — {v.get('message_en', '')}"
    more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
    return (text[: width - 1] + "…" if len(text) > width else text) + more


def cmd_orders_list(args: argparse.Namespace) -> int:
    from chalicelib.adapters.ledger import Ledger

    if args.status is not None and args.status not in {s.value for s in OrderStatus}:
        print(f"no status {args.status!r}; one of {', '.join(s.value for s in OrderStatus)}", file=sys.stderr)
        return 2
    records = Ledger(_need("LEDGER_TABLE")).orders_of_store(args.store_id, limit=args.limit, status=args.status)
    print(f"{'CREATED':<28} {'STATUS':<12} {'KIND':<9} {'ORDER KEY':<40} FIRST VIOLATION")
    for r in records:
        print(f"{r.created_at:<28} {r.status:<12} {r.kind:<9} {r.order_key:<40} {first_violation(r)}".rstrip())
    return 0


def fix_order(order_key: str, corrections: dict[str, Any], *, by: str) -> FixResult:
    """Correct one rejected order against the configured stack (``chalicelib/services/rejections.py``)."""
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.queue import IssueQueue
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.adapters.taxcodes import TaxCodeSource
    from chalicelib.services.rejections import FixRejected

    use_case = FixRejected(
        ledger=Ledger(_need("LEDGER_TABLE")),
        stores=StoreRegistry(_need("STORES_TABLE")),
        taxcodes=TaxCodeSource(_need("CONFIG_BUCKET")),
        queue=IssueQueue(_need("ISSUE_QUEUE_URL")),
    )
    return use_case(order_key, corrections, by=by)


def _corrections(args: argparse.Namespace) -> dict[str, Any]:
    """The corrections the flags or ``--from-file`` give (CorrectionError when unusable)."""
    from chalicelib.services.rejections import CorrectionError

    buyer = {k: v for k, v in (("title", args.buyer_title), ("tax_id", args.buyer_tax_id)) if v is not None}
    if args.from_file is None:
        return {"buyer": buyer} if buyer else {}
    if buyer:
        raise CorrectionError("give the buyer flags or --from-file, not both")
    try:
        doc = json.loads(Path(args.from_file).read_bytes(), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise CorrectionError(f"{args.from_file}: {exc}") from None
    if not isinstance(doc, dict):
        raise CorrectionError(f"{args.from_file}: the corrections are one JSON object")
    return doc


def cmd_orders_fix(args: argparse.Namespace) -> int:
    from chalicelib.domain.errors import UnknownStore
    from chalicelib.services.rejections import CorrectionError

    by = args.by or os.environ.get("EINVOICE_OPERATOR") or getpass.getuser()
    try:
        result = fix_order(args.order_key, _corrections(args), by=by)
    except CorrectionError as exc:
        print(f"unusable corrections: {exc}", file=sys.stderr)
        return 2
    except UnknownStore as exc:
        print(exc.message, file=sys.stderr)
        return 1
    if not result.ok:
        print(result.message, file=sys.stderr)
        for v in result.violations:
            print(f"  {v.field}: {v.code} — {v.message} / {v.message_en}", file=sys.stderr)
        return 1
    changed = ", ".join(result.changes) or "nothing (checked again under the store's current settings)"
    print(f"{result.message} (by {by}; changed: {changed})")
    return 0


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


def cmd_dlq_list(args: argparse.Namespace) -> int:
    from chalicelib.adapters import aws

    url = _need("ISSUE_DLQ_URL")
    sqs = aws.client("sqs")
    messages = _dead_letters(sqs, url, hold_seconds=30)
    print(f"{'SENT':<20} {'RECEIVES':>8}  BODY")
    for m in messages:
        sent = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(m["Attributes"].get("SentTimestamp", "0")) / 1000))
        print(f"{sent:<20} {m['Attributes'].get('ApproximateReceiveCount', '?'):>8}  {m['Body'][:200]}")
    if messages:  # only looked at: visible again at once
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )
    print(f"{len(messages)} message(s) in the dead-letter queue")
    return 0


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    """Every dead letter back to work: order messages through ``retry_order`` (counters reset, query
    first), check messages as one order message per entry; a malformed body stays where it is."""
    from chalicelib.adapters import aws

    url = _need("ISSUE_DLQ_URL")
    sqs = aws.client("sqs")
    moved = kept = 0
    for m in _dead_letters(sqs, url, hold_seconds=120):
        try:
            body = json.loads(m["Body"])
            keys = [e["order_key"] for e in body["check"]] if "check" in body else [body["order_key"]]
        except (ValueError, KeyError, TypeError):
            print(f"kept (not an issue message): {m['Body'][:120]}", file=sys.stderr)
            kept += 1
            continue
        for key in keys:
            code, message = retry_order(str(key))
            print(message, file=sys.stderr if code else sys.stdout)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        moved += 1
    print(f"redriven {moved} message(s); {kept} kept in the dead-letter queue")
    return 0 if kept == 0 else 1


def add_commands(orders: Any, sub: Any) -> None:
    """Register ``orders retry|fix`` (and ``orders list``'s handler) on the orders group and the ``dlq``
    group on the top level."""
    orders.choices["list"].set_defaults(func=cmd_orders_list)  # first violation; --status by the ledger
    p = orders.add_parser(
        "fix",
        help="correct a rejected order; valid under the store's current settings, it is issued",
        description="Correct a rejected order: the buyer from the flags, or any invoice-relevant field "
        "from --from-file (docs/operator.md#rejected-orders). Without either, the order is checked again "
        "under the store's current settings. Still invalid: the violations are shown, nothing changes.",
    )
    p.add_argument("order_key")
    p.add_argument("--buyer-title", help="the buyer's invoice title (抬头)")
    p.add_argument("--buyer-tax-id", help="the buyer's tax id (纳税人识别号)")
    p.add_argument("--from-file", metavar="CORRECTED_JSON", help="the corrected fields as one JSON object")
    p.add_argument("--by", help="who corrects it, recorded on the order (default: $EINVOICE_OPERATOR or the login)")
    p.set_defaults(func=cmd_orders_fix)
    p = orders.add_parser("retry", help="another attempt for a failed, blocked or stuck order (always queries first)")
    p.add_argument("order_key")
    p.add_argument(
        "--repin",
        action="store_true",
        help="blocked orders only: forget the old tax configuration (check the old platform has no invoice first)",
    )
    p.set_defaults(func=cmd_orders_retry)
    dlq = sub.add_parser("dlq", help="the issue queue's dead letters").add_subparsers(dest="command", required=True)
    p = dlq.add_parser("list", help="what is in the dead-letter queue (left in place)")
    p.set_defaults(func=cmd_dlq_list)
    p = dlq.add_parser("redrive", help="put every dead letter back to work (orders retried, query first)")
    p.set_defaults(func=cmd_dlq_redrive)
