"""The CloudWatch alarms of the deploy template, one per alert the service raises (docs/operator.md).

Each alarm publishes to ``AlarmTopic`` (the SNS topic the services' own alerts go to), so an e-mail or
SMS subscriber gets both the service's detailed alert and the alarm that backs it up. The metrics are
the Powertools metrics the functions emit (namespace :data:`NAMESPACE`, dimension ``service``), and
the issue DLQ's own SQS metric (``DeadLetterAlarm`` in ``infra/resources.py``).

- ``WorkerFailureRatioAlarm``: failed / finished orders of the worker (metric math over
  :data:`FAILURE_METRICS` and :data:`SUCCESS_METRICS`) above :data:`FAILURE_RATIO_PERCENT` % in 15
  minutes, once at least :data:`FAILURE_RATIO_MIN_ORDERS` orders finished;
- ``StuckOrdersAlarm``: ``SweptOrders`` (the sweeper re-queued overdue records) in each of 3
  consecutive 5-minute periods;
- ``TaxAuthFailedAlarm``: any ``TaxAuthFailed`` in 5 minutes;
- ``RedFormNearExpiryAlarm``: any ``RedFormNearExpiry`` or ``RedFormExpired`` in an hour;
- ``ManifestVerifyFailedAlarm``: any ``ManifestVerifyFailed`` (the daily manifest job) in a day.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "EInvoice"
SERVICE = "einvoice"
#: The worker's failure ratio (failed, auth-failed, blocked, given up over all outcomes) that alarms.
FAILURE_RATIO_PERCENT = 5
#: Below this many finished orders in the window, a ratio means little: no alarm.
FAILURE_RATIO_MIN_ORDERS = 20
#: What the worker counts as a failure, and as an outcome (chalicelib/services/settle.py ``metric``).
FAILURE_METRICS = ("InvoiceFailed", "TaxAuthFailed", "OrderBlocked", "OrderGaveUp")
SUCCESS_METRICS = ("InvoiceIssued",)
_ACTIONS = {"AlarmActions": [{"Ref": "AlarmTopic"}], "OKActions": [{"Ref": "AlarmTopic"}]}


def _dimensions() -> list[dict[str, str]]:
    return [{"Name": "service", "Value": SERVICE}]


def _count_alarm(description: str, metric: str, *, period: int, periods: int = 1) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": NAMESPACE,
            "MetricName": metric,
            "Dimensions": _dimensions(),
            "Statistic": "Sum",
            "Period": period,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            **_ACTIONS,
        },
    }


def _stat(metric_id: str, metric: str, period: int) -> dict[str, Any]:
    return {
        "Id": metric_id,
        "ReturnData": False,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": _dimensions()},
            "Period": period,
            "Stat": "Sum",
        },
    }


def _failure_ratio() -> dict[str, Any]:
    period = 900
    failed = [f"f{i}" for i in range(len(FAILURE_METRICS))]
    ok = [f"s{i}" for i in range(len(SUCCESS_METRICS))]
    metrics = [_stat(i, m, period) for i, m in zip(failed, FAILURE_METRICS, strict=True)]
    metrics += [_stat(i, m, period) for i, m in zip(ok, SUCCESS_METRICS, strict=True)]
    fails = " + ".join(f"FILL({i}, 0)" for i in failed)
    total = " + ".join(f"FILL({i}, 0)" for i in failed + ok)
    metrics += [
        {"Id": "failures", "Expression": fails, "ReturnData": False, "Label": "failed"},
        {"Id": "orders", "Expression": total, "ReturnData": False, "Label": "finished"},
        {
            "Id": "ratio",
            "Expression": f"IF(orders >= {FAILURE_RATIO_MIN_ORDERS}, 100 * failures / orders, 0)",
            "ReturnData": True,
            "Label": "failure ratio (%)",
        },
    ]
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": (
                f"More than {FAILURE_RATIO_PERCENT} % of the orders the worker finished in 15 minutes failed "
                "(refused, credentials refused, blocked or given up): docs/operator.md#alarms."
            ),
            "Metrics": metrics,
            "EvaluationPeriods": 1,
            "Threshold": FAILURE_RATIO_PERCENT,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            **_ACTIONS,
        },
    }


def _red_forms() -> dict[str, Any]:
    period = 3600
    alarm = _count_alarm("", "RedFormNearExpiry", period=period)
    props = alarm["Properties"]
    for key in ("Namespace", "MetricName", "Dimensions", "Statistic", "Period"):
        props.pop(key)
    props["AlarmDescription"] = (
        "A red confirmation form is close to its 72-hour expiry, or expired, without the buyer's "
        "confirmation: docs/operator.md#alarms."
    )
    props["Metrics"] = [
        _stat("near", "RedFormNearExpiry", period),
        _stat("expired", "RedFormExpired", period),
        {"Id": "forms", "Expression": "FILL(near, 0) + FILL(expired, 0)", "ReturnData": True, "Label": "forms"},
    ]
    return alarm


def alarms() -> dict[str, dict[str, Any]]:
    """The alarms, by logical id (``DeadLetterAlarm`` stays in ``infra/resources.py``)."""
    return {
        "WorkerFailureRatioAlarm": _failure_ratio(),
        "StuckOrdersAlarm": _count_alarm(
            "Records are past their next check: the sweeper re-queued overdue records in each of 3 "
            "consecutive 5-minute periods (a worker or queue problem): docs/operator.md#alarms.",
            "SweptOrders",
            period=300,
            periods=3,
        ),
        "TaxAuthFailedAlarm": _count_alarm(
            "The tax platform refused a store's credentials (the order is failed_auth and retried): "
            "docs/operator.md#alarms.",
            "TaxAuthFailed",
            period=300,
        ),
        "RedFormNearExpiryAlarm": _red_forms(),
        "ManifestVerifyFailedAlarm": _count_alarm(
            "A daily archive manifest failed verification (an object changed, missing or added, or the "
            "chain broken): docs/operator.md#alarms.",
            "ManifestVerifyFailed",
            period=86400,
        ),
    }
