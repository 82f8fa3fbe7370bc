"""Smoke tests for ``bench/``: every module imports and its cheap helpers still work.

They keep the bench code from rotting silently; they never run a full benchmark and never assert a
timing (figures live in ``docs/benchmarks.md``, produced by ``python -m bench``).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import bench_import, bench_webhooks
from bench.common import Timing, percentile, time_calls
from chalicelib.domain.models import EventKind, InvoiceOrder, PaymentEvent
from chalicelib.webhooks import PLATFORMS

BENCH_DIR = Path(bench_main.__file__).parent


def test_every_bench_module_imports_and_has_run() -> None:
    modules = bench_main.discover()
    assert {"bench_crypto", "bench_import", "bench_nuonuo", "bench_webhooks"} <= set(modules)
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
