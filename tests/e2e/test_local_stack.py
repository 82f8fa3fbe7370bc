"""`make run` brings the whole service up; a signed webhook posted over HTTP is queued and picked up."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from chalicelib.domain.order_keys import order_key
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_health_answers(local_stack: Any) -> None:
    status, body = http("GET", f"{local_stack.api}/health")
    assert status == 200
    assert json.loads(body)["stage"] == "local"


def test_the_printed_sample_request_is_accepted(local_stack: Any) -> None:
    text = local_stack.output()
    curl = text[text.index("curl -sS") : text.index("Press Ctrl-C")].strip()
    result = subprocess.run(["bash", "-c", curl + " -w '\\n%{http_code}'"], capture_output=True, text=True, check=True)
    body, code = result.stdout.rsplit("\n", 1)
    assert code == "202", result.stdout
    assert json.loads(body)["status"] == "queued"


def test_the_cli_lists_the_example_stores_of_the_running_stack(local_stack: Any) -> None:
    import os
    import sys

    env = {**os.environ, "EINVOICE_STATE_DIR": str(local_stack.state_dir)}
    for var in ("STORES_TABLE", "AWS_ENDPOINT_URL"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-m", "infra.cli", "stores", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "demo-shanghai" in out and "demo-hangzhou" in out
    sample = subprocess.run(
        [sys.executable, "-m", "infra.cli", "webhook", "sample", "demo-shanghai", "--api", local_stack.api],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = subprocess.run(
        ["bash", "-c", sample.strip() + " -w '\\n%{http_code}'"], capture_output=True, text=True, check=True
    )
    assert result.stdout.rsplit("\n", 1)[1] == "202"


def test_a_webhook_ends_as_one_issued_invoice_from_the_sandbox(local_stack: Any) -> None:
    """Webhook → queue → worker → STA protocol → sandbox → ledger 'issued', exactly one invoice."""
    import os
    import sys

    env = {**os.environ, "EINVOICE_STATE_DIR": str(local_stack.state_dir)}
    for var in ("STORES_TABLE", "LEDGER_TABLE", "AWS_ENDPOINT_URL"):
        env.pop(var, None)
    sample = subprocess.run(
        [sys.executable, "-m", "infra.cli", "webhook", "sample", "demo-shanghai", "--api", local_stack.api],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    order_id = re.search(r'"order_id":"([^"]+)"', sample).group(1)  # type: ignore[union-attr]
    posted = subprocess.run(
        ["bash", "-c", sample.strip() + " -w '\\n%{http_code}'"], capture_output=True, text=True, check=True
    ).stdout
    assert posted.rsplit("\n", 1)[1] == "202", posted

    deadline = time.monotonic() + 120
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = subprocess.run(
            [sys.executable, "-m", "infra.cli", "orders", "show", order_key("demo-shanghai", "standard", order_id)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        shown = json.loads(out)
        if shown["status"] in ("issued", "failed", "failed_auth"):
            break
        time.sleep(1)
    assert shown["status"] == "issued", shown
    assert re.fullmatch(r"\d{20}", shown["issue"]["invoice_number"]), shown["issue"]
    status, body = http("GET", f"{local_stack.sandbox}/admin/invoices/count?order_no={order_id}")
    assert status == 200 and json.loads(body)["count"] == 1


def _cli(local_stack: Any, *args: str) -> str:
    """What `einvoice ARGS` prints against the running stack (found through its stack.json)."""
    import os
    import sys

    env = {**os.environ, "EINVOICE_STATE_DIR": str(local_stack.state_dir)}
    for var in ("STORES_TABLE", "LEDGER_TABLE", "AWS_ENDPOINT_URL"):
        env.pop(var, None)
    argv = [sys.executable, "-m", "infra.cli", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout


def _run_curl(curl: str) -> tuple[str, str]:
    """(HTTP status, answer) of a printed curl command run by bash."""
    argv = ["bash", "-c", curl.strip() + " -w '\\n%{http_code}'"]
    body, code = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.rsplit("\n", 1)
    return code, body


def test_a_sample_of_every_platform_of_every_example_store_is_accepted(local_stack: Any) -> None:
    """`einvoice webhook sample STORE --platform all` prints one signed request for each platform the store
    accepts; each gets a 2xx from the running API (the example stores together: all eight platforms; WeChat
    Pay / Alipay signed with the test-only keys of examples/secrets.local.json, seeded by `make run`)."""
    from chalicelib.webhooks import PLATFORMS
    from infra.seed import load_store_files

    answers: dict[str, tuple[str, str]] = {}
    for store in load_store_files():
        printed = _cli(local_stack, "webhook", "sample", store.store_id, "--platform", "all", "--api", local_stack.api)
        samples = printed.strip().split("\n\n")
        assert len(samples) == len(store.webhook_secrets), printed
        for sample in samples:
            platform = re.search(r"/webhooks/(\w+)/", sample).group(1)  # type: ignore[union-attr]
            answers[f"{store.store_id}/{platform}"] = _run_curl(sample)
    assert {key.split("/")[1] for key in answers} == set(PLATFORMS)
    refused = {key: answer for key, answer in answers.items() if not answer[0].startswith("2")}
    assert not refused, refused
