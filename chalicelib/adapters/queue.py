"""The issue queue (SQS): one message per order record, carrying its key only.

The message is small and carries no invoice data: the worker reads the order from the ledger, which
is the source of truth, so a message re-sent by the outbox sweeper is the same message.
"""

from __future__ import annotations

import json

from chalicelib.adapters import aws


class IssueQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, order_key: str, kind: str) -> str:
        with aws.unavailable("issue queue"):
            reply = aws.client("sqs").send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps({"order_key": order_key, "kind": kind}, ensure_ascii=False),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}},
            )
        return str(reply["MessageId"])
