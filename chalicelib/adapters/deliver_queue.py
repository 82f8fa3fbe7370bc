"""The deliver queue (SQS): one message per issued order, ``{"order_key": …, "reason": "issued"}``.

The issuing worker sends the orders a batch issued with one ``send_message_batch`` call (ten per
call); the delivery handler hides a message it retries for as long as the retry should wait.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.errors import InfrastructureUnavailable
from chalicelib.domain.retry import SQS_MAX_VISIBILITY_SECONDS

_BATCH = 10


class DeliverQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    @property
    def _sqs(self) -> Any:
        return aws.client("sqs")

    def send_many(self, order_keys: Sequence[str], *, reason: str = "issued") -> None:
        keys = list(dict.fromkeys(order_keys))
        for i in range(0, len(keys), _BATCH):
            entries = [
                {"Id": str(n), "MessageBody": json.dumps({"order_key": k, "reason": reason}, ensure_ascii=False)}
                for n, k in enumerate(keys[i : i + _BATCH])
            ]
            with aws.unavailable("deliver queue"):
                reply = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if reply.get("Failed"):
                raise InfrastructureUnavailable(f"deliver queue: {len(reply['Failed'])} message(s) not taken")

    def hide(self, receipts: list[tuple[str, int]]) -> None:
        for i in range(0, len(receipts), _BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": r, "VisibilityTimeout": max(0, min(SQS_MAX_VISIBILITY_SECONDS, s))}
                for n, (r, s) in enumerate(receipts[i : i + _BATCH])
            ]
            with aws.unavailable("deliver queue"):
                self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
