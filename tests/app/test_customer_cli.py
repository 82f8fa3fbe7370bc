"""``einvoice links list | revoke | issue`` through the Typer application, against moto."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.customer import STORE, order_record, seed_stores


@pytest.fixture()
def cli(stack: Any) -> Iterator[Any]:
    import infra.cli_app
    from chalicelib import wiring

    seed_stores(stack.env)
    wiring.reset()
    runner = CliRunner()
    yield lambda *args: runner.invoke(infra.cli_app.application(), list(args))
    wiring.reset()


def test_issue_list_revoke(cli: Any, stack: Any) -> None:
    from chalicelib import wiring
    from chalicelib.services.links import LinkRefusal, LinkView, token_hash

    key, _ = order_record(stack.env)
    issued = cli("links", "issue", key)
    assert issued.exit_code == 0, issued.output
    url = issued.stdout.strip().splitlines()[0]
    token = url.rsplit("/i/", 1)[1]
    assert url.startswith(wiring.settings().public_base_url + "/i/")
    view = wiring.links().resolve(token, time.time())
    days = wiring.stores().get(STORE).delivery.link_ttl_days
    assert isinstance(view, LinkView) and abs(view.expires_at - time.time() - days * 86_400) < 60
    other = wiring.links().issue(STORE, key, now=time.time(), ttl_days=1).token

    listed = cli("links", "list", key)
    assert listed.exit_code == 0
    assert token_hash(token)[:12] in listed.output and token not in listed.output
    assert listed.output.count("live") == 2

    assert cli("links", "revoke", token).exit_code == 0
    assert isinstance(wiring.links().resolve(token, time.time()), LinkRefusal)
    again = cli("links", "revoke", token)
    assert again.exit_code == 1
    by_order = cli("links", "revoke", key)
    assert by_order.exit_code == 0 and "revoked 1 link" in by_order.output
    assert isinstance(wiring.links().resolve(other, time.time()), LinkRefusal)
    assert cli("links", "list", key).output.count("revoked") == 2


def test_bad_arguments_are_refused_with_2(cli: Any) -> None:
    assert cli("links", "revoke", "no such thing").exit_code == 2
    assert cli("links", "list", "not-a-key").exit_code == 2
    assert cli("links", "issue", f"{STORE}:standard:never").exit_code == 2
