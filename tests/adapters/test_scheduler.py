"""The local scheduler finds app.py's @app.schedule handlers and invokes them on their (scaled) rates."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from chalice import Chalice, Rate

from infra.scheduler import Scheduler, discover, rate_seconds, scheduled_event

# A Chalice app of its own: its handlers run in the scheduler's containers, which import this module.
demo = Chalice(app_name="scheduler-test")
RECORD_DIR = "EINVOICE_TEST_SCHEDULE_DIR"


def _record(name: str, event: Any) -> None:
    seen = Path(os.environ[RECORD_DIR])
    note = {"event": event.to_dict(), "remaining_ms": event.context.get_remaining_time_in_millis()}
    (seen / f"{name}-{time.monotonic_ns()}.json").write_text(json.dumps(note))


@demo.schedule(Rate(1, unit=Rate.MINUTES))
def tick(event: Any) -> dict[str, str]:
    _record("tick", event)
    return {"ticked": "yes"}


@demo.schedule("rate(2 minutes)")
def boom(event: Any) -> None:
    _record("boom", event)
    raise RuntimeError("the sweeper broke")


@demo.schedule("cron(0 3 * * ? *)")
def nightly(event: Any) -> None:
    raise AssertionError("cron schedules are not run locally")


def test_rates_in_seconds() -> None:
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("rate(1 day)") == 86_400
    assert rate_seconds(Rate(3, unit=Rate.DAYS)) == 3 * 86_400
    for wrong in ("rate(0 minutes)", "rate(5 weeks)", "cron(0 3 * * ? *)", "every 5 minutes"):
        with pytest.raises(ValueError):
            rate_seconds(wrong)


def test_discovers_every_schedule_of_app_py_with_its_rate() -> None:
    from chalice.app import CloudWatchEvent, EventSourceHandler

    import app

    scheduled = {
        name
        for name, value in vars(app).items()
        if isinstance(value, EventSourceHandler) and value.event_class is CloudWatchEvent
    }
    found = {s.name: s for s in discover(app.app)}
    assert scheduled and set(found) == scheduled  # every @app.schedule function of app.py, nothing else
    for name, schedule in found.items():
        assert schedule.handler == f"app:{name}"
        assert schedule.seconds, f"{name} {schedule.expression} would not run locally"
        assert schedule.seconds == rate_seconds(schedule.expression) >= 60


def test_discovers_rate_objects_and_lists_crons_without_running_them() -> None:
    found = {s.name: s for s in discover(demo, __name__)}
    assert (found["tick"].seconds, found["boom"].seconds, found["nightly"].seconds) == (60, 120, None)
    assert found["tick"].handler == f"{__name__}:tick"
    lines = Scheduler(demo.app_name, list(found.values()), scale=60).describe()
    assert any("tick rate(1 minute): every 1 s (60 s ÷ 60)" in line for line in lines), lines
    assert any("nightly cron(0 3 * * ? *): not run locally" in line for line in lines), lines


def test_the_scheduled_event_is_what_eventbridge_sends() -> None:
    event = scheduled_event("einvoice-local-outbox_sweeper-event", "cn-north-1")
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:cn-north-1:123456789012:rule/einvoice-local-outbox_sweeper-event"]
    assert {"version", "id", "account", "time", "region", "detail"} <= set(event)


def test_handlers_run_on_their_scaled_rates_and_a_raising_one_keeps_its_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(RECORD_DIR, str(tmp_path))
    scheduler = Scheduler(
        demo.app_name, discover(demo, __name__), scale=120, timeout=10
    )  # tick every 0.5 s, boom every 1 s
    loop = threading.Thread(target=scheduler.run)
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(list(tmp_path.glob("tick-*"))) >= 3 and len(list(tmp_path.glob("boom-*"))) >= 2:
                break
            time.sleep(0.1)
    finally:
        scheduler.stop()
        loop.join(timeout=30)
    assert not loop.is_alive()
    assert len(list(tmp_path.glob("boom-*"))) >= 2, "a handler that raised was not invoked again"
    ticks = [json.loads(p.read_text()) for p in tmp_path.glob("tick-*")]
    assert len(ticks) >= 3
    event = ticks[0]["event"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == ["arn:aws:events:cn-north-1:123456789012:rule/scheduler-test-local-tick-event"]
    assert 0 < ticks[0]["remaining_ms"] <= 10_000
    out = capsys.readouterr().out
    assert "scheduler: tick done in" in out and '{"ticked": "yes"}' in out
    assert "scheduler: boom failed in" in out and "RuntimeError: the sweeper broke" in out
