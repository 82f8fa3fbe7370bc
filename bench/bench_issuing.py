"""Issuing a blue invoice: AWS calls, tax HTTP calls and worker CPU per invoice; then the local stack end to end.

Part 1, **per blue invoice, in-process** (:mod:`bench.issuing_inprocess`). The bench starts a moto server on
a free loopback port, creates every resource with ``infra.local.bootstrap`` and seeds stores and secrets with
``infra.seed.seed``; the tax sandbox runs in-process (``chalicelib.sandbox.server.start_sandbox``) with
``examples/sandbox.json``, once with its default ``issue_delay_seconds`` and once with 0. Paid orders go
through the public entry points only:

- the webhook route, ``app.app`` through ``chalice.test.Client``, with a signed Standard Webhooks
  request built by ``infra.cli.sample_webhook`` (one order id per request);
- the worker, ``app.worker``, invoked with real SQS event shapes (``infra.worker_runner.sqs_event`` and
  ``FakeLambdaContext``) built from messages this bench receives from the issue queue, as Lambda's event
  source mapping would: batches of ``WORKER_BATCH_SIZE``, the records the handler reports in
  ``batchItemFailures`` are left on the queue (they come back after their visibility timeout), the others
  are deleted. It keeps receiving until every order's ledger record is ``issued`` or a bounded time has
  passed; delayed messages are waited for by that loop (1 s long polls), never inside the handler.

AWS calls are counted by service and operation with a botocore ``before-call`` hook on the boto3 session
handed to ``chalicelib.adapters.aws.set_session`` (and on the bench's own session), split by what was
running: *intake* (webhook posts), *worker* (``app.worker`` invocations) and *event source* (the
receive / delete calls this bench makes on behalf of Lambda's event source mapping; empty receives while
waiting are counted apart). The bench's own checks of the ledger use another, uncounted session.
Tax HTTP calls are counted on the sandbox's side (every request its handler receives on a protocol
route) and, as a cross-check, at ``HttpTransport.send`` (wrapped in this process).
Worker CPU is the calling thread's CPU time (``time.thread_time``) around the ``app.worker`` invocations
(the in-process sandbox runs in other threads); the process CPU time (``time.process_time``) minus the
CPU the sandbox's handler threads used (per request) is shown beside it, which would also catch worker
threads.
CPU by stage comes from a separate, profiled batch (cProfile with a thread-CPU timer), self time grouped
by the module of each function; its shares are applied to the unprofiled warm figure.

*Cold* is the first order after a simulated cold start: a new boto3 session (no clients, no service
models loaded), ``chalicelib.services.worker.reset()`` and every ``functools`` cache of ``app`` and
``chalicelib.services.worker`` cleared (adapters, settings, caches of stores, secrets and tokens). The
modules stay imported: import cost is ``bench_import``'s subject. *Warm* is the next batch of orders in
the same state (caches filled).

Part 2, **end to end on the local stack**, is in :mod:`bench.issuing_e2e` (the stack itself in
:mod:`bench.issuing_stack`). The counters are in :mod:`bench.issuing_counters`, what both parts share in
:mod:`bench.issuing_common`, the section's text in :mod:`bench.issuing_report`; this module is the entry
point ``python -m bench`` runs.

``BENCH_ISSUING_PARTS=1`` (or ``2``) runs one part; ``BENCH_ISSUING_ORDERS`` sets part 1's warm batch
(default 50), ``BENCH_ISSUING_PROVIDERS`` its providers (default ``sta,nuonuo``), ``BENCH_E2E_ORDERS``
part 2's orders (default 1,000). Nothing here asserts a timing. ``python -m bench.bench_issuing`` prints
the section.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import machine
from bench.issuing_common import tree_label
from bench.issuing_inprocess import PROVIDERS, WARM_ORDERS, measure_in_process
from bench.issuing_report import render_e2e, render_in_process


def parts_from_env() -> tuple[int, ...]:
    raw = os.environ.get("BENCH_ISSUING_PARTS", "1,2")
    parts = tuple(sorted({int(p) for p in raw.replace(" ", "").split(",") if p}))
    if not parts or not set(parts) <= {1, 2}:
        raise ValueError(f"BENCH_ISSUING_PARTS must list 1 and/or 2, not {raw!r}")
    return parts


def run_parts(parts: tuple[int, ...], **kwargs: Any) -> str:
    started, load = time.perf_counter(), os.getloadavg()
    sections = [
        "## Issuing: per blue invoice, and end to end on the local stack",
        "",
        f"Tree {tree_label()}; {machine()}; load average (1 min) {load[0]:.1f} at the start.",
        "",
    ]
    if 1 in parts:
        part_started = time.perf_counter()
        runs = measure_in_process(**{k: v for k, v in kwargs.items() if not k.startswith("e2e_")})
        sections.append(render_in_process(runs, time.perf_counter() - part_started))
    if 2 in parts:
        from bench import issuing_e2e

        e2e_kwargs = {k.removeprefix("e2e_"): v for k, v in kwargs.items() if k.startswith("e2e_")}
        sections.append(render_e2e(issuing_e2e.measure(**e2e_kwargs)))
    sections.append(
        f"Whole section took {time.perf_counter() - started:.0f} s; load average (1 min) {os.getloadavg()[0]:.1f} "
        "at the end (other work on the machine competes with every figure above)."
    )
    return "\n".join(sections) + "\n"


def run() -> str:
    providers = tuple(p for p in os.environ.get("BENCH_ISSUING_PROVIDERS", ",".join(PROVIDERS)).split(",") if p)
    return run_parts(
        parts_from_env(),
        warm=int(os.environ.get("BENCH_ISSUING_ORDERS", str(WARM_ORDERS))),
        providers=providers,
        e2e_orders=int(os.environ.get("BENCH_E2E_ORDERS", "1000")),
    )


if __name__ == "__main__":
    print(run())
