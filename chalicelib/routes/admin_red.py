"""``/admin/api/red/…``: batch reversal and void through an operator's session (the admin API).

``POST /admin/api/red/batch`` — JSON ``{"store_id", "items": [order keys | 20-digit numbers], "reason":
"01"–"04", "dry_run": true|false}``, the session's CSRF token in ``X-CSRF-Token``. The dry run (the
default) answers the plan (``chalicelib.services.red_batch``: count, total, each item and why it is
refused); ``dry_run: false`` runs it and answers each item's result and the result CSV. An operator
only reaches their stores: another store is answered 404, as if it did not exist.
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Blueprint, Response

from chalicelib.domain.models import RedReason
from chalicelib.routes.auth import (
    AuthRequired,
    CsrfRefused,
    json_response,
    refusal,
    require_csrf,
    require_operator,
    route,
)

bp = Blueprint(__name__)
BATCH_PATH = "/admin/api/red/batch"
#: At most this many items in one API call (a bigger list: the CLI, or several calls).
MAX_API_ITEMS = 500


def _bad(field: str, zh: str, en: str) -> Response:
    return json_response(400, {"error": "invalid_request", "field": field, "message": zh, "message_en": en})


@route(bp, BATCH_PATH, methods=["POST"], content_types=["application/json"])
def red_batch() -> Response:
    from chalicelib import wiring
    from chalicelib.services.red_batch import write_results

    request = bp.current_request
    try:
        operator = require_operator(request)
        require_csrf(operator, {}, request)
    except AuthRequired:
        return refusal(BATCH_PATH)
    except CsrfRefused:
        return json_response(403, {"error": "csrf", "message": "CSRF 校验失败", "message_en": "CSRF token mismatch"})
    try:
        body: Any = json.loads(request.raw_body or b"{}")
    except ValueError:
        return _bad("body", "请求体不是 JSON", "the body is not JSON")
    if not isinstance(body, dict):
        return _bad("body", "请求体必须是 JSON 对象", "the body must be a JSON object")
    store_id, items = body.get("store_id"), body.get("items")
    if not isinstance(store_id, str) or not store_id:
        return _bad("store_id", "缺少店铺编号", "store_id is required")
    if not operator.may_see(store_id):
        return json_response(404, {"error": "not_found", "message": "店铺不存在", "message_en": "no such store"})
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        return _bad(
            "items", "items 必须是订单键或发票号码的列表", "items must be a list of order keys or invoice numbers"
        )
    if len(items) > MAX_API_ITEMS:
        return _bad("items", f"一次最多 {MAX_API_ITEMS} 项", f"at most {MAX_API_ITEMS} items per call")
    try:
        reason = RedReason(str(body.get("reason", "")))
    except ValueError:
        return _bad("reason", "冲红原因必须是 01、02、03 或 04", "reason must be 01, 02, 03 or 04")
    batch = wiring.red_batch()
    plan = batch.plan(items, reason, store_id=store_id, stores=frozenset({store_id}))
    if body.get("dry_run", True) is not False:
        return json_response(200, {"dry_run": True, **plan.as_dict()})
    results = batch.run(plan)
    queued = [r for r in results if r.outcome == "queued"]
    answer = {
        "dry_run": False,
        "reason": reason.value,
        "queued": len(queued),
        "unchanged": len([r for r in results if r.outcome == "unchanged"]),
        "refused": len([r for r in results if r.outcome == "refused"]),
        "changed_nothing": not queued,
        "results": [r.row() for r in results],
        "csv": write_results(results),
    }
    return json_response(200, answer)
