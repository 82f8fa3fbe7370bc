"""Red documents like blue ones: a refund's red invoice, issued by the real worker against the HTTP tax
sandbox (ledger, queues, bucket on moto), gets its own PDF under the same key scheme, its delivery to
the blue's buyer through the deliver queue and use case; the blue's link page and the store API show
the reversal and the net amount.

One stack for the module (``tests/adapters/test_red_sandbox.py``'s ``env`` and ``Red``, reused).
"""

from __future__ import annotations

import io
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.domain.models import BuyerType, DeliveryChannel, InvoiceBuyer
from tests.adapters.test_red_sandbox import (  # the red flow's module stack, shared
    Red,
    env,  # noqa: F401 - a fixture
)
from tests.adapters.test_worker_sandbox import SHANGHAI

EMAIL = "buyer.red@example.com"


@pytest.fixture(scope="module")
def stack(env: Any) -> Any:  # noqa: F811 - the shared fixture
    """The store delivering by link and e-mail; one red flow run for the module."""
    _, _, registry = env
    delivery = SHANGHAI.delivery.model_copy(update={"channels": (DeliveryChannel.LINK, DeliveryChannel.EMAIL)})
    registry.put(SHANGHAI.model_copy(update={"delivery": delivery}))
    red = Red(env)
    buyer = InvoiceBuyer(name="个人", type=BuyerType.INDIVIDUAL, email=EMAIL)
    blue = red.order(SHANGHAI, buyer=buyer)
    red.run(blue)
    refund = red.refund(blue, "53.00")
    red.run(refund)
    assert red.status(refund) == "red_issued"
    return red, blue, refund


def deliver_bodies(settings: Any) -> list[dict[str, Any]]:
    """Every message on the deliver queue now (received and left to come back)."""
    import boto3

    sqs = boto3.client("sqs", region_name="cn-north-1")
    url = wiring.deliver_queue_url()
    bodies: list[dict[str, Any]] = []
    for _ in range(5):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            break
        bodies.extend(json.loads(m["Body"]) for m in got)
    return bodies


def pdf_text(body: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def test_a_red_invoice_is_queued_stored_and_sent_to_the_blues_buyer(stack: Any, env: Any) -> None:  # noqa: F811
    import boto3

    red, blue, refund = stack
    settings = env[0]
    assert {"order_key": refund, "reason": "issued"} in deliver_bodies(settings)  # the worker queued it
    outcome = wiring.deliver().deliver(refund)
    assert outcome.status in ("delivered", "partial"), outcome
    f = red.fields(refund)
    number, blue_number = f["invoice_number"], red.fields(blue)["invoice_number"]
    assert f["pdf_key"].startswith("demo-shanghai/20") and f["pdf_key"].endswith(f"/{number}.pdf")
    body = boto3.client("s3", region_name="cn-north-1").get_object(Bucket=settings.invoice_bucket, Key=f["pdf_key"])
    text = pdf_text(body["Body"].read())
    assert "销项负数" in text and blue_number in text and number in text
    assert "¥-53.00" in text and "¥-50.00" in text and "¥-3.00" in text  # 价税合计, 金额, 税额: negative
    assert [(r["channel"], r["to"]) for r in outcome.records] == [("email", "bu***@example.com")]
    assert EMAIL not in json.dumps(f, ensure_ascii=False)  # the record keeps no address


def test_the_blue_page_and_the_store_api_show_the_reversal_and_the_net(stack: Any, env: Any) -> None:  # noqa: F811
    from chalice.test import Client

    import app as app_module
    from chalicelib.adapters.order_reads import OrderReads
    from chalicelib.services.reversals import net_amount, reversals
    from chalicelib.services.store_api import InvoiceQuery

    red, blue, refund = stack
    red_number = red.fields(refund)["invoice_number"]
    link = wiring.links().issue(SHANGHAI.store_id, blue, now=time.time(), ttl_days=30)
    with Client(app_module.app, stage_name="local") as client:
        page = client.http.get(f"/i/{link.token}", headers={"accept": "text/html"}).body.decode()
        red_page = client.http.get(
            f"/i/{wiring.links().issue(SHANGHAI.store_id, refund, now=time.time(), ttl_days=30).token}",
            headers={"accept": "text/html"},
        ).body.decode()
    assert "部分冲红" in page and red_number in page and "¥-53.00" in page
    assert 'id="net">¥106.00' in page  # 159.00 − 53.00
    assert "红字发票" in red_page and red_number in red_page and "¥-53.00" in red_page
    record = red.ledger.get_order(blue)
    assert record is not None
    [reversal] = reversals(record, OrderReads(red.ledger).get_many)
    assert reversal.number == red_number and reversal.amount == Decimal("-53.00") and reversal.date
    assert net_amount(record) == Decimal("106.00")
    key = wiring.store_keys().issue(SHANGHAI.store_id, rotate=True)
    answer = wiring.store_api().invoice(InvoiceQuery(SHANGHAI.store_id, blue.split(":")[2], "standard", key))
    assert answer["net_amount"] == "106.00"
    assert answer["reversals"] == [reversal.as_dict()] and answer["reversals"][0]["amount"] == "-53.00"
