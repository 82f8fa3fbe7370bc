"""Issue the blue invoice of one order record, exactly once, and record what the tax platform said.

The use case sees ports only (the ledger, the store registry, a credentials loader, a provider
factory, a transport, an alert sink, a re-queue and a metrics sink), never boto3, so it runs the same
in Lambda, against moto with the local sandbox, and in unit tests with fakes. The state machine and the
exactly-once argument are in ``docs/issuing.md``; in short:

1. **Claim** the order in the ledger (conditional write: claimable status, no live lease) with a fresh
   claim id and a lease a little longer than the worker's timeout. A live lease held by another worker
   → :class:`LeaseHeld` (retryable: SQS redelivers later). A terminal status → nothing to do.
2. The **serial** is derived from the order key (:func:`serial_for`), so every attempt of an order
   sends the same one and the provider's de-duplication on it protects us.
3. Before an issue request leaves, the ledger counts it (``sends``). Whenever ``sends > 0`` (a crash,
   a timeout, an ambiguous reply, a takeover), the next attempt **queries by serial first** and takes
   what it finds; only "not found" leads to a new issue request — with the same serial.
4. Acceptance is not issuance: after ``accepted`` the result is polled briefly in the same invocation;
   still pending → the status stays ``accepted``, the lease is released and the order is **re-enqueued
   with a delay** (the current message is then deleted), so waiting for the platform does not use up
   the message's receive count; after ``max_polls`` re-enqueues it falls back to raising.
5. Every later write is **fenced** on the claim id: a worker whose lease expired and was taken over
   cannot overwrite the newer attempt (:class:`LeaseLost`).

Errors, by the taxonomy of ``chalicelib.domain.errors``: Retryable → release, raise; Ambiguous →
``ambiguous``, release, raise (next attempt queries first); Duplicate → query the existing invoice and
record it; Permanent → ``failed`` with the provider code and field, no raise; Auth → ``failed_auth``,
alert naming the store, raise (→ DLQ after the receives run out).

Refunds (``kind == "refunded"``) are recorded as ``refund_pending``: the red flow is not automated yet.

Every tax interaction is logged (operation, serial, provider, HTTP status, provider status/code,
outcome, elapsed ms); never secrets, never a full buyer tax id (``mask``).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger

from chalicelib.config import WORKER_TIMEOUT_SECONDS
from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    EInvoiceError,
    NotFound,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
)
from chalicelib.domain.models import InvoiceOrder, Store
from chalicelib.domain.taxpayer import mask
from chalicelib.taxapi.base import Credentials, HttpRequest, HttpResponse, InvoiceResult, InvoiceStatus, Provider

T = TypeVar("T")

#: Serial = prefix + the first hex digits of SHA-256(order key), upper case: 20 characters fits
#: Nuonuo's orderNo (≤ 20) and the STA fpqqlsh (≤ 40); 72 bits make a collision within one seller
#: practically impossible.
SERIAL_PREFIX = "EI"
SERIAL_LENGTH = 20
#: The lease outlives the worker's timeout: a live attempt is never taken over, a dead one soon is.
LEASE_SECONDS = WORKER_TIMEOUT_SECONDS + 30
#: Short polls after acceptance, within the same invocation (seconds).
POLL_DELAYS: tuple[float, ...] = (1.0, 2.0)
#: Delays of the re-enqueued message while the platform is still issuing (SQS allows ≤ 900 s).
REQUEUE_DELAYS: tuple[int, ...] = (20, 60, 120, 300, 600, 900)
#: After this many re-enqueues the worker raises instead (the message then heads for the DLQ).
MAX_POLLS = 12

#: Statuses after which a message for the order is a no-op.
TERMINAL_STATUSES = frozenset({"issued", "failed", "held", "rejected", "refund_pending"})
#: Provider codes of "no such record" on a query (STA E4004, Nuonuo E9500).
NOT_FOUND_CODES = frozenset({"E4004", "E9500"})


def serial_for(order_key: str) -> str:
    """The deterministic request serial of an order: the same on every attempt and every worker."""
    digest = hashlib.sha256(order_key.encode("utf-8")).hexdigest().upper()
    return SERIAL_PREFIX + digest[: SERIAL_LENGTH - len(SERIAL_PREFIX)]


# --- errors of the use case (all retryable: SQS redelivers the message) ---------------------------
class LeaseHeld(RetryableTaxError):
    """Another worker holds a live lease on the order: try again after the visibility timeout."""

    code = "lease_held"


class LeaseLost(RetryableTaxError):
    """Our lease expired and another attempt took the order over: stop writing, let it finish."""

    code = "lease_lost"


class StillPending(RetryableTaxError):
    """Accepted long ago and still not issued after every re-enqueue: let SQS retry, then the DLQ."""

    code = "still_pending"


# --- ports ----------------------------------------------------------------------------------------
class IssueLedger(Protocol):
    def get_order(self, order_key: str) -> Any: ...
    def claim_order(
        self, order_key: str, claim_id: str, *, serial: str, now: float, lease_seconds: float
    ) -> tuple[bool, Any, dict[str, Any]]: ...
    def update_claimed(
        self,
        order_key: str,
        claim_id: str,
        *,
        status: str | None = None,
        fields: dict[str, str | int | None] | None = None,
        add_sends: bool = False,
        release: bool = False,
    ) -> bool: ...
    def mark_refund_pending(self, order_key: str) -> bool: ...


class StorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


class CredentialsPort(Protocol):
    def load(self, store: Store) -> Credentials: ...


class ProviderPort(Protocol):
    def get(self, store: Store, credentials: Credentials) -> Provider: ...
    def refreshed(self, store: Store, credentials: Credentials, error: TaxError) -> Provider | None: ...


class TransportPort(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse: ...


class AlertPort(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


class RequeuePort(Protocol):
    def requeue(self, order_key: str, kind: str, *, delay_seconds: int, poll: int) -> None: ...


class MetricsPort(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> Any: ...


class _NoMetrics:
    def add_metric(self, name: str, unit: Any, value: float) -> None:
        return None


@dataclass(frozen=True)
class IssueOutcome:
    """What one attempt did. ``status`` is the order's status afterwards (``skipped``: nothing done)."""

    order_key: str
    status: str
    invoice_number: str | None = None
    detail: str = ""


@dataclass
class _Attempt:
    """The mutable state of one claimed attempt."""

    order_key: str
    kind: str
    claim_id: str
    serial: str
    prior_status: str
    query_first: bool
    poll: int
    store: Store | None = None
    credentials: Credentials | None = None
    provider: Provider | None = None
    order: InvoiceOrder | None = None
    provider_ref: str | None = None
    accepted: bool = False
    #: The outcome of an earlier issue request is unknown (an ambiguous reply not yet resolved by a query).
    unknown: bool = False
    released: bool = False
    timings: list[str] = field(default_factory=list)

    @property
    def provider_name(self) -> str:
        return self.provider.name if self.provider is not None else ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _claim_id() -> str:
    return uuid.uuid4().hex


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class IssueInvoice:
    """The blue-invoice use case: ``issue(order_key, kind, poll=n)`` runs one attempt for one record."""

    def __init__(
        self,
        *,
        ledger: IssueLedger,
        stores: StorePort,
        credentials: CredentialsPort,
        providers: ProviderPort,
        transport: TransportPort,
        alerts: AlertPort,
        requeue: RequeuePort,
        metrics: MetricsPort | None = None,
        logger: Logger | None = None,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        claim_ids: Callable[[], str] = _claim_id,
        lease_seconds: float = LEASE_SECONDS,
        poll_delays: tuple[float, ...] = POLL_DELAYS,
        requeue_delays: tuple[int, ...] = REQUEUE_DELAYS,
        max_polls: int = MAX_POLLS,
    ) -> None:
        self.ledger = ledger
        self.stores = stores
        self.credentials = credentials
        self.providers = providers
        self.transport = transport
        self.alerts = alerts
        self.requeue = requeue
        self.metrics: MetricsPort = metrics or _NoMetrics()
        self.log = logger or Logger(child=True)
        self.clock = clock
        self.sleep = sleep
        self.claim_ids = claim_ids
        self.lease_seconds = lease_seconds
        self.poll_delays = poll_delays
        self.requeue_delays = requeue_delays
        self.max_polls = max_polls

    # --- entry ------------------------------------------------------------------------------------
    def issue(self, order_key: str, kind: str = "paid", *, poll: int = 0) -> IssueOutcome:
        """Run one attempt. Returns normally when the message is done with; raises to have it retried."""
        record = self.ledger.get_order(order_key)
        if record is None:
            raise NotFound(f"no order record {order_key}")
        if record.kind == "refunded":
            return self._refund(record)
        if record.status in TERMINAL_STATUSES:
            self.log.info("order needs nothing", extra={"order_key": order_key, "status": record.status})
            return IssueOutcome(order_key, "skipped", detail=record.status)

        claim_id = self.claim_ids()
        claimed, before, fields = self.ledger.claim_order(
            order_key,
            claim_id,
            serial=serial_for(order_key),
            now=self.clock().timestamp(),
            lease_seconds=self.lease_seconds,
        )
        if not claimed:
            if before is None:
                raise NotFound(f"no order record {order_key}")
            status = str(fields.get("status", ""))
            if status == "issuing":
                self._metric("LeaseHeld")
                self.log.info("order leased by another worker", extra={"order_key": order_key})
                raise LeaseHeld(f"order {order_key} is being issued by another worker")
            self.log.info("order needs nothing", extra={"order_key": order_key, "status": status})
            return IssueOutcome(order_key, "skipped", detail=status)

        prior = str(fields.get("status", ""))
        attempt = _Attempt(
            order_key=order_key,
            kind=before.kind,
            claim_id=claim_id,
            serial=str(fields.get("serial") or serial_for(order_key)),
            prior_status=prior,
            query_first=int(fields.get("sends") or 0) > 0 or prior in ("ambiguous", "accepted"),
            poll=poll,
            provider_ref=fields.get("provider_ref"),
            accepted=prior == "accepted",
            unknown=prior == "ambiguous",
        )
        self.log.info(
            "order claimed",
            extra={
                "order_key": order_key,
                "serial": attempt.serial,
                "prior_status": prior,
                "query_first": attempt.query_first,
                "claims": int(fields.get("claims") or 0) + 1,
            },
        )
        return self._run(attempt, before)

    __call__ = issue

    # --- one claimed attempt, with the error taxonomy -----------------------------------------------
    def _run(self, a: _Attempt, record: Any) -> IssueOutcome:
        try:
            self._prepare(a, record)
            if a.query_first:
                found = self._query(a)
                if found is not None:
                    return self._settle(a, found)
                self.log.info("query first: nothing under this serial, issuing", extra=self._keys(a))
            return self._issue(a)
        except LeaseLost:
            raise
        except AuthTaxError as exc:
            self._auth_failed(a, exc)
            raise
        except AmbiguousTaxError as exc:
            self._metric("TaxAmbiguous")
            self._release(a, "accepted" if a.accepted else "ambiguous", exc)
            raise
        except RetryableTaxError as exc:
            self._metric("TaxRetryable")
            self._release(a, self._resting_status(a), exc)
            raise
        except PermanentTaxError as exc:
            # Only refusals of the issue request itself reach here (query refusals become Ambiguous).
            return self._failed(a, exc)
        except BaseException as exc:
            self._release(a, self._resting_status(a), exc)
            raise

    def _prepare(self, a: _Attempt, record: Any) -> None:
        a.store = self.stores.get(record.store_id)
        a.credentials = self.credentials.load(a.store)
        a.provider = self.providers.get(a.store, a.credentials)
        a.order = InvoiceOrder.model_validate(record.payload["order"])

    def _issue(self, a: _Attempt) -> IssueOutcome:
        assert a.order is not None and a.provider is not None
        # Counted before the request leaves: from now on every attempt queries by serial first.
        if not self.ledger.update_claimed(
            a.order_key, a.claim_id, add_sends=True, fields={"provider": a.provider.name}
        ):
            raise LeaseLost(f"order {a.order_key}: lease lost before issuing")
        a.query_first = True
        order = a.order
        now = self.clock()
        self.log.info(
            "issuing",
            extra={
                **self._keys(a),
                "total": str(order.total),
                "lines": len(order.lines),
                "buyer_tax_id": mask(order.buyer.tax_id),
                "invoice_type": order.invoice_type.value,
            },
        )
        try:
            accepted = self._exchange(
                a, "issue", lambda p: p.build_issue(order, a.serial, now), lambda p, rq, rs: p.parse_issue(rq, rs)
            )
        except DuplicateTaxError as exc:
            self._metric("TaxDuplicate")
            self.log.info("duplicate serial: fetching the existing invoice", extra=self._keys(a))
            found = self._query(a)
            if found is None:
                raise AmbiguousTaxError(
                    "the platform reports a duplicate, but a query by serial finds nothing yet",
                    provider_code=exc.provider_code,
                ) from exc
            return self._settle(a, found)
        a.accepted = True
        a.provider_ref = accepted.provider_ref or a.provider_ref
        self._write(a, status="accepted", fields={"provider_ref": a.provider_ref})
        return self._poll(a)

    def _poll(self, a: _Attempt) -> IssueOutcome:
        for delay in self.poll_delays:
            self.sleep(delay)
            found = self._query(a)
            if found is not None and found.status is not InvoiceStatus.PENDING:
                return self._settle(a, found)
        return self._defer(a)

    def _query(self, a: _Attempt) -> InvoiceResult | None:
        """The result under our serial, or None when the platform knows nothing of it."""
        now = self.clock()
        try:
            results = self._exchange(
                a,
                "query",
                lambda p: p.build_query(now, serials=(a.serial,)),
                lambda p, rq, rs: p.parse_query(rq, rs),
            )
        except PermanentTaxError as exc:
            if exc.provider_code in NOT_FOUND_CODES or exc.code == "tax_not_found":
                a.unknown = False
                return None
            # A query cannot be "permanently" answered: the invoice may exist. Treat as unknown.
            raise AmbiguousTaxError(f"query by serial refused ({exc.code})", provider_code=exc.provider_code) from exc
        found = next((r for r in results if r.serial == a.serial), None)
        a.unknown = False  # the platform answered: whatever we knew before, we know now
        self.log.info(
            "query result",
            extra={
                **self._keys(a),
                "found": found is not None,
                "result_status": found.status.value if found else None,
                "provider_status": found.provider_status if found else None,
            },
        )
        return found

    def _settle(self, a: _Attempt, result: InvoiceResult) -> IssueOutcome:
        if result.status is InvoiceStatus.ISSUED:
            return self._issued(a, result)
        if result.status is InvoiceStatus.PENDING:
            if not a.accepted:
                a.accepted = True
                self._write(a, status="accepted", fields={"provider_ref": a.provider_ref})
            return self._poll(a)
        # FAILED (the platform gave up on this serial) or a voided blue invoice: a human decides.
        reason = result.failure_reason or f"the platform reports {result.status.value}"
        return self._failed(
            a,
            PermanentTaxError(reason, provider_code=result.provider_status, code=f"invoice_{result.status.value}"),
        )

    # --- terminal and resting writes --------------------------------------------------------------
    def _issued(self, a: _Attempt, result: InvoiceResult) -> IssueOutcome:
        issued_at = result.issued_at or self.clock()
        self._write(
            a,
            status="issued",
            release=True,
            fields={
                "invoice_number": result.invoice_number,
                "issued_at": issued_at.isoformat(),
                "pdf_url": result.pdf_url,
                "ofd_url": result.ofd_url,
                "xml_url": result.xml_url,
                "provider_status": result.provider_status,
                "provider_ref": a.provider_ref,
                "total_amount": str(result.total_amount) if result.total_amount is not None else None,
                "total_tax": str(result.total_tax) if result.total_tax is not None else None,
                "last_error": None,
            },
        )
        self._metric("InvoiceIssued")
        self.log.info(
            "invoice issued", extra={**self._keys(a), "invoice_number": result.invoice_number, "timings": a.timings}
        )
        return IssueOutcome(a.order_key, "issued", invoice_number=result.invoice_number)

    def _failed(self, a: _Attempt, exc: PermanentTaxError) -> IssueOutcome:
        self._write(
            a,
            status="failed",
            release=True,
            fields={
                "failure_code": exc.provider_code or exc.code,
                "failure_field": exc.field,
                "failure_reason": _short(exc.message),
            },
        )
        self._metric("InvoiceFailed")
        self.log.warning(
            "invoice failed permanently",
            extra={**self._keys(a), "code": exc.code, "provider_code": exc.provider_code, "field": exc.field},
        )
        return IssueOutcome(a.order_key, "failed", detail=exc.provider_code or exc.code)

    def _defer(self, a: _Attempt) -> IssueOutcome:
        if a.poll >= self.max_polls:
            raise StillPending(f"order {a.order_key}: still pending after {a.poll} re-enqueues")
        delay = self.requeue_delays[min(a.poll, len(self.requeue_delays) - 1)]
        self._write(a, status="accepted", release=True, fields={"polls": a.poll + 1})
        a.released = True
        self.requeue.requeue(a.order_key, a.kind, delay_seconds=delay, poll=a.poll + 1)
        self._metric("InvoiceDeferred")
        self.log.info("still issuing: re-enqueued", extra={**self._keys(a), "delay_seconds": delay, "poll": a.poll + 1})
        return IssueOutcome(a.order_key, "accepted", detail=f"re-enqueued in {delay}s")

    def _auth_failed(self, a: _Attempt, exc: AuthTaxError) -> None:
        self._metric("TaxAuthFailed")
        self._release(a, "failed_auth", exc)
        self.log.error(
            "tax platform refused our credentials",
            extra={**self._keys(a), "code": exc.code, "provider_code": exc.provider_code},
        )
        if a.prior_status == "failed_auth":
            return  # alerted on the first failure already; the DLQ alarm covers the rest
        store = a.store
        store_id = store.store_id if store is not None else a.order_key.split(":", 1)[0]
        store_name = store.name if store is not None else ""
        secret = store.provider.credentials_secret if store is not None else "?"
        subject = f"einvoice: tax credentials refused for store {store_id}"[:100]
        message = (
            f"The tax platform ({a.provider_name or 'provider'}) refused the credentials of store {store_id} "
            f"{store_name} ({exc.provider_code or exc.code}) while issuing order {a.order_key}.\n"
            f"Invoices of this store cannot be issued until the credentials in secret {secret} are fixed. "
            "The order's message will reach the dead-letter queue; redrive it once fixed."
        )
        try:
            self.alerts.publish(subject, message)
        except Exception:
            self.log.exception("could not publish the credentials alert", extra=self._keys(a))

    def _release(self, a: _Attempt, status: str, exc: BaseException) -> None:
        if a.released:
            return
        a.released = True
        code = exc.code if isinstance(exc, EInvoiceError) else type(exc).__name__
        provider_code = exc.provider_code if isinstance(exc, TaxError) else None
        last_error = f"{code}" + (f" {provider_code}" if provider_code else "")
        ok = self.ledger.update_claimed(
            a.order_key, a.claim_id, status=status, release=True, fields={"last_error": _short(last_error, 120)}
        )
        if not ok:
            self.log.warning("lease lost before release", extra=self._keys(a))
        self.log.info("claim released", extra={**self._keys(a), "status": status, "error": last_error})

    def _resting_status(self, a: _Attempt) -> str:
        """Where a released order rests. Labels for humans: the query-first rule hangs on ``sends``."""
        if a.accepted:
            return "accepted"
        return "ambiguous" if a.unknown else "retrying"

    def _write(
        self, a: _Attempt, *, status: str, release: bool = False, fields: dict[str, str | int | None] | None = None
    ) -> None:
        if not self.ledger.update_claimed(a.order_key, a.claim_id, status=status, fields=fields, release=release):
            a.released = True  # not ours any more: nothing to release
            raise LeaseLost(f"order {a.order_key}: lease lost, not writing {status}")
        if release:
            a.released = True

    # --- refunds ----------------------------------------------------------------------------------
    def _refund(self, record: Any) -> IssueOutcome:
        moved = self.ledger.mark_refund_pending(record.order_key)
        if moved:
            self._metric("RefundPending")
            self.log.warning(
                "refund recorded as refund_pending: the red flow is not automated yet",
                extra={"order_key": record.order_key},
            )
            return IssueOutcome(record.order_key, "refund_pending")
        return IssueOutcome(record.order_key, "skipped", detail=record.status)

    # --- one tax interaction, logged and timed ------------------------------------------------------
    def _exchange(
        self,
        a: _Attempt,
        operation: str,
        build: Callable[[Provider], HttpRequest],
        parse: Callable[[Provider, HttpRequest, HttpResponse], T],
    ) -> T:
        assert a.provider is not None and a.store is not None and a.credentials is not None
        try:
            return self._send_once(a, a.provider, operation, build, parse)
        except AuthTaxError as exc:
            fresh = self.providers.refreshed(a.store, a.credentials, exc)
            if fresh is None:
                raise
            self.log.info("access token refreshed after a token error", extra={**self._keys(a), "op": operation})
            a.provider = fresh
            return self._send_once(a, fresh, operation, build, parse)

    def _send_once(
        self,
        a: _Attempt,
        provider: Provider,
        operation: str,
        build: Callable[[Provider], HttpRequest],
        parse: Callable[[Provider, HttpRequest, HttpResponse], T],
    ) -> T:
        request = build(provider)
        started = time.monotonic()
        response: HttpResponse | None = None
        try:
            response = self.transport.send(request)
            result = parse(provider, request, response)
        except TaxError as exc:
            elapsed = round((time.monotonic() - started) * 1000)
            a.timings.append(f"{operation}:{elapsed}ms:{exc.code}")
            self.log.warning(
                "tax call failed",
                extra={
                    **self._keys(a),
                    "op": operation,
                    "http_status": response.status if response is not None else None,
                    "outcome": exc.code,
                    "provider_code": exc.provider_code,
                    "field": exc.field,
                    "elapsed_ms": elapsed,
                },
            )
            raise
        elapsed = round((time.monotonic() - started) * 1000)
        a.timings.append(f"{operation}:{elapsed}ms")
        self.log.info(
            "tax call",
            extra={
                **self._keys(a),
                "op": operation,
                "http_status": response.status,
                "outcome": "ok",
                "provider_ref": getattr(result, "provider_ref", None),
                "elapsed_ms": elapsed,
            },
        )
        return result

    # --- helpers ----------------------------------------------------------------------------------
    def _keys(self, a: _Attempt) -> dict[str, Any]:
        return {"order_key": a.order_key, "serial": a.serial, "provider": a.provider_name}

    def _metric(self, name: str) -> None:
        try:
            self.metrics.add_metric(name=name, unit="Count", value=1)
        except Exception:
            self.log.debug("metric not recorded", extra={"metric": name})
