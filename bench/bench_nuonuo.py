"""CPU cost of the Nuonuo protocol: build+sign an issue request and parse a query reply (3-line invoice).

Run: ``python -m bench.bench_nuonuo``. ``run()`` returns a markdown section; timings are the median
of per-call CPU time (``time.process_time_ns``) over batches, so other load on the machine matters
less than wall-clock timing would. Takes a few seconds.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from chalicelib.domain.models import BuyerType, InvoiceBuyer, InvoiceLine, InvoiceOrder, Party
from chalicelib.taxapi.base import Credentials, HttpResponse
from chalicelib.taxapi.nuonuo import SANDBOX_ENDPOINT, SANDBOX_SELLER_TAX_ID, NuonuoProvider

BATCH = 200
BATCHES = 25


def _line(name: str, amount: str, tax: str, rate: str) -> InvoiceLine:
    return InvoiceLine(
        name=name,
        short_name="日用杂品",
        tax_code="1060512990000000000",
        tax_rate=Decimal(rate),
        quantity=Decimal(1),
        unit="个",
        unit_price=Decimal(amount),
        amount=Decimal(amount),
        tax=Decimal(tax),
        total=Decimal(amount) + Decimal(tax),
    )


def _order() -> InvoiceOrder:
    lines = (
        _line("保温杯", "100.00", "13.00", "0.13"),
        _line("毛巾", "20.00", "2.60", "0.13"),
        _line("运费", "9.43", "0.57", "0.06"),
    )
    return InvoiceOrder(
        order_key="shop-1:A1001",
        store_id="shop-1",
        order_id="A1001",
        seller=Party(name="诺诺测试销方", tax_id=SANDBOX_SELLER_TAX_ID),
        buyer=InvoiceBuyer(name="个人", type=BuyerType.INDIVIDUAL),
        lines=lines,
        total_amount=Decimal("129.43"),
        total_tax=Decimal("16.17"),
        total=Decimal("145.60"),
        issuer="张三",
    )


def _median_us(fn: Callable[[], object]) -> float:
    for _ in range(BATCH):  # warm-up
        fn()
    samples = []
    for _ in range(BATCHES):
        start = time.process_time_ns()
        for _ in range(BATCH):
            fn()
        samples.append((time.process_time_ns() - start) / BATCH / 1000)
    return statistics.median(samples)


def run() -> str:
    provider = NuonuoProvider(
        Credentials({"app_key": "bench-key", "app_secret": "bench-secret"}),
        SANDBOX_ENDPOINT,
        seller_tax_id=SANDBOX_SELLER_TAX_ID,
        access_token="bench-token",
    )
    order, now = _order(), datetime(2024, 5, 8, 2, 30, tzinfo=UTC)
    query_request = provider.build_query(now, serials=("S1",))
    item = {
        "serialNo": "19010211130401000006",
        "orderNo": "S1",
        "status": "2",
        "statusMsg": "开票完成（最终状态）",
        "pdfUrl": "https://example.invalid/a.pdf",
        "ofdUrl": "https://example.invalid/a.ofd",
        "xmlUrl": "https://example.invalid/a.xml",
        "invoiceTime": 1546398919000,
        "allElectronicInvoiceNumber": "24332000000012345678",
        "exTaxAmount": "129.43",
        "taxAmount": "16.17",
        "orderAmount": "145.60",
        "invoiceItems": [{"itemName": n, "itemAmount": "1.00"} for n in ("保温杯", "毛巾", "运费")],
    }
    reply = HttpResponse(200, (), json.dumps({"code": "E0000", "describe": "获取成功", "result": [item]}).encode())

    build_us = _median_us(lambda: provider.build_issue(order, "S20240508000001", now))
    parse_us = _median_us(lambda: provider.parse_query(query_request, reply))
    return "\n".join(
        [
            "## Nuonuo protocol",
            "",
            f"CPU time per call, median of {BATCHES} batches × {BATCH} calls, 3-line invoice.",
            "",
            "| operation | µs / call |",
            "|---|---:|",
            f"| build_issue (payload + compact JSON + HMAC-SHA1 sign) | {build_us:.1f} |",
            f"| parse_query (envelope + Decimal parse + status map) | {parse_us:.1f} |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
