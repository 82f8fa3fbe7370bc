"""The link pages' per-IP request counter: fixed windows in the ledger table, expired by TTL.

``pk = ratelimit#<hashed client>``, ``sk = window#<n>``: ``n`` (one atomic ADD per request) and
``expires_at`` (TTL, two windows on). The items carry no attribute the ledger's indexes key on.
"""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws


class DynamoRateCounter:
    """:class:`chalicelib.services.customer_page.RateCounterPort` over the ledger table."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    def hit(self, key: str, *, window: int, expires_at: float) -> int:
        client: Any = aws.client("dynamodb")
        with aws.unavailable("rate limit"):
            reply = client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"ratelimit#{key}"}, "sk": {"S": f"window#{window}"}},
                UpdateExpression="SET expires_at = if_not_exists(expires_at, :exp) ADD #n :one",
                ExpressionAttributeNames={"#n": "n"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":exp": {"N": str(int(expires_at))}},
                ReturnValues="UPDATED_NEW",
            )
        return int(reply["Attributes"]["n"]["N"])
