"""The life of an order record, in one place: statuses, events, the transition table.

Pure: no I/O, no clock. The ledger *executes* a transition (one conditional write derived from
:data:`TRANSITIONS` by :func:`sources`); the issuing service *chooses* the event; neither decides
what may follow what. ``docs/issuing.md`` carries a diagram generated from this table
(:func:`diagram`); a test checks that the two agree.

The order key and the request serial: ``chalicelib/domain/order_keys.py``.
"""

from __future__ import annotations

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
    # refunds: the red flow (``chalicelib/services/red.py``; docs/issuing.md "Refunds and red invoices")
    REFUND_PENDING = "refund_pending"  # waiting for its blue record (not known yet, or in flight)
    REFUND_UNMATCHED = "refund_unmatched"  # no blue record within the hold time: an operator decides
    REFUND_NETTED = "refund_netted"  # arrived before the blue was issued: the blue was reduced / cancelled
    REFUND_REFUSED = "refund_refused"  # more than is left on the blue (over-refund): refused, alerted
    REFUND_MANUAL = "refund_manual"  # the blue is held / failed / blocked / rejected: an operator reverses
    RED_ISSUING = "red_issuing"  # claimed by one red-flow attempt (claim id + lease): form or red invoice
    RED_FORM_APPLIED = "red_form_applied"  # red confirmation form applied, waiting for the buyer: re-checked
    RED_RETRYING = "red_retrying"  # a retryable failure with nothing acted on: try the step again
    RED_AMBIGUOUS = "red_ambiguous"  # a red request may have been acted on: the next attempt queries first
    RED_ACCEPTED = "red_accepted"  # the red invoice request was accepted: check later
    RED_ISSUED = "red_issued"
    RED_FAILED = "red_failed"  # the platform refused the form or the red invoice: an operator decides
    RED_FORM_EXPIRED = "red_form_expired"  # not confirmed within 72 hours, store says: an operator
    # a blue order fully refunded before it was issued (nothing is issued for it)
    CANCELLED = "cancelled"
    # void (作废, chalicelib/services/void.py) or the platform reports it voided (chalicelib/services/sync.py)
    VOIDED = "voided"
    # 换开 (chalicelib/services/retitle.py): an issued blue being replaced by a red reversal and a new blue
    REISSUING = "reissuing"  # the full red reversal (refund record ``retitle-<number>``) is under way
    REISSUED = "reissued"  # reversed in full; the new blue (``reissue_key``) carries the sale from here


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
    # red flow (after-sale): a refund record
    RED_CLAIM = "red_claim"  # a red-flow attempt takes the refund record (lease)
    WAIT_BLUE = "wait_blue"  # no blue record yet, or the blue is in flight: look again later
    UNMATCHED = "unmatched"  # no blue record within the hold time
    NETTED = "netted"  # reduced / cancelled the blue before issue
    REFUSE_REFUND = "refuse_refund"  # over-refund
    MANUAL = "manual"  # the blue cannot be reversed automatically
    RED_APPLY = "red_apply"  # form applied, waiting for the buyer's confirmation
    RED_RETRY = "red_retry"
    RED_UNKNOWN = "red_unknown"
    RED_WAIT = "red_wait"  # red invoice accepted, still issuing
    RED_ISSUED = "red_issued"
    RED_FAIL = "red_fail"
    RED_EXPIRED = "red_expired"  # the form expired and the store hands it to an operator
    # an operator asks for another red attempt (``operator_retry_at`` in the same write): the hold
    # restarts, an expired form is applied again, and a red request is queried for first
    RED_OPERATOR_RETRY = "red_operator_retry"
    # a blue record: a refund before issue covered all of it
    CANCEL = "cancel"
    # an issued invoice voided through its provider (only where ``Capabilities.void``), or found voided
    # on the platform by the status sync (recorded and alerted: someone voided it outside this service)
    VOID = "void"
    PLATFORM_VOIDED = "platform_voided"
    # 换开: a title change after issue starts the red reversal; once the red is issued the new blue is queued
    RETITLE = "retitle"
    REISSUE = "reissue"


S, E = OrderStatus, OrderEvent

#: Records a worker may claim (when no live lease is held: ``issuing`` with an expired lease is a
#: dead attempt's and may be taken over).
CLAIMABLE: frozenset[OrderStatus] = frozenset(
    {S.RECEIVED, S.QUEUED, S.RETRYING, S.AMBIGUOUS, S.ACCEPTED, S.FAILED_AUTH, S.ISSUING}
)
#: Nothing more happens to these by itself: a message for them is a no-op.
TERMINAL: frozenset[OrderStatus] = frozenset(
    {
        S.ISSUED,
        S.FAILED,
        S.HELD,
        S.REJECTED,
        S.BLOCKED,
        S.CANCELLED,
        S.REFUND_UNMATCHED,
        S.REFUND_NETTED,
        S.REFUND_REFUSED,
        S.REFUND_MANUAL,
        S.RED_ISSUED,
        S.RED_FAILED,
        S.RED_FORM_EXPIRED,
        S.VOIDED,
        S.REISSUED,
    }
)
#: A record found in one of these may have had a request acted on: query by serial before issuing.
QUERY_FIRST: frozenset[OrderStatus] = frozenset({S.ISSUING, S.AMBIGUOUS, S.ACCEPTED})
#: An operator may ask for another attempt from these (``einvoice orders retry``): the record goes to
#: ``ambiguous``, so the attempt queries by serial before it could issue anything, and its counters
#: start again (an order the schedule gave up on is retried for another horizon).
OPERATOR_RETRYABLE: frozenset[OrderStatus] = frozenset(
    {S.FAILED, S.FAILED_AUTH, S.BLOCKED, S.RETRYING, S.AMBIGUOUS, S.ACCEPTED}
)

#: Refund records a red-flow attempt may claim (``red_issuing`` with an expired lease: a dead attempt's).
RED_CLAIMABLE: frozenset[OrderStatus] = frozenset(
    {
        S.RECEIVED,
        S.QUEUED,
        S.REFUND_PENDING,
        S.RED_ISSUING,
        S.RED_FORM_APPLIED,
        S.RED_RETRYING,
        S.RED_AMBIGUOUS,
        S.RED_ACCEPTED,
    }
)
#: A refund record found in one of these may have had a red request acted on: query before sending.
RED_QUERY_FIRST: frozenset[OrderStatus] = frozenset({S.RED_ISSUING, S.RED_AMBIGUOUS, S.RED_ACCEPTED})
#: Refund records an operator may send round again (``RED_OPERATOR_RETRY``).
RED_OPERATOR_RETRYABLE: frozenset[OrderStatus] = frozenset(
    {S.REFUND_UNMATCHED, S.REFUND_MANUAL, S.RED_FAILED, S.RED_FORM_EXPIRED, S.RED_RETRYING, S.RED_ACCEPTED}
)
#: Blue records a refund reduces (payload revised) or cancels before anything was sent: no lease is live
#: in these and nothing can be on the platform (``rejected``: cancelled only, never reduced).
BLUE_REDUCIBLE: frozenset[OrderStatus] = frozenset({S.RECEIVED, S.QUEUED, S.RETRYING, S.FAILED_AUTH})
CANCELLABLE: frozenset[OrderStatus] = BLUE_REDUCIBLE | {S.REJECTED}
#: Blue records whose request may be on the platform right now: a refund waits for the outcome.
BLUE_IN_FLIGHT: frozenset[OrderStatus] = frozenset({S.ISSUING, S.AMBIGUOUS, S.ACCEPTED})
#: Where a buyer's new title can still go into the payload (the title form): nothing has been (or
#: could have been) acted on by the tax platform, and no worker holds the record.
RETITLABLE: frozenset[OrderStatus] = frozenset({S.RECEIVED, S.QUEUED, S.RETRYING})
#: Blue records an operator handles: a refund of them is handed to the operator too.
BLUE_MANUAL: frozenset[OrderStatus] = frozenset({S.HELD, S.FAILED, S.BLOCKED})

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
    # a refund record parked without the red flow (a worker built without it)
    (S.RECEIVED, E.PARK_REFUND): S.REFUND_PENDING,
    (S.QUEUED, E.PARK_REFUND): S.REFUND_PENDING,
    **{(s, E.OPERATOR_RETRY): S.AMBIGUOUS for s in OPERATOR_RETRYABLE},
    (S.REJECTED, E.CORRECTED): S.RECEIVED,
    (S.REJECTED, E.CORRECTED_HELD): S.HELD,
    # red flow: a refund record (chalicelib/services/red.py chooses the event)
    **{(s, E.RED_CLAIM): S.RED_ISSUING for s in RED_CLAIMABLE},
    (S.RED_ISSUING, E.WAIT_BLUE): S.REFUND_PENDING,
    (S.RED_ISSUING, E.UNMATCHED): S.REFUND_UNMATCHED,
    (S.RED_ISSUING, E.NETTED): S.REFUND_NETTED,
    (S.RED_ISSUING, E.REFUSE_REFUND): S.REFUND_REFUSED,
    (S.RED_ISSUING, E.MANUAL): S.REFUND_MANUAL,
    (S.RED_ISSUING, E.RED_APPLY): S.RED_FORM_APPLIED,
    (S.RED_ISSUING, E.RED_RETRY): S.RED_RETRYING,
    (S.RED_ISSUING, E.RED_UNKNOWN): S.RED_AMBIGUOUS,
    (S.RED_ISSUING, E.RED_WAIT): S.RED_ACCEPTED,
    (S.RED_ISSUING, E.RED_ISSUED): S.RED_ISSUED,
    (S.RED_ISSUING, E.RED_FAIL): S.RED_FAILED,
    (S.RED_ISSUING, E.RED_EXPIRED): S.RED_FORM_EXPIRED,
    **{(s, E.RED_OPERATOR_RETRY): S.RED_AMBIGUOUS for s in RED_OPERATOR_RETRYABLE},
    # a blue record fully refunded before issue (no lease can be live in these statuses)
    **{(s, E.CANCEL): S.CANCELLED for s in CANCELLABLE},
    # void / the platform's void (an issued blue or red invoice; no lease is live in these)
    **{(s, E.VOID): S.VOIDED for s in (S.ISSUED, S.RED_ISSUED)},
    **{(s, E.PLATFORM_VOIDED): S.VOIDED for s in (S.ISSUED, S.RED_ISSUED)},
    # 换开 (no lease is live in these: the red flow works on the refund record, not on the blue)
    (S.ISSUED, E.RETITLE): S.REISSUING,
    (S.REISSUING, E.REISSUE): S.REISSUED,
}
#: (status, event) → status. Read-only to everyone but this module.
TRANSITIONS = _TABLE

#: Events that replace the record's payload in the same conditional write (the ledger drops the
#: violations with it: they were the old payload's).
REPLACES_PAYLOAD: frozenset[OrderEvent] = frozenset({E.CORRECTED, E.CORRECTED_HELD})
#: Events that only the worker holding the claim may cause (the ledger fences them on the claim id).
FENCED: frozenset[OrderEvent] = frozenset({E.ISSUED, E.WAIT, E.RETRY, E.UNKNOWN, E.FAIL, E.AUTH_FAILED, E.BLOCK})
#: The red flow's ends of an attempt, fenced on the claim id like the blue ones.
RED_ENDS: frozenset[OrderEvent] = frozenset(
    {
        E.WAIT_BLUE,
        E.UNMATCHED,
        E.NETTED,
        E.REFUSE_REFUND,
        E.MANUAL,
        E.RED_APPLY,
        E.RED_RETRY,
        E.RED_UNKNOWN,
        E.RED_WAIT,
        E.RED_ISSUED,
        E.RED_FAIL,
        E.RED_EXPIRED,
    }
)
FENCED = FENCED | RED_ENDS
#: Events that set a lease (the claim); a live lease refuses them.
LEASED: frozenset[OrderEvent] = frozenset({E.CLAIM, E.RED_CLAIM})
#: Events after which the record holds no claim any more (claim id and lease removed).
RELEASING: frozenset[OrderEvent] = frozenset(
    {E.ISSUED, E.WAIT, E.RETRY, E.UNKNOWN, E.FAIL, E.AUTH_FAILED, E.BLOCK, E.OPERATOR_RETRY, E.RED_OPERATOR_RETRY}
    | RED_ENDS
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
