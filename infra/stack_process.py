"""`make run`'s stack as one child process of a bench, a chaos run or a test: started on free loopback
ports with its state in a folder of the caller's, stopped the way Ctrl-C stops it, and nothing left.

    with started(state, env={"EINVOICE_SCHEDULE_SCALE": "20"}) as launched:
        launched.ports["api"], launched.stack_file["env"]["ISSUE_QUEUE_URL"], launched.process.pid

``infra.localstack`` writes its children's process groups to ``<state>/pids.json``; :func:`stop` sends
the launcher SIGINT (it stops its children), then kills whatever a launcher that died first left behind
— only the processes whose environment names this state folder, so another stack's are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: What ``infra.localstack`` prints once everything runs.
READY = "Press Ctrl-C to stop everything"
START_LIMIT_S = 180.0
STOP_LIMIT_S = 60.0
OUTPUT = "make-run.out"


@dataclass
class Launched:
    state: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes]
    #: ``<state>/stack.json``: ``aws_endpoint``, ``region``, ``env`` (the stack's resource names and endpoints).
    stack_file: dict[str, Any]

    @property
    def output(self) -> Path:
        return self.state / OUTPUT

    def pids(self) -> dict[str, int]:
        return {k: int(v) for k, v in json.loads((self.state / "pids.json").read_text()).items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def started(state: Path, *, env: Mapping[str, str] | None = None, limit_s: float = START_LIMIT_S) -> Iterator[Launched]:
    """``python -m infra.localstack`` until it prints :data:`READY` (``RuntimeError`` with its output's
    tail if it exits or takes longer than ``limit_s``); :func:`stop` at the end, always."""
    state.mkdir(parents=True, exist_ok=True)
    ports = {"aws": free_port(), "api": free_port(), "sandbox": free_port()}
    child_env = {**os.environ, "EINVOICE_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1", **(env or {})}
    child_env.pop("AWS_ENDPOINT_URL", None)  # the stack's own moto, never the caller's
    argv = [sys.executable, "-m", "infra.localstack"]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    out_path = state / OUTPUT
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + limit_s
            while READY not in out_path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = out_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError("the local stack did not start:\n" + tail)
                time.sleep(0.3)
            stack_file = json.loads((state / "stack.json").read_text())
            yield Launched(state, ports, proc, stack_file)
        finally:
            stop(proc, state)


def stop(proc: subprocess.Popen[bytes], state: Path) -> None:
    """SIGINT to the launcher (what Ctrl-C does: it stops its children); then every process group of
    ``<state>/pids.json`` still alive and ours is killed (the launcher died before stopping them)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    pidfile = state / "pids.json"
    if pidfile.exists():
        with contextlib.suppress(ValueError, OSError):
            for pid in json.loads(pidfile.read_text()).values():
                if ours(int(pid), state):
                    with contextlib.suppress(OSError):
                        os.killpg(int(pid), signal.SIGKILL)


def ours(pid: int, state: Path) -> bool:
    """Whether ``pid`` is a process of the stack with this state folder (its environment names it)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"EINVOICE_STATE_DIR={state}".encode() in environ


def group(pgid: int) -> set[int]:
    """The live processes of a process group (a child of the stack and whatever it started)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(stat.parent.name))
    return members
