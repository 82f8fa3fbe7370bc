"""The e2e tier: the local stack exactly as `make run` starts it, as real processes on free ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.e2e


@dataclass
class RunningStack:
    api: str
    aws: str
    sandbox: str
    state_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def boto3_session(self) -> Any:
        import boto3

        return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="cn-north-1")

    def client(self, service: str) -> Any:
        return self.boto3_session().client(service, endpoint_url=self.aws)

    def output(self) -> str:
        return (self.state_dir / "make-run.out").read_text(errors="replace")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """`python -m infra.localstack` (what `make run` runs) until it prints that it is running."""
    state = tmp_path_factory.mktemp("local-stack")
    ports = {"aws": free_port(), "api": free_port(), "sandbox": free_port()}
    out = open(state / "make-run.out", "wb")  # noqa: SIM115 - closed below
    env = {
        **os.environ,
        "EINVOICE_STATE_DIR": str(state),
        "PYTHONUNBUFFERED": "1",
        "EINVOICE_SCHEDULE_SCALE": "20",  # the 1-minute sweeper every 3 s
        "EINVOICE_WORKER_CONCURRENCY": "2",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.localstack",
            "--aws-port",
            str(ports["aws"]),
            "--api-port",
            str(ports["api"]),
            "--sandbox-port",
            str(ports["sandbox"]),
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while "Press Ctrl-C to stop everything" not in (state / "make-run.out").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGTERM)
            raise RuntimeError("the local stack did not start:\n" + (state / "make-run.out").read_text()[-4000:])
        time.sleep(0.3)
    stack_env = json.loads((state / "stack.json").read_text())["env"]
    running = RunningStack(
        api=f"http://127.0.0.1:{ports['api']}",
        aws=f"http://127.0.0.1:{ports['aws']}",
        sandbox=f"http://127.0.0.1:{ports['sandbox']}",
        state_dir=state,
        env=stack_env,
        process=proc,
    )
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()
