"""Lambda's execution environment, locally: the context object, the SQS event shape, and containers.

A **container** is a long-lived child interpreter (``python -m infra.lambda_local HANDLER``) that
imports the handler once (the cold start) and then serves invocations one at a time: the event and its
deadline go in as a JSON line on its stdin, the result comes back as a JSON line on a second pipe, so
whatever the handler prints (Powertools' JSON logs) goes to the parent's output, as it goes to
CloudWatch Logs. A fresh interpreter through ``subprocess`` rather than ``multiprocessing``: nothing of
the parent (its boto3 client, threads, ``__main__``) is inherited or pickled, the handler is named by a
dotted path exactly as Lambda names it, and the protocol is plain JSON like the Lambda runtime API's.
An invocation that has not answered by its deadline is killed with its container ("Task timed out"),
as Lambda does; Python cannot kill a thread, hence processes. Used by the worker runner and the
scheduler (``infra/worker_runner.py``, ``infra/scheduler.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from chalicelib.config import WORKER_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HANDLER = "app:worker"
FUNCTION_NAME = "einvoice-local-worker"
#: How long a container may take to import its handler (Lambda's init phase is limited to 10 s).
INIT_TIMEOUT_SECONDS = 30.0


def concurrency_from_env() -> int:
    return int(os.environ.get("EINVOICE_WORKER_CONCURRENCY", "4"))


def timeout_from_env() -> float:
    return float(os.environ.get("EINVOICE_WORKER_TIMEOUT", str(WORKER_TIMEOUT_SECONDS)))


@dataclass
class FakeLambdaContext:
    """The attributes Powertools and Chalice read from a Lambda context."""

    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = ""
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    #: time.monotonic() at which Lambda would kill the invocation.
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            self.invoked_function_arn or f"arn:aws:lambda:cn-north-1:123456789012:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SQS event for a batch received with ReceiveMessage(AttributeNames=All)."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v["DataType"],
                    }
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def batch_failures(response: Any, message_ids: list[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures response keeps on the queue; None: the whole batch.

    As Lambda reads it: no response, no or an empty ``batchItemFailures`` is a complete success; an
    item without an ``itemIdentifier`` or naming a message not in the batch fails the whole batch.
    """
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failed = set()
    for item in response["batchItemFailures"]:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in message_ids:
            return None
        failed.add(ident)
    return failed


def load_dotted(path: str) -> Any:
    """``module:attribute`` (Lambda's ``module.function``, with a colon so the module may be dotted)."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"handler {path!r} is not module:function")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


# --- invocations ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What became of one invocation."""

    result: Any = None
    #: the handler raised: "ErrorType: message" (a container stays warm after it, as in Lambda)
    error: str | None = None
    #: the container is gone: timed out (killed) or crashed; a new one serves the next invocation
    lost: str | None = None


class ContainerError(RuntimeError):
    """A container could not start: its handler does not import."""


class Invoker(Protocol):
    def warm(self) -> float | None:
        """Make ready to invoke; the cold start's seconds if one was needed."""

    def invoke(self, event: dict[str, Any], timeout: float, request_id: str) -> Outcome: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class InProcess:
    """A callable handler invoked in this process: the timeout is told to it, not enforced."""

    def __init__(self, handler: Callable[[dict[str, Any], FakeLambdaContext], Any], function_name: str) -> None:
        self.handler = handler
        self.function_name = function_name

    def warm(self) -> float | None:
        return None

    def invoke(self, event: dict[str, Any], timeout: float, request_id: str) -> Outcome:
        context = FakeLambdaContext(
            function_name=self.function_name, aws_request_id=request_id, deadline=time.monotonic() + timeout
        )
        try:
            return Outcome(result=self.handler(event, context))
        except Exception as exc:
            return Outcome(error=f"{exc.__class__.__name__}: {exc}")

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


class Container:
    """One warm execution environment: a child interpreter serving invocations of ``handler`` over pipes.

    One thread uses it at a time; ``abort()`` (kill whatever runs) may come from any thread.
    """

    def __init__(self, handler: str, function_name: str) -> None:
        self.handler = handler
        self.function_name = function_name
        self.proc: subprocess.Popen[bytes] | None = None
        self._replies: IO[bytes] | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        proc = self.proc
        return proc.pid if proc and proc.poll() is None else None

    def warm(self) -> float | None:
        with self._lock:
            if self._closed:
                raise ContainerError("the container was closed: stopping")
            if self.proc is not None and self.proc.poll() is None:
                return None
            self._discard()
            return self._start()

    def _start(self) -> float:
        started = time.monotonic()
        read_end, write_end = os.pipe()
        try:
            argv = [self.handler, "--reply-fd", str(write_end), "--function-name", self.function_name]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infra.lambda_local", *argv],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        self._replies, self._buffer = os.fdopen(read_end, "rb", buffering=0), b""
        try:
            reply = self._reply(started + INIT_TIMEOUT_SECONDS)
        except TimeoutError:
            reply = {"init_error": f"no answer within {INIT_TIMEOUT_SECONDS:.0f} s"}
        if not reply or "ready" not in reply:
            self._discard(kill=True)
            detail = (reply or {}).get("init_error", "the container exited")
            raise ContainerError(f"cannot start {self.handler}: {detail}")
        return time.monotonic() - started

    def invoke(self, event: dict[str, Any], timeout: float, request_id: str) -> Outcome:
        with self._lock:
            if self.proc is None or self.proc.stdin is None:
                return Outcome(lost="no container")
            request = {"event": event, "deadline_ms": int((time.time() + timeout) * 1000), "request_id": request_id}
            deadline = time.monotonic() + timeout
            try:
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                self.proc.stdin.flush()
                reply = self._reply(deadline)
            except TimeoutError:
                self._discard(kill=True)
                return Outcome(lost=f"Task timed out after {timeout:.2f} seconds")
            except OSError:
                reply = None
            if reply is None:
                return Outcome(lost=f"the container exited ({self._discard(kill=True)})")
            if "error" in reply:
                return Outcome(error=reply["error"])
            return Outcome(result=reply.get("result"))

    def abort(self) -> None:
        """Kill the container now, whatever it is doing (the thread invoking it sees it exit)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self) -> None:
        """Stop the container for good: it ends when its input does (after the invocation in flight)."""
        self._closed = True
        with self._lock:
            self._discard()

    def _discard(self, *, kill: bool = False) -> int | None:
        """Let go of the current child (ending its input, or killing it); its exit code."""
        proc, self.proc = self.proc, None
        if self._replies is not None:
            self._replies.close()
            self._replies = None
        if proc is None:
            return None
        if kill:
            proc.kill()
        elif proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            return proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _reply(self, deadline: float) -> dict[str, Any] | None:
        """The container's next JSON line; None when it closed the pipe (exited); TimeoutError at the deadline."""
        assert self._replies is not None
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not select.select([self._replies], [], [], remaining)[0]:
                continue
            chunk = self._replies.read(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply


def serve(handler_path: str, reply_fd: int, function_name: str) -> int:
    """Inside a container: import the handler once, then invoke it for every request line until stdin ends."""
    # The runner decides when its containers stop: a Ctrl-C reaching the whole process group (or
    # `make run` stopping the worker's group) must not cut an invocation short behind its back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.path.insert(0, str(ROOT))
    replies = os.fdopen(reply_fd, "wb")

    def reply(line: str) -> None:
        replies.write(line.encode() + b"\n")
        replies.flush()

    try:
        handler = load_dotted(handler_path)
    except Exception as exc:
        traceback.print_exc()
        reply(json.dumps({"init_error": f"{exc.__class__.__name__}: {exc}"}))
        return 1
    reply(json.dumps({"ready": True}))
    for line in sys.stdin.buffer:
        request = json.loads(line)
        remaining = request["deadline_ms"] / 1000 - time.time()
        context = FakeLambdaContext(
            function_name=function_name, aws_request_id=request["request_id"], deadline=time.monotonic() + remaining
        )
        try:
            reply(json.dumps({"result": handler(request["event"], context)}))
        except Exception as exc:
            traceback.print_exc()
            reply(json.dumps({"error": f"{exc.__class__.__name__}: {exc}"}))
    return 0


# --- the event source ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m infra.lambda_local", description="serve invocations (a container)")
    parser.add_argument("handler", help="module:function")
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--function-name", default=FUNCTION_NAME)
    args = parser.parse_args(argv)
    return serve(args.handler, args.reply_fd, args.function_name)


if __name__ == "__main__":
    raise SystemExit(main())
