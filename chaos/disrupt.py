"""The disruptions of a chaos run, each recorded as a :class:`chaos.journal.Disruption`.

- sandbox fault phases (``POST /admin/faults``: busy, 5xx, timeout after commit, garbled, latency);
- the 2-hour outage on the sandbox clock (``POST /admin/outage``, ended by advancing the clock);
- Nuonuo token expiry and refusal (``POST /admin/tokens``);
- the worker killed: the runner's whole process group, or one of its containers (``make run`` restarts);
- the embedded AWS frozen (SIGSTOP … SIGCONT of moto's process group): unreachable, then back with its data
  (a real restart of moto would lose every table and queue, which AWS never does);
- the Lambda time limit: an invocation caught mid-way by a freeze longer than the limit is killed by the
  local runner ("Task timed out");
- the dead-letter queue: copies of real issue messages put on it, listed and redriven with the CLI.

Sandbox routes another change adds are feature-detected: a 404 records the disruption as not applied.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from chaos.journal import Disruption, Journal
from chaos.stack import Stack, worker_timeout
from infra.stack_process import group

OUTAGE_SECONDS = 7200
FAULT_SEED_BASE = 1000


class Disruptor:
    def __init__(self, stack: Stack, journal: Journal, rng: random.Random, seed: int) -> None:
        self.stack, self.journal, self.rng, self.seed = stack, journal, rng, seed
        self.lock = threading.Lock()
        self.faults: Disruption | None = None
        self.phases = 0

    def _record(self, what: str, detail: dict[str, Any], *, at: float | None = None) -> Disruption:
        d = Disruption(at=at or time.time(), until=None, what=what, detail=detail)
        with self.lock:
            self.journal.disruptions.append(d)
        return d

    # --- the sandbox ----------------------------------------------------------------------------
    def set_faults(self, settings: dict[str, Any], seconds: float) -> None:
        """One fault phase for ``seconds``, then no faults."""
        self.phases += 1
        full = {"seed": self.seed * FAULT_SEED_BASE + self.phases, "only": [], **settings}
        status, shown = self.stack.admin("/admin/faults", full)
        d = self._record("sandbox_faults", {**full, "applied": status == 200, "reply": shown if status != 200 else {}})
        time.sleep(seconds)
        self.clear_faults()
        d.until = time.time()

    def clear_faults(self) -> None:
        self.stack.admin(
            "/admin/faults",
            {"busy_pct": 0, "error_5xx_pct": 0, "latency_ms": 0, "timeout_after_commit_pct": 0, "garbled_pct": 0,
             "timeout_mode": "close", "only": []},
        )  # fmt: skip

    def outage(self, real_seconds: float) -> None:
        """A 2-hour outage on the sandbox clock: started, some real seconds, then the clock advanced past it."""
        status, reply = self.stack.admin("/admin/outage", {"seconds": OUTAGE_SECONDS})
        d = self._record("sandbox_outage", {"seconds": OUTAGE_SECONDS, "real_seconds": real_seconds,
                                            "applied": status == 200, "reply": reply})  # fmt: skip
        time.sleep(real_seconds)
        if status == 200:
            _, clock = self.stack.admin("/admin/clock", {"advance": OUTAGE_SECONDS})
            d.detail["clock"] = clock
        d.until = time.time()

    def tokens(self, payload: dict[str, Any]) -> None:
        what = "token_expire" if "expire" in payload else "token_refuse"
        status, reply = self.stack.admin("/admin/tokens", payload)
        self._record(what, {**payload, "applied": status == 200, "reply": reply})

    # --- processes ------------------------------------------------------------------------------
    def kill_worker(self, target: str = "runner") -> None:
        """SIGKILL the worker runner's process group, or one of its containers (``target="container"``)."""
        pid = self.stack.pids().get("worker")
        if pid is None:
            self._record("worker_kill", {"target": target, "applied": False, "why": "no worker in pids.json"})
            return
        members = sorted(group(pid) - {pid})
        if target == "container" and members:
            victim = self.rng.choice(members)
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            self._record("worker_kill", {"target": "container", "pid": victim, "runner": pid, "applied": True})
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self._record("worker_kill", {"target": "runner", "pid": pid, "containers": members, "applied": True})

    def freeze_aws(self, seconds: float, *, why: str = "") -> Disruption:
        """SIGSTOP moto's process group for ``seconds``, then SIGCONT: AWS unreachable, then back with its data."""
        pid = self.stack.pids().get("aws")
        d = self._record("aws_freeze", {"seconds": seconds, "pid": pid, "why": why, "applied": pid is not None})
        if pid is None:
            return d
        frozen = self.stack.state / "frozen.json"
        frozen.write_text(json.dumps([pid]))  # the stop path thaws it if this run dies meanwhile
        try:
            os.killpg(pid, signal.SIGSTOP)
            time.sleep(seconds)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)
            frozen.unlink(missing_ok=True)
        d.until = time.time()
        return d

    def lambda_timeout(self, in_flight: Callable[[float], str | None]) -> None:
        """An invocation killed at the Lambda time limit: tax calls slowed so an invocation is surely busy,
        then AWS frozen for longer than the limit while it runs; the runner kills it at the limit."""
        limit = worker_timeout()
        since = time.time()
        self.stack.admin("/admin/faults", {"latency_ms": 2000, "seed": self.seed, "only": []})
        deadline, key = time.monotonic() + 15, None
        while time.monotonic() < deadline and key is None:
            key = in_flight(since)
            if key is None:
                time.sleep(0.2)
        d = self._record("lambda_timeout", {"limit_seconds": limit, "in_flight": key, "freeze_seconds": limit + 3})
        try:
            self.freeze_aws(limit + 3, why="lambda_timeout")
        finally:
            self.clear_faults()
        d.until = time.time()

    def confirm_timeouts(self) -> None:
        """The worker log's "Task timed out" lines, on the lambda_timeout disruptions."""
        lines = [line for line in self.stack.log("worker").splitlines() if "Task timed out" in line]
        for d in self.journal.disruptions:
            if d.what == "lambda_timeout":
                d.detail["worker_log"] = lines[:5]
                d.detail["killed"] = bool(lines)

    # --- the dead-letter queue ------------------------------------------------------------------
    def dlq_redrive(self, keys: list[str]) -> None:
        """Copies of real issue messages (``{"order_key", "kind": "paid"}``, the bodies the redrive policy
        would move) put on the DLQ, then ``einvoice dlq list`` and ``einvoice dlq redrive``."""
        sqs = self.stack.client("sqs")
        url = self.stack.env.get("ISSUE_DLQ_URL", "")
        for key in keys:
            sqs.send_message(
                QueueUrl=url, MessageBody=json.dumps({"order_key": key, "kind": "paid"}, separators=(",", ":"))
            )
        listed = self.stack.cli("dlq", "list")
        redriven = self.stack.cli("dlq", "redrive")
        self.journal.cli.extend([listed, redriven])
        shown = sum(1 for key in keys if key[:40] in listed["stdout"] or key in listed["stdout"].replace("\n", ""))
        self._record(
            "dlq_redrive",
            {
                "keys": keys,
                "listed": shown,
                "list_rc": listed["rc"],
                "redrive_rc": redriven["rc"],
                "applied": bool(url),
            },
        )
