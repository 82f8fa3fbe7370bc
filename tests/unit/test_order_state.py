"""The order state machine: the table's own invariants, the order key, and the diagram in the docs."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.order_keys import order_key, parse_order_key, serial_for
from chalicelib.domain.order_state import (
    CLAIMABLE,
    DIAGRAM_BEGIN,
    DIAGRAM_END,
    FENCED,
    QUERY_FIRST,
    TERMINAL,
    TRANSITIONS,
    OrderEvent,
    OrderStatus,
    diagram,
    sources,
    target,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_diagram_in_docs_is_the_table() -> None:
    text = (ROOT / "docs/issuing.md").read_text()
    block = text[text.index(DIAGRAM_BEGIN) + len(DIAGRAM_BEGIN) : text.index(DIAGRAM_END)].strip()
    assert block == diagram(), "run `python -m chalicelib.domain.order_state` and paste its block into docs/issuing.md"


def test_every_event_has_one_target_and_terminal_statuses_claim_nothing() -> None:
    for event in OrderEvent:
        target(event)  # raises when an event could lead to two places
    for status in TERMINAL:
        assert (status, OrderEvent.CLAIM) not in TRANSITIONS
    assert sources(OrderEvent.CLAIM) == CLAIMABLE
    assert QUERY_FIRST <= CLAIMABLE
    assert OrderStatus.ISSUING in QUERY_FIRST  # a dead attempt's request may have left


def test_only_the_claim_holder_ends_an_attempt() -> None:
    for (source, event), _ in TRANSITIONS.items():
        if source is OrderStatus.ISSUING and event is not OrderEvent.CLAIM:
            assert event in FENCED, event


def test_the_serial_is_20_characters_and_stable() -> None:
    key = order_key("demo-shanghai", "shopify", "1001")
    assert serial_for(key) == serial_for(key) and len(serial_for(key)) == 20 and serial_for(key).startswith("EI")
    assert serial_for(key) != serial_for(order_key("demo-shanghai", "woocommerce", "1001"))


text_part = st.text(min_size=1, max_size=30)


@given(text_part, text_part, text_part, st.one_of(st.none(), text_part))
def test_an_order_key_parses_back_exactly(store: str, platform: str, order: str, refund: str | None) -> None:
    key = order_key(store, platform, order, refund)
    parsed = parse_order_key(key)
    assert (parsed.store_id, parsed.platform, parsed.order_id, parsed.refund_id) == (store, platform, order, refund)
    assert parsed.blue == parse_order_key(order_key(store, platform, order))


def test_the_red_flow_is_claimed_and_fenced_like_the_blue() -> None:
    from chalicelib.domain.order_state import (
        BLUE_IN_FLIGHT,
        BLUE_REDUCIBLE,
        LEASED,
        RED_CLAIMABLE,
        RED_ENDS,
        RED_OPERATOR_RETRYABLE,
        RED_QUERY_FIRST,
        RELEASING,
    )

    assert sources(OrderEvent.RED_CLAIM) == RED_CLAIMABLE and OrderEvent.RED_CLAIM in LEASED
    assert RED_QUERY_FIRST <= RED_CLAIMABLE and OrderStatus.RED_ISSUING in RED_QUERY_FIRST
    for event in RED_ENDS:  # only the claim holder ends a red attempt, and every end releases it
        assert sources(event) == {OrderStatus.RED_ISSUING} and event in FENCED and event in RELEASING
    assert not (RED_CLAIMABLE & TERMINAL) and not (
        RED_OPERATOR_RETRYABLE & RED_CLAIMABLE - {OrderStatus.RED_RETRYING, OrderStatus.RED_ACCEPTED}
    )
    assert target(OrderEvent.RED_OPERATOR_RETRY) in RED_QUERY_FIRST  # an operator's retry queries first
    # a refund never reduces a blue that may be on the platform
    assert not (BLUE_REDUCIBLE & BLUE_IN_FLIGHT) and not (BLUE_REDUCIBLE & TERMINAL)
    assert sources(OrderEvent.CANCEL) == BLUE_REDUCIBLE | {OrderStatus.REJECTED}
