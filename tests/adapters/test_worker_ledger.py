"""The ledger's issuing writes against DynamoDB (moto): claim, lease, fencing, release, refunds.

The unit tests of the use case run on an in-memory ledger with the same rules; this file pins the
rules on the real conditional expressions.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import config
from chalicelib.adapters.ledger import Ledger

KEY = "demo-shanghai:SO-1"
NOW = 1_740_000_000.0


@pytest.fixture()
def ledger(stack: Any) -> Ledger:
    ledger = Ledger(config.settings().ledger_table)
    ledger.create_order(KEY, "demo-shanghai", kind="paid", status="queued", payload={"order": {}}, outbox=False)
    return ledger


def claim(ledger: Ledger, claim_id: str, now: float = NOW, serial: str = "EI0001") -> tuple[bool, Any, dict[str, Any]]:
    return ledger.claim_order(KEY, claim_id, serial=serial, now=now, lease_seconds=90)


def test_claim_takes_a_queued_order_and_returns_what_was_there(ledger: Ledger) -> None:
    claimed, record, before = claim(ledger, "w1")

    assert claimed and record.status == "queued" and before["status"] == "queued"
    fields = ledger.issue_fields(KEY)
    assert fields["status"] == "issuing" and fields["claim_id"] == "w1"
    assert fields["lease_until"] == int(NOW) + 90 and fields["serial"] == "EI0001" and fields["claims"] == 1
    assert fields["prior_status"] == "queued"


def test_a_live_lease_refuses_a_second_claim(ledger: Ledger) -> None:
    claim(ledger, "w1")

    claimed, record, before = claim(ledger, "w2", now=NOW + 89)

    assert not claimed and record is not None
    assert before["status"] == "issuing" and before["claim_id"] == "w1"
    assert ledger.issue_fields(KEY)["claim_id"] == "w1"


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(ledger: Ledger) -> None:
    claim(ledger, "w1")
    assert ledger.update_claimed(KEY, "w1", add_sends=True, fields={"provider": "sta"})

    claimed, _, before = claim(ledger, "w2", now=NOW + 91, serial="OTHER")

    assert claimed and before["sends"] == 1 and before["status"] == "issuing"
    fields = ledger.issue_fields(KEY)
    assert fields["claim_id"] == "w2" and fields["serial"] == "EI0001"  # the first serial is kept
    assert fields["claims"] == 2
    assert ledger.update_claimed(KEY, "w1", status="issued") is False
    assert ledger.issue_fields(KEY)["status"] == "issuing"


def test_release_makes_the_order_claimable_and_terminal_states_are_not(ledger: Ledger) -> None:
    claim(ledger, "w1")
    assert ledger.update_claimed(KEY, "w1", status="ambiguous", release=True, fields={"last_error": "tax_ambiguous"})
    fields = ledger.issue_fields(KEY)
    assert "claim_id" not in fields and "lease_until" not in fields and fields["status"] == "ambiguous"

    assert claim(ledger, "w2", now=NOW + 1)[0]
    assert ledger.update_claimed(
        KEY,
        "w2",
        status="issued",
        release=True,
        fields={"invoice_number": "25310000000000000001", "last_error": None},
    )
    fields = ledger.issue_fields(KEY)
    assert fields["invoice_number"] == "25310000000000000001" and "last_error" not in fields

    claimed, _, before = claim(ledger, "w3", now=NOW + 500)
    assert not claimed and before["status"] == "issued"


def test_claiming_an_absent_order(stack: Any) -> None:
    ledger = Ledger(config.settings().ledger_table)
    assert ledger.claim_order("nope:1", "w1", serial="S", now=NOW, lease_seconds=90) == (False, None, {})
    assert ledger.issue_fields("nope:1") == {}


def test_refund_pending_only_from_queued_or_received(stack: Any) -> None:
    ledger = Ledger(config.settings().ledger_table)
    key = "demo-shanghai:SO-1:refund:R1"
    ledger.create_order(key, "demo-shanghai", kind="refunded", status="received", payload={}, outbox=True)

    assert ledger.mark_refund_pending(key) is True
    assert ledger.get_order(key).status == "refund_pending"
    assert ledger.mark_refund_pending(key) is False
