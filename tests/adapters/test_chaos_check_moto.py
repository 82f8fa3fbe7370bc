"""The chaos checker against the real parts: the ledger on a moto server, the HTTP tax sandbox, and
orders issued and refunded through the real worker (``tests/adapters/test_red_sandbox.py``'s ``Red``).

A clean world passes; then one thing is broken at a time — a second blue invoice put straight into the
sandbox, a secret written into an archive object — and the check fails naming it. Each break is undone
before the next test (the world is built once for the module)."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import wiring
from chalicelib.audit import records as audit_records
from chalicelib.domain.order_keys import parse_order_key
from chalicelib.domain.taxpayer import mask
from chaos import check, table
from chaos.journal import Journal, Post
from chaos.leaks import masked
from tests.adapters.test_red_sandbox import COMPANY, Red, env  # noqa: F401 - env: the module stack
from tests.adapters.test_worker_sandbox import HANGZHOU, SECRETS, SHANGHAI

WEBHOOK_SECRET = SECRETS["einvoice/demo-shanghai/webhook/standard"]["secrets"][0]
TOKENS_NOT_LISTED = "not checked: sandbox lists no tokens"


@dataclass
class World:
    red: Red
    journal: Journal
    blue: str  # an STA order with a partial refund
    session: Any


def _post(seq: int, key: str, amount: str) -> Post:
    k = parse_order_key(key)
    return Post(
        seq=seq,
        kind="refund" if k.is_refund else "paid",
        store_id=k.store_id,
        platform=k.platform,
        order_id=k.order_id,
        event_id=f"ev-{seq}",
        refund_id=k.refund_id,
        amount=amount,
        lines=[],
        duplicate_of=None,
        resigned=False,
        concurrent=False,
        status=200,
        reply={"outcome": "queued", "order_key": key},
        started=0.0,
        ended=0.0,
        signature_values=[f"v1,signature-value-of-post-{seq:04d}-abcdef"],
        buyer_tax_id=None,
        expect="issue",
    )


@pytest.fixture(scope="module")
def world(env: Any, tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[World]:  # noqa: F811
    settings, sandbox, _ = env
    red = Red(env)
    archive = wiring.archive_log()  # the worker as deployed: every tax call and transition archived
    red.ledger.recorder = archive
    use_case = wiring.make_issue(order_ledger=red.ledger, clock=red.clock.utc, recorder=archive)
    red.worker = wiring.make_worker(use_case, red.queue, clock=red.clock, archive=archive)
    blue = red.order(SHANGHAI)  # an individual buyer: the red form needs no confirmation
    plain, nuonuo = red.order(SHANGHAI, buyer=COMPANY), red.order(HANGZHOU)
    red.run(blue, plain, nuonuo)
    refund = red.refund(blue, "53.00")
    red.run(refund)
    assert red.status(refund) == "red_issued"
    state_dir = tmp_path_factory.mktemp("chaos-state")
    (state_dir / "worker.log").write_text(
        json.dumps({"level": "INFO", "message": "issued", "order_key": blue, "buyer": mask(COMPANY.tax_id)}) + "\n",
        encoding="utf-8",
    )
    posts = [_post(1, blue, "159.00"), _post(2, plain, "159.00"), _post(3, nuonuo, "159.00"), _post(4, refund, "53.00")]
    journal = Journal(
        started=0.0,
        ended=1.0,
        orders=3,
        stack={
            "api": "",
            "aws": moto_url,
            "sandbox": sandbox.url,
            "state_dir": str(state_dir),
            "region": "cn-north-1",
            "env": {"LEDGER_TABLE": settings.ledger_table, "ARCHIVE_BUCKET": settings.archive_bucket},
        },
        posts=posts,
        known_secrets=[WEBHOOK_SECRET],
    )
    yield World(red, journal, blue, boto3.session.Session(region_name="cn-north-1"))


def _broken(report: check.CheckReport) -> dict[str, check.Row]:
    return {r.name: r for r in report.rows if not r.ok}


def _unexpected(report: check.CheckReport) -> dict[str, list[str]]:
    """Broken rows, but for the token row while the sandbox lists no tokens."""
    return {r.name: r.detail for r in report.rows if not r.ok and r.observed != TOKENS_NOT_LISTED}


def test_a_clean_run_through_the_real_worker_passes(world: World) -> None:
    report = check.check(world.journal, session=world.session)
    assert _unexpected(report) == {}
    figures = dict(report.figures)
    assert figures["issued"] == "3" and figures["red issued / netted"] == "1 / 0"
    assert figures["invoices in the sandbox blue / red"] == "3 / 1"
    assert int(figures["ledger items scanned"]) >= 4 and figures["log lines scanned"] == "1"
    text = table.render(report, world.journal, tty=False)
    assert "reconciliation clean" in text and WEBHOOK_SECRET not in text


def test_a_second_blue_invoice_in_the_sandbox_is_named(world: World) -> None:
    state = world.red.sandbox.state
    with state.lock:
        [original] = [r for r in state.invoices if r.status == "issued" and not r.red and r.serial in _serials(world)]
        twin = dataclasses.replace(original, serial="EI0000000000000C4A05", number="26319999999999999999")
        state.invoices.append(twin)
    try:
        report = check.check(world.journal, session=world.session)
    finally:
        with state.lock:
            state.invoices.remove(twin)
    detail = _broken(report)["one blue invoice per paid order"].detail
    assert any("26319999999999999999 unknown to the ledger" in d and world.blue in d for d in detail), detail


def _serials(world: World) -> set[str]:
    return {str(world.red.fields(world.blue).get("serial"))}


def test_a_secret_in_an_archive_object_is_named_never_printed(world: World) -> None:
    bucket = world.journal.stack["env"]["ARCHIVE_BUCKET"]
    s3 = world.session.client("s3", endpoint_url=world.journal.stack["aws"])
    leaked = {"v": 1, "kind": "transition", "order_key": world.blue, "cause": f"verify failed with {WEBHOOK_SECRET}"}
    key = "demo-shanghai/chaos/transitions/leak.jsonl.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=audit_records.encode_lines([leaked]))
    try:
        report = check.check(world.journal, session=world.session)
    finally:
        s3.delete_object(Bucket=bucket, Key=key)
    row = _broken(report)["no secret in logs, archive or ledger"]
    assert row.detail and row.detail[0].startswith(f"archive {key} record 1: secret {masked(WEBHOOK_SECRET)}")
    assert WEBHOOK_SECRET not in json.dumps(report.to_dict()) + table.render(report, world.journal, tty=False)


def test_the_real_archive_holds_full_tax_ids_in_its_evidence_only(world: World) -> None:
    bucket = world.journal.stack["env"]["ARCHIVE_BUCKET"]
    s3 = world.session.client("s3", endpoint_url=world.journal.stack["aws"])
    objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    bodies = [s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in objects]
    records = [
        r
        for b in bodies
        if b[:2] == b"\x1f\x8b"
        for r in json.loads("[" + ",".join(gzip.decompress(b).decode().splitlines()) + "]")
    ]
    interactions = [r for r in records if r.get("kind") == "interaction"]
    evidence = [base64.b64decode(r["request_body_b64"]) for r in interactions if r.get("request_body_b64")]
    assert any(HANGZHOU.seller.tax_id.encode() in body for body in evidence)  # Nuonuo's signed JSON
    report = check.check(world.journal, session=world.session)
    assert "no full tax id outside the evidence" not in _broken(report)
    assert int(dict(report.figures)["archive records scanned"]) >= len(interactions)


def test_a_tax_id_in_a_log_line_is_named(world: World, tmp_path: Path) -> None:
    journal = dataclasses.replace(world.journal, stack={**world.journal.stack, "state_dir": str(tmp_path)})
    (tmp_path / "api.log").write_text(f"ok\nrefused buyer {COMPANY.tax_id}\n", encoding="utf-8")
    detail = _broken(check.check(journal, session=world.session))["no full tax id outside the evidence"].detail
    assert detail and detail[0].startswith(f"{tmp_path / 'api.log'}:2: tax id ")
