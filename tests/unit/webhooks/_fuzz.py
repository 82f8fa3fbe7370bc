"""Hypothesis strategies shared by the platform webhook tests (any input → only WebhookError)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from chalicelib.domain.errors import WebhookError
from chalicelib.domain.models import PaymentEvent

FIXTURES = Path(__file__).parent / "fixtures"

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "0", "-1", "1e999999", "NaN", "Infinity", "1.000000001", "12.5", " 3 ", "１２"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)

#: Header values: arbitrary text plus the shapes that break naive parsers.
header_values: st.SearchStrategy[str] = st.text(max_size=80) | st.sampled_from(
    [
        "",
        " ",
        "v1,",
        "v1,!!!",
        "v1=zz",
        "t=,v1=",
        "t=abc,v1=00",
        "t=1,t=2,v1=" + "0" * 64,
        "=",
        ",,,",
        "9" * 40,
        "-1",
        "١٧٠٠٠٠٠٠٠٠",
        "1e9",
        "\x00\xff",
        "v1," + "A" * 5000,
        "whsec_",
        "%%%%",
    ]
)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with 1–3 random values deleted or replaced somewhere in the tree."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        node: Any = doc
        while True:
            if isinstance(node, dict) and node:
                key: Any = draw(st.sampled_from(sorted(node)))
            elif isinstance(node, list) and node:
                key = draw(st.integers(min_value=0, max_value=len(node) - 1))
            else:
                break
            child = node[key]
            if not isinstance(child, (dict, list)) or draw(st.integers(min_value=0, max_value=3)) == 0:
                if draw(st.booleans()):
                    del node[key]
                else:
                    node[key] = draw(json_values)
                break
            node = child
    return doc


def only_webhook_errors(call: Callable[[], PaymentEvent]) -> PaymentEvent | WebhookError:
    """Run ``call``; a PaymentEvent or a WebhookError is fine, anything else fails the test."""
    try:
        result = call()
    except WebhookError as exc:
        return exc
    assert isinstance(result, PaymentEvent)
    return result
