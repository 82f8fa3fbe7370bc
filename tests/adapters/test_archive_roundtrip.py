"""The audit archive on the embedded AWS (moto) with the HTTP tax sandbox, end to end and tampered with.

One module-scoped stack: orders issued through the worker (real SQS messages, as ``app.worker``
handles a batch) → one archive object per invocation, store and stream → two earlier days written
through the same recorder → the manifest job seals the three days → ``einvoice logs pull`` →
``einvoice logs verify`` OK; then each tampering of a copy of the pulled folder is detected and named,
a changed object in the bucket is alerted by the next manifest run, and a failed flush leaves the
batch unacknowledged.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chalicelib import config, wiring
from chalicelib.adapters import aws as aws_clients
from chalicelib.adapters.archive import S3Archive, SigningKeys
from chalicelib.adapters.secrets import SecretStore
from chalicelib.adapters.stores import StoreRegistry
from chalicelib.audit import records
from chalicelib.audit.keys import data_day, manifest_key
from chalicelib.domain.taxpayer import mask
from chalicelib.sandbox import server as sandbox_server
from chalicelib.services.archive import InvocationArchive
from chalicelib.services.archive_manifest import ManifestJob
from tests.adapters.test_worker_sandbox import (
    HANGZHOU,
    SECRETS,
    SHANGHAI,
    enqueue_order,
    receive_records,
    sandbox_config,
)

TODAY = datetime.now(UTC).date()
DAYS = [TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY]


@dataclass
class World:
    session: Any
    settings: config.Settings
    sandbox: Any
    archive: S3Archive
    public_key: str
    order_keys: list[str]
    batch: list[Mapping[str, Any]]
    failed: list[str]
    sealed: dict[str, list[date]]
    folder: Path


def _earlier_day(day: date, store: str, n: int) -> None:
    """Records of an earlier day through the same recorder (the worker only runs today)."""
    log = InvocationArchive(
        wiring.archive_store(),
        actor="worker:test",
        clock=lambda: datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9),
    )
    for i in range(n):
        log.begin()
        log.transition(
            at=datetime.combine(day, datetime.min.time(), UTC),
            store=store,
            order_key=f"{store}:standard:old-{day}-{i}",
            event="claim",
            before="queued",
            after="issuing",
            cause="claim",
        )
        log.flush()


def cli(*args: str) -> Any:
    from infra.cli_app import application

    return CliRunner().invoke(application(), list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def world(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import boto3

    from infra.local import bootstrap

    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ENDPOINT_URL", moto_url)
    session = boto3.session.Session(region_name="cn-north-1")
    aws_clients.set_session(session)
    stack = bootstrap(session, prefix=f"a{uuid.uuid4().hex[:8]}", params={"ObjectLockMode": "GOVERNANCE"})
    for key, value in stack.env.items():
        mp.setenv(key, value)
    with sandbox_server.start_sandbox(sandbox_config()) as sandbox:
        mp.setenv("STA_ENDPOINT", sandbox.url)
        mp.setenv("NUONUO_ENDPOINT", f"{sandbox.url}/open/v1/services")
        mp.setenv("NUONUO_TOKEN_URL", f"{sandbox.url}/accessToken")
        mp.setenv("FIRST_CHECK_SECONDS", "0")
        config.settings.cache_clear()
        s = config.settings()
        for store in (SHANGHAI, HANGZHOU):
            StoreRegistry(s.stores_table).put(store)
        for name, value in SECRETS.items():
            if name.startswith("einvoice/"):
                SecretStore().put(name, json.dumps(value))
        wiring.reset()
        keys = [enqueue_order(s, SHANGHAI, f"AR-{i}") for i in range(3)] + [enqueue_order(s, HANGZHOU, "AR-9")]
        batch: list[Mapping[str, Any]] = [*receive_records(session, s, 4)]
        failed = wiring.batch_worker().handle(batch, lambda: 60_000).failed
        for day in DAYS[:2]:
            _earlier_day(day, SHANGHAI.store_id, 2)
        job = wiring.manifest_job()
        job.clock = lambda: datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=1)
        sealed = {r.store: r.sealed for r in job.run()}
        folder = tmp_path_factory.mktemp("pulled")
        yield World(
            session=session,
            settings=s,
            sandbox=sandbox,
            archive=wiring.archive_store(),
            public_key=SigningKeys(s.manifest_key_secret).public_key(),
            order_keys=keys,
            batch=batch,
            failed=failed,
            sealed=sealed,
            folder=folder,
        )
    mp.undo()
    wiring.reset()
    config.settings.cache_clear()
    aws_clients.set_session(None)


@pytest.fixture(scope="module")
def pulled(world: World) -> Path:
    result = cli(
        "logs",
        "pull",
        "--store",
        SHANGHAI.store_id,
        "--from",
        DAYS[0].isoformat(),
        "--to",
        DAYS[-1].isoformat(),
        "--out",
        str(world.folder),
    )
    assert result.exit_code == 0, result.output
    return world.folder


def objects_of(world: World, store: str, day: date, stream: str) -> list[str]:
    return [k for k, _ in world.archive.listing(f"{store}/{day:%Y/%m/%d}/{stream}/")]


# --- what the worker archived -----------------------------------------------------------------------
def test_one_object_per_invocation_store_and_stream_written_before_the_ack(world: World) -> None:
    assert world.failed == []
    for store in (SHANGHAI.store_id, HANGZHOU.store_id):
        [interactions] = objects_of(world, store, TODAY, "interactions")
        [transitions] = objects_of(world, store, TODAY, "transitions")
        assert interactions.rsplit("/", 1)[1] == transitions.rsplit("/", 1)[1]  # the same invocation


def test_interaction_records_hold_the_call_and_no_secret(world: World) -> None:
    [key] = objects_of(world, SHANGHAI.store_id, TODAY, "interactions")
    raw = world.archive.get(key)
    lines = records.decode_lines(raw)
    issues = [r for r in lines if r["operation"].startswith("issue")]
    assert sorted(r["order_key"] for r in issues) == sorted(world.order_keys[:3])
    for r in issues:
        assert r["provider"] == "sta" and r["attempt"] == 1 and r["latency_ms"] >= 0
        assert r["outcome"] == "ok" and r["error_class"] is None and r["response"]["status"] == 200
        assert r["actor"] == "worker:local" and r["invocation"] in key
        assert r["request"]["params"]["serial"] == r["serials"][0]
        assert r["request"]["params"]["order"]["seller"]["tax_id"] == mask(SHANGHAI.seller.tax_id)
        headers = dict(r["request"]["headers"])
        assert headers["access_signature"] == records.REDACTED
        body = base64.b64decode(r["request_body_b64"])
        assert body and body.isascii()  # the STA body as sent: base64 of the SM4 ciphertext
    queries = [r for r in lines if r["operation"].startswith("query")]
    assert queries and all(r["order_key"] is None or r["serials"] for r in queries)
    text = gzip.decompress(raw).decode()
    secrets = SECRETS["einvoice/demo-shanghai/sta"]
    for value in (secrets["sm4_key"], secrets["sign_key"], SHANGHAI.seller.tax_id):
        assert value not in text


def test_the_status_history_names_each_transition_and_its_actor(world: World) -> None:
    [key] = objects_of(world, SHANGHAI.store_id, TODAY, "transitions")
    lines = records.decode_lines(world.archive.get(key))
    first = world.order_keys[0]
    mine = [(r["from"], r["to"]) for r in lines if r["order_key"] == first]
    # the intake's steps first (archived by the worker at its claim, from the record's own times)
    assert mine[:3] == [(None, "received"), ("received", "queued"), ("queued", "issuing")] and mine[-1][1] == "issued"
    assert {r["actor"] for r in lines} == {"worker:local", "intake"} and all(r["time"] and r["cause"] for r in lines)


def test_nuonuo_records_keep_the_body_and_mask_the_user_tax_header(world: World) -> None:
    [key] = objects_of(world, HANGZHOU.store_id, TODAY, "interactions")
    lines = records.decode_lines(world.archive.get(key))
    text = json.dumps(lines, ensure_ascii=False)
    nuonuo = SECRETS["einvoice/demo-hangzhou/nuonuo"]
    assert nuonuo["app_secret"] not in text and HANGZHOU.seller.tax_id not in text
    issue = next(r for r in lines if r["operation"].startswith("issue"))
    headers = dict(issue["request"]["headers"])
    assert headers["accessToken"] == headers["X-Nuonuo-Sign"] == records.REDACTED
    assert "*" in headers["userTax"]


# --- manifests, pull, verify -----------------------------------------------------------------------
def test_the_job_sealed_every_day_in_order_and_chained_them(world: World) -> None:
    assert world.sealed[SHANGHAI.store_id] == DAYS
    assert world.sealed[HANGZHOU.store_id] == [TODAY]
    doc = json.loads(world.archive.get(manifest_key(SHANGHAI.store_id, DAYS[1])))
    assert doc["previous"]["day"] == DAYS[0].isoformat() and doc["public_key"] == world.public_key
    assert len(doc["objects"]) == 2


def test_pull_then_verify_offline_is_ok(world: World, pulled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ENDPOINT_URL", "ARCHIVE_BUCKET", "STORES_TABLE"):
        monkeypatch.delenv(var, raising=False)  # offline: nothing but the folder and the key
    result = cli("logs", "verify", str(pulled), "--public-key", world.public_key)
    assert result.exit_code == 0, result.output
    assert "all 3 day(s) verified" in result.output
    for day in DAYS:
        assert day.isoformat() in result.output


def test_pull_is_resumable(world: World, pulled: Path) -> None:
    again = cli(
        "logs",
        "pull",
        "--store",
        SHANGHAI.store_id,
        "--from",
        DAYS[0].isoformat(),
        "--to",
        TODAY.isoformat(),
        "--out",
        str(pulled),
    )
    assert again.exit_code == 0, again.output
    state = json.loads((pulled / "pull.json").read_text())
    assert state["public_keys_seen"] == [world.public_key]
    row = next(line for line in again.output.splitlines() if line.startswith(TODAY.isoformat()))
    assert row.split()[2] == "0"  # nothing fetched again


# --- tampering -----------------------------------------------------------------------------------------
def _copy(pulled: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(pulled, target)
    return target


def _verify(folder: Path, key: str) -> Any:
    return cli("logs", "verify", str(folder), "--public-key", key)


def _data(folder: Path, day: date) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*.jsonl.gz") if (data_day(p.relative_to(folder).as_posix()) or ("", None))[1] == day
    )


@pytest.mark.parametrize("tamper", ["edit_byte", "delete", "insert", "swap_days", "break_chain"])
def test_each_tampering_is_detected_and_named(world: World, pulled: Path, tmp_path: Path, tamper: str) -> None:
    folder = _copy(pulled, tmp_path)
    store = folder / SHANGHAI.store_id
    victim = _data(folder, DAYS[1])[0]
    if tamper == "edit_byte":
        blob = bytearray(victim.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        victim.write_bytes(bytes(blob))
        expected = "changed"
    elif tamper == "delete":
        victim.unlink()
        expected = "missing"
    elif tamper == "insert":
        (victim.parent / "20990101T000000Z-intruder.jsonl.gz").write_bytes(records.encode_lines([{"x": 1}]))
        expected = "added"
    elif tamper == "swap_days":
        a, b = store / f"{DAYS[0]:%Y/%m/%d}", store / f"{DAYS[1]:%Y/%m/%d}"
        a.rename(tmp_path / "swap")
        b.rename(a)
        (tmp_path / "swap").rename(b)
        ma, mb = store / "manifests" / f"{DAYS[0]:%Y/%m/%d}.json", store / "manifests" / f"{DAYS[1]:%Y/%m/%d}.json"
        blob_a, blob_b = ma.read_bytes(), mb.read_bytes()
        ma.write_bytes(blob_b)
        mb.write_bytes(blob_a)
        expected = "reordered"
    else:
        (store / "manifests" / f"{DAYS[1]:%Y/%m/%d}.json").unlink()
        expected = "chain_broken"
    result = _verify(folder, world.public_key)
    assert result.exit_code == 1, result.output
    assert f" {expected}: " in result.output and "FAILED" in result.output


def test_a_changed_object_in_the_bucket_is_alerted_by_the_next_run(world: World) -> None:
    sns, sqs = world.session.client("sns"), world.session.client("sqs")
    inbox = sqs.create_queue(QueueName=f"archive-alerts-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=world.settings.alarm_topic_arn, Protocol="sqs", Endpoint=arn)
    [key] = objects_of(world, HANGZHOU.store_id, TODAY, "transitions")
    original = world.archive.get(key)
    world.archive.put(key, records.encode_lines([{"forged": True}]))  # a new version (the old one stays locked)
    try:
        job = ManifestJob(
            archive=world.archive,
            keys=SigningKeys(world.settings.manifest_key_secret),
            alerts=wiring.manifest_job().alerts,
            logger=wiring.logger,
            clock=lambda: datetime.combine(TODAY + timedelta(days=2), datetime.min.time(), UTC) + timedelta(hours=1),
        )
        runs = {r.store: r for r in job.run()}
        checked = runs[HANGZHOU.store_id].checked
        assert checked is not None and not checked.ok and {f.kind for f in checked.findings} == {"changed"}
        alerts = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert len(alerts) == 1 and "fails verification" in alerts[0]["Body"] and key in alerts[0]["Body"]
    finally:
        world.archive.put(key, original)


def test_a_failed_flush_leaves_the_batch_unacknowledged(world: World) -> None:
    class Down:
        def put(self, key: str, body: bytes) -> None:
            raise OSError("archive unavailable")

    log = InvocationArchive(Down(), actor="worker:test")
    worker = wiring.make_worker(wiring.make_issue(recorder=log), wiring.queue(), archive=log)
    enqueue_order(world.settings, SHANGHAI, "AR-CRASH")
    batch: list[Mapping[str, Any]] = [*receive_records(world.session, world.settings, 1)]
    assert worker.handle(batch, lambda: 60_000).failed == [batch[0]["messageId"]]
    assert log.pending and all(k.startswith(f"{SHANGHAI.store_id}/") for k in log.pending)
    kept = sorted(log.pending)
    log.writer = world.archive  # the archive is back: the next flush of this container writes them
    assert sorted(log.flush()) == kept and not log.pending
    assert all(world.archive.get(k) for k in kept)


def test_an_operator_command_archives_its_transitions_under_the_operator(world: World) -> None:
    from chalicelib.adapters.ledger import Ledger
    from infra.cli_logs import operator_log
    from tests.adapters.test_worker_sandbox import record

    key = record(world.settings, HANGZHOU, "AR-OPERATOR")
    with operator_log("alice") as recorder:
        assert recorder is not None
        invocation = recorder.invocation
        Ledger(world.settings.ledger_table, recorder=recorder).mark_queued(key)
    [obj] = [k for k in objects_of(world, HANGZHOU.store_id, TODAY, "transitions") if str(invocation) in k]
    [line] = records.decode_lines(world.archive.get(obj))
    assert (line["order_key"], line["from"], line["to"], line["actor"]) == (key, "received", "queued", "operator:alice")


def test_the_scheduled_handler_runs_the_job(world: World) -> None:
    import app
    from infra.scheduler import scheduled_event

    class Context:
        aws_request_id = "local"

        def get_remaining_time_in_millis(self) -> int:
            return 300_000

    result = app.archive_manifest(scheduled_event("archive-manifest", "cn-north-1"), Context())
    assert result["failed"] == [] and set(result["sealed"]) == {SHANGHAI.store_id, HANGZHOU.store_id}
