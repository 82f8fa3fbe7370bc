"""The composition root's after-issuing part (re-exported by ``chalicelib.wiring``): delivery (the
invoice's files, e-mail, SMS), void, batch reversal and the status sync."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from chalicelib.config import settings
from chalicelib.wiring import archive_log, ledger, logger, metrics, queue, secrets, stores, transport, utcnow
from chalicelib.wiring_web import links

if TYPE_CHECKING:
    from chalicelib.adapters.alerts import SnsAlerts
    from chalicelib.adapters.credentials import SecretCredentials
    from chalicelib.adapters.deliver_queue import DeliverQueue
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.services.deliver import DeliverInvoice
    from chalicelib.services.deliver_batch import DeliverBatch
    from chalicelib.services.exchange import Exchange
    from chalicelib.services.red_batch import RedBatch
    from chalicelib.services.red_ports import RedLedger
    from chalicelib.services.sync import StatusSync, SyncLedger
    from chalicelib.services.void import VoidInvoices
    from chalicelib.taxapi.registry import Providers


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
@dataclass(frozen=True)
class _TaxParts:
    """The parts the after-sale use cases share with the issuing one (providers, exchange, alerts)."""

    stores: StoreRegistry
    credentials: SecretCredentials
    providers: Providers
    exchange: Exchange
    alerts: SnsAlerts


def _tax_parts() -> _TaxParts:
    from chalicelib.adapters.alerts import SnsAlerts
    from chalicelib.adapters.credentials import SecretCredentials
    from chalicelib.services.exchange import Exchange
    from chalicelib.taxapi.registry import Providers

    s = settings()
    providers = Providers(s, send=transport().send)
    return _TaxParts(
        stores=stores(),
        credentials=SecretCredentials(secrets()),
        providers=providers,
        exchange=Exchange(providers=providers, transport=transport(), logger=logger, recorder=archive_log()),
        alerts=SnsAlerts(s.alarm_topic_arn),
    )


def make_status_sync(
    *, order_ledger: SyncLedger | None = None, clock: Callable[[], datetime] | None = None
) -> StatusSync:
    from chalicelib.services.sync import StatusSync

    p = _tax_parts()
    return StatusSync(
        ledger=order_ledger or ledger(),
        stores=p.stores,
        credentials=p.credentials,
        providers=p.providers,
        exchange=p.exchange,
        alerts=p.alerts,
        logger=logger,
        clock=clock or utcnow,
    )


def make_void(*, order_ledger: RedLedger | None = None, clock: Callable[[], datetime] | None = None) -> VoidInvoices:
    from chalicelib.services.void import VoidInvoices

    p = _tax_parts()
    return VoidInvoices(
        ledger=order_ledger or ledger(),
        stores=p.stores,
        credentials=p.credentials,
        providers=p.providers,
        exchange=p.exchange,
        alerts=p.alerts,
        logger=logger,
        clock=clock or utcnow,
    )


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
