"""Settings read once from the environment: resource names and endpoints, never secret values.

The deploy template (``infra/resources.py``) and the local stack set the same variables, so the code
runs unchanged on a laptop against moto and in Lambda. Nothing here creates an AWS client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from chalicelib.domain.retry import DEFAULT_SCHEDULE

#: The worker's Lambda timeout and SQS batch size; the queue's visibility timeout and receive count are
#: derived from them and from the retry schedule here, so the deploy template, the local stack and the
#: worker can never drift apart.
WORKER_TIMEOUT_SECONDS = 60
WORKER_BATCH_SIZE = 5
#: A received message stays hidden this long: a little longer than an invocation can live, so a live
#: worker never loses its message and a crashed worker's messages are back within ~1.5 minutes. The
#: worker hides a message longer itself when it needs to (a scheduled retry, a heartbeat).
QUEUE_VISIBILITY_SECONDS = WORKER_TIMEOUT_SECONDS + 30
#: The retry schedule of the seed (10 s, 30 s, 60 s, then doubling to 15 minutes) for at least 24 h;
#: the queue's maxReceiveCount covers that horizon, so the dead-letter queue is reached only after it.
RETRY_SCHEDULE = DEFAULT_SCHEDULE
MAX_RECEIVE_COUNT = RETRY_SCHEDULE.receives_within()
#: The first look at an accepted request's result, seconds after acceptance: the platform's typical
#: issuing delay plus a margin, so the first look usually finds the invoice (the sandbox's default
#: delay is 3 s; a look that comes too early costs a re-check 10 s later). A store may set
#: ``first_check_seconds`` in its provider options; FIRST_CHECK_SECONDS sets the stage default.
FIRST_CHECK_SECONDS = 4
#: A record whose next step is this late is re-queued by the sweeper (it runs every minute).
SWEEP_GRACE_SECONDS = 120
#: A webhook body larger than this is refused with 413 (API Gateway's own limit is 10 MB).
MAX_WEBHOOK_BYTES = 256 * 1024
#: The rejection-burst alert: this many rejected orders of one store within this many minutes send one
#: alert to the alarm topic (environment: REJECTION_ALERT_THRESHOLD, REJECTION_ALERT_MINUTES).
REJECTION_ALERT_THRESHOLD = 5
REJECTION_ALERT_MINUTES = 15
#: The audit archive's manifest signing key (SM2, one per deployment): a Secrets Manager secret outside
#: the ``einvoice/`` prefix every function may read — only the manifest job is granted it
#: (environment: MANIFEST_KEY_SECRET; docs/operator.md).
MANIFEST_KEY_SECRET = "einvoice-archive/manifest-signing-key"  # noqa: S105 - a secret's name, not a secret
#: The red flow (chalicelib/services/red.py). A refund whose order is not known yet is held and looked
#: at again on the retry schedule for this long, then raised to the operator (``refund_unmatched``).
REFUND_HOLD_SECONDS = 24 * 3600
#: A red confirmation form waiting for the buyer is re-checked this often (its message hidden again: 18
#: receives per 72-hour form, well inside the queue's maxReceiveCount).
RED_FORM_RECHECK_SECONDS = 4 * 3600
#: A form still unconfirmed this many hours after it was applied raises one alert (it expires at 72 h).
RED_FORM_ALERT_HOURS = 60
RED_FORM_EXPIRY_HOURS = 72
#: The customer's link pages (``/i/…``): at most LINK_RATE_LIMIT requests per client IP in each fixed
#: window of LINK_RATE_WINDOW_SECONDS (429 beyond; 0 turns it off), and the PDF download's presigned
#: URL lives PDF_URL_SECONDS (environment: the same names; docs/delivery.md "The customer's link").
LINK_RATE_LIMIT = 60
LINK_RATE_WINDOW_SECONDS = 60
PDF_URL_SECONDS = 300


@dataclass(frozen=True)
class Settings:
    stage: str
    stores_table: str
    ledger_table: str
    issue_queue_url: str
    issue_dlq_url: str
    archive_bucket: str
    invoice_bucket: str
    config_bucket: str
    alarm_topic_arn: str
    sta_endpoint: str
    nuonuo_endpoint: str
    nuonuo_token_url: str
    public_base_url: str
    first_check_seconds: int = FIRST_CHECK_SECONDS
    rejection_alert_threshold: int = REJECTION_ALERT_THRESHOLD
    rejection_alert_minutes: int = REJECTION_ALERT_MINUTES
    manifest_key_secret: str = MANIFEST_KEY_SECRET
    link_rate_limit: int = LINK_RATE_LIMIT
    link_rate_window_seconds: int = LINK_RATE_WINDOW_SECONDS
    pdf_url_seconds: int = PDF_URL_SECONDS

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        return cls(
            stage=e.get("STAGE", "local"),
            stores_table=e.get("STORES_TABLE", ""),
            ledger_table=e.get("LEDGER_TABLE", ""),
            issue_queue_url=e.get("ISSUE_QUEUE_URL", ""),
            issue_dlq_url=e.get("ISSUE_DLQ_URL", ""),
            archive_bucket=e.get("ARCHIVE_BUCKET", ""),
            invoice_bucket=e.get("INVOICE_BUCKET", ""),
            config_bucket=e.get("CONFIG_BUCKET", ""),
            alarm_topic_arn=e.get("ALARM_TOPIC_ARN", ""),
            sta_endpoint=e.get("STA_ENDPOINT", "http://127.0.0.1:8900"),
            nuonuo_endpoint=e.get("NUONUO_ENDPOINT", "http://127.0.0.1:8900/open/v1/services"),
            nuonuo_token_url=e.get("NUONUO_TOKEN_URL", "http://127.0.0.1:8900/accessToken"),
            public_base_url=e.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
            first_check_seconds=int(e.get("FIRST_CHECK_SECONDS", str(FIRST_CHECK_SECONDS))),
            rejection_alert_threshold=int(e.get("REJECTION_ALERT_THRESHOLD", str(REJECTION_ALERT_THRESHOLD))),
            rejection_alert_minutes=int(e.get("REJECTION_ALERT_MINUTES", str(REJECTION_ALERT_MINUTES))),
            manifest_key_secret=e.get("MANIFEST_KEY_SECRET", MANIFEST_KEY_SECRET),
            link_rate_limit=int(e.get("LINK_RATE_LIMIT", str(LINK_RATE_LIMIT))),
            link_rate_window_seconds=int(e.get("LINK_RATE_WINDOW_SECONDS", str(LINK_RATE_WINDOW_SECONDS))),
            pdf_url_seconds=int(e.get("PDF_URL_SECONDS", str(PDF_URL_SECONDS))),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
