"""`make run`'s demo order: one signed order posted after start-up, followed until the customer has it.

It posts a Standard Webhooks ``order.paid`` for the sample store (signed with its example secret, as
``einvoice webhook sample`` does), waits for the worker to issue it and the deliverer to deliver it,
and returns the customer's link as the buyer's mail carries it (read from the embedded AWS's outbox,
``einvoice dev outbox``). It runs beside the stack, never in its way: each step has a deadline and a
plain message when it is missed. ``EINVOICE_DEMO_ORDER=0`` turns it off.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

DEMO_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class DemoResult:
    order_key: str
    invoice_number: str = ""
    link: str = ""
    problem: str = ""  # what did not happen in time (empty: delivered)


def enabled() -> bool:
    return os.environ.get("EINVOICE_DEMO_ORDER", "1") not in ("0", "false", "no", "")


def post(api: str, store_id: str, secret: str, order_id: str) -> int:
    """POST the signed demo order; the HTTP status."""
    from infra import webhook_samples as ws
    from infra.cli import SAMPLE_BUYER

    sale = ws.Sale.of(order_id, "36.00", sku="LATTE-L", name="拿铁咖啡（大杯）", buyer=SAMPLE_BUYER)
    request = ws.paid("standard", sale, {"secrets": [secret]})
    req = urllib.request.Request(  # noqa: S310 - the local API
        f"{api}/webhooks/standard/{store_id}", data=request.body, headers=request.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:  # noqa: S310
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _until[T](what: Callable[[], T | None], deadline: float) -> T | None:
    while time.monotonic() < deadline:
        try:
            found = what()
        except Exception:  # the stack is still starting (a worker container's cold start): look again
            found = None
        if found:
            return found
        time.sleep(POLL_SECONDS)
    return None


def run(
    api: str,
    aws_endpoint: str,
    store_id: str,
    secret: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = DEMO_TIMEOUT_SECONDS,
) -> DemoResult:
    """Post the demo order and follow it; ``env``: the stack's resource names (``stack.json``'s)."""
    from chalicelib import config, wiring
    from chalicelib.domain.order_keys import order_key
    from infra.cli_dev import outbox

    os.environ.update(env or {})  # the stack's resource names (this process talks to it like the CLI)
    config.settings.cache_clear()
    wiring.reset()
    order_id = f"DEMO-{uuid.uuid4().hex[:6].upper()}"
    key = order_key(store_id, "standard", order_id)
    deadline = time.monotonic() + timeout
    accepted = _until(lambda: post(api, store_id, secret, order_id) in (200, 202), deadline)
    if not accepted:
        return DemoResult(key, problem="the API did not accept the demo order (see .local/api.log)")
    ledger = wiring.ledger()

    def issued() -> str | None:
        record = ledger.get_order(key)
        return record.text("invoice_number") if record is not None and record.status.value == "issued" else None

    number = _until(issued, deadline)
    if not number:
        return DemoResult(key, problem="not issued in time (see .local/worker.log; `einvoice orders show` tells why)")

    def link() -> str | None:
        mails = [m for m in outbox(aws_endpoint) if m.channel == "email" and str(number) in m.subject]
        return next((m.links[0] for m in mails if m.links), None)

    found = _until(link, deadline)
    if not found:
        return DemoResult(key, str(number), problem="not delivered in time (see .local/deliverer.log)")
    return DemoResult(key, str(number), link=found)


def report(result: DemoResult) -> str:
    if result.problem:
        return f"demo order {result.order_key}: {result.problem}. The stack keeps running."
    return (
        f"demo order {result.order_key}: issued as invoice {result.invoice_number} and delivered.\n"
        f"  the customer's link: {result.link}\n"
        "  open it in a browser: the invoice page, and its PDF downloads;\n"
        "  `.venv/bin/einvoice dev outbox` lists the mail the customer got (moto's SES and SNS)."
    )
