"""`make run` twice: after a run killed without cleanup, the next run stops the leftovers and starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def start(state: Path, ports: dict[str, int], name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EINVOICE_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    out = open(state / f"{name}.out", "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
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


def wait_ready(state: Path, name: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while "Press Ctrl-C" not in (state / f"{name}.out").read_text(errors="replace"):
        assert proc.poll() is None, (state / f"{name}.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "did not start"
        time.sleep(0.3)


def test_a_second_run_after_a_hard_kill_cleans_up_and_starts(tmp_path: Path) -> None:
    ports = {"aws": free_port(), "api": free_port(), "sandbox": free_port()}
    first = start(tmp_path, ports, "first")
    wait_ready(tmp_path, "first", first)
    first.send_signal(signal.SIGKILL)  # the runner dies; its children (own sessions) keep the ports
    first.wait()
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/health", timeout=5) as r:
        assert r.status == 200  # the orphaned API still holds its port

    second = start(tmp_path, ports, "second")
    try:
        wait_ready(tmp_path, "second", second)
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/health", timeout=5) as r:
            assert r.status == 200
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=30)
    assert "stopped." in (tmp_path / "second.out").read_text()
    assert not (tmp_path / "pids.json").exists()
    from infra.localstack import _port_free

    assert all(_port_free(p) for p in ports.values()), "a port is still held after Ctrl-C"
