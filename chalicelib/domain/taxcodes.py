"""The tax classification table (税收分类编码) as data, and the rate rules it carries.

The authoritative table lives on the tax platform; the project ships a small curated copy
(``data/taxcodes.json``) and lets operators replace it without a redeploy: the lead's adapter loads
the current file (from S3) and ``einvoice taxcodes import FILE`` validates a new one with
:meth:`TaxCodeTable.from_json` before uploading it. The file format::

    {"version": "2026.1", "source": "...", "note": "...",
     "entries": [{"code": "3070401000000000000", "name": "餐饮服务", "short_name": "餐饮服务",
                  "rates": ["0.06", "0.03", "0.01"], "zero_rate_flags": ["exempt"], "note": "..."}]}

Rates are strings (never JSON numbers: they would be floats) from the VAT rate set; ``"0"`` must
come with ``zero_rate_flags`` (免税 ``exempt`` / 不征税 ``not_taxable`` / 普通零税率 ``zero_rate``) and
flags need ``"0"``. A bad file raises :class:`TaxCodeTableError` — a
:class:`~chalicelib.domain.errors.ConfigurationError` that is also a ``ValueError`` — whose message
names the entry (``entries[3] (code …): …``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from chalicelib.domain.errors import ConfigurationError
from chalicelib.domain.models import ZeroRateFlag

#: VAT rates and collection rates (增值税税率/征收率); authoritative list: Leqi ``CXKYSL``.
VAT_RATES: frozenset[Decimal] = frozenset(
    Decimal(r) for r in ("0.13", "0.09", "0.06", "0.05", "0.03", "0.015", "0.01", "0")
)
TAX_CODE_RE = re.compile(r"^\d{19}$")
SHORT_NAME_MAX = 40  # CatalogueItem.short_name's limit
DEFAULT_TABLE_PATH = Path(__file__).parent / "data" / "taxcodes.json"


class TaxCodeTableError(ConfigurationError, ValueError):
    """A tax code table file is unusable; the message names the offending entry."""


_ENTRY_KEYS = frozenset({"code", "name", "short_name", "rates", "zero_rate_flags", "note"})
_REQUIRED_ENTRY_KEYS = frozenset({"code", "name", "short_name", "rates"})
_TOP_KEYS = frozenset({"version", "entries", "source", "note"})


@dataclass(frozen=True, slots=True)
class TaxCodeEntry:
    """One classification code and what it allows."""

    code: str
    name: str
    short_name: str
    rates: frozenset[Decimal]
    zero_rate_flags: frozenset[ZeroRateFlag] = frozenset()
    note: str | None = None

    def allows(self, rate: Decimal) -> bool:
        return rate in self.rates

    def allows_flag(self, flag: ZeroRateFlag) -> bool:
        return flag in self.zero_rate_flags


class TaxCodeTable:
    """An immutable lookup over :class:`TaxCodeEntry` by code, with the table's version."""

    __slots__ = ("_by_code", "_version")

    def __init__(self, version: str, entries: Iterable[TaxCodeEntry]) -> None:
        self._version = version
        by_code: dict[str, TaxCodeEntry] = {}
        for entry in entries:
            if entry.code in by_code:
                raise TaxCodeTableError(f"tax code table: duplicate code {entry.code}")
            by_code[entry.code] = entry
        self._by_code = by_code

    # --- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: bytes | str) -> TaxCodeTable:
        """Parse and validate a table file; ``ConfigurationError`` names the first bad entry."""
        try:
            raw = json.loads(data, parse_float=Decimal, parse_int=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TaxCodeTableError(f"tax code table: not valid JSON ({exc})") from exc
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Any) -> TaxCodeTable:
        if not isinstance(raw, dict):
            raise TaxCodeTableError("tax code table: the file must be a JSON object")
        unknown = set(raw) - _TOP_KEYS
        if unknown:
            raise TaxCodeTableError(f"tax code table: unknown top-level key(s) {sorted(unknown)}")
        version = raw.get("version")
        if not isinstance(version, str) or not version.strip():
            raise TaxCodeTableError("tax code table: 'version' must be a non-empty string")
        items = raw.get("entries")
        if not isinstance(items, list) or not items:
            raise TaxCodeTableError("tax code table: 'entries' must be a non-empty list")
        entries: list[TaxCodeEntry] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            entry = _parse_entry(index, item)
            if entry.code in seen:
                raise TaxCodeTableError(
                    f"tax code table: entries[{index}] (code {entry.code}): duplicate of entries[{seen[entry.code]}]"
                )
            seen[entry.code] = index
            entries.append(entry)
        return cls(version.strip(), entries)

    @classmethod
    def default(cls) -> TaxCodeTable:
        """The curated table shipped with the code (``data/taxcodes.json``)."""
        return cls.from_json(DEFAULT_TABLE_PATH.read_bytes())

    def to_json(self) -> str:
        """The table in its file format (round-trips through :meth:`from_json`)."""
        entries = []
        for e in self:
            item: dict[str, Any] = {
                "code": e.code,
                "name": e.name,
                "short_name": e.short_name,
                "rates": [str(r) for r in sorted(e.rates, reverse=True)],
            }
            if e.zero_rate_flags:
                item["zero_rate_flags"] = sorted(f.value for f in e.zero_rate_flags)
            if e.note:
                item["note"] = e.note
            entries.append(item)
        return json.dumps({"version": self._version, "entries": entries}, ensure_ascii=False, indent=2)

    # --- queries ---------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self._version

    def lookup(self, code: str) -> TaxCodeEntry | None:
        return self._by_code.get(code)

    def allowed(self, code: str, rate: Decimal) -> bool:
        """True when ``code`` is in the table and allows ``rate``."""
        entry = self._by_code.get(code)
        return entry is not None and entry.allows(rate)

    def short_name(self, code: str) -> str | None:
        entry = self._by_code.get(code)
        return entry.short_name if entry else None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[TaxCodeEntry]:
        return iter(sorted(self._by_code.values(), key=lambda e: e.code))

    def __len__(self) -> int:
        return len(self._by_code)

    def __repr__(self) -> str:
        return f"TaxCodeTable(version={self._version!r}, entries={len(self)})"


def _parse_entry(index: int, item: Any) -> TaxCodeEntry:
    where = f"tax code table: entries[{index}]"
    if not isinstance(item, dict):
        raise TaxCodeTableError(f"{where}: must be an object")
    code = item.get("code")
    if isinstance(code, str) and TAX_CODE_RE.match(code):
        where = f"{where} (code {code})"
    else:
        raise TaxCodeTableError(f"{where}: 'code' must be a string of 19 digits, got {code!r}")
    missing = _REQUIRED_ENTRY_KEYS - set(item)
    if missing:
        raise TaxCodeTableError(f"{where}: missing {sorted(missing)}")
    unknown = set(item) - _ENTRY_KEYS
    if unknown:
        raise TaxCodeTableError(f"{where}: unknown key(s) {sorted(unknown)}")
    name = item["name"]
    if not isinstance(name, str) or not name.strip():
        raise TaxCodeTableError(f"{where}: 'name' must be a non-empty string")
    short = item["short_name"]
    if not isinstance(short, str) or not short.strip() or len(short.strip()) > SHORT_NAME_MAX:
        raise TaxCodeTableError(f"{where}: 'short_name' must be 1–{SHORT_NAME_MAX} characters")
    if "*" in short:
        raise TaxCodeTableError(f"{where}: 'short_name' must not contain '*' (it is printed as *简称*)")
    rates = _parse_rates(where, item["rates"])
    flags = _parse_flags(where, item.get("zero_rate_flags", []))
    zero = Decimal(0)
    if zero in rates and not flags:
        raise TaxCodeTableError(f"{where}: rate '0' needs 'zero_rate_flags' (exempt / not_taxable / zero_rate)")
    if flags and zero not in rates:
        raise TaxCodeTableError(f"{where}: 'zero_rate_flags' given but '0' is not among the rates")
    note = item.get("note")
    if note is not None and not isinstance(note, str):
        raise TaxCodeTableError(f"{where}: 'note' must be a string")
    return TaxCodeEntry(
        code=code, name=name.strip(), short_name=short.strip(), rates=rates, zero_rate_flags=flags, note=note
    )


def _parse_rates(where: str, value: Any) -> frozenset[Decimal]:
    if not isinstance(value, list) or not value:
        raise TaxCodeTableError(f"{where}: 'rates' must be a non-empty list of strings such as \"0.06\"")
    rates: set[Decimal] = set()
    for raw in value:
        if not isinstance(raw, str):
            raise TaxCodeTableError(f'{where}: rate {raw!r} must be a string such as "0.06", not a JSON number')
        try:
            rate = Decimal(raw.strip())
        except InvalidOperation as exc:
            raise TaxCodeTableError(f"{where}: rate {raw!r} is not a number") from exc
        if not rate.is_finite():
            raise TaxCodeTableError(f"{where}: rate {raw!r} is not a number")
        if rate not in VAT_RATES:
            allowed = ", ".join(str(r) for r in sorted(VAT_RATES, reverse=True))
            raise TaxCodeTableError(f"{where}: rate {raw!r} is not a VAT rate ({allowed})")
        if rate in rates:
            raise TaxCodeTableError(f"{where}: rate {raw!r} listed twice")
        rates.add(rate)
    return frozenset(rates)


def _parse_flags(where: str, value: Any) -> frozenset[ZeroRateFlag]:
    if not isinstance(value, list):
        raise TaxCodeTableError(f"{where}: 'zero_rate_flags' must be a list")
    flags: set[ZeroRateFlag] = set()
    for raw in value:
        try:
            flags.add(ZeroRateFlag(raw))
        except ValueError as exc:
            choices = ", ".join(f.value for f in ZeroRateFlag)
            raise TaxCodeTableError(f"{where}: zero-rate flag {raw!r} is not one of {choices}") from exc
    return frozenset(flags)
