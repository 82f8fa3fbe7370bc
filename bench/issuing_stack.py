"""Part 2's local stack: ``python -m infra.localstack`` on free ports (stopped with SIGINT, always) and the CPU
of each of its processes, read from ``/proc``. See ``bench/issuing_e2e.py``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT

START_LIMIT_S = 180.0
READY = "Press Ctrl-C to stop everything"
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- CPU of a process group from /proc -------------------------------------------------------------
def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on: the name may hold spaces


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime + cutime + cstime of every live process in process group ``pgid`` (seconds)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None or int(fields[2]) != pgid:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime (fields 14-17)
    return total / CLK_TCK


def own_cpu_seconds() -> float:
    """This process's CPU (all its threads: the posters and the ledger poller)."""
    fields = _stat_fields("self")
    return sum(int(v) for v in fields[11:13]) / CLK_TCK if fields else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has been busy since boot (``/proc/stat``: user, nice, system,
    irq, softirq, steal); 0 where there is no ``/proc/stat``."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    except (OSError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields)
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class CpuSample:
    at: float
    seconds: dict[str, float]
    pids: dict[str, int]


LAUNCHER = "launcher (infra.localstack; + children it reaped)"
BENCH = "bench (posters + poller)"
#: The machine's busy CPU less the rows above (a process that exits between samples falls in here too).
OTHER_WORK = "other work on the machine (not this stack or bench)"


def sample_cpu(stack: Stack) -> CpuSample:
    """CPU seconds of each stack process group (pids.json read afresh: the launcher restarts children)."""
    try:
        pids = {k: int(v) for k, v in json.loads((stack.state / "pids.json").read_text()).items()}
    except (OSError, ValueError):
        pids = dict(stack.pids)
    seconds = {name: group_cpu_seconds(pgid) for name, pgid in pids.items()}
    seconds[LAUNCHER] = group_cpu_seconds(stack.process.pid)
    seconds[BENCH] = own_cpu_seconds()
    seconds[OTHER_WORK] = machine_busy_seconds() - sum(seconds.values())  # only its changes mean anything
    return CpuSample(time.time(), seconds, pids)


# --- the stack ---------------------------------------------------------------------------------------
@dataclass
class Stack:
    api_port: int
    aws: str
    region: str
    env: dict[str, str]
    state: Path
    process: subprocess.Popen[bytes]
    pids: dict[str, int]
    sample_store: str


@contextlib.contextmanager
def local_stack() -> Iterator[Stack]:
    """``python -m infra.localstack`` on free ports until it prints that it runs; SIGINT at the end, always."""
    from tests.support.processes import free_port

    state = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    ports = {"aws": free_port(), "api": free_port(), "sandbox": free_port()}
    env = {**os.environ, "EINVOICE_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    argv = [sys.executable, "-m", "infra.localstack"]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    out_path = state / "make-run.out"
    out = open(out_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_LIMIT_S
        while READY not in out_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the local stack did not start:\n" + out_path.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        stack_file = json.loads((state / "stack.json").read_text())
        sample = re.search(r"/webhooks/standard/([\w.-]+)", out_path.read_text(errors="replace"))
        yield Stack(
            api_port=ports["api"],
            aws=stack_file["aws_endpoint"],
            region=stack_file["region"],
            env=stack_file["env"],
            state=state,
            process=proc,
            pids={k: int(v) for k, v in json.loads((state / "pids.json").read_text()).items()},
            sample_store=sample.group(1) if sample else "demo-shanghai",
        )
    finally:
        _stop(proc, state)
        out.close()
        shutil.rmtree(state, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes], state: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does: the launcher stops its processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    pidfile = state / "pids.json"  # still there: the launcher died before stopping what it started
    if pidfile.exists():
        with contextlib.suppress(ValueError, OSError):
            for pid in json.loads(pidfile.read_text()).values():
                if _ours(int(pid), state):
                    with contextlib.suppress(OSError):
                        os.killpg(int(pid), signal.SIGKILL)


def _ours(pid: int, state: Path) -> bool:
    """Whether ``pid`` is a process of the stack this bench started (it carries our state directory)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"EINVOICE_STATE_DIR={state}".encode() in environ


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
