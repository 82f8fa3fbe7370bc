"""Cold import of the webhook handler (``import app``) next to ``import boto3``, each in a fresh interpreter.

Every sample is a new ``python`` process (the venv's, ``sys.executable``, cwd = project root) that
times its own ``import`` with ``perf_counter`` and reports its peak RSS afterwards (``VmHWM``; the
child's ``ru_maxrss`` would do on a fresh shell, but on Linux it survives fork + exec and so reports at
least the benchmarking parent's RSS — it is only the fallback where ``/proc`` is missing); the
parent also times the whole process, and a ``pass`` child gives the interpreter's own start-up so
"process wall − pass" is a second estimate of the import cost. The three kinds run interleaved
(round-robin) so load on a shared machine hits them alike; one warm-up round is discarded (bytecode
caches are therefore warm, as in a Lambda package shipped with ``.pyc`` files). Medians of ``RUNS``
rounds. Aim: handler import ≤ 1.5 × ``import boto3`` — printed, never asserted. One extra
``-X importtime`` run lists what the handler's import spends its time on.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.common import ROOT

RUNS = 7
AIM_RATIO = 1.5
TIMEOUT_S = 60

# Peak RSS: VmHWM of /proc/self/status (this process image only). ru_maxrss is the fallback: on Linux
# it survives fork + exec, so a child of a big parent reports at least the parent's RSS.
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hwm = None
try:
    with open("/proc/self/status") as status:
        hwm = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), None)
except OSError:
    pass
print(json.dumps({{
    "import_ms": (t1 - t0) * 1000,
    "maxrss_kib": hwm if hwm is not None else maxrss,
    "ru_maxrss_kib": maxrss,
    "modules": len(sys.modules),
    "botocore": "botocore" in sys.modules,
}}))
"""

TARGETS = {"pass": "pass", "app": "import app", "boto3": "import boto3"}


@dataclass(frozen=True)
class Sample:
    import_ms: float
    wall_ms: float
    maxrss_kib: int
    modules: int
    botocore: bool


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("AWS_DEFAULT_REGION", "cn-north-1")
    return env


def child(statement: str) -> Sample:
    """One fresh interpreter running ``statement``; what it measured of itself plus its wall time."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(statement=statement)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    wall_ms = (time.perf_counter() - t0) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{statement!r} failed in a fresh interpreter:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Sample(data["import_ms"], wall_ms, data["maxrss_kib"], data["modules"], data["botocore"])


def heaviest_imports(statement: str = "import app", top: int = 6) -> list[tuple[str, float]]:
    """The direct imports of ``statement`` costing most (cumulative ms), from one ``-X importtime`` run."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return direct_imports(done.stderr, statement.rsplit(maxsplit=1)[-1], top)


def direct_imports(importtime_stderr: str, target: str, top: int = 6) -> list[tuple[str, float]]:
    """From ``-X importtime`` output: the modules ``target`` imported first-hand, heaviest first (ms).

    importtime prints a module after everything it imported, indented two spaces a level: the direct
    imports of a top-level ``target`` are the depth-1 lines between the previous top-level line and it.
    """
    rows: list[tuple[int, str, float]] = []
    for line in importtime_stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative_us, name = line.split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2  # " name" at the top, two more spaces a level
        rows.append((depth, name.strip(), int(cumulative_us) / 1000))
    end = max((i for i, (d, n, _) in enumerate(rows) if d == 0 and n == target), default=None)
    if end is None:
        return []
    start = max((i for i, (d, _, _) in enumerate(rows[:end]) if d == 0), default=-1) + 1
    direct = [(n, ms) for d, n, ms in rows[start:end] if d == 1]
    return sorted(direct, key=lambda item: item[1], reverse=True)[:top]


def measure(runs: int = RUNS) -> dict[str, list[Sample]]:
    for statement in TARGETS.values():  # warm-up round: bytecode caches, page cache
        child(statement)
    samples: dict[str, list[Sample]] = {name: [] for name in TARGETS}
    for _ in range(runs):
        for name, statement in TARGETS.items():
            samples[name].append(child(statement))
    return samples


def _median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def _spread(samples: list[Sample], attr: str) -> str:
    values = [getattr(s, attr) for s in samples]
    return f"{min(values):,.0f}–{max(values):,.0f}"


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def run() -> str:
    started = time.perf_counter()
    samples = measure()
    heavy = heaviest_imports()
    return render(samples, heavy, time.perf_counter() - started)


def render(samples: dict[str, list[Sample]], heavy: list[tuple[str, float]], elapsed: float) -> str:
    """The markdown section for measured ``samples`` (keys ``pass``, ``app``, ``boto3``)."""
    base_wall = _median(samples["pass"], "wall_ms")
    base_rss = _median(samples["pass"], "maxrss_kib")
    rows = []
    for name, label in (("app", "`import app` (webhook handler)"), ("boto3", "`import boto3`")):
        s = samples[name]
        rows.append(
            f"| {label} | **{_median(s, 'import_ms'):,.0f}** | {_spread(s, 'import_ms')} | "
            f"{_median(s, 'wall_ms') - base_wall:,.0f} | {_median(s, 'maxrss_kib') / 1024:,.1f} | "
            f"{(_median(s, 'maxrss_kib') - base_rss) / 1024:,.1f} | {s[0].modules} | "
            f"{'yes' if s[0].botocore else 'no'} |"
        )
    ratio = _ratio(_median(samples["app"], "import_ms"), _median(samples["boto3"], "import_ms"))
    app_wall, boto3_wall = _median(samples["app"], "wall_ms"), _median(samples["boto3"], "wall_ms")
    wall_ratio = _ratio(app_wall - base_wall, boto3_wall - base_wall)
    rss_ratio = _ratio(_median(samples["app"], "maxrss_kib"), _median(samples["boto3"], "maxrss_kib"))
    heavy_text = ", ".join(f"`{name}` {ms:,.0f} ms" for name, ms in heavy) or "(not available)"
    return "\n".join(
        [
            "## Cold import of the webhook handler",
            "",
            f"Fresh `{os.path.basename(sys.executable)}` processes (the project venv, cwd = project root), "
            f"{len(samples['app'])} interleaved rounds after one warm-up round, medians; bytecode caches warm. "
            "`import ms` is timed inside the child around the import statement; `wall − pass` is the whole "
            f"child process minus an empty one (`python -c pass`, median {base_wall:,.0f} ms wall, "
            f"{base_rss / 1024:,.1f} MiB peak RSS). Peak RSS is the child's `VmHWM`; its `ru_maxrss` would include "
            f"the parent's RSS, inherited across fork + exec. Run took {elapsed:.1f} s.",
            "",
            "| import | import ms (median) | range ms | wall − pass ms | peak RSS MiB | RSS over `pass` MiB | "
            "modules loaded | botocore loaded |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"**Ratio handler / boto3: {ratio:.2f}×** (in-child timer; {wall_ratio:.2f}× by `wall − pass`; "
            f"peak RSS {rss_ratio:.2f}×). Aim ≤ {AIM_RATIO}×: **{'met' if ratio <= AIM_RATIO else 'missed'}**.",
            "",
            f"Heaviest direct imports of `app` (one `-X importtime` run, cumulative): {heavy_text}.",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
