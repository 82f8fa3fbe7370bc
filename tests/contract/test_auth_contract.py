"""One contract, two implementations each: the credential store and the dashboard counters on DynamoDB
(moto server) and their in-memory fakes (``tests/support/fake_auth.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain.counters import CounterDelta
from chalicelib.services.auth import ApiKeyRecord, OperatorRecord, SessionRecord
from tests.support.fake_auth import FakeAuthStore, FakeCounters


@pytest.fixture(scope="module")
def ledger_table(moto_url: str) -> Iterator[str]:
    """A bare ledger table (the deploy template's key schema) on the moto server for the module."""
    import boto3

    from chalicelib.adapters import aws
    from infra.resources import resource_set

    session = boto3.session.Session(region_name="cn-north-1")
    spec = resource_set().resources["LedgerTable"]["Properties"]
    name = f"auth-contract-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        aws.set_session(session)
        session.client("dynamodb", endpoint_url=moto_url).create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": k["AttributeName"], "AttributeType": "S"} for k in spec["KeySchema"]
            ],
            KeySchema=spec["KeySchema"],
        )
        yield name
        aws.set_session(None)


@pytest.fixture(params=["dynamodb", "fake"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "fake":
        return FakeAuthStore()
    from chalicelib.adapters.auth_store import AuthStore

    return AuthStore(request.getfixturevalue("ledger_table"))


@pytest.fixture(params=["dynamodb", "fake"])
def counters(request: pytest.FixtureRequest) -> Any:
    if request.param == "fake":
        return FakeCounters()
    from chalicelib.adapters.counters import DynamoCounters

    return DynamoCounters(request.getfixturevalue("ledger_table"))


def _id() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


def test_api_key_round_trip(store: Any) -> None:
    sid = _id()
    assert store.get_api_key(sid) is None
    store.put_api_key(ApiKeyRecord(sid, "a" * 64, 1000.0))
    assert store.get_api_key(sid) == ApiKeyRecord(sid, "a" * 64, 1000.0)
    store.put_api_key(ApiKeyRecord(sid, "b" * 64, 2000.0, "a" * 64, 3000.0))
    assert store.get_api_key(sid) == ApiKeyRecord(sid, "b" * 64, 2000.0, "a" * 64, 3000.0)
    store.put_api_key(ApiKeyRecord(sid, "c" * 64, 4000.0))  # a rotation without grace drops the previous
    assert store.get_api_key(sid) == ApiKeyRecord(sid, "c" * 64, 4000.0)


def test_operator_round_trip(store: Any) -> None:
    name = f"op-{uuid.uuid4().hex[:6]}"
    assert store.get_operator(name) is None
    record = OperatorRecord(name, "scrypt$x", frozenset({"s1", "s2"}), 5.0)
    store.put_operator(record)
    assert store.get_operator(name) == record


def test_sessions(store: Any) -> None:
    h = uuid.uuid4().hex
    assert store.get_session(h) is None
    record = SessionRecord(h, "op", frozenset({"*"}), "csrf-token", 9000.0)
    store.put_session(record)
    assert store.get_session(h) == record
    store.delete_session(h)
    assert store.get_session(h) is None
    store.delete_session(h)  # deleting twice is fine


def test_login_failure_windows(store: Any) -> None:
    name = f"op-{uuid.uuid4().hex[:6]}"
    assert store.login_failures(name, 7) == 0
    assert store.add_login_failure(name, 7, expires_at=100.0) == 1
    assert store.add_login_failure(name, 7, expires_at=100.0) == 2
    assert store.login_failures(name, 7) == 2
    assert store.login_failures(name, 8) == 0


def test_counters_add_and_read_a_range(counters: Any) -> None:
    sid = _id()
    counters.add(CounterDelta(sid, "2026-12-01", "issued", 8800, (("307", 1, 8800),), latency="30"))
    counters.add(CounterDelta(sid, "2026-12-01", "issued", 1200, (("307", 2, 1000), ("301", 1, 200)), latency="30"))
    counters.add(CounterDelta(sid, "2026-12-01", "failed", exception_key=f"{sid}:standard:1"))
    counters.add(CounterDelta(sid, "2026-12-02", "rejected", exception_key=f"{sid}:standard:2"))
    counters.add(CounterDelta(sid, "2026-12-05", "issued", 100, (), latency="inf"))
    counters.add(CounterDelta("other" + sid, "2026-12-01", "issued", 5))
    days = counters.days(sid, "2026-12-01", "2026-12-02")
    assert [d.day for d in days] == ["2026-12-01", "2026-12-02"]
    first = days[0]
    assert first.counts == {"issued": 2, "failed": 1}
    assert first.fen_issued == 10000
    assert first.tax_codes == {"307": (3, 9800), "301": (1, 200)}
    assert first.latency == {"30": 2}
    assert first.exception_keys == {f"{sid}:standard:1"}
    assert days[1].counts == {"rejected": 1} and days[1].fen_issued == 0
    assert counters.days(sid, "2026-11-01", "2026-11-30") == []
