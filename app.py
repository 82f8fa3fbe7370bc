"""Chalice wiring only: routes, the SQS worker and schedules; domain errors mapped to HTTP / batch results.

Nothing here creates an AWS client at import time: adapters are built on first use (cold starts).
Every HTTP error is answered in the project's JSON shape, ``{"error": code, "message": …}``: a route
answers the methods it does not serve with ``405`` itself (with ``Allow``; registered, so that API
Gateway hands them to us instead of answering on its own), any other path up to four segments deep is
a ``404`` (``not_found``), and :func:`own_error_shape` rewrites the few answers Chalice makes itself
(an unsupported media type, an uncaught exception).
Powertools: the Logger writes JSON with the order key as correlation id, Metrics are flushed after
every invocation, the Tracer (built on first use) annotates each webhook and batch with its store and
order key; it is active in Lambda and disabled locally by POWERTOOLS_TRACE_DISABLED.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from chalice import Chalice, Response

from chalicelib.config import WORKER_BATCH_SIZE, settings
from chalicelib.domain import errors
from chalicelib.domain.event_ids import EventIdConflict
from chalicelib.domain.taxpayer import mask
from chalicelib.routes import admin as admin_routes
from chalicelib.routes import admin_red as admin_red_routes
from chalicelib.routes import callbacks as callback_routes
from chalicelib.routes import customer as customer_routes
from chalicelib.routes import store_api as store_api_routes
from chalicelib.webhooks import platform as platform_module
from chalicelib.webhooks.base import Outcome

if TYPE_CHECKING:  # the intake is imported on first use (cold starts: docs/benchmarks.md)
    from chalicelib.services.ingest import IngestResult

app = Chalice(app_name="einvoice")
logger = Logger(service="einvoice")
metrics = Metrics(namespace="EInvoice", service="einvoice")


@cache
def tracer() -> Any:
    """The Powertools Tracer, built on first use: importing the X-Ray SDK costs ~0.4 s, so it is
    not paid by every cold import (docs/benchmarks.md) — only by the first traced invocation."""
    from aws_lambda_powertools import Tracer

    return Tracer(service="einvoice")


WEBHOOK_CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/octet-stream",
]
WEBHOOK_PATH = "/webhooks/{platform}/{store_id}"
#: Every method a route can be asked for (API Gateway's and Chalice's list).
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Unknown paths are answered 404 by catch-all routes up to this many segments deep (one more than
#: the deepest route, so a mistyped webhook URL is a 404 too).
CATCH_ALL_DEPTH = 4


# --- use cases, built once per container on first use (chalicelib/wiring.py) ----------------------
def _reset() -> None:
    from chalicelib import wiring

    wiring.reset()


def _ingest() -> Any:
    from chalicelib import wiring

    return wiring.ingest()


_ingest.cache_clear = _reset  # type: ignore[attr-defined]  # tests switch stacks


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


# --- routes ------------------------------------------------------------------------------------------
@app.route("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "stage": settings().stage}


@app.route(WEBHOOK_PATH, methods=["POST"], content_types=WEBHOOK_CONTENT_TYPES)
def webhook(platform: str, store_id: str) -> Response:
    request = app.current_request
    raw = request.raw_body or b""
    headers = {k.lower(): v for k, v in request.headers.items()}
    # This request's keys only: thread-local (chalice local serves requests on threads; a warm Lambda
    # container would otherwise keep the previous request's order key on this one's first lines).
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(platform=platform, store_id=store_id)
    tracer().put_annotation(key="store_id", value=store_id)
    try:
        result = _ingest()(platform, store_id, raw, headers, datetime.now(UTC))
    except errors.IgnoredEvent as exc:
        logger.info("event ignored", extra={"reason": exc.message})
        reply = platform_module(platform).reply(Outcome.IGNORED, order_key="", status="ignored")
        return _reply(reply)
    except errors.EInvoiceError as exc:
        return _webhook_error(exc)
    logger.thread_safe_append_keys(correlation_id=result.order_key)
    tracer().put_annotation(key="order_key", value=result.order_key)
    logger.info(
        "webhook accepted",
        extra={
            "outcome": result.outcome,
            "status": result.status,
            "event_id": result.event.event_id if result.event else None,
            "buyer_tax_id": mask(result.event.buyer.tax_id) if result.event and result.event.buyer else None,
        },
    )
    metrics.add_metric(name=f"Webhook_{result.outcome}", unit=MetricUnit.Count, value=1)
    for one in result.batch or (result,):
        if one.conflict:  # acknowledged: the platform's success answer, and still a conflict for us
            _event_id_conflict(one.order_key, one.conflict)
    if result.outcome == "rejected":
        logger.info("order rejected, acknowledged", extra={"violations": [v.code for v in result.violations]})
    reply = platform_module(platform).reply(
        Outcome(result.outcome), order_key=result.order_key, status=result.status, detail=_detail(result)
    )
    return _reply(reply)


def _detail(result: IngestResult) -> dict[str, Any] | None:
    """What the answer adds to the outcome: why an order is held, what an acknowledged rejection broke."""
    from chalicelib.services.ingest import HELD_REASONS

    if result.outcome == "held" and result.reason:
        return {"reason": result.reason, "message": HELD_REASONS[result.reason]}
    if result.outcome == "rejected":
        return {"errors": [v.as_dict() for v in result.violations]}
    return None


def _reply(reply: Any) -> Response:
    body = reply.body.decode("utf-8") if isinstance(reply.body, bytes) else reply.body
    return Response(body=body, status_code=reply.status, headers={"Content-Type": reply.content_type})


def _webhook_error(exc: errors.EInvoiceError) -> Response:
    """One place where every intake error becomes an HTTP answer; never secret material in it."""
    metrics.add_metric(name=f"WebhookRejected_{exc.code}", unit=MetricUnit.Count, value=1)
    if isinstance(exc, errors.SignatureInvalid):
        logger.warning("signature rejected", extra={"reason": exc.code})
        return _json(401, {"error": "invalid_signature", "reason": exc.code})
    if isinstance(exc, errors.UnknownPlatform | errors.NotFound):
        return _json(404, {"error": exc.code, "message": exc.message})
    if isinstance(exc, errors.PayloadTooLarge):
        return _json(413, {"error": exc.code, "message": exc.message})
    if isinstance(exc, EventIdConflict):
        _event_id_conflict(exc.order_key, exc.held_by)
        body = {"error": exc.code, "order_key": exc.order_key, "status": "rejected", "held_by": exc.held_by}
        return _json(409, {**body, "errors": [v.as_dict() for v in exc.violations]})
    if isinstance(exc, errors.OrderRejected):
        codes = [v.code for v in exc.violations]
        logger.info("order rejected", extra={"order_key": exc.order_key, "violations": codes})
        body = {"error": exc.code, "order_key": exc.order_key, "status": "rejected"}
        return _json(422, {**body, "errors": [v.as_dict() for v in exc.violations]})
    if isinstance(exc, errors.ValidationFailed):
        logger.info("order rejected", extra={"violations": [v.code for v in exc.violations]})
        return _json(422, {"error": exc.code, "errors": [v.as_dict() for v in exc.violations]})
    if isinstance(exc, errors.MalformedPayload):
        return _json(422, {"error": exc.code, "errors": [{"field": "body", "code": exc.code, "message": exc.message}]})
    if isinstance(exc, errors.InfrastructureUnavailable | errors.ConfigurationError):
        logger.error("cannot accept now", extra={"code": exc.code, "detail": exc.message})
        return _json(503, {"error": exc.code, "message": "temporarily unavailable, retry later"}, {"Retry-After": "30"})
    logger.exception("unexpected intake error")
    return _json(500, {"error": "internal_error"})


def _event_id_conflict(order_key: str, held_by: str) -> None:
    """A reused event id (chalicelib/domain/event_ids.py): the order is recorded as rejected, nothing is
    lost, and the sender's ids need a look — a warning and a metric."""
    logger.warning("event id conflict", extra={"order_key": order_key, "held_by": held_by})
    metrics.add_metric(name="EventIdConflict", unit=MetricUnit.Count, value=1)


# --- every other method and path: answered in our own shape ----------------------------------------
def _refuse_other_methods(path: str, allowed: tuple[str, ...]) -> None:
    """Register the methods ``path`` does not serve, answered 405 with ``Allow``."""

    def method_not_allowed(**_: str) -> Response:
        method = app.current_request.method if app.current_request else "?"
        message = f"{method} is not allowed on {path}; use {', '.join(allowed)}"
        return _json(405, {"error": "method_not_allowed", "message": message}, {"Allow": ", ".join(allowed)})

    method_not_allowed.__name__ = f"method_not_allowed_{re.sub(r'\W+', '_', path).strip('_')}"
    app.route(path, methods=[m for m in METHODS if m not in allowed], content_types=["*/*"])(method_not_allowed)


def _answer_not_found(depth: int) -> None:
    """Register a catch-all route of ``depth`` segments: every method answered 404."""

    def not_found(**parts: str) -> Response:
        path = "/" + "/".join(parts[f"p{i}"] for i in range(1, depth + 1))
        return _json(404, {"error": "not_found", "message": f"no route {path}"})

    not_found.__name__ = f"not_found_{depth}"
    path = "".join(f"/{{p{i}}}" for i in range(1, depth + 1))
    app.route(path, methods=list(METHODS), content_types=["*/*"])(not_found)


_refuse_other_methods("/health", ("GET",))
_refuse_other_methods(WEBHOOK_PATH, ("POST",))
app.register_blueprint(store_api_routes.bp)  # GET /stores/{store_id}/orders/{order_id}/invoice (a store's key)
app.register_blueprint(admin_routes.bp)  # /admin: operators' sessions, the dashboard
app.register_blueprint(customer_routes.customer)  # /i/{token}: the customer's invoice link (HTML)
app.register_blueprint(admin_red_routes.bp)  # /admin/api/red/batch (chalicelib/routes/admin_red.py)
app.register_blueprint(callback_routes.bp)  # POST /callbacks/nuonuo/{store_id} (chalicelib/routes/callbacks.py)
_refuse_other_methods(store_api_routes.INVOICE_PATH, ("GET",))
# every other route (the admin, the callbacks) answers the methods it does not serve in our shape too
for _path, _served in list(app.routes.items()):
    if set(_served) != set(METHODS):
        _refuse_other_methods(_path, tuple(m for m in METHODS if m in _served))
for _depth in range(1, CATCH_ALL_DEPTH + 1):
    _answer_not_found(_depth)


@app.middleware("http")
def own_error_shape(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice's own error answers (``{"Code", "Message"}``: an unsupported media type, an uncaught
    exception) rewritten to ``{"error": code, "message": …}``, their status and headers kept."""
    response = get_response(event)
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or set(body) != {"Code", "Message"}:
        return response
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", str(body["Code"])).lower().removesuffix("_error")
    headers = {k: v for k, v in (response.headers or {}).items() if k.lower() != "content-type"}
    return _json(response.status_code, {"error": code, "message": str(body["Message"])}, headers)


# --- worker ------------------------------------------------------------------------------------------
@app.on_sqs_message(queue="einvoice-issue", batch_size=WORKER_BATCH_SIZE)
def worker(event: Any) -> dict[str, Any]:
    """Attempts and checks for a batch; the messages to keep are reported (ReportBatchItemFailures),
    each already hidden by the worker for as long as its order should wait."""
    from chalicelib import wiring

    try:
        records = event.to_dict().get("Records", [])
        return wiring.batch_worker().handle(records, event.context.get_remaining_time_in_millis).response()
    finally:
        metrics.flush_metrics()
        wiring.metrics().flush_metrics()


@app.on_sqs_message(queue="einvoice-deliver", batch_size=WORKER_BATCH_SIZE)
def deliverer(event: Any) -> dict[str, Any]:
    """Deliver what the worker issued: the PDF into the invoice bucket, the customer's link by e-mail
    and SMS (chalicelib/services/deliver.py); a run to retry is hidden for its backoff and reported."""
    from chalicelib import wiring

    try:
        records = event.to_dict().get("Records", [])
        return wiring.deliver_batch().handle(records, event.context.get_remaining_time_in_millis).response()
    finally:
        metrics.flush_metrics()
        wiring.metrics().flush_metrics()


# --- schedules ---------------------------------------------------------------------------------------
@app.schedule("rate(1 minute)")
def sweeper(event: Any) -> dict[str, int]:
    """Re-queue every record whose next step is overdue: recorded but never queued (the outbox), a
    dead attempt's expired lease, a lost retry or re-check message (chalicelib/services/sweeper.py)."""
    import time

    from chalicelib import wiring
    from chalicelib.services.sweeper import sweep

    sent = sweep(
        wiring.ledger(),
        wiring.queue(),
        now=time.time(),
        grace_seconds=wiring.sweep_grace_seconds(),
        deliveries=wiring.deliver_queue(),
    )
    metrics.add_metric(name="SyncedInvoices", unit=MetricUnit.Count, value=wiring.status_sync_sweep(time.time()))
    if sent:
        logger.warning("sweeper re-queued overdue orders", extra={"count": sent})
    metrics.add_metric(name="SweptOrders", unit=MetricUnit.Count, value=sent)
    metrics.flush_metrics()
    return {"requeued": sent}


@app.schedule("rate(1 day)")
def archive_manifest(event: Any) -> dict[str, Any]:
    """Seal each store's finished archive days with a signed manifest and verify the day before
    (chalicelib/services/archive_manifest.py); a failing manifest is an alert."""
    from chalicelib import wiring

    runs = wiring.manifest_job().run()
    failed = [r.store for r in runs if r.checked is not None and not r.checked.ok]
    metrics.add_metric(name="ManifestVerifyFailed", unit=MetricUnit.Count, value=len(failed))  # the alarm's
    metrics.flush_metrics()
    return {"sealed": {r.store: [d.isoformat() for d in r.sealed] for r in runs}, "failed": failed}
