"""The customer links in DynamoDB: items of the ledger table under prefixes of their own.

Why the ledger table and not a new one: the same KMS key, point-in-time recovery and TTL attribute
(``expires_at``) already cover it, every function that needs links already holds the ledger grant,
and links are few (one per delivery). Link items carry none of the attributes the ledger's indexes
key on (``store_id``, ``created_at``, ``due``, ``due_at``), so ``by_store`` and ``by_due`` never see
them, and the ``order#`` items are never touched. Items::

    pk = "link#<sha256 of the token>"  sk = "link"        order_key, link_store, issued_epoch,
                                                           link_expires, form_key, [revoked_epoch],
                                                           expires_at (TTL)
    pk = "links#<order_key>"           sk = "link#<hash>"  issued_epoch, link_expires, expires_at (TTL):
                                                           the order's list (einvoice links list / revoke)

Both are written in one transaction. The TTL removes a link :data:`KEPT_AFTER_EXPIRY_DAYS` after it
expired: until then it answers "expired" (410), afterwards "unknown" (404).
"""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.dynamo import CONDITION_FAILED, conditional
from chalicelib.services.links import DAY_SECONDS, LinkRecord

LINK_PREFIX = "link#"
ORDER_LINKS_PREFIX = "links#"
LINK_SK = "link"
#: An expired link still answers "expired" (410) for this long; then DynamoDB's TTL removes it.
KEPT_AFTER_EXPIRY_DAYS = 365


def _link_key(token_hash: str) -> dict[str, Any]:
    return {"pk": {"S": LINK_PREFIX + token_hash}, "sk": {"S": LINK_SK}}


def _order_key(order_key: str, token_hash: str) -> dict[str, Any]:
    return {"pk": {"S": ORDER_LINKS_PREFIX + order_key}, "sk": {"S": LINK_PREFIX + token_hash}}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(round(value, 3))}


def _record(item: dict[str, Any]) -> LinkRecord:
    revoked = item.get("revoked_epoch")
    return LinkRecord(
        token_hash=item["pk"]["S"].removeprefix(LINK_PREFIX),
        order_key=item["order_key"]["S"],
        store_id=item["link_store"]["S"],
        issued_at=float(item["issued_epoch"]["N"]),
        expires_at=float(item["link_expires"]["N"]),
        form_key=item["form_key"]["S"],
        revoked_at=float(revoked["N"]) if revoked else None,
    )


class LinkStore:
    """:class:`chalicelib.services.links.LinkStorePort` over the ledger table."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def put(self, link: LinkRecord) -> bool:
        from botocore.exceptions import ClientError

        ttl = {"N": str(int(link.expires_at + KEPT_AFTER_EXPIRY_DAYS * DAY_SECONDS))}
        common = {"issued_epoch": _n(link.issued_at), "link_expires": _n(link.expires_at), "expires_at": ttl}
        item = {
            **_link_key(link.token_hash),
            **common,
            "order_key": {"S": link.order_key},
            "link_store": {"S": link.store_id},
            "form_key": {"S": link.form_key},
        }
        listed = {**_order_key(link.order_key, link.token_hash), **common}
        absent = "attribute_not_exists(pk)"
        try:
            with aws.unavailable("links"):
                self._ddb.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": absent}},
                        {"Put": {"TableName": self.table, "Item": listed, "ConditionExpression": absent}},
                    ]
                )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
                return False
            raise
        return True

    def get(self, token_hash: str) -> LinkRecord | None:
        with aws.unavailable("links"):
            item = self._ddb.get_item(TableName=self.table, Key=_link_key(token_hash), ConsistentRead=True).get("Item")
        return _record(item) if item else None

    def of_order(self, order_key: str) -> list[LinkRecord]:
        hashes: list[str] = []
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :link)",
            "ExpressionAttributeValues": {":pk": {"S": ORDER_LINKS_PREFIX + order_key}, ":link": {"S": LINK_PREFIX}},
        }
        with aws.unavailable("links"):
            while True:
                reply = self._ddb.query(**query)
                hashes.extend(i["sk"]["S"].removeprefix(LINK_PREFIX) for i in reply.get("Items", []))
                if "LastEvaluatedKey" not in reply:
                    break
                query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        found = [r for r in (self.get(h) for h in hashes) if r is not None]
        return sorted(found, key=lambda r: (r.issued_at, r.token_hash))

    def revoke(self, token_hash: str, *, now: float) -> bool:
        with aws.unavailable("links"):
            ok, _ = conditional(
                lambda: self._ddb.update_item(
                    TableName=self.table,
                    Key=_link_key(token_hash),
                    UpdateExpression="SET revoked_epoch = :now",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(revoked_epoch)",
                    ExpressionAttributeValues={":now": _n(now)},
                )
            )
        return ok
