"""Smoke tests for ``bench/bench_load.py`` (issue 12 item 3): the section renders from a synthetic run and
names the stage that bounds each figure; one tiny run on the local stack (slow, e2e) checks the generator
sends, the stack drains and stops. No timing is asserted: the figures live in ``docs/benchmarks.md``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import bench_load, load_report, load_run
from bench.issuing_stack import CpuSample


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _result(*, backlog: bool, late: bool) -> load_run.LoadResult:
    """100 webhooks due at 10/s; each answered 20 ms after its send (late ones sent 1 s after their due time)."""
    t0 = 1_000_000.0
    shots = []
    for i in range(100):
        due = t0 + i * 0.1
        sent = due + (1.0 if late and i % 2 else 0.0)
        status, outcome = (409, "") if i == 99 else (202, "queued")
        shots.append(load_run.Shot(i, f"O{i}", due, sent, sent + 0.02, status, outcome, f"k{i}"))
    sent_at = {s.order_key: s.sent or 0.0 for s in shots[:99]}
    issued = {key: {"issued_at": _iso(at + 3), "updated_at": _iso(at + 4.5)} for key, at in sent_at.items()}
    pids = {"aws": 1, "api": 2, "worker": 3}
    marks = [
        CpuSample(t0 + at, {k: at * share for k, share in zip(pids, (0.9, 0.3, 0.2), strict=True)}, pids)
        for at in (0.0, 11.0, 16.0)
    ]
    samples = [CpuSample(t0 + at, {k: at * 0.5 for k in pids}, pids) for at in range(0, 17, 2)]
    queues = [
        load_run.QueueSample(t0 + at, {"issue": (at * 10 if backlog else 1, 5, 40), "deliver": (0, 1, 0)})
        for at in range(0, 17, 2)
    ]
    return load_run.LoadResult(
        rate=10.0,
        seconds=10.0,
        connections=4,
        store="demo",
        shots=shots,
        issued=issued,
        statuses={"issued": 99},
        marks=marks,
        samples=samples,
        queues=queues,
        t0=t0,
        drain_limit_s=60.0,
        sample_s=2.0,
        delay_s=3.0,
        first_check_s=4.0,
        tree="`abc`",
        load_start=(0.5, 0.5, 0.5),
        load_end=(1.0, 1.0, 1.0),
        drained_at=t0 + 16,
        extra={"warm-up": "4 of 4 warm-up orders issued in 6 s"},
    )


def test_section_reports_answers_latency_and_payment_to_invoice() -> None:
    section = load_report.render([_result(backlog=False, late=False)], "make load RATE=10 SECONDS=10")
    assert section.startswith(bench_load.TITLE)
    assert "`make load RATE=10 SECONDS=10`" in section
    assert "| answers | 2xx queued: 99, 409: 1 |" in section
    assert "| intake latency p50 / p95 / p99 ms (schedule → answer) | **20 / 20 / 20** |" in section
    assert (
        "| payment → invoice p50 / p95 s (webhook sent → the ledger's `issued_at`, the sandbox's time) | "
        "**3.0 / 3.0** |" in section
    )
    assert "| aws |" in section and "| api |" in section and "| worker |" in section
    assert "**Intake kept the target**" in section and "the embedded AWS (`aws`) 90% of a core" in section
    assert "**Waits, not capacity, bound payment → invoice**" in section


def test_section_names_the_worker_when_its_queue_grows_and_late_sends() -> None:
    section = load_report.render([_result(backlog=True, late=True)], "make load")
    assert "**The worker stage bounds payment → invoice**" in section
    assert "**Intake did not keep the target**" in section
    assert "| sent > 100 ms after schedule (all senders busy) | 50, up to 1.0 s late |" in section


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BENCH_LOAD_RATE", "BENCH_LOAD_SECONDS", "BENCH_LOAD_ORDERS", "BENCH_LOAD_CONNECTIONS"):
        monkeypatch.setenv(name, "")  # what a bare `make load` passes
    assert bench_load.command(bench_load.settings()) == f"make load RATE={bench_load.RATES} SECONDS=40"
    monkeypatch.setenv("BENCH_LOAD_RATE", "50")
    assert bench_load.settings().seconds_at(50) == load_run.SECONDS
    monkeypatch.setenv("BENCH_LOAD_RATE", "5,50")
    monkeypatch.setenv("BENCH_LOAD_ORDERS", "500")
    s = bench_load.settings()
    assert (s.rates, s.seconds_at(5), s.seconds_at(50)) == ((5.0, 50.0), 100, 10)
    assert bench_load.command(s) == "make load RATE=5,50 ORDERS=500"
    monkeypatch.setenv("BENCH_LOAD_RATE", "0")
    with pytest.raises(ValueError):
        bench_load.settings()
    monkeypatch.delenv(bench_load.ENABLE, raising=False)
    assert bench_load.run().startswith(bench_load.TITLE)  # not asked: the kept section, no run


@pytest.mark.slow
@pytest.mark.e2e
def test_a_tiny_load_runs_on_the_local_stack_and_stops() -> None:
    result = load_run.measure(rate=4, seconds=1, connections=2, drain_limit_s=45, sample_s=1)
    assert len(result.shots) == 4 and all(s.sent is not None for s in result.shots)
    assert result.stopped
    assert result.queues and "issue" in result.queues[0].depth
    section = load_report.render([result], "make load RATE=4 SECONDS=1")
    assert "| answers |" in section and "| aws |" in section


def test_the_causes_of_the_503s_come_from_the_api_log(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    line = {"level": "ERROR", "message": "cannot accept now", "code": "unavailable"}
    log.write_text(
        "\n".join(
            [
                "127.0.0.1 - - POST /webhooks/standard/demo 503",
                json.dumps({**line, "detail": "ledger: AWS unreachable (ReadTimeoutError) after 1.5 s"}),
                json.dumps({**line, "detail": "ledger: AWS unreachable (ReadTimeoutError) after 2 s"}),
                json.dumps({"level": "INFO", "message": "order queued"}),
            ]
        )
    )
    assert load_run.refusal_causes(log) == {"ledger: AWS unreachable (ReadTimeoutError) after N s": 2}
    assert load_run.refusal_causes(tmp_path / "missing.log") == {}
