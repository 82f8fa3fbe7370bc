"""Readers for fields of a verified webhook body, shared by the JSON platforms.

Each raises ``MalformedPayload`` naming the field path (``line_items[2].sku``) when a signed body is not
the documented shape, so every platform answers a wrong shape the same way (422, the field named).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.errors import MalformedPayload
from chalicelib.domain.money import to_decimal

MAX_TEXT = 1000
MAX_ITEMS = 1000
MAX_MONEY = Decimal(10) ** 12


def obj(value: Any, path: str, *, required: bool = True) -> Mapping[str, Any]:
    """A JSON object; absent → {} when not required."""
    if value is None and not required:
        return {}
    if value is None:
        raise MalformedPayload(f"missing field {path}")
    if not isinstance(value, dict):
        raise MalformedPayload(f"field {path} must be an object")
    return value


def items(value: Any, path: str, *, required: bool = True) -> list[Any]:
    """A JSON array of at most MAX_ITEMS entries; absent → [] when not required."""
    if value is None and not required:
        return []
    if value is None:
        raise MalformedPayload(f"missing field {path}")
    if not isinstance(value, list):
        raise MalformedPayload(f"field {path} must be a list")
    if len(value) > MAX_ITEMS:
        raise MalformedPayload(f"field {path} has too many entries")
    return value


def text(value: Any, path: str, *, required: bool = False) -> str | None:
    """A string (or an integer id) of at most MAX_TEXT characters, stripped; empty → None."""
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"missing field {path}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedPayload(f"field {path} must be a string")
    result = str(value).strip()
    if len(result) > MAX_TEXT:
        raise MalformedPayload(f"field {path} is too long")
    if not result and required:
        raise MalformedPayload(f"missing field {path}")
    return result or None


def amount(value: Any, path: str, *, signed: bool = False) -> Decimal:
    """A present money or quantity value (string or JSON number, read exactly): below 10^12 in absolute
    value, at most 8 decimals, negative only when ``signed``. Absent values are the caller's business."""
    try:
        result = to_decimal(value)
    except (TypeError, ValueError):
        raise MalformedPayload(f'field {path} must be a decimal amount such as "100.00"') from None
    if abs(result) >= MAX_MONEY or (result < 0 and not signed):
        raise MalformedPayload(f"field {path} is out of range")
    exponent = result.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        raise MalformedPayload(f"field {path} has more than 8 decimals")
    return result


def iso_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp (without an offset: UTC); anything else is simply not recorded."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
