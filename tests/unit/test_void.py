"""Void (作废): refused with both languages where the provider cannot void (every shipped provider: 数电票),
and — for a provider that declares ``Capabilities.void`` — the ``void`` event of the state machine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.order_keys import order_key
from chalicelib.domain.order_state import OrderStatus
from chalicelib.services.exchange import Exchange
from chalicelib.services.void import VoidInvoices, VoidRefused
from chalicelib.taxapi.base import Capabilities, HttpRequest, HttpResponse, InvoiceStatus, VoidResult
from tests.support.fake_platform import Rig, build

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
KEY = order_key("shop-a", "shopify", "1001")


class Voiding:
    """A provider that can void (a legacy / paper invoice provider)."""

    name = "voiding"
    capabilities = Capabilities(void=True)

    def build_void(self, invoice_number: str, serial: str, now: datetime) -> HttpRequest:
        return HttpRequest(
            "POST", "https://void.example/void", (), json.dumps([invoice_number, serial]).encode(), True, "void"
        )

    def parse_void(self, request: HttpRequest, response: HttpResponse) -> VoidResult:
        return VoidResult(json.loads(request.body)[0], InvoiceStatus.VOIDED)


class VoidingProviders:
    def get(self, store: Any, credentials: Any) -> Voiding:
        return Voiding()

    def refreshed(self, store: Any, credentials: Any, error: Any) -> None:
        return None

    def pin(self, store: Any) -> str:
        return "voiding"

    def observe_tokens(self, observer: Any) -> None: ...


class Answering:
    def __init__(self) -> None:
        self.sent: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        return HttpResponse(200, (), b"{}")


def voids(rig: Rig, providers: Any = None, transport: Any = None) -> VoidInvoices:
    providers = providers or rig.providers
    return VoidInvoices(
        ledger=rig.ledger,
        stores=rig.stores,
        credentials=rig.credentials,
        providers=providers,
        exchange=Exchange(providers=providers, transport=transport or rig.transport, logger=rig.logger),
        alerts=rig.recorder,
        logger=rig.logger,
        clock=lambda: NOW,
    )


def issued(rig: Rig, key: str = KEY, *, at: str = "2026-12-01T10:00:00+08:00", **fields: Any) -> None:
    rig.ledger.put(
        key,
        store_id="shop-a",
        status=OrderStatus.ISSUED,
        payload={"event": {}},
        serial="EI0001",
        invoice_number="2" * 20,
        issued_at=at,
        **fields,
    )


def test_a_provider_that_cannot_void_is_refused_in_both_languages_pointing_to_red() -> None:
    rig = build()
    issued(rig)
    with pytest.raises(VoidRefused) as refused:
        voids(rig).void(KEY)
    assert refused.value.code == "void_not_supported"
    assert "红字" in refused.value.zh and "red invoice" in refused.value.en
    assert rig.ledger.get_order(KEY).status is OrderStatus.ISSUED  # type: ignore[union-attr]
    found = voids(rig).eligible("shop-a", [])
    assert (found.supported, found.items) == (False, []) and "cannot void" in found.explanation


def test_a_void_capable_provider_voids_an_eligible_invoice_through_the_state_machine() -> None:
    rig, transport = build(), Answering()
    issued(rig)
    result = voids(rig, VoidingProviders(), transport).void(KEY)
    assert (result.invoice_number, result.status) == ("2" * 20, InvoiceStatus.VOIDED)
    assert [r.operation for r in transport.sent] == ["void"]
    record = rig.ledger.get_order(KEY)
    assert record is not None and record.status is OrderStatus.VOIDED and record.text("voided_at")
    with pytest.raises(VoidRefused) as again:  # voided: not issued any more
        voids(rig, VoidingProviders(), transport).void(KEY)
    assert again.value.code == "void_not_issued"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"at": "2026-11-30T10:00:00+08:00"}, "void_other_month"),
        ({"refund_book": json.dumps({f"{KEY}:refund:R1": {"1": "5.00"}})}, "void_already_reversed"),
    ],
)
def test_an_invoice_of_another_month_or_already_reversed_is_not_voided(fields: dict[str, str], code: str) -> None:
    rig, transport = build(), Answering()
    issued(rig, **fields)
    with pytest.raises(VoidRefused) as refused:
        voids(rig, VoidingProviders(), transport).void(KEY)
    assert refused.value.code == code and transport.sent == []


def test_the_reminder_lists_voidable_invoices_with_a_pending_refund() -> None:
    rig = build()
    issued(rig)
    other = order_key("shop-a", "shopify", "1002")
    issued(rig, other)
    refund = order_key("shop-a", "shopify", "1001", "R1")
    rig.ledger.put(refund, store_id="shop-a", status=OrderStatus.REFUND_PENDING, kind="refunded", payload={})
    records = rig.ledger.store_records("shop-a", since="0")
    found = voids(rig, VoidingProviders()).eligible("shop-a", records)
    assert found.supported and [i["order_key"] for i in found.items] == [KEY]
    assert found.items[0]["refunds"] == refund
