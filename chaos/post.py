"""Posting as the platforms do: each delivery an HTTP attempt, re-posted on a 5xx or no answer.

Every attempt becomes one :class:`chaos.journal.Post` (a re-post ``duplicate_of`` the event's first
post). Platforms retry with backoff for hours; here a delivery is retried ``RETRIES`` times, 1 s, 2 s,
4 s … apart (capped at ``MAX_BACKOFF_S``), long enough to outlast the run's AWS freezes and outages.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from typing import Any

from chaos.journal import Post
from chaos.workload import Event, event_id, signature_values
from infra.webhook_samples import SignedRequest

RETRIES = 8
MAX_BACKOFF_S = 12.0
HTTP_TIMEOUT_S = 10.0


class Poster:
    def __init__(self, port: int, posts: list[Post]) -> None:
        self.port = port
        self.posts = posts
        self.lock = threading.Lock()
        self.seq = 0
        self.local = threading.local()
        self.errors: list[str] = []

    def _next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)
            self.local.conn = conn
        return conn

    def _attempt(self, request: SignedRequest, path: str) -> tuple[int | None, dict[str, Any] | None]:
        conn = self._conn()
        try:
            conn.request("POST", path, body=request.body, headers=request.headers)
            reply = conn.getresponse()
            data, status = reply.read(), reply.status
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            return None, None
        try:
            parsed = json.loads(data)
            body = parsed if isinstance(parsed, dict) else {"value": parsed}
        except ValueError:
            body = {"text": data.decode(errors="replace")[:200]}
        return status, body

    def deliver(self, event: Event, mode: str, barrier: threading.Barrier | None = None) -> None:
        """One delivery of ``event`` (``mode`` as in :class:`chaos.workload.Send`), with the platform's retries."""
        try:
            self._deliver(event, mode, barrier)
        except Exception as exc:  # a bug of the driver: said at the end of the run, never swallowed
            with self.lock:
                self.errors.append(f"{event.kind} {event.order_id} {mode}: {type(exc).__name__}: {exc}")
            event.sent.set()

    def _deliver(self, event: Event, mode: str, barrier: threading.Barrier | None) -> None:
        if mode in ("repeat", "resign"):
            event.sent.wait(timeout=120)
        if mode == "resign":
            request = event.sign()  # the same order / refund, a new event id and signature
        else:
            with self.lock:
                if event.first_request is None:
                    event.first_request = event.sign()
                request = event.first_request
        duplicate_of: int | None = None
        if barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)
        backoff = 1.0
        for attempt in range(RETRIES + 1):
            seq = self._next_seq()
            with self.lock:
                if event.first_seq is None:
                    event.first_seq = seq
                else:
                    duplicate_of = event.first_seq
            post = Post(
                seq=seq, kind=event.kind, store_id=event.store_id, platform=event.platform,
                order_id=event.order_id, event_id=event_id(request), refund_id=event.refund_id,
                amount=str(event.amount), lines=[line.to_json() for line in event.lines],
                duplicate_of=duplicate_of, resigned=mode == "resign",
                concurrent=barrier is not None and attempt == 0,
                signature_values=signature_values(request),
                buyer_tax_id=(event.buyer or {}).get("tax_id"), expect=event.expect,
            )  # fmt: skip
            post.started = time.time()
            post.status, post.reply = self._attempt(request, event.path)
            post.ended = time.time()
            with self.lock:
                self.posts.append(post)
            if attempt == 0 and duplicate_of is None:
                event.sent.set()
            if post.status is not None and post.status < 500:
                break
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        event.sent.set()
