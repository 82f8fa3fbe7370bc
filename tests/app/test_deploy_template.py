"""`make package`: chalice package + the merge template, linted by cfn-lint (a lint error fails)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import MAX_RECEIVE_COUNT, QUEUE_VISIBILITY_SECONDS, RETRY_SCHEDULE
from infra.package import FUNCTION_GRANTS, role_id
from infra.resources import MIN_RETENTION_DAYS, resource_set

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("package")]


@pytest.fixture(scope="module")
def template(packaged: Callable[..., Path]) -> dict[str, Any]:
    path = packaged("prod", lint=True)  # raises SystemExit with cfn-lint's report on any finding
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


def test_each_function_role_grants_only_its_own_needs_and_nothing_on_star_but_xray_and_sms(
    template: dict[str, Any],
) -> None:
    for function_id, grants in FUNCTION_GRANTS.items():
        policy = template["Resources"][role_id(function_id)]["Properties"]["Policies"]
        assert len(policy) == 1
        statements = policy[0]["PolicyDocument"]["Statement"]
        assert {s["Sid"] for s in statements} == {"Logs", "Tracing", *grants}
        for s in statements:
            assert not any(a.endswith(":*") for a in s["Action"]), s
            if s["Resource"] == "*":  # X-Ray, and SNS SMS to a phone number, have no resource-level grant
                assert s["Sid"] in {"Tracing", "SendSms"}


def test_functions_receive_every_resource_name_through_the_environment(template: dict[str, Any]) -> None:
    envs = {b.env for b in resource_set().bindings.values()}
    for function_id in FUNCTION_GRANTS:
        variables = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
        assert envs <= set(variables)
        assert variables["STAGE"] == "prod"


def test_api_gateways_own_answers_are_in_the_projects_error_shape(template: dict[str, Any]) -> None:
    """Deployed, a path deeper than the catch-all routes never reaches the app: API Gateway answers it
    (403 MISSING_AUTHENTICATION_TOKEN, ``{"message": …}`` by default). In the API's definition — so
    SAM's stage deployment carries them — it is the app's 404 ``not_found``, and every other gateway
    error ``{"error": code, "message": …}``."""
    api = template["Resources"]["RestAPI"]
    assert api["Type"] == "AWS::Serverless::Api"
    responses = api["Properties"]["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    assert {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    assert api["Properties"]["DefinitionBody"]["paths"]  # merged into Chalice's own definition, not instead

    def answered(response_type: str, gateway_message: str) -> tuple[str | None, dict[str, Any]]:
        """What API Gateway sends: the template with its one substitution (a JSON string) made."""
        entry = responses[response_type]
        body = entry["responseTemplates"]["application/json"]
        return entry.get("statusCode"), json.loads(
            body.replace("$context.error.messageString", json.dumps(gateway_message))
        )

    status, body = answered("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
    assert status == "404" and body == {"error": "not_found", "message": "no route for this path"}
    for response_type, code in (("DEFAULT_4XX", "request_refused"), ("DEFAULT_5XX", "gateway_error")):
        status, body = answered(response_type, 'Internal server "error"')
        assert status is None and body == {"error": code, "message": 'Internal server "error"'}
    for response_type in responses:  # every one parses to the shape, its status kept unless named
        status, body = answered(response_type, "m")
        assert set(body) == {"error", "message"} and body["error"].islower(), response_type


def test_every_queue_consumer_reads_its_own_queue_and_reports_batch_failures(template: dict[str, Any]) -> None:
    """The worker reads the issue queue, the deliverer the delivery queue: each event source points at
    the template's own queue (not a name Chalice derives), with ReportBatchItemFailures."""
    from infra.package import QUEUE_CONSUMERS

    for function_id, (event_id, queue) in QUEUE_CONSUMERS.items():
        source = template["Resources"][function_id]["Properties"]["Events"][event_id]["Properties"]
        assert source["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    grants = {
        s["Sid"]
        for s in template["Resources"]["WorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    }
    assert "SendToDeliverQueue" in grants  # the worker hands issued invoices to delivery
