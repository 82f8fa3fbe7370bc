"""Run the SQS worker locally the way Lambda runs it: long-poll the queue, invoke ``app:worker`` in warm containers.

``chalice local`` runs no SQS handlers, so ``make run`` starts this loop beside it. It behaves like the
Lambda SQS event source with ``ReportBatchItemFailures``: messages the handler lists in
``batchItemFailures`` stay on the queue untouched (and reach the DLQ after ``maxReceiveCount``
receives); the others are deleted; an invocation that raises, crashes or times out leaves the whole
batch, which reappears after the queue's visibility timeout. The runner never changes a message's
visibility: the handler may do so itself (a retry schedule, handing back what it has no time for).

    python -m infra.worker_runner [--handler app:worker] [--concurrency 4] [--timeout 60] [--once]

The model, as in Lambda:

- **concurrency**: N pollers (``--concurrency`` / ``EINVOICE_WORKER_CONCURRENCY``, default 4), each
  receiving up to ``WORKER_BATCH_SIZE`` messages and handing the batch to its own container;
- **containers** (``infra/lambda_local.py``): a long-lived child interpreter per poller that imports
  the handler once and serves its invocations, so a timed-out or crashed one can be killed;
- **timeout** (``--timeout`` / ``EINVOICE_WORKER_TIMEOUT``, default ``WORKER_TIMEOUT_SECONDS``): the
  context's ``get_remaining_time_in_millis()`` counts down to the deadline; an invocation that has not
  answered by then is killed with its container ("Task timed out after N seconds") and the next
  batch gets a new one, as does the batch after a crash. Python cannot kill a thread: hence processes.

A callable ``handler`` (tests, debugging) is invoked in this process instead: no container, no kill.
SIGTERM / SIGINT: stop receiving, give in-flight invocations ``SHUTDOWN_GRACE_SECONDS`` to finish,
then abandon them (their messages reappear after the visibility timeout) and stop the containers.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from chalicelib.config import WORKER_BATCH_SIZE, WORKER_TIMEOUT_SECONDS
from infra.lambda_local import (  # re-exported: the runner's public names since before the split
    DEFAULT_HANDLER,
    FUNCTION_NAME,
    ROOT,
    Container,
    ContainerError,
    FakeLambdaContext,
    InProcess,
    Invoker,
    batch_failures,
    concurrency_from_env,
    load_dotted,
    sqs_event,
    timeout_from_env,
)

#: On SIGTERM/SIGINT, how long in-flight invocations may still run (below `make run`'s 10 s to SIGKILL).
SHUTDOWN_GRACE_SECONDS = 5.0

__all__ = [
    "ROOT",
    "Container",
    "ContainerError",
    "FakeLambdaContext",
    "WorkerRunner",
    "batch_failures",
    "concurrency_from_env",
    "load_dotted",
    "sqs_event",
    "timeout_from_env",
]


class _Slot:
    """One unit of concurrency: a poller and its container."""

    def __init__(self, index: int, invoker: Invoker) -> None:
        self.index = index
        self.invoker = invoker
        self.idle = threading.Event()
        self.idle.set()


class WorkerRunner:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: str | Callable[[dict[str, Any], FakeLambdaContext], Any] = DEFAULT_HANDLER,
        *,
        wait_seconds: int = 5,
        timeout: float = WORKER_TIMEOUT_SECONDS,
        concurrency: int = 1,
        batch_size: int = WORKER_BATCH_SIZE,
        function_name: str = FUNCTION_NAME,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.timeout = timeout
        self.batch_size = batch_size
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.queue_arn = attrs["QueueArn"]
        self.region = sqs.meta.region_name

        def invoker() -> Invoker:
            if isinstance(handler, str):
                return Container(handler, function_name)
            return InProcess(handler, function_name)

        self.slots = [_Slot(i, invoker()) for i in range(concurrency)]
        self.stopping = threading.Event()
        self._abandon = threading.Event()
        self._lock = threading.RLock()  # re-entrant: stop() runs in a signal handler

    @staticmethod
    def say(line: str) -> None:
        print(line, flush=True)

    def poll_once(self, slot: int = 0) -> tuple[int, int]:
        """One receive + invoke + settle on one slot. Returns (received, failed)."""
        s = self.slots[slot]
        cold = s.invoker.warm()
        if cold is not None:
            self.say(f"worker[{slot}]: cold start in {cold:.2f} s")
        reply = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            return 0, 0
        with self._lock:
            if self.stopping.is_set():
                self._release(messages)
                return 0, 0
            s.idle.clear()
        try:
            return self._invoke(s, messages)
        finally:
            s.idle.set()

    def _invoke(self, slot: _Slot, messages: list[dict[str, Any]]) -> tuple[int, int]:
        n, request_id, started = len(messages), str(uuid.uuid4()), time.monotonic()
        outcome = slot.invoker.invoke(sqs_event(messages, self.queue_arn, self.region), self.timeout, request_id)
        took = f"{time.monotonic() - started:.2f} s"
        tag = f"worker[{slot.index}]: request {request_id}"
        if outcome.lost:
            why = "abandoned at shutdown" if self.stopping.is_set() else outcome.lost
            self.say(f"{tag}: {why}; batch of {n} left on the queue; container replaced")
            return n, n
        if outcome.error:
            self.say(f"{tag}: batch of {n} failed in {took}: {outcome.error}")
            return n, n
        failed = batch_failures(outcome.result, [m["MessageId"] for m in messages])
        if failed is None:
            self.say(f"{tag}: batch of {n}: invalid batchItemFailures {outcome.result!r}; whole batch left")
            return n, n
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            deleted = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            for miss in deleted.get("Failed", []):
                self.say(f"{tag}: could not delete a message: {miss.get('Code')} {miss.get('Message', '')}")
        self.say(f"{tag}: batch of {n}, {len(failed)} failed, {took}")
        return n, len(failed)

    def _release(self, messages: list[dict[str, Any]]) -> None:
        """Messages received as the runner stops, never handed to the handler: visible again at once."""
        self.sqs.change_message_visibility_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )

    def _poll_loop(self, slot: _Slot) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                self.poll_once(slot.index)
                backoff = 1.0
            except ContainerError as exc:
                if self.stopping.is_set():
                    return
                self.say(f"worker[{slot.index}]: {exc}; trying again in {backoff:.0f} s")
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:  # the embedded AWS went away: report and retry shortly
                self.say(f"worker[{slot.index}]: cannot poll the queue: {exc}")
                self.stopping.wait(1)

    def run(self) -> None:
        """Poll with every slot until stop(); then let in-flight invocations finish (or abandon them)."""
        for slot in self.slots:
            threading.Thread(target=self._poll_loop, args=(slot,), name=f"poller-{slot.index}", daemon=True).start()
        while not self.stopping.wait(0.5):
            pass
        grace_ends = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        busy = [s for s in self.slots if not s.idle.is_set()]
        if busy:
            self.say(f"worker: stopping; waiting up to {SHUTDOWN_GRACE_SECONDS:.0f} s for {len(busy)} invocation(s)")
        while busy and time.monotonic() < grace_ends and not self._abandon.is_set():
            time.sleep(0.1)
            busy = [s for s in busy if not s.idle.is_set()]
        if busy:
            self.say(
                f"worker: abandoning {len(busy)} invocation(s); their batches reappear after the visibility timeout"
            )
            for slot in busy:
                slot.invoker.abort()
        self.close()

    def stop(self) -> None:
        """Stop receiving (a second call: abandon in-flight invocations at once)."""
        with self._lock:
            if self.stopping.is_set():
                self._abandon.set()
            self.stopping.set()

    def close(self) -> None:
        for slot in self.slots:
            slot.invoker.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.worker_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--handler", default=DEFAULT_HANDLER, help="module:function (default %(default)s)")
    parser.add_argument("--queue-url", default=os.environ.get("ISSUE_QUEUE_URL"), help="default $ISSUE_QUEUE_URL")
    parser.add_argument("--concurrency", type=int, default=concurrency_from_env(), help="pollers (default 4)")
    parser.add_argument(
        "--timeout", type=float, default=timeout_from_env(), help="seconds an invocation may run before it is killed"
    )
    parser.add_argument("--wait", type=int, default=5, help="long-poll seconds")
    parser.add_argument("--once", action="store_true", help="process at most one batch and exit")
    args = parser.parse_args(argv)
    if not args.queue_url:
        parser.error("no queue: set ISSUE_QUEUE_URL or pass --queue-url")
    import boto3
    from botocore.config import Config

    sqs = boto3.client("sqs", config=Config(max_pool_connections=max(10, args.concurrency + 2)))
    runner = WorkerRunner(
        sqs,
        args.queue_url,
        args.handler,
        wait_seconds=args.wait,
        timeout=args.timeout,
        concurrency=1 if args.once else args.concurrency,
    )

    def stop(*_: object) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"worker: {args.handler} × {len(runner.slots)}, batches of ≤ {runner.batch_size}, timeout {args.timeout:g} s, "
        f"long-polling {args.queue_url}",
        flush=True,
    )
    if args.once:
        try:
            runner.poll_once()
        finally:
            runner.close()
    else:
        runner.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
