"""The alarms in the deploy template (``infra/alarms.py`` via ``infra/resources.py`` and ``infra/package.py``):
one per alert, each on a metric some function really emits, each publishing to the alarm topic."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.alarms import FAILURE_METRICS, FAILURE_RATIO_PERCENT, NAMESPACE, SERVICE, SUCCESS_METRICS, alarms

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("package")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template(packaged: Callable[..., Path]) -> dict[str, Any]:
    path = packaged("prod", lint=True)  # raises SystemExit with cfn-lint's report on any finding
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _emitted() -> set[str]:
    """Every metric name the code emits: ``add_metric(name="X"``, ``metric("X")`` (the services' helper)."""
    names: set[str] = set()
    pattern = re.compile(r"""(?:add_metric\(name=|\.metric\(|end\([^)]*?")\s*f?["']([A-Za-z_]+)["']""")
    for path in [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        names |= set(pattern.findall(text))
        names |= set(re.findall(r'"(Red[A-Za-z]+|Invoice[A-Za-z]+)"', text))  # names handed to end(…, "RedIssued")
    return names


def _metric_names(props: dict[str, Any]) -> set[str]:
    if "MetricName" in props:
        return {props["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in props.get("Metrics", []) if "MetricStat" in m}


def test_every_alert_has_an_alarm_on_the_topic(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    found = {k: v for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms()) | {"DeadLetterAlarm"} <= set(found)
    for logical, alarm in found.items():
        assert {"Ref": "AlarmTopic"} in alarm["Properties"]["AlarmActions"], logical
    dlq = found["DeadLetterAlarm"]["Properties"]
    assert (dlq["MetricName"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        0,
        "GreaterThanThreshold",
    )
    assert dlq["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["IssueDLQ", "QueueName"]}


def test_each_alarm_watches_a_metric_the_code_emits(template: dict[str, Any]) -> None:
    emitted = _emitted()
    for logical in alarms():
        props = template["Resources"][logical]["Properties"]
        names = _metric_names(props)
        assert names and names <= emitted, (logical, names - emitted)
        stats = [props] if "MetricName" in props else [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
        for stat in stats:
            metric = stat.get("Metric", stat)
            assert metric["Namespace"] == NAMESPACE
            assert metric["Dimensions"] == [{"Name": "service", "Value": SERVICE}]  # Powertools' dimension


def test_the_failure_ratio_is_metric_math_over_the_workers_outcomes(template: dict[str, Any]) -> None:
    props = template["Resources"]["WorkerFailureRatioAlarm"]["Properties"]
    assert props["Threshold"] == FAILURE_RATIO_PERCENT and props["ComparisonOperator"] == "GreaterThanThreshold"
    assert _metric_names(props) == set(FAILURE_METRICS) | set(SUCCESS_METRICS)
    [returned] = [m for m in props["Metrics"] if m.get("ReturnData")]
    assert "100 * failures / orders" in returned["Expression"]


def test_the_app_metrics_match_the_alarm_namespace() -> None:
    text = (ROOT / "app.py").read_text(encoding="utf-8")
    assert f'Metrics(namespace="{NAMESPACE}", service="{SERVICE}")' in text
