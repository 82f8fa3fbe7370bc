"""DynamoDB expression building and the one place a refused conditional write is recognised.

:class:`Update` hands out placeholders (``#n0`` for names, ``:v0`` for values) so callers never
spell DynamoDB's reserved words or collide on placeholders; :func:`conditional` runs a write and
turns ``ConditionalCheckFailedException`` into ``(False, the item as it was)`` — every other error
is raised as it came.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

CONDITION_FAILED = "ConditionalCheckFailedException"


def conditional(write: Callable[[], Any]) -> tuple[bool, dict[str, Any]]:
    """``(True, old attributes)`` when ``write`` succeeded, ``(False, old item)`` when its condition
    refused it (the item from ``ReturnValuesOnConditionCheckFailure``; {} when absent or not asked)."""
    from botocore.exceptions import ClientError

    try:
        reply = write()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != CONDITION_FAILED:
            raise
        return False, dict(exc.response.get("Item") or {})
    return True, dict((reply or {}).get("Attributes") or {})


def attribute(value: str | int) -> dict[str, str]:
    return {"N": str(value)} if isinstance(value, int) and not isinstance(value, bool) else {"S": str(value)}


class Update:
    """One UpdateExpression with its placeholders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._sets: list[str] = []
        self._removes: list[str] = []
        self._by_name: dict[str, str] = {}

    def name(self, attr: str) -> str:
        placeholder = self._by_name.get(attr)
        if placeholder is None:
            placeholder = f"#n{len(self._by_name)}"
            self._by_name[attr] = placeholder
            self.names[placeholder] = attr
        return placeholder

    def value(self, value: str | int) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = attribute(value)
        return placeholder

    def set(self, name: str, expression: str, *, raw_name: bool = False) -> None:
        """``SET name = expression`` (``name`` is a placeholder when ``raw_name``, else an attribute)."""
        self._sets.append(f"{name if raw_name else self.name(name)} = {expression}")

    def remove(self, attr: str) -> None:
        self._removes.append(self.name(attr))

    def add(self, attr: str, step: int) -> None:
        n = self.name(attr)
        self._sets.append(f"{n} = if_not_exists({n}, {self.value(0)}) + {self.value(step)}")

    def fields(self, fields: Mapping[str, str | int | None], numbers: frozenset[str]) -> None:
        """SET each field (numbers for names in ``numbers``), REMOVE those whose value is None."""
        for attr, value in fields.items():
            if value is None:
                self.remove(attr)
            else:
                self.set(attr, self.value(int(value) if attr in numbers else str(value)))

    def expression(self) -> str:
        text = "SET " + ", ".join(self._sets)
        if self._removes:
            text += " REMOVE " + ", ".join(dict.fromkeys(self._removes))
        return text


#: A transaction item's cancellation reason when its own condition refused it.
CONDITION_REFUSED = "ConditionalCheckFailed"


def cancellation_reasons(write: Any) -> list[dict[str, Any]] | None:
    """None when the transaction ``write`` went through, else its cancellation reasons (one per item,
    each with the item as it was when asked with ``ReturnValuesOnConditionCheckFailure``)."""
    from botocore.exceptions import ClientError

    try:
        write()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        return list(exc.response.get("CancellationReasons") or [])
    return None
