"""The link use case and the rate limit without AWS: token entropy, hashing, expiry, revocation."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.services.customer_page import RateLimit, client_key
from chalicelib.services.links import (
    DAY_SECONDS,
    TOKEN_BYTES,
    LinkRefusal,
    Links,
    LinkView,
    RefusalReason,
    token_hash,
)
from tests.support.fake_links import FakeLinkStore

NOW = 1_800_000_000.0
KEY = "s1:standard:O-1"


def links() -> tuple[Links, FakeLinkStore]:
    store = FakeLinkStore()
    return Links(store, base_url="https://inv.example.cn"), store


def test_tokens_carry_at_least_128_random_bits_and_are_url_safe() -> None:
    use_case, _ = links()
    tokens = {use_case.issue("s1", KEY, now=NOW, ttl_days=1).token for _ in range(200)}
    assert len(tokens) == 200
    assert TOKEN_BYTES * 8 >= 128
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == TOKEN_BYTES
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    # every bit position varies across the sample (a constant or counter-like token would not)
    bits = [int.from_bytes(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))) for t in tokens]
    assert all(any(b >> i & 1 for b in bits) and not all(b >> i & 1 for b in bits) for i in range(TOKEN_BYTES * 8))


def test_only_the_sha256_of_a_token_is_stored() -> None:
    use_case, store = links()
    issued = use_case.issue("s1", KEY, now=NOW, ttl_days=90)
    assert list(store.links) == [hashlib.sha256(issued.token.encode()).hexdigest()] == [token_hash(issued.token)]
    assert issued.token not in repr(store.links)
    assert issued.url == f"https://inv.example.cn/i/{issued.token}"


def test_expiry_is_the_ttl_in_days_and_the_last_second_is_still_live() -> None:
    use_case, _ = links()
    issued = use_case.issue("s1", KEY, now=NOW, ttl_days=90)
    assert issued.expires_at == NOW + 90 * DAY_SECONDS
    assert isinstance(use_case.resolve(issued.token, issued.expires_at - 1), LinkView)
    assert use_case.resolve(issued.token, issued.expires_at) == LinkRefusal(RefusalReason.EXPIRED)
    assert RefusalReason.EXPIRED.http_status == 410 and RefusalReason.UNKNOWN.http_status == 404


def test_a_link_is_for_an_order_of_its_store_and_lives_a_day_at_least() -> None:
    use_case, _ = links()
    with pytest.raises(ValueError):
        use_case.issue("s2", KEY, now=NOW, ttl_days=90)
    with pytest.raises(ValueError):
        use_case.issue("s1", KEY, now=NOW, ttl_days=0)


def test_revocation_wins_over_expiry_and_a_bad_argument_is_refused() -> None:
    use_case, _ = links()
    issued = use_case.issue("s1", KEY, now=NOW, ttl_days=1)
    assert use_case.revoke(issued.token, now=NOW) == 1
    assert use_case.resolve(issued.token, NOW + 5 * DAY_SECONDS) == LinkRefusal(RefusalReason.REVOKED)
    with pytest.raises(ValueError):
        use_case.revoke("neither", now=NOW)


# --- the rate limit ----------------------------------------------------------------------------------
class Counter:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.expiry: dict[tuple[str, int], float] = {}

    def hit(self, key: str, *, window: int, expires_at: float) -> int:
        self.counts[(key, window)] = self.counts.get((key, window), 0) + 1
        self.expiry[(key, window)] = expires_at
        return self.counts[(key, window)]


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append(msg)


def test_the_limit_is_per_ip_and_per_fixed_window() -> None:
    counter = Counter()
    limit = RateLimit(counter, limit=3, window_seconds=60, logger=Log())
    start = 60 * 1000.0
    assert [limit.allow("203.0.113.7", start + i) for i in range(4)] == [True, True, True, False]
    assert limit.allow("203.0.113.8", start + 5)  # another client
    assert limit.allow("203.0.113.7", start + 60)  # the next window
    assert limit.retry_after(start + 45) == 15
    assert all("203.0.113" not in key for key, _ in counter.counts)  # hashed, never the address
    assert (client_key("203.0.113.7"), 1000) in counter.counts
    assert counter.expiry[(client_key("203.0.113.7"), 1000)] == 1002 * 60  # TTL: two windows on


def test_a_failing_counter_lets_the_request_through_and_says_so() -> None:
    class Broken:
        def hit(self, key: str, *, window: int, expires_at: float) -> int:
            raise RuntimeError("dynamodb down")

    log = Log()
    assert RateLimit(Broken(), limit=1, window_seconds=60, logger=log).allow("198.51.100.1", NOW)
    assert log.lines == ["link rate counter failed"]
    assert RateLimit(Broken(), limit=0, window_seconds=60, logger=log).allow("198.51.100.1", NOW)


@pytest.fixture()
def limited_client(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from chalice.test import Client

    import app as app_module
    from chalicelib import config, wiring
    from tests.support.customer import seed_stores

    monkeypatch.setenv("LINK_RATE_LIMIT", "3")
    monkeypatch.setenv("LINK_RATE_WINDOW_SECONDS", "3600")
    config.settings.cache_clear()
    seed_stores(stack.env)
    wiring.reset()
    with Client(app_module.app, stage_name="local") as c:
        yield c
    wiring.reset()
    config.settings.cache_clear()


def test_the_route_answers_429_past_the_limit_with_retry_after(limited_client: Any, stack: Any, aws: Any) -> None:
    statuses = [limited_client.http.get("/i/" + "B" * 32).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    r = limited_client.http.get("/i/" + "B" * 32 + "/pdf")
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 3600
    assert "请求过于频繁" in r.body.decode() and r.headers["Cache-Control"] == "no-store"
    window = int(time.time() // 3600)
    item = aws.client("dynamodb").get_item(
        TableName=stack.env["LEDGER_TABLE"],
        Key={"pk": {"S": f"ratelimit#{client_key('127.0.0.1')}"}, "sk": {"S": f"window#{window}"}},
    )["Item"]
    assert int(item["n"]["N"]) >= 5 and int(item["expires_at"]["N"]) == (window + 2) * 3600
    assert not {"store_id", "created_at", "due", "due_at"} & set(item)
