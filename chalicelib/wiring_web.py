"""The composition root's HTTP part (re-exported by ``chalicelib.wiring``): store keys, operators'
sessions, the store invoice API, the dashboard, the customer's link and page, the title form, 换开."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from chalicelib.config import settings
from chalicelib.wiring import ledger, logger, queue, stores, utcnow

if TYPE_CHECKING:
    from chalicelib.adapters.auth_store import AuthStore
    from chalicelib.adapters.order_reads import OrderReads
    from chalicelib.services.auth import OperatorAuth, StoreKeys
    from chalicelib.services.customer_page import CustomerPage, RateLimit
    from chalicelib.services.dashboard import Dashboard, InvoiceCounter
    from chalicelib.services.links import Links
    from chalicelib.services.retitle import Retitle, RetitleLedger, RetitleQueue
    from chalicelib.services.store_api import StoreInvoiceApi
    from chalicelib.services.title_request import TitleRequests


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


def make_retitle(
    order_ledger: RetitleLedger, issue_queue: RetitleQueue, *, clock: Callable[[], float] | None = None
) -> Retitle:
    """换开 (chalicelib/services/retitle.py) on this ledger and issue queue."""
    from chalicelib.services.retitle import Retitle

    return Retitle(ledger=order_ledger, queue=issue_queue, stores=stores(), logger=logger, clock=clock or time.time)


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
