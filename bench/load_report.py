"""The load section's text (``bench/bench_load.py``): a summary row a rate, then each
:class:`bench.load_run.LoadResult`'s figures, the CPU of each process per window, the queues over the run,
and which stage bounds each figure."""

from __future__ import annotations

import itertools
import os
from collections import Counter

from bench.common import machine
from bench.issuing_common import pct
from bench.issuing_report import bound
from bench.issuing_stack import BENCH, LAUNCHER, OTHER_WORK, CpuSample
from bench.load_run import GRACE_S, LATE_S, POLL_WHILE_POSTING_S, LoadResult, QueueSample

#: Intake kept the target when it answered at least this share of the target rate and sent this share on time.
KEPT = 0.95
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _ms(values: list[float], p: float) -> str:
    return f"{pct(values, p) * 1000:,.0f}" if values else "–"


def _s(values: list[float], p: float) -> str:
    return f"{pct(values, p):,.1f}" if values else "–"


def answers(result: LoadResult) -> dict[str, int]:
    """Counts by answer: 2xx by outcome, 409, other 4xx, 5xx, transport errors, not sent."""
    counts: Counter[str] = Counter()
    for shot in result.shots:
        if shot.sent is None:
            counts["not sent (later than the grace)"] += 1
        elif shot.status == 0:
            counts["transport error / timeout"] += 1
        elif shot.status // 100 == 2:
            counts[f"2xx {shot.outcome or '(no outcome)'}"] += 1
        elif shot.status == 409:
            counts["409"] += 1
        elif shot.status // 100 == 4:
            counts[f"4xx ({shot.status} {shot.outcome})".replace(" )", ")")] += 1
        else:
            code = f"{shot.status} {shot.outcome}".strip()
            counts[f"5xx ({code})" if shot.status // 100 == 5 else code] += 1
    return dict(sorted(counts.items()))


def _window(samples: list[CpuSample], start: float, end: float) -> list[CpuSample]:
    return [s for s in samples if start <= s.at <= end]


def peak_shares(samples: list[CpuSample]) -> dict[str, float]:
    """Each process's highest share of one core over consecutive samples."""
    peaks: dict[str, float] = {}
    for a, b in itertools.pairwise(samples):
        wall = max(1e-9, b.at - a.at)
        for name, value in b.seconds.items():
            if a.pids.get(name) == b.pids.get(name):
                share = (value - a.seconds.get(name, 0.0)) / wall
                peaks[name] = max(peaks.get(name, 0.0), share)
    return peaks


def cpu_rows(result: LoadResult) -> list[str]:
    m0, m1, m2 = result.marks[0], result.marks[1], result.marks[-1]
    w1, w2 = max(1e-9, m1.at - m0.at), max(1e-9, m2.at - m1.at)
    p1 = peak_shares(_window(result.samples, m0.at, m1.at))
    p2 = peak_shares(_window(result.samples, m1.at, m2.at))
    rows = [
        f"| process group | intake CPU s ({w1:,.0f} s) | share | peak {result.sample_s:g}-s share | "
        f"drain CPU s ({w2:,.0f} s) | share | peak {result.sample_s:g}-s share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in m2.seconds:
        a, b, c = m0.seconds.get(name, 0.0), m1.seconds.get(name, 0.0), m2.seconds[name]
        label = name + (" (**restarted**)" if m0.pids.get(name) != m2.pids.get(name) else "")
        if name == OTHER_WORK:
            peak1 = peak2 = "–"
        else:
            peak1, peak2 = f"{p1.get(name, 0.0):.0%}", f"{p2.get(name, 0.0):.0%}"
        rows.append(
            f"| {label} | {b - a:,.1f} | **{(b - a) / w1:.0%}** | {peak1} | {c - b:,.1f} | **{(c - b) / w2:.0%}** "
            f"| {peak2} |"
        )
    return rows


def _depth(sample: QueueSample, queue: str, which: int) -> int:
    return sample.depth.get(queue, (0, 0, 0))[which]


def queue_figures(result: LoadResult, queue: str = "issue") -> dict[str, float]:
    """Visible (waiting for a worker), in flight and delayed messages of ``queue`` over the run."""
    qs = [q for q in result.queues if queue in q.depth]
    if not qs:
        return {}
    during = [q for q in qs if q.at <= result.last_answer] or qs[:1]
    visible = [_depth(q, queue, 0) for q in qs]
    growth = (_depth(during[-1], queue, 0) - _depth(during[0], queue, 0)) / max(1e-9, during[-1].at - during[0].at)
    return {
        "visible max": max(visible),
        "visible at the last answer": _depth(during[-1], queue, 0),
        "visible growth per s during intake": growth,
        "in flight max": max(_depth(q, queue, 1) for q in qs),
        "delayed max": max(_depth(q, queue, 2) for q in qs),
        "samples": len(qs),
    }


def queue_grew(result: LoadResult) -> bool:
    """The issue queue built a backlog: more visible messages than one sample's worth of arrivals."""
    figures = queue_figures(result)
    return bool(figures) and figures["visible max"] > max(10.0, result.rate * result.sample_s)


def path_shares(start: CpuSample, end: CpuSample) -> str:
    """Intake's own processes (the API writing to the embedded AWS) with their CPU share of one core."""
    wall = max(1e-9, end.at - start.at)
    parts = []
    for name, label in (("api", "the API process (`api`)"), ("aws", "the embedded AWS (`aws`)")):
        if name in end.seconds:
            parts.append(f"{label} {(end.seconds[name] - start.seconds.get(name, 0.0)) / wall:.0%} of a core")
    return " and ".join(parts) or "no samples"


def intake_verdict(result: LoadResult) -> str:
    m0, m1 = result.marks[0], result.marks[1]
    late = [s for s in result.shots if s.sent is not None and s.sent - s.scheduled > LATE_S]
    sent = [s for s in result.shots if s.sent is not None]
    on_time = 1 - len(late) / max(1, len(sent))
    kept = result.achieved_per_s >= KEPT * result.rate and on_time >= KEPT and len(sent) == len(result.shots)
    if kept:
        return (
            f"**Intake kept the target** ({result.achieved_per_s:,.1f} of {result.rate:g} webhooks/s, "
            f"{on_time:.0%} sent on schedule): its latency is the service time of one request, spent in "
            f"{path_shares(m0, m1)}; the busiest process while posting: {bound(m0, m1)}."
        )
    return (
        f"**Intake did not keep the target**: {result.achieved_per_s:,.1f} of {result.rate:g} webhooks/s "
        f"answered, {on_time:.0%} sent on schedule (the other requests waited for one of the "
        f"{result.connections} senders: the stack answered slower than {result.rate:g}/s), so the latency "
        f"from the schedule grows over the run. Intake's path: {path_shares(m0, m1)}; what bounds it, by CPU "
        f"share while posting: {bound(m0, m1)}."
    )


def _waiting_on(start: CpuSample, end: CpuSample) -> str:
    """Whether the worker itself was busy, or waited on the embedded AWS that serves its calls."""
    wall = max(1e-9, end.at - start.at)
    share = {n: (end.seconds.get(n, 0.0) - start.seconds.get(n, 0.0)) / wall for n in ("worker", "aws")}
    if share["worker"] < 0.5 <= share["aws"]:
        return (
            f"The worker's own process used {share['worker']:.0%} of a core while `aws` used {share['aws']:.0%}: "
            "the worker waited on the embedded AWS (each of its receives, ledger writes and sends is a call to "
            "moto), not on its own CPU. "
        )
    return f"The worker used {share['worker']:.0%} of a core, `aws` {share['aws']:.0%}. "


def issue_verdict(result: LoadResult) -> str:
    m0, m1, m2 = result.marks[0], result.marks[1], result.marks[-1]
    lags, recorded = result.lags("issued_at"), result.lags("updated_at")
    floor = result.first_check_s
    q = queue_figures(result)
    if not q:
        head = "No queue samples (the sampler's calls failed): "
    elif queue_grew(result):
        head = (
            f"**The worker stage bounds payment → invoice**: the issue queue built a backlog (up to "
            f"{q['visible max']:,.0f} visible messages, {q['visible growth per s during intake']:+,.1f}/s "
            f"during intake), so orders waited for a worker. " + _waiting_on(m0, m1)
        )
    else:
        head = (
            f"**Waits, not capacity, bound payment → invoice**: the issue queue kept no backlog (at most "
            f"{q['visible max']:,.0f} visible messages) — an order waits for the first check "
            f"({floor:g} s after acceptance, a delayed message), whose query finds the invoice the sandbox "
            f"issued after {result.delay_s:g} s: p50 {_s(lags, 50)} s to `issued_at` against the sandbox's "
            f"{result.delay_s:g} s, {_s(recorded, 50)} s to the recorded write against the {floor:g} s check. "
        )
    return head + f"By CPU share after the last answer: {bound(m1, m2)}; while posting: {bound(m0, m1)}."


def render_run(result: LoadResult) -> str:
    shots, answered, accepted = result.shots, result.answered, result.accepted
    latency = [s.latency_s for s in answered if s.latency_s is not None]
    service = [s.service_s for s in answered if s.service_s is not None]
    late = [s.sent - s.scheduled for s in shots if s.sent is not None and s.sent - s.scheduled > LATE_S]
    last = result.last_issued()
    drained = result.drained_at is not None
    if drained and last is not None:
        drain = f"**{max(0.0, last - result.last_answer):,.1f} s** (all {len(result.issued):,} issued)"
    else:
        drain = (
            f"**not drained** within {result.drain_limit_s:g} s: {len(result.issued):,} of {len(accepted):,} "
            "issued; statuses " + ", ".join(f"{k} {v:,}" for k, v in sorted(result.statuses.items()))
        )
    q, dq = queue_figures(result), queue_figures(result, "deliver")
    rows = [
        f"| target | {result.rate:g} webhooks/s for {result.seconds:g} s = {len(shots):,} scheduled, "
        f"≤ {result.connections} in flight |",
        "| answers | " + ", ".join(f"{k}: {v:,}" for k, v in answers(result).items()) + " |",
        f"| achieved (answers / first send → last answer) | **{result.achieved_per_s:,.1f} webhooks/s** over "
        f"{result.intake_s:,.1f} s |",
        f"| sent > {LATE_S * 1000:.0f} ms after schedule (all senders busy) | {len(late):,}"
        + (f", up to {max(late):,.1f} s late" if late else "")
        + " |",
        f"| intake latency p50 / p95 / p99 ms (schedule → answer) | **{_ms(latency, 50)} / {_ms(latency, 95)} / "
        f"{_ms(latency, 99)}** |",
        f"| service time p50 / p95 / p99 ms (sent → answer) | {_ms(service, 50)} / {_ms(service, 95)} / "
        f"{_ms(service, 99)} |",
        f"| payment → invoice p50 / p95 s (webhook sent → the ledger's `issued_at`, the sandbox's time) | "
        f"**{_s(result.lags('issued_at'), 50)} / {_s(result.lags('issued_at'), 95)}** |",
        f"| payment → recorded issued p50 / p95 s (→ `updated_at` of the issued write) | "
        f"{_s(result.lags('updated_at'), 50)} / {_s(result.lags('updated_at'), 95)} |",
        f"| drain: last answer → last issued | {drain} |",
    ]
    refusals = result.extra.get("refusals") or {}
    if refusals:
        rows.append(
            "| what the 503s were (the API's log) | " + "; ".join(f"{k}: {v:,}" for k, v in refusals.items()) + " |"
        )
    if q:
        rows.append(
            f"| issue queue (every {result.sample_s:g} s, {q['samples']:.0f} samples) | visible max "
            f"{q['visible max']:,.0f}, at the last answer {q['visible at the last answer']:,.0f} "
            f"({q['visible growth per s during intake']:+,.1f}/s during intake); in flight max "
            f"{q['in flight max']:,.0f}; delayed max {q['delayed max']:,.0f} |"
        )
    if dq:
        rows.append(
            f"| deliver queue | visible max {dq['visible max']:,.0f}, at the last answer "
            f"{dq['visible at the last answer']:,.0f}; in flight max {dq['in flight max']:,.0f} |"
        )
    ls, le = result.load_start, result.load_end
    return "\n".join(
        [
            f"### {result.rate:g} webhooks/s for {result.seconds:g} s",
            "",
            f"Load average (1 / 5 / 15 min) {ls[0]:.2f} / {ls[1]:.2f} / {ls[2]:.2f} at the start, "
            f"{le[0]:.2f} / {le[1]:.2f} / {le[2]:.2f} at the end; stack started in {result.startup_s:.0f} s, "
            f"{result.extra.get('warm-up', 'no warm-up')}; {result.polls:,} ledger polls."
            + (f" Note: {result.note}." if result.note else ""),
            "",
            "| measure | value |",
            "|---|---|",
            *rows,
            "",
            *cpu_rows(result),
            "",
            "- " + intake_verdict(result),
            "- " + issue_verdict(result),
            "",
        ]
    )


def short_bound(start: CpuSample, end: CpuSample) -> str:
    """The stack process near a full core between two samples, or that none is (and whether the machine is)."""
    wall = max(1e-9, end.at - start.at)
    shares = {
        n: (end.seconds[n] - start.seconds.get(n, 0.0)) / wall
        for n in end.seconds
        if n not in (OTHER_WORK, LAUNCHER, BENCH)
    }
    total = sum((end.seconds[n] - start.seconds.get(n, 0.0)) / wall for n in end.seconds)
    top, share = max(shares.items(), key=lambda kv: kv[1], default=("–", 0.0))
    busy = " (machine ≥ 75 % busy)" if total >= 0.75 * CORES else ""
    return (f"`{top}` {share:.0%}" if share >= 0.7 else f"none near a core (`{top}` {share:.0%})") + busy


def summary_row(r: LoadResult) -> str:
    latency = [s.latency_s for s in r.answered if s.latency_s is not None]
    service = [s.service_s for s in r.answered if s.service_s is not None]
    counts = Counter(
        "2xx"
        if s.status // 100 == 2
        else "409"
        if s.status == 409
        else "5xx"
        if s.status // 100 == 5
        else "not sent"
        if s.sent is None
        else "other"
        for s in r.shots
    )
    answered = " / ".join(f"{counts.get(k, 0):,}" for k in ("2xx", "409", "5xx", "not sent", "other"))
    lags = r.lags("issued_at")
    q = queue_figures(r)
    if not q:
        issue = "no queue samples"
    elif queue_grew(r):
        issue = f"worker's queue grew (to {q['visible max']:,.0f}); {short_bound(r.marks[1], r.marks[-1])}"
    else:
        issue = f"waits: first check {r.first_check_s:g} s, sandbox {r.delay_s:g} s"
    return (
        f"| {r.rate:g} | **{r.achieved_per_s:,.1f}** | {answered} | **{_ms(latency, 50)} / {_ms(latency, 95)} / "
        f"{_ms(latency, 99)}** | {_ms(service, 50)} | **{_s(lags, 50)} / {_s(lags, 95)}** | "
        f"{short_bound(r.marks[0], r.marks[1])} | {issue} |"
    )


def render(results: list[LoadResult], command: str) -> str:
    """The whole section: the method, one summary row a rate, then each run's figures."""
    first = results[0]
    return "\n".join(
        [
            "## Load: open-loop webhooks against the local stack",
            "",
            f"`{command}` — tree {first.tree}; {machine()}; other work on the machine "
            "(each run's load average and the *other work* row below say how much).",
            "",
            "Each rate on a fresh `python -m infra.localstack` on free loopback ports (moto = `aws`, the tax "
            "sandbox, `chalice local` = `api`, the worker runner with its Lambda containers = `worker`, the "
            "deliverer, the scheduler), warmed up first with a few orders (cold starts are `bench_issuing`'s "
            f"subject). Signed Standard Webhooks for `{first.store}`, one paid order each, signed before the run "
            "and sent **open-loop**: request *i* is due at *t0 + i / rate*, sent by whichever of "
            f"{first.connections} keep-alive sender threads is free, none later than {GRACE_S:g} s after the "
            "schedule's end (*not sent*); a request sent late keeps its due time, so the latency from the "
            "schedule includes waiting for a sender (what a client of an overloaded service sees, without "
            "coordinated omission); the service time is from the send. Then the ledger is polled "
            f"(BatchGetItem, projected, every {POLL_WHILE_POSTING_S:g} s while sending, then every 2 s) until "
            f"every queued order is `issued` or {first.drain_limit_s:g} s have passed; the stack is stopped "
            "either way. Payment → invoice = webhook sent → the ledger's `issued_at` (the sandbox's issue time). "
            "CPU: utime + stime of each process group from `/proc`, per window (*intake* = first send → last "
            f"answer, *drain* = → the end), with the busiest {first.sample_s:g}-s interval; *bench* is this load "
            "generator (senders, sampler, poller); *other work* = the machine's busy CPU less every row (other "
            "helpers' processes, and kernel time charged to no process). Queue depth: `GetQueueAttributes` of "
            f"the issue and deliver queues on the stack's moto every {first.sample_s:g} s. A stage *bounds* a "
            "figure when its process is near a full core (one Python process: its interpreter lock allows ~100 %) "
            "or when its queue grows.",
            "",
            "| target /s | achieved /s | 2xx / 409 / 5xx / not sent / other | intake p50 / p95 / p99 ms | "
            "service p50 ms | payment → invoice p50 / p95 s | intake bound by | payment → invoice bound by |",
            "|---:|---:|---|---:|---:|---:|---|---|",
            *[summary_row(r) for r in results],
            "",
            *[render_run(r) for r in results],
        ]
    )
