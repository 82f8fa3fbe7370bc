"""Correctly signed events with hostile content, on all eight platforms: answered 2xx or 4xx, and recorded.

``test_webhook_fuzz.py`` throws random bytes at the routes, which stop at the signature (401);
``test_hostile_bodies.py`` pins a handful of known bodies (deep nesting, 690 CJK characters, NaN,
lone surrogates). Here hypothesis builds the content and the test *signs it as the platform does*
(``tests/support/signed_raw.py``: the keys of ``platform_events``, the encodings of ``webhook_samples``), so
every example goes past the signature into the parser, the normaliser and the validator:

- a genuine paid document of the platform (``infra.webhook_samples``), mutated: a field replaced by a
  hostile value (wrong type, huge / negative / exponent / NaN amount, unicode edge cases, an over-long
  id, a nest of arrays around the depth limit), a field removed, a key duplicated in the raw JSON;
- now and then a random JSON document instead;
- for the validator, Standard Webhooks events that parse but break invoice rules at random (amounts
  that do not add up, unknown SKUs, odd buyers and tax ids, limits).

The property, through ``chalice.test.Client`` against moto (one stack for the module): the answer is
2xx or 4xx — a 4xx in the project's error shape (``{"error": code, …}``, violations with field, code
and messages in Chinese and English) — never 5xx, never an unhandled exception; and whatever the
intake accepted or rejected is in the ledger under the order key it answered (batches: each message).
The signature is never what refuses the event, except where the hostile content changes what the
platform signs with (Alipay's ``app_id`` / ``charset``, listed in :data:`SIGNATURE_FIELDS`).

Examples per property: ``SIGNED_FUZZ_EXAMPLES`` (default 12, derandomized: the same examples every run;
the file takes 10–30 s with the machine's load); set, the examples are random — for a longer run,
``SIGNED_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/app/test_signed_fuzz.py -p no:cacheprovider``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain import errors
from chalicelib.domain.event_ids import EventIdConflict
from tests.support import platform_events as pe
from tests.support.signed_raw import (
    PLATFORM_CONTENT,
    DupObject,
    hostile,
    json_values,
    sign,
    sign_standard,
    texts,
)

STORE = "signed-fuzz"
EXAMPLES = int(os.environ.get("SIGNED_FUZZ_EXAMPLES", "12"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("SIGNED_FUZZ_EXAMPLES") is None,  # the default run is the same every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: What Alipay's notify carries that decides which key checks it: changed, it is a signature failure.
SIGNATURE_FIELDS = {"alipay": {"app_id", "charset", "sign", "sign_type"}}


# --- mutating a genuine document ------------------------------------------------------------------------
Path = tuple[str | int, ...]


def paths(value: Any, here: Path = ()) -> list[Path]:
    """Every place in ``value`` a mutation can reach (the root excluded)."""
    found: list[Path] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*here, key))
        found.extend(paths(child, (*here, key)))
    return found


def _parent(doc: Any, path: Path) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def mutate(doc: Any, draw: Callable[..., Any]) -> Any:
    """One to three mutations of ``doc`` (in place): replace, remove, or (last) duplicate a key."""
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = paths(doc)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent, key = _parent(doc, path), path[-1]
        action = draw(st.sampled_from(["replace", "replace", "remove", "duplicate"]))
        if action == "replace":
            parent[key] = draw(hostile)
        elif action == "remove":
            del parent[key]
        elif isinstance(parent, dict):  # the same key twice in the raw JSON, hostile first or last
            pairs = list(parent.items())
            extra = (str(key), draw(hostile))
            pairs.insert(draw(st.integers(min_value=0, max_value=len(pairs))), extra)
            dup = DupObject(tuple(pairs))
            if len(path) == 1:
                return dup
            _parent(doc, path[:-1])[path[-2]] = dup
            return doc
    return doc


@st.composite
def hostile_content(draw: Callable[..., Any], platform: str) -> Any:
    order_id = f"fz-{uuid.uuid4().hex[:12]}"
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # now and then: any JSON at all
        return draw(json_values)
    return mutate(PLATFORM_CONTENT[platform][0](order_id), draw)


# --- the stack: one for the module ------------------------------------------------------------------------
class IngestSpy:
    """The composition root's intake, as the app builds it, keeping what the last call returned or raised
    (what the answer was made from) — the real use case runs, nothing is replaced."""

    def __init__(self) -> None:
        self.last: Any = None

    def __call__(self) -> Callable[..., Any]:
        from chalicelib import wiring

        use_case = wiring.ingest()

        def run(*args: Any) -> Any:
            self.last = None
            try:
                self.last = use_case(*args)
            except BaseException as exc:
                self.last = exc
                raise
            return self.last

        return run

    def cache_clear(self) -> None:
        from chalicelib import wiring

        wiring.reset()


@dataclass
class Route:
    client: Any
    spy: IngestSpy
    ledger: Any


@pytest.fixture(scope="module")
def route(moto_url: str, _boto3_session: Any, _bootstrap_clients: Any) -> Iterator[Route]:
    from chalice.test import Client

    import app as app_module
    from chalicelib import config, wiring
    from chalicelib.adapters import aws as aws_clients
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.models import Store
    from infra.local import bootstrap

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        aws_clients.set_session(_boto3_session)
        created = bootstrap(_bootstrap_clients, prefix=f"f{uuid.uuid4().hex[:8]}")
        for key, value in created.env.items():
            mp.setenv(key, value)
        config.settings.cache_clear()
        StoreRegistry(created.env["STORES_TABLE"]).put(Store.model_validate(pe.test_store(STORE)))
        secrets = SecretStore()
        for platform in pe.PLATFORMS:
            secrets.put(pe.secret_name(STORE, platform), json.dumps(pe.secret_values(platform)))
        spy = IngestSpy()
        wiring.reset()
        mp.setattr(app_module, "_ingest", spy)
        try:
            with Client(app_module.app, stage_name="local") as client:
                yield Route(client, spy, Ledger(created.env["LEDGER_TABLE"]))
        finally:
            wiring.reset()
            config.settings.cache_clear()
            aws_clients.set_session(None)


# --- the property -------------------------------------------------------------------------------------------
def _text(body: Any) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)


def assert_error_shape(answer: dict[str, Any]) -> None:
    assert isinstance(answer.get("error"), str) and answer["error"], answer
    for v in answer.get("errors", []):
        assert set(v) >= {"field", "code", "message", "message_en"}, v
        assert all(isinstance(v[k], str) and v[k] for k in ("field", "code", "message", "message_en")), v


def assert_recorded(route: Route, order_key: str, *, rejected: bool | None = None) -> Any:
    record = route.ledger.get_order(order_key)
    assert record is not None, f"answered for {order_key!r}, and nothing is recorded under it"
    if rejected is True:
        assert record.status == "rejected" and record.violations, (record.status, record.violations)
    return record


#: 503 answers that say the embedded AWS was slow, not that the content is wrong (the machine is shared:
#: moto can miss the intake's 5 s deadline). The platform retries them: so does :func:`deliver`, with
#: the same signed delivery, and the retry's answer is the one checked.
BUSY = ('"error": "unavailable"', '"error": "intake_deadline"')
BUSY_RETRIES = 3


def deliver(route: Route, platform: str, body: bytes, headers: dict[str, str]) -> tuple[Any, Any]:
    for _ in range(BUSY_RETRIES):
        response = route.client.http.post(f"/webhooks/{platform}/{STORE}", body=body, headers=headers)
        text = _text(response.body)
        if response.status_code != 503 or not any(b in text for b in BUSY):
            break
    assert response.status_code < 500, (platform, response.status_code, text[:800], body[:800])
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, response.status_code
    return response, route.spy.last


def check_answer(route: Route, platform: str, content: Any, body: bytes, headers: dict[str, str]) -> None:
    response, outcome = deliver(route, platform, body, headers)
    text = _text(response.body)
    if response.status_code >= 400:
        assert_error_shape(json.loads(text))
    if isinstance(outcome, errors.SignatureInvalid):  # correctly signed: only what selects the key may do it
        allowed = SIGNATURE_FIELDS.get(platform, set())
        touched = {str(k) for k, _ in content.pairs} if isinstance(content, DupObject) else set()
        if isinstance(content, dict):
            genuine = PLATFORM_CONTENT[platform][0]("x")
            touched = {k for k in set(genuine) | set(content) if content.get(k) != genuine.get(k)}
        assert touched & allowed or not isinstance(content, dict | DupObject), (outcome.code, outcome.message)
        assert response.status_code == 401
        return
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, errors.EInvoiceError), repr(outcome)  # never an unhandled exception
        if isinstance(outcome, errors.OrderRejected | EventIdConflict):
            assert json.loads(text).get("order_key") == outcome.order_key
            assert_recorded(route, outcome.order_key, rejected=True)
        return
    assert outcome is not None, "the intake was not reached"
    assert 200 <= response.status_code < 300, (response.status_code, text[:500])
    for one in outcome.batch or (outcome,):
        assert_recorded(route, one.order_key, rejected=one.outcome == "rejected")
    if platform in pe.GATEWAY_REPLY:
        answer = json.loads(text)
        assert answer["order_key"] == outcome.order_key and answer["outcome"] == outcome.outcome, answer


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_a_signed_event_with_hostile_content_is_answered_below_500_and_recorded(route: Route, platform: str) -> None:
    @FUZZ
    @given(content=hostile_content(platform))
    def prop(content: Any) -> None:
        body, headers = sign(platform, content)
        check_answer(route, platform, content, body, headers)

    prop()


def test_the_genuine_documents_are_accepted_unmutated(route: Route) -> None:
    """The baseline the mutations start from: each platform's genuine document, signed here, is queued —
    so a refusal above is the hostile content's doing, not the signing's."""
    for platform in pe.PLATFORMS:
        order_id = f"fz-{uuid.uuid4().hex[:12]}"
        body, headers = sign(platform, PLATFORM_CONTENT[platform][0](order_id))
        response, outcome = deliver(route, platform, body, headers)
        assert response.status_code in (200, 202), (platform, _text(response.body))
        assert outcome.outcome == "queued" and outcome.order_key.endswith(order_id), (platform, outcome)
        assert_recorded(route, outcome.order_key)


# --- the validator: events that parse, with content that breaks invoice rules at random ------------------
decimal_text = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("10000000000"), places=2).map(str)
tax_ids = st.one_of(
    st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=15, max_size=20),
    st.sampled_from(["91310115MA1K4ABC2B", "91310115MA1K4ABC2X", "", "I0000000000000000O", "9131011５MA1K4ABC2B"]),
    texts,
)
buyers = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["company", "individual", "企业", "个人"]),
            "title": texts,
            "tax_id": tax_ids,
            "address": texts,
            "phone": texts,
            "bank": texts,
            "account": texts,
            "email": st.sampled_from(["a@example.com", "not-an-email", "单@例子.中国"]),
        },
    ),
)
lines = st.lists(
    st.fixed_dictionaries(
        {"total": decimal_text},
        optional={
            "sku": st.sampled_from([pe.SKU, "CAKE-01", "UNKNOWN-SKU", "shipping", "单" * 80]),
            "name": texts,
            "quantity": st.sampled_from(["1", "2", "0.5", "0.000001", "1000000", "3"]),
            "unit_price": decimal_text,
            "discount": decimal_text,
        },
    ).filter(lambda line: "sku" in line or "name" in line),
    max_size=6,
)


@st.composite
def rule_breaking_events(draw: Callable[..., Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"order_id": f"vz-{uuid.uuid4().hex[:12]}", "amount": draw(decimal_text), "currency": "CNY"}
    drawn_lines = draw(lines)
    if drawn_lines:
        data["lines"] = drawn_lines
        if draw(st.booleans()):  # often the amount adds up, so the deeper rules are reached
            data["amount"] = str(sum(Decimal(line["total"]) for line in drawn_lines))
    for name in ("shipping", "fees", "order_discount"):
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            data[name] = draw(decimal_text)
    buyer = draw(buyers)
    if buyer is not None:
        data["buyer"] = buyer
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        data["currency"] = draw(st.sampled_from(["USD", "cny", "RMB", "¥"]))
    return {"type": "order.paid", "timestamp": "2026-01-01T02:00:00+00:00", "data": data}


@FUZZ
@given(event=rule_breaking_events())
def test_the_validator_answers_a_signed_event_queued_or_with_every_violation_and_records_it(
    route: Route, event: dict[str, Any]
) -> None:
    body, headers = sign_standard(json.dumps(event, ensure_ascii=False))
    response, outcome = deliver(route, "standard", body, headers)
    answer = json.loads(_text(response.body))
    if response.status_code >= 400:
        assert_error_shape(answer)
        assert isinstance(outcome, errors.OrderRejected), repr(outcome)
        assert response.status_code == 422 and answer["error"] == outcome.code, answer
        record = assert_recorded(route, outcome.order_key, rejected=True)
        assert [v["code"] for v in record.violations] == [v["code"] for v in answer["errors"]]
        return
    assert answer["outcome"] in ("queued", "held"), answer
    record = assert_recorded(route, answer["order_key"])
    assert record.status in ("queued", "received", "held"), record.status
