"""``POST /callbacks/nuonuo/{store_id}``: Nuonuo's ``callBackUrl`` (开票完成 / 开票失败 / 作废 …).

Verified before anything is read (``chalicelib.services.sync.StatusSync.nuonuo_callback``: the
signature in ``X-Nuonuo-Sign``, Base64(HMAC-SHA1(appSecret, body)) — *assumed*, see
docs/integrators.md), then applied through the state machine as a status sync is. Answered as
Nuonuo's own envelope: ``{"code": "E0000", "describe": "成功"}``; an unverifiable callback is refused
(401, nothing read or written), an unknown store 404, a failure on our side 503 (Nuonuo retries).
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.domain.errors import InfrastructureUnavailable, NotFound, SignatureInvalid
from chalicelib.routes.auth import json_response, route
from chalicelib.services.sync import CALLBACK_SIGN_HEADER

bp = Blueprint(__name__)
CALLBACK_PATH = "/callbacks/nuonuo/{store_id}"
#: A callback body above this is refused before verification.
MAX_CALLBACK_BYTES = 256 * 1024


def _answer(status: int, code: str, describe: str, **extra: object) -> Response:
    return json_response(status, {"code": code, "describe": describe, **extra})


@route(bp, CALLBACK_PATH, methods=["POST"], content_types=["application/json", "text/plain", "*/*"])
def nuonuo_callback(store_id: str) -> Response:
    from chalicelib import wiring

    request = bp.current_request
    body = request.raw_body or b""
    if len(body) > MAX_CALLBACK_BYTES:
        return _answer(413, "E4000", "回调内容过大 / callback body too large")
    signature = (request.headers or {}).get(CALLBACK_SIGN_HEADER)
    try:
        applied = wiring.make_status_sync().nuonuo_callback(store_id, body, signature)
    except SignatureInvalid as exc:
        return _answer(401, "E0001", f"签名校验失败 / signature not verified ({exc.code})")
    except NotFound:
        return _answer(404, "E9500", "店铺不存在 / no such store")
    except InfrastructureUnavailable:
        return _answer(503, "E9999", "暂时无法处理，请重试 / temporarily unavailable, retry")
    return _answer(200, "E0000", "成功", applied=[s.action for s in applied])
