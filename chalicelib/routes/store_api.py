"""``GET /stores/{store_id}/orders/{order_id}/invoice``: the shop platforms' invoice API (a store's key).

The rules and the answers are :mod:`chalicelib.services.store_api`'s; this module maps them to HTTP.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.domain.errors import EInvoiceError, NotFound, UnknownStore
from chalicelib.routes.auth import bearer, json_response, route
from chalicelib.services.auth import Unauthorized

INVOICE_PATH = "/stores/{store_id}/orders/{order_id}/invoice"
bp = Blueprint(__name__)


@route(bp, INVOICE_PATH, methods=["GET"])
def store_invoice(store_id: str, order_id: str) -> Response:
    from chalicelib import wiring
    from chalicelib.services.store_api import AmbiguousOrder, InvoiceQuery, error_body  # on first use (cold starts)

    request = bp.current_request
    params = request.query_params or {}
    query = InvoiceQuery(
        store_id=store_id,
        order_id=order_id,
        platform=params.get("platform") or None,
        key=bearer(request),
        files=params.get("files", "") in ("1", "true", "yes"),
    )
    try:
        return json_response(200, wiring.store_api().invoice(query))
    except Unauthorized:
        return json_response(401, error_body("unauthorized"), {"WWW-Authenticate": 'Bearer realm="einvoice"'})
    except (NotFound, UnknownStore):
        return json_response(404, error_body("not_found"))
    except AmbiguousOrder as exc:
        return json_response(409, {**error_body("ambiguous_order"), "platforms": exc.platforms})
    except EInvoiceError as exc:
        body = {
            "error": exc.code,
            "message": "暂时不可用，请稍后重试",
            "message_en": "temporarily unavailable, retry later",
        }
        return json_response(503, body, {"Retry-After": "30"})
