"""The chaos run's own local stack: ``python -m infra.localstack`` (what ``make run`` runs) on free ports.

Its clock is compressed the way the deploy derives it: the worker's Lambda time limit is the lowest the
project allows (``chalicelib.wiring.MIN_ATTEMPT_SECONDS`` + 2 s: one whole tax call), the issue queue's
visibility timeout follows as ``chalicelib.config`` derives it (limit + 30 s), and the schedules run
``SCHEDULE_SCALE`` times faster (the 1-minute sweeper every few seconds). The stack supervises its
children as ``make run`` does: a killed worker, API or scheduler comes back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START_LIMIT_S = 180.0
REGION = "cn-north-1"
SCHEDULE_SCALE = 20
WORKER_CONCURRENCY = 2


def worker_timeout() -> int:
    """The lowest Lambda time limit the worker accepts work under: one whole tax call, and 2 s."""
    from chalicelib.wiring import MIN_ATTEMPT_SECONDS

    return math.ceil(MIN_ATTEMPT_SECONDS) + 2


def visibility_timeout() -> int:
    """The issue queue's visibility timeout as ``chalicelib.config`` derives it from the time limit."""
    from chalicelib import config

    return worker_timeout() + (config.QUEUE_VISIBILITY_SECONDS - config.WORKER_TIMEOUT_SECONDS)


@dataclass
class Stack:
    state: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def aws(self) -> str:
        return f"http://127.0.0.1:{self.ports['aws']}"

    @property
    def sandbox(self) -> str:
        return f"http://127.0.0.1:{self.ports['sandbox']}"

    def output(self) -> str:
        return (self.state / "make-run.out").read_text(errors="replace")

    def log(self, name: str) -> str:
        path = self.state / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads((self.state / "pids.json").read_text()).items()}
        except (OSError, ValueError):
            return {}

    def describe(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "aws": self.aws,
            "sandbox": self.sandbox,
            "state_dir": str(self.state),
            "region": REGION,
            "env": self.env,
            "worker_timeout": worker_timeout(),
            "visibility_timeout": visibility_timeout(),
            "schedule_scale": SCHEDULE_SCALE,
        }

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)  # noqa: S106
        config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
        return session.client(service, endpoint_url=self.aws, config=config)

    # --- the sandbox's admin routes ---------------------------------------------------------------
    def admin(self, path: str, payload: dict[str, Any] | None = None, *, timeout: float = 10) -> tuple[int, Any]:
        """``(status, JSON)`` of an admin call; ``(404, …)`` tells a route this sandbox does not have."""
        data = json.dumps(payload).encode() if payload is not None else None
        url = f"{self.sandbox}{path}"  # loopback http only
        request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - loopback
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(ValueError):
                return exc.code, json.loads(exc.read() or b"{}")
            return exc.code, {}

    # --- the CLI, as an operator runs it against this stack ----------------------------------------
    def cli(self, *args: str, timeout: float = 120) -> dict[str, Any]:
        drop = {"STORES_TABLE", "LEDGER_TABLE", "AWS_ENDPOINT_URL"}
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update({"EINVOICE_STATE_DIR": str(self.state), "COLUMNS": "200", "NO_COLOR": "1"})
        argv = [sys.executable, "-m", "infra.cli", *args]
        try:
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
            rc, out = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out = -1, f"timed out after {timeout:.0f} s: {exc.stdout!s}"
        return {"argv": ["einvoice", *args], "rc": rc, "stdout": out}


@contextlib.contextmanager
def running(state: Path | None = None) -> Iterator[Stack]:
    """Start the stack (state in ``state``, a fresh temporary folder by default) until it prints that it
    runs (``infra.stack_process``); stop it with SIGINT (what Ctrl-C does) at the end, always — a
    process this run froze thawed first."""
    import tempfile

    from infra import stack_process

    state = Path(state) if state else Path(tempfile.mkdtemp(prefix="chaos-"))
    env = {
        "EINVOICE_SCHEDULE_SCALE": str(SCHEDULE_SCALE),
        "EINVOICE_WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "EINVOICE_WORKER_TIMEOUT": str(worker_timeout()),
        "EINVOICE_DEMO_ORDER": "0",
    }
    with stack_process.started(state, env=env, limit_s=START_LIMIT_S) as launched:
        try:
            stack = Stack(state, launched.ports, launched.process, launched.stack_file["env"])
            _shorten_visibility(stack)
            yield stack
        finally:
            thaw(state)  # before the stop: a frozen process ignores SIGINT and SIGTERM


def _shorten_visibility(stack: Stack) -> None:
    sqs = stack.client("sqs")
    sqs.set_queue_attributes(
        QueueUrl=stack.env["ISSUE_QUEUE_URL"], Attributes={"VisibilityTimeout": str(visibility_timeout())}
    )


def thaw(state: Path) -> None:
    """SIGCONT to every group this run froze and did not thaw (a frozen process ignores SIGINT)."""
    for pid in frozen_groups(state):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGCONT)


def frozen_groups(state: Path) -> list[int]:
    """The process groups this run froze and has not thawed yet (``<state>/frozen.json``)."""
    path = state / "frozen.json"
    with contextlib.suppress(OSError, ValueError):
        return [int(p) for p in json.loads(path.read_text())]
    return []
