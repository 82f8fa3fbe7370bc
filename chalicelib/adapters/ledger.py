"""The ledger in DynamoDB: one record per order (and per refund), every status change one conditional write.

Items (table ``LedgerTable``, key ``pk``/``sk``)::

    pk = "order#<order_key>"   sk = "order"   status, kind, payload (zlib JSON), store_id, created_at,
                                                updated_at, the worker's attributes (serial, claim_id,
                                                lease_until, pin, sends, retries, invoice_number …),
                                                due = "due" and due_at while the record waits for
                                                something (sparse GSI ``by_due``: the sweeper's list)

    pk = "rejections#<store_id>" sk = "window#<n>"  n (rejections of the store in window n of the
                                                 burst alert), expires_at (TTL): written on the
                                                 rejection path only (:meth:`Ledger.count_rejection`)

Other items share the table under their own ``pk`` prefixes, none carrying the attributes the two
indexes key on: ``event#…`` (an event id and the order it came with: this module), ``link#…``
(``adapters/links.py``), ``apikey#…`` / ``operator#…`` / ``session#…`` / ``loginfail#…``
(``adapters/auth_store.py``), ``ratelimit#…`` (``adapters/rate_limit.py``), ``counters#…`` (the dashboard's,
``adapters/counters.py``), ``rejections#…`` (below). The item format is ``ledger_items.py``; the reads beyond one record
``ledger_reads.py``.

The ledger *executes* the transitions of ``chalicelib.domain.order_state``; it decides none. The
condition of every status write is derived from the table (:func:`_condition`)::

    attribute_exists(pk) AND status IN sources(event)
        [AND claim_id = :cid]                                       -- fenced events
        [AND (attribute_not_exists(lease_until) OR lease_until < :now)]   -- the claim

Why ``received`` before ``queued`` (the outbox): answering 2xx promises the event is queued, and
"recorded" and "queued" are two systems that cannot be written atomically. The record is written
``received`` with ``due_at`` a grace period ahead, the message is sent, then the record moves to
``queued`` (no longer due). A crash or an SQS failure between the two leaves it ``received``: the
platform's retry finds it and enqueues it again, and the sweeper re-sends it once it is due. A record
may be enqueued twice; the worker's conditional claim makes that harmless.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.dynamo import CONDITION_REFUSED, Update, cancellation_reasons, conditional
from chalicelib.adapters.ledger_items import (
    DUE,
    NUMBERS,
    check_annotation,
    event_pk,
    iso,
    key,
    pack,
    record_of,
    record_transition,
)
from chalicelib.adapters.ledger_reads import LedgerReads
from chalicelib.config import SWEEP_GRACE_SECONDS
from chalicelib.domain.delivery import DELIVERABLE
from chalicelib.domain.errors import InfrastructureUnavailable
from chalicelib.domain.event_ids import EventIdHeld
from chalicelib.domain.order_state import (
    FENCED,
    LEASED,
    RELEASING,
    REPLACES_PAYLOAD,
    TERMINAL,
    OrderEvent,
    OrderStatus,
    sources,
    target,
)
from chalicelib.services.archive import TransitionRecorder
from chalicelib.services.ports import Fields, OrderRecord, Transition


def _condition(update: Update, event: OrderEvent, claim_id: str | None, now: float) -> str:
    """The condition of ``event``, derived from the transition table."""
    statuses = sorted(s.value for s in sources(event))
    parts = ["attribute_exists(pk)", f"{update.name('status')} IN ({', '.join(update.value(s) for s in statuses)})"]
    if event in FENCED:
        if not claim_id:
            raise ValueError(f"{event} is fenced: it needs the claim id")
        parts.append(f"{update.name('claim_id')} = {update.value(claim_id)}")
    if event in LEASED:
        lease = update.name("lease_until")
        parts.append(f"(attribute_not_exists({lease}) OR {lease} < {update.value(int(now))})")
    return " AND ".join(parts)


class Ledger(LedgerReads):
    def __init__(self, table_name: str, *, clock: Any = time.time, recorder: TransitionRecorder | None = None) -> None:
        self.table = table_name
        self.clock = clock
        #: Each transition made is told to the audit archive's status history (None: not recorded).
        self.recorder = recorder

    # --- intake ------------------------------------------------------------------------------------
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
        grace_seconds: float = SWEEP_GRACE_SECONDS,
        event_id: str | None = None,
    ) -> OrderRecord | EventIdHeld | None:
        """Put the order record if absent (or if only a rejected attempt exists).

        ``outbox``: the record is ``received`` and its message is about to be sent; it is due for the
        sweeper after ``grace_seconds``. Returns None when written, else the existing record (read by
        the refused write itself).

        ``event_id``: recorded in the same single call (one ``TransactWriteItems``: the order's put and
        an event item, :func:`event_pk`, naming the order), refused when the item names another order:
        then nothing is written and :class:`EventIdHeld` names that order. An existing order (not
        rejected) is returned first, whatever its event id.
        """
        now = self.clock()
        item: dict[str, Any] = {
            **key(order_key),
            "order_key": {"S": order_key},
            "store_id": {"S": store_id},
            "kind": {"S": kind},
            "status": {"S": OrderStatus(status).value},
            "payload": {"B": pack(payload)},
            "created_at": {"S": iso(now)},
            "updated_at": {"S": iso(now)},
        }
        if outbox:
            item["due"] = {"S": DUE}
            item["due_at"] = {"S": iso(now + grace_seconds)}
        if violations:
            item["violations"] = {"S": json.dumps(violations, ensure_ascii=False)}
        absent: dict[str, Any] = {
            # A rejected order may be resubmitted once the store or the order is fixed.
            "ConditionExpression": "attribute_not_exists(pk) OR #s = :rejected",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":rejected": {"S": OrderStatus.REJECTED.value}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if event_id is not None:
            return self._create_with_event(order_key, item, absent, event_id)
        with aws.unavailable("ledger"):
            ok, old = conditional(lambda: self._ddb.put_item(TableName=self.table, Item=item, **absent))
        return None if ok else (record_of(old) if old else None)

    def _create_with_event(
        self, order_key: str, item: dict[str, Any], absent: dict[str, Any], event_id: str
    ) -> OrderRecord | EventIdHeld | None:
        """The order's put and its event item in one transaction (see :meth:`create_order`)."""
        event_item = {
            "pk": {"S": event_pk(order_key, event_id)},
            "sk": {"S": "event"},
            "order_key": {"S": order_key},
            "event_id": {"S": event_id},
            "created_at": item["created_at"],
        }
        unused = {
            "ConditionExpression": "attribute_not_exists(pk) OR order_key = :k",
            "ExpressionAttributeValues": {":k": {"S": order_key}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        with aws.unavailable("ledger"):
            reasons = cancellation_reasons(
                lambda: self._ddb.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": self.table, "Item": item, **absent}},
                        {"Put": {"TableName": self.table, "Item": event_item, **unused}},
                    ]
                )
            )
        if reasons is None:
            return None
        order, event = [*reasons, {}, {}][:2]
        if order.get("Code") == CONDITION_REFUSED:
            return record_of(order["Item"]) if order.get("Item") else None
        if event.get("Code") == CONDITION_REFUSED and event.get("Item"):
            return EventIdHeld(event_id, event["Item"]["order_key"]["S"])
        codes = ", ".join(str(r.get("Code")) for r in reasons)  # TransactionConflict: a concurrent write
        raise InfrastructureUnavailable(f"ledger: the intake write was cancelled ({codes}); retry")

    def get_order(self, order_key: str) -> OrderRecord | None:
        with aws.unavailable("ledger"):
            item = self._ddb.get_item(TableName=self.table, Key=key(order_key), ConsistentRead=True).get("Item")
        return record_of(item) if item else None

    def mark_queued(self, order_key: str) -> None:
        """Outbox done: the message is in SQS. A record the worker already moved on is left alone."""
        self.transition(order_key, OrderEvent.ENQUEUED, now=self.clock())

    def issue_fields(self, order_key: str) -> dict[str, Any]:
        """The record's status and worker attributes ({} when absent): for the CLI and tests."""
        record = self.get_order(order_key)
        if record is None:
            return {}
        return {"status": record.status.value, **record.fields}

    # --- transitions -------------------------------------------------------------------------------
    def transition(
        self,
        order_key: str,
        event: OrderEvent,
        *,
        now: float,
        claim_id: str | None = None,
        lease_until: float | None = None,
        due_at: float | None = None,
        fields: Fields | None = None,
        keep: Mapping[str, str] | None = None,
        add: Mapping[str, int] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Transition:
        """Apply ``event`` to the record (see the module docstring for the condition). An event of
        ``REPLACES_PAYLOAD`` needs ``payload``: it replaces the record's, whose violations go with it."""
        destination = target(event)
        u = Update()
        u.set("status", u.value(destination.value))
        u.set("updated_at", u.value(iso(now)))
        if (payload is not None) is not (event in REPLACES_PAYLOAD):
            raise ValueError(f"{event} {'needs' if event in REPLACES_PAYLOAD else 'takes no'} payload")
        if payload is not None:
            u.values[":payload"] = {"B": pack(payload)}
            u.set("payload", ":payload")
            u.remove("violations")
        if event in LEASED:
            if not claim_id or lease_until is None:
                raise ValueError(f"{event} needs a claim id and a lease")
            u.set("claim_id", u.value(claim_id))
            u.set("lease_until", u.value(int(lease_until)))
        elif event in RELEASING:
            u.remove("claim_id")
            u.remove("lease_until")
        if due_at is not None and (destination not in TERMINAL or destination in DELIVERABLE):
            u.set("due", u.value(DUE))
            u.set("due_at", u.value(iso(due_at)))
        else:
            u.remove("due")
            u.remove("due_at")
        u.fields(fields or {}, NUMBERS)
        for name, value in (keep or {}).items():
            n = u.name(name)
            u.set(n, f"if_not_exists({n}, {u.value(value)})", raw_name=True)
        for name, step in (add or {}).items():
            u.add(name, step)
        condition = _condition(u, event, claim_id, now)
        ok, old = self._update(order_key, u, condition)
        before = record_of(old) if old else None
        if ok and self.recorder is not None:
            record_transition(self.recorder, order_key, event, before, now=now, fields=fields)
        return Transition(ok, before)

    def touch(self, order_key: str, claim_id: str, *, fields: Fields, lease_until: float | None = None) -> bool:
        """A fenced write that changes no status: ``status = issuing AND claim_id = :cid``."""
        u = Update()
        u.set("updated_at", u.value(iso(self.clock())))
        u.fields(fields, NUMBERS)
        if lease_until is not None:
            u.set("lease_until", u.value(int(lease_until)))
            u.set("due_at", u.value(iso(lease_until)))
        condition = (
            f"{u.name('status')} = {u.value(OrderStatus.ISSUING.value)} AND {u.name('claim_id')} = {u.value(claim_id)}"
        )
        ok, _ = self._update(order_key, u, condition)
        return ok

    def revise(
        self,
        order_key: str,
        *,
        revision: int,
        statuses: frozenset[OrderStatus],
        now: float,
        fields: Fields,
        payload: dict[str, Any] | None = None,
    ) -> Transition:
        """Compare-and-set on ``revision`` within ``statuses``; no status change (see the port)."""
        u = Update()
        u.set("updated_at", u.value(iso(now)))
        u.fields(fields, NUMBERS)
        u.set("revision", u.value(revision + 1))
        if payload is not None:
            u.values[":payload"] = {"B": pack(payload)}
            u.set("payload", ":payload")
        rev, status = u.name("revision"), u.name("status")
        names = ", ".join(u.value(s.value) for s in sorted(statuses, key=lambda s: s.value))
        same = f"attribute_not_exists({rev})" if revision == 0 else f"{rev} = {u.value(revision)}"
        condition = f"attribute_exists(pk) AND {status} IN ({names}) AND {same}"
        ok, old = self._update(order_key, u, condition)
        return Transition(ok, record_of(old) if old else None)

    # --- the sweeper's list -------------------------------------------------------------------------
    def due(self, now: float, *, limit: int) -> list[OrderRecord]:
        """Records whose ``due_at`` has passed, oldest first (index ``by_due``, then one read each)."""
        keys: list[str] = []
        paginator = self._ddb.get_paginator("query")
        with aws.unavailable("ledger"):
            for page in paginator.paginate(
                TableName=self.table,
                IndexName="by_due",
                KeyConditionExpression="#d = :due AND due_at < :now",
                ExpressionAttributeNames={"#d": "due"},
                ExpressionAttributeValues={":due": {"S": DUE}, ":now": {"S": iso(now)}},
                PaginationConfig={"MaxItems": limit},
            ):
                keys.extend(i["pk"]["S"].removeprefix("order#") for i in page.get("Items", []))
        records = [self.get_order(k) for k in keys[:limit]]
        return [r for r in records if r is not None and "due_at" in r.fields]

    def postpone(self, order_key: str, *, was: str, due_at: float) -> bool:
        """``due_at`` := ``due_at`` if it is still ``was`` (its stored text): two sweepers never both
        re-send the same record."""
        with aws.unavailable("ledger"):
            ok, _ = conditional(
                lambda: self._ddb.update_item(
                    TableName=self.table,
                    Key=key(order_key),
                    UpdateExpression="SET due_at = :new",
                    ConditionExpression="due_at = :was",
                    ExpressionAttributeValues={":new": {"S": iso(due_at)}, ":was": {"S": was}},
                )
            )
        return ok

    # --- delivery (chalicelib/services/deliver.py): non-status writes on an issued record ----------
    def annotate(
        self,
        order_key: str,
        *,
        fields: Fields,
        deliveries: Sequence[Mapping[str, str]] = (),
        statuses: frozenset[OrderStatus] = DELIVERABLE,
        settle_due: bool = False,
    ) -> bool:
        """SET ``fields`` (None removes) and append ``deliveries`` while ``status IN statuses``: no
        status change, no claim. The record's own attributes cannot be written this way.
        ``settle_due``: the record is no longer due (a delivery run has reached it: the sweeper's
        safety net for a lost delivery message, ``DELIVERY_DUE_SECONDS``, is done)."""
        check_annotation(fields)
        u = Update()
        u.set("updated_at", u.value(iso(self.clock())))
        u.fields(fields, NUMBERS)
        if settle_due:
            u.remove("due")
            u.remove("due_at")
        if deliveries:
            d = u.name("deliveries")
            u.values[":deliveries"] = {"L": [{"M": {k: {"S": str(v)} for k, v in r.items()}} for r in deliveries]}
            u.values[":empty"] = {"L": []}
            u.set(d, f"list_append(if_not_exists({d}, :empty), :deliveries)", raw_name=True)
        names = ", ".join(u.value(s.value) for s in sorted(statuses, key=lambda s: s.value))
        condition = f"attribute_exists(pk) AND {u.name('status')} IN ({names})"
        ok, _ = self._update(order_key, u, condition)
        return ok

    def _update(self, order_key: str, u: Update, condition: str) -> tuple[bool, dict[str, Any]]:
        """One conditional UpdateItem of the record: (made?, the item before — from the write itself,
        whether it was made or refused; {} when there was none)."""
        with aws.unavailable("ledger"):
            return conditional(
                lambda: self._ddb.update_item(
                    TableName=self.table,
                    Key=key(order_key),
                    UpdateExpression=u.expression(),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=u.names,
                    ExpressionAttributeValues=u.values,
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            )
