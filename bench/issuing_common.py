"""Helpers shared by both parts of ``bench/bench_issuing.py``: the signed webhook ``infra/cli.py`` prints, the
sample stores' secrets, the sandbox's configuration, the measured tree, and environment / stdout guards."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import ROOT, percentile


@dataclass(frozen=True)
class SignedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes


def signed_webhook(store_id: str, secret: str, order_id: str) -> SignedWebhook:
    """The request ``infra.cli.sample_webhook`` prints as curl, parsed back (so it follows that sample)."""
    from infra.cli import sample_webhook
    from infra.webhook_samples import parse_curl

    url, request = parse_curl(sample_webhook("http://127.0.0.1", store_id, secret, order_id=order_id))
    path = urlsplit(url).path
    if not path or not request.body or "webhook-signature" not in request.headers:
        raise RuntimeError("infra.cli.sample_webhook no longer prints a request this bench can parse")
    return SignedWebhook(path, dict(request.headers), request.body)


def sample_secret(store_id: str) -> str:
    """The store's Standard Webhooks secret as ``infra.seed`` loads it (examples/secrets.local.json)."""
    secrets = json.loads((ROOT / "examples" / "secrets.local.json").read_text(encoding="utf-8"))
    value = secrets[f"einvoice/{store_id}/webhook/standard"]
    return str((value.get("secrets") or [value.get("secret")])[0])


def sandbox_default_delay() -> float:
    return float(json.loads((ROOT / "examples" / "sandbox.json").read_text(encoding="utf-8"))["issue_delay_seconds"])


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout


def tree_label() -> str:
    """The commit measured and whether the working tree had uncommitted changes (read-only git)."""
    try:
        head, dirty = _git("log", "-1", "--format=%h").strip(), _git("status", "--porcelain").splitlines()
    except OSError:
        return "unknown tree"
    return f"`{head}`" + (f" with {len(dirty)} uncommitted path(s)" if dirty else " (clean)")


def pct(values: list[float], p: float) -> float:
    return percentile(values, p) if values else float("nan")


def order_record_batches(
    ddb: Any, table: str, keys: Iterable[str], attributes: tuple[str, ...], *, consistent: bool = False
) -> Iterator[list[dict[str, str]]]:
    """The ledger's order records of ``keys``, projected to ``attributes``, each as ``{attribute: string}``:
    one list per BatchGetItem reply (100 keys a request; unprocessed keys are asked again)."""
    todo = list(keys)
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    for start in range(0, len(todo), 100):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"pk": {"S": f"order#{k}"}, "sk": {"S": "order"}} for k in todo[start : start + 100]],
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
                "ConsistentRead": consistent,
            }
        }
        while request:
            reply = ddb.batch_get_item(RequestItems=request)
            yield [{k: v.get("S", "") for k, v in item.items()} for item in reply.get("Responses", {}).get(table, [])]
            request = reply.get("UnprocessedKeys") or {}


def sandbox_config(delay_s: float) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ROOT / "examples" / "sandbox.json").read_text(encoding="utf-8"))
    config["issue_delay_seconds"] = delay_s
    return config


@contextlib.contextmanager
def restored_environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in the environment; afterwards the whole environment is as it was before."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def stdout_to(path: Path) -> Iterator[None]:
    """Send file descriptor 1 to ``path`` (the handlers' JSON logs and EMF metrics would flood the output;
    they are still formatted and written, so their CPU cost stays in the figures)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
