"""Smoke tests for ``bench/``: every module imports and its cheap helpers still work.

They keep the bench code from rotting silently; they never run a full benchmark and never assert a
timing (figures live in ``docs/benchmarks.md``, produced by ``python -m bench``).
"""

from __future__ import annotations

import base64
import cProfile
import dataclasses
import hashlib
import hmac
import importlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import (
    bench_import,
    bench_issuing,
    bench_test_suite,
    bench_webhooks,
    issuing_common,
    issuing_counters,
    issuing_e2e,
    issuing_inprocess,
    issuing_report,
    issuing_stack,
)
from bench.common import Timing, percentile, time_calls
from chalicelib.domain.models import EventKind, InvoiceOrder, PaymentEvent
from chalicelib.webhooks import PLATFORMS

BENCH_DIR = Path(bench_main.__file__).parent


def test_every_bench_module_imports_and_has_run() -> None:
    modules = bench_main.discover()
    assert {"bench_crypto", "bench_import", "bench_issuing", "bench_nuonuo", "bench_webhooks"} <= set(modules)
    assert modules == sorted(modules)
    for stem in modules:
        assert callable(importlib.import_module(f"bench.{stem}").run)


def test_protocol_bench_orders_still_build() -> None:
    from bench import bench_crypto, bench_nuonuo

    assert isinstance(bench_crypto._order(), InvoiceOrder)
    assert isinstance(bench_nuonuo._order(), InvoiceOrder)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_signed_request_verifies_normalises_and_is_queued(platform: str) -> None:
    event = bench_webhooks.verify_once(platform)
    assert isinstance(event, PaymentEvent)
    assert event.platform == platform
    assert event.kind is EventKind.PAID
    assert not bench_webhooks.pipeline_once(platform).errors
    ingest, req = bench_webhooks.ingest_for(platform)
    assert ingest(platform, "bench", req.body, req.headers, req.now).outcome == "queued"


def test_webhook_section_renders_from_a_tiny_measurement() -> None:
    row = bench_webhooks.measure("stripe", iterations=3, budget_s=0.01, warmup=1)
    assert row.ingest.n == 3
    section = bench_webhooks.render([row], elapsed=0.0)
    assert section.startswith("## ")
    assert "| stripe |" in section


def test_timing_helpers() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 100) == 2.0
    timing = time_calls(lambda: None, 5, budget_s=0.01, warmup=0)
    assert isinstance(timing, Timing)
    assert timing.n == 5


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 | site
import time:        50 |         50 |     json.decoder
import time:       200 |        250 |   json
import time:       300 |        300 |   chalice
import time:        10 |        560 | app
"""


def test_importtime_parsing() -> None:
    assert bench_import.direct_imports(IMPORTTIME, "app") == [("chalice", 0.3), ("json", 0.25)]
    assert bench_import.direct_imports(IMPORTTIME, "boto3") == []


def test_import_child_reports_itself() -> None:
    sample = bench_import.child("pass")  # one short-lived interpreter
    assert sample.maxrss_kib > 0
    assert sample.import_ms >= 0
    app = dataclasses.replace(sample, import_ms=300.0, wall_ms=sample.wall_ms + 300, botocore=True)
    boto3 = dataclasses.replace(sample, import_ms=200.0, wall_ms=sample.wall_ms + 200, botocore=True)
    samples = {"pass": [sample], "app": [app], "boto3": [boto3]}
    section = bench_import.render(samples, [("chalice", 1.0)], elapsed=0.0)
    assert section.startswith("## ")
    assert "1.50×" in section


def test_main_keeps_other_sections_of_a_partial_run() -> None:
    doc = bench_main.document({"bench_a": "## A\n\n1\n", "bench_b": "## B\n\n2\n"})
    assert doc.startswith("# Benchmarks")
    assert bench_main.existing_sections(doc) == {"bench_a": "## A\n\n1\n", "bench_b": "## B\n\n2\n"}
    assert bench_main._resolve(["webhooks"], ["bench_webhooks"]) == ["bench_webhooks"]


# --- bench_issuing / issuing_e2e ---------------------------------------------------------------------
def test_issuing_webhook_is_the_cli_sample_and_verifies() -> None:
    secret = issuing_common.sample_secret("demo-shanghai")
    request = issuing_common.signed_webhook("demo-shanghai", secret, "SMOKE-1")
    assert request.path == "/webhooks/standard/demo-shanghai"
    assert json.loads(request.body)["data"]["order_id"] == "SMOKE-1"
    h = request.headers
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + request.body
    assert h["webhook-signature"] == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_issuing_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert issuing_common.sandbox_default_delay() >= 0
    assert issuing_counters._tax_label("/access/v2/invoke/LQKP/QDFPSC", {}) == "sta QDFPSC"
    assert issuing_counters._tax_label("/open/v1/services?senid=1", {"method": "a.b.query"}) == "nuonuo query"
    assert issuing_counters._tax_label("/admin/health", {}) == ""
    monkeypatch.setenv("BENCH_ISSUING_PARTS", "1")
    assert bench_issuing.parts_from_env() == (1,)
    monkeypatch.setenv("BENCH_ISSUING_PARTS", "3")
    with pytest.raises(ValueError):
        bench_issuing.parts_from_env()
    assert issuing_counters.stage_of("/x/site-packages/botocore/client.py", "f").startswith("AWS SDK")
    assert issuing_counters.stage_of("~", "<built-in method _hashlib.new>").startswith("crypto")
    assert issuing_counters.stage_of("/usr/lib/python3.12/json/encoder.py", "encode") == issuing_counters.OTHER
    profile = cProfile.Profile()
    profile.enable()
    json.dumps({"a": [1, 2, 3]})
    profile.disable()
    shares = issuing_counters.stage_shares(profile)
    assert shares and abs(sum(shares.values()) - 1) < 1e-6
    assert issuing_stack.group_cpu_seconds(os.getpgid(0)) > 0
    assert issuing_stack.own_cpu_seconds() > 0
    assert issuing_stack.machine_busy_seconds() > 0


@pytest.mark.slow
def test_issuing_part_1_runs_a_handful_of_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker still leaves the first check to a delayed message (the path the bench measures), but after
    # 1 s rather than 3 s: the sandbox issues at once here, and each of the five batches waits that out.
    monkeypatch.setenv("FIRST_CHECK_SECONDS", "1")
    runs = issuing_inprocess.measure_in_process(warm=2, cold=1, profiled=1, providers=("sta",), delays=(0.0,))
    (run,) = runs
    assert [b.label for b in run.batches] == ["cold", "warm", "profiled"]
    for batch in run.batches:
        assert batch.issued == batch.orders, batch
        assert batch.calls["intake"].total() > 0 and batch.calls["worker"].total() > 0
        assert batch.tax_client.total() > 0  # (the profiled batch's sandbox is a process: no server-side count)
    assert run.batches[-1].stages
    section = issuing_report.render_in_process(runs, elapsed=0.0)
    assert section.startswith("### Part 1")
    assert "| sta | 0 | warm | 2 (2) |" in section


@pytest.mark.slow
@pytest.mark.e2e
def test_issuing_part_2_runs_on_the_local_stack() -> None:
    result = issuing_e2e.measure(orders=4, limit_s=45, poll_s=0.5)
    assert len(result.posts) == 4
    assert result.stopped
    section = issuing_report.render_e2e(result)
    assert section.startswith("### Part 2")
    assert "| aws |" in section and "| worker |" in section
    assert "| worker after intake: last answer → last issued |" in section
    assert "**Aim: 1,000 orders drained in ≤ 60 s** — n/a" in section


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _e2e_result(issued_after: float, spread: float) -> issuing_e2e.E2EResult:
    """1,000 orders posted over 30 s; order i issued ``issued_after`` s after its post plus ``i * spread``."""
    t0 = 1_000_000.0
    posts = [issuing_e2e.Post(f"O{i}", 202, 0.01, t0 + i * 0.03, t0 + i * 0.03, f"k{i}", "queued") for i in range(1000)]
    done = [p.ended + issued_after + i * spread for i, p in enumerate(posts)]
    issued = {p.order_key: {"created_at": _iso(p.ended), "updated_at": _iso(done[i])} for i, p in enumerate(posts)}
    pids = {"api": 1, "worker": 2}
    samples = [issuing_stack.CpuSample(t0 + at, {k: at / 2 for k in pids}, pids) for at in (0.0, 30.0, max(done) - t0)]
    end = max(done) + 1
    last = posts[-1].ended
    return issuing_e2e.E2EResult(
        1000, 4, "demo", 3.0, posts, issued, t0, last, end, end, samples, 900.0, first_check_s=3.0
    )


def test_issuing_part_2_names_the_stage_that_bounds_the_drain() -> None:
    kept_pace = issuing_report.render_e2e(_e2e_result(issued_after=6.0, spread=0.0))
    assert "≤ 60 s** — met." in kept_pace and "Bounded by **intake**" in kept_pace
    assert "| worker after intake: last answer → last issued | **6.0 s** |" in kept_pace
    behind = issuing_report.render_e2e(_e2e_result(issued_after=6.0, spread=0.05))
    assert "≤ 60 s** — **not met**." in behind and "Bounded by **the worker**" in behind


PYTEST_OUTPUT = """\
........................................................................ [100%]
============================= slowest 3 durations ==============================
61.02s call     tests/e2e/test_supervision.py::test_an_order_the_worker_held_when_it_was_killed_is_issued_once
7.68s setup    tests/app/test_deploy_template.py::test_every_resource_of_the_definitions_is_in_the_template
1.10s teardown tests/unit/webhooks/test_youzan.py::test_signed_arbitrary_json_raises_only_webhook_errors_or_parses
=========================== short test summary info ============================
FAILED tests/e2e/test_local_stack.py::test_health_answers
============ 1 failed, 2630 passed, 3 skipped in 201.34s (0:03:21) =============
"""


def test_test_suite_section_renders_from_a_pytest_output(monkeypatch: pytest.MonkeyPatch) -> None:
    run = bench_test_suite.parse("auto", 205.0, PYTEST_OUTPUT)
    assert run.outcome == "1 failed, 2630 passed, 3 skipped"
    assert [(s, phase) for s, phase, _ in run.slowest] == [(61.02, "call"), (7.68, "setup"), (1.1, "teardown")]
    section = bench_test_suite.render([run], "nproc 2")
    assert section.startswith(bench_test_suite.TITLE)
    assert "| auto | 205 s | 1 failed, 2630 passed, 3 skipped |" in section
    monkeypatch.delenv(bench_test_suite.ENABLE, raising=False)
    assert bench_test_suite.run().startswith(bench_test_suite.TITLE)  # not asked: the kept section, no run
