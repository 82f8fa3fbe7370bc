"""The report month: a calendar month in the finance team's time zone, as UTC ranges of the ledger.

China keeps one time zone (UTC+8) and a tax month is a Beijing-time month, while the ledger stores UTC
(``created_at``, ``issued_at``) and the archive's days are UTC days. A :class:`Month` is the local
month with its UTC bounds; :data:`UTC_OFFSET_HOURS` is the one default (``--utc-offset`` changes it).

Which records a month reads: those *received* (``created_at``, the ``by_store`` index) from
:data:`LOOKBACK_DAYS` before the month's start up to its end, so an order received at the end of
the previous month and issued in this one is found; each report then places a record by its own
date (an invoice by its issue time, an exception by when the order was received).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

UTC_OFFSET_HOURS = 8
LOOKBACK_DAYS = 7
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Month:
    year: int
    month: int
    utc_offset_hours: int = UTC_OFFSET_HOURS
    lookback_days: int = LOOKBACK_DAYS

    @classmethod
    def parse(cls, text: str, *, utc_offset_hours: int = UTC_OFFSET_HOURS, lookback_days: int = LOOKBACK_DAYS) -> Month:
        """``YYYY-MM`` (ValueError otherwise)."""
        m = _MONTH.match(text.strip())
        if not m or not 1 <= int(m[2]) <= 12:
            raise ValueError(f"a month is YYYY-MM, not {text!r}")
        if not -12 <= utc_offset_hours <= 14:
            raise ValueError("a UTC offset is between -12 and +14 hours")
        return cls(int(m[1]), int(m[2]), utc_offset_hours, max(0, lookback_days))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def _offset(self) -> timedelta:
        return timedelta(hours=self.utc_offset_hours)

    @cached_property
    def start(self) -> datetime:
        """The month's first instant, UTC."""
        return datetime(self.year, self.month, 1, tzinfo=UTC) - self._offset

    @cached_property
    def end(self) -> datetime:
        """The next month's first instant, UTC (exclusive)."""
        y, m = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(y, m, 1, tzinfo=UTC) - self._offset

    @cached_property
    def read_from(self) -> datetime:
        """Where the ledger read starts (the lookback before :attr:`start`)."""
        return self.start - timedelta(days=self.lookback_days)

    def days(self) -> list[date]:
        """The month's local days."""
        first = date(self.year, self.month, 1)
        return [first + timedelta(days=i) for i in range((self.end - self.start).days)]

    def utc_days(self) -> list[date]:
        """The UTC days the month touches (the archive's and the manifests' days)."""
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def contains(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end

    def local_day(self, at: datetime) -> date:
        return (at.astimezone(UTC) + self._offset).date()

    def local_text(self, at: datetime | None) -> str:
        """A UTC time as local ``YYYY-MM-DD HH:MM:SS`` (empty for None)."""
        if at is None:
            return ""
        return (at.astimezone(UTC) + self._offset).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str | None) -> datetime | None:
    """A stored time (``…Z``, ``+00:00`` or a naive ISO text, taken as UTC) as an aware datetime."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
