"""The embedded AWS as every stack starts it (``infra/moto_server.py``): DynamoDB transactions isolated,
as DynamoDB's are, and done without whole-table copies (``infra/moto_transactions.py``).

Against the session's moto server (``tests/conftest.py``: ``python -m infra.moto_server``), each test on
a table of its own.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError


@pytest.fixture()
def table(aws: Any, moto_url: str) -> tuple[Any, str]:
    ddb = aws.client("dynamodb", endpoint_url=moto_url)
    name = f"t-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb, name


def _put_new(name: str, pk: str, **attrs: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}}
    return {"Put": {"TableName": name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def test_a_failed_condition_cancels_the_whole_transaction_with_its_reasons(table: tuple[Any, str]) -> None:
    ddb, name = table
    ddb.put_item(TableName=name, Item={"pk": {"S": "held"}, "order": {"S": "first"}})
    failing = _put_new(name, "held", order="second")
    failing["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(TransactItems=[_put_new(name, "fresh"), failing])
    reasons = refused.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1]["Item"] == {"pk": {"S": "held"}, "order": {"S": "first"}}
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "fresh"}})  # nothing of it written
    ddb.transact_write_items(TransactItems=[_put_new(name, "fresh"), _put_new(name, "other")])
    assert "Item" in ddb.get_item(TableName=name, Key={"pk": {"S": "other"}})


def test_an_error_while_applying_puts_back_what_the_transaction_had_written(table: tuple[Any, str]) -> None:
    """The second write fails only when applied (arithmetic on a string), after the first was made."""
    ddb, name = table
    ddb.put_item(TableName=name, Item={"pk": {"S": "counter"}, "n": {"S": "not a number"}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "kept"}, "v": {"S": "before"}})
    overwrite = {"Put": {"TableName": name, "Item": {"pk": {"S": "kept"}, "v": {"S": "after"}}}}
    bad_update = {
        "Update": {
            "TableName": name,
            "Key": {"pk": {"S": "counter"}},
            "UpdateExpression": "SET n = n + :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[_put_new(name, "new"), overwrite, bad_update])
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "new"}})
    assert ddb.get_item(TableName=name, Key={"pk": {"S": "kept"}})["Item"]["v"] == {"S": "before"}


def test_failed_transactions_beside_concurrent_writes_lose_none_of_them(table: tuple[Any, str]) -> None:
    """moto 5 as shipped put back a whole-table copy when a transaction failed, erasing the writes other
    requests had made meanwhile (the chaos suite lost an order to it)."""
    ddb, name = table
    ddb.put_item(TableName=name, Item={"pk": {"S": "taken"}})
    for start in range(0, 300, 25):
        ddb.batch_write_item(
            RequestItems={name: [{"PutRequest": {"Item": {"pk": {"S": f"seed{i}"}}}} for i in range(start, start + 25)]}
        )

    def put(i: int) -> None:
        ddb.put_item(TableName=name, Item={"pk": {"S": f"p{i}"}})

    def fail(i: int) -> None:
        with pytest.raises(ClientError):
            ddb.transact_write_items(TransactItems=[_put_new(name, f"never{i}"), _put_new(name, "taken")])

    with ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(put if i % 3 else fail, i) for i in range(450)]
        for job in jobs:
            job.result()
    keys = {item["pk"]["S"] for page in ddb.get_paginator("scan").paginate(TableName=name) for item in page["Items"]}
    assert {f"p{i}" for i in range(450) if i % 3} <= keys
    assert not any(k.startswith("never") for k in keys)
