"""The issue queue (SQS): order messages carrying a key only, batched check messages, and the
operations the worker needs on the messages it holds (hide for a while, hand back, dead-letter).

Bodies (the worker's parser, ``chalicelib/services/messages.py``, owns their shape)::

    {"order_key": "...", "kind": "paid" | "refunded"}
    {"check": [{"order_key", "claim_id", "serial", "sends", "provider_ref"}, ...],
     "store_id": "...", "pin": "...", "round": n}

A message carries no invoice data: the worker reads the order from the ledger, the source of truth,
so a message re-sent by the sweeper is the same message.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.errors import ConfigurationError, InfrastructureUnavailable
from chalicelib.domain.retry import SQS_MAX_VISIBILITY_SECONDS

#: SQS refuses a DelaySeconds above 15 minutes.
MAX_DELAY_SECONDS = 900
#: SQS batch calls take at most 10 entries.
_BATCH = 10


def _body(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class IssueQueue:
    def __init__(self, queue_url: str, dead_letter_url: str = "") -> None:
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url

    @property
    def _sqs(self) -> Any:
        return aws.client("sqs")

    def send(self, order_key: str, kind: str, *, delay_seconds: int = 0) -> str:
        with aws.unavailable("issue queue"):
            reply = self._sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=_body({"order_key": order_key, "kind": kind}),
                DelaySeconds=max(0, min(MAX_DELAY_SECONDS, delay_seconds)),
            )
        return str(reply["MessageId"])

    def send_many(self, messages: list[tuple[str, str, int]]) -> None:
        """``(order_key, kind, delay)`` messages, ten per call; raises when any was not taken."""
        for i in range(0, len(messages), _BATCH):
            chunk = messages[i : i + _BATCH]
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": _body({"order_key": key, "kind": kind}),
                    "DelaySeconds": max(0, min(MAX_DELAY_SECONDS, delay)),
                }
                for n, (key, kind, delay) in enumerate(chunk)
            ]
            with aws.unavailable("issue queue"):
                reply = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if reply.get("Failed"):
                raise InfrastructureUnavailable(f"issue queue: {len(reply['Failed'])} message(s) not taken")

    def send_check(
        self, store_id: str, pin: str, entries: list[dict[str, str]], *, delay_seconds: int, round_no: int = 1
    ) -> str:
        body = {"check": entries, "store_id": store_id, "pin": pin, "round": round_no}
        with aws.unavailable("issue queue"):
            reply = self._sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=_body(body),
                DelaySeconds=max(0, min(MAX_DELAY_SECONDS, delay_seconds)),
            )
        return str(reply["MessageId"])

    def hide(self, receipts: list[tuple[str, int]]) -> None:
        """Set each held message's visibility (seconds from now; 0 hands it back at once)."""
        for i in range(0, len(receipts), _BATCH):
            chunk = receipts[i : i + _BATCH]
            entries = [
                {"Id": str(n), "ReceiptHandle": r, "VisibilityTimeout": max(0, min(SQS_MAX_VISIBILITY_SECONDS, s))}
                for n, (r, s) in enumerate(chunk)
            ]
            with aws.unavailable("issue queue"):
                self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)

    def dead_letter(self, body: str) -> None:
        """Put a message's body on the dead-letter queue (the caller then lets the original go)."""
        if not self.dead_letter_url:
            raise ConfigurationError("dead-letter queue: ISSUE_DLQ_URL is not configured", code="no_dead_letter_queue")
        with aws.unavailable("dead-letter queue"):
            self._sqs.send_message(QueueUrl=self.dead_letter_url, MessageBody=body)
