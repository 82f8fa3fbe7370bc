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
    from chalicelib.adapters.auth_store import AuthStore
    from chalicelib.adapters.http import HttpTransport
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.order_reads import OrderReads
    from chalicelib.adapters.queue import IssueQueue
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.services.auth import OperatorAuth, StoreKeys
    from chalicelib.services.customer_page import CustomerPage, RateLimit
    from chalicelib.services.dashboard import Dashboard, InvoiceCounter
    from chalicelib.services.links import Links
    from chalicelib.services.retitle import Retitle
    from chalicelib.services.store_api import StoreInvoiceApi
    from chalicelib.services.title_request import TitleRequests

if TYPE_CHECKING:  # after-sale (void, batch reversal, status sync)
    from chalicelib.services.red_batch import RedBatch
    from chalicelib.services.sync import StatusSync
    from chalicelib.services.void import VoidInvoices

if TYPE_CHECKING:  # delivery (chalicelib/services/deliver.py)
    from chalicelib.adapters.deliver_queue import DeliverQueue
    from chalicelib.services.deliver import DeliverInvoice
    from chalicelib.services.deliver_batch import DeliverBatch

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
) -> IssueInvoice:
    """The issuing use case with this container's adapters (``ledger`` and ``clock`` replaceable:
    the virtual-time tests drive the real use case through hours in seconds)."""
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
        use_case.red.settle.on_issued.append(make_retitle(use_case.ledger, issue_queue, clock=clock).red_issued)
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
    use_case = make_issue(recorder=archive_log())
    use_case.settle.counters = invoice_counter()  # the dashboard's counts (the real ledger only)
    return use_case


@cache
def batch_worker() -> BatchWorker:
    return make_worker(issue(), queue(), archive=archive_log())


def sweep_grace_seconds() -> int:
    return SWEEP_GRACE_SECONDS


# --- authentication, the store invoice API, the dashboard (chalicelib/routes/{auth,store_api,admin}.py)
@cache
def auth_store() -> AuthStore:
    from chalicelib.adapters.auth_store import AuthStore

    return AuthStore(settings().ledger_table)


@cache
def store_keys() -> StoreKeys:
    from chalicelib.services.auth import StoreKeys

    return StoreKeys(auth_store(), clock=time.time)


@cache
def operator_auth() -> OperatorAuth:
    from chalicelib.services.auth import OperatorAuth

    return OperatorAuth(auth_store(), clock=time.time)


@cache
def order_reads() -> OrderReads:
    from chalicelib.adapters.order_reads import OrderReads

    return OrderReads(ledger())


@cache
def invoice_counter() -> InvoiceCounter:
    from chalicelib.adapters.counters import DynamoCounters
    from chalicelib.services.dashboard import InvoiceCounter

    return InvoiceCounter(DynamoCounters(settings().ledger_table), logger)


@cache
def store_api() -> StoreInvoiceApi:
    from chalicelib.adapters.presign import S3Presigner
    from chalicelib.services.store_api import StoreInvoiceApi

    return StoreInvoiceApi(store_keys(), stores(), order_reads(), S3Presigner(settings().invoice_bucket))


@cache
def dashboard() -> Dashboard:
    from chalicelib.adapters.counters import DynamoCounters
    from chalicelib.services.dashboard import Dashboard

    return Dashboard(DynamoCounters(settings().ledger_table), order_reads(), _StoreNames(), clock=utcnow)


class _StoreNames:
    """store id → name for the dashboard (the registry's listing: one small scan of the stores table)."""

    def names(self) -> dict[str, str]:
        return {s.store_id: s.name for s in stores().list()}


_AUTH_FACTORIES = (auth_store, store_keys, operator_auth, order_reads, invoice_counter, store_api, dashboard)


# --- the customer's link (chalicelib/services/links.py, customer_page.py, title_request.py) ---------
@cache
def links() -> Links:
    """The link use case the delivery worker, the pages and ``einvoice links`` share."""
    from chalicelib.adapters.links import LinkStore
    from chalicelib.services.links import Links

    return Links(LinkStore(settings().ledger_table), base_url=settings().public_base_url)


@cache
def customer_page() -> CustomerPage:
    from chalicelib.adapters.presign import S3Presigner
    from chalicelib.services.customer_page import CustomerPage

    s = settings()
    return CustomerPage(
        orders=ledger(), stores=stores(), files=S3Presigner(s.invoice_bucket), pdf_url_seconds=s.pdf_url_seconds
    )


@cache
def link_rate_limit() -> RateLimit:
    from chalicelib.adapters.rate_limit import DynamoRateCounter
    from chalicelib.services.customer_page import RateLimit

    s = settings()
    counter = DynamoRateCounter(s.ledger_table)
    return RateLimit(counter, limit=s.link_rate_limit, window_seconds=s.link_rate_window_seconds, logger=logger)


def make_retitle(order_ledger: object, issue_queue: object, *, clock: Callable[[], float] | None = None) -> Retitle:
    """换开 (chalicelib/services/retitle.py) on this ledger and issue queue."""
    from chalicelib.services.retitle import Retitle, RetitleLedger, RetitleQueue

    return Retitle(
        ledger=cast("RetitleLedger", order_ledger),
        queue=cast("RetitleQueue", issue_queue),
        stores=stores(),
        logger=logger,
        clock=clock or time.time,
    )


@cache
def retitle() -> Retitle:
    return make_retitle(ledger(), queue())


@cache
def title_requests() -> TitleRequests:
    from chalicelib.adapters.taxcodes import TaxCodeSource
    from chalicelib.services.rejections import FixRejected
    from chalicelib.services.title_request import TitleRequests

    taxcodes = TaxCodeSource(settings().config_bucket)
    fix = FixRejected(ledger=ledger(), stores=stores(), taxcodes=taxcodes, queue=queue())
    return TitleRequests(
        ledger=ledger(), stores=stores(), taxcodes=taxcodes, fix=fix, retitle=_retitle_from_title_change
    )


def _retitle_from_title_change(order_key: str) -> object:
    """The title form's 换开 trigger: the change is recorded already, so a failure here is logged (the
    customer's request stands; ``einvoice invoices retitle`` continues it)."""
    try:
        return retitle().from_title_change(order_key)
    except Exception:
        logger.exception("换开 not started from the title form", extra={"order_key": order_key})
        return None


_LINK_FACTORIES = (links, customer_page, link_rate_limit, title_requests, retitle)


# --- delivery: the invoice's files, e-mail and SMS (chalicelib/services/deliver.py) ------------------
#: Provider files (PDF / OFD / XML) are fetched with these timeouts and never resent by the transport.
FILE_CONNECT_TIMEOUT_SECONDS = 3.0
FILE_READ_TIMEOUT_SECONDS = 10.0


def deliver_queue_url() -> str:
    """The deliver queue (DELIVER_QUEUE_URL, from infra/resources.py's binding); empty: none."""
    import os

    return os.environ.get("DELIVER_QUEUE_URL", "")


@cache
def deliver_queue() -> DeliverQueue | None:
    from chalicelib.adapters.deliver_queue import DeliverQueue

    url = deliver_queue_url()
    return DeliverQueue(url) if url else None


@cache
def deliver() -> DeliverInvoice:
    import os

    from chalicelib.adapters.documents import HttpFiles, ProjectPdf, S3Documents
    from chalicelib.adapters.http import HttpTransport
    from chalicelib.adapters.mailer import SesMailer, SnsSms
    from chalicelib.domain.delivery import MAX_PROVIDER_FILE_BYTES
    from chalicelib.services.deliver import DeliverInvoice

    files = HttpTransport(
        connect_timeout=FILE_CONNECT_TIMEOUT_SECONDS,
        read_timeout=FILE_READ_TIMEOUT_SECONDS,
        retries=0,
        max_response_bytes=MAX_PROVIDER_FILE_BYTES,
    )
    return DeliverInvoice(
        ledger=ledger(),
        stores=stores(),
        documents=S3Documents(settings().invoice_bucket, os.environ.get("DATA_KEY_ID", "")),
        fetcher=HttpFiles(files),
        pdf=ProjectPdf(),
        links=links(),
        mailer=SesMailer(os.environ.get("SES_CONFIGURATION_SET", "")),
        sms=SnsSms(),
        metrics=metrics(),
        logger=logger,
    )


@cache
def deliver_batch() -> DeliverBatch:
    from chalicelib.services.deliver_batch import DeliverBatch

    queue_ = deliver_queue()
    if queue_ is None:
        from chalicelib.domain.errors import ConfigurationError

        raise ConfigurationError("the deliver queue: DELIVER_QUEUE_URL is not set", code="no_deliver_queue")
    return DeliverBatch(use_case=deliver(), queue=queue_, logger=logger)


_DELIVERY_FACTORIES = (deliver_queue, deliver, deliver_batch)


# --- after-sale: void, batch reversal, status sync (chalicelib/services/{void,red_batch,sync}.py) ---
def _tax_parts() -> dict[str, object]:
    """The parts the after-sale use cases share with the issuing one (providers, exchange, alerts)."""
    from chalicelib.adapters.alerts import SnsAlerts
    from chalicelib.adapters.credentials import SecretCredentials
    from chalicelib.services.exchange import Exchange
    from chalicelib.taxapi.registry import Providers

    s = settings()
    providers = Providers(s, send=transport().send)
    exchange = Exchange(providers=providers, transport=transport(), logger=logger, recorder=archive_log())
    return {
        "stores": stores(),
        "credentials": SecretCredentials(secrets()),
        "providers": providers,
        "exchange": exchange,
        "alerts": SnsAlerts(s.alarm_topic_arn),
        "logger": logger,
    }


def make_status_sync(*, order_ledger: object | None = None, clock: Callable[[], datetime] | None = None) -> StatusSync:
    from chalicelib.services.sync import StatusSync, SyncLedger

    return StatusSync(ledger=cast("SyncLedger", order_ledger or ledger()), clock=clock or utcnow, **_tax_parts())  # type: ignore[arg-type]


def make_void(*, order_ledger: object | None = None, clock: Callable[[], datetime] | None = None) -> VoidInvoices:
    from chalicelib.services.red_ports import RedLedger
    from chalicelib.services.void import VoidInvoices

    return VoidInvoices(ledger=cast("RedLedger", order_ledger or ledger()), clock=clock or utcnow, **_tax_parts())  # type: ignore[arg-type]


def status_sync_sweep(now: float) -> int:
    """The sweeper's slow status sync: runs once every ``SYNC_EVERY_MINUTES`` (``sync.due_now``)."""
    from chalicelib.services.sync import due_now

    if not due_now(now):
        return 0
    try:
        return make_status_sync().sweep([s.store_id for s in stores().list()])
    except Exception:  # the sync never stops the sweeper's own work
        logger.exception("the status sync failed")
        return 0


def red_batch() -> RedBatch:
    from chalicelib.services.red_batch import RedBatch

    return RedBatch(ledger=ledger(), queue=queue(), clock=utcnow)


def reset() -> None:
    """Forget every built adapter and cached token (tests switch stacks between cases)."""
    from chalicelib.taxapi.registry import clear_token_caches

    for factory in (metrics, ledger, stores, secrets, queue, transport, ingest, issue, batch_worker):
        factory.cache_clear()
    for auth_factory in _AUTH_FACTORIES:
        auth_factory.cache_clear()
    for link_factory in _LINK_FACTORIES:
        link_factory.cache_clear()
    for delivery_factory in _DELIVERY_FACTORIES:
        delivery_factory.cache_clear()
    for archive_factory in (archive_store, archive_log, manifest_job):
        archive_factory.cache_clear()
    clear_token_caches()
