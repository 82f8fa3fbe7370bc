"""The batch worker (``BatchWorker``) from fakes only: batched checks, remaining time, the heartbeat,
dead letters, pre-claim errors, live leases, and the retry schedule through a two-hour outage.

The same rig as ``test_issue_flow.py`` (``tests/support/fake_platform.py``); the queue is SQS in
virtual time (``tests/support/virtual_queue.py``), so hours pass in milliseconds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.config import RETRY_SCHEDULE
from chalicelib.domain.errors import InfrastructureUnavailable
from chalicelib.domain.order_keys import serial_for
from chalicelib.domain.order_state import OrderStatus
from chalicelib.taxapi.base import Capabilities, HttpRequest
from tests.support.fake_platform import ENDPOINT_B, Fault, Rig, build

S = OrderStatus


@pytest.fixture()
def rig() -> Rig:
    return build()


def lambda_record(body: str, receives: int = 1, mid: str = "m-raw") -> dict[str, Any]:
    return {
        "messageId": mid,
        "receiptHandle": f"{mid}#{receives}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receives)},
    }


def orders(rig: Rig, n: int, *, store: str = "shop-a", prefix: str = "B") -> list[str]:
    keys = [rig.order(f"{prefix}-{i}", store=store) for i in range(n)]
    for key in keys:
        rig.queue.send(key, "paid")
    rig.queue.delays.clear()  # from here on: what the worker sent
    return keys


def requeued(rig: Rig) -> list[tuple[str, int]]:
    return [(body["order_key"], delay) for body, delay in rig.queue.delays if "check" not in body]


def outage_until(rig: Rig, ends: float) -> Callable[[], None]:
    """A tick that ends the platform's outage at ``ends`` (virtual time)."""

    def tick() -> None:
        if rig.clock.now >= ends:
            rig.a.outage = None

    return tick


# --- 5. checks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("batch", "queries"), [(50, 1), (2, 2)], ids=["one-query", "chunked-by-capability"])
def test_accepted_orders_of_one_batch_and_store_make_one_check_and_one_query(batch: int, queries: int) -> None:
    rig = build(capabilities=Capabilities(max_query_batch=batch))
    keys = orders(rig, 3)
    other = orders(rig, 1, store="shop-b")

    result, _ = rig.handle()

    assert result.failed == [] and all(rig.status(k) == "issuing" for k in keys + other)
    checks = {c["store_id"]: c for c in rig.queue.checks()}
    assert set(checks) == {"shop-a", "shop-b"}  # one check message per store
    entries = checks["shop-a"]["check"]
    assert [e["order_key"] for e in entries] == keys
    assert [e["serial"] for e in entries] == [serial_for(k) for k in keys]
    assert [e["claim_id"] for e in entries] == [rig.fields(k)["claim_id"] for k in keys]
    assert {e["sends"] for e in entries} == {"1"} and checks["shop-a"]["pin"] == rig.pin("shop-a")
    assert {d for body, d in rig.queue.delays if "check" in body} == {rig.default_first_check}
    assert rig.transport.ops() == ["issue"] * 4

    rig.clock.advance(rig.default_first_check)
    rig.handle()

    serials = {serial_for(k) for k in keys}
    shop_a = [s.serials for s in rig.transport.log if s.op == "query" and serials & set(s.serials)]
    assert len(shop_a) == queries and sum(shop_a, ()) == tuple(serial_for(k) for k in keys)
    assert rig.transport.ops().count("query") == queries + 1
    assert all(rig.status(k) == "issued" and rig.fields(k)["sends"] == 1 for k in keys + other)
    assert rig.queue.messages == {}
    rig.assert_exactly_once(*keys, *other)


def test_a_first_check_of_zero_checks_in_the_same_invocation_without_a_message() -> None:
    rig = build(first_check=0)
    keys = orders(rig, 3)

    result, _ = rig.handle()

    assert result.failed == [] and rig.queue.checks() == [] and rig.queue.messages == {}
    assert all(rig.status(k) == "issued" for k in keys)
    assert rig.transport.ops() == ["issue", "issue", "issue", "query"]
    rig.assert_exactly_once(*keys)


def test_a_first_check_of_zero_without_time_left_becomes_a_message() -> None:
    rig = build(first_check=0)
    keys = orders(rig, 3)
    rig.transport.every = lambda _request: rig.clock.advance(13)  # 3 × 13 s: 21 s left < the minimum

    rig.handle()

    assert [len(c["check"]) for c in rig.queue.checks()] == [3] and "query" not in rig.transport.ops()
    rig.transport.every = None
    rig.settle(*keys)
    assert all(rig.status(k) == "issued" for k in keys)
    rig.assert_exactly_once(*keys)


@pytest.mark.parametrize("first_check", [3, 0])
def test_still_pending_at_the_check_is_released_as_accepted_and_requeued(first_check: int) -> None:
    rig = build(first_check=first_check)
    rig.a.pending_queries = 1
    keys = orders(rig, 2)
    rig.handle()
    rig.clock.advance(first_check)
    if first_check:
        rig.handle()

    delay = rig.schedule.delay(1)
    assert requeued(rig) == [(k, delay) for k in keys]
    for key in keys:
        f = rig.fields(key)
        assert f["status"] == "accepted" and f["checks"] == 1 and f["sends"] == 1 and f.get("retries", 0) == 0
        assert "claim_id" not in f and "lease_until" not in f and "due_at" in f
        assert f["provider_ref"].startswith("2531-REF-")
    rig.settle(*keys)
    assert all(rig.status(k) == "issued" for k in keys)
    assert rig.transport.ops().count("issue") == 2
    rig.assert_exactly_once(*keys)


def test_not_found_after_acceptance_is_ambiguous_and_queried_first(rig: Rig) -> None:
    keys = orders(rig, 2)
    rig.handle()
    rig.a.fail_next("query", Fault.NOT_FOUND)
    rig.clock.advance(rig.default_first_check)
    rig.handle()

    for key in keys:
        f = rig.fields(key)
        assert f["status"] == "ambiguous" and f["retries"] == 1 and f["sends"] == 1 and "claim_id" not in f
    assert requeued(rig) == [(k, rig.schedule.delay(1)) for k in keys]
    rig.settle(*keys)
    assert all(rig.status(k) == "issued" for k in keys)
    assert rig.transport.ops().count("issue") == 2 and rig.a.duplicates == 0
    assert all(rig.fields(k)["sends"] == 1 for k in keys)
    rig.assert_exactly_once(*keys)


CHECK_FAILURES = {
    "busy": lambda rig: rig.a.fail_next("query", Fault.BUSY),
    "unreachable": lambda rig: rig.a.fail_next("query", Fault.UNREACHABLE),
    "timeout": lambda rig: rig.a.fail_next("query", Fault.TIMEOUT),
    "garbled": lambda rig: rig.a.fail_next("query", Fault.GARBLED),
    "refused": lambda rig: rig.a.fail_next("query", Fault.REFUSE),
    "auth": lambda rig: rig.a.fail_next("query", Fault.AUTH),
    "credentials": lambda rig: rig.script.arm("credentials", InfrastructureUnavailable("secrets down")),
}


@pytest.mark.parametrize("failure", list(CHECK_FAILURES))
def test_a_failing_check_query_hands_the_orders_to_their_own_attempts(rig: Rig, failure: str) -> None:
    keys = orders(rig, 2)
    rig.handle()
    CHECK_FAILURES[failure](rig)
    rig.clock.advance(rig.default_first_check)

    result, [message] = rig.handle()

    assert "check" in json.loads(message["body"])
    assert result.failed == []  # the check message is done with
    assert all(rig.status(k) == "accepted" for k in keys)  # released: each order queries first alone
    assert sorted(requeued(rig)) == sorted((k, rig.schedule.delay(1)) for k in keys)
    assert all(rig.fields(k)["checks"] == 1 for k in keys)
    rig.settle(*keys)
    assert all(rig.status(k) == "issued" for k in keys)
    rig.assert_exactly_once(*keys)


def test_a_failing_check_hands_each_order_to_its_own_schedule(rig: Rig) -> None:
    """The check message is done with; each order waits as ``accepted`` and backs off on its own
    counters (10 s, 30 s, 60 s …) instead of the check retrying for leases that expire anyway."""
    [key] = orders(rig, 1)
    rig.handle()
    rig.a.fail_next("query", Fault.BUSY, Fault.BUSY, Fault.BUSY)
    rig.clock.advance(rig.default_first_check)

    result, [check] = rig.handle()

    assert "check" in json.loads(check["body"]) and result.failed == []
    assert rig.status(key) == "accepted"
    assert requeued(rig) == [(key, rig.schedule.delay(1))]
    waits = [rig.schedule.delay(1)]
    for _ in range(2):  # the order's own attempts: query first, refused again
        rig.clock.advance(waits[-1])
        _, [message] = rig.handle()
        [(_, wait)] = [h for h in rig.queue.hidden if h[0] == message["receiptHandle"]]
        waits.append(wait)
    assert waits == [rig.schedule.delay(1), rig.schedule.delay(2), rig.schedule.delay(3)]
    rig.settle(key)
    assert rig.status(key) == "issued"
    rig.assert_exactly_once(key)


def test_a_two_hour_query_outage_after_acceptance_dead_letters_nothing(rig: Rig) -> None:
    keys = orders(rig, 2)
    rig.handle()
    rig.a.outage = Fault.BUSY  # the platform accepted both; now every query is refused for 2 hours

    rig.settle(*keys, sweeper=True, on_tick=outage_until(rig, rig.clock.now + 2 * 3600))

    assert all(rig.status(k) == "issued" for k in keys)
    rig.assert_exactly_once(*keys)
    assert not rig.queue.dead


def test_a_failing_immediate_check_hands_the_orders_to_the_schedule() -> None:
    rig = build(first_check=0)
    keys = orders(rig, 2)
    rig.a.fail_next("query", Fault.BUSY)

    rig.handle()

    assert [d for body, d in rig.queue.delays if "check" in body] == []  # no check message
    assert sorted(requeued(rig)) == sorted((k, rig.schedule.delay(1)) for k in keys)
    assert all(rig.status(k) == "accepted" for k in keys)


def test_a_check_whose_store_configuration_changed_sends_no_query(rig: Rig) -> None:
    keys = orders(rig, 2)
    rig.handle()
    rig.move(endpoint=ENDPOINT_B)
    sent = len(rig.transport.log)
    rig.clock.advance(rig.default_first_check)

    result, _ = rig.handle()

    assert result.failed == [] and rig.transport.log[sent:] == []
    for key in keys:
        f = rig.fields(key)
        assert f["status"] == "accepted" and "configuration changed" in f["last_error"] and "claim_id" not in f
    assert requeued(rig) == [(k, rig.schedule.delay(1)) for k in keys]

    rig.settle(*keys)  # each order: an attempt that blocks it for an operator

    assert all(rig.status(k) == "blocked" for k in keys) and len(rig.recorder.alerts) == 2
    assert rig.transport.log[sent:] == []  # never a request to either platform
    assert all(len(rig.a.invoices_of(k)) == 1 and not rig.b.invoices_of(k) for k in keys)


def test_a_lost_check_message_leaves_the_orders_to_the_sweeper(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = orders(rig, 2)

    def unavailable(*args: Any, **kwargs: Any) -> str:
        raise InfrastructureUnavailable("issue queue unavailable")

    monkeypatch.setattr(rig.queue, "send_check", unavailable)
    result, _ = rig.handle()
    assert result.failed == [] and all(rig.status(k) == "issuing" for k in keys)  # the leases cover them
    monkeypatch.undo()

    rig.settle(*keys, sweeper=True)

    assert all(rig.status(k) == "issued" for k in keys)
    assert rig.transport.ops().count("issue") == 2  # the takeovers queried first and found them
    rig.assert_exactly_once(*keys)


# --- 6. the batch worker -----------------------------------------------------------------------------
def test_no_time_left_hands_every_record_back_unstarted(rig: Rig) -> None:
    keys = orders(rig, 3)

    result, batch = rig.handle(remaining_ms=int((rig.min_attempt - 0.5) * 1000))

    assert result.failed == [r["messageId"] for r in batch] and result.outcomes == {}
    assert rig.queue.hidden == [(r["receiptHandle"], 0) for r in batch]
    assert "transition:claim" not in rig.ledger.calls and rig.transport.log == []
    assert all(rig.status(k) == "queued" for k in keys)


def test_time_running_out_mid_batch_hands_back_the_rest(rig: Rig) -> None:
    keys = orders(rig, 4)
    rig.transport.every = lambda _request: rig.clock.advance(20)  # a slow platform: 20 s a call

    result, batch = rig.handle(remaining_ms=60_000)

    rest = batch[2:]  # 60 s: two calls of 20 s leave 20 s, less than one call needs
    assert result.failed == [r["messageId"] for r in rest] and set(result.outcomes) == {
        r["messageId"] for r in batch[:2]
    }
    assert [(r["receiptHandle"], 0) for r in rest] == [h for h in rig.queue.hidden if h[1] == 0]
    assert [rig.status(k) for k in keys] == ["issuing", "issuing", "queued", "queued"]
    assert [len(c["check"]) for c in rig.queue.checks()] == [2]


def test_a_heartbeat_extends_a_late_records_visibility() -> None:
    """With a visibility shorter than the invocation (the production values never need it: 90 s
    visibility, 60 s timeout), a record started late has its message hidden again before it starts."""
    rig = build(visibility=40)
    orders(rig, 4)
    seen: list[list[tuple[str, int]]] = []

    def slow(_request: HttpRequest) -> None:
        seen.append(list(rig.queue.hidden))
        rig.clock.advance(10)

    rig.transport.every = slow

    result, batch = rig.handle(remaining_ms=60_000)

    receipts = [r["receiptHandle"] for r in batch]
    beats = [h for h in rig.queue.hidden if h[1] == 40]
    # started at 0 s, 10 s: in time; at 20 s and 30 s: 23 s would run past the 40 s visibility
    assert beats == [(receipts[2], 40), (receipts[3], 40)]
    assert (receipts[2], 40) in seen[2] and (receipts[2], 40) not in seen[1]  # before its first call
    assert result.failed == []


MALFORMED = [
    "not json",
    "[1, 2]",
    '"text"',
    "{}",
    '{"order_key": ""}',
    '{"order_key": 7}',
    '{"order_key": "shop-a:shopify:1", "kind": "voided"}',
    '{"check": [], "store_id": "shop-a", "pin": "p"}',
    '{"check": [{"order_key": "k"}], "store_id": "shop-a", "pin": "p"}',
    '{"check": [{"order_key": "k", "claim_id": "c", "serial": "s", "sends": "x"}], "store_id": "shop-a", "pin": "p"}',
    '{"check": [{"order_key": "k", "claim_id": "c", "serial": "s"}], "store_id": "shop-a", "pin": "p", "round": 0}',
    '{"check": [{"order_key": "k", "claim_id": "c", "serial": "s"}], "store_id": "shop-a", "pin": "p", "round": true}',
    '{"check": [{"order_key": "k", "claim_id": "c", "serial": "s"}], "pin": "p"}',
]


@pytest.mark.parametrize("body", MALFORMED)
def test_a_malformed_message_is_dead_lettered_at_once(rig: Rig, body: str) -> None:
    result = rig.worker.handle([lambda_record(body)], lambda: 60_000)

    assert result.failed == [] and result.outcomes == {}
    assert rig.queue.dead == [body] and rig.queue.hidden == []
    assert rig.ledger.calls == [] and rig.transport.log == [] and not rig.recorder.alerts


def test_a_malformed_message_that_cannot_be_dead_lettered_stays(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(body: str) -> None:
        raise InfrastructureUnavailable("dead-letter queue unavailable")

    monkeypatch.setattr(rig.queue, "dead_letter", unavailable)

    result = rig.worker.handle([lambda_record("not json")], lambda: 60_000)

    assert result.failed == ["m-raw"] and rig.queue.hidden == [("m-raw#1", rig.schedule.delay(1))]


HORIZON = RETRY_SCHEDULE.attempts_within(RETRY_SCHEDULE.horizon)  # 100 releases fit in 24 h


def _at_counter(rig: Rig, how: str, count: int) -> str:
    """A record whose next release is its ``count + 1``-th: busy (retries), failed_auth (retries),
    still pending at a re-check (checks)."""
    if how == "pending":
        rig.a.pending_queries = 10**6
        key = rig.order(status=S.ACCEPTED, checks=count, sends=1)
        rig.a.put_invoice(key, status="pending")
        return key
    rig.a.fail_next("issue", Fault.BUSY if how == "busy" else Fault.AUTH)
    return rig.order(status=S.RETRYING if how == "busy" else S.FAILED_AUTH, retries=count, sends=count)


@pytest.mark.parametrize("how", ["busy", "auth", "pending"])
def test_an_order_past_the_retry_horizon_is_dead_lettered_with_an_alert(rig: Rig, how: str) -> None:
    key = _at_counter(rig, how, HORIZON)
    rig.queue.send(key, "paid")

    result, [message] = rig.handle()

    assert result.failed == [] and rig.queue.messages == {}
    assert rig.queue.dead == [message["body"]] and result.outcomes[message["messageId"]].dead_letter
    [(subject, text)] = rig.recorder.alerts
    assert key in subject and "retry horizon" in subject and f"einvoice orders retry {key}" in text
    f = rig.fields(key)
    assert "gave_up_at" in f and "due_at" not in f and "claim_id" not in f
    assert f["checks" if how == "pending" else "retries"] == HORIZON + 1
    assert "OrderGaveUp" in rig.recorder.metrics


@pytest.mark.parametrize("how", ["busy", "auth", "pending"])
def test_the_last_release_within_the_horizon_is_hidden_on_the_schedule(rig: Rig, how: str) -> None:
    key = _at_counter(rig, how, HORIZON - 1)
    rig.queue.send(key, "paid")

    result, [message] = rig.handle()

    assert result.failed == [message["messageId"]] and not rig.queue.dead and not rig.recorder.alerts
    assert rig.queue.hidden == [(message["receiptHandle"], rig.schedule.delay(HORIZON))]
    assert rig.schedule.delay(HORIZON) == rig.schedule.cap and "gave_up_at" not in rig.fields(key)


def test_a_gave_up_order_whose_dead_letter_fails_is_kept(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _at_counter(rig, "busy", HORIZON)
    rig.queue.send(key, "paid")

    def unavailable(body: str) -> None:
        raise InfrastructureUnavailable("dead-letter queue unavailable")

    monkeypatch.setattr(rig.queue, "dead_letter", unavailable)

    result, [message] = rig.handle()

    assert result.failed == [message["messageId"]]
    assert rig.queue.hidden == [(message["receiptHandle"], rig.schedule.cap)]


def _ledger_down(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise InfrastructureUnavailable("ledger unavailable")

    monkeypatch.setattr(rig.ledger, "transition", unavailable)


BEFORE_CLAIM = {
    "store-registry-down": lambda rig, mp: rig.script.arm("store", InfrastructureUnavailable("stores down")),
    "ledger-down": _ledger_down,
    "no-such-record": lambda rig, mp: rig.ledger.items.clear(),
}


@pytest.mark.parametrize("cause", list(BEFORE_CLAIM))
@pytest.mark.parametrize(("receives", "delay"), [(1, 10), (2, 30), (3, 60), (5, 240), (9, 900), (500, 900)])
def test_an_error_before_the_claim_is_retried_by_the_receive_count(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, cause: str, receives: int, delay: int
) -> None:
    key = rig.order()
    BEFORE_CLAIM[cause](rig, monkeypatch)
    body = json.dumps({"order_key": key, "kind": "paid"})

    result = rig.worker.handle([lambda_record(body, receives)], lambda: 60_000)

    assert result.failed == ["m-raw"] and rig.queue.hidden == [(f"m-raw#{receives}", delay)]
    outcome = result.outcomes["m-raw"]
    assert outcome.status is None and outcome.retry_in == delay
    assert rig.transport.log == [] and not rig.queue.dead


def test_a_check_message_for_an_unknown_store_is_retried_by_the_receive_count(rig: Rig) -> None:
    body = json.dumps({"check": [{"order_key": "k", "claim_id": "c", "serial": "s"}], "store_id": "gone", "pin": "p"})

    result = rig.worker.handle([lambda_record(body, 3)], lambda: 60_000)

    assert result.failed == ["m-raw"] and rig.queue.hidden == [("m-raw#3", rig.schedule.delay(3))]


def test_a_duplicate_message_while_a_lease_is_live_is_hidden_until_the_lease_ends(rig: Rig) -> None:
    [key] = orders(rig, 1)
    rig.queue.send(key, "paid")  # a duplicate delivery (outbox re-send, SQS at-least-once)

    result, [_, second] = rig.handle()

    lease_until = rig.fields(key)["lease_until"]
    held = result.outcomes[second["messageId"]]
    assert result.failed == [second["messageId"]]
    assert held.status is S.ISSUING and held.detail == "lease held"
    assert rig.queue.hidden == [(second["receiptHandle"], held.retry_in)]
    assert rig.clock.now + held.retry_in > lease_until
    assert "LeaseHeld" in rig.recorder.metrics and rig.transport.ops() == ["issue"]
    rig.settle(key)
    assert rig.status(key) == "issued" and rig.transport.ops() == ["issue", "query"]
    rig.clock.now = rig.queue.next_visible() or 0  # the duplicate comes back: nothing to do
    again, _ = rig.handle()
    assert again.failed == [] and again.outcomes[second["messageId"]].detail == "nothing to do"
    assert rig.queue.messages == {} and rig.transport.ops() == ["issue", "query"]
    rig.assert_exactly_once(key)


def test_a_duplicate_hidden_for_a_live_lease_can_claim_when_it_returns(rig: Rig) -> None:
    [key] = orders(rig, 1)
    rig.queue.send(key, "paid")
    rig.clock.advance(0.5)  # invocations start at any fraction of a second
    result, [_, second] = rig.handle()
    rig.clock.advance(result.outcomes[second["messageId"]].retry_in)  # it returns (its check has not run)

    again = rig.use_case.attempt(key, "paid", deadline=rig.clock.now + 60)

    assert again.detail != "lease held"


# --- 7. the schedule ---------------------------------------------------------------------------------
@pytest.mark.parametrize("outage", [Fault.BUSY, Fault.UNREACHABLE])
def test_a_two_hour_outage_issues_every_order_afterwards_on_the_schedule(rig: Rig, outage: Fault) -> None:
    keys = orders(rig, 3) + orders(rig, 1, store="shop-b")
    order_messages = set(rig.queue.messages)
    rig.a.outage = outage
    ends = rig.clock.now + 2 * 3600

    rig.settle(*keys, on_tick=outage_until(rig, ends))

    assert all(rig.status(k) == "issued" for k in keys)
    assert not rig.queue.dead
    rig.assert_exactly_once(*keys)
    assert rig.clock.now - ends <= rig.schedule.cap + 60  # the cap bounds the wait after the outage
    waits: dict[str, list[int]] = defaultdict(list)
    for receipt, seconds in rig.queue.hidden:
        waits[receipt.split("#")[0]].append(seconds)
    assert set(waits) == order_messages  # only the order messages waited
    for key, mid in zip(keys, sorted(order_messages, key=lambda m: int(m[1:])), strict=True):
        seen = waits[mid]
        assert seen == [rig.schedule.delay(n) for n in range(1, len(seen) + 1)]
        assert seen[:7] == [10, 30, 60, 120, 240, 480, 900] and max(seen) == 900
        assert rig.fields(key)["retries"] == len(seen) and 10 <= len(seen) <= 20
