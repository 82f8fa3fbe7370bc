"""An event id is one order's: the same id sent with another order is a conflict, never a duplicate.

A platform's event id (Standard Webhooks' ``webhook-id``, Stripe's ``evt_…``, WeChat Pay's
notification id, Alipay's ``notify_id`` …) names one delivery of one order. The intake records it with
the order, in the same write (``Ledger.create_order(event_id=…)``): an id seen before with a
*different* order key means the sender reuses ids (a relay's bug, a replayed or forged-but-signed
body). Such an order is never dropped as a duplicate of the other one: it is recorded as ``rejected``
with the violation :data:`EVENT_ID_CONFLICT` naming the order that holds the id, answered as a conflict
(:class:`EventIdConflict`: 409, or the platform's acknowledgement where the store acknowledges rejected
orders), and the operator corrects it like any rejected order (``einvoice orders fix``).

Pure: no IO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.domain.errors import OrderRejected
from chalicelib.domain.models import Violation
from chalicelib.domain.validation_catalogue import violation

EVENT_ID_CONFLICT = "event_id_conflict"  # its messages: chalicelib/domain/validation_catalogue.py


@dataclass(frozen=True)
class EventIdHeld:
    """The ledger did not record an order: its event id is held by another order (``order_key``)."""

    event_id: str
    order_key: str


def conflict_violation(held: EventIdHeld) -> Violation:
    """The violation a conflicting order is recorded with (field ``event_id``), naming the other order."""
    return violation("event_id", EVENT_ID_CONFLICT, event_id=held.event_id, held_by=held.order_key)


class EventIdConflict(OrderRejected):
    """The order was recorded as rejected because its event id is another order's (``held_by``)."""

    code = EVENT_ID_CONFLICT

    def __init__(self, violations: Sequence[Violation], *, order_key: str, held_by: str) -> None:
        super().__init__(tuple(violations), order_key=order_key)
        self.held_by = held_by
