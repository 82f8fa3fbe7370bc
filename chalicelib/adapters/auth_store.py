"""The credentials' hashes in the ledger table, each kind under its own key prefix.

Why the ledger table and not the stores table: a store item is rewritten whole by
``StoreRegistry.put`` (``einvoice stores put``) and scanned by ``StoreRegistry.list``, so a hash kept
on it would be erased by the next store update, and another item there would break the listing. The
ledger table already has a composite key with other prefixed items (``rejections#…``), a TTL
attribute (``expires_at``: sessions and login windows expire by themselves) and the API's IAM access.
No item here carries ``store_id``/``created_at``/``due``, so none enters the ``by_store`` or
``by_due`` indexes.

=========================  ============  =======================================================
pk                         sk            attributes
=========================  ============  =======================================================
``apikey#<store>``         ``apikey``    ``current_hash``, ``created``, ``previous_hash``, ``previous_valid_until``
``operator#<name>``        ``operator``  ``password_hash`` (scrypt), ``stores`` (string set), ``created``
``session#<sha256>``       ``session``   ``operator``, ``stores``, ``csrf``, ``expires_at`` (TTL)
``loginfail#<name>``       ``window#N``  ``n``, ``expires_at`` (TTL)
=========================  ============  =======================================================
"""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws
from chalicelib.services.auth import ApiKeyRecord, OperatorRecord, SessionRecord


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(int(value))}


class AuthStore:
    def __init__(self, table_name: str) -> None:
        self.table = table_name

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with aws.unavailable("credentials"):
            item: dict[str, Any] | None = self._ddb.get_item(
                TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True
            ).get("Item")
        return item

    def _put(self, item: dict[str, Any]) -> None:
        with aws.unavailable("credentials"):
            self._ddb.put_item(TableName=self.table, Item=item)

    # --- API keys ---------------------------------------------------------------------------------
    def get_api_key(self, store_id: str) -> ApiKeyRecord | None:
        item = self._get(f"apikey#{store_id}", "apikey")
        if item is None:
            return None
        return ApiKeyRecord(
            store_id=store_id,
            current_hash=item["current_hash"]["S"],
            created_at=float(item["created"]["N"]),
            previous_hash=item["previous_hash"]["S"] if "previous_hash" in item else None,
            previous_valid_until=float(item["previous_valid_until"]["N"]) if "previous_valid_until" in item else None,
        )

    def put_api_key(self, record: ApiKeyRecord) -> None:
        item = {
            "pk": _s(f"apikey#{record.store_id}"),
            "sk": _s("apikey"),
            "current_hash": _s(record.current_hash),
            "created": _n(record.created_at),
        }
        if record.previous_hash and record.previous_valid_until:
            item["previous_hash"] = _s(record.previous_hash)
            item["previous_valid_until"] = _n(record.previous_valid_until)
        self._put(item)

    # --- operators --------------------------------------------------------------------------------
    def get_operator(self, name: str) -> OperatorRecord | None:
        item = self._get(f"operator#{name}", "operator")
        if item is None:
            return None
        return OperatorRecord(
            name=name,
            password_hash=item["password_hash"]["S"],
            stores=frozenset(item["stores"]["SS"]),
            created_at=float(item["created"]["N"]),
        )

    def put_operator(self, record: OperatorRecord) -> None:
        self._put(
            {
                "pk": _s(f"operator#{record.name}"),
                "sk": _s("operator"),
                "password_hash": _s(record.password_hash),
                "stores": {"SS": sorted(record.stores)},
                "created": _n(record.created_at),
            }
        )

    # --- sessions ---------------------------------------------------------------------------------
    def put_session(self, record: SessionRecord) -> None:
        self._put(
            {
                "pk": _s(f"session#{record.token_hash}"),
                "sk": _s("session"),
                "operator": _s(record.operator),
                "stores": {"SS": sorted(record.stores)},
                "csrf": _s(record.csrf),
                "expires_at": _n(record.expires_at),
            }
        )

    def get_session(self, token_hash: str) -> SessionRecord | None:
        item = self._get(f"session#{token_hash}", "session")
        if item is None:
            return None
        return SessionRecord(
            token_hash=token_hash,
            operator=item["operator"]["S"],
            stores=frozenset(item["stores"]["SS"]),
            csrf=item["csrf"]["S"],
            expires_at=float(item["expires_at"]["N"]),
        )

    def delete_session(self, token_hash: str) -> None:
        with aws.unavailable("credentials"):
            self._ddb.delete_item(TableName=self.table, Key={"pk": _s(f"session#{token_hash}"), "sk": _s("session")})

    # --- login attempts ---------------------------------------------------------------------------
    def add_login_failure(self, name: str, window: int, *, expires_at: float) -> int:
        with aws.unavailable("credentials"):
            reply = self._ddb.update_item(
                TableName=self.table,
                Key={"pk": _s(f"loginfail#{name}"), "sk": _s(f"window#{window}")},
                UpdateExpression="SET expires_at = if_not_exists(expires_at, :exp) ADD #n :one",
                ExpressionAttributeNames={"#n": "n"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":exp": _n(expires_at)},
                ReturnValues="UPDATED_NEW",
            )
        return int(reply["Attributes"]["n"]["N"])

    def login_failures(self, name: str, window: int) -> int:
        item = self._get(f"loginfail#{name}", f"window#{window}")
        return int(item["n"]["N"]) if item else 0
