"""The worker end to end on the embedded AWS (moto, ``stack``) and the local tax sandbox (real HTTP).

Two ways of feeding it:
- real SQS messages from the issue queue, handled as ``app.worker`` handles a batch;
- SQS in virtual time (``tests/support/virtual_queue.py``) for what takes hours — the retry schedule
  through a two-hour outage — or minutes: the delayed check, a worker killed mid-batch. There the
  worker, the ledger (moto) and the sandbox are real; only the queue and the clock are simulated.

The assertion that matters is on the sandbox's side: exactly one invoice per order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chalicelib import config, wiring
from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.queue import IssueQueue
from chalicelib.adapters.secrets import SecretStore
from chalicelib.adapters.stores import StoreRegistry
from chalicelib.domain.errors import RetryableTaxError
from chalicelib.domain.models import BuyerType, InvoiceBuyer, InvoiceLine, InvoiceOrder, Party, Store
from chalicelib.domain.order_keys import order_key, serial_for
from chalicelib.sandbox import server as sandbox_server
from tests.support.virtual_queue import VirtualClock, VirtualQueue, drive

ROOT = Path(__file__).resolve().parents[2]
SECRETS = json.loads((ROOT / "examples/secrets.local.json").read_text())


def load_store(name: str) -> Store:
    return Store.model_validate(json.loads((ROOT / f"examples/stores/{name}.json").read_text()))


SHANGHAI, HANGZHOU = load_store("demo-shanghai"), load_store("demo-hangzhou")


def sandbox_config(delay: float = 0) -> dict[str, Any]:
    sta = SECRETS["einvoice/demo-shanghai/sta"]
    nuonuo = SECRETS["einvoice/demo-hangzhou/nuonuo"]
    return {
        "sta": {
            "apps": {
                sta["app_id"]: {
                    "sm4_key": sta["sm4_key"],
                    "sign_key": sta["sign_key"],
                    "sellers": [SHANGHAI.seller.tax_id],
                }
            }
        },
        "nuonuo": {
            "apps": {nuonuo["app_key"]: {"app_secret": nuonuo["app_secret"], "user_tax": HANGZHOU.seller.tax_id}}
        },
        "sellers": {
            s.seller.tax_id: {"name": s.seller.name, "province": "31", "credit_line": "1000000.00"}
            for s in (SHANGHAI, HANGZHOU)
        },
        "issue_delay_seconds": delay,
    }


@pytest.fixture()
def sandbox() -> Iterator[Any]:
    with sandbox_server.start_sandbox(sandbox_config()) as handle:
        yield handle


def _env(stack: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch, first_check: int) -> Any:
    monkeypatch.setenv("STA_ENDPOINT", sandbox.url)
    monkeypatch.setenv("NUONUO_ENDPOINT", f"{sandbox.url}/open/v1/services")
    monkeypatch.setenv("NUONUO_TOKEN_URL", f"{sandbox.url}/accessToken")
    monkeypatch.setenv("FIRST_CHECK_SECONDS", str(first_check))
    config.settings.cache_clear()
    s = config.settings()
    registry = StoreRegistry(s.stores_table)
    for store in (SHANGHAI, HANGZHOU):
        registry.put(store)
    secrets = SecretStore()
    for name, value in SECRETS.items():
        if name.startswith("einvoice/"):
            secrets.put(name, json.dumps(value))
    wiring.reset()
    return s


@pytest.fixture()
def env(stack: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Stores, secrets and endpoints pointing at the sandbox; the sandbox issues at once and the first
    check runs in the same invocation (FIRST_CHECK_SECONDS=0)."""
    yield _env(stack, sandbox, monkeypatch, 0)
    wiring.reset()
    config.settings.cache_clear()


def make_order(store: Store, order_id: str, platform: str = "standard") -> InvoiceOrder:
    item = store.default_item
    return InvoiceOrder(
        order_key=order_key(store.store_id, platform, order_id),
        store_id=store.store_id,
        order_id=order_id,
        seller=Party(
            name=store.seller.name,
            tax_id=store.seller.tax_id,
            address=store.seller.address,
            phone=store.seller.phone,
            bank=store.seller.bank,
            account=store.seller.account,
        ),
        buyer=InvoiceBuyer(name="个人", type=BuyerType.INDIVIDUAL),
        lines=(
            InvoiceLine(
                name=item.name or item.short_name,
                short_name=item.short_name,
                tax_code=item.tax_code,
                tax_rate=item.tax_rate,
                quantity=Decimal(2),
                unit=item.unit,
                unit_price=Decimal("50.00"),
                amount=Decimal("100.00"),
                tax=Decimal("6.00"),
                total=Decimal("106.00"),
            ),
        ),
        total_amount=Decimal("100.00"),
        total_tax=Decimal("6.00"),
        total=Decimal("106.00"),
        issuer=store.invoice_defaults.issuer,
    )


def record(settings: Any, store: Store, order_id: str, platform: str = "standard") -> str:
    order = make_order(store, order_id, platform)
    ledger = Ledger(settings.ledger_table)
    payload = {"event": {}, "order": order.model_dump(mode="json")}
    assert (
        ledger.create_order(
            order.order_key, store.store_id, kind="paid", status="received", payload=payload, outbox=True
        )
        is None
    )
    return order.order_key


def enqueue_order(settings: Any, store: Store, order_id: str, platform: str = "standard") -> str:
    key = record(settings, store, order_id, platform)
    IssueQueue(settings.issue_queue_url).send(key, "paid")
    Ledger(settings.ledger_table).mark_queued(key)
    return key


def receive_records(aws: Any, settings: Any, n: int = 1) -> list[dict[str, Any]]:
    from infra.worker_runner import sqs_event

    sqs = aws.client("sqs")
    reply = sqs.receive_message(
        QueueUrl=settings.issue_queue_url, MaxNumberOfMessages=n, AttributeNames=["All"], WaitTimeSeconds=1
    )
    messages = reply.get("Messages", [])
    assert len(messages) == n
    arn = sqs.get_queue_attributes(QueueUrl=settings.issue_queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    records: list[dict[str, Any]] = sqs_event(messages, arn, "cn-north-1")["Records"]
    return records


def process(records: list[dict[str, Any]]) -> list[str]:
    """What ``app.worker`` does with a batch: the ids of the messages kept on the queue."""
    return wiring.batch_worker().handle(records, lambda: 60_000).failed


def fields(settings: Any, key: str) -> dict[str, Any]:
    return Ledger(settings.ledger_table).issue_fields(key)


def invoices(sandbox: Any, key: str) -> list[dict[str, Any]]:
    return sandbox.state.snapshot(serial=serial_for(key))


# --- real SQS -------------------------------------------------------------------------------------
@pytest.mark.parametrize("store", [SHANGHAI, HANGZHOU], ids=["sta", "nuonuo"])
def test_same_message_twice_issues_exactly_one_invoice(env: Any, aws: Any, sandbox: Any, store: Store) -> None:
    key = enqueue_order(env, store, "SO-9001")
    records = receive_records(aws, env)

    assert process(records) == []
    assert process(records) == []  # a duplicate delivery

    [issued] = invoices(sandbox, key)
    f = fields(env, key)
    assert f["status"] == "issued" and issued["status"] == "issued" and issued["total"] == "106.00"
    assert f["invoice_number"] == issued["number"] and len(f["invoice_number"]) == 20
    assert f["serial"] == serial_for(key) and f["sends"] == 1 and f["claims"] == 1
    assert "claim_id" not in f and "lease_until" not in f
    assert "due_at" in f  # until its first delivery run (the sweeper's net for a lost delivery message)


def test_two_platforms_same_order_number_are_two_invoices(env: Any, aws: Any, sandbox: Any) -> None:
    shopify = enqueue_order(env, SHANGHAI, "1001", platform="shopify")
    woo = enqueue_order(env, SHANGHAI, "1001", platform="woocommerce")
    assert process(receive_records(aws, env, 2)) == []
    assert fields(env, shopify)["status"] == fields(env, woo)["status"] == "issued"
    assert len(invoices(sandbox, shopify)) == len(invoices(sandbox, woo)) == 1
    assert fields(env, shopify)["invoice_number"] != fields(env, woo)["invoice_number"]


def test_lost_reply_then_redelivery_queries_first_and_never_issues_twice(env: Any, aws: Any, sandbox: Any) -> None:
    key = enqueue_order(env, SHANGHAI, "SO-9002")
    records = receive_records(aws, env)
    sandbox.state.faults.update({"timeout_after_commit_pct": 100, "timeout_mode": "close", "only": ["QDFPSC"]})

    assert process(records) == [records[0]["messageId"]]
    f = fields(env, key)
    assert f["status"] == "ambiguous" and f["retries"] == 1
    assert len(invoices(sandbox, key)) == 1  # the sandbox did issue it

    sandbox.state.faults.update({"timeout_after_commit_pct": 0})
    assert process(records) == []  # the redelivery
    f = fields(env, key)
    assert f["status"] == "issued" and f["sends"] == 1  # found by the query: no second request
    assert len(invoices(sandbox, key)) == 1


def test_refused_credentials_fail_the_record_and_alert_once(env: Any, aws: Any, sandbox: Any) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    inbox = sqs.create_queue(QueueName=f"alerts-{env.ledger_table[:20]}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=env.alarm_topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    bad = dict(SECRETS["einvoice/demo-shanghai/sta"], app_id="UNKNOWN-APP")
    SecretStore().put(SHANGHAI.provider.credentials_secret, json.dumps(bad))
    wiring.reset()
    key = enqueue_order(env, SHANGHAI, "SO-9003")
    records = receive_records(aws, env)

    assert process(records) == [records[0]["messageId"]]
    assert process(records) == [records[0]["messageId"]]  # again: still refused, no second alert

    assert fields(env, key)["status"] == "failed_auth"
    alerts = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(alerts) == 1
    text = alerts[0]["Body"]
    assert "demo-shanghai" in text and bad["sign_key"] not in text and bad["sm4_key"] not in text
    assert not invoices(sandbox, key)


def test_malformed_message_goes_to_the_dead_letter_queue_at_once(env: Any, aws: Any) -> None:
    record = {"messageId": "m-1", "receiptHandle": "r", "body": "not json", "attributes": {}}
    assert process([record]) == []  # not kept: moved
    dead = aws.client("sqs").receive_message(QueueUrl=env.issue_dlq_url, WaitTimeSeconds=1).get("Messages", [])
    assert [m["Body"] for m in dead] == ["not json"]


def test_a_refund_of_an_unknown_order_is_held_for_its_payment(env: Any, aws: Any) -> None:
    """No blue record yet: the refund waits (its message kept and hidden for a retry), never issued alone."""
    key = order_key(SHANGHAI.store_id, "standard", "SO-9010", "R1")
    ledger = Ledger(env.ledger_table)
    assert (
        ledger.create_order(
            key, SHANGHAI.store_id, kind="refunded", status="received", payload={"event": {}}, outbox=True
        )
        is None
    )
    IssueQueue(env.issue_queue_url).send(key, "refunded")
    records = receive_records(aws, env)
    assert process(records) == [records[0]["messageId"]]
    assert fields(env, key)["status"] == "refund_pending"


# --- virtual time ---------------------------------------------------------------------------------
class Virtual:
    """The real worker, ledger and sandbox on a virtual clock, the queue simulated."""

    def __init__(self, settings: Any, sandbox: Any) -> None:
        self.clock = VirtualClock()
        self.queue = VirtualQueue(self.clock)
        self.sandbox = sandbox
        self.ledger = Ledger(settings.ledger_table, clock=self.clock)
        self.worker = wiring.make_worker(
            wiring.make_issue(order_ledger=self.ledger, clock=self.clock.utc), self.queue, clock=self.clock
        )
        self.settings = settings
        self.tick()

    def tick(self) -> None:
        self.sandbox.state.clock.set(self.clock.now, freeze=True)

    def order(self, store: Store, order_id: str) -> str:
        key = order_key(store.store_id, "standard", order_id)
        payload = {"event": {}, "order": make_order(store, order_id).model_dump(mode="json")}
        assert (
            self.ledger.create_order(key, store.store_id, kind="paid", status="received", payload=payload, outbox=True)
            is None
        )
        self.queue.send(key, "paid")
        self.ledger.mark_queued(key)
        return key

    def status(self, key: str) -> str:
        return str(self.ledger.issue_fields(key)["status"])

    def run(self, keys: list[str], *, horizon: float) -> float:
        """Drive until every order is issued; the virtual seconds it took."""
        start = self.clock.now
        drive(
            self.worker,
            self.queue,
            self.clock,
            until=lambda: all(self.status(k) == "issued" for k in keys),
            horizon=horizon,
            on_tick=self.tick,
        )
        return self.clock.now - start


@pytest.fixture()
def slow_sandbox() -> Iterator[Any]:
    """The sandbox with its local default issuing delay (examples/sandbox.json: 3 s)."""
    delay = json.loads((ROOT / "examples/sandbox.json").read_text())["issue_delay_seconds"]
    with sandbox_server.start_sandbox(sandbox_config(delay)) as handle:
        yield handle


@pytest.fixture()
def virtual(stack: Any, slow_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Virtual]:
    s = _env(stack, slow_sandbox, monkeypatch, 3)
    yield Virtual(s, slow_sandbox)
    wiring.reset()
    config.settings.cache_clear()


def test_accepted_requests_are_checked_by_one_delayed_batched_query(virtual: Virtual) -> None:
    keys = [virtual.order(SHANGHAI, f"SO-{i}") for i in range(5)]
    took = virtual.run(keys, horizon=60)
    assert all(virtual.status(k) == "issued" for k in keys)
    checks = [m for m in virtual.queue.sent if "check" in m]
    assert len(checks) == 1 and len(checks[0]["check"]) == 5  # one check message for the batch
    assert took < 10  # issued at the first check, 3 s after acceptance (virtual seconds)
    assert all(len(invoices(virtual.sandbox, k)) == 1 for k in keys)
    assert not virtual.queue.dead


def test_a_two_hour_outage_issues_every_order_afterwards_and_none_reaches_the_dead_letter_queue(
    virtual: Virtual,
) -> None:
    keys = [virtual.order(SHANGHAI, f"OUT-{i}") for i in range(3)] + [virtual.order(HANGZHOU, "OUT-N")]
    virtual.sandbox.state.faults.update({"error_5xx_pct": 100})
    outage_ends = virtual.clock.now + 2 * 3600

    def tick() -> None:
        virtual.tick()
        if virtual.clock.now >= outage_ends:
            virtual.sandbox.state.faults.update({"error_5xx_pct": 0})

    drive(
        virtual.worker,
        virtual.queue,
        virtual.clock,
        until=lambda: all(virtual.status(k) == "issued" for k in keys),
        horizon=4 * 3600,
        on_tick=tick,
    )

    assert all(virtual.status(k) == "issued" for k in keys)
    assert not virtual.queue.dead
    assert all(len(invoices(virtual.sandbox, k)) == 1 for k in keys)
    # issued soon after the outage: the schedule's cap (15 minutes) bounds the wait
    assert virtual.clock.now - outage_ends <= 15 * 60 + 60
    retries = [virtual.ledger.issue_fields(k)["retries"] for k in keys]
    assert all(10 <= r <= 20 for r in retries), retries  # 10 s, 30 s, 60 s, … 900 s: ~14 tries in 2 h


def test_provider_switched_while_ambiguous_blocks_instead_of_issuing_twice(virtual: Virtual) -> None:
    key = virtual.order(SHANGHAI, "SW-1")
    virtual.sandbox.state.faults.update({"timeout_after_commit_pct": 100, "timeout_mode": "close", "only": ["QDFPSC"]})
    virtual.run([key], horizon=1)  # one attempt: sent, reply lost → ambiguous
    assert virtual.status(key) == "ambiguous" and len(invoices(virtual.sandbox, key)) == 1
    virtual.sandbox.state.faults.update({"timeout_after_commit_pct": 0})
    moved = SHANGHAI.model_copy(
        update={"provider": SHANGHAI.provider.model_copy(update={"endpoint": f"{virtual.sandbox.url}/other"})}
    )
    wiring.stores().put(moved)  # the worker's own registry: its cache forgets the old settings

    virtual.run([key], horizon=600)

    f = virtual.ledger.issue_fields(key)
    assert f["status"] == "blocked" and "configuration changed" in f["last_error"]
    assert len(invoices(virtual.sandbox, key)) == 1  # never a second invoice


def test_a_build_error_and_a_token_timeout_are_plain_retries(virtual: Virtual, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.taxapi import sta, tokens

    failures = {"build": 1, "token": 1}
    original_build = sta.StaProvider.build_issue
    original_get = tokens.TokenCache.get

    def flaky_build(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures["build"]:
            failures["build"] -= 1
            raise ValueError("a mapping bug that goes away")
        return original_build(self, *args, **kwargs)

    def flaky_token(self: Any) -> Any:
        if failures["token"]:
            failures["token"] -= 1
            raise RetryableTaxError("token endpoint timed out")
        return original_get(self)

    monkeypatch.setattr(sta.StaProvider, "build_issue", flaky_build)
    monkeypatch.setattr(tokens.TokenCache, "get", flaky_token)
    keys = [virtual.order(SHANGHAI, "B-1"), virtual.order(HANGZHOU, "T-1")]
    took = virtual.run(keys, horizon=600)
    assert all(virtual.status(k) == "issued" for k in keys)
    for k in keys:
        f = virtual.ledger.issue_fields(k)
        assert f["sends"] == 1 and f["retries"] == 1  # nothing was counted as sent before it was
    assert took < 60 and not virtual.queue.dead


class _Killed(BaseException):
    """The invocation dies (Lambda kills it): nothing after this point runs."""


def test_a_worker_killed_mid_batch_leaves_nothing_behind(virtual: Virtual, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [virtual.order(SHANGHAI, f"K-{i}") for i in range(5)]
    use_case = virtual.worker.use_case
    real_attempt = use_case.attempt
    calls = {"n": 0}

    def dying_attempt(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the second order: claimed, issue request sent, then the process dies
            outcome = real_attempt(*args, **kwargs)
            raise _Killed(outcome.order_key)
        return real_attempt(*args, **kwargs)

    monkeypatch.setattr(use_case, "attempt", dying_attempt)
    batch = virtual.queue.receive()
    with pytest.raises(_Killed):
        virtual.worker.handle(batch, lambda: 60_000)
    killed_at = virtual.clock.now
    monkeypatch.setattr(use_case, "attempt", real_attempt)

    virtual.run(keys, horizon=600)

    assert all(virtual.status(k) == "issued" for k in keys)
    assert all(len(invoices(virtual.sandbox, k)) == 1 for k in keys)
    assert virtual.clock.now - killed_at <= 120  # picked up within ~2 minutes, not 6
