"""The dashboard counters' pure rules: fen, China dates, the latency histogram, what an invoice adds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain import counters as c


def test_fen_and_yuan_are_exact() -> None:
    assert c.fen(Decimal("88.00")) == 8800
    assert c.fen(Decimal("0.005")) == 1  # half up, explicit
    assert c.yuan(12345) == Decimal("123.45")


def test_days_are_china_dates() -> None:
    late_utc = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)  # 01:30 on 12-02 in Shanghai
    assert c.day_of(late_utc) == "2026-12-02"
    assert c.days_back(late_utc, 3) == ["2026-11-30", "2026-12-01", "2026-12-02"]


@pytest.mark.parametrize(("seconds", "label"), [(0, "5"), (5, "5"), (5.1, "10"), (3599, "3600"), (10**6, "inf")])
def test_latency_buckets(seconds: float, label: str) -> None:
    assert c.latency_label(seconds) == label


def test_percentiles_from_the_histogram() -> None:
    hist = {"5": 50, "30": 45, "900": 5}
    assert c.percentile(hist, 0.5) == "5"
    assert c.percentile(hist, 0.95) == "30"
    assert c.percentile(hist, 0.99) == "900"
    assert c.percentile({}, 0.5) is None


def test_an_issued_invoice_adds_its_lines_amount_and_latency() -> None:
    issued = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    payload = {
        "event": {"occurred_at": (issued - timedelta(seconds=42)).isoformat()},
        "order": {
            "total": "48.00",
            "lines": [
                {"tax_code": "A", "total": "30.00"},
                {"tax_code": "B", "total": "9.00"},
                {"tax_code": "A", "total": "9.00"},
            ],
        },
    }
    delta = c.issued_delta("s1", payload, "", issued, None)
    assert (delta.day, delta.outcome, delta.fen, delta.latency) == ("2026-12-02", "issued", 4800, "60")
    assert delta.tax_codes == (("A", 2, 3900), ("B", 1, 900))
    # no payment time in the event: the record's creation time; no order: the platform's total
    bare = c.issued_delta("s1", {}, "2026-12-02T01:59:58.000000Z", issued, Decimal("10.00"))
    assert bare.fen == 1000 and bare.latency == "5"


def test_exception_ratio_and_sums() -> None:
    a = c.DayCounts("d1", {"issued": 3, "failed": 1}, 100, {"A": (1, 100)}, {"5": 3}, frozenset({"k1"}))
    b = c.DayCounts("d2", {"rejected": 1}, 0, {}, {}, frozenset({"k2"}))
    total = c.add_up("t", [a, b])
    assert total.counts == {"issued": 3, "failed": 1, "rejected": 1} and total.exception_keys == {"k1", "k2"}
    assert c.exception_ratio(total) == Decimal("0.4000")
    assert c.exception_ratio(c.DayCounts("empty")) is None
    with pytest.raises(ValueError):
        c.exception_delta("s1", "issued", "k", datetime.now(UTC))


def test_an_issued_invoice_adds_its_skus_cut_and_the_lines_without_one() -> None:
    issued = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    long_sku = "X" * 100
    payload = {
        "order": {
            "total": "60.00",
            "lines": [
                {"tax_code": "A", "total": "30.00", "sku": "LATTE"},
                {"tax_code": "A", "total": "10.00", "sku": "LATTE"},
                {"tax_code": "B", "total": "9.00"},
                {"tax_code": "B", "total": "1.00", "sku": "  "},
                {"tax_code": "B", "total": "10.00", "sku": long_sku},
            ],
        }
    }
    delta = c.issued_delta("s1", payload, "", issued, None)
    assert delta.skus == (("(no sku)", 2, 1000), ("LATTE", 2, 4000), ("X" * c.SKU_CHARS, 1, 1000))


def _apply(item: dict[str, Any], update: dict[str, Any]) -> None:
    """What DynamoDB does with ``update_of``'s expression ("SET a = if_not_exists(a, v), … ADD a v, …")."""
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    text = update["UpdateExpression"]
    sets, _, adds = text.partition("ADD ")
    for attr, same, value in re.findall(r"(#\w+) = if_not_exists\((#\w+), (:\w+)\)", sets):
        assert attr == same
        item.setdefault(names[attr], values[value])
    for part in adds.split(", "):
        attr, value = part.split(" ")
        v = values[value]
        if "N" in v:
            item[names[attr]] = {"N": str(int(item.get(names[attr], {"N": "0"})["N"]) + int(v["N"]))}
        else:
            item[names[attr]] = {"SS": sorted(set(item.get(names[attr], {"SS": []})["SS"]) | set(v["SS"]))}


def test_skus_are_one_update_item_and_bounded_by_the_slots() -> None:
    from chalicelib.adapters.counters import counts_of, update_of

    one = c.CounterDelta("s1", "2026-12-02", "issued", 1500, skus=(("(no sku)", 1, 500), ("LATTE", 2, 1000)))
    update = update_of(one)
    assert update["UpdateExpression"].startswith("SET ") and " ADD " in update["UpdateExpression"]
    assert "ConditionExpression" not in update  # never fails, never needs a second call
    slot = c.sku_slot("LATTE")
    assert {"skn#" + slot, "skf#" + slot, "skh#" + slot, "skl#" + slot, "skn#-", "skf#-"} <= set(
        update["ExpressionAttributeNames"].values()
    )
    item: dict[str, Any] = {"pk": {"S": "counters#s1"}, "sk": {"S": "day#2026-12-02"}}
    # 1,000 distinct SKUs, 10 a invoice, each SKU's amount its number: the item keeps ≤ 4 attributes a slot
    for start in range(0, 1000, 10):
        skus = tuple((f"SKU-{i:04d}", 1, i) for i in range(start, start + 10))
        _apply(item, update_of(c.CounterDelta("s1", "2026-12-02", "issued", 0, skus=skus)))
    _apply(item, update)
    assert len(item) <= 2 + 4 * (c.SKU_SLOTS + 1) + 2
    day = counts_of(item)
    named = {k: v for k, v in day.skus.items() if k not in (c.OTHER_SKU, c.NO_SKU)}
    assert 0 < len(named) <= c.SKU_SLOTS
    assert all(v == (1, int(k[4:])) for k, v in named.items() if k != "LATTE")  # a named SKU is exact
    assert day.skus[c.NO_SKU] == (1, 500)
    assert sum(n for n, _ in day.skus.values()) == 1000 + 3 and sum(f for _, f in day.skus.values()) == (
        sum(range(1000)) + 1500
    )


def test_a_slot_two_skus_collided_in_reads_as_other() -> None:
    from chalicelib.adapters.counters import counts_of, update_of

    by_slot: dict[str, str] = {}
    a = b = ""
    for i in range(10_000):
        sku = f"P{i}"
        if (was := by_slot.setdefault(c.sku_slot(sku), sku)) != sku:
            a, b = was, sku
            break
    item: dict[str, Any] = {"pk": {"S": "counters#s1"}, "sk": {"S": "day#2026-12-02"}}
    _apply(item, update_of(c.CounterDelta("s1", "d", "issued", skus=((a, 1, 100),))))
    assert counts_of(item).skus == {a: (1, 100)}
    _apply(item, update_of(c.CounterDelta("s1", "d", "issued", skus=((b, 2, 300),))))
    assert counts_of(item).skus == {c.OTHER_SKU: (3, 400)}


def test_top_skus_rank_by_amount_and_fold_the_rest() -> None:
    skus = {"A": (1, 500), "B": (3, 300), "C": (1, 100), c.OTHER_SKU: (1, 50), c.NO_SKU: (2, 50)}
    rows = c.top_skus(skus, 2)
    assert [(r.sku, r.lines, r.fen, r.share) for r in rows] == [
        ("A", 1, 500, Decimal("0.5000")),
        ("B", 3, 300, Decimal("0.3000")),
        (c.OTHER_SKU, 4, 200, Decimal("0.2000")),  # C, (no sku) and the collided slots
    ]
    assert c.top_skus({}, 5) == []
    summed = c.add_up("t", [c.DayCounts("d1", skus={"A": (1, 5)}), c.DayCounts("d2", skus={"A": (2, 7)})])
    assert summed.skus == {"A": (3, 12)}
