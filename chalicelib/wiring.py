"""The one composition root: every adapter is built here, once per container, on first use.

Services (``chalicelib/services``) and the sans-IO tax protocols (``chalicelib/taxapi``) import no
adapter and no boto3; ``app.py`` asks this module for ready use cases. Nothing is built at import
time (cold starts): each factory is cached, and :func:`reset` forgets them (tests switch stacks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics

from chalicelib.config import QUEUE_VISIBILITY_SECONDS, RETRY_SCHEDULE, SWEEP_GRACE_SECONDS, settings
from chalicelib.domain.models import Store
from chalicelib.services.ingest import Ingest
from chalicelib.services.issue import IssueInvoice
from chalicelib.services.ports import IssueQueuePort, OrderLedger
from chalicelib.services.worker import BatchWorker

if TYPE_CHECKING:
    from chalicelib.adapters.http import HttpTransport
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.queue import IssueQueue
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry

logger = Logger(child=True)

#: The HTTP transport's timeouts; an attempt is started only with time for one whole tax call left.
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 15.0
MIN_ATTEMPT_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS + 5.0


@cache
def metrics() -> Metrics:
    return Metrics(namespace="EInvoice", service="einvoice")


@cache
def ledger() -> Ledger:
    from chalicelib.adapters.ledger import Ledger

    return Ledger(settings().ledger_table)


@cache
def stores() -> StoreRegistry:
    from chalicelib.adapters.stores import StoreRegistry

    return StoreRegistry(settings().stores_table)


@cache
def secrets() -> SecretStore:
    from chalicelib.adapters.secrets import SecretStore

    return SecretStore()


@cache
def queue() -> IssueQueue:
    from chalicelib.adapters.queue import IssueQueue

    s = settings()
    return IssueQueue(s.issue_queue_url, s.issue_dlq_url)


@cache
def transport() -> HttpTransport:
    from chalicelib.adapters.http import HttpTransport

    # retries=0: the transport's own retry of a request that never left would sleep between tries;
    # inside a Lambda invocation nothing sleeps — the worker's retry schedule brings it back instead.
    return HttpTransport(connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS, retries=0)


def utcnow() -> datetime:
    return datetime.now(UTC)


def first_check_seconds(store: Store) -> int:
    """The store's first look at an accepted request (its option, else the stage default)."""
    option = store.provider.options.get("first_check_seconds")
    return int(option) if option not in (None, "") else settings().first_check_seconds


@cache
def ingest() -> Ingest:
    from chalicelib.adapters.alerts import SnsAlerts
    from chalicelib.adapters.taxcodes import TaxCodeSource
    from chalicelib.services.rejections import BurstPolicy, RejectionAlerts

    s = settings()
    burst = BurstPolicy(threshold=s.rejection_alert_threshold, window_seconds=s.rejection_alert_minutes * 60)
    from chalicelib.adapters import aws

    # The webhook path runs its AWS calls in the intake profile: short timeouts, one retry, and an
    # end-to-end deadline that fits the platforms' own (INTAKE_DEADLINE_SECONDS, default 5 s).
    return aws.intake(
        Ingest(
            stores=stores(),
            secrets=secrets(),
            ledger=ledger(),
            queue=queue(),
            taxcodes=TaxCodeSource(s.config_bucket),
            rejections=RejectionAlerts(
                counter=ledger(), alerts=SnsAlerts(s.alarm_topic_arn), policy=burst, logger=logger
            ),
        )
    )


def make_issue(*, order_ledger: OrderLedger | None = None, clock: Callable[[], datetime] | None = None) -> IssueInvoice:
    """The issuing use case with this container's adapters (``ledger`` and ``clock`` replaceable:
    the virtual-time tests drive the real use case through hours in seconds)."""
    from chalicelib.adapters.alerts import SnsAlerts
    from chalicelib.adapters.credentials import SecretCredentials
    from chalicelib.services.exchange import Exchange
    from chalicelib.taxapi.registry import Providers

    s = settings()
    providers = Providers(s, send=transport().send)
    return IssueInvoice(
        ledger=order_ledger or ledger(),
        stores=stores(),
        credentials=SecretCredentials(secrets()),
        providers=providers,
        exchange=Exchange(providers=providers, transport=transport(), logger=logger),
        alerts=SnsAlerts(s.alarm_topic_arn),
        metrics=metrics(),
        logger=logger,
        schedule=RETRY_SCHEDULE,
        first_check_seconds=first_check_seconds,
        clock=clock or utcnow,
    )


def make_worker(
    use_case: IssueInvoice, issue_queue: IssueQueuePort, *, clock: Callable[[], float] | None = None
) -> BatchWorker:
    return BatchWorker(
        use_case=use_case,
        queue=issue_queue,
        schedule=RETRY_SCHEDULE,
        first_check_seconds=lambda store_id: first_check_seconds(stores().get(store_id)),
        visibility_seconds=QUEUE_VISIBILITY_SECONDS,
        min_attempt_seconds=MIN_ATTEMPT_SECONDS,
        logger=logger,
        clock=clock or time.time,
    )


@cache
def issue() -> IssueInvoice:
    return make_issue()


@cache
def batch_worker() -> BatchWorker:
    return make_worker(issue(), queue())


def sweep_grace_seconds() -> int:
    return SWEEP_GRACE_SECONDS


def reset() -> None:
    """Forget every built adapter and cached token (tests switch stacks between cases)."""
    from chalicelib.taxapi.registry import clear_token_caches

    for factory in (metrics, ledger, stores, secrets, queue, transport, ingest, issue, batch_worker):
        factory.cache_clear()
    clear_token_caches()
