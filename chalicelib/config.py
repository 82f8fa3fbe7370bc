"""Settings read once from the environment: resource names and endpoints, never secret values.

The deploy template (``infra/resources.py``) and the local stack set the same variables, so the code
runs unchanged on a laptop against moto and in Lambda. Nothing here creates an AWS client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

#: The worker's Lambda timeout and SQS batch size; the queue's visibility timeout is derived from them
#: in the deploy template, so the three can never drift apart.
WORKER_TIMEOUT_SECONDS = 60
WORKER_BATCH_SIZE = 5
#: A webhook body larger than this is refused with 413 (API Gateway's own limit is 10 MB).
MAX_WEBHOOK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Settings:
    stage: str
    stores_table: str
    ledger_table: str
    issue_queue_url: str
    archive_bucket: str
    invoice_bucket: str
    config_bucket: str
    alarm_topic_arn: str
    sta_endpoint: str
    nuonuo_endpoint: str
    nuonuo_token_url: str
    public_base_url: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        return cls(
            stage=e.get("STAGE", "local"),
            stores_table=e.get("STORES_TABLE", ""),
            ledger_table=e.get("LEDGER_TABLE", ""),
            issue_queue_url=e.get("ISSUE_QUEUE_URL", ""),
            archive_bucket=e.get("ARCHIVE_BUCKET", ""),
            invoice_bucket=e.get("INVOICE_BUCKET", ""),
            config_bucket=e.get("CONFIG_BUCKET", ""),
            alarm_topic_arn=e.get("ALARM_TOPIC_ARN", ""),
            sta_endpoint=e.get("STA_ENDPOINT", "http://127.0.0.1:8900"),
            nuonuo_endpoint=e.get("NUONUO_ENDPOINT", "http://127.0.0.1:8900/open/v1/services"),
            nuonuo_token_url=e.get("NUONUO_TOKEN_URL", "http://127.0.0.1:8900/accessToken"),
            public_base_url=e.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
