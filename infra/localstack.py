"""`make run`: the whole service on this machine, no AWS account needed.

Starts, in order, each as a real process on 127.0.0.1:
1. moto in server mode: the embedded AWS (default port 4566);
2. every resource of infra/resources.py created in it (the deploy template's own definitions),
   the example stores and their sample secrets, the tax classification table;
3. the tax sandbox (default port 8900), speaking both tax protocols;
4. the HTTP API through ``chalice local`` (default port 8000);
5. the worker runner (infra/worker_runner.py), long-polling the queue and invoking the SQS handler;
6. the scheduler (infra/scheduler.py), invoking every ``@app.schedule`` handler on its rate.

It prints what runs where and a ready-to-paste signed request, then supervises: the API, the worker
and the scheduler hold no state and are restarted when they die (a line says so; one that dies
``MAX_RESTARTS`` times within ``RESTART_WINDOW_SECONDS`` is left stopped); the embedded AWS and the
sandbox hold all the data, so when one of them dies the stack says that the data is lost and stops.
Ctrl-C (or SIGTERM) stops everything; a second run first stops what a previous, killed run left
behind (pid file in .local/), so ports are never stale.
Ports: --aws-port/--api-port/--sandbox-port or EINVOICE_AWS_PORT/EINVOICE_API_PORT/EINVOICE_SANDBOX_PORT.
The children read EINVOICE_WORKER_CONCURRENCY, EINVOICE_WORKER_TIMEOUT and EINVOICE_SCHEDULE_SCALE.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
#: Logs, pid file and stack.json; tests point it elsewhere so they never touch a developer's running stack.
STATE = Path(os.environ.get("EINVOICE_STATE_DIR", str(ROOT / ".local")))
PIDFILE = STATE / "pids.json"
STACK_FILE = STATE / "stack.json"
REGION = "cn-north-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}
#: A restartable child that dies this often within the window is left stopped (it crash-loops).
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
#: What is lost when a stateful child dies: the stack cannot go on without it.
HOLDS = {
    "aws": "the embedded AWS held all the data (tables, queue, buckets, secrets)",
    "sandbox": "the tax sandbox held every invoice it issued",
}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _kill_group(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal a child's process group (start_new_session: its own), leftovers of a dead leader too."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _stop_stale() -> None:
    """Stop the process groups a previous run recorded (it was killed without cleaning up)."""
    if not PIDFILE.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        groups = [int(pid) for pid in json.loads(PIDFILE.read_text()).values()]
        for pgid in groups:
            _kill_group(pgid, signal.SIGTERM)
        time.sleep(1)
        for pgid in groups:  # what did not stop: an orphaned worker container busy with a batch
            _kill_group(pgid)
    PIDFILE.unlink(missing_ok=True)


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}; see {STATE / (name + '.log')}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{name} did not answer on {url} within {timeout:.0f}s")


def _stores_lines(stores: list[Any]) -> str:
    """One line a store: id, tax provider, the share issued automatically, the platforms it accepts."""
    lines = []
    for store in stores:
        share = f"{store.pilot_percentage}% issued" + (
            "" if store.pilot_percentage >= 100 else f", {100 - store.pilot_percentage}% held (pilot)"
        )
        platforms = ", ".join(store.webhook_secrets)
        lines.append(f"{store.store_id:<15} {store.provider.provider.value:<7} {share:<28} {platforms}")
    return "\n                 ".join(lines)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class _Steps:
    """``[n/total] what … ready (1.2 s)``: one line a start-up step."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.started = total, 0, time.monotonic()

    def begin(self, what: str) -> None:
        self.n += 1
        self.started = time.monotonic()
        print(f"[{self.n}/{self.total}] {what} …", end="", flush=True)

    def done(self, detail: str = "ready") -> None:
        print(f" {detail} ({time.monotonic() - self.started:.1f} s)", flush=True)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    restarts: int = 0
    recent: deque[float] = field(default_factory=deque)
    given_up: bool = False

    @property
    def log_path(self) -> Path:
        return STATE / f"{self.name}.log"


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children: dict[str, Child] = {}
        self.env: dict[str, str] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(STATE / f"{name}.log", "wb")  # noqa: SIM115 - closed when the stack stops
        self.children[name] = Child(name, argv, env, self._popen(argv, env, log), log)
        self._write_pids()
        return self.children[name].proc

    @staticmethod
    def _popen(argv: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _write_pids(self) -> None:
        live = {n: c.proc.pid for n, c in self.children.items() if not c.given_up}
        partial = PIDFILE.with_suffix(".tmp")
        partial.write_text(json.dumps(live))
        partial.replace(PIDFILE)  # whole or not at all, for whoever reads it meanwhile

    def stop(self) -> None:
        """The API, worker and scheduler first (they talk to the others while stopping), then the state."""
        children = list(reversed(self.children.values()))
        for phase in ([c for c in children if c.name not in HOLDS], [c for c in children if c.name in HOLDS]):
            for child in phase:
                _kill_group(child.proc.pid, signal.SIGTERM)
            for child in phase:
                try:
                    child.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"{child.name} did not stop in time: killed")
                _kill_group(child.proc.pid)  # whatever it left behind (a worker's containers)
                child.proc.wait()
                child.log.close()
        PIDFILE.unlink(missing_ok=True)

    def start(self) -> None:
        a = self.args
        STATE.mkdir(exist_ok=True)
        _stop_stale()
        busy = [p for p in (a.aws_port, a.api_port, a.sandbox_port) if not _port_free(p)]
        if busy:
            raise SystemExit(
                f"port(s) {busy} are in use by another program; choose others with --aws-port/--api-port/--sandbox-port"
            )
        aws_url = f"http://127.0.0.1:{a.aws_port}"
        base_env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": aws_url, "PYTHONUNBUFFERED": "1"}

        steps = _Steps(total=5 if (ROOT / "chalicelib" / "sandbox" / "__main__.py").exists() else 4)
        steps.begin(f"starting the embedded AWS (moto server) on {aws_url}")
        moto = self.spawn(
            "aws", [sys.executable, "-m", "infra.moto_server", "-H", "127.0.0.1", "-p", str(a.aws_port)], base_env
        )
        _wait_http(f"{aws_url}/moto-api/", moto, "aws")
        steps.done()

        steps.begin("creating the tables, queues, buckets, topic and key; loading the example stores and secrets")
        os.environ.update({k: v for k, v in base_env.items() if k.startswith("AWS_")})
        import boto3

        from infra.local import bootstrap
        from infra.seed import seed

        session = boto3.session.Session(region_name=REGION)
        created = bootstrap(session, prefix="einvoice-local")
        sandbox_url = f"http://127.0.0.1:{a.sandbox_port}"
        self.env = {
            **created.env,
            "STAGE": "local",
            "STA_ENDPOINT": sandbox_url,
            "STA_SANDBOX_FLAG": "1",
            "NUONUO_ENDPOINT": f"{sandbox_url}/open/v1/services",
            "NUONUO_TOKEN_URL": f"{sandbox_url}/accessToken",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{a.api_port}",
        }
        seeded = seed(session, created.env)
        steps.done(f"{len(seeded['stores'])} stores")
        STACK_FILE.write_text(json.dumps({"aws_endpoint": aws_url, "region": REGION, "env": self.env}, indent=2))
        run_env = {**base_env, **self.env, "POWERTOOLS_TRACE_DISABLED": "true"}

        if (ROOT / "chalicelib" / "sandbox" / "__main__.py").exists():
            steps.begin(f"starting the tax sandbox (sta + nuonuo) on {sandbox_url}")
            sandbox = self.spawn(
                "sandbox",
                [
                    sys.executable,
                    "-m",
                    "chalicelib.sandbox",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(a.sandbox_port),
                    "--config",
                    str(ROOT / "examples" / "sandbox.json"),
                ],
                run_env,
            )
            _wait_http(f"{sandbox_url}/admin/health", sandbox, "sandbox")
            steps.done()

        steps.begin(f"starting the API (chalice local) on http://127.0.0.1:{a.api_port}")
        chalice = str(Path(sys.executable).parent / "chalice")
        api = self.spawn(
            "api",
            [chalice, "local", "--host", "127.0.0.1", "--port", str(a.api_port), "--stage", "local", "--no-autoreload"],
            run_env,
        )
        _wait_http(f"http://127.0.0.1:{a.api_port}/health", api, "api")
        steps.done()

        steps.begin("starting the worker, the deliverer and the scheduler")
        self.spawn("worker", [sys.executable, "-m", "infra.worker_runner"], run_env)
        deliverer = ["--handler", "app:deliverer", "--queue-url", self.env["DELIVER_QUEUE_URL"], "--concurrency", "1"]
        self.spawn("deliverer", [sys.executable, "-m", "infra.worker_runner", *deliverer], run_env)
        self.spawn("scheduler", [sys.executable, "-m", "infra.scheduler"], run_env)
        steps.done("started")
        self.summary(aws_url, sandbox_url, seeded)
        self.demo(aws_url, seeded)

    def demo(self, aws_url: str, seeded: dict[str, Any]) -> None:
        """One demo order, issued and delivered beside the running stack; its link printed (infra/demo_order.py)."""
        from infra import demo_order

        if not demo_order.enabled():
            return
        api = f"http://127.0.0.1:{self.args.api_port}"
        print("\nposting a demo order; its link follows once it is issued and delivered …", flush=True)

        def follow() -> None:
            try:
                result = demo_order.run(api, aws_url, seeded["sample_store"], seeded["sample_secret"], env=self.env)
                print("\n" + demo_order.report(result), flush=True)
            except Exception as exc:  # never in the stack's way
                print(f"\ndemo order: {type(exc).__name__}: {exc}. The stack keeps running.", flush=True)

        import threading

        threading.Thread(target=follow, name="demo-order", daemon=True).start()

    def summary(self, aws_url: str, sandbox_url: str, seeded: dict[str, Any]) -> None:
        a = self.args
        api = f"http://127.0.0.1:{a.api_port}"
        from infra.cli import sample_webhook

        sample = sample_webhook(api, seeded["sample_store"], seeded["sample_secret"])
        from infra.scheduler import scale_from_env
        from infra.worker_runner import concurrency_from_env, timeout_from_env

        logs, scale = _shown(STATE), scale_from_env()
        rates = f"its rate ÷ {scale:g}" if scale != 1 else "its rate"
        print(
            f"""
einvoice is running locally (stage 'local'):
  API            {api:<28}  (chalice local)   log: {logs}/api.log
  embedded AWS   {aws_url:<28}  (moto server)     log: {logs}/aws.log
  tax sandbox    {sandbox_url:<28}  (sta + nuonuo)    log: {logs}/sandbox.log
  worker         app:worker × {concurrency_from_env()} (timeout {timeout_from_env():g} s), long-polling
                 {self.env["ISSUE_QUEUE_URL"]}   log: {logs}/worker.log
  deliverer      app:deliverer × 1: the PDF into the bucket, e-mail / SMS to the buyer   log: {logs}/deliverer.log
  scheduler      every @app.schedule handler on {rates}   log: {logs}/scheduler.log
  stores         {_stores_lines(seeded["store_files"])}
  CLI            .venv/bin/einvoice stores list     (reads {logs}/stack.json)

API, worker and scheduler are restarted if they die; if the embedded AWS or the sandbox dies, its data
is gone and the stack stops.

A signed sample webhook (Standard Webhooks, valid for 5 minutes; `einvoice webhook sample {seeded["sample_store"]}`
prints a fresh one, `--platform wechatpay` … one of the store's other platforms; see README.md):

{sample}

Press Ctrl-C to stop everything.""",
            flush=True,
        )

    def watch(self) -> int:
        """Supervise until a stateful child dies: restart the others when they die."""
        while True:
            for child in self.children.values():
                if child.given_up or child.proc.poll() is None:
                    continue
                code = child.proc.returncode
                if child.name in HOLDS:
                    print(
                        f"{child.name} exited ({code}): {HOLDS[child.name]}, and that state is lost; "
                        f"stopping the stack (see {_shown(child.log_path)}). `make run` starts a fresh one.",
                        flush=True,
                    )
                    return 1
                self.restart(child, code)
            time.sleep(0.5)

    def restart(self, child: Child, code: int) -> None:
        _kill_group(child.proc.pid)  # what it left behind: a killed worker's containers
        now = time.monotonic()
        while child.recent and now - child.recent[0] > RESTART_WINDOW_SECONDS:
            child.recent.popleft()
        if len(child.recent) >= MAX_RESTARTS:
            child.given_up = True
            child.log.close()
            self._write_pids()
            print(
                f"{child.name} exited ({code}) again: {MAX_RESTARTS} restarts within {RESTART_WINDOW_SECONDS:.0f} s, "
                f"so it is crash-looping and is left stopped; see {_shown(child.log_path)}. The rest keeps running; "
                "fix the cause and start `make run` again (Ctrl-C stops everything).",
                flush=True,
            )
            return
        child.recent.append(now)
        child.restarts += 1
        line = f"{child.name} exited ({code}); restarted (restart {child.restarts})"
        child.log.write(f"\n--- {line} at {time.strftime('%H:%M:%S')} ---\n".encode())
        child.log.flush()
        child.proc = self._popen(child.argv, child.env, child.log)
        self._write_pids()
        print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("EINVOICE_AWS_PORT", "4566")))
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("EINVOICE_API_PORT", "8000")))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("EINVOICE_SANDBOX_PORT", "8900")))
    args = parser.parse_args(argv)
    stack = Stack(args)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Explicitly: a shell's background job starts with SIGINT ignored, and Python then installs no handler.
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        return stack.watch()
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
        return 0
    finally:
        stack.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
