"""The chaos run's figures: what was sent, what the ledger and the sandbox hold, what was scanned."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from chalicelib.domain.order_state import OrderStatus
from chaos.journal import EXPECT_REJECT, PAID, REFUND, Journal
from chaos.readings import Readings

if TYPE_CHECKING:
    from chaos.check import Joined, Webhook

S = OrderStatus
LIVE = ("issued", "pending", "voided")


def figures(
    journal: Journal, hooks: dict[str, Webhook], joined: Joined, readings: Readings, scanned: dict[str, int]
) -> list[tuple[str, str]]:
    from chaos.check import blue_of, money

    dups = [p for p in journal.posts if p.duplicate_of is not None]
    paid_hooks = [h for h in hooks.values() if h.first.kind == PAID]
    refund_hooks = [h for h in hooks.values() if h.first.kind == REFUND]
    paid_amount = {h.key: money(h.first.amount) for h in paid_hooks}
    full = sum(1 for h in refund_hooks if money(h.first.amount) == paid_amount.get(blue_of(h.key)))
    statuses = Counter(r.status for r in joined.records.values())
    kinds = Counter(d.what for d in journal.disruptions)
    live = [i for i in readings.invoices if i.get("status") in LIVE]
    rows: list[tuple[str, str]] = [
        ("orders (asked / sent)", f"{journal.orders} / {len(paid_hooks)}"),
        ("posts", str(len(journal.posts))),
        ("webhooks acknowledged", f"{sum(h.acknowledged for h in hooks.values())} / {len(hooks)}"),
        (
            "duplicates identical / concurrent / re-signed",
            f"{sum(1 for p in dups if not p.resigned and not p.concurrent)} / {sum(p.concurrent for p in dups)} / "
            f"{sum(p.resigned for p in dups)}",
        ),
        ("refunds full / partial", f"{full} / {len(refund_hooks) - full}"),
        ("invalid (sent to be rejected)", str(sum(1 for h in paid_hooks if h.first.expect == EXPECT_REJECT))),
        ("held (pilot share)", str(statuses[S.HELD])),
        ("rejected", str(statuses[S.REJECTED])),
        ("issued", str(statuses[S.ISSUED])),
        ("red issued / netted", f"{statuses[S.RED_ISSUED]} / {statuses[S.REFUND_NETTED]}"),
        ("cancelled before issue", str(statuses[S.CANCELLED])),
        ("failed", str(sum(statuses[s] for s in (S.FAILED, S.BLOCKED, S.RED_FAILED)))),
    ]
    rows += [(f"disruptions: {k}", str(n)) for k, n in sorted(kinds.items())]
    rows += [
        (
            "invoices in the sandbox blue / red",
            f"{sum(1 for i in live if i.get('kind') != 'red')} / {sum(1 for i in live if i.get('kind') == 'red')}",
        ),
        ("log lines scanned", str(scanned.get("log_lines", 0))),
        ("archive records scanned", str(scanned.get("archive_records", 0))),
        ("ledger items scanned", str(scanned.get("ledger_items", 0))),
    ]
    return rows
