"""`make run` brings the whole service up; a signed webhook posted over HTTP is queued and picked up."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from typing import Any

import pytest

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


def test_a_queued_order_leaves_the_queue_through_the_worker(local_stack: Any) -> None:
    """The worker runner long-polls and invokes the SQS handler: the queue drains."""
    sqs = local_stack.client("sqs")
    url = local_stack.env["ISSUE_QUEUE_URL"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
            break
        time.sleep(1)
    log = (local_stack.state_dir / "worker.log").read_text()
    assert re.search(r"worker: batch of \d+", log), log[-2000:]
