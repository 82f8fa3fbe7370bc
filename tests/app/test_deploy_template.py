"""`make package`: chalice package + the merge template, linted by cfn-lint (a lint error fails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import MAX_RECEIVE_COUNT, QUEUE_VISIBILITY_SECONDS, RETRY_SCHEDULE
from infra.package import FUNCTION_GRANTS, package, role_id
from infra.resources import MIN_RETENTION_DAYS, resource_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("package") / "prod"
    path: Path = package("prod", out, lint=True)  # raises SystemExit with cfn-lint's report on any finding
    return json.loads(path.read_text())


def test_every_resource_of_the_definitions_is_in_the_template(template: dict[str, Any]) -> None:
    assert set(resource_set().resources) <= set(template["Resources"])


def test_the_worker_reports_partial_batch_failures_from_the_templates_queue(template: dict[str, Any]) -> None:
    source = template["Resources"]["Worker"]["Properties"]["Events"]["WorkerSqsEventSource"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Queue"] == {"Fn::GetAtt": ["IssueQueue", "Arn"]}
    timeout = template["Resources"]["Worker"]["Properties"]["Timeout"]
    # A live invocation never loses its messages (the worker hides each one itself for as long as it
    # needs), and a crashed one's come back within about 1.5 × the timeout.
    assert timeout < QUEUE_VISIBILITY_SECONDS <= 2 * timeout
    redrive = template["Resources"]["IssueQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT
    # The dead-letter queue only after the retry schedule's horizon (≥ 24 h) of retries.
    assert RETRY_SCHEDULE.elapsed(MAX_RECEIVE_COUNT - 1) >= 24 * 3600


def test_the_sweeper_runs_every_minute_with_least_privilege(template: dict[str, Any]) -> None:
    events = template["Resources"]["Sweeper"]["Properties"]["Events"]
    assert events == {"SweeperEvent": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}}
    policy = template["Resources"]["SweeperRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert {s["Sid"] for s in policy["Statement"]} == {"Logs", "Tracing", "Ledger", "SendToQueue", "DataKey"}


def test_retention_is_at_least_five_years_and_object_lock_is_on(template: dict[str, Any]) -> None:
    assert template["Parameters"]["RetentionDays"]["MinValue"] >= MIN_RETENTION_DAYS
    for bucket in ("ArchiveBucket", "InvoiceBucket"):
        props = template["Resources"][bucket]["Properties"]
        assert props["ObjectLockEnabled"] is True
        assert props["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
        assert (
            props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
                "SSEAlgorithm"
            ]
            == "aws:kms"
        )


def test_each_function_role_grants_only_its_own_needs_and_nothing_on_star_but_xray(template: dict[str, Any]) -> None:
    for function_id, grants in FUNCTION_GRANTS.items():
        policy = template["Resources"][role_id(function_id)]["Properties"]["Policies"]
        assert len(policy) == 1
        statements = policy[0]["PolicyDocument"]["Statement"]
        assert {s["Sid"] for s in statements} == {"Logs", "Tracing", *grants}
        for s in statements:
            assert not any(a.endswith(":*") for a in s["Action"]), s
            if s["Resource"] == "*":
                assert s["Sid"] == "Tracing"


def test_functions_receive_every_resource_name_through_the_environment(template: dict[str, Any]) -> None:
    envs = {b.env for b in resource_set().bindings.values()}
    for function_id in FUNCTION_GRANTS:
        variables = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
        assert envs <= set(variables)
        assert variables["STAGE"] == "prod"
