"""The local worker runner behaves like Lambda's SQS event source with ReportBatchItemFailures."""

from __future__ import annotations

import json
from typing import Any

from infra.worker_runner import FakeLambdaContext, WorkerRunner


def counts(sqs: Any, url: str) -> tuple[int, int]:
    a = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def test_reported_failures_stay_on_the_queue_and_the_rest_are_deleted(aws: Any, stack: Any) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    for key in ("s:1", "s:2", "s:3"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"order_key": key, "kind": "paid"}))
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


def test_a_crashed_invocation_leaves_the_whole_batch(aws: Any, stack: Any) -> None:
    sqs = aws.client("sqs")
    url = stack.env["ISSUE_QUEUE_URL"]
    for key in ("s:1", "s:2"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"order_key": key, "kind": "paid"}))

    def handler(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
        raise RuntimeError("the function crashed")

    assert WorkerRunner(sqs, url, handler, wait_seconds=0).poll_once() == (2, 2)
    assert counts(sqs, url) == (0, 2)
