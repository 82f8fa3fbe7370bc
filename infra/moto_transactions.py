"""moto's ``TransactWriteItems`` without its whole-table copies (installed by :mod:`infra.moto_server`).

moto 5 deep-copies every table a transaction touches before it starts, to put the copies back if a
condition fails. With requests served one at a time (``infra.moto_server``) that is correct but costs
O(table) per transaction: the intake writes every order as one transaction, so a run of n orders cost
O(n²) in the embedded AWS, which bounded every local-stack figure. Here a transaction is done in two
phases, as DynamoDB describes it: first every item's condition is checked (nothing written; a failed
one cancels the transaction with moto's own ``TransactionCanceledException`` and reasons, ALL_OLD
items included), then every write is applied, each touched item's previous version kept so that an
error while applying puts back exactly those items. The items of one transaction are distinct (moto's
``MultipleTransactionsException`` otherwise), so no condition depends on another write of the same
transaction.
"""

from __future__ import annotations

import copy
from typing import Any


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """``DynamoDBBackend.transact_write_items``, two-phase (module docstring)."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    plans: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        original: dict[str, Any] | None = None
        try:
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            key = _key(self, op_type, op)
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            current = self.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if not get_filter_expression(condition, names, values).expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original)
            plans.append((op_type, op, key))
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as exc:
            errors.append(("ConditionalCheckFailed", str(exc.message), original))
        except Exception as exc:
            errors.append((type(exc).__name__, str(exc), original))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    _apply(self, plans)


def _key(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _apply(backend: Any, plans: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
    """Every write, conditions already checked; on an error the touched items are put back."""
    undo: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    try:
        for op_type, op, key in plans:
            if op_type == "ConditionCheck":
                continue
            table_name = op["TableName"]
            before = backend.get_item(table_name, key)
            undo.append((table_name, key, copy.deepcopy(before.to_json()["Attributes"]) if before else None))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                backend.put_item(
                    table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values
                )
            elif op_type == "Delete":
                backend.delete_item(
                    table_name, key, expression_attribute_names=names, expression_attribute_values=values
                )
            else:
                backend.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for table_name, key, attrs in reversed(undo):
            if attrs is None:
                backend.delete_item(table_name, key)
            else:
                backend.put_item(table_name, attrs)
        raise


def install() -> None:
    """Replace moto's ``transact_write_items`` with :func:`transact_write_items` (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    DynamoDBBackend.transact_write_items = transact_write_items
