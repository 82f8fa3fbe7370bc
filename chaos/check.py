"""The chaos run's invariants (issue 12 item 1), read from the sandbox's admin view and the ledger.

:func:`check` reads the stack once (:mod:`chaos.readings`) and :func:`evaluate` decides, as a pure
function of the journal and the readings: one :class:`Row` per invariant, its ``detail`` naming the
first offenders, and the run's figures. ``docs/reliability.md`` ("What the chaos suite asserts")
says what each row reads. Statuses come from ``chalicelib/domain/order_state.py``; reconciliation is
``chalicelib/reports/reconcile.py`` itself, fed from the same readings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.domain.event_ids import EVENT_ID_CONFLICT
from chalicelib.domain.order_keys import event_order_key, order_key, parse_order_key, red_form_serial, serial_for
from chalicelib.domain.order_state import TERMINAL, OrderStatus
from chalicelib.services.ports import OrderRecord
from chaos import figures, reconciled
from chaos.journal import EXPECT_HOLD, EXPECT_ISSUE, EXPECT_REJECT, PAID, REFUND, Journal, Post
from chaos.readings import Readings, read_stack

S = OrderStatus
ZERO = Decimal("0.00")
#: Offenders named in a row's detail.
DETAIL_LIMIT = 8
#: Blue statuses under which the sandbox holds the order's one blue invoice.
INVOICED = frozenset({S.ISSUED, S.REISSUING, S.REISSUED, S.VOIDED})
#: Final statuses that must say why (a reason field set).
NEEDS_REASON = frozenset(
    {S.FAILED, S.BLOCKED, S.RED_FAILED, S.REFUND_MANUAL, S.REFUND_REFUSED, S.REFUND_UNMATCHED, S.RED_FORM_EXPIRED}
)
REASON_FIELDS = ("failure_reason", "last_error", "failure_code")
#: Refund statuses whose amount the invoices carry: reversed by a red invoice, or netted into the blue.
APPLIED = frozenset({S.RED_ISSUED, S.REFUND_NETTED})
#: Sandbox statuses of an invoice that exists (or will, by itself).
LIVE = ("issued", "pending", "voided")


@dataclass
class Row:
    name: str
    expected: str
    observed: str
    ok: bool
    detail: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    rows: list[Row]
    figures: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": [asdict(r) for r in self.rows], "figures": [list(f) for f in self.figures]}


def _row(name: str, expected: str, offenders: list[str], observed: str | None = None) -> Row:
    shown = offenders[:DETAIL_LIMIT]
    if len(offenders) > DETAIL_LIMIT:
        shown.append(f"… and {len(offenders) - DETAIL_LIMIT} more")
    return Row(
        name, expected, observed or (f"{len(offenders)} offenders" if offenders else expected), not offenders, shown
    )


def money(text: object) -> Decimal:
    try:
        return Decimal(str(text)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return ZERO


# --- the journal, as webhooks and orders -------------------------------------------------------------


def key_of(post: Post) -> str:
    return order_key(post.store_id, post.platform, post.order_id, post.refund_id if post.kind == REFUND else None)


@dataclass
class Webhook:
    """One order's or one refund's deliveries: the first post and every attempt of the same key."""

    key: str
    first: Post
    posts: list[Post]

    @property
    def acknowledged(self) -> bool:
        return any(p.acknowledged for p in self.posts)

    @property
    def answered(self) -> bool:
        return any(p.status is not None for p in self.posts)


def webhooks(journal: Journal) -> dict[str, Webhook]:
    """Key → its deliveries (every post of an order's paid event, or of one refund), in seq order."""
    found: dict[str, Webhook] = {}
    for post in sorted(journal.posts, key=lambda p: p.seq):
        k = key_of(post)
        if k in found:
            found[k].posts.append(post)
        else:
            found[k] = Webhook(k, post, [post])
    return found


def blue_of(key: str) -> str:
    return str(parse_order_key(key).blue)


# --- the ledger and the sandbox, joined by serial --------------------------------------------------


def serials_of(record: OrderRecord) -> set[str]:
    """Every serial the sandbox may hold an invoice of ``record`` under (blue: its serial; a refund:
    the serial of each red form round, which its red invoice is issued under)."""
    found = {serial_for(record.order_key)}
    if record.text("serial"):
        found.add(str(record.text("serial")))
    if parse_order_key(record.order_key).is_refund:
        rounds = record.text("form_round")
        last = int(rounds) if rounds and rounds.isdigit() else 1
        found.update(red_form_serial(record.order_key, n) for n in range(1, max(1, last) + 1))
    return found


@dataclass
class Joined:
    records: dict[str, OrderRecord]
    by_serial: dict[str, str]  # serial → order key
    blues: dict[str, list[dict[str, Any]]]  # blue key → its live blue invoices
    reds: dict[str, list[dict[str, Any]]]  # blue key → its live red invoices
    unknown: list[dict[str, Any]]  # invoices under a serial the ledger does not know


def join(readings: Readings) -> Joined:
    records = {r.order_key: r for r in readings.records}
    by_serial = {s: r.order_key for r in readings.records for s in serials_of(r)}
    by_number = {str(r.text("invoice_number")): r.order_key for r in readings.records if r.text("invoice_number")}
    blues: dict[str, list[dict[str, Any]]] = {}
    reds: dict[str, list[dict[str, Any]]] = {}
    unknown: list[dict[str, Any]] = []
    for inv in readings.invoices:
        if inv.get("status") not in LIVE:
            continue
        key = by_serial.get(str(inv.get("serial", "")))
        if key is None:
            unknown.append(inv)
            continue
        if inv.get("kind") == "red":
            blue = by_number.get(str(inv.get("blue_number", ""))) or blue_of(key)
            reds.setdefault(blue_of(blue), []).append(inv)
        else:
            blues.setdefault(key, []).append(inv)
    return Joined(records, by_serial, blues, reds, unknown)


def reason_of(record: OrderRecord) -> str:
    return next((str(record.text(f)) for f in REASON_FIELDS if record.text(f)), "")


# --- the rows -------------------------------------------------------------------------------------


def row_one_blue(hooks: dict[str, Webhook], joined: Joined) -> Row:
    offenders: list[str] = []
    order_ids = {parse_order_key(k).order_id: k for k, h in hooks.items() if h.first.kind == PAID}
    for key, hook in hooks.items():
        if hook.first.kind != PAID:
            continue
        record = joined.records.get(key)
        live = joined.blues.get(key, [])
        want = 1 if record is not None and record.status in INVOICED else 0
        if len(live) != want:
            status = record.status.value if record is not None else "no record"
            offenders.append(f"{key}: {len(live)} blue invoices in the sandbox, {want} expected ({status})")
    for inv in joined.unknown:
        named = order_ids.get(str(inv.get("order_no", "")))
        whose = f" (order no {inv.get('order_no')} is {named})" if named else ""
        offenders.append(
            f"{inv.get('kind')} invoice {inv.get('number') or inv.get('serial')} unknown to the ledger{whose}"
        )
    invoiced = sum(len(v) for v in joined.blues.values())
    return _row(
        "one blue invoice per paid order",
        "exactly 1 per issued order, 0 otherwise, none unknown",
        offenders,
        None if offenders else f"{invoiced} blue invoices, all matched",
    )


def row_reds(hooks: dict[str, Webhook], joined: Joined) -> Row:
    offenders: list[str] = []
    refunds_of: dict[str, list[Webhook]] = {}
    for key, hook in hooks.items():  # a refund recorded counts, even if its acknowledgement was lost
        if hook.first.kind == REFUND and (hook.acknowledged or key in joined.records):
            refunds_of.setdefault(blue_of(key), []).append(hook)
    checked = 0
    for key, hook in hooks.items():
        record = joined.records.get(key)
        if hook.first.kind != PAID or record is None:
            continue
        if record.status not in INVOICED and record.status is not S.CANCELLED:
            continue  # held / rejected / failed: no invoice, its refunds go to an operator
        checked += 1
        paid = money(hook.first.amount)
        applied = ZERO
        reversed_ = ZERO
        for refund in refunds_of.get(key, []):
            r = joined.records.get(refund.key)
            amount = money(refund.first.amount)
            if r is None or r.status not in APPLIED:
                offenders.append(f"{refund.key}: refund of {amount} is {r.status.value if r else 'not recorded'}")
                continue
            applied += amount
            if r.status is S.RED_ISSUED:
                reversed_ += amount
        blue_total = sum((money(i.get("total")) for i in joined.blues.get(key, [])), ZERO)
        red_total = sum((abs(money(i.get("total"))) for i in joined.reds.get(key, [])), ZERO)
        if red_total > blue_total:
            offenders.append(f"{key}: red {red_total} exceeds blue {blue_total}")
        elif red_total != reversed_:
            offenders.append(f"{key}: red invoices total {red_total}, refunds reversed after issue {reversed_}")
        if blue_total - red_total != paid - applied:
            offenders.append(
                f"{key}: invoiced net {blue_total - red_total} (blue {blue_total} − red {red_total}) ≠ "
                f"paid {paid} − refunded {applied}"
            )
    return _row(
        "red totals equal refunds, never above the blue",
        "reds == refunds; blue − reds == paid − refunded",
        offenders,
        None if offenders else f"{checked} orders balanced",
    )


def _settled(record: OrderRecord) -> str | None:
    """Why ``record`` is not settled (None when it is)."""
    if record.status not in TERMINAL:
        return f"in flight: {record.status.value}"
    if record.status is S.REJECTED and not record.violations:
        return "rejected without violations"
    if record.status in NEEDS_REASON and not reason_of(record):
        return f"{record.status.value} without a reason"
    return None


def _expected(expect: str, record: OrderRecord) -> str | None:
    status = record.status
    if expect == EXPECT_REJECT and status is not S.REJECTED:
        return f"sent invalid, is {status.value}"
    if expect == EXPECT_HOLD and status is not S.HELD:
        return f"pilot share expected held, is {status.value}"
    if expect == EXPECT_ISSUE and status in (S.REJECTED, S.HELD) and not parse_order_key(record.order_key).is_refund:
        return f"valid order is {status.value}"
    return None


def reject_record(hook: Webhook, records: dict[str, OrderRecord]) -> OrderRecord | None:
    """The record of a deliberately invalid post: under its order key, or under its event id's key when
    its order id could not be read (``order_keys.event_order_key``)."""
    found = records.get(hook.key)
    if found is None:
        for post in hook.posts:
            found = records.get(event_order_key(post.store_id, post.platform, post.event_id))
            if found is not None:
                break
    return found


def row_no_order_lost(hooks: dict[str, Webhook], joined: Joined) -> Row:
    offenders: list[str] = []
    for key, hook in hooks.items():
        if hook.first.expect == EXPECT_REJECT:
            if not hook.answered:
                offenders.append(f"{key}: invalid post never answered")
                continue
            record = reject_record(hook, joined.records)
        elif not hook.acknowledged:
            continue
        else:
            record = joined.records.get(key)
        if record is None:
            offenders.append(f"{key}: acknowledged, no ledger record")
            continue
        why = _settled(record) or _expected(hook.first.expect, record)
        if why:
            offenders.append(f"{key}: {why}")
    settled = sum(1 for r in joined.records.values() if r.status in TERMINAL)
    return _row(
        "no order lost",
        "every acknowledged order final (issued, rejected, held, failed with a reason)",
        offenders,
        None if offenders else f"{settled} records final, none in flight",
    )


def _conflict(post: Post) -> bool:
    reply = post.reply or {}
    return post.status == 409 or bool(reply.get("held_by")) or reply.get("error") == "EventIdConflict"


def row_webhooks(journal: Journal, hooks: dict[str, Webhook], joined: Joined, readings: Readings) -> Row:
    offenders: list[str] = []
    acked = 0
    known_keys: set[str] = set(hooks) | {event_order_key(p.store_id, p.platform, p.event_id) for p in journal.posts}
    for key, hook in hooks.items():
        for post in hook.posts:
            if post.acknowledged or _conflict(post):
                acked += 1
                record = joined.records.get(key) or reject_record(hook, joined.records)
                if record is None:
                    offenders.append(f"seq {post.seq} ({key}): acknowledged, not in the ledger")
                    continue
                known_keys.add(record.order_key)
                said = (post.reply or {}).get("order_key")
                if said and said not in (key, record.order_key):
                    offenders.append(f"seq {post.seq}: answered for {said}, sent for {key}")
                if _conflict(post):
                    codes = {str(v.get("code")) for v in record.violations or []}
                    if record.status is not S.REJECTED or EVENT_ID_CONFLICT not in codes:
                        offenders.append(
                            f"seq {post.seq} ({key}): answered as a conflict, record {record.status.value}"
                        )
            pk = f"event#{event_order_key(post.store_id, post.platform, post.event_id)}"
            named = readings.events.get(pk)
            if named is not None and named != key and not _conflict(post):
                offenders.append(f"seq {post.seq}: event id {post.event_id} recorded for {named}, sent for {key}")
    stores = {p.store_id for p in journal.posts}
    for record in joined.records.values():
        if record.store_id in stores and record.order_key not in known_keys and not _generated(record.order_key):
            offenders.append(f"{record.order_key}: in the ledger, never sent ({record.status.value})")
    return _row(
        "every acknowledged webhook accounted for",
        "each in the ledger once; duplicates and re-signed deduplicated by order key",
        offenders,
        None if offenders else f"{acked} acknowledged posts, {len(hooks)} orders and refunds",
    )


def _generated(key: str) -> bool:
    """Records the service makes itself (换开's reversal and new blue): not a webhook's."""
    parts = parse_order_key(key)
    return ":reissue:" in parts.order_id or (parts.refund_id or "").startswith("retitle-")


# --- entry points ---------------------------------------------------------------------------------


def evaluate(journal: Journal, readings: Readings) -> CheckReport:
    """The invariants and figures, from what was read (pure)."""
    from chaos import leaks

    hooks = webhooks(journal)
    joined = join(readings)
    rows = [
        row_one_blue(hooks, joined),
        row_reds(hooks, joined),
        row_no_order_lost(hooks, joined),
        row_webhooks(journal, hooks, joined, readings),
        reconciled.row(journal, hooks, joined, readings),
    ]
    leak_rows, scanned = leaks.rows(journal, readings)
    rows += leak_rows
    if readings.problems:
        rows.append(_row("the stack was readable", "every source read", list(readings.problems)))
    return CheckReport(rows, figures.figures(journal, hooks, joined, readings, scanned))


def check(journal: Journal, *, session: Any = None) -> CheckReport:
    """Read the stack after the run has settled and check every invariant (see the module docstring)."""
    return evaluate(journal, read_stack(journal, session))
