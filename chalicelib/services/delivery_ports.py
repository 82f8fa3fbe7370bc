"""The ports of the delivery use case (``chalicelib/services/deliver.py``): typed Protocols that the
adapters (``chalicelib/adapters/documents.py``, ``mailer.py``, ``deliver_queue.py``, the ledger) and
the tests' fakes implement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.delivery import DELIVERABLE
from chalicelib.domain.order_state import OrderStatus
from chalicelib.services.ports import Fields, OrderRecord

#: One delivery record (``chalicelib.domain.delivery.attempt_record``): every value text.
DeliveryRecord = Mapping[str, str]


class DeliveryLedger(Protocol):
    def delivery_view(self, order_key: str) -> tuple[OrderRecord, list[dict[str, str]]] | None:
        """The record and its delivery records (one read); None when there is no record."""
        ...

    def annotate(
        self,
        order_key: str,
        *,
        fields: Fields,
        deliveries: Sequence[DeliveryRecord] = (),
        statuses: frozenset[OrderStatus] = DELIVERABLE,
        settle_due: bool = False,
    ) -> bool:
        """Write non-status ``fields`` (None removes) and append ``deliveries``, only while the record's
        status is one of ``statuses``; False when it is not (or there is no record). ``settle_due``:
        the record is no longer due (the sweeper's net for a lost delivery message is done)."""
        ...


@dataclass(frozen=True)
class StoredFile:
    key: str
    sha256: str  # hex
    size: int
    owner: str = ""  # the order key it was stored for


class DocumentStore(Protocol):
    """The invoice bucket: write-once objects (Object Lock), SSE-KMS."""

    def find(self, key: str) -> StoredFile | None: ...
    def put(self, key: str, body: bytes, *, content_type: str, sha256: str, owner: str) -> StoredFile:
        """Write ``key`` unless it exists (conditional): the object now under ``key`` — the one found
        there when another run stored it first (compare its ``sha256`` / ``owner``)."""
        ...

    def read(self, key: str) -> bytes: ...


class FileFetcher(Protocol):
    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """The body of ``url`` (GET); DeliveryError when it cannot be fetched (permanent: never will)."""
        ...


class InvoicePdf(Protocol):
    def render(self, payload: dict[str, Any], fields: Mapping[str, str | int]) -> bytes:
        """The project's own PDF of an issued record."""
        ...


class IssuedLinkView(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def expires_at(self) -> float | datetime | str: ...


class LinkIssuer(Protocol):
    def issue(self, store_id: str, order_key: str, *, now: float, ttl_days: int) -> IssuedLinkView: ...


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    body: bytes


class Mailer(Protocol):
    def send_email(
        self, *, sender: str, to: str, subject: str, text: str, html: str, attachment: Attachment | None
    ) -> str:
        """The provider's message id; DeliveryError (``permanent`` for a refused recipient) otherwise."""
        ...


class SmsSender(Protocol):
    def send_sms(self, *, to: str, text: str, sender_id: str | None) -> str: ...


class DeliverQueuePort(Protocol):
    """The deliver queue: one message per order key (``{"order_key": …, "reason": …}``)."""

    def send_many(self, order_keys: Sequence[str], *, reason: str = "issued") -> None: ...
    def hide(self, receipts: list[tuple[str, int]]) -> None: ...
