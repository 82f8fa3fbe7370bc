"""Orders for the customer's link tests, written through the real ledger and stores (no back door).

``order_record`` runs the intake's own ``assess`` on a Standard Webhooks event for a store of
``examples/stores/``, records it, and — for ``issued`` — takes it through the worker's claim and
``issued`` transitions with the fields the settler writes, plus the ``pdf_key`` / ``pdf_sha256`` of
a small PDF put in the invoice bucket (what the delivery worker does). Used by ``tests/app`` and
``tests/browser``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.models import PaymentEvent
from chalicelib.domain.order_keys import order_key
from chalicelib.domain.order_state import OrderEvent

STORE = "demo-shanghai"
NOW = 1_800_000_000.0
#: A one-page PDF small enough to read in a test (the PDF work renders the real one).
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def seed_stores(env: dict[str, str]) -> None:
    from chalicelib.adapters.stores import StoreRegistry
    from infra.seed import load_store_files

    registry = StoreRegistry(env["STORES_TABLE"])
    for store in load_store_files():
        registry.put(store)


def order_record(
    env: dict[str, str],
    *,
    status: str = "issued",
    store_id: str = STORE,
    buyer: dict[str, Any] | None = None,
    amount: str = "88.00",
    pdf: bool = True,
    order_id: str | None = None,
) -> tuple[str, str | None]:
    """Record an order in ``status`` (issued / queued / rejected); (order key, invoice number)."""
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.adapters.taxcodes import TaxCodeSource
    from chalicelib.services.ingest import assess

    store = StoreRegistry(env["STORES_TABLE"]).get(store_id)
    order_id = order_id or f"C-{uuid.uuid4().hex[:10]}"
    event = PaymentEvent(
        platform="standard",
        event_id=f"evt_{uuid.uuid4().hex}",
        kind="paid",
        order_id=order_id,
        amount=Decimal(amount),
        buyer=buyer,
    )
    found = assess(store, event, TaxCodeSource(env["CONFIG_BUCKET"]).current)
    key = order_key(store_id, "standard", order_id)
    ledger = Ledger(env["LEDGER_TABLE"], clock=lambda: NOW)
    recorded = "rejected" if status == "rejected" else "queued"
    if recorded == "queued":
        assert not found.errors, found.errors
    violations = [v.as_dict() for v in found.errors] or None
    ledger.create_order(
        key, store_id, kind="paid", status=recorded, payload=found.payload, outbox=False, violations=violations
    )
    if status != "issued":
        return key, None
    number = "2644" + str(uuid.uuid4().int)[:16]
    assert ledger.transition(key, OrderEvent.CLAIM, now=NOW, claim_id="c1", lease_until=NOW + 60).ok
    fields: dict[str, str | int | None] = {"invoice_number": number, "issued_at": "2027-01-15T10:30:00+08:00"}
    if pdf:
        pdf_key = f"{store_id}/2027/01/15/{number}.pdf"
        from chalicelib.adapters import aws

        aws.client("s3").put_object(Bucket=env["INVOICE_BUCKET"], Key=pdf_key, Body=PDF, ContentType="application/pdf")
        fields |= {"pdf_key": pdf_key, "pdf_sha256": hashlib.sha256(PDF).hexdigest()}
    assert ledger.transition(key, OrderEvent.ISSUED, now=NOW, claim_id="c1", fields=fields).ok
    return key, number


def valid_credit_code(body17: str = "91310115MA1K4ABC2") -> str:
    """A credit code whose GB 32100 check character is right."""
    from chalicelib.domain.taxpayer import uscc_check_char

    return body17 + uscc_check_char(body17)


# --- fixtures shared by the customer test modules (imported there: one stack per module) ----------
@pytest.fixture(scope="module")
def customer_stack(moto_url: str) -> Iterator[Any]:
    """Every resource in moto under a fresh prefix, the example stores, the env set, for one module;
    the rate limit off (it has tests of its own). Orders and links are unique per test."""
    import boto3

    from chalicelib import config, wiring
    from chalicelib.adapters import aws
    from infra.local import bootstrap

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        session = boto3.session.Session(region_name="cn-north-1")
        aws.set_session(session)
        created = bootstrap(session, prefix=f"m{uuid.uuid4().hex[:8]}")
        for name, value in created.env.items():
            mp.setenv(name, value)
        mp.setenv("LINK_RATE_LIMIT", "0")
        config.settings.cache_clear()
        wiring.reset()
        seed_stores(created.env)
        yield created
        wiring.reset()
        config.settings.cache_clear()
        aws.set_session(None)


@pytest.fixture(scope="module")
def app_client(customer_stack: Any) -> Iterator[Any]:
    """The app in-process (chalice.test.Client) over :func:`customer_stack`."""
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app, stage_name="local") as c:
        yield c
