"""Webhook secrets rotated without a lost event (issue 12 item 4), on the app in-process over moto.

The operator's procedure (docs/operator.md, "Rotating a webhook secret"): put ``[new, old]``, let the
platform switch, later put ``[new]``. The platform may sign with the new secret the moment it is told,
while this container's cache (``SecretStore``, ``CACHE_SECONDS``) still holds the old value only: the
intake then reads the secret once more past the cache (``chalicelib/services/verify.py``). A stream of
events is posted while the secret changes, the container's cache warm: every event signed with a secret
valid at that moment is acknowledged 2xx and recorded in the ledger; an event signed with a removed
secret is refused 401 once the change is visible. Secrets Manager reads are counted on the boto3
session (a ``before-parameter-build`` hook: the real client, the real moto server), to show the re-read bounded.

The app's ``SecretStore`` gets a hand-driven clock (no sleeps): the real adapter, the real reads.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.adapters.secrets import CACHE_SECONDS, REREAD_SECONDS
from tests.app.conftest import signed, standard_event
from tests.support import platform_events as pe

PLATFORMS = ("standard", "woocommerce", "shopify")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def new_secret(platform: str) -> str:
    raw = os.urandom(24)
    if platform == "standard":
        return "whsec_" + base64.b64encode(raw).decode()
    return f"{platform}-{raw.hex()}"


def value(platform: str, secrets: list[str]) -> dict[str, Any]:
    """The secret's JSON value listing ``secrets`` (newest first), as each platform's module reads it."""
    if platform == "shopify" and len(secrets) == 2:  # Shopify's own names for a rotation
        return {"client_secret": secrets[0], "old_client_secret": secrets[1]}
    return {"secrets": secrets}


def delivery(platform: str, secret: str) -> tuple[bytes, dict[str, str]]:
    """A genuine "order paid" delivery of a new order, signed with ``secret``."""
    from infra import webhook_samples as ws

    order_id = str(uuid.uuid4().int % 10**9)  # WooCommerce order ids are integers
    if platform == "standard":
        return signed(standard_event(order_id), secret=secret)
    sale = ws.Sale(order_id, Decimal("88.00"), pe.SKU, "拿铁咖啡（大杯）")
    request = ws.paid(platform, sale, {"secret": secret})
    return request.body, request.headers


class Rotation:
    """One store, its secrets, the app, the operator's own SecretStore (the CLI's), the read counter."""

    def __init__(self, client: Any, store_id: str, clock: Clock, reads: list[str]) -> None:
        from chalicelib.adapters.secrets import SecretStore

        self.client, self.store_id, self.clock, self.reads = client, store_id, clock, reads
        self.operator = SecretStore()  # another process: its put never touches the app's cache

    def put(self, platform: str, secrets: list[str]) -> None:
        self.operator.put(pe.secret_name(self.store_id, platform), json.dumps(value(platform, secrets)))

    def post(self, platform: str, secret: str) -> Any:
        body, headers = delivery(platform, secret)
        return self.client.http.post(f"/webhooks/{platform}/{self.store_id}", headers=headers, body=body)

    def read_count(self, platform: str) -> int:
        return self.reads.count(pe.secret_name(self.store_id, platform))

    def accepted(self, platform: str, secret: str) -> str:
        """Post an event signed with ``secret``: acknowledged 2xx and recorded (queued) in the ledger."""
        from chalicelib import wiring

        r = self.post(platform, secret)
        assert 200 <= r.status_code < 300, (platform, r.status_code, r.body)
        key = json.loads(r.body)["order_key"]
        record = wiring.ledger().get_order(key)
        assert record is not None and record.status.value == "queued", (key, record)
        return str(key)

    def refused(self, platform: str, secret: str) -> None:
        r = self.post(platform, secret)
        assert r.status_code == 401, (platform, r.status_code, r.body)


@pytest.fixture()
def rotation(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rotation]:
    """A store taking three platforms; the app's SecretStore on a hand clock; reads counted."""
    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib import wiring
    from chalicelib.adapters import aws
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.models import Store

    session = boto3.session.Session(region_name="cn-north-1")
    reads: list[str] = []

    def counted(params: dict[str, Any], **_: Any) -> None:
        reads.append(str(params.get("SecretId")))

    session.events.register("before-parameter-build.secrets-manager.GetSecretValue", counted)
    aws.set_session(session)  # every client made from now on carries the hook (the aws fixture resets it)

    store_id = f"rot-{uuid.uuid4().hex[:8]}"
    doc = pe.test_store(store_id)
    doc["webhook_secrets"] = {p: pe.secret_name(store_id, p) for p in PLATFORMS}
    StoreRegistry(stack.env["STORES_TABLE"]).put(Store.model_validate(doc))
    clock = Clock()
    app_secrets = SecretStore(clock=clock)
    wiring.reset()
    monkeypatch.setattr(wiring, "secrets", functools.cache(lambda: app_secrets))
    app_module._ingest.cache_clear()  # type: ignore[attr-defined]
    with Client(app_module.app, stage_name="local") as c:
        yield Rotation(c, store_id, clock, reads)
    app_module._ingest.cache_clear()  # type: ignore[attr-defined]
    wiring.reset()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_documented_rotation_loses_no_event(rotation: Rotation, platform: str) -> None:
    old, new = new_secret(platform), new_secret(platform)
    rotation.put(platform, [old])
    keys = [rotation.accepted(platform, old) for _ in range(3)]  # the cache is warm: [old]
    assert rotation.read_count(platform) == 1

    rotation.put(platform, [new, old])  # step 1; the platform switches at once, in-flight events are old
    keys.append(rotation.accepted(platform, new))  # the cache held [old] only: re-read once
    keys += [rotation.accepted(platform, s) for s in (old, new, old, new)]
    assert rotation.read_count(platform) == 2

    rotation.put(platform, [new])  # step 2, later: the old secret is removed
    keys += [rotation.accepted(platform, new) for _ in range(2)]
    rotation.clock.now += CACHE_SECONDS  # the change is visible to this container
    keys.append(rotation.accepted(platform, new))
    rotation.refused(platform, old)  # signed with the removed secret
    rotation.refused(platform, old)
    keys.append(rotation.accepted(platform, new))
    assert len(set(keys)) == len(keys) == 12  # every acknowledged event is its own ledger record
    # cache expiry (1) and the first refusal's re-read (1); the second refusal reads nothing
    assert rotation.read_count(platform) == 4


@pytest.mark.parametrize("platform", ["standard", "woocommerce"])
def test_an_abrupt_switch_to_the_new_secret_alone_loses_no_event(rotation: Rotation, platform: str) -> None:
    old, new = new_secret(platform), new_secret(platform)
    rotation.put(platform, [old])
    rotation.accepted(platform, old)
    rotation.put(platform, [new])  # no overlap: the platform signs with the new secret at once
    for _ in range(5):
        rotation.accepted(platform, new)
    rotation.refused(platform, old)  # the re-read saw [new]: the old secret is gone at once
    assert rotation.read_count(platform) == 2


def test_a_flood_of_bad_signatures_reads_the_secret_once_per_interval(rotation: Rotation) -> None:
    secret, forged = new_secret("standard"), new_secret("standard")
    rotation.put("standard", [secret])
    rotation.accepted("standard", secret)
    for _ in range(25):  # a signature of the right shape no secret verifies
        rotation.refused("standard", forged)
    assert rotation.read_count("standard") == 2  # the first read, and one re-read
    body, headers = delivery("standard", secret)
    headers["webhook-signature"] = "v1,not-base64!"  # malformed: refused without a read
    assert (
        rotation.client.http.post(f"/webhooks/standard/{rotation.store_id}", headers=headers, body=body).status_code
        == 401
    )
    assert rotation.read_count("standard") == 2
    rotation.clock.now += REREAD_SECONDS
    for _ in range(5):
        rotation.refused("standard", forged)
    assert rotation.read_count("standard") == 3  # one more re-read in the next interval
    rotation.accepted("standard", secret)  # the genuine one still verifies from the cache
    assert rotation.read_count("standard") == 3


def test_a_re_read_within_the_interval_answers_none_and_reads_nothing(stack: Any) -> None:
    """The adapter's bound on its own, over moto (no app)."""
    from chalicelib.adapters.secrets import SecretStore

    name = f"einvoice/rot-{uuid.uuid4().hex[:8]}/webhook/standard"
    SecretStore().put(name, json.dumps({"secrets": ["a"]}))
    clock = Clock()
    store = SecretStore(clock=clock)
    assert store.get_json(name) == {"secrets": ["a"]}
    SecretStore().put(name, json.dumps({"secrets": ["b", "a"]}))
    assert store.get_json(name) == {"secrets": ["a"]}  # cached
    assert store.reread_json(name) == {"secrets": ["b", "a"]}
    assert store.get_json(name) == {"secrets": ["b", "a"]}  # the re-read refreshed the cache
    clock.now += REREAD_SECONDS - 1
    assert store.reread_json(name) is None
    clock.now += 1
    assert store.reread_json(name) == {"secrets": ["b", "a"]}
