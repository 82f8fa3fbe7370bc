"""The chaos suite's small run inside `make test`: ~24 orders through a private local stack with every
disruption kind at least once (sandbox faults, the 2-hour outage, token expiry and refusal, worker and
container kills, an AWS freeze that makes the runner kill an invocation at the Lambda time limit, DLQ
redrive), then every invariant of ``chaos.check`` on the sandbox's admin view and the ledger.

Its own stack (it kills and freezes processes): ``chaos.stack.running`` in a temporary folder, so the
module is one xdist unit and shares nothing with the tier's ``local_stack``. ``make chaos ORDERS=2000``
runs the large one (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("chaos")]
ORDERS = 24
SEED = 7


def test_a_small_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    from chaos.journal import DISRUPTION_KINDS, JOURNAL_NAME, Journal
    from chaos.run import run

    ok, table, state = run(ORDERS, SEED, tmp_path / "chaos")
    journal = Journal.load(state / JOURNAL_NAME)
    kinds = {d.what for d in journal.disruptions if d.detail.get("applied", True)}
    assert set(DISRUPTION_KINDS) <= kinds, f"disruptions not applied: {sorted(set(DISRUPTION_KINDS) - kinds)}\n{table}"
    assert not journal.stack.get("driver_errors"), journal.stack["driver_errors"]
    assert any(d.detail.get("killed") for d in journal.disruptions if d.what == "lambda_timeout"), table
    assert ok, "\n" + table
