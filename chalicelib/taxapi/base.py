"""The provider interface, sans-IO: protocol code builds requests and parses replies, never sends.

A provider turns an operation into an ``HttpRequest`` (exact bytes, signed) and a reply
(``HttpResponse``) into a typed result, or raises a ``TaxError`` from the one taxonomy in
``chalicelib.domain.errors``. Sending is the transport's job (``chalicelib.adapters.http``), so the
whole protocol is testable byte for byte with no network, and the same provider code drives the real
platform, the local sandbox and the tests.

Operations (all providers): issue a blue invoice (asynchronous: accepted → result), query results by
serial or order number, apply / confirm / query a red confirmation form, issue a red invoice, void
(only where ``capabilities.void`` says so), query the credit line, fetch tax classification codes.
They are typed as three protocols by what callers use — ``IssueProvider`` (blue issue and query),
``RedProvider`` (red form and red invoice) and ``AdminProvider`` (void, credit line, tax codes) —
and ``Provider`` combines them; a provider satisfies them structurally, without inheriting.

Time and randomness are inputs (``now``, ``nonce``) so golden tests can pin them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from chalicelib.domain.models import InvoiceOrder, RedReason


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: False for calls that create something (issue, red form apply): the transport never resends them.
    idempotent: bool = False
    #: The operation, for logs and audit records.
    operation: str = ""

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None


class InvoiceStatus(StrEnum):
    """Provider-neutral status of an issue request."""

    PENDING = "pending"  # accepted / issuing / signing
    ISSUED = "issued"
    FAILED = "failed"  # the platform gave up (reason given); a new serial may be used after fixing
    VOIDED = "voided"
    VOIDING = "voiding"


class RedFormState(StrEnum):
    """States of the red-letter confirmation form (红字发票信息确认单)."""

    NO_CONFIRMATION_NEEDED = "01"
    WAITING_BUYER = "02"  # seller applied, waiting for the buyer
    WAITING_SELLER = "03"  # buyer applied, waiting for the seller
    CONFIRMED = "04"
    VOIDED_SELLER = "05"
    VOIDED_BUYER = "06"
    EXPIRED = "07"  # not confirmed within 72 hours
    VOIDED_OTHER_08 = "08"
    VOIDED_OTHER_09 = "09"
    VOIDED_OTHER_10 = "10"

    @property
    def allows_red_invoice(self) -> bool:
        return self in (RedFormState.NO_CONFIRMATION_NEEDED, RedFormState.CONFIRMED)


class RedFormAction(StrEnum):
    CONFIRM = "Y"
    REJECT = "N"
    CANCEL = "C"


@dataclass(frozen=True)
class Capabilities:
    void: bool = False  # 数电票 cannot be voided; legacy/paper via some providers can
    async_issue: bool = True
    max_query_batch: int = 50
    red_form_required: bool = True


@dataclass(frozen=True)
class IssueAccepted:
    serial: str  # our request serial (idempotency key on the provider side)
    provider_ref: str | None = None  # the provider's acceptance id (受理流水号 / invoiceSerialNum)


@dataclass(frozen=True)
class InvoiceResult:
    serial: str
    order_no: str | None
    status: InvoiceStatus
    invoice_number: str | None = None  # 20 digits when issued
    issued_at: datetime | None = None
    total_amount: Decimal | None = None
    total_tax: Decimal | None = None
    pdf_url: str | None = None
    ofd_url: str | None = None
    xml_url: str | None = None
    failure_reason: str | None = None
    provider_status: str | None = None  # the provider's own status code, for the audit trail


@dataclass(frozen=True)
class RedFormRequest:
    serial: str  # our idempotency key for the form
    original_invoice_number: str
    original_issued_at: datetime
    reason: RedReason
    seller_tax_id: str
    buyer_name: str
    buyer_tax_id: str | None
    #: Lines of the red mirror (negative amounts), each with ``original_line_no``. Full reversal lists all.
    order: InvoiceOrder


@dataclass(frozen=True)
class RedForm:
    form_id: str  # 确认单编号 / uuid
    state: RedFormState
    original_invoice_number: str | None = None
    red_amount: Decimal | None = None  # negative, excl. tax
    red_tax: Decimal | None = None
    provider_status: str | None = None


@dataclass(frozen=True)
class CreditLine:
    total: Decimal  # 总授信额度 (excl. tax)
    used: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class TaxCodeEntry:
    code: str  # 19 digits
    name: str
    short_name: str
    rates: tuple[Decimal, ...]


@dataclass(frozen=True)
class VoidResult:
    invoice_number: str
    status: InvoiceStatus


@dataclass(frozen=True)
class Credentials:
    """Secret material for one store's provider, loaded from Secrets Manager as bytes/str.

    ``values`` keys are provider-specific (documented per provider). Never logged: ``__repr__`` hides them.
    """

    values: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Credentials(keys={sorted(self.values)})"

    def require(self, key: str) -> str:
        from chalicelib.domain.errors import ConfigurationError

        try:
            value = self.values[key]
        except KeyError:
            raise ConfigurationError(f"provider credentials lack '{key}'", code="missing_credential") from None
        if not value:
            raise ConfigurationError(f"provider credentials '{key}' is empty", code="missing_credential")
        return value


class TokenObserver(Protocol):
    """Told of one token request after it was sent (answered or not)."""

    def __call__(
        self,
        *,
        store: str,
        provider: str,
        request: HttpRequest,
        response: HttpResponse | None,
        failure: BaseException | None,
        at: datetime,
        latency_ms: int,
    ) -> None: ...


class IssueProvider(Protocol):
    """Blue invoices: what the issuing worker needs to issue and to poll for results.

    Every ``build_*`` returns the exact request to send; every ``parse_*`` takes the request it answers
    (some protocols check the reply against it) and the reply, and returns a result or raises TaxError.
    """

    name: str
    capabilities: Capabilities

    def build_issue(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest: ...

    def parse_issue(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted: ...

    def build_query(
        self, now: datetime, *, serials: tuple[str, ...] = (), order_nos: tuple[str, ...] = ()
    ) -> HttpRequest: ...

    def parse_query(self, request: HttpRequest, response: HttpResponse) -> list[InvoiceResult]: ...


class RedProvider(Protocol):
    """Red invoices: the confirmation form (apply, confirm / reject / cancel, query), then the red invoice
    itself once the form reached 01 or 04."""

    def build_red_form_apply(self, form: RedFormRequest, now: datetime) -> HttpRequest: ...

    def parse_red_form_apply(self, request: HttpRequest, response: HttpResponse) -> RedForm: ...

    def build_red_form_confirm(self, form_id: str, action: RedFormAction, now: datetime) -> HttpRequest: ...

    def parse_red_form_confirm(self, request: HttpRequest, response: HttpResponse) -> RedForm: ...

    def build_red_form_query(self, form_id: str, now: datetime) -> HttpRequest: ...

    def parse_red_form_query(self, request: HttpRequest, response: HttpResponse) -> RedForm: ...

    def build_issue_red(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest: ...

    def parse_issue_red(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted: ...


class AdminProvider(Protocol):
    """Store administration: void (only where ``capabilities.void`` says so), the credit line, tax codes."""

    def build_void(self, invoice_number: str, serial: str, now: datetime) -> HttpRequest: ...

    def parse_void(self, request: HttpRequest, response: HttpResponse) -> VoidResult: ...

    def build_query_credit(self, now: datetime) -> HttpRequest: ...

    def parse_query_credit(self, request: HttpRequest, response: HttpResponse) -> CreditLine: ...

    def build_fetch_tax_codes(self, now: datetime, *, page: int = 1) -> HttpRequest: ...

    def parse_fetch_tax_codes(self, request: HttpRequest, response: HttpResponse) -> list[TaxCodeEntry]: ...


@runtime_checkable
class Provider(IssueProvider, RedProvider, AdminProvider, Protocol):
    """One tax provider's whole protocol: the three roles together. Implementations are constructed
    with credentials and an endpoint and satisfy this structurally (they inherit from nothing)."""
