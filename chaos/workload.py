"""What the platforms send in a chaos run: paid orders, refunds and their re-deliveries, seeded.

:func:`plan` draws, from ``SEED``, N paid orders over the example stores — the STA store
``demo-shanghai`` (Standard Webhooks, WeChat Pay, Alipay), the Nuonuo store ``demo-hangzhou``
(Standard Webhooks, Stripe) and the pilot store ``demo-suzhou`` (30 % issued, the rest held) — a few
deliberately invalid ones (over the store's single-invoice limit: rejected with violations), refunds
(full and partial, ~20 % of the orders, on the platforms whose refund notification the gateway reads)
and ~30 % re-deliveries: identical re-posts, concurrent pairs and re-signed ones with a new event id.
Each :class:`Event` signs itself with the store's example secret (``examples/secrets.local.json``; WeChat
Pay and Alipay with the test-only platform keys there), freshly on every ``sign()``.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from infra import webhook_samples as ws

ROOT = Path(__file__).resolve().parent.parent
CENT = Decimal("0.01")
#: store → the platforms its paid orders come from, and the share of the orders it gets
STORES: dict[str, tuple[tuple[str, ...], float]] = {
    "demo-shanghai": (("standard", "wechatpay", "alipay"), 0.5),
    "demo-hangzhou": (("standard", "stripe"), 0.35),
    "demo-suzhou": (("standard",), 0.15),
}
REFUND_PLATFORMS = frozenset({"standard", "wechatpay", "alipay"})
INVALID_SHARE = 0.05
REFUND_SHARE = 0.2
DUPLICATE_SHARE = 0.3
#: the shares of the re-deliveries: identical re-post, concurrent pair, re-signed with a new event id
DUPLICATE_KINDS = (("repeat", 0.4), ("concurrent", 0.3), ("resign", 0.3))
COMPANY_BUYER_SHARE = 0.3
COMPANY_BUYER = {"type": "company", "title": "上海示例科技有限公司", "tax_id": "91350100M000100Y43"}
SIGNATURE_HEADERS = ("webhook-signature", "wechatpay-signature", "stripe-signature")


@cache
def secrets() -> dict[str, Any]:
    return dict(json.loads((ROOT / "examples" / "secrets.local.json").read_text(encoding="utf-8")))


@cache
def store(store_id: str) -> Any:
    from chalicelib.domain.models import Store

    return Store.model_validate_json((ROOT / "examples" / "stores" / f"{store_id}.json").read_text(encoding="utf-8"))


def secret(store_id: str, platform: str) -> dict[str, Any]:
    return dict(secrets()[f"einvoice/{store_id}/webhook/{platform}"])


@cache
def signing_key(store_id: str, platform: str) -> ws.SigningKeys | None:
    if platform not in ws.RSA_SIGNED:
        return None
    from infra.seed import test_only_signing_keys

    return ws.signing_key_for(platform, secret(store_id, platform), test_only_signing_keys().get(platform, []))


#: the fields of the example secrets that are secret (ids, app keys and public keys are not)
SECRET_FIELDS = frozenset({"secret", "secrets", "app_secret", "client_secret", "apiv3_key", "sm4_key", "sign_key"})


def known_secrets() -> list[str]:
    """Every secret value the driver signs with or the stack holds (the leak scan looks for them): the
    example secrets' secret fields and the test-only private signing keys."""
    found: list[str] = []
    for name, value in secrets().items():
        if name.startswith("_") or not isinstance(value, dict):
            continue
        for field_name, v in value.items():
            if field_name in SECRET_FIELDS:
                found += [str(x) for x in v] if isinstance(v, list) else [str(v)]
    from infra.seed import test_only_signing_keys

    for pems in test_only_signing_keys().values():
        found += pems
    return sorted({v for v in found if v})


@dataclass
class Line:
    sku: str
    quantity: int
    amount: Decimal

    def to_json(self) -> dict[str, str]:
        return {"sku": self.sku, "quantity": str(self.quantity), "amount": str(self.amount)}


@dataclass
class Event:
    """One webhook event (a paid order or one refund of it); ``sign()`` gives a fresh delivery of it."""

    kind: str  # "paid" | "refund"
    store_id: str
    platform: str
    order_id: str
    amount: Decimal  # paid: the order total; refund: this refund's amount
    lines: list[Line]
    expect: str = "issue"
    refund_id: str | None = None
    order_total: Decimal = Decimal(0)
    refunded_before: Decimal = Decimal(0)  # Alipay's refund_fee is cumulative
    buyer: dict[str, str] | None = None
    pair: bool = False  # its first delivery is sent twice at the same moment (two threads)
    first_seq: int | None = None
    first_request: ws.SignedRequest | None = None
    sent: threading.Event = field(default_factory=threading.Event)

    @property
    def path(self) -> str:
        return f"/webhooks/{self.platform}/{self.store_id}"

    def sign(self) -> ws.SignedRequest:
        return _paid(self) if self.kind == "paid" else _refund(self)


def event_id(request: ws.SignedRequest) -> str:
    """The id the platform gave this delivery (the gateway's de-duplication key)."""
    h, body = request.headers, request.body
    if request.platform == "standard":
        return h.get("webhook-id", "")
    if request.platform == "alipay":
        return parse_qs(body.decode())["notify_id"][0]
    return str(json.loads(body).get("id", ""))


def signature_values(request: ws.SignedRequest) -> list[str]:
    values = [request.headers[h] for h in SIGNATURE_HEADERS if h in request.headers]
    if request.platform == "alipay":
        values += parse_qs(request.body.decode()).get("sign", [])
    return values


def _sale(event: Event) -> ws.Sale:
    first = event.lines[0] if event.lines else None
    sku = first.sku if first else None
    name = store(event.store_id).catalogue[sku].name if sku else "商品"
    return ws.Sale(event.order_id, event.order_total or event.amount, sku, name or "商品")


def _standard_lines(event: Event) -> list[dict[str, Any]]:
    catalogue = store(event.store_id).catalogue
    out = []
    for line in event.lines:
        unit = (line.amount / line.quantity).quantize(CENT, ROUND_HALF_UP)
        item = catalogue[line.sku]
        out.append(
            {"sku": line.sku, "name": item.name, "quantity": str(line.quantity), "unit_price": str(unit),
             "total": str(line.amount)}
        )  # fmt: skip
    return out


def _paid(event: Event) -> ws.SignedRequest:
    key = signing_key(event.store_id, event.platform)
    if event.platform == "standard":
        data: dict[str, Any] = {
            "order_id": event.order_id,
            "amount": str(event.amount),
            "currency": "CNY",
            "lines": _standard_lines(event),
        }
        if event.buyer:
            data["buyer"] = event.buyer
        from datetime import UTC, datetime

        doc = {"type": "order.paid", "timestamp": datetime.now(UTC).isoformat(), "data": data}
        return ws.sign_standard(doc, ws.first(secret(event.store_id, "standard")))
    return ws.paid(event.platform, _sale(event), secret(event.store_id, event.platform), key)


def _fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def _refund(event: Event) -> ws.SignedRequest:
    from datetime import UTC, datetime

    assert event.refund_id is not None
    sec = secret(event.store_id, event.platform)
    if event.platform == "standard":
        data: dict[str, Any] = {
            "order_id": event.order_id,
            "amount": str(event.amount),
            "currency": "CNY",
            "refund_id": event.refund_id,
            "refund_amount": str(event.amount),
        }
        if event.lines:
            data["lines"] = _standard_lines(event)
        doc = {"type": "order.refunded", "timestamp": datetime.now(UTC).isoformat(), "data": data}
        return ws.sign_standard(doc, ws.first(sec))
    key = signing_key(event.store_id, event.platform)
    assert key is not None
    if event.platform == "wechatpay":
        plain = {
            "mchid": "1900000109",
            "out_trade_no": event.order_id,
            "transaction_id": f"42000022{uuid.uuid4().int % 10**20:020d}",
            "out_refund_no": event.refund_id,
            "refund_id": f"503005{uuid.uuid4().int % 10**23:023d}",
            "refund_status": "SUCCESS",
            "success_time": datetime.now(ws.CHINA).isoformat(timespec="seconds"),
            "amount": {
                "total": _fen(event.order_total),
                "refund": _fen(event.amount),
                "payer_total": _fen(event.order_total),
                "payer_refund": _fen(event.amount),
            },
        }
        return ws.sign_wechatpay(
            "REFUND.SUCCESS", "退款成功", plain, "refund", apiv3_key=ws.first(sec, "apiv3_key"), key=key
        )
    if event.platform == "alipay":
        params = ws.alipay_paid_doc(_sale(event), ws.first(sec, "app_id"))
        cumulative = event.refunded_before + event.amount
        params.update(
            {"refund_fee": str(cumulative), "out_biz_no": event.refund_id,
             "gmt_refund": ws.china(datetime.now(UTC)) + ".318"}
        )  # fmt: skip
        return ws.sign_alipay(params, key)
    raise ValueError(f"no refund notification for {event.platform}")


# --- the plan --------------------------------------------------------------------------------------
@dataclass
class Send:
    """One scheduled delivery: ``at`` seconds after posting starts."""

    at: float
    event: Event
    mode: str  # "first" (twice at once when the event is a ``pair``) | "repeat" | "resign"


def _lines(rng: random.Random, store_id: str) -> list[Line]:
    skus = list(store(store_id).catalogue)
    chosen = rng.sample(skus, rng.choice([1, 1, 2])) if len(skus) > 1 else skus
    return [Line(sku, rng.randint(1, 3), Decimal(rng.randint(800, 30000)) / 100) for sku in chosen]


#: the first orders of every run, so even a small one has each case: (store, platform, refunds, buyer)
HEAD: tuple[tuple[str, str, str, bool], ...] = (
    ("demo-shanghai", "standard", "", True),
    ("demo-shanghai", "wechatpay", "full", False),
    ("demo-shanghai", "standard", "partial", False),
    ("demo-hangzhou", "standard", "partial", False),
    ("demo-hangzhou", "stripe", "", False),
    ("demo-hangzhou", "standard", "reject", False),
    ("demo-shanghai", "alipay", "partial", False),
    ("demo-hangzhou", "standard", "full", False),
)


def plan(orders: int, seed: int, window: float) -> tuple[list[Event], list[Send]]:
    """``orders`` paid orders posted over ``window`` seconds, their refunds and re-deliveries."""
    from chalicelib.services.ingest import in_pilot

    rng = random.Random(seed)
    events: list[Event] = []
    sends: list[Send] = []
    names, weights = list(STORES), [w for _, w in STORES.values()]
    run = f"{seed:X}"  # the same ids on a replay (every run has a fresh stack)
    invalid_every = max(int(1 / INVALID_SHARE), 2)
    for n in range(orders):
        head = HEAD[n] if n < len(HEAD) else None
        store_id = head[0] if head else rng.choices(names, weights)[0]
        platform = head[1] if head else rng.choice(STORES[store_id][0])
        order_id = f"CH{run}-{n:05d}"
        lines = _lines(rng, store_id) if platform == "standard" else _lines(rng, store_id)[:1]
        total = sum((line.amount for line in lines), Decimal(0))
        expect = "issue" if in_pilot(store(store_id), order_id) else "hold"
        if (head and head[2] == "reject") or (not head and n % invalid_every == 0 and store_id == "demo-hangzhou"):
            store_id, platform, expect = "demo-hangzhou", "standard", "reject"
            lines = [Line("ROOM-LAKE", 1, Decimal("150000.00"))]  # over the store's single-invoice limit
            total = lines[0].amount
        paid = Event("paid", store_id, platform, order_id, total, lines, expect, order_total=total)
        at = window * n / max(orders, 1)
        events.append(paid)
        sends.append(Send(at, paid, "first"))
        _duplicates(rng, paid, at, window, sends)
        if head:
            refunded, full = head[2] in ("full", "partial"), head[2] == "full"
        else:
            refunded, full = platform in REFUND_PLATFORMS and rng.random() < REFUND_SHARE, None
        refunded = refunded and expect == "issue"
        if (head and head[3]) or (not head and not refunded and platform == "standard" and expect == "issue"
                                  and rng.random() < COMPANY_BUYER_SHARE):  # fmt: skip
            paid.buyer = dict(COMPANY_BUYER)  # a company buyer's full tax id in the body (the leak scan looks)
        if refunded:
            # the head's refunds come once their order is likely issued (a red invoice); the others at
            # any time, some before the order is issued (the order is reduced or cancelled instead)
            lo, hi = (window * 0.3, window * 0.5) if head else (0.5, max(1.0, window * 0.3))
            for refund in _refunds(rng, paid, full=full):
                events.append(refund)
                refund_at = at + rng.uniform(lo, hi)
                sends.append(Send(refund_at, refund, "first"))
                _duplicates(rng, refund, refund_at, window, sends)
    sends.sort(key=lambda s: (s.at, s.mode != "first"))
    return events, sends


def _duplicates(rng: random.Random, event: Event, at: float, window: float, sends: list[Send]) -> None:
    if rng.random() >= DUPLICATE_SHARE:
        return
    mode = rng.choices([k for k, _ in DUPLICATE_KINDS], [w for _, w in DUPLICATE_KINDS])[0]
    if mode == "concurrent":
        event.pair = True
        return
    later = rng.uniform(0.3, max(1.0, window * 0.2))
    sends.append(Send(at + later, event, mode))


def _refunds(rng: random.Random, paid: Event, *, full: bool | None = None) -> list[Event]:
    """A full refund, or one or two partial ones (10-40 % of the order each, no lines named)."""
    full = rng.random() < 0.4 if full is None else full
    count = 1 if full or paid.platform == "alipay" else rng.choice([1, 2])
    out: list[Event] = []
    before = Decimal(0)
    for _ in range(count):
        if full:
            amount = paid.amount
        else:
            amount = (paid.amount * Decimal(rng.randint(10, 40)) / 100).quantize(CENT, ROUND_HALF_UP)
        refund_id = f"{uuid.UUID(int=rng.getrandbits(128)).int % 10**12:012d}"
        out.append(
            Event("refund", paid.store_id, paid.platform, paid.order_id, amount, [], "issue", refund_id=refund_id,
                  order_total=paid.amount, refunded_before=before)
        )  # fmt: skip
        before += amount
    return out
