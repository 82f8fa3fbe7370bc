"""The test suite's own wall time (issue 12: ``make test`` stays under 6 minutes on a 2-core machine).

It runs the whole suite, which takes minutes, so it measures only when asked::

    BENCH_TEST_SUITE=1 python -m bench --only test_suite       # -n auto, as `make test` runs it
    BENCH_TEST_SUITE=1 BENCH_TEST_SUITE_WORKERS=0,auto python -m bench --only test_suite

Otherwise ``run()`` hands back the section already in ``docs/benchmarks.md`` unchanged, so a plain
``python -m bench`` keeps the last figures. The wall time is pytest's own (lint not included).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.common import ROOT, machine

ENABLE = "BENCH_TEST_SUITE"
WORKERS = "BENCH_TEST_SUITE_WORKERS"
TITLE = "## Test suite (`make test`)"
SLOWEST = 10
_SUMMARY = re.compile(r"^=+ (?P<outcome>.+?) in (?P<seconds>[\d.]+)s(?: \(.*\))? =+$")
_DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S+)$")


@dataclass(frozen=True)
class SuiteRun:
    workers: str
    wall_s: float
    outcome: str
    slowest: list[tuple[float, str, str]]  # (seconds, phase, test id)


def parse(workers: str, wall_s: float, output: str) -> SuiteRun:
    """The summary line and the ``--durations`` table of a pytest run's output."""
    outcome = "no summary line"
    slowest: list[tuple[float, str, str]] = []
    for raw in output.splitlines():
        line = raw.strip()
        if m := _SUMMARY.match(line):
            outcome = m["outcome"]
        elif m := _DURATION.match(line):
            slowest.append((float(m["seconds"]), m["phase"], m["test"]))
    return SuiteRun(workers, wall_s, outcome, slowest[:SLOWEST])


def measure(workers: str) -> SuiteRun:
    argv = [sys.executable, "-m", "pytest", "-n", workers, "-p", "no:cacheprovider", f"--durations={SLOWEST}"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    return parse(workers, time.perf_counter() - started, done.stdout)


def render(runs: list[SuiteRun], machine_line: str) -> str:
    lines = [
        TITLE,
        "",
        f"`{ENABLE}=1 python -m bench --only test_suite` on {machine_line}; wall time of pytest alone "
        "(`make lint` runs before it). Workers: pytest-xdist `-n` (`auto` = one a core).",
        "",
        "| workers | wall | outcome |",
        "|---|---|---|",
    ]
    lines += [f"| {r.workers} | {r.wall_s:.0f} s | {r.outcome} |" for r in runs]
    lines += [
        "",
        "How it stays fast: pytest-xdist `--dist loadgroup`, each worker with its own moto server on a free "
        "port; tests sharing a module or tier fixture are one group on one worker (`tests/conftest.py`), the "
        "e2e and slow groups are handed out first; one boto3 session and its clients per worker for the "
        "per-test `stack`; the supervision stack runs a 30 s worker time limit (visibility timeout 60 s), "
        "so its kill-mid-tax-call test waits ~65 s rather than ~95 s.",
    ]
    if runs and runs[-1].slowest:
        lines += ["", f"Slowest with `-n {runs[-1].workers}`:", "", "| test | phase | s |", "|---|---|---|"]
        lines += [f"| `{test}` | {phase} | {seconds:.1f} |" for seconds, phase, test in runs[-1].slowest]
    return "\n".join(lines) + "\n"


def kept_section() -> str:
    from bench.__main__ import OUTPUT, existing_sections

    stem = __name__.rsplit(".", 1)[-1]
    if OUTPUT.exists():
        found = existing_sections(OUTPUT.read_text(encoding="utf-8")).get(stem)
        if found:
            return found
    return f"{TITLE}\n\nNot measured yet: `{ENABLE}=1 python -m bench --only test_suite`.\n"


def run() -> str:
    if os.environ.get(ENABLE) != "1":
        return kept_section()
    workers = [w.strip() for w in os.environ.get(WORKERS, "auto").split(",") if w.strip()]
    return render([measure(w) for w in workers], machine())
