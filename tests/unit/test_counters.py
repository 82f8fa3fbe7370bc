"""The dashboard counters' pure rules: fen, China dates, the latency histogram, what an invoice adds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
