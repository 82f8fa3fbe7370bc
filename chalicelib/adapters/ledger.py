"""The ledger in DynamoDB: one record per order (and per refund), one per platform event, an outbox.

Items (table ``LedgerTable``, key ``pk``/``sk``)::

    pk = "order#<order_key>"   sk = "order"   status, payload (zlib JSON), store_id, created_at,
                                                outbox = "pending" while not yet handed to SQS
    pk = "event#<platform>#<store_id>#<event id>"  sk = "event"   order_key, expires_at (TTL 30 days)

Why an outbox: answering 2xx promises the event is queued, and "recorded" and "queued" are two
systems that cannot be written atomically. So the order record is written first with
``outbox = "pending"`` (a sparse GSI, ``by_outbox``), then the message is sent, then ``outbox`` is
removed. A crash or an SQS failure between the two leaves the record pending: the platform's retry
finds it *pending* (not a duplicate) and enqueues it again, and the sweeper (``app.outbox_sweeper``,
every few minutes) re-sends pending records older than a grace period for platforms that do not
retry. A record can therefore be enqueued twice; the worker's conditional claim makes that harmless.

State of an order record, spelled out (conditional writes guard each arrow)::

    (absent) ──put if absent──▶ received ─▶ queued ─▶ … (worker states) ─▶ issued | failed
                         └─ held (pilot: issued by hand)       rejected (invalid, kept for audit)
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters import aws

EVENT_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class OrderRecord:
    order_key: str
    store_id: str
    status: str
    kind: str
    payload: dict[str, Any]
    outbox_pending: bool
    created_at: str
    violations: list[dict[str, str]] | None = None


def _now_iso(seconds_ago: float = 0.0) -> str:
    """UTC time as stored in ``created_at``/``updated_at`` (sortable text, the GSIs' range key)."""
    return datetime.fromtimestamp(time.time() - seconds_ago, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _pack(payload: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), 6)


def _unpack(blob: Any) -> dict[str, Any]:
    raw = blob.value if hasattr(blob, "value") else blob
    if isinstance(raw, str):
        raw = base64.b64decode(raw)
    result: dict[str, Any] = json.loads(zlib.decompress(raw))
    return result


class Ledger:
    def __init__(self, table_name: str) -> None:
        self.table = table_name

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    # --- events ------------------------------------------------------------------------------------
    def remember_event(self, platform: str, store_id: str, event_id: str, order_key: str) -> str | None:
        """Record a platform event id. Returns None when new, else the order key it pointed to."""
        from botocore.exceptions import ClientError

        try:
            with aws.unavailable("ledger"):
                self._ddb.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": f"event#{platform}#{store_id}#{event_id}"},
                        "sk": {"S": "event"},
                        "order_key": {"S": order_key},
                        "created_at": {"S": _now_iso()},
                        "expires_at": {"N": str(int(time.time()) + EVENT_TTL_SECONDS)},
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                old = exc.response.get("Item", {})
                return str(old.get("order_key", {}).get("S", order_key))
            raise
        return None

    # --- orders ------------------------------------------------------------------------------------
    def create_order(
        self,
        order_key: str,
        store_id: str,
        *,
        kind: str,
        status: str,
        payload: dict[str, Any],
        outbox: bool,
        violations: list[dict[str, str]] | None = None,
    ) -> OrderRecord | None:
        """Put the order record if absent (or if only a rejected attempt exists).

        Returns None when written, else the existing record (read by the refused write itself).
        """
        from botocore.exceptions import ClientError

        now = _now_iso()
        item: dict[str, Any] = {
            "pk": {"S": f"order#{order_key}"},
            "sk": {"S": "order"},
            "order_key": {"S": order_key},
            "store_id": {"S": store_id},
            "kind": {"S": kind},
            "status": {"S": status},
            "payload": {"B": _pack(payload)},
            "created_at": {"S": now},
            "updated_at": {"S": now},
        }
        if outbox:
            item["outbox"] = {"S": "pending"}
        if violations:
            item["violations"] = {"S": json.dumps(violations, ensure_ascii=False)}
        try:
            with aws.unavailable("ledger"):
                self._ddb.put_item(
                    TableName=self.table,
                    Item=item,
                    # A rejected order may be resubmitted once the store or the order is fixed.
                    ConditionExpression="attribute_not_exists(pk) OR #s = :rejected",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":rejected": {"S": "rejected"}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return self._record(exc.response.get("Item", {}))
            raise
        return None

    def get_order(self, order_key: str) -> OrderRecord | None:
        with aws.unavailable("ledger"):
            item = self._ddb.get_item(
                TableName=self.table, Key={"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}}, ConsistentRead=True
            ).get("Item")
        return self._record(item) if item else None

    def mark_queued(self, order_key: str) -> None:
        """Outbox done: the message is in SQS. Only a record still 'received' moves to 'queued'."""
        from botocore.exceptions import ClientError

        try:
            with aws.unavailable("ledger"):
                self._ddb.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}},
                    UpdateExpression="SET #s = :queued, updated_at = :now REMOVE outbox",
                    ConditionExpression="#s = :received",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":queued": {"S": "queued"},
                        ":received": {"S": "received"},
                        ":now": {"S": _now_iso()},
                    },
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # The worker already moved it on (it can be faster than us): only clear the outbox flag.
            with aws.unavailable("ledger"):
                self._ddb.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}},
                    UpdateExpression="REMOVE outbox",
                )

    def pending_outbox(self, older_than_seconds: float, limit: int = 100) -> list[str]:
        """Order keys still waiting to be handed to SQS, oldest first."""
        cutoff = _now_iso(seconds_ago=older_than_seconds)
        keys: list[str] = []
        paginator = self._ddb.get_paginator("query")
        with aws.unavailable("ledger"):
            for page in paginator.paginate(
                TableName=self.table,
                IndexName="by_outbox",
                KeyConditionExpression="outbox = :p AND created_at < :cutoff",
                ExpressionAttributeValues={":p": {"S": "pending"}, ":cutoff": {"S": cutoff}},
                PaginationConfig={"MaxItems": limit},
            ):
                keys.extend(i["pk"]["S"].removeprefix("order#") for i in page.get("Items", []))
        return keys

    def orders_of_store(self, store_id: str, *, limit: int = 50) -> list[OrderRecord]:
        """The store's most recent order records, newest first (index ``by_store``)."""
        with aws.unavailable("ledger"):
            reply = self._ddb.query(
                TableName=self.table,
                IndexName="by_store",
                KeyConditionExpression="store_id = :s",
                ExpressionAttributeValues={":s": {"S": store_id}},
                ScanIndexForward=False,
                Limit=limit,
            )
        return [self._record(i) for i in reply.get("Items", []) if i.get("sk", {}).get("S") == "order"]

    @staticmethod
    def _record(item: dict[str, Any]) -> OrderRecord:
        return OrderRecord(
            order_key=item["order_key"]["S"],
            store_id=item["store_id"]["S"],
            status=item["status"]["S"],
            kind=item.get("kind", {}).get("S", "paid"),
            payload=_unpack(item["payload"]["B"]) if "payload" in item else {},
            outbox_pending="outbox" in item,
            created_at=item.get("created_at", {}).get("S", ""),
            violations=json.loads(item["violations"]["S"]) if "violations" in item else None,
        )

    # --- issuing (the worker's claim / lease / fenced writes; see docs/issuing.md) ------------------
    #: Statuses a worker may claim (when no live lease is held). Terminal: issued, failed, held,
    #: rejected, refund_pending. ``failed_auth`` is claimable so a DLQ redrive retries the order.
    CLAIMABLE_STATUSES = ("queued", "received", "retrying", "ambiguous", "accepted", "failed_auth", "issuing")

    def claim_order(
        self, order_key: str, claim_id: str, *, serial: str, now: float, lease_seconds: float
    ) -> tuple[bool, OrderRecord | None, dict[str, Any]]:
        """Take the order for one worker attempt: status → ``issuing`` with a claim id and a lease.

        Condition, spelled out::

            attribute_exists(pk)
            AND status IN (queued, received, retrying, ambiguous, accepted, failed_auth, issuing)
            AND (attribute_not_exists(lease_until) OR lease_until < :now)

        Only ``issuing`` ever carries a lease, so a live lease (another worker is on it) refuses the
        claim, and an expired one (that worker crashed or timed out) may be taken over. ``serial`` is
        written only if the record has none yet (``if_not_exists``): an order keeps its first serial.
        ``prior_status`` keeps what the status was before the claim (for the audit trail).

        Returns ``(claimed, record, issue_fields)`` where record and fields are the item *before*
        this write (from the write itself, no extra read); ``record`` is None when there is no order.
        """
        from botocore.exceptions import ClientError

        names = {
            "#s": "status",
            "#cid": "claim_id",
            "#lease": "lease_until",
            "#serial": "serial",
            "#claims": "claims",
            "#prior": "prior_status",
        }
        values: dict[str, Any] = {
            ":issuing": {"S": "issuing"},
            ":cid": {"S": claim_id},
            ":until": {"N": str(int(now + lease_seconds))},
            ":now_n": {"N": str(int(now))},
            ":serial": {"S": serial},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":now": {"S": _now_iso()},
        }
        placeholders = []
        for i, status in enumerate(self.CLAIMABLE_STATUSES):
            values[f":c{i}"] = {"S": status}
            placeholders.append(f":c{i}")
        try:
            with aws.unavailable("ledger"):
                reply = self._ddb.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}},
                    UpdateExpression=(
                        "SET #prior = #s, #s = :issuing, #cid = :cid, #lease = :until, "
                        "#serial = if_not_exists(#serial, :serial), "
                        "#claims = if_not_exists(#claims, :zero) + :one, updated_at = :now"
                    ),
                    ConditionExpression=(
                        f"attribute_exists(pk) AND #s IN ({', '.join(placeholders)}) "
                        "AND (attribute_not_exists(#lease) OR #lease < :now_n)"
                    ),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item") or {}
            if not old:
                return False, None, {}
            return False, self._record(old), self._issue_fields(old)
        old = reply.get("Attributes") or {}
        return True, self._record(old), self._issue_fields(old)

    def update_claimed(
        self,
        order_key: str,
        claim_id: str,
        *,
        status: str | None = None,
        fields: dict[str, str | int | None] | None = None,
        add_sends: bool = False,
        release: bool = False,
    ) -> bool:
        """A write by the worker holding the claim (fenced): False when it no longer holds it.

        Condition, spelled out::

            claim_id = :cid

        (a worker whose lease expired and was taken over has a different claim id, so its late
        writes are refused). ``fields`` are SET (a None value REMOVEs the attribute), ``add_sends``
        counts one more issue request about to be sent (``sends = sends + 1``, written *before* the
        request leaves: after any crash the next attempt knows it must query by serial first), and
        ``release`` removes ``claim_id`` and ``lease_until`` so the order is claimable again.
        """
        from botocore.exceptions import ClientError

        names: dict[str, str] = {"#cid": "claim_id"}
        values: dict[str, Any] = {":cid": {"S": claim_id}, ":now": {"S": _now_iso()}}
        sets = ["updated_at = :now"]
        removes: list[str] = []
        if status is not None:
            names["#s"] = "status"
            values[":status"] = {"S": status}
            sets.append("#s = :status")
        for i, (name, value) in enumerate((fields or {}).items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            elif isinstance(value, int):
                values[f":f{i}"] = {"N": str(value)}
                sets.append(f"#f{i} = :f{i}")
            else:
                values[f":f{i}"] = {"S": value}
                sets.append(f"#f{i} = :f{i}")
        if add_sends:
            names["#sends"] = "sends"
            values[":zero"] = {"N": "0"}
            values[":one"] = {"N": "1"}
            sets.append("#sends = if_not_exists(#sends, :zero) + :one")
        if release:
            names["#lease"] = "lease_until"
            removes.extend(["#cid", "#lease"])
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        try:
            with aws.unavailable("ledger"):
                self._ddb.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}},
                    UpdateExpression=expression,
                    ConditionExpression="#cid = :cid",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_refund_pending(self, order_key: str) -> bool:
        """A refund record waits for the red flow (not automated yet): status → ``refund_pending``.

        Condition, spelled out::

            status IN (queued, received)

        False when the record is absent or already moved on (a repeated message: nothing to do).
        """
        from botocore.exceptions import ClientError

        try:
            with aws.unavailable("ledger"):
                self._ddb.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}},
                    UpdateExpression="SET #s = :pending, updated_at = :now",
                    ConditionExpression="#s IN (:queued, :received)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":pending": {"S": "refund_pending"},
                        ":queued": {"S": "queued"},
                        ":received": {"S": "received"},
                        ":now": {"S": _now_iso()},
                    },
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def issue_fields(self, order_key: str) -> dict[str, Any]:
        """The worker's attributes of an order record (status, serial, invoice number …); {} if absent."""
        with aws.unavailable("ledger"):
            item = self._ddb.get_item(
                TableName=self.table, Key={"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}}, ConsistentRead=True
            ).get("Item")
        return self._issue_fields(item) if item else {}

    #: Attributes the worker writes besides ``status``; strings unless listed in _ISSUE_NUMBERS.
    _ISSUE_ATTRIBUTES = (
        "status",
        "prior_status",
        "claim_id",
        "lease_until",
        "serial",
        "claims",
        "sends",
        "provider",
        "provider_ref",
        "provider_status",
        "invoice_number",
        "issued_at",
        "pdf_url",
        "ofd_url",
        "xml_url",
        "total_amount",
        "total_tax",
        "failure_code",
        "failure_field",
        "failure_reason",
        "last_error",
        "polls",
    )
    _ISSUE_NUMBERS = ("lease_until", "claims", "sends", "polls")

    @classmethod
    def _issue_fields(cls, item: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name in cls._ISSUE_ATTRIBUTES:
            if name not in item:
                continue
            value = item[name]
            fields[name] = int(value["N"]) if name in cls._ISSUE_NUMBERS and "N" in value else value.get("S")
        return fields
