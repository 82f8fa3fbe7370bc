"""One chaos run: the stack started, the workload posted under a schedule of disruptions, the run
settled, reconciled and checked; the journal and the report written to the state directory.

The timeline (seconds after the first post; ``W`` the posting window, ~0.25 s an order, at least 20 s):
sandbox fault phases of ``PHASE_S`` each (busy, 5xx, timeout after commit, garbled), the 2-hour outage
on the sandbox clock, a worker kill, the Lambda time limit (an invocation caught by an AWS freeze longer
than the limit), a container kill, Nuonuo token expiry and refusal, a latency phase, a second worker
kill; for a longer window the cycle repeats (short AWS freezes instead of the time-limit one). After the
last post: every fault ended, copies of some issue messages put on the DLQ and redriven, then the run
waits until no order is in a non-final status and the sandbox has nothing pending.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from chaos import stack as stack_mod
from chaos.disrupt import Disruptor
from chaos.journal import JOURNAL_NAME, REPORT_NAME, Journal
from chaos.post import Poster
from chaos.workload import STORES, Event, Send, known_secrets, plan

PHASE_S = 2.5
OUTAGE_REAL_S = 3.0
POSTERS = 6
SETTLE_LIMIT_S = 300.0
PROGRESS_S = 10.0
DLQ_COPIES = 3
CHINA = timezone(timedelta(hours=8))


def window_for(orders: int) -> float:
    return max(30.0, orders * 0.25)


def timeline(d: Disruptor, window: float, in_flight: Any) -> list[tuple[float, Any]]:
    """``(at, action)`` pairs; the disruption thread runs them in order, each when its time has come.

    What leaves a message with a dead consumer (a kill, the time limit) comes first: its recovery, the
    visibility timeout and the claim's lease, is the longest; the sandbox's faults follow the thaw.
    """
    kills: list[tuple[float, Any]] = [
        (0.0, lambda: d.set_faults({"busy_pct": 30}, PHASE_S)),
        (PHASE_S, lambda: d.kill_worker("container")),
        (PHASE_S, lambda: d.set_faults({"error_5xx_pct": 30}, PHASE_S)),
        (2 * PHASE_S, lambda: d.kill_worker("runner")),
    ]
    faults: list[tuple[float, Any]] = [
        (0.0, lambda: d.set_faults({"timeout_after_commit_pct": 30, "timeout_mode": "close"}, PHASE_S)),
        (PHASE_S, lambda: d.set_faults({"garbled_pct": 30}, PHASE_S)),
        (2 * PHASE_S, lambda: d.tokens({"expire": "all"})),
        (2 * PHASE_S, lambda: d.outage(OUTAGE_REAL_S)),
        (2 * PHASE_S + OUTAGE_REAL_S, lambda: d.tokens({"refuse": 2})),
        (2 * PHASE_S + OUTAGE_REAL_S, lambda: d.set_faults({"latency_ms": 700}, PHASE_S)),
    ]
    out = [*kills, (2 * PHASE_S + 0.5, lambda: d.lambda_timeout(in_flight)), *faults]
    period = 60.0
    t = period
    while t + period / 2 < window:  # a longer run: the cycle again, a short freeze instead of the time limit
        out += [(t + at, action) for at, action in kills]
        out.append((t + 2 * PHASE_S + 0.5, lambda: d.freeze_aws(5.0, why="short freeze")))
        out += [(t + 2 * PHASE_S + 6.0 + at, action) for at, action in faults]
        t += period
    return out


def _keys(events: list[Event]) -> dict[str, Event]:
    from chalicelib.domain.order_keys import order_key

    return {order_key(e.store_id, e.platform, e.order_id, e.refund_id): e for e in events}


def ledger_records(s: stack_mod.Stack, keys: list[str]) -> dict[str, dict[str, str]]:
    """``order_key → {"status", "updated_at"}`` of the keys the ledger has."""
    from bench.issuing_common import order_record_batches

    ddb = s.client("dynamodb")
    found: dict[str, dict[str, str]] = {}
    fields = ("order_key", "status", "updated_at")
    for records in order_record_batches(ddb, s.env["LEDGER_TABLE"], keys, fields, consistent=True):
        for r in records:
            found[r.get("order_key", "")] = r
    return found


def ledger_statuses(s: stack_mod.Stack, keys: list[str]) -> dict[str, str]:
    return {k: r.get("status", "") for k, r in ledger_records(s, keys).items()}


def _non_final(statuses: dict[str, str]) -> dict[str, str]:
    from chalicelib.domain.order_state import TERMINAL

    final = {s.value for s in TERMINAL}
    return {k: v for k, v in statuses.items() if v not in final}


def settle(s: stack_mod.Stack, journal: Journal, keys: dict[str, Event], limit: float) -> dict[str, Any]:
    """Wait (bounded) until every acknowledged order / refund has a final status and nothing is pending."""
    acked = {p.order_id + "|" + str(p.refund_id) for p in journal.posts if p.acknowledged}
    wanted = [k for k, e in keys.items() if e.order_id + "|" + str(e.refund_id) in acked]
    deadline, started = time.monotonic() + limit, time.monotonic()
    waiting: dict[str, str] = {}
    pending, shown = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            statuses = ledger_statuses(s, wanted)
            waiting = {**_non_final(statuses), **{k: "absent" for k in wanted if k not in statuses}}
            _, invoices = s.admin("/admin/invoices")
            pending = sum(1 for i in invoices.get("invoices", []) if i.get("status") == "pending")
        except Exception as exc:  # the stack still recovering: look again
            waiting = {"?": f"{type(exc).__name__}"}
        if not waiting and pending == 0:
            break
        if time.monotonic() - shown >= PROGRESS_S:
            shown = time.monotonic()
            few = ", ".join(f"{k}={v}" for k, v in list(waiting.items())[:4])
            print(f"settling {shown - started:.0f} s: {len(waiting)} waiting ({few}); {pending} pending in the sandbox",
                  file=sys.stderr, flush=True)  # fmt: skip
        time.sleep(1.0)
    return {"seconds": round(time.monotonic() - started, 1), "waiting": dict(list(waiting.items())[:20]),
            "pending_in_sandbox": pending, "settled": not waiting and pending == 0}  # fmt: skip


def reconcile(s: stack_mod.Stack, journal: Journal) -> None:
    month = datetime.now(CHINA).strftime("%Y-%m")
    for store_id in STORES:
        out = s.state / f"reconcile-{store_id}-{month}.csv"
        journal.cli.append(s.cli("report", "reconcile", "--store", store_id, "--month", month, "--out", str(out)))


def run(orders: int, seed: int, state: Path | None = None, *, keep: bool = False) -> tuple[bool, str, Path]:
    """The whole run; ``(ok, the printed table, the state directory)``."""
    rng = random.Random(seed)
    window = window_for(orders)
    events, sends = plan(orders, seed, window)
    keys = _keys(events)
    with stack_mod.running(state) as s:
        journal = Journal(
            started=time.time(), ended=0.0, orders=orders, stack=s.describe(), known_secrets=known_secrets()
        )
        poster = Poster(s.ports["api"], journal.posts)
        disruptor = Disruptor(s, journal, rng, seed)
        recent: list[str] = [k for k, e in keys.items() if e.kind == "paid" and e.expect == "issue"]

        def in_flight(since: float) -> str | None:
            """An order a live invocation is working on: claimed (``issuing``) since ``since``."""
            posted = [k for k in recent if keys[k].first_seq is not None]
            records = ledger_records(s, posted[-40:]) if posted else {}
            for key, r in records.items():
                with contextlib.suppress(ValueError):
                    if r.get("status") == "issuing" and datetime.fromisoformat(r["updated_at"]).timestamp() >= since:
                        return key
            return None

        t0 = time.monotonic()
        failures: list[str] = []
        chaos_thread = threading.Thread(
            target=_disrupt, args=(timeline(disruptor, window, in_flight), t0, failures), name="disruptions"
        )
        chaos_thread.start()
        _post_all(poster, sends, t0)
        chaos_thread.join()
        disruptor.clear_faults()
        journal.stack["driver_errors"] = failures + poster.errors
        issued = [k for k, v in ledger_statuses(s, list(keys)).items() if v == "issued" and ":refund:" not in k]
        disruptor.dlq_redrive(sorted(issued)[:DLQ_COPIES])
        journal.stack["settle"] = settle(s, journal, keys, SETTLE_LIMIT_S + window)
        disruptor.confirm_timeouts()
        reconcile(s, journal)
        journal.ended = time.time()
        journal.save(s.state / JOURNAL_NAME)
        ok, table = _check(journal, s.state)
        if keep:
            _linger(s, table)
    return ok, table, s.state


def _disrupt(actions: list[tuple[float, Any]], t0: float, failures: list[str]) -> None:
    for at, action in actions:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        try:
            action()
        except Exception as exc:  # one disruption that failed must not stop the run: said at the end
            failures.append(f"disruption at {at:.1f} s: {type(exc).__name__}: {exc}")


def _post_all(poster: Poster, sends: list[Send], t0: float) -> None:
    """Every delivery at its time, each on a thread of its own (a platform's retries block only it)."""
    with ThreadPoolExecutor(POSTERS * 2, thread_name_prefix="platform") as pool:
        for send in sends:
            time.sleep(max(0.0, t0 + send.at - time.monotonic()))
            if send.mode == "first" and send.event.pair:
                barrier = threading.Barrier(2)
                pool.submit(poster.deliver, send.event, "first", barrier)
                pool.submit(poster.deliver, send.event, "concurrent", barrier)
            else:
                pool.submit(poster.deliver, send.event, send.mode)


def _linger(s: stack_mod.Stack, table: str) -> None:
    """``--keep``: for a look at the ledger, the sandbox and the logs, the stack runs until Ctrl-C."""
    print(f"{table}\n\nthe stack keeps running (API {s.api}, AWS {s.aws}, sandbox {s.sandbox}; "
          f"EINVOICE_STATE_DIR={s.state} einvoice …); Ctrl-C stops it", flush=True)  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        while s.process.poll() is None:
            time.sleep(1)


def _check(journal: Journal, state: Path) -> tuple[bool, str]:
    from chaos.check import check
    from chaos.table import render

    report = check(journal)
    table = render(report, journal)
    (state / REPORT_NAME).write_text(json.dumps(asdict(report), ensure_ascii=False, indent=1, default=str))
    return report.ok, table
