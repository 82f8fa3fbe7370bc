"""Part 1's delivery step: after a batch is issued, ``app.deliverer`` drains the deliver queue as Lambda's
event source would (the PDF rendered and stored, the platform's files fetched, the link issued, the
buyer mailed). Its AWS calls are counted as the ``deliver`` phase and its thread CPU time per invoice
is added beside the issuing worker's (``Batch.deliver_thread_cpu``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

DRAIN_S = 60.0


def drain_deliveries(bench: Any, keys: list[str], result: Any) -> None:
    """Receive → ``app.deliverer`` → delete, until the deliver queue is empty (or ``DRAIN_S``)."""
    import app as app_module
    from chalicelib.config import WORKER_BATCH_SIZE, WORKER_TIMEOUT_SECONDS
    from infra.lambda_local import FakeLambdaContext, sqs_event

    url = bench.env.get("DELIVER_QUEUE_URL", "")
    if not url or not keys:
        return
    sqs = bench.sqs
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deadline, empty = time.monotonic() + DRAIN_S, 0
    while time.monotonic() < deadline and empty < 2:
        with bench.aws.during("event-source"):
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=WORKER_BATCH_SIZE, WaitTimeSeconds=1, AttributeNames=["All"]
            ).get("Messages", [])
        if not messages:
            empty += 1
            continue
        empty = 0
        context = FakeLambdaContext(
            aws_request_id=str(uuid.uuid4()), deadline=time.monotonic() + WORKER_TIMEOUT_SECONDS
        )
        with bench.aws.during("deliver"):
            thread0 = time.thread_time()
            try:
                reply = app_module.deliverer(sqs_event(messages, arn, "cn-north-1"), context)
            finally:
                result.deliver_thread_cpu += time.thread_time() - thread0
        failed = {f["itemIdentifier"] for f in (reply or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        result.delivered += len(done)
        if done:
            with bench.aws.during("event-source"):
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
