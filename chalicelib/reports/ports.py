"""What the reports read, as ports (implemented by ``chalicelib/adapters/report_reads.py`` and fakes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from chalicelib.reports.month import Month
from chalicelib.services.ports import OrderRecord
from chalicelib.taxapi.base import InvoiceResult


class MonthRecords(Protocol):
    def month(self, store_id: str, month: Month) -> Iterator[OrderRecord]:
        """Every order and refund record of the store received in the month's read window."""
        ...

    def get_many(self, order_keys: Sequence[str]) -> list[OrderRecord]:
        """Records by key (the blue records of refunds received in the month, from earlier months)."""
        ...


class ArchiveReads(Protocol):
    def transitions(self, store_id: str, month: Month) -> list[dict[str, Any]] | None:
        """The archive's status-change records of the month's UTC days (None: no archive configured)."""
        ...

    def manifests(self, store_id: str, month: Month) -> Mapping[str, dict[str, Any] | None]:
        """Each UTC day (ISO text) of the month → its manifest, None where there is none."""
        ...


class PlatformRecords(Protocol):
    def lookup(self, serials: Iterable[str]) -> Mapping[str, InvoiceResult]:
        """What the tax platform holds under each serial (absent: nothing there)."""
        ...
