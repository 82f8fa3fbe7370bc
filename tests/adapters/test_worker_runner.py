"""The local worker runner behaves like Lambda's SQS event source with ReportBatchItemFailures.

In process (a callable handler): the partial-batch semantics. In containers (the handler by dotted
path, as `make run` runs app:worker): the timeout kills, crashes are replaced, concurrency overlaps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.worker_runner import Container, FakeLambdaContext, WorkerRunner
from tests.support.processes import ROOT


def counts(sqs: Any, url: str) -> tuple[int, int]:
    a = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def send(sqs: Any, url: str, **order: Any) -> None:
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(order))


def test_reported_failures_stay_on_the_queue_and_the_rest_are_deleted(aws: Any, stack: Any) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    for key in ("s:1", "s:2", "s:3"):
        send(sqs, url, order_key=key, kind="paid")
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
        seen.extend(event["Records"])
        assert context.get_remaining_time_in_millis() > 0
        failed = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["order_key"] == "s:2"]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    runner = WorkerRunner(sqs, url, handler, wait_seconds=0)
    received, failed = runner.poll_once()
    assert (received, failed) == (3, 1)
    record = seen[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == stack.attrs["IssueQueue"]["Arn"]
    assert {"messageId", "receiptHandle", "body", "attributes", "md5OfBody", "awsRegion"} <= set(record)
    assert counts(sqs, url) == (0, 1)  # the failed one waits out its visibility timeout; the others are gone


def crashes(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    raise RuntimeError("the function crashed")


def names_a_stranger(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}  # Lambda: the whole batch failed


@pytest.mark.parametrize("handler", [crashes, names_a_stranger])
def test_a_crashed_invocation_or_an_invalid_response_leaves_the_whole_batch(
    aws: Any, stack: Any, handler: Callable[..., Any]
) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    send(sqs, url, order_key="s:1", kind="paid")
    send(sqs, url, order_key="s:2", kind="paid")

    assert WorkerRunner(sqs, url, handler, wait_seconds=0).poll_once() == (2, 2)
    assert counts(sqs, url) == (0, 2)  # nothing deleted


def test_the_runner_leaves_the_visibility_the_handler_gave_a_failed_message(aws: Any, stack: Any) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    send(sqs, url, order_key="s:1", kind="paid")

    def handler(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
        record = event["Records"][0]  # no time for it: hand it back at once, and report it
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0)
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    assert WorkerRunner(sqs, url, handler, wait_seconds=0).poll_once() == (1, 1)
    assert counts(sqs, url) == (1, 0)  # visible again now, not after the queue's visibility timeout


# --- in containers: the handler by dotted path, run in child processes ---------------------------
def behave(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A handler for the runner's containers: each message's body says what to do."""
    failures = []
    for record in event["Records"]:
        order = json.loads(record["body"])
        note = {"pid": os.getpid(), "remaining_ms": [context.get_remaining_time_in_millis()]}
        seen = Path(order["dir"])
        (seen / f"{record['messageId']}.json").write_text(json.dumps(note))
        if order.get("crash"):
            os._exit(3)
        time.sleep(order.get("sleep", 0.05))
        if order.get("meet"):  # a barrier on disk: wait until `meet` invocations have arrived
            while len(list(seen.glob("*.json"))) < order["meet"]:
                if context.get_remaining_time_in_millis() < 500:
                    raise TimeoutError("the other invocation never came")
                time.sleep(0.05)
        note["remaining_ms"].append(context.get_remaining_time_in_millis())
        (seen / f"{record['messageId']}.json").write_text(json.dumps(note))
        if order.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


HANDLER = f"{__name__}:behave"


def notes(seen: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(seen.glob("*.json"))]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture()
def runners() -> Iterator[list[WorkerRunner]]:
    made: list[WorkerRunner] = []
    yield made
    for runner in made:
        runner.close()


def test_an_invocation_that_overruns_the_timeout_is_killed_and_its_batch_stays(
    aws: Any, stack: Any, tmp_path: Path, runners: list[WorkerRunner], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    for _ in range(2):
        send(sqs, url, dir=str(tmp_path), sleep=60)
    runner = WorkerRunner(sqs, url, HANDLER, wait_seconds=1, timeout=2)
    runners.append(runner)

    started = time.monotonic()
    assert runner.poll_once() == (2, 2)
    assert time.monotonic() - started < 20  # killed at the timeout, not after the handler's 60 s
    assert "Task timed out after 2.00 seconds; batch of 2 left on the queue" in capsys.readouterr().out
    (killed,) = {n["pid"] for n in notes(tmp_path)}
    assert gone(killed)
    assert counts(sqs, url) == (0, 2)  # neither deleted nor made visible: back after the visibility timeout

    served = tmp_path / "served"
    served.mkdir()
    send(sqs, url, dir=str(served))
    assert runner.poll_once() == (1, 0)  # a fresh container serves the next batch
    assert notes(served)[0]["pid"] not in (killed, None)
    assert counts(sqs, url) == (0, 2)


def test_a_crashed_container_is_replaced_and_the_next_batch_is_served(
    aws: Any, stack: Any, tmp_path: Path, runners: list[WorkerRunner], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    runner = WorkerRunner(sqs, url, HANDLER, wait_seconds=1, timeout=10)
    runners.append(runner)
    crashed, served = tmp_path / "crashed", tmp_path / "served"
    crashed.mkdir()
    served.mkdir()

    send(sqs, url, dir=str(crashed), crash=True)
    assert runner.poll_once() == (1, 1)
    assert "the container exited (3); batch of 1 left on the queue" in capsys.readouterr().out
    send(sqs, url, dir=str(served), sleep=0.3)
    send(sqs, url, dir=str(served), fail=True)
    assert runner.poll_once() == (2, 1)
    assert "batch of 2, 1 failed" in capsys.readouterr().out

    (before,) = notes(crashed)
    after = notes(served)
    container = runner.slots[0].invoker
    assert isinstance(container, Container)
    assert {n["pid"] for n in after} == {container.pid} != {before["pid"]}
    first, later = after[0]["remaining_ms"]  # the context counts down to the deadline inside the container
    assert 10_000 >= first > later > 0
    assert counts(sqs, url) == (0, 2)  # the crashed batch and the reported failure wait out the visibility timeout


def test_concurrent_invocations_overlap_in_separate_containers(
    aws: Any, stack: Any, tmp_path: Path, runners: list[WorkerRunner]
) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    for _ in range(2):  # each waits for the other: they can only both succeed if they run at once
        send(sqs, url, dir=str(tmp_path), meet=2)
    runner = WorkerRunner(sqs, url, HANDLER, wait_seconds=1, timeout=30, concurrency=2, batch_size=1)
    runners.append(runner)
    loop = threading.Thread(target=runner.run)
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while counts(sqs, url) != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert counts(sqs, url) == (0, 0), notes(tmp_path)
    finally:
        runner.stop()
        loop.join(timeout=30)
    assert not loop.is_alive()
    pids = {n["pid"] for n in notes(tmp_path)}
    assert len(pids) == 2
    assert all(gone(pid) for pid in pids)  # stopping the runner stopped its containers


def test_the_runner_process_serves_batches_and_stops_cleanly_on_sigterm(aws: Any, stack: Any, tmp_path: Path) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    log = tmp_path / "worker.log"
    seen = tmp_path / "seen"
    seen.mkdir()
    with (
        open(log, "wb") as out,
        subprocess.Popen(
            [sys.executable, "-m", "infra.worker_runner", "--handler", HANDLER, "--wait", "1"],
            cwd=ROOT,
            env={**os.environ, "EINVOICE_WORKER_CONCURRENCY": "2", "EINVOICE_WORKER_TIMEOUT": "5"},
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as proc,
    ):
        try:
            send(sqs, url, dir=str(seen))
            deadline = time.monotonic() + 60
            while "batch of 1, 0 failed" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert f"worker: {HANDLER} × 2, batches of ≤ 5, timeout 5 s" in text
    assert "batch of 1, 0 failed" in text, text
    assert counts(sqs, url) == (0, 0)
    assert all(gone(n["pid"]) for n in notes(seen))
