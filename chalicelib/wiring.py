"""The one composition root: every adapter is built here, once per container, on first use.

It is this module and its two parts, which it re-exports at the end (callers use ``wiring.X``):
``wiring_web.py`` (the HTTP surfaces: keys, sessions, dashboard, the customer's link, 换开) and
``wiring_after.py`` (after issuing: delivery, void, batch reversal, status sync). The parts take
the core adapters from here; :func:`reset` forgets the factories of all three.

Services (``chalicelib/services``) and the sans-IO tax protocols (``chalicelib/taxapi``) import no
adapter and no boto3; ``app.py`` asks this module for ready use cases. Nothing is built at import
time (cold starts): each factory is cached, and :func:`reset` forgets them (tests switch stacks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, cast

from aws_lambda_powertools import Logger, Metrics

from chalicelib.config import QUEUE_VISIBILITY_SECONDS, RETRY_SCHEDULE, SWEEP_GRACE_SECONDS, settings
from chalicelib.domain.models import Store
from chalicelib.services.ingest import Ingest
from chalicelib.services.issue import IssueInvoice
from chalicelib.services.ports import IssueQueuePort, OrderLedger
from chalicelib.services.worker import BatchWorker

if TYPE_CHECKING:  # the audit archive (docs/finance.md)
    from chalicelib.adapters.archive import S3Archive
from chalicelib.services.archive import InvocationArchive
from chalicelib.services.archive_manifest import ManifestJob

if TYPE_CHECKING:
    from chalicelib.adapters.http import HttpTransport
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.queue import IssueQueue
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.services.dashboard import InvoiceCounter
    from chalicelib.services.retitle import RetitleLedger, RetitleQueue

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

    return Ledger(settings().ledger_table, recorder=archive_log())


# --- the audit archive (docs/finance.md) -----------------------------------------------------------
def worker_identity() -> str:
    """The actor of the worker's records: its function, as Lambda names it."""
    import os

    return f"worker:{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'local')}"


@cache
def archive_store() -> S3Archive:
    from chalicelib.adapters.archive import S3Archive

    return S3Archive(settings().archive_bucket)


@cache
def archive_log() -> InvocationArchive:
    """This container's interaction log: records only inside an invocation the worker opened."""
    return InvocationArchive(archive_store(), actor=worker_identity())


def operator_archive(operator: str) -> InvocationArchive:
    """An operator command's own log (``einvoice orders retry/fix``): begin it, pass it as the ledger's
    recorder, flush it when done; its records name ``operator:<operator>``."""
    return InvocationArchive(archive_store(), actor=f"operator:{operator}")


@cache
def manifest_job() -> ManifestJob:
    from chalicelib.adapters.alerts import SnsAlerts
    from chalicelib.adapters.archive import SigningKeys

    s = settings()
    return ManifestJob(
        archive=archive_store(),
        keys=SigningKeys(s.manifest_key_secret, secrets()),
        alerts=SnsAlerts(s.alarm_topic_arn),
        logger=logger,
    )


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
    from chalicelib.services.dashboard import CountingRejections
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
            rejections=CountingRejections(
                RejectionAlerts(counter=ledger(), alerts=SnsAlerts(s.alarm_topic_arn), policy=burst, logger=logger),
                invoice_counter(),
                clock=utcnow,
            ),
        )
    )


def make_issue(
    *,
    order_ledger: OrderLedger | None = None,
    clock: Callable[[], datetime] | None = None,
    recorder: InvocationArchive | None = None,
    counters: InvoiceCounter | None = None,
) -> IssueInvoice:
    """The issuing use case with this container's adapters (``ledger`` and ``clock`` replaceable:
    the virtual-time tests drive the real use case through hours in seconds; ``counters``: the
    dashboard's, given only with the real ledger)."""
    from chalicelib.adapters.alerts import SnsAlerts
    from chalicelib.adapters.credentials import SecretCredentials
    from chalicelib.services.exchange import Exchange
    from chalicelib.services.red import RedFlow
    from chalicelib.services.red_ports import RedLedger
    from chalicelib.taxapi.registry import Providers

    s = settings()
    providers = Providers(s, send=transport().send)
    exchange = Exchange(providers=providers, transport=transport(), logger=logger, recorder=recorder)
    the_ledger, alerts = order_ledger or ledger(), SnsAlerts(s.alarm_topic_arn)
    credentials = SecretCredentials(secrets())
    # the red flow (refund → red invoice) shares the issuing parts; its ledger also reads blue records
    red = RedFlow(
        ledger=cast("RedLedger", the_ledger),
        stores=stores(),
        credentials=credentials,
        providers=providers,
        exchange=exchange,
        alerts=alerts,
        metrics=metrics(),
        logger=logger,
        schedule=RETRY_SCHEDULE,
        first_check_seconds=first_check_seconds,
        clock=clock or utcnow,
    )
    use_case = IssueInvoice(
        ledger=the_ledger,
        stores=stores(),
        credentials=credentials,
        providers=providers,
        exchange=exchange,
        alerts=alerts,
        metrics=metrics(),
        logger=logger,
        schedule=RETRY_SCHEDULE,
        first_check_seconds=first_check_seconds,
        clock=clock or utcnow,
        red=red,
        counters=counters,
    )
    red.settle.on_issued.append(use_case.settle.note_issued)  # a red invoice is delivered as a blue one
    return use_case


def make_worker(
    use_case: IssueInvoice,
    issue_queue: IssueQueuePort,
    *,
    clock: Callable[[], float] | None = None,
    archive: InvocationArchive | None = None,
) -> BatchWorker:
    from chalicelib.services.red import RedFlow

    if isinstance(use_case.red, RedFlow):  # 换开: its reversal issued → the new blue, on this worker's queue
        # the use case's ledger is this root's Ledger (or a test's fake of it): it serves 换开's port too
        retitle_ledger = cast("RetitleLedger", use_case.ledger)
        retitle_queue = cast("RetitleQueue", issue_queue)
        use_case.red.settle.on_issued.append(make_retitle(retitle_ledger, retitle_queue, clock=clock).red_issued)
    return BatchWorker(
        use_case=use_case,
        queue=issue_queue,
        schedule=RETRY_SCHEDULE,
        first_check_seconds=lambda store_id: first_check_seconds(stores().get(store_id)),
        visibility_seconds=QUEUE_VISIBILITY_SECONDS,
        min_attempt_seconds=MIN_ATTEMPT_SECONDS,
        logger=logger,
        clock=clock or time.time,
        archive=archive,
        deliveries=deliver_queue(),
    )


@cache
def issue() -> IssueInvoice:
    return make_issue(recorder=archive_log(), counters=invoice_counter())


@cache
def batch_worker() -> BatchWorker:
    return make_worker(issue(), queue(), archive=archive_log())


def sweep_grace_seconds() -> int:
    return SWEEP_GRACE_SECONDS


def reset() -> None:
    """Forget every built adapter and cached token (tests switch stacks between cases)."""
    from chalicelib.taxapi.registry import clear_token_caches

    for factory in (metrics, ledger, stores, secrets, queue, transport, ingest, issue, batch_worker):
        factory.cache_clear()
    for part_factory in (*_AUTH_FACTORIES, *_LINK_FACTORIES, *_DELIVERY_FACTORIES):
        part_factory.cache_clear()
    for archive_factory in (archive_store, archive_log, manifest_job):
        archive_factory.cache_clear()
    clear_token_caches()


# --- the parts (imported last: they take the core factories above) -------------------------------
from chalicelib.wiring_after import (  # noqa: E402
    _DELIVERY_FACTORIES,
    FILE_CONNECT_TIMEOUT_SECONDS,
    FILE_READ_TIMEOUT_SECONDS,
    deliver,
    deliver_batch,
    deliver_queue,
    deliver_queue_url,
    make_status_sync,
    make_void,
    red_batch,
    status_sync_sweep,
)
from chalicelib.wiring_web import (  # noqa: E402
    _AUTH_FACTORIES,
    _LINK_FACTORIES,
    auth_store,
    customer_page,
    dashboard,
    invoice_counter,
    link_rate_limit,
    links,
    make_retitle,
    operator_auth,
    order_reads,
    retitle,
    store_api,
    store_keys,
    title_requests,
)

__all__ = [
    "FILE_CONNECT_TIMEOUT_SECONDS",
    "FILE_READ_TIMEOUT_SECONDS",
    "auth_store",
    "customer_page",
    "dashboard",
    "deliver",
    "deliver_batch",
    "deliver_queue",
    "deliver_queue_url",
    "invoice_counter",
    "link_rate_limit",
    "links",
    "make_retitle",
    "make_status_sync",
    "make_void",
    "operator_auth",
    "order_reads",
    "red_batch",
    "retitle",
    "status_sync_sweep",
    "store_api",
    "store_keys",
    "title_requests",
]
