"""Part 2's local stack: ``python -m infra.localstack`` on free ports (stopped with SIGINT, always) and the CPU
of each of its processes, read from ``/proc``. See ``bench/issuing_e2e.py``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_LIMIT_S = 180.0
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
    """``python -m infra.localstack`` on free ports until it prints that it runs (``infra.stack_process``);
    SIGINT at the end, always; its temporary state folder removed."""
    from infra import stack_process

    state = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        with stack_process.started(state, limit_s=START_LIMIT_S) as launched:
            output = launched.output.read_text(errors="replace")
            sample = re.search(r"/webhooks/standard/([\w.-]+)", output)
            yield Stack(
                api_port=launched.ports["api"],
                aws=launched.stack_file["aws_endpoint"],
                region=launched.stack_file["region"],
                env=launched.stack_file["env"],
                state=state,
                process=launched.process,
                pids=launched.pids(),
                sample_store=sample.group(1) if sample else "demo-shanghai",
            )
    finally:
        shutil.rmtree(state, ignore_errors=True)


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
