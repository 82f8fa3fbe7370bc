"""The ports the services hold: typed Protocols, implemented by ``chalicelib/adapters`` and by fakes.

One contract suite (``tests/contract``) runs against both the DynamoDB ledger (moto) and the
in-memory fake, so a fake can never promise what the real adapter does not do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.domain.errors import TaxError
from chalicelib.domain.models import Store
from chalicelib.domain.order_state import OrderEvent, OrderStatus
from chalicelib.taxapi.base import Credentials, HttpRequest, HttpResponse, IssueProvider, TokenObserver

#: Attribute values a transition may write: text, whole numbers, or None (remove the attribute).
FieldValue = str | int | None
Fields = Mapping[str, FieldValue]


@dataclass(frozen=True)
class OrderRecord:
    """One order (or refund) record as the ledger holds it."""

    order_key: str
    store_id: str
    status: OrderStatus
    kind: str
    payload: dict[str, Any]
    created_at: str
    violations: list[dict[str, str]] | None = None
    #: The worker's attributes (serial, claim_id, lease_until, pin, sends, retries, invoice_number, …).
    fields: dict[str, str | int] = field(default_factory=dict)

    @property
    def outbox_pending(self) -> bool:
        """Recorded but not known to be in SQS (the intake's second write did not happen yet)."""
        return self.status is OrderStatus.RECEIVED

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return None if value is None else str(value)

    def number(self, name: str) -> int:
        value = self.fields.get(name)
        return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class Transition:
    """What a conditional write did: ``ok`` when it was made; ``before`` is the record before the
    write (from the write itself, no extra read), None when there is no such record."""

    ok: bool
    before: OrderRecord | None


class OrderLedger(Protocol):
    """The order records, with every status change one conditional write (see ``order_state``)."""

    def transition(
        self,
        order_key: str,
        event: OrderEvent,
        *,
        now: float,
        claim_id: str | None = None,
        lease_until: float | None = None,
        due_at: float | None = None,
        fields: Fields | None = None,
        keep: Mapping[str, str] | None = None,
        add: Mapping[str, int] | None = None,
    ) -> Transition:
        """Apply ``event``: condition ``status IN sources(event)`` (+ ``claim_id`` when the event is
        fenced, + no live lease when it leases); SET the target status, ``fields`` (None removes),
        ``keep`` (only where absent), ``add`` (counters); ``due_at`` (epoch seconds, None: not due)
        is when the sweeper should look at the record if nothing else has."""
        ...

    def touch(self, order_key: str, claim_id: str, *, fields: Fields, lease_until: float | None = None) -> bool:
        """A fenced write that changes no status (``issuing`` and our claim id): re-pin, lease."""
        ...

    def revise(
        self,
        order_key: str,
        *,
        revision: int,
        statuses: frozenset[OrderStatus],
        now: float,
        fields: Fields,
        payload: dict[str, Any] | None = None,
    ) -> Transition:
        """Compare-and-set that changes no status: condition ``status IN statuses AND revision =
        :revision`` (an absent revision is 0); SET ``fields`` (+ the payload), ``revision + 1``. The
        refunds' conditional counter on a blue record (``chalicelib.domain.red_allocation``)."""
        ...

    def due(self, now: float, *, limit: int) -> list[OrderRecord]:
        """Records whose ``due_at`` has passed, oldest first (the sweeper's work list)."""
        ...

    def postpone(self, order_key: str, *, was: str, due_at: float) -> bool:
        """Move ``due_at`` from ``was`` (its stored text) to ``due_at``, only if still ``was``."""
        ...


class StorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


class CredentialsPort(Protocol):
    def load(self, store: Store) -> Credentials: ...


class ProviderPort(Protocol):
    def get(self, store: Store, credentials: Credentials) -> IssueProvider: ...
    def refreshed(self, store: Store, credentials: Credentials, error: TaxError) -> IssueProvider | None: ...
    def pin(self, store: Store) -> str:
        """The configuration an invoice of ``store`` is issued under: provider, endpoint, seller."""
        ...

    def observe_tokens(self, observer: TokenObserver) -> None:
        """Tell ``observer`` of every token request sent from now on (the audit archive's record)."""
        ...


class TransportPort(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse: ...


class AlertPort(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


class IssueQueuePort(Protocol):
    """The issue queue: order messages, batched check messages, and the messages a worker holds."""

    def send(self, order_key: str, kind: str, *, delay_seconds: int = 0) -> str: ...
    def send_many(self, messages: list[tuple[str, str, int]]) -> None: ...
    def send_check(
        self, store_id: str, pin: str, entries: list[dict[str, str]], *, delay_seconds: int, round_no: int = 1
    ) -> str: ...
    def hide(self, receipts: list[tuple[str, int]]) -> None: ...
    def dead_letter(self, body: str) -> None: ...


class MetricsPort(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> object: ...
