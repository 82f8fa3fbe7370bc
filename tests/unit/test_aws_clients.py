"""``chalicelib/adapters/aws.py``: client profiles, the intake scope and deadline, the error classes.

No moto here: clients are built against a socket that accepts and never answers
(``tests/support/hanging_server.py``) or not called at all; errors are botocore's own, constructed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from chalicelib.adapters import aws
from chalicelib.domain.errors import ConfigurationError, InfrastructureUnavailable, MalformedPayload
from tests.support.hanging_server import hanging_endpoint


@pytest.fixture(autouse=True)
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("INTAKE_DEADLINE_SECONDS", raising=False)
    aws.set_session(boto3.session.Session(region_name="cn-north-1"))
    yield
    aws.set_session(None)


@pytest.fixture()
def hanging(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with hanging_endpoint() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        aws.reset()
        yield url
    aws.reset()


def settings_of(client: Any) -> tuple[float, float, dict[str, Any]]:
    config = client.meta.config
    return config.connect_timeout, config.read_timeout, config.retries


# --- profiles ------------------------------------------------------------------------------------------
def test_the_worker_keeps_its_settings_and_the_intake_gets_short_ones() -> None:
    assert settings_of(aws.client("dynamodb")) == (3.0, 10.0, {"total_max_attempts": 4, "mode": "standard"})
    assert settings_of(aws.client("dynamodb", profile="intake")) == (
        1.0,
        1.5,
        {"total_max_attempts": 2, "mode": "standard"},
    )


def test_clients_are_cached_per_service_and_profile() -> None:
    assert aws.client("sqs") is aws.client("sqs", profile="default")
    assert aws.client("sqs", profile="intake") is aws.client("sqs", profile="intake")
    assert aws.client("sqs") is not aws.client("sqs", profile="intake")


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="no AWS client profile"):
        aws.client("sqs", profile="fast")
    with pytest.raises(ValueError, match="no AWS client profile"), aws.scope("fast"):
        pass


def test_the_intake_timeouts_shrink_with_a_shorter_deadline_so_one_attempt_always_fits() -> None:
    assert (aws.intake_profile(5.0).connect_timeout, aws.intake_profile(5.0).read_timeout) == (1.0, 1.5)
    for deadline in (1.0, 1.5, 2.0, 3.0, 5.0, 30.0):
        profile = aws.intake_profile(deadline)
        assert profile.attempt_seconds <= deadline - aws.INTAKE_RESERVE_SECONDS
        assert profile.total_attempts == 2
    # a longer deadline (the test suite's, a patient deployment's) lengthens the waits, two attempts still fit
    assert aws.intake_profile(30.0).read_timeout > 1.5
    assert 2 * aws.intake_profile(30.0).attempt_seconds <= 30.0 - aws.INTAKE_RESERVE_SECONDS


@pytest.mark.parametrize(("value", "expected"), [("", 5.0), ("3.5", 3.5), ("0.2", 1.0), ("soon", 5.0), ("  ", 5.0)])
def test_the_deadline_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: float) -> None:
    monkeypatch.setenv("INTAKE_DEADLINE_SECONDS", value)
    assert aws.intake_deadline_seconds() == expected


# --- scopes ----------------------------------------------------------------------------------------------
def test_a_scope_gives_its_profile_to_the_clients_that_name_none() -> None:
    with aws.scope("intake"):
        assert aws.client("s3") is aws.client("s3", profile="intake")
        assert aws.client("s3", profile="default") is not aws.client("s3")  # naming one still wins
    assert aws.client("s3") is aws.client("s3", profile="default")


class UseCase:
    """Stands in for the intake use case: records the scope each call ran in."""

    def __init__(self) -> None:
        self.ledger = "the ledger"

    def __call__(self, value: int, *, twice: bool = False) -> tuple[int, Any]:
        return (value * 2 if twice else value), aws._scope.get()


def test_intake_runs_each_call_in_the_intake_scope_with_a_fresh_deadline() -> None:
    use_case = aws.intake(UseCase())
    assert aws.in_scope(use_case) and not aws.in_scope(UseCase())
    assert use_case.ledger == "the ledger"  # attributes are the use case's
    before = time.monotonic()
    value, first = use_case(21, twice=True)
    assert value == 42 and first.profile == "intake"
    assert before + 4.4 <= first.deadline <= time.monotonic() + 4.5  # 5 s less the 0.5 s reserve
    _, second = use_case(1)
    assert second.deadline > first.deadline
    assert aws._scope.get() is None  # nothing leaks out of the call


# --- the deadline, against an AWS that accepts and never answers -----------------------------------------
def test_a_hanging_aws_is_given_up_within_the_deadline(hanging: str) -> None:
    started = time.monotonic()
    with pytest.raises(InfrastructureUnavailable), aws.scope("intake", deadline_seconds=2.0), aws.unavailable("t"):
        aws.client("dynamodb").get_item(TableName="t", Key={"k": {"S": "v"}})
    assert time.monotonic() - started <= 2.0


def test_no_attempt_starts_that_could_end_after_the_deadline(hanging: str) -> None:
    """1 s deadline: 0.5 s for AWS, an attempt may take 0.375 s; 0.3 s gone, none may start."""
    with aws.scope("intake", deadline_seconds=1.0):
        client = aws.client("dynamodb")  # built before the clock starts to matter
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(InfrastructureUnavailable) as info:
            client.get_item(TableName="t", Key={"k": {"S": "v"}})
    assert info.value.code == "intake_deadline"
    assert time.monotonic() - started < 0.2  # refused at once, not after a timeout


def test_without_a_deadline_an_intake_client_still_times_out_on_its_own(hanging: str) -> None:
    started = time.monotonic()
    with pytest.raises(InfrastructureUnavailable), aws.unavailable("t"):
        aws.client("dynamodb", profile="intake").get_item(TableName="t", Key={"k": {"S": "v"}})
    assert time.monotonic() - started < 2 * aws.intake_profile().attempt_seconds + 1.5  # two attempts + backoff


# --- errors ----------------------------------------------------------------------------------------------
def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} happened"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutItem",
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ValidationException"), aws.RequestRefused),  # a key over 2,048 bytes, an item over 400 KB
        (client_error("InvalidMessageContents"), aws.RequestRefused),
        (client_error("InvalidParameterValue"), aws.RequestRefused),
        (client_error("ProvisionedThroughputExceededException"), InfrastructureUnavailable),
        (client_error("ThrottlingException"), InfrastructureUnavailable),
        (client_error("InternalServerError", 500), InfrastructureUnavailable),
        (client_error("SomethingNew", 503), InfrastructureUnavailable),  # any 5xx: AWS's side
        (client_error("AccessDeniedException"), ConfigurationError),
        (client_error("AWS.SimpleQueueService.NonExistentQueue"), ConfigurationError),
        (client_error("UnrecognizedClientException"), ConfigurationError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), InfrastructureUnavailable),
        (ParamValidationError(report="MessageBody: invalid type"), aws.RequestRefused),
    ],
)
def test_aws_errors_are_classified(error: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected), aws.unavailable("t"):
        raise error


def test_a_refused_request_is_a_malformed_payload_answered_422() -> None:
    with pytest.raises(MalformedPayload) as info, aws.unavailable("ledger"):
        raise client_error("ValidationException")
    assert info.value.code == "request_refused" and "ledger" in info.value.message


@pytest.mark.parametrize(
    "code", ["ConditionalCheckFailedException", "ResourceNotFoundException", "NoSuchKey", "404", "SomethingNew"]
)
def test_codes_the_callers_handle_and_unknown_ones_pass_through(code: str) -> None:
    with pytest.raises(ClientError), aws.unavailable("t"):
        raise client_error(code)
