"""Small pieces both protocol front ends share: the reply value and JSON helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json; charset=utf-8"
    #: Protocol context the fault injector needs to garble this reply convincingly.
    context: dict[str, Any] = field(default_factory=dict)


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    """Compact JSON, UTF-8 text kept as is (``ensure_ascii=False``), Decimal as a string."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_default)


def loads(data: bytes | str) -> Any:
    """JSON with every non-integer number as Decimal (never float)."""
    return json.loads(data, parse_float=Decimal)


def json_reply(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, dumps(obj).encode("utf-8"), headers or [])
