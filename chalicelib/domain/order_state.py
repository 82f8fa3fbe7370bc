"""The life of an order record, in one place: statuses, events, the transition table, the order key.

Pure: no I/O, no clock. The ledger *executes* a transition (one conditional write derived from
:data:`TRANSITIONS` by :func:`sources`); the issuing service *chooses* the event; neither decides
what may follow what. ``docs/issuing.md`` carries a diagram generated from this table
(:func:`diagram`); a test checks that the two agree.

Order key: ``<store>:<platform>:<order id>`` for a paid order, ``…:refund:<refund id>`` for a refund
of it. The platform is part of the key because one store may take orders from several platforms
whose order numbers overlap (Shopify ``1001`` and WooCommerce ``1001`` are two sales). Components are
percent-escaped for ``%`` and ``:`` only, so the key stays readable and parses back exactly.

An event whose order id cannot be read is recorded (as ``rejected``) under
:func:`event_order_key` — the event id in the order id's place — and never issued from there.

Serial: every order has one request serial for ever (:func:`serial_for`), so the tax platform's own
duplicate check makes a second invoice for the order impossible whatever is resent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class OrderStatus(StrEnum):
    """Where an order (or refund) record stands. Values are stored in the ledger: never rename."""

    # intake
    RECEIVED = "received"  # recorded; its message is not yet known to be in SQS (the outbox)
    QUEUED = "queued"  # its message is in SQS
    HELD = "held"  # pilot store: issued by hand, outside this service
    REJECTED = "rejected"  # invalid (violations kept); a corrected resubmission replaces it
    # worker (blue)
    ISSUING = "issuing"  # claimed by one worker attempt (claim id + lease)
    RETRYING = "retrying"  # nothing can exist on the platform yet: issue again on the schedule
    AMBIGUOUS = "ambiguous"  # a request may have been acted on: the next attempt queries first
    ACCEPTED = "accepted"  # the platform accepted the request and is still issuing: check later
    ISSUED = "issued"
    FAILED = "failed"  # the platform refused the request or gave up on it: an operator decides
    FAILED_AUTH = "failed_auth"  # the platform refused the store's credentials
    BLOCKED = "blocked"  # the store's tax configuration changed while the outcome was unknown
    # refunds (the red flow of the after-sale work; not executed yet, see docs/issuing.md)
    REFUND_PENDING = "refund_pending"  # recorded, waiting for the red flow
    RED_FORM_APPLIED = "red_form_applied"  # red confirmation form applied, waiting for confirmation
    RED_ISSUING = "red_issuing"  # form confirmed (or none needed): the red invoice is being issued
    RED_ISSUED = "red_issued"
    RED_FORM_EXPIRED = "red_form_expired"  # not confirmed within 72 hours: re-apply or an operator


class OrderEvent(StrEnum):
    """What happens to a record. Only the ledger turns an event into a write."""

    ENQUEUED = "enqueued"  # intake: the message is in SQS
    CLAIM = "claim"  # a worker attempt takes the record (lease)
    ISSUED = "issued"  # the platform reports the invoice issued
    WAIT = "wait"  # accepted, still issuing: released until the next check
    RETRY = "retry"  # a retryable failure with nothing on the platform: released until the next try
    UNKNOWN = "unknown"  # the outcome of a request is unknown: released, query first next time
    FAIL = "fail"  # refused, or failed by the platform
    AUTH_FAILED = "auth_failed"
    BLOCK = "block"  # configuration changed since the first send, outcome unknown
    PARK_REFUND = "park_refund"  # a refund record waits for the red flow
    OPERATOR_RETRY = "operator_retry"  # an operator asks for another attempt (always queries first)
    # an operator corrected a rejected order and it now passes the rules (``einvoice orders fix``): its
    # payload is replaced in the same write; it goes on as a new order would (the outbox, or held)
    CORRECTED = "corrected"
    CORRECTED_HELD = "corrected_held"  # … outside the store's pilot share, or the store is inactive
    # red flow (after-sale)
    RED_APPLY = "red_apply"
    RED_CONFIRMED = "red_confirmed"
    RED_ISSUED = "red_issued"
    RED_EXPIRED = "red_expired"


S, E = OrderStatus, OrderEvent

#: Records a worker may claim (when no live lease is held: ``issuing`` with an expired lease is a
#: dead attempt's and may be taken over).
CLAIMABLE: frozenset[OrderStatus] = frozenset(
    {S.RECEIVED, S.QUEUED, S.RETRYING, S.AMBIGUOUS, S.ACCEPTED, S.FAILED_AUTH, S.ISSUING}
)
#: Nothing more happens to these by itself: a message for them is a no-op.
TERMINAL: frozenset[OrderStatus] = frozenset(
    {S.ISSUED, S.FAILED, S.HELD, S.REJECTED, S.BLOCKED, S.REFUND_PENDING, S.RED_ISSUED, S.RED_FORM_EXPIRED}
)
#: A record found in one of these may have had a request acted on: query by serial before issuing.
QUERY_FIRST: frozenset[OrderStatus] = frozenset({S.ISSUING, S.AMBIGUOUS, S.ACCEPTED})
#: An operator may ask for another attempt from these (``einvoice orders retry``): the record goes to
#: ``ambiguous``, so the attempt queries by serial before it could issue anything, and its counters
#: start again (an order the schedule gave up on is retried for another horizon).
OPERATOR_RETRYABLE: frozenset[OrderStatus] = frozenset(
    {S.FAILED, S.FAILED_AUTH, S.BLOCKED, S.RETRYING, S.AMBIGUOUS, S.ACCEPTED}
)

_TABLE: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (S.RECEIVED, E.ENQUEUED): S.QUEUED,
    **{(s, E.CLAIM): S.ISSUING for s in CLAIMABLE},
    (S.ISSUING, E.ISSUED): S.ISSUED,
    (S.ISSUING, E.WAIT): S.ACCEPTED,
    (S.ISSUING, E.RETRY): S.RETRYING,
    (S.ISSUING, E.UNKNOWN): S.AMBIGUOUS,
    (S.ISSUING, E.FAIL): S.FAILED,
    (S.ISSUING, E.AUTH_FAILED): S.FAILED_AUTH,
    (S.ISSUING, E.BLOCK): S.BLOCKED,
    (S.RECEIVED, E.PARK_REFUND): S.REFUND_PENDING,
    (S.QUEUED, E.PARK_REFUND): S.REFUND_PENDING,
    **{(s, E.OPERATOR_RETRY): S.AMBIGUOUS for s in OPERATOR_RETRYABLE},
    (S.REJECTED, E.CORRECTED): S.RECEIVED,
    (S.REJECTED, E.CORRECTED_HELD): S.HELD,
    # red flow: the after-sale work executes these
    (S.REFUND_PENDING, E.RED_APPLY): S.RED_FORM_APPLIED,
    (S.REFUND_PENDING, E.RED_CONFIRMED): S.RED_ISSUING,  # no confirmation needed (01)
    (S.RED_FORM_APPLIED, E.RED_CONFIRMED): S.RED_ISSUING,
    (S.RED_FORM_APPLIED, E.RED_EXPIRED): S.RED_FORM_EXPIRED,
    (S.RED_FORM_EXPIRED, E.RED_APPLY): S.RED_FORM_APPLIED,
    (S.RED_ISSUING, E.RED_ISSUED): S.RED_ISSUED,
}
#: (status, event) → status. Read-only to everyone but this module.
TRANSITIONS = _TABLE

#: Events that replace the record's payload in the same conditional write (the ledger drops the
#: violations with it: they were the old payload's).
REPLACES_PAYLOAD: frozenset[OrderEvent] = frozenset({E.CORRECTED, E.CORRECTED_HELD})
#: Events that only the worker holding the claim may cause (the ledger fences them on the claim id).
FENCED: frozenset[OrderEvent] = frozenset({E.ISSUED, E.WAIT, E.RETRY, E.UNKNOWN, E.FAIL, E.AUTH_FAILED, E.BLOCK})
#: Events that set a lease (the claim); a live lease refuses them.
LEASED: frozenset[OrderEvent] = frozenset({E.CLAIM})
#: Events after which the record holds no claim any more (claim id and lease removed).
RELEASING: frozenset[OrderEvent] = frozenset(
    {E.ISSUED, E.WAIT, E.RETRY, E.UNKNOWN, E.FAIL, E.AUTH_FAILED, E.BLOCK, E.OPERATOR_RETRY}
)


class IllegalTransition(ValueError):
    """An event that the table does not allow from a status (a bug in the caller, never data)."""


def sources(event: OrderEvent) -> frozenset[OrderStatus]:
    """The statuses ``event`` may leave from: the ledger's ``status IN (…)`` condition."""
    found = frozenset(s for (s, e) in _TABLE if e is event)
    if not found:
        raise IllegalTransition(f"no transition for event {event}")
    return found


def target(event: OrderEvent, current: OrderStatus | None = None) -> OrderStatus:
    """Where ``event`` leads (from ``current`` when given; every event has one target)."""
    targets = {t for (s, e), t in _TABLE.items() if e is event and (current is None or s is current)}
    if len(targets) != 1:
        where = f" from {current}" if current is not None else ""
        raise IllegalTransition(f"event {event}{where} has {len(targets)} targets")
    return targets.pop()


def next_status(current: OrderStatus, event: OrderEvent) -> OrderStatus:
    """The status after ``event`` from ``current``; :class:`IllegalTransition` when not allowed."""
    try:
        return _TABLE[(current, event)]
    except KeyError:
        raise IllegalTransition(f"{event} is not allowed from {current}") from None


def parse_status(value: str) -> OrderStatus:
    """A stored status back to the enum (an unknown value is a data error worth raising on)."""
    return OrderStatus(value)


# --- order key -----------------------------------------------------------------------------------
REFUND_MARK = "refund"


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _unescape(part: str) -> str:
    return part.replace("%3A", ":").replace("%3a", ":").replace("%25", "%")


@dataclass(frozen=True)
class OrderKey:
    """The parts of an order key. ``refund_id`` is set for a refund record."""

    store_id: str
    platform: str
    order_id: str
    refund_id: str | None = None

    def __str__(self) -> str:
        base = f"{_escape(self.store_id)}:{_escape(self.platform)}:{_escape(self.order_id)}"
        if self.refund_id is None:
            return base
        return f"{base}:{REFUND_MARK}:{_escape(self.refund_id)}"

    @property
    def blue(self) -> OrderKey:
        """The key of the paid order a refund belongs to (itself for a paid order)."""
        return OrderKey(self.store_id, self.platform, self.order_id)

    @property
    def is_refund(self) -> bool:
        return self.refund_id is not None


def order_key(store_id: str, platform: str, order_id: str, refund_id: str | None = None) -> str:
    """The ledger key of an order (or of one refund of it)."""
    if not store_id or not platform or not order_id or refund_id == "":
        raise ValueError("an order key needs a store, a platform and an order id (and a non-empty refund id)")
    return str(OrderKey(store_id, platform, order_id, refund_id))


def parse_order_key(key: str) -> OrderKey:
    """The parts of a key built by :func:`order_key`; ValueError for anything else."""
    parts = key.split(":")
    if len(parts) == 3 and all(parts):
        return OrderKey(*(_unescape(p) for p in parts))
    if len(parts) == 5 and parts[3] == REFUND_MARK and all(parts):
        store, platform, order, _, refund = (_unescape(p) for p in parts)
        return OrderKey(store, platform, order, refund)
    raise ValueError(f"not an order key: {key!r}")


def store_of(key: str) -> str:
    """The store id of an order key."""
    return parse_order_key(key).store_id


#: The order id part of the key of a signed event whose order id could not be read: the event id
#: behind this mark (``demo-shanghai:standard:event%3Amsg_1``), so a re-delivery finds the same record.
EVENT_MARK = "event:"


def event_order_key(store_id: str, platform: str, event_id: str) -> str:
    """The key of an event whose order id cannot be read (recorded as rejected, never issued)."""
    return order_key(store_id, platform, EVENT_MARK + event_id)


def keyed_by_event(key: str) -> bool:
    """Whether ``key`` names an event whose order id could not be read (see :func:`event_order_key`)."""
    return parse_order_key(key).order_id.startswith(EVENT_MARK)


# --- serial --------------------------------------------------------------------------------------
#: Serial = prefix + the first hex digits of SHA-256(order key), upper case: 20 characters fits
#: Nuonuo's orderNo (≤ 20) and the STA fpqqlsh (≤ 40); 72 bits make a collision practically impossible.
SERIAL_PREFIX = "EI"
SERIAL_LENGTH = 20


def serial_for(key: str) -> str:
    """The deterministic request serial of an order: the same on every attempt and every worker."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest().upper()
    return SERIAL_PREFIX + digest[: SERIAL_LENGTH - len(SERIAL_PREFIX)]


# --- the diagram in docs/issuing.md --------------------------------------------------------------
DIAGRAM_BEGIN = "<!-- order-state:begin (generated by python -m chalicelib.domain.order_state) -->"
DIAGRAM_END = "<!-- order-state:end -->"


def diagram() -> str:
    """A Mermaid state diagram of :data:`TRANSITIONS` (what ``docs/issuing.md`` shows)."""
    lines = ["```mermaid", "stateDiagram-v2"]
    for (source, event), dest in sorted(_TABLE.items(), key=lambda kv: (kv[0][0].value, kv[0][1].value)):
        lines.append(f"    {source.value} --> {dest.value}: {event.value}")
    for status in sorted(TERMINAL, key=lambda s: s.value):
        lines.append(f"    {status.value} --> [*]")
    lines.append("```")
    return "\n".join(lines)


if __name__ == "__main__":  # print the diagram block for docs/issuing.md
    print(DIAGRAM_BEGIN)
    print(diagram())
    print(DIAGRAM_END)
