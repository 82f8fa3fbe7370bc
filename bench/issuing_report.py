"""The issuing section's text: part 1's tables (per blue invoice) and part 2's (end to end), with the aims."""

from __future__ import annotations

import os
from collections import Counter

from bench.issuing_common import pct
from bench.issuing_e2e import POLL_WHILE_POSTING_S, E2EResult
from bench.issuing_inprocess import Run
from bench.issuing_stack import OTHER_WORK, CpuSample

AIM_AWS_CALLS = 6.0
AIM_TAX_CALLS = 1.5
AIM_CPU_MS = 10.0
AIM_DRAIN_S = 60.0
AIM_ORDERS = 1000
#: The worker kept pace when it issued at least this share of intake's rate (first-check delay taken off).
KEEPS_PACE = 0.8


# --- rendering ---------------------------------------------------------------------------------------
def _ops(counter: Counter[str], n: int) -> str:
    if not counter:
        return "–"
    return ", ".join(f"{op} {count / max(1, n):.2g}" for op, count in sorted(counter.items()) if count)


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render_in_process(runs: list[Run], elapsed: float) -> str:
    rows, details, stages = [], [], []
    for run in runs:
        for b in run.batches:
            if b.label == "profiled":
                continue
            aws_total = b.per("intake") + b.per("worker")
            not_done = b.orders - b.issued
            flags = []
            if not_done:
                flags.append(f"{not_done} not issued")
            if b.refused:
                flags.append(f"{len(b.refused)} webhooks refused")
            if b.failed_records or b.crashed:
                flags.append(f"{b.failed_records} records reported failed, {b.crashed} crashed invocations")
            if b.retries:
                flags.append(f"{b.retries} SDK retries")
            rows.append(
                f"| {run.provider} | {run.delay_s:g} | {b.label} | {b.orders} ({b.issued}) | {b.invocations} | "
                f"{_num(b.per('intake'))} | {_num(b.per('worker'))} | **{_num(aws_total)}** | "
                f"{_num(b.per('event-source'))} + {b.empty_receives} empty | **{_num(b.tax_per)}** | "
                f"**{_num(b.cpu_ms, 1)}** | {_num(b.cpu_all_ms, 1)} | "
                f"{_num(b.intake_cpu * 1000 / max(1, b.orders), 1)} | {_num(pct(b.intake_ms, 50), 1)} | "
                f"{b.wall_s:.1f} | {'; '.join(flags) or '–'} |"
            )
            details.append(
                f"- {run.provider}, delay {run.delay_s:g} s, {b.label} (per invoice): "
                f"intake {_ops(b.calls.get('intake', Counter()), b.orders)}; "
                f"worker {_ops(b.calls.get('worker', Counter()), b.orders)}; "
                f"event source {_ops(b.calls.get('event-source', Counter()), b.orders)}; "
                f"delivery {_ops(b.calls.get('deliver', Counter()), b.orders)}, "
                f"{_num(b.deliver_thread_cpu * 1000 / max(1, b.orders), 1)} ms CPU "
                f"(worker + delivery {_num(b.cpu_ms + b.deliver_thread_cpu * 1000 / max(1, b.orders), 1)} ms); "
                f"tax HTTP {_ops(b.tax, b.orders)} (at the client: {_ops(b.tax_client, b.orders)})."
            )
        warm = next((b for b in run.batches if b.label == "warm"), None)
        prof = next((b for b in run.batches if b.stages), None)
        if warm is not None and prof is not None and prof.stages:
            parts = [f"{stage} {share:.0%} ≈ {share * warm.cpu_ms:.1f} ms" for stage, share in prof.stages.items()]
            stages.append(
                f"- {run.provider}, delay {run.delay_s:g} s ({prof.orders} profiled orders): " + "; ".join(parts)
            )
    warm_rows = [(r, b) for r in runs for b in r.batches if b.label == "warm"]
    verdicts = [
        f"{r.provider}/{r.delay_s:g} s: AWS {_yes(b.per('intake') + b.per('worker') <= AIM_AWS_CALLS)}, "
        f"tax HTTP {_yes(b.tax_per <= AIM_TAX_CALLS)}, CPU {_yes(b.cpu_ms <= AIM_CPU_MS)}"
        for r, b in warm_rows
    ]
    return "\n".join(
        [
            "### Part 1 — per blue invoice, in-process (moto server + in-process tax sandbox)",
            "",
            "Paid orders through the real entry points: the webhook route (`app.app` via `chalice.test.Client`, "
            "a signed Standard Webhooks request as `infra/cli.py` prints it, one order id each), then `app.worker` "
            "invoked with SQS events built from messages received from the issue queue, as the event source "
            "mapping would (batches of `WORKER_BATCH_SIZE`; reported failures left on the queue, the rest "
            "deleted), until every record is `issued` in the ledger or the batch's time bound passes. "
            "Stores and secrets from `infra.seed` (demo-hangzhou's pilot raised to 100 % so every order is "
            "issued automatically); sandbox = `examples/sandbox.json` with the delay shown. "
            "AWS calls per invoice from a botocore `before-call` hook: *intake* = during the webhook posts, "
            "*worker* = during `app.worker`, *event source* = this bench's receive / delete calls for Lambda "
            "(empty receives while waiting shown apart, in total); *delivery* (in the per-invoice details) = "
            "`app.deliverer` draining the deliver queue after the batch — the PDF rendered and stored, the "
            "platform's files fetched and stored, the link issued, the buyer mailed (demo-shanghai) — with "
            "its thread CPU per invoice and the sum worker + delivery. Tax HTTP = requests the sandbox received on its "
            "protocol routes. Worker CPU = the invoking thread's CPU time around `app.worker`, per invoice; "
            "*all threads* = process CPU time around it minus the sandbox handler threads' CPU. "
            "*Cold* = the first order after a simulated cold start (new boto3 session, "
            "`chalicelib.services.worker.reset()`, every `functools` cache of `app` and the worker module "
            "cleared; modules stay imported), *warm* = the next batch, caches filled. "
            f"Aims (warm): ≤ {AIM_AWS_CALLS:g} AWS calls per invoice counting intake + worker (event source "
            f"apart), ≤ {AIM_TAX_CALLS:g} tax HTTP calls, ≤ {AIM_CPU_MS:g} ms worker CPU. Part 1 took "
            f"{elapsed:.0f} s.",
            "",
            "| provider | sandbox delay s | batch | orders (issued) | invocations | intake AWS / inv | "
            "worker AWS / inv | intake + worker | event source / inv | tax HTTP / inv | worker CPU ms / inv | "
            "all threads ms / inv | intake CPU ms / webhook | intake median ms | wall s | notes |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            "Aims, warm: " + "; ".join(verdicts) + ".",
            "",
            "AWS and tax calls by operation:",
            "",
            *details,
            "",
            "Worker CPU by stage (self time of a separate profiled batch, cProfile with a thread-CPU timer, grouped "
            "by the module of each function; shares applied to the unprofiled warm CPU — an approximation: "
            "the profiler's overhead is not uniform):",
            "",
            *stages,
            "",
        ]
    )


# --- rendering -----------------------------------------------------------------------------------
def _ms(values: list[float], p: float) -> str:
    return f"{pct(values, p) * 1000:,.0f}"


def _s(values: list[float], p: float) -> str:
    return f"{pct(values, p):,.1f}"


def bound(start: CpuSample, end: CpuSample) -> str:
    """Which process saturates a core between two samples (by CPU share of the window), if any."""
    wall = max(1e-9, end.at - start.at)
    shares = {n: (end.seconds[n] - start.seconds.get(n, 0.0)) / wall for n in end.seconds}
    other = max(0.0, shares.pop(OTHER_WORK, 0.0))
    if not shares:
        return "no CPU samples"
    top, share = max(shares.items(), key=lambda kv: kv[1])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    total = sum(shares.values()) + other
    machine = f"this stack and bench {total - other:.0%} and other work {other:.0%} of {cores} cores"
    if total >= 0.75 * cores:
        machine += " — the machine is close to saturated, so no process can get much more"
    if share >= 0.7:
        return (
            f"**{top}** ({share:.0%} of a core: one Python process, close to the ~100 % its interpreter lock "
            f"allows; {machine})"
        )
    if total >= 0.75 * cores:
        return f"the machine's cores ({machine}; busiest {top}, {share:.0%} of a core)"
    return (
        f"no process is CPU-bound (busiest: {top}, {share:.0%} of a core; {machine}): the bound is waiting, "
        "not CPU (the sandbox's issuing delay, delayed or hidden messages, polls, sleeps)"
    )


def _drain_text(result: E2EResult) -> str:
    if result.drain_s is not None:
        return (
            f"**{result.drain_s:,.1f} s** (ledger time of the last `issued` write; seen by the poller after "
            f"{(result.observed_all or 0) - result.first_post:,.1f} s)"
        )
    waited = result.end - result.first_post
    return (
        f"**not drained**: {len(result.issued):,} of {len(result.accepted):,} issued after {waited:,.0f} s "
        f"(limit {result.limit_s:,.0f} s); statuses then: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(result.statuses.items()))
    )


def verdict_e2e(result: E2EResult) -> str:
    """The aim, met or not, and which stage (intake or worker) and which process bound the drain."""
    s0, s1, s2 = result.samples[0], result.samples[1], result.samples[-1]
    drain, intake, backlog, accepted = result.drain_s, result.intake_s, result.backlog, len(result.accepted)
    if result.orders < AIM_ORDERS:
        met = f"n/a (only {result.orders:,} orders; the aim is for {AIM_ORDERS:,})"
    else:
        met = "met" if drain is not None and drain <= AIM_DRAIN_S else "**not met**"
    head = f"**Aim: {AIM_ORDERS:,} orders drained in ≤ {AIM_DRAIN_S:g} s** — {met}. "
    if drain is None:
        return head + (
            f"Intake was done after {intake:,.1f} s, but the worker had not issued every order within the "
            f"limit: the **worker** bounds it. By CPU share after the last post: {bound(s1, s2)}."
        )
    tail = max(0.0, drain - intake)
    head += (
        f"Drain {drain:,.1f} s = intake {intake:,.1f} s ({result.webhooks_per_s:,.1f} webhooks/s) + the "
        f"worker's {tail:,.1f} s after the last post, with {backlog:,} of {accepted:,} orders still to issue then. "
    )
    # No order is issued sooner than the first check after its acceptance: with that taken off, a worker that
    # kept pace issued the orders about as fast as intake brought them in.
    rate = accepted / max(1e-9, drain - result.first_check_s)
    share = rate / result.webhooks_per_s
    lags = result.lags("updated_at")
    if share >= KEEPS_PACE:
        return head + (
            f"Bounded by **intake**: the worker kept pace — with the {result.first_check_s:g} s first-check delay "
            f"taken off the drain it issued {rate:,.1f} orders/s, {share:.0%} of intake's rate, so a faster worker "
            f"would not shorten the drain by much. The process that bounds intake, by CPU share while posting: "
            f"{bound(s0, s1)}."
        )
    return head + (
        f"Bounded by **the worker**: with the {result.first_check_s:g} s first-check delay taken off the drain it "
        f"issued {rate:,.1f} orders/s, {share:.0%} of intake's rate, and orders waited in its queue (payment → "
        f"issued p50 {pct(lags, 50):,.1f} s, the quickest {min(lags, default=0.0):,.1f} s). The process that "
        f"bounds it, by CPU share after the last post: {bound(s1, s2)}; while posting: {bound(s0, s1)}."
    )


def _cpu_rows(result: E2EResult) -> list[str]:
    s0, s1, s2 = result.samples[0], result.samples[1], result.samples[-1]
    post_wall, drain_wall, whole = max(1e-9, s1.at - s0.at), max(1e-9, s2.at - s1.at), max(1e-9, s2.at - s0.at)
    rows = [
        f"| process | CPU s while posting ({post_wall:,.0f} s) | CPU s after posting ({drain_wall:,.0f} s) | "
        f"CPU s whole run ({whole:,.0f} s) |",
        "|---|---:|---:|---:|",
    ]
    for name in s2.seconds:
        a, b, c = s0.seconds.get(name, 0.0), s1.seconds.get(name, 0.0), s2.seconds[name]
        restarted = s0.pids.get(name) != s2.pids.get(name)
        label = (
            f"{name} (**restarted** during the run: its first process's CPU is in the launcher's)"
            if restarted
            else name
        )
        rows.append(
            f"| {label} | {b - a:,.1f} ({(b - a) / post_wall:.0%}) | {c - b:,.1f} ({(c - b) / drain_wall:.0%}) | "
            f"**{c - a:,.1f}** ({(c - a) / whole:.0%}) |"
        )
    return rows


def render_e2e(result: E2EResult) -> str:
    accepted = result.accepted
    latencies = [p.latency_s for p in result.posts]
    refused = len(result.posts) - len(accepted)
    drain = result.drain_s
    tail = f"**{max(0.0, drain - result.intake_s):,.1f} s**" if drain is not None else "– (not drained)"
    window = result.end - result.first_post
    rate = len(result.issued) / window if window > 0 else 0.0
    rows = [
        f"| orders posted (accepted as queued) | {len(result.posts):,} ({len(accepted):,}"
        + (f"; {refused:,} not queued" if refused else "")
        + ") |",
        f"| intake: first post → last answer ({result.posters} posters) | **{result.intake_s:,.1f} s**, "
        f"{result.webhooks_per_s:,.1f} webhooks/s |",
        f"| intake latency p50 / p95 / p99 ms | {_ms(latencies, 50)} / {_ms(latencies, 95)} / {_ms(latencies, 99)} |",
        f"| issued by the last answer (backlog then) | {len(accepted) - result.backlog:,} ({result.backlog:,}) |",
        f"| worker after intake: last answer → last issued | {tail} |",
        f"| time to drain (first post → last issued) | {_drain_text(result)} |",
        f"| issued per second over the run | {rate:,.1f} |",
        f"| payment → issued p50 / p95 s (record `created_at` → `issued_at`, the platform's time) | "
        f"{_s(result.lags('issued_at'), 50)} / {_s(result.lags('issued_at'), 95)} |",
        f"| payment → recorded issued p50 / p95 s (`created_at` → `updated_at` of the issued write) | "
        f"{_s(result.lags('updated_at'), 50)} / {_s(result.lags('updated_at'), 95)} |",
    ]
    return "\n".join(
        [
            "### Part 2 — end to end on the local stack (`python -m infra.localstack`, one process each)",
            "",
            f"{result.orders:,} paid orders for the sample store `{result.store}` posted as signed Standard "
            f"Webhooks by {result.posters} threads, each over its own "
            "keep-alive connection to `chalice local` on 127.0.0.1; the worker runner (`infra/worker_runner.py`) "
            f"drains the queue; the sandbox issues with its default delay ({result.delay_s:g} s, "
            "`examples/sandbox.json`). Latency = one POST, request sent → reply read, as the poster sees it. "
            f"The ledger (moto) is polled every {result.poll_every_s:g} s once posting is done, every "
            f"{POLL_WHILE_POSTING_S:g} s before (BatchGetItem of the accepted orders not seen issued yet, "
            "projected: a Query of all the store's records every poll made moto the busiest process); payment → "
            "issued is per order from its record, and so are the stages: *intake* is the posts (`api`, i.e. "
            "`chalice local`, writing to `aws`, the moto server), the *worker* (`worker`: the runner and its "
            "containers, calling `sandbox` and `aws`) is what is left after the last answer. "
            "CPU = each process group's utime + stime from `/proc` "
            "(children included), as seconds and share of one core over the window; the bench's own threads "
            "(posters, which sign each request, and the poller) are shown too: they share the machine, and so "
            "does *other work*: the machine's busy CPU (`/proc/stat`) less all of the rows above; the "
            f"poller's {result.polls:,} BatchGetItem calls took {result.poll_s:,.1f} s of wall time, served by moto "
            "(counted in `aws`). "
            f"Stack start-up took {result.startup_s:.0f} s (not counted); the run, first post → end, "
            f"{window:,.0f} s." + (f" Note: {result.note}." if result.note else ""),
            "",
            "| measure | value |",
            "|---|---|",
            *rows,
            "",
            *_cpu_rows(result),
            "",
            verdict_e2e(result),
            "",
        ]
    )
