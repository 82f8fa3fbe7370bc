"""`make run` supervises its children: the API, worker and scheduler come back when killed; the
embedded AWS does not (it holds the data), so losing it stops the stack.

One private stack for the module (the tests kill its processes: nothing is shared with other
modules' stacks), with the schedules scaled down so the sweepers run every few seconds, and the worker's
clock shortened the way the deploy derives it (a 30 s invocation limit, the queue's visibility timeout
``WORKER_TIMEOUT + 30`` s): a worker killed mid tax call is recovered through
the same visibility timeout and lease as in production, in about 65 s instead of 95 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.stack_process import group
from tests.e2e.test_restart import start, wait_ready
from tests.support.processes import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
WAIT = 90.0
LONG_POLL_SECONDS = 5  # the worker runner's default --wait
#: This stack's Lambda time limit (above the 23 s a tax attempt needs: ``chalicelib.wiring.MIN_ATTEMPT_SECONDS``);
#: the queue's visibility timeout follows it as ``chalicelib.config`` derives it (``WORKER_TIMEOUT_SECONDS + 30``),
#: and a claim's lease is the invocation's end + first check + 30 s.
WORKER_TIMEOUT = 30
VISIBILITY_TIMEOUT = WORKER_TIMEOUT + 30


@dataclass
class Stack:
    state: Path
    ports: dict[str, int]
    proc: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def output(self) -> str:
        return (self.state / "supervised.out").read_text(errors="replace")

    def log(self, name: str) -> str:
        return (self.state / f"{name}.log").read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        return {k: int(v) for k, v in json.loads((self.state / "pids.json").read_text()).items()}

    def cli(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("STORES_TABLE", "LEDGER_TABLE", "AWS_ENDPOINT_URL")}
        return subprocess.run(
            [sys.executable, "-m", "infra.cli", *args],
            cwd=ROOT,
            env={**env, "EINVOICE_STATE_DIR": str(self.state)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("supervised-stack")
    ports = {"aws": free_port(), "api": free_port(), "sandbox": free_port()}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EINVOICE_SCHEDULE_SCALE", "20")  # a 1-minute sweeper every 3 s, a 5-minute one every 15 s
        env.setenv("EINVOICE_WORKER_CONCURRENCY", "2")
        env.setenv("EINVOICE_WORKER_TIMEOUT", str(WORKER_TIMEOUT))
        proc = start(state, ports, "supervised")
    try:
        wait_ready(state, "supervised", proc)
        _shorten_visibility(state, ports["aws"])
        yield Stack(state, ports, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _shorten_visibility(state: Path, aws_port: int) -> None:
    """The issue queue of this stack hides a received message ``VISIBILITY_TIMEOUT`` s (the default 90 s
    belongs to the default 60 s time limit)."""
    import boto3

    queue_url = json.loads((state / "stack.json").read_text())["env"]["ISSUE_QUEUE_URL"]
    sqs = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="cn-north-1"
    ).client("sqs", endpoint_url=f"http://127.0.0.1:{aws_port}")
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT)})
    shown = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert shown["VisibilityTimeout"] == str(VISIBILITY_TIMEOUT)


def eventually(what: str, check: Callable[[], Any], timeout: float = WAIT, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def health(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def test_a_killed_worker_is_restarted_and_an_order_posted_after_the_kill_is_issued(supervised: Stack) -> None:
    worker = supervised.pids()["worker"]
    eventually("the worker's containers", lambda: len(group(worker)) >= 3)  # the runner and its 2 containers
    containers = group(worker) - {worker}

    os.kill(worker, signal.SIGKILL)
    eventually("the restart line", lambda: "worker exited (-9); restarted (restart 1)" in supervised.output())
    assert supervised.proc.poll() is None
    assert supervised.pids()["worker"] != worker
    assert not (containers & group(worker)), "the killed worker's containers were left running"

    # A long poll the killed runner had open (5 s) is still waiting inside the embedded AWS and would
    # take a message posted now — as SQS would hand it to a consumer that just died; it would then come
    # back only after the visibility timeout. Post once those polls are over.
    time.sleep(LONG_POLL_SECONDS + 1)
    key = _post_sample(supervised)

    def settled() -> dict[str, Any] | None:
        shown: dict[str, Any] = json.loads(supervised.cli("orders", "show", key))
        return shown if shown["status"] in ("issued", "failed", "failed_auth") else None

    assert eventually(f"{key} issued", settled)["status"] == "issued"
    assert re.search(r"worker\[\d\]: request \S+: batch of 1, 0 failed", supervised.log("worker"))


def _post_sample(supervised: Stack) -> str:
    sample = supervised.cli("webhook", "sample", "demo-shanghai", "--api", supervised.api)
    posted = subprocess.run(
        ["bash", "-c", sample.strip() + " -w '\\n%{http_code}'"], capture_output=True, text=True, check=True
    ).stdout
    body, code = posted.rsplit("\n", 1)
    assert code == "202", posted
    return str(json.loads(body)["order_key"])


def _admin(supervised: Stack, path: str, payload: dict[str, Any] | None = None) -> Any:
    url = f"http://127.0.0.1:{supervised.ports['sandbox']}{path}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def test_an_order_the_worker_held_when_it_was_killed_is_issued_once(supervised: Stack) -> None:
    """Nothing lost: the worker dies mid tax call; its message comes back after the visibility timeout
    (``VISIBILITY_TIMEOUT``), the attempt after the lease, queries first, and the order ends issued — once."""
    from chalicelib.domain.order_keys import serial_for

    _admin(supervised, "/admin/faults", {"latency_ms": 5000, "only": ["QDFPSC"]})  # the issue call hangs 5 s
    try:
        key = _post_sample(supervised)
        eventually(f"{key} claimed", lambda: json.loads(supervised.cli("orders", "show", key))["status"] == "issuing")
        os.kill(supervised.pids()["worker"], signal.SIGKILL)
    finally:
        _admin(supervised, "/admin/faults", {"latency_ms": 0, "only": []})
    killed = time.monotonic()

    def issued() -> bool:
        return bool(json.loads(supervised.cli("orders", "show", key))["status"] == "issued")

    eventually(f"{key} issued after the kill", issued, timeout=180, every=2)  # each look starts the CLI
    assert time.monotonic() - killed <= 150  # the visibility timeout and the lease, not 6 minutes
    invoices = _admin(supervised, f"/admin/invoices?serial={serial_for(key)}")
    assert len(invoices["invoices"] if isinstance(invoices, dict) else invoices) == 1


def test_a_killed_api_is_restarted_and_answers_again(supervised: Stack) -> None:
    api = supervised.pids()["api"]
    os.kill(api, signal.SIGKILL)
    eventually("the restart line", lambda: "api exited (-9); restarted (restart 1)" in supervised.output())
    eventually("the API answering", lambda: health(supervised.api))
    assert supervised.proc.poll() is None


def test_the_scheduler_invokes_the_apps_schedules(supervised: Stack) -> None:
    assert re.search(r"scheduler: \S+ rate\(", supervised.log("scheduler"))
    eventually("a schedule invocation", lambda: re.search(r"scheduler: \S+ done in", supervised.log("scheduler")))


def test_a_crash_looping_child_is_left_stopped_and_the_rest_keeps_running(supervised: Stack) -> None:
    def kill_the_scheduler() -> bool:
        pid = supervised.pids().get("scheduler")
        if pid is None:
            return True
        if pid in group(pid):
            os.kill(pid, signal.SIGKILL)
        return "left stopped" in supervised.output()

    eventually("the crash-loop verdict", kill_the_scheduler)
    assert "scheduler exited (-9) again: 5 restarts within 60 s" in supervised.output()
    assert "scheduler" not in supervised.pids()
    assert supervised.proc.poll() is None
    assert health(supervised.api)


def test_when_the_embedded_aws_dies_the_stack_says_its_data_is_lost_and_stops(supervised: Stack) -> None:
    os.kill(supervised.pids()["aws"], signal.SIGKILL)
    assert supervised.proc.wait(timeout=WAIT) == 1
    out = supervised.output()
    assert "aws exited (-9): the embedded AWS held all the data" in out and "stopping the stack" in out
    assert "stopped." in out
    assert not (supervised.state / "pids.json").exists()
    from infra.localstack import _port_free

    assert all(_port_free(p) for p in supervised.ports.values()), "a port is still held"
