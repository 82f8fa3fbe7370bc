"""The chaos run's journal: what the driver did, as the checker reads it.

Written by the driver to ``<state_dir>/chaos-journal.json`` and read back by
:mod:`chaos.check`. Plain dataclasses, JSON round-trip, no IO beyond save/load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

JOURNAL_NAME = "chaos-journal.json"
REPORT_NAME = "chaos-report.json"

PAID = "paid"
REFUND = "refund"

EXPECT_ISSUE = "issue"
EXPECT_REJECT = "reject"
EXPECT_HOLD = "hold"

DISRUPTION_KINDS = (
    "sandbox_faults",
    "sandbox_outage",
    "worker_kill",
    "aws_freeze",
    "token_expire",
    "token_refuse",
    "dlq_redrive",
    "lambda_timeout",
)


@dataclass
class Post:
    """One HTTP attempt of a webhook, as the platform made it."""

    seq: int
    kind: str  # "paid" | "refund"
    store_id: str
    platform: str
    order_id: str
    event_id: str
    refund_id: str | None
    amount: str  # Decimal as str: order total (paid) or this refund's amount (refund)
    lines: list[dict[str, Any]] = field(default_factory=list)
    duplicate_of: int | None = None
    resigned: bool = False
    concurrent: bool = False
    status: int | None = None  # None = no answer
    reply: dict[str, Any] | None = None
    started: float = 0.0
    ended: float = 0.0
    signature_values: list[str] = field(default_factory=list)
    buyer_tax_id: str | None = None
    expect: str = EXPECT_ISSUE  # "issue" | "reject" | "hold"

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Disruption:
    at: float
    until: float | None
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Journal:
    started: float
    ended: float
    orders: int
    stack: dict[str, Any]  # {"api","aws","sandbox","state_dir","region","env"}
    posts: list[Post] = field(default_factory=list)
    disruptions: list[Disruption] = field(default_factory=list)
    known_secrets: list[str] = field(default_factory=list)
    cli: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Journal:
        posts = [Post(**p) for p in data.get("posts", [])]
        disruptions = [Disruption(**d) for d in data.get("disruptions", [])]
        return cls(
            started=float(data["started"]),
            ended=float(data["ended"]),
            orders=int(data["orders"]),
            stack=dict(data.get("stack", {})),
            posts=posts,
            disruptions=disruptions,
            known_secrets=list(data.get("known_secrets", [])),
            cli=list(data.get("cli", [])),
        )

    def save(self, path: str | Path) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> Journal:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    # ---- small views the checker and the table share -------------------------------------

    def first_posts(self) -> list[Post]:
        """One post per webhook event: the ones that are not re-deliveries of another."""
        return [p for p in self.posts if p.duplicate_of is None]

    def acknowledged_seqs(self) -> set[int]:
        """Seqs of the first posts whose webhook got a 2xx on some attempt."""
        acked: set[int] = set()
        for post in self.posts:
            if post.acknowledged:
                acked.add(post.seq if post.duplicate_of is None else post.duplicate_of)
        return acked
