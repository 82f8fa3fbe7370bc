"""The load run of ``bench/bench_load.py``: an open-loop webhook load against the local stack, bounded.

``python -m infra.localstack`` is started on free loopback ports (:func:`bench.issuing_stack.local_stack`,
as ``bench/issuing_e2e.py`` does). ``rate × seconds`` paid orders for the sample store are signed up front
(:func:`bench.issuing_common.signed_webhook`, re-signed just in time only if one would be older than
``RESIGN_AFTER_S`` when sent: the webhook tolerance is 300 s) and scheduled at ``t0 + i / rate``. A pool of
``connections`` sender threads, each with its own keep-alive connection to 127.0.0.1, takes the requests in
order and sends each at its scheduled time — or as soon as a sender is free, when all are busy: the
in-flight requests are capped at ``connections``, and a request sent late keeps its scheduled time, so the
latency from the schedule includes the wait (no coordinated omission). Nothing is sent later than
``GRACE_S`` after the schedule's end: such requests are counted as *not sent*. Then the ledger is polled
(:class:`bench.issuing_e2e.LedgerPoller`) until every accepted order is ``issued`` or ``drain_limit_s``
after the last answer has passed; the stack is stopped (SIGINT) in every case.

Meanwhile a sampler thread records, every ``sample_s``: the CPU of each stack process group and of this
process (:func:`bench.issuing_stack.sample_cpu`) and the issue and deliver queues' depth
(``ApproximateNumberOfMessages``, ``…NotVisible``, ``…Delayed``: three GetQueueAttributes calls a sample,
served by the moto that is measured). Explicit CPU samples mark the windows: before the first send, at the
last answer (*intake*), at the end (*drain*).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.issuing_common import SignedWebhook, sample_secret, sandbox_default_delay, signed_webhook, tree_label
from bench.issuing_e2e import LedgerPoller, _time, first_check_seconds, post_orders
from bench.issuing_stack import CpuSample, Stack, alive, local_stack, sample_cpu

RATE = 30.0
SECONDS = 40.0
CONNECTIONS = 16
GRACE_S = 30.0
DRAIN_LIMIT_S = 300.0
SAMPLE_S = 2.0
POLL_WHILE_POSTING_S = 10.0
POLL_S = 2.0
RESIGN_AFTER_S = 240.0
WARMUP = 4  # orders issued before the run, so cold starts (imports, first clients, tokens) stay out of it
WARMUP_LIMIT_S = 90.0
LATE_S = 0.1  # a request sent more than this after its scheduled time waited for a free sender
QUEUES = {"issue": "ISSUE_QUEUE_URL", "deliver": "DELIVER_QUEUE_URL"}


@dataclass
class Shot:
    """One scheduled webhook and what became of it (times are ``time.time()``)."""

    index: int
    order_id: str
    scheduled: float
    sent: float | None = None
    answered: float | None = None
    status: int = 0  # 0: transport error (or not sent)
    outcome: str = ""
    order_key: str = ""

    @property
    def latency_s(self) -> float | None:
        """Scheduled time → answer: what an open-loop client sees, waiting for a free sender included."""
        return None if self.answered is None else self.answered - self.scheduled

    @property
    def service_s(self) -> float | None:
        """Request sent → answer read."""
        return None if self.answered is None or self.sent is None else self.answered - self.sent

    @property
    def queued(self) -> bool:
        return self.status // 100 == 2 and self.outcome == "queued"


@dataclass
class QueueSample:
    at: float
    depth: dict[str, tuple[int, int, int]]  # queue → (visible, in flight, delayed)


@dataclass
class LoadResult:
    rate: float
    seconds: float
    connections: int
    store: str
    shots: list[Shot]
    issued: dict[str, dict[str, str]]
    statuses: dict[str, int]
    marks: list[CpuSample]  # before the first send, at the last answer, at the end
    samples: list[CpuSample]  # every sample_s
    queues: list[QueueSample]
    t0: float
    drain_limit_s: float
    sample_s: float
    delay_s: float
    first_check_s: float
    tree: str
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    startup_s: float = 0.0
    drained_at: float | None = None
    polls: int = 0
    note: str = ""
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> list[Shot]:
        return [s for s in self.shots if s.answered is not None and s.status]

    @property
    def accepted(self) -> list[Shot]:
        return [s for s in self.shots if s.queued]

    @property
    def first_send(self) -> float:
        return min((s.sent for s in self.shots if s.sent is not None), default=self.t0)

    @property
    def last_answer(self) -> float:
        return max((s.answered for s in self.shots if s.answered is not None), default=self.t0)

    @property
    def intake_s(self) -> float:
        return max(1e-9, self.last_answer - self.first_send)

    @property
    def achieved_per_s(self) -> float:
        """Webhooks answered (any HTTP status) per second of intake (first send → last answer)."""
        return len(self.answered) / self.intake_s

    def lags(self, end_field: str) -> list[float]:
        """Per issued order: the webhook's send time → the record's ``end_field`` (seconds)."""
        sent = {s.order_key: s.sent for s in self.shots if s.order_key and s.sent is not None}
        out = []
        for key, record in self.issued.items():
            end, start = _time(record.get(end_field)), sent.get(key)
            if end is not None and start is not None:
                out.append(end - start)
        return out

    def last_issued(self) -> float | None:
        times = [t for t in (_time(r.get("updated_at")) for r in self.issued.values()) if t is not None]
        return max(times) if times else None


# --- the load generator --------------------------------------------------------------------------
class Senders:
    """``connections`` threads sending the shots in order, each at its scheduled time or when free."""

    def __init__(self, port: int, shots: list[Shot], requests: list[SignedWebhook], resign: Any, connections: int):
        self.port, self.shots, self.requests, self.resign = port, shots, requests, resign
        self.signed_at = time.time()
        self.cutoff = (shots[-1].scheduled if shots else time.time()) + GRACE_S
        self._next = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, name=f"sender-{i}", daemon=True) for i in range(connections)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def _take(self) -> Shot | None:
        with self._lock:
            if self._next >= len(self.shots):
                return None
            shot = self.shots[self._next]
            self._next += 1
            return shot

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while (shot := self._take()) is not None:
            wait = shot.scheduled - time.time()
            if wait > 0:
                time.sleep(wait)
            if time.time() > self.cutoff:
                continue  # never sent: counted as such
            request = self.requests[shot.index]
            if time.time() - self.signed_at > RESIGN_AFTER_S:
                request = self.resign(shot.order_id)
            shot.sent = time.time()
            try:
                conn.request("POST", request.path, body=request.body, headers=request.headers)
                reply = conn.getresponse()
                data, shot.status = reply.read(), reply.status
            except (OSError, http.client.HTTPException):
                conn.close()
                data, shot.status = b"", 0
            shot.answered = time.time()
            with contextlib.suppress(ValueError, AttributeError):
                body = json.loads(data)
                shot.outcome = str(body.get("outcome") or body.get("error") or "")  # the error code of a refusal
                shot.order_key = str(body.get("order_key", ""))
        conn.close()


class Sampler:
    """CPU of every process group and the queues' depth, every ``every`` seconds, in a thread."""

    def __init__(self, stack: Stack, every: float) -> None:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=stack.region
        )
        self.sqs = session.client("sqs", endpoint_url=stack.aws)
        self.urls = {name: stack.env[var] for name, var in QUEUES.items() if var in stack.env}
        self.stack, self.every = stack, every
        self.cpu: list[CpuSample] = []
        self.queues: list[QueueSample] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def depth(self) -> QueueSample:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        depth: dict[str, tuple[int, int, int]] = {}
        for name, url in self.urls.items():
            try:
                a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
                depth[name] = (int(a.get(names[0], 0)), int(a.get(names[1], 0)), int(a.get(names[2], 0)))
            except Exception:  # a missed sample is shown as a gap, not a failed run
                continue
        return QueueSample(time.time(), depth)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            self.cpu.append(sample_cpu(self.stack))
            self.queues.append(self.depth())
            self._stop.wait(max(0.0, self.every - (time.time() - started)))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


def warm_up(stack: Stack, secret: str, tag: str, poller: LedgerPoller) -> str:
    """Post ``WARMUP`` orders over one connection and wait (bounded) until they are issued."""
    started = time.time()
    ids = [f"WARM-{tag}-{i}" for i in range(WARMUP)]
    posts = post_orders(stack.api_port, stack.sample_store, secret, ids, posters=1)
    keys = [p.order_key for p in posts if p.status // 100 == 2 and p.outcome == "queued"]
    while time.time() - started < WARMUP_LIMIT_S and len(poller.update(keys)) < len(keys):
        time.sleep(0.5)
    return f"{len(poller.issued)} of {WARMUP} warm-up orders issued in {time.time() - started:.0f} s"


def refusal_causes(log: Path) -> dict[str, int]:
    """The API's ``cannot accept now`` log lines (what each 503 was), by detail with the numbers taken out."""
    causes: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if "cannot accept now" not in line:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line[line.index("{") :])
                causes[re.sub(r"\d+(\.\d+)?", "N", str(record.get("detail") or record.get("code")))] += 1
    return dict(causes.most_common(5))


def _keys(shots: list[Shot]) -> list[str]:
    return [s.order_key for s in list(shots) if s.queued and s.order_key]


def measure(
    rate: float = RATE,
    seconds: float = SECONDS,
    *,
    connections: int = CONNECTIONS,
    drain_limit_s: float = DRAIN_LIMIT_S,
    sample_s: float = SAMPLE_S,
) -> LoadResult:
    """Start the stack, run the open-loop load, wait (bounded) for the ledger to drain, stop the stack."""
    if rate <= 0 or seconds <= 0 or connections < 1:
        raise ValueError("rate and seconds must be positive, connections at least 1")
    load_start = os.getloadavg()
    started = time.perf_counter()
    with local_stack() as stack:
        startup = time.perf_counter() - started
        secret = sample_secret(stack.sample_store)
        tag = uuid.uuid4().hex[:6].upper()
        n = max(1, round(rate * seconds))
        ids = [f"LOAD-{tag}-{i:06d}" for i in range(n)]
        requests = [signed_webhook(stack.sample_store, secret, order_id) for order_id in ids]
        poller, sampler = LedgerPoller(stack), Sampler(stack, sample_s)
        warm = warm_up(stack, secret, tag, LedgerPoller(stack))
        sampler.start()
        marks = [sample_cpu(stack)]
        t0 = time.time() + 0.2
        shots = [Shot(i, order_id, t0 + i / rate) for i, order_id in enumerate(ids)]
        senders = Senders(
            stack.api_port, shots, requests, lambda oid: signed_webhook(stack.sample_store, secret, oid), connections
        )
        senders.start()
        note, last_poll = "", time.time()
        while senders.alive():
            time.sleep(0.25)
            if time.time() - last_poll >= POLL_WHILE_POSTING_S:
                last_poll = time.time()
                poller.update(_keys(shots))
        senders.join()
        marks.append(sample_cpu(stack))
        keys = _keys(shots)
        last_answer = max((s.answered for s in shots if s.answered is not None), default=t0)
        deadline = last_answer + drain_limit_s
        drained_at: float | None = None
        while time.time() < deadline:
            if stack.process.poll() is not None:
                note = f"the stack stopped by itself (exit {stack.process.returncode})"
                break
            if len(poller.update(keys)) >= len(keys):
                drained_at = time.time()
                break
            time.sleep(POLL_S)
        marks.append(sample_cpu(stack))
        sampler.stop()
        causes = refusal_causes(stack.state / "api.log")
        result = LoadResult(
            rate=rate,
            seconds=seconds,
            connections=connections,
            store=stack.sample_store,
            shots=shots,
            issued={k: poller.issued[k] for k in keys if k in poller.issued},
            statuses=poller.statuses(keys),
            marks=marks,
            samples=sampler.cpu,
            queues=sampler.queues,
            t0=t0,
            drain_limit_s=drain_limit_s,
            sample_s=sample_s,
            delay_s=sandbox_default_delay(),
            first_check_s=first_check_seconds(),
            tree=tree_label(),
            load_start=load_start,
            startup_s=startup,
            drained_at=drained_at,
            polls=poller.calls,
            note=note,
            extra={"warm-up": warm, "refusals": causes},
        )
    result.stopped = not any(alive(pid) for pid in [stack.process.pid, *stack.pids.values()])
    result.load_end = os.getloadavg()
    return result
