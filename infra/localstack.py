"""`make run`: the whole service on this machine, no AWS account needed.

Starts, in order, each as a real process on 127.0.0.1:
1. moto in server mode: the embedded AWS (default port 4566);
2. every resource of infra/resources.py created in it (the deploy template's own definitions),
   the example stores and their sample secrets, the tax classification table;
3. the tax sandbox (default port 8900), speaking both tax protocols;
4. the HTTP API through ``chalice local`` (default port 8000);
5. the worker runner, long-polling the queue and invoking the SQS handler.

It prints what runs where and a ready-to-paste signed request. Ctrl-C stops everything; a second run
first stops what a previous, killed run left behind (pid file in .local/), so ports are never stale.
Ports: --aws-port/--api-port/--sandbox-port or EINVOICE_AWS_PORT/EINVOICE_API_PORT/EINVOICE_SANDBOX_PORT.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Logs, pid file and stack.json; tests point it elsewhere so they never touch a developer's running stack.
STATE = Path(os.environ.get("EINVOICE_STATE_DIR", str(ROOT / ".local")))
PIDFILE = STATE / "pids.json"
STACK_FILE = STATE / "stack.json"
REGION = "cn-north-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _stop_stale() -> None:
    """Stop the process groups a previous run recorded (it was killed without cleaning up)."""
    if not PIDFILE.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        for pid in json.loads(PIDFILE.read_text()).values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGTERM)
        time.sleep(1)
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


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, str] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(STATE / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process ends
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        PIDFILE.write_text(json.dumps({n: p.pid for n, p in self.procs.items()}))
        return proc

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                print(f"{name} did not stop in time: killed")
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

        print("starting the embedded AWS (moto server) …", flush=True)
        moto = self.spawn(
            "aws", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(a.aws_port)], base_env
        )
        _wait_http(f"{aws_url}/moto-api/", moto, "aws")

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
        STACK_FILE.write_text(json.dumps({"aws_endpoint": aws_url, "region": REGION, "env": self.env}, indent=2))
        run_env = {**base_env, **self.env, "POWERTOOLS_TRACE_DISABLED": "true"}

        if (ROOT / "chalicelib" / "sandbox" / "__main__.py").exists():
            print("starting the tax sandbox …", flush=True)
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

        print("starting the API (chalice local) …", flush=True)
        chalice = str(Path(sys.executable).parent / "chalice")
        api = self.spawn(
            "api",
            [chalice, "local", "--host", "127.0.0.1", "--port", str(a.api_port), "--stage", "local", "--no-autoreload"],
            run_env,
        )
        _wait_http(f"http://127.0.0.1:{a.api_port}/health", api, "api")

        print("starting the worker …", flush=True)
        self.spawn("worker", [sys.executable, "-m", "infra.worker_runner"], run_env)
        self.summary(aws_url, sandbox_url, seeded)

    def summary(self, aws_url: str, sandbox_url: str, seeded: dict[str, Any]) -> None:
        a = self.args
        api = f"http://127.0.0.1:{a.api_port}"
        from infra.cli import sample_webhook

        sample = sample_webhook(api, seeded["sample_store"], seeded["sample_secret"])
        print(
            f"""
einvoice is running locally (stage 'local'):
  API            {api}            (chalice local)   log: .local/api.log
  embedded AWS   {aws_url}        (moto server)     log: .local/aws.log
  tax sandbox    {sandbox_url}    (sta + nuonuo)    log: .local/sandbox.log
  worker         long-polling {self.env["ISSUE_QUEUE_URL"]}   log: .local/worker.log
  stores         {", ".join(seeded["stores"])}
  CLI            .venv/bin/einvoice stores list     (reads .local/stack.json)

A signed sample webhook (Standard Webhooks, valid for 5 minutes; `einvoice webhook sample {seeded["sample_store"]}`
prints a fresh one):

{sample}

Press Ctrl-C to stop everything.""",
            flush=True,
        )

    def watch(self) -> int:
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    print(f"{name} stopped unexpectedly (exit {proc.returncode}); see .local/{name}.log")
                    return 1
            time.sleep(0.5)


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
