"""Run the app's ``@app.schedule`` handlers locally, each on its rate, as EventBridge invokes them in AWS.

``chalice local`` serves the routes and ``infra.worker_runner`` the SQS handler; this loop is the third
piece of ``make run``. It reads the schedules from the Chalice app object (``app.event_sources``), so a
handler added to app.py runs here with no change to this file.

    python -m infra.scheduler [--app app:app] [--scale F] [--timeout S] [--once]

- ``rate(N minute[s]|hour[s]|day[s])`` (a string or a ``chalice.Rate``) runs every N units divided by
  ``--scale`` / ``EINVOICE_SCHEDULE_SCALE`` (the e2e tests run the 5-minute sweepers every few seconds);
  a ``cron(...)`` schedule is listed and not run;
- the first invocation comes one interval after the start, as after a rule's creation; ticks missed
  while a handler ran long are skipped, not caught up; a handler that raises is reported and runs
  again at its next time;
- each handler gets EventBridge's scheduled event and a context counting down to its Lambda timeout
  (``lambda_timeout`` in .chalice/config.json, or ``--timeout``), in a warm container of its own
  (``infra.lambda_local.Container``): one that overruns is killed, as Lambda would kill it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infra.lambda_local import ROOT, Container, ContainerError, load_dotted

ACCOUNT = "123456789012"
STAGE = "local"
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|hour|day)s?\s*\)", re.IGNORECASE)


def scale_from_env() -> float:
    return float(os.environ.get("EINVOICE_SCHEDULE_SCALE", "1"))


def rate_seconds(expression: Any) -> int:
    """Seconds between invocations of ``rate(...)`` (a string or a ``chalice.Rate``); ValueError otherwise."""
    text = expression if isinstance(expression, str) else expression.to_string()
    match = _RATE.fullmatch(text.strip())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"{text!r} is not rate(N minutes|hours|days)")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2).lower()]


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: str
    #: module:function, as the container imports it
    handler: str
    #: None: not a rate (a cron expression), not run locally
    seconds: int | None


def discover(app: Any, app_module: str = "app") -> list[Schedule]:
    """Every ``@app.schedule`` handler the Chalice app registered (blueprints included).

    Chalice names a handler ``app.function`` (the Lambda handler string: it deploys the app as
    ``app.py``); ``app_module`` is where this app object really lives, so that another app (a test's)
    can be run too. A blueprint's handlers carry their own module.
    """
    from chalice.app import ScheduledEventConfig

    found = []
    for source in app.event_sources:
        if not isinstance(source, ScheduledEventConfig):
            continue
        expression = source.schedule_expression
        text = expression if isinstance(expression, str) else expression.to_string()
        try:
            seconds: int | None = rate_seconds(text)
        except ValueError:
            seconds = None
        module, _, function = source.handler_string.rpartition(".")
        module = app_module if module == "app" else module
        found.append(Schedule(source.name, text, f"{module}:{function}", seconds))
    return found


def configured_timeout(function: str, stage: str = STAGE) -> float:
    """A function's ``lambda_timeout`` as Chalice resolves .chalice/config.json (its default: 60 s)."""
    try:
        config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    except (OSError, ValueError):
        return 60.0
    staged = config.get("stages", {}).get(stage, {})
    for layer in (
        staged.get("lambda_functions", {}).get(function, {}),
        staged,
        config.get("lambda_functions", {}).get(function, {}),
        config,
    ):
        if "lambda_timeout" in layer:
            return float(layer["lambda_timeout"])
    return 60.0


def scheduled_event(rule: str, region: str, now: datetime | None = None) -> dict[str, Any]:
    """What EventBridge sends a Lambda function on a schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


class Scheduler:
    def __init__(
        self, app_name: str, schedules: list[Schedule], *, scale: float = 1.0, timeout: float | None = None
    ) -> None:
        if scale <= 0:
            raise ValueError("the schedule scale must be positive")
        self.app_name = app_name
        self.schedules = schedules
        self.scale = scale
        self.timeout = timeout
        self.region = os.environ.get("AWS_DEFAULT_REGION", "cn-north-1")
        self.containers = {s.name: Container(s.handler, self.function_name(s)) for s in schedules if s.seconds}
        self.stopping = threading.Event()

    @staticmethod
    def say(line: str) -> None:
        print(line, flush=True)

    def function_name(self, schedule: Schedule) -> str:
        return f"{self.app_name}-{STAGE}-{schedule.name}"  # as `chalice deploy` names it

    def interval(self, schedule: Schedule) -> float:
        assert schedule.seconds
        return schedule.seconds / self.scale

    def describe(self) -> list[str]:
        lines = []
        for s in self.schedules:
            if not s.seconds:
                lines.append(f"scheduler: {s.name} {s.expression}: not run locally (only rate(...) schedules are)")
                continue
            scaled = f" ({s.seconds} s ÷ {self.scale:g})" if self.scale != 1 else ""
            timeout = self.timeout or configured_timeout(s.name)
            lines.append(
                f"scheduler: {s.name} {s.expression}: every {self.interval(s):g} s{scaled}, {s.handler}, "
                f"timeout {timeout:g} s"
            )
        return lines or ["scheduler: the app has no @app.schedule handlers"]

    def invoke(self, schedule: Schedule) -> None:
        """One invocation, reported in one line; nothing it does stops the loop."""
        container = self.containers[schedule.name]
        try:
            cold = container.warm()
        except ContainerError as exc:
            self.say(f"scheduler: {schedule.name}: {exc}")
            return
        if cold is not None:
            self.say(f"scheduler: {schedule.name}: cold start in {cold:.2f} s")
        timeout = self.timeout or configured_timeout(schedule.name)
        started = time.monotonic()
        event = scheduled_event(f"{self.function_name(schedule)}-event", self.region)
        outcome = container.invoke(event, timeout, str(uuid.uuid4()))
        took = f"{time.monotonic() - started:.2f} s"
        if self.stopping.is_set() and outcome.lost:
            self.say(f"scheduler: {schedule.name}: abandoned at shutdown")
        elif outcome.lost:
            self.say(f"scheduler: {schedule.name}: {outcome.lost}; container replaced")
        elif outcome.error:
            self.say(f"scheduler: {schedule.name} failed in {took}: {outcome.error}")
        else:
            self.say(f"scheduler: {schedule.name} done in {took}: {json.dumps(outcome.result)}")

    def _loop(self, schedule: Schedule) -> None:
        every = self.interval(schedule)
        next_at = time.monotonic() + every
        try:
            self.containers[schedule.name].warm()  # ready before the first tick
        except ContainerError as exc:
            self.say(f"scheduler: {schedule.name}: {exc}; trying again at its next time")
        while not self.stopping.wait(max(0.0, next_at - time.monotonic())):
            self.invoke(schedule)
            while next_at <= time.monotonic():
                next_at += every

    def run(self) -> None:
        """Invoke every rate schedule on its time until stop()."""
        for schedule in self.schedules:
            if schedule.seconds:
                threading.Thread(target=self._loop, args=(schedule,), name=schedule.name, daemon=True).start()
        while not self.stopping.wait(0.5):
            pass
        self.close()

    def run_once(self) -> None:
        """Invoke every rate schedule once, now."""
        try:
            for schedule in self.schedules:
                if schedule.seconds:
                    self.invoke(schedule)
        finally:
            self.close()

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        for container in self.containers.values():
            container.abort()  # a sweeper cut short is run again at its next time, as after a timeout
            container.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.scheduler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="app:app", help="the Chalice app, module:attribute (default %(default)s)")
    parser.add_argument(
        "--scale",
        type=float,
        default=scale_from_env(),
        help="divide every interval by this (default $EINVOICE_SCHEDULE_SCALE or 1)",
    )
    parser.add_argument("--timeout", type=float, help="seconds an invocation may run (default: .chalice/config.json)")
    parser.add_argument("--once", action="store_true", help="invoke every schedule once, now, and exit")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    sys.path.insert(0, str(ROOT))
    app = load_dotted(args.app)
    scheduler = Scheduler(
        app.app_name, discover(app, args.app.partition(":")[0]), scale=args.scale, timeout=args.timeout
    )
    for line in scheduler.describe():
        scheduler.say(line)

    def stop(*_: object) -> None:
        scheduler.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.once:
        scheduler.run_once()
    else:
        scheduler.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
