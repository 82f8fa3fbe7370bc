"""One contract, two link stores: DynamoDB (the ledger table on the moto server) and the in-memory fake.

The use case (:class:`chalicelib.services.links.Links`) runs over each, so what the page, the CLI and
the delivery worker rely on holds for both — and the table never holds a token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.services.links import DAY_SECONDS, LinkRecord, LinkRefusal, Links, LinkView, RefusalReason, token_hash
from tests.support.fake_links import FakeLinkStore

NOW = 1_800_000_000.0
BASE = "https://einvoice.example.cn"


@pytest.fixture(scope="module")
def ledger_table(moto_url: str) -> Iterator[str]:
    import boto3

    from chalicelib.adapters import aws
    from infra.local import bootstrap

    session = boto3.session.Session(region_name="cn-north-1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        aws.set_session(session)
        created = bootstrap(session, prefix=f"l{uuid.uuid4().hex[:8]}")
        yield created.env["LEDGER_TABLE"]
        aws.set_session(None)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return FakeLinkStore()
    from chalicelib.adapters.links import LinkStore

    return LinkStore(request.getfixturevalue("ledger_table"))


def order() -> str:
    return f"s1:standard:O-{uuid.uuid4().hex[:12]}"


def record(order_key: str, *, hash_: str | None = None, issued: float = NOW) -> LinkRecord:
    return LinkRecord(
        token_hash=hash_ or uuid.uuid4().hex * 2,
        order_key=order_key,
        store_id="s1",
        issued_at=issued,
        expires_at=issued + 90 * DAY_SECONDS,
        form_key="ab" * 32,
    )


def test_put_then_get_round_trips(store: Any) -> None:
    link = record(order())
    assert store.put(link) is True
    assert store.get(link.token_hash) == link


def test_put_refuses_an_existing_hash_and_keeps_the_first(store: Any) -> None:
    link = record(order())
    assert store.put(link)
    assert store.put(record(order(), hash_=link.token_hash)) is False
    assert store.get(link.token_hash) == link


def test_get_of_an_unknown_hash_is_none(store: Any) -> None:
    assert store.get("0" * 64) is None


def test_of_order_lists_its_links_oldest_first_and_no_others(store: Any) -> None:
    key, other = order(), order()
    second, first = record(key, issued=NOW + 5), record(key, issued=NOW)
    for link in (second, first, record(other)):
        store.put(link)
    assert [r.token_hash for r in store.of_order(key)] == [first.token_hash, second.token_hash]
    assert store.of_order(order()) == []


def test_revoke_once(store: Any) -> None:
    link = record(order())
    store.put(link)
    assert store.revoke(link.token_hash, now=NOW + 10) is True
    assert store.revoke(link.token_hash, now=NOW + 20) is False
    assert store.get(link.token_hash).revoked_at == NOW + 10
    assert store.revoke("f" * 64, now=NOW) is False


# --- the use case over each store --------------------------------------------------------------------
def test_issue_resolve_expire(store: Any) -> None:
    links = Links(store, base_url=BASE + "/")
    key = order()
    issued = links.issue("s1", key, now=NOW, ttl_days=90)
    assert issued.url == f"{BASE}/i/{issued.token}"
    assert issued.expires_at == NOW + 90 * DAY_SECONDS
    view = links.resolve(issued.token, NOW + 89 * DAY_SECONDS)
    assert isinstance(view, LinkView) and view.order_key == key and view.store_id == "s1"
    assert links.resolve(issued.token, issued.expires_at) == LinkRefusal(RefusalReason.EXPIRED)
    # only the hash is stored, never the token
    stored = store.get(token_hash(issued.token))
    assert stored is not None and issued.token not in repr(stored)


def test_revoke_by_token_and_by_order_key(store: Any) -> None:
    links = Links(store, base_url=BASE)
    key = order()
    one, two = links.issue("s1", key, now=NOW, ttl_days=1), links.issue("s1", key, now=NOW, ttl_days=1)
    assert links.revoke(one.token, now=NOW) == 1
    assert links.resolve(one.token, NOW) == LinkRefusal(RefusalReason.REVOKED)
    assert isinstance(links.resolve(two.token, NOW), LinkView)
    assert links.revoke(key, now=NOW) == 1  # the one still live
    assert links.resolve(two.token, NOW) == LinkRefusal(RefusalReason.REVOKED)
    assert links.revoke(key, now=NOW) == 0


def test_unknown_and_malformed_tokens_are_unknown(store: Any) -> None:
    links = Links(store, base_url=BASE)
    for token in ("A" * 32, "short", "../../etc/passwd", "A" * 31 + "=", ""):
        assert links.resolve(token, NOW) == LinkRefusal(RefusalReason.UNKNOWN)
