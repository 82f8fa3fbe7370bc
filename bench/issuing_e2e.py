"""Part 2 of ``bench/bench_issuing.py``: issuing end to end on the local stack, as ``make run`` starts it.

``python -m infra.localstack`` runs as a subprocess on free loopback ports with ``EINVOICE_STATE_DIR`` in a
temporary directory (as ``tests/e2e/conftest.py`` starts it): moto, the tax sandbox with
``examples/sandbox.json`` (its default issuing delay), ``chalice local`` and the worker runner, each its own
process. N paid orders (``BENCH_E2E_ORDERS``, default 1,000) are posted by 4 concurrent posters (threads,
each with its own keep-alive HTTP connection to the API on 127.0.0.1) as signed Standard Webhooks for the
sample store (the one in the stack's printed sample request; its secret as ``infra.seed`` loads it). The
bench then polls the ledger in the stack's moto every 2 s once posting is done, every 10 s before
(BatchGetItem, projected, of the accepted orders not seen issued yet; see :class:`LedgerPoller`) until
every accepted order is ``issued``, or the time limit
(``BENCH_E2E_LIMIT_S``, default 900 s from the first post) passes. CPU of each stack process — its whole
process group, from ``/proc/<pid>/stat`` (utime + stime, plus reaped children) — is read before the first
post, when the last post is answered and at the end. The stack is always stopped with SIGINT (what Ctrl-C
does), then killed if it does not stop (:mod:`bench.issuing_stack`); nothing is asserted about timings.
From the records, the section (:mod:`bench.issuing_report`) splits the drain into intake (first post →
last answer) and the worker's tail (last answer → last issued) and says which of the two bounds it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from bench.issuing_common import order_record_batches, sample_secret, sandbox_default_delay, signed_webhook
from bench.issuing_stack import CpuSample, Stack, alive, local_stack, sample_cpu

DEFAULT_ORDERS = 1000
POSTERS = 4
LIMIT_S = 900.0
POLL_S = 2.0
POLL_WHILE_POSTING_S = 10.0
FIELDS = ("order_key", "status", "created_at", "updated_at", "issued_at")


# --- posting -------------------------------------------------------------------------------------
@dataclass
class Post:
    order_id: str
    status: int
    latency_s: float
    started: float
    ended: float
    order_key: str = ""
    outcome: str = ""


def post_orders(
    port: int, store_id: str, secret: str, order_ids: list[str], *, posters: int, into: list[Post] | None = None
) -> list[Post]:
    """Post every order, ``posters`` threads each over its own keep-alive connection; each answer is
    appended to ``into`` as it arrives (so the ledger poller sees the accepted orders while posting)."""
    posts: list[Post] = [] if into is None else into

    def poster(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for order_id in order_ids[index::posters]:
            request = signed_webhook(store_id, secret, order_id)  # signed just before sending, not timed
            started, t0 = time.time(), time.perf_counter()
            try:
                conn.request("POST", request.path, body=request.body, headers=request.headers)
                reply = conn.getresponse()
                data, status = reply.read(), reply.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                data, status = repr(exc).encode(), 0
            post = Post(order_id, status, time.perf_counter() - t0, started, time.time())
            with contextlib.suppress(ValueError, AttributeError):
                body = json.loads(data)
                post.order_key, post.outcome = str(body.get("order_key", "")), str(body.get("outcome", ""))
            posts.append(post)  # list.append is atomic: the poller reads the list meanwhile
        conn.close()

    threads = [threading.Thread(target=poster, args=(i,), name=f"poster-{i}") for i in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return posts


# --- the ledger, seen from outside -----------------------------------------------------------------
def _time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class LedgerPoller:
    """The order records of given keys in the stack's moto (status, created_at, issued_at, updated_at).

    BatchGetItem of the keys not yet seen ``issued``, 100 a call, projected: a Query of the store's
    1,000 records costs moto about as much as the stack's own work, and would distort what is measured.
    """

    def __init__(self, stack: Stack) -> None:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=stack.region
        )
        self.ddb = session.client("dynamodb", endpoint_url=stack.aws)
        self.table = stack.env["LEDGER_TABLE"]
        self.issued: dict[str, dict[str, str]] = {}
        self.latest: dict[str, dict[str, str]] = {}
        self.calls, self.poll_s = 0, 0.0

    def update(self, keys: list[str]) -> dict[str, dict[str, str]]:
        """Read the keys not issued yet; returns every record seen ``issued`` so far."""
        started = time.perf_counter()
        todo = [k for k in keys if k not in self.issued]
        for records in order_record_batches(self.ddb, self.table, todo, FIELDS):
            self.calls += 1
            for values in records:
                self.latest[values.get("order_key", "")] = values
                if values.get("status") == "issued":
                    self.issued[values.get("order_key", "")] = values
        self.poll_s += time.perf_counter() - started
        return self.issued

    def statuses(self, keys: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key in keys:
            status = self.latest.get(key, {}).get("status", "absent")
            counts[status] = counts.get(status, 0) + 1
        return counts


# --- the measurement -----------------------------------------------------------------------------
@dataclass
class E2EResult:
    orders: int
    posters: int
    store: str
    delay_s: float
    posts: list[Post]
    issued: dict[str, dict[str, str]]
    first_post: float
    last_answer: float
    observed_all: float | None
    end: float
    samples: list[CpuSample]
    limit_s: float
    statuses: dict[str, int] = field(default_factory=dict)
    startup_s: float = 0.0
    note: str = ""
    stopped: bool = False  # every stack process gone once the stack was stopped
    polls: int = 0
    poll_s: float = 0.0
    poll_every_s: float = POLL_S
    first_check_s: float = 0.0  # the worker's first look at an accepted request: no order is issued sooner

    @property
    def accepted(self) -> list[Post]:
        return [p for p in self.posts if p.status // 100 == 2 and p.outcome == "queued"]

    @property
    def drained(self) -> bool:
        return self.observed_all is not None

    def last_issued(self) -> float | None:
        times = [_time(r.get("updated_at")) for r in self.issued.values()]
        known = [t for t in times if t is not None]
        return max(known) if known else None

    @property
    def intake_s(self) -> float:
        """Intake's own duration: first post sent → last answer read."""
        return max(1e-9, self.last_answer - self.first_post)

    @property
    def webhooks_per_s(self) -> float:
        return len(self.posts) / self.intake_s

    @property
    def drain_s(self) -> float | None:
        """First post → the ledger's last ``issued`` write; None when not every accepted order was issued."""
        last = self.last_issued()
        return (last - self.first_post) if (self.drained and last is not None) else None

    @property
    def backlog(self) -> int:
        """Accepted orders not issued yet (by the ledger's ``issued`` write) when the last post was answered."""
        times = [_time(r.get("updated_at")) for r in self.issued.values()]
        return len(self.accepted) - sum(1 for t in times if t is not None and t <= self.last_answer)

    def lags(self, end_field: str) -> list[float]:
        lags = []
        for record in self.issued.values():
            start, end = _time(record.get("created_at")), _time(record.get(end_field))
            if start is not None and end is not None:
                lags.append(end - start)
        return lags


def first_check_seconds() -> float:
    """The stage default the stack's worker uses (``FIRST_CHECK_SECONDS``; the sample store sets none)."""
    from chalicelib.config import FIRST_CHECK_SECONDS

    return float(os.environ.get("FIRST_CHECK_SECONDS", FIRST_CHECK_SECONDS))


def measure(
    orders: int = DEFAULT_ORDERS, posters: int = POSTERS, limit_s: float | None = None, poll_s: float = POLL_S
) -> E2EResult:
    """Start the stack, post ``orders``, wait (bounded) until each accepted order is issued, stop the stack."""
    limit = limit_s if limit_s is not None else float(os.environ.get("BENCH_E2E_LIMIT_S", LIMIT_S))
    started = time.perf_counter()
    with local_stack() as stack:
        startup = time.perf_counter() - started
        poller = LedgerPoller(stack)
        secret = sample_secret(stack.sample_store)
        tag = uuid.uuid4().hex[:6].upper()
        order_ids = [f"E2E-{tag}-{i:05d}" for i in range(orders)]
        posts: list[Post] = []
        samples = [sample_cpu(stack)]
        first_post = time.time()

        def post_all() -> None:
            try:
                post_orders(stack.api_port, stack.sample_store, secret, order_ids, posters=posters, into=posts)
            finally:
                samples.append(sample_cpu(stack))  # the posting window ends with the last answer

        poster = threading.Thread(target=post_all, name="posters")
        poster.start()
        deadline = first_post + limit
        keys: list[str] = []
        observed_all: float | None = None
        note = ""
        last_poll = time.time()
        while time.time() < deadline:
            time.sleep(0.25)
            posting = poster.is_alive()
            # Rarely while posting (the drain is timed from the records, not from when the poller saw them):
            # the poller's reads are served by the moto that is being measured.
            if time.time() - last_poll < (POLL_WHILE_POSTING_S if posting else poll_s):
                continue
            last_poll = time.time()
            if stack.process.poll() is not None:
                note = f"the stack stopped by itself (exit {stack.process.returncode})"
                break
            keys = [p.order_key for p in list(posts) if p.status // 100 == 2 and p.outcome == "queued"]
            issued = poller.update(keys)
            if not posting and len(issued) >= len(keys):
                observed_all = time.time()
                break
        poster.join()
        samples.append(sample_cpu(stack))
        last_answer = max((p.ended for p in posts), default=first_post)
        result = E2EResult(
            orders=orders,
            posters=posters,
            store=stack.sample_store,
            delay_s=sandbox_default_delay(),
            posts=posts,
            issued={k: poller.issued[k] for k in keys if k in poller.issued},
            first_post=first_post,
            last_answer=last_answer,
            observed_all=observed_all,
            end=time.time(),
            samples=samples,
            limit_s=limit,
            statuses=poller.statuses(keys),
            startup_s=startup,
            note=note,
            polls=poller.calls,
            poll_s=poller.poll_s,
            poll_every_s=poll_s,
            first_check_s=first_check_seconds(),
        )
    result.stopped = not any(alive(pid) for pid in [stack.process.pid, *stack.pids.values()])
    return result
