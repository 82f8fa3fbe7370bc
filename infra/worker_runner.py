"""Run the SQS worker locally: long-poll the queue, invoke app.worker with real SQS event shapes.

``chalice local`` runs no SQS handlers, so ``make run`` starts this loop beside it. It behaves like the
Lambda SQS event source with ``ReportBatchItemFailures``: messages the handler lists in
``batchItemFailures`` stay on the queue (and reach the DLQ after ``maxReceiveCount`` receives);
the others are deleted; a handler exception leaves the whole batch for a retry.

    python -m infra.worker_runner [--once]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.config import WORKER_BATCH_SIZE, WORKER_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FakeLambdaContext:
    """The attributes Powertools and Chalice read from a Lambda context."""

    function_name: str = "einvoice-local-worker"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = ""
    invoked_function_arn: str = "arn:aws:lambda:cn-north-1:123456789012:function:einvoice-local-worker"
    log_group_name: str = "/aws/lambda/einvoice-local-worker"
    log_stream_name: str = "local"
    deadline: float = 0.0

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


class WorkerRunner:
    def __init__(self, sqs: Any, queue_url: str, handler: Any, *, wait_seconds: int = 5) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.wait_seconds = wait_seconds
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.queue_arn = attrs["QueueArn"]
        self.region = sqs.meta.region_name
        self.stopping = False

    def poll_once(self) -> tuple[int, int]:
        """One receive + invoke + settle. Returns (received, failed)."""
        reply = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=WORKER_BATCH_SIZE,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            return 0, 0
        context = FakeLambdaContext(
            aws_request_id=str(uuid.uuid4()), deadline=time.monotonic() + WORKER_TIMEOUT_SECONDS
        )
        try:
            result = self.handler(sqs_event(messages, self.queue_arn, self.region), context)
        except Exception as exc:  # a crashed invocation: Lambda would retry the whole batch
            print(f"worker: batch of {len(messages)} failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
            return len(messages), len(messages)
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages), len(failed)

    def run(self) -> None:
        while not self.stopping:
            try:
                received, failed = self.poll_once()
            except Exception as exc:  # the embedded AWS went away: report and retry shortly
                print(f"worker: cannot poll the queue: {exc}", file=sys.stderr)
                time.sleep(1)
                continue
            if received:
                print(f"worker: batch of {received}, {failed} failed", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.worker_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="process at most one batch and exit")
    parser.add_argument("--wait", type=int, default=5, help="long-poll seconds")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import boto3

    import app as app_module

    sqs = boto3.client("sqs")
    runner = WorkerRunner(sqs, os.environ["ISSUE_QUEUE_URL"], app_module.worker, wait_seconds=args.wait)

    def stop(*_: object) -> None:
        runner.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.once:
        runner.poll_once()
    else:
        runner.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
