"""The shop platforms' invoice API: one order's invoice, for the store whose key is presented.

Answers (``app``'s error shape ``{"error", "message", "message_en"}``):

- no key, or not the shape of a key, or a key of this store that does not match → **401**
  ``unauthorized`` (the same answer whether the store exists or not);
- a key that names **another** store → **404** ``not_found``, the very answer of an order that does
  not exist: never the data, never a hint that the order exists;
- a valid key: the order's invoice (200), or 404 ``not_found`` when the store has no such order,
  409 ``ambiguous_order`` when the id exists under two of its platforms (ask with ``?platform=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.domain.errors import EInvoiceError, NotFound
from chalicelib.domain.models import Store
from chalicelib.domain.order_keys import order_key
from chalicelib.services.auth import KeyCheck, StoreKeys, Unauthorized
from chalicelib.services.ports import OrderRecord
from chalicelib.services.reversals import net_amount, reversals

#: Presigned download links live this long.
PRESIGN_SECONDS = 300
#: Record fields naming the invoice's files in the invoice bucket (written by delivery,
#: ``chalicelib/services/deliver.py``): the project's own PDF, and the tax platform's own files.
FILE_FIELDS: dict[str, str] = {
    "pdf": "pdf_key",
    "platform_pdf": "platform_pdf_key",
    "ofd": "ofd_key",
    "xml": "xml_key",
}
#: The record field holding the customer's link page URL, when delivery recorded one.
LINK_FIELD = "link_url"


class AmbiguousOrder(EInvoiceError):
    code = "ambiguous_order"

    def __init__(self, platforms: Sequence[str]) -> None:
        super().__init__(f"the order id exists under several platforms: {', '.join(platforms)}")
        self.platforms = list(platforms)


MESSAGES: dict[str, tuple[str, str]] = {
    "unauthorized": (
        "缺少或无效的 API 密钥（请在 Authorization: Bearer 中提供本店的密钥）",
        "missing or invalid API key (send this store's key as Authorization: Bearer)",
    ),
    "not_found": ("未找到该订单", "no such order"),
    "ambiguous_order": (
        "该订单号存在于多个平台，请用 ?platform= 指定",
        "the order id exists under several platforms: choose one with ?platform=",
    ),
}


class StorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


class OrderKeysPort(Protocol):
    def get_many(self, order_keys: Sequence[str]) -> list[OrderRecord]: ...


class PresignPort(Protocol):
    def presign(self, key: str, *, seconds: int) -> str: ...


@dataclass(frozen=True)
class InvoiceQuery:
    store_id: str
    order_id: str
    platform: str | None
    key: str | None
    files: bool = False


class StoreInvoiceApi:
    def __init__(
        self,
        keys: StoreKeys,
        stores: StorePort,
        orders: OrderKeysPort,
        files: PresignPort,
        *,
        presign_seconds: int = PRESIGN_SECONDS,
    ) -> None:
        self.keys = keys
        self.stores = stores
        self.orders = orders
        self.files = files
        self.presign_seconds = presign_seconds

    def invoice(self, q: InvoiceQuery) -> dict[str, Any]:
        verdict = self.keys.check(q.store_id, q.key)
        if verdict == KeyCheck.OTHER_STORE:
            raise NotFound("no such order")
        if verdict != KeyCheck.VALID:
            raise Unauthorized("missing or invalid API key")
        store = self.stores.get(q.store_id)  # a valid key exists only for a known store
        platforms = sorted(store.webhook_secrets)
        if q.platform is not None:
            platforms = [q.platform] if q.platform in platforms else []
        if not platforms or not q.order_id:
            raise NotFound("no such order")
        wanted = [order_key(q.store_id, p, q.order_id) for p in platforms]
        found = [r for r in self.orders.get_many(wanted) if r.store_id == q.store_id and r.order_key in wanted]
        if not found:
            raise NotFound("no such order")
        if len(found) > 1:
            raise AmbiguousOrder([r.order_key.split(":")[1] for r in found])
        return self._answer(found[0], q.files)

    def _answer(self, record: OrderRecord, with_files: bool) -> dict[str, Any]:
        order = record.payload.get("order") or {}
        event = record.payload.get("event") or {}
        issued_at = record.text("issued_at")
        body: dict[str, Any] = {
            "order_key": record.order_key,
            "order_id": event.get("order_id"),
            "platform": event.get("platform"),
            "status": record.status.value,
            "invoice_number": record.text("invoice_number"),
            "amount": order.get("total") or event.get("amount"),
            "tax": order.get("total_tax"),
            "issued_date": issued_at[:10] if issued_at else None,
            "issued_at": issued_at,
            "link": record.text(LINK_FIELD),
            "link_expires_at": record.text("link_expires_at"),
            # the red invoices issued against it (each number, date, amount) and what is left
            "reversals": [r.as_dict() for r in reversals(record, self.orders.get_many)],
            "net_amount": f"{net:.2f}" if (net := net_amount(record)) is not None else None,
            "reissued_as": record.text("reissue_key"),  # 换开: the new invoice's order key
        }
        if with_files:
            body["files"] = {
                kind: {"url": self.files.presign(key, seconds=self.presign_seconds), "expires_in": self.presign_seconds}
                for kind, field_name in FILE_FIELDS.items()
                if (key := record.text(field_name))
            }
        return body


def error_body(code: str, detail: str | None = None) -> dict[str, str]:
    zh, en = MESSAGES.get(code, MESSAGES["not_found"])
    return {"error": code, "message": zh, "message_en": detail or en}
