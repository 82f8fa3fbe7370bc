"""One tax interaction: build → send → parse, logged and timed, with one token refresh on a token error.

The one fact the issuing service must never get wrong is whether an issue request *may have left*:
:class:`Exchange` sets ``Sent.may_have_left`` immediately before the transport is called and never
otherwise, so a failure while building the request (a mapping bug, a token that could not be fetched)
leaves it False and the order is simply retried — never queried-first into the dead-letter queue.

Every interaction is logged (operation, serials, provider, HTTP status, outcome, provider code, field,
elapsed ms); never credentials, tokens, signatures, bodies or full tax ids. Every exchange is also
recorded, whatever its outcome, through the ``InteractionRecorder`` port (``chalicelib/services/archive.py``):
the audit archive's interaction log, which keeps the exact body as sent and the reply as received.
So is every access-token request the providers send (operation ``token:…``, through
``providers.observe_tokens``): its bodies carry the app secret and the token, so the archive keeps
their SHA-256 and masked fields instead (``chalicelib/audit/records.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import AmbiguousTaxError, AuthTaxError, PermanentTaxError, TaxError
from chalicelib.domain.models import InvoiceOrder, Store
from chalicelib.services.archive import InteractionRecorder, NoRecorder
from chalicelib.services.ports import ProviderPort, TransportPort
from chalicelib.taxapi.base import Credentials, HttpRequest, HttpResponse, InvoiceResult, IssueAccepted, IssueProvider

T = TypeVar("T")

#: Operations that create something on the platform: ``Sent.may_have_left`` is set when one leaves.
CREATING = frozenset({"issue", "red_form_apply", "issue_red"})
#: Provider codes of "no such record" on a query (STA E4004, Nuonuo E9500).
NOT_FOUND_CODES = frozenset({"E4004", "E9500"})


@dataclass
class Sent:
    """What one attempt has sent so far (for the ledger's ``sends`` and the query-first rule)."""

    may_have_left: bool = False
    issue_requests: int = 0
    timings: list[str] = field(default_factory=list)


@dataclass
class Session:
    """The provider of one store for one attempt or check; replaced after a token refresh."""

    store: Store
    credentials: Credentials
    provider: IssueProvider

    @property
    def name(self) -> str:
        return self.provider.name


class Exchange:
    """Tax calls for the issuing service (ports only: providers and transport)."""

    def __init__(
        self,
        *,
        providers: ProviderPort,
        transport: TransportPort,
        logger: Logger,
        recorder: InteractionRecorder | None = None,
    ) -> None:
        self.providers = providers
        self.transport = transport
        self.log = logger
        #: Every exchange (sent or not answered) is recorded here: the audit archive's interaction log.
        self.recorder: InteractionRecorder = recorder or NoRecorder()
        providers.observe_tokens(self.record_token)

    def issue(
        self, s: Session, order: InvoiceOrder, serial: str, now: datetime, *, sent: Sent, keys: dict[str, str]
    ) -> IssueAccepted:
        def build(p: IssueProvider) -> HttpRequest:
            return p.build_issue(order, serial, now)

        def parse(p: IssueProvider, rq: HttpRequest, rs: HttpResponse) -> IssueAccepted:
            return p.parse_issue(rq, rs)

        params: dict[str, object] = {"order": order.model_dump(mode="json"), "serial": serial}
        return self._call(s, "issue", build, parse, keys=keys, sent=sent, params=params)

    def query(
        self, s: Session, serials: tuple[str, ...], now: datetime, keys: dict[str, str], sent: Sent | None = None
    ) -> dict[str, InvoiceResult]:
        """The results under ``serials`` (absent: the platform knows nothing of that serial).

        A "no such record" refusal means nothing there; any other refusal of a query is not an answer
        (the invoice may exist): it is raised as Ambiguous.
        """
        found: dict[str, InvoiceResult] = {}
        step = max(1, s.provider.capabilities.max_query_batch)
        for i in range(0, len(serials), step):
            chunk = serials[i : i + step]

            def build(p: IssueProvider, chunk: tuple[str, ...] = chunk) -> HttpRequest:
                return p.build_query(now, serials=chunk)

            def parse(p: IssueProvider, rq: HttpRequest, rs: HttpResponse) -> list[InvoiceResult]:
                return p.parse_query(rq, rs)

            try:
                results = self._call(
                    s,
                    "query",
                    build,
                    parse,
                    keys={**keys, "serials": ",".join(chunk)},
                    sent=sent,
                    params={"serials": list(chunk)},
                )
            except PermanentTaxError as exc:
                if exc.provider_code in NOT_FOUND_CODES or exc.code == "tax_not_found":
                    continue
                raise AmbiguousTaxError(
                    f"query by serial refused ({exc.code})", provider_code=exc.provider_code
                ) from exc
            wanted = set(chunk)
            found.update((r.serial, r) for r in results if r.serial in wanted)
        return found

    def call(
        self,
        s: Session,
        operation: str,
        build: Callable[[IssueProvider], HttpRequest],
        parse: Callable[[IssueProvider, HttpRequest, HttpResponse], T],
        *,
        keys: dict[str, str],
        sent: Sent | None = None,
        params: dict[str, object] | None = None,
    ) -> T:
        """Any other tax call (the red flow's), logged, recorded and refreshed like issue and query."""
        return self._call(s, operation, build, parse, keys=keys, sent=sent, params=params)

    # --- one call, with one token refresh ---------------------------------------------------------
    def _call(
        self,
        s: Session,
        operation: str,
        build: Callable[[IssueProvider], HttpRequest],
        parse: Callable[[IssueProvider, HttpRequest, HttpResponse], T],
        *,
        keys: dict[str, str],
        sent: Sent | None,
        params: dict[str, object] | None = None,
    ) -> T:
        store, args = s.store.store_id, params or {}
        try:
            return self._once(
                s.provider, operation, build, parse, keys=keys, sent=sent, attempt=1, store=store, params=args
            )
        except AuthTaxError as exc:
            fresh = self.providers.refreshed(s.store, s.credentials, exc)
            if fresh is None:
                raise
            self.log.info("access token refreshed after a token error", extra={**keys, "op": operation})
            s.provider = fresh
            return self._once(fresh, operation, build, parse, keys=keys, sent=sent, attempt=2, store=store, params=args)

    def _once(
        self,
        provider: IssueProvider,
        operation: str,
        build: Callable[[IssueProvider], HttpRequest],
        parse: Callable[[IssueProvider, HttpRequest, HttpResponse], T],
        *,
        keys: dict[str, str],
        sent: Sent | None,
        attempt: int = 1,
        store: str = "",
        params: dict[str, object] | None = None,
    ) -> T:
        request = build(provider)  # nothing has left yet: a failure here is a plain retry
        if operation in CREATING and sent is not None:
            sent.may_have_left = True
            sent.issue_requests += 1
        started = time.monotonic()
        at = datetime.now(UTC)
        response: HttpResponse | None = None
        failure: BaseException | None = None
        try:
            try:
                response = self.transport.send(request)
                result = parse(provider, request, response)
            except TaxError as exc:
                elapsed = round((time.monotonic() - started) * 1000)
                if sent is not None:
                    sent.timings.append(f"{operation}:{elapsed}ms:{exc.code}")
                self.log.warning(
                    "tax call failed",
                    extra={
                        **keys,
                        "op": operation,
                        "provider": provider.name,
                        "http_status": response.status if response is not None else None,
                        "outcome": exc.code,
                        "provider_code": exc.provider_code,
                        "field": exc.field,
                        "elapsed_ms": elapsed,
                    },
                )
                raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._record(
                provider,
                operation,
                request,
                response,
                failure,
                at=at,
                started=started,
                keys=keys,
                attempt=attempt,
                store=store,
                params=params or {},
            )
        elapsed = round((time.monotonic() - started) * 1000)
        if sent is not None:
            sent.timings.append(f"{operation}:{elapsed}ms")
        self.log.info(
            "tax call",
            extra={
                **keys,
                "op": operation,
                "provider": provider.name,
                "http_status": response.status,
                "outcome": "ok",
                "elapsed_ms": elapsed,
            },
        )
        return result

    def _record(
        self,
        provider: IssueProvider,
        operation: str,
        request: HttpRequest,
        response: HttpResponse | None,
        failure: BaseException | None,
        *,
        at: datetime,
        started: float,
        keys: dict[str, str],
        attempt: int,
        store: str,
        params: dict[str, object],
    ) -> None:
        """One interaction record (never raises: the archive must not change an exchange's outcome)."""
        tax = failure if isinstance(failure, TaxError) else None
        try:
            self.recorder.record(
                at=at,
                store=store,
                provider=provider.name,
                operation=f"{operation}:{request.operation}" if request.operation else operation,
                attempt=attempt,
                latency_ms=round((time.monotonic() - started) * 1000),
                method=request.method,
                url=request.url,
                headers=request.headers,
                params=params,
                body=request.body,
                response_status=response.status if response is not None else None,
                response_headers=response.headers if response is not None else (),
                response_body=response.body if response is not None else None,
                outcome="ok" if failure is None else (tax.code if tax is not None else "error"),
                provider_code=tax.provider_code if tax is not None else None,
                message=(tax.message if tax is not None else type(failure).__name__) if failure is not None else None,
                error_class=type(failure).__name__ if failure is not None else None,
                keys=keys,
            )
        except Exception:
            self.log.exception("could not record a tax interaction", extra={**keys, "op": operation})

    def record_token(
        self,
        *,
        store: str,
        provider: str,
        request: HttpRequest,
        response: HttpResponse | None,
        failure: BaseException | None,
        at: datetime,
        latency_ms: int,
    ) -> None:
        """One token request as an interaction record (never raises)."""
        try:
            self.recorder.record(
                at=at,
                store=store,
                provider=provider,
                operation=f"token:{request.operation}" if request.operation else "token",
                attempt=1,
                latency_ms=latency_ms,
                method=request.method,
                url=request.url,
                headers=request.headers,
                params={},
                body=request.body,
                response_status=response.status if response is not None else None,
                response_headers=response.headers if response is not None else (),
                response_body=response.body if response is not None else None,
                outcome="ok" if failure is None else getattr(failure, "code", "error"),
                provider_code=getattr(failure, "provider_code", None),
                message=type(failure).__name__ if failure is not None else None,
                error_class=type(failure).__name__ if failure is not None else None,
                keys={},
            )
        except Exception:
            self.log.exception("could not record a token request", extra={"op": "token", "store": store})
