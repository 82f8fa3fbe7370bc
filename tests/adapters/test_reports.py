"""The finance reports on the embedded AWS (moto) and the HTTP tax sandbox (``einvoice report …``).

One month of one store, made once for the module: blue and red invoices issued by the real worker
against the sandbox (``tests/adapters/test_red_sandbox.py``'s harness, virtual time), then the ledger
made to disagree with the platform the ways reconcile must find (an amount changed, a lost "issued"
write, an over-refund), plus seeded records (rejected, failed, stuck, an invoice the platform never
saw), a record of another store and one older than the read window. Each report is checked against
the ledger as read back independently (raw items), the PDF through pypdf.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.bench_reports import batch_put, ledger_item
from chalicelib.adapters import aws
from chalicelib.adapters.archive import S3Archive
from chalicelib.adapters.ledger_items import iso
from chalicelib.adapters.report_reads import ArchiveReader, MonthReader
from chalicelib.audit import records as audit_records
from chalicelib.audit.keys import manifest_key, object_key
from chalicelib.domain.order_keys import order_key, serial_for
from chalicelib.reports import receivables as rv
from chalicelib.reports import reconcile as rc
from chalicelib.reports.csv_out import BOM
from chalicelib.reports.month import Month
from chalicelib.reports.run import audit_report, load, receivables_report, reconcile_report
from infra import cli_app
from infra.cli_report import ExchangeLookup
from tests.adapters.test_red_sandbox import Red, env  # noqa: F401 - env: the module's stack and sandbox
from tests.adapters.test_worker_sandbox import HANGZHOU, SHANGHAI
from tests.support import orders

D = Decimal
STORE = SHANGHAI.store_id
COMPANY_TAX_ID = "91310115MA1K4ABC3C"
AMOUNT = re.compile(r"^-?\d+\.\d{2}$")


@dataclass
class World:
    month: Month
    table: str
    bucket: str
    keys: dict[str, str]  # role → order key
    numbers: dict[str, str]  # role → invoice number


def _ddb() -> Any:
    return aws.client("dynamodb")


def _item(table: str, key: str) -> dict[str, Any]:
    item: dict[str, Any] = _ddb().get_item(TableName=table, Key={"pk": {"S": f"order#{key}"}, "sk": {"S": "order"}})[
        "Item"
    ]
    return item


def _set(table: str, key: str, **values: str) -> None:
    names = {f"#n{i}": k for i, k in enumerate(values)}
    expr = ", ".join(f"#n{i} = :v{i}" for i in range(len(values)))
    _ddb().update_item(
        TableName=table,
        Key={"pk": {"S": f"order#{key}"}, "sk": {"S": "order"}},
        UpdateExpression=f"SET {expr}",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": {"S": v} for i, v in enumerate(values.values())},
    )


def _payload(item: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(zlib.decompress(item["payload"]["B"]))
    return result


@pytest.fixture(scope="module")
def world(env: Any) -> Iterator[World]:  # noqa: F811 - the imported module fixture
    settings = env[0]
    red = Red(env)
    blues = {role: red.order(SHANGHAI) for role in ("a", "d", "e", "f")}
    blues["b"] = red.order(SHANGHAI, buyer=orders.company_buyer(COMPANY_TAX_ID, "上海买方贸易有限公司"))
    red.run(*blues.values())
    refund = red.refund(blues["a"], "53.00")
    red.run(refund)
    table = settings.ledger_table
    keys = {**blues, "ra": refund}
    assert {role: red.status(k) for role, k in keys.items()} == {
        **dict.fromkeys(blues, "issued"),
        "ra": "red_issued",
    }
    numbers = {role: str(red.fields(k)["invoice_number"]) for role, k in keys.items()}
    now = datetime.fromtimestamp(red.clock.now, UTC)
    month = Month.parse((now + timedelta(hours=8)).strftime("%Y-%m"))

    # the ledger made to disagree with the platform
    d_item = _item(table, keys["d"])
    payload = _payload(d_item)
    payload["order"].update(total_amount="990.00", total_tax="9.00", total="999.00")
    _ddb().update_item(
        TableName=table,
        Key={"pk": d_item["pk"], "sk": d_item["sk"]},
        UpdateExpression="SET payload = :p",
        ExpressionAttributeValues={":p": {"B": zlib.compress(json.dumps(payload, ensure_ascii=False).encode())}},
    )
    _ddb().update_item(  # the worker's "issued" write lost: the ledger says failed
        TableName=table,
        Key={"pk": {"S": f"order#{keys['e']}"}, "sk": {"S": "order"}},
        UpdateExpression="SET #s = :f, failure_code = :c, failure_reason = :r REMOVE invoice_number, issued_at",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":f": {"S": "failed"}, ":c": {"S": "E9999"}, ":r": {"S": "平台超时"}},
    )
    _set(table, keys["f"], refunded_total="200.00")
    _set(table, keys["a"], fixed_by="alice", fixed_at=now.isoformat())

    # seeded records
    order = _payload(_item(table, keys["b"]))["order"]

    def seeded(
        role: str, status: str, *, store: Any = SHANGHAI, at: datetime = now, **fields: str | int
    ) -> dict[str, Any]:
        key = order_key(store.store_id, "standard", f"SEED-{role}-{uuid.uuid4().hex[:6]}")
        keys[role] = key
        body = {
            "event": {"order_id": key.split(":")[2], "amount": order["total"]},
            "order": {**order, "order_key": key},
        }
        violations = None
        if status == "rejected":
            body = {"event": {"order_id": key.split(":")[2], "amount": "88.00", "buyer": {"title": "某公司"}}}
            violations = [{"field": "buyer.tax_id", "code": "buyer_tax_id_checksum", "message": "…", "message_en": "…"}]
        return ledger_item(
            key, store.store_id, status=status, kind="paid", payload=body, created_at=at, fields=fields,
            violations=violations,
        )  # fmt: skip

    f_refund = order_key(STORE, "standard", keys["f"].split(":")[2], "RF-over")
    keys["rf"] = f_refund
    items = [
        seeded("g", "issued", serial=serial_for("nowhere"), invoice_number="26310000000000000001",
               issued_at=now.isoformat()),
        seeded("h", "rejected"),
        seeded("i", "failed", serial="EI" + "0" * 18, failure_code="E1101", failure_reason="购方税号错误"),
        seeded("j", "retrying", serial="EI" + "1" * 18, due="due", due_at=iso(now.timestamp() - 3 * 3600)),
        seeded("hz", "issued", store=HANGZHOU, serial="EI" + "2" * 18, invoice_number="26330000000000000001",
               issued_at=now.isoformat()),
        seeded("old", "issued", at=now - timedelta(days=60), serial="EI" + "3" * 18,
               invoice_number="26310000000000000009", issued_at=(now - timedelta(days=60)).isoformat()),
        ledger_item(
            f_refund, STORE, status="refund_refused", kind="refunded", created_at=now,
            payload={"event": {"order_id": keys["f"].split(":")[2], "refund_amount": "200.00"}},
            fields={"blue_key": keys["f"], "last_error": "over-refund: 200.00 > 159.00"},
        ),
    ]  # fmt: skip
    assert batch_put(_ddb(), table, items) == len(items)

    # the archive: an operator's retry in the transitions stream, one day's manifest
    archive = S3Archive(settings.archive_bucket)
    transition = audit_records.transition(
        at=now, store=STORE, order_key=keys["b"], event="operator_retry", before="failed", after="ambiguous",
        cause="operator retry", actor="operator:bob", invocation="test",
    )  # fmt: skip
    archive.put(object_key(STORE, now.date(), "transitions", f"t-{uuid.uuid4().hex[:6]}"),
                audit_records.encode_lines([transition]))  # fmt: skip
    manifest: dict[str, Any] = {
        "store": STORE,
        "day": now.date().isoformat(),
        "merkle_root": "ab" * 32,
        "objects": [],
        "previous": None,
    }
    archive.put(manifest_key(STORE, now.date()), json.dumps(manifest).encode())
    yield World(month, table, settings.archive_bucket, keys, numbers)


def _raw(world: World) -> dict[str, dict[str, Any]]:
    """The store's order items, read back independently of the report reader (a scan, for the test)."""
    found: dict[str, dict[str, Any]] = {}
    for page in _ddb().get_paginator("scan").paginate(TableName=world.table):
        for item in page["Items"]:
            if item.get("sk", {}).get("S") == "order" and item["store_id"]["S"] == STORE:
                found[item["order_key"]["S"]] = item
    return found


def test_receivables_rows_and_columns_match_the_ledger(world: World) -> None:
    loaded = load(MonthReader(world.table), STORE, world.month)
    rows, body = receivables_report(loaded, world.month)
    assert body.startswith(BOM.encode())
    table = list(csv.reader(io.StringIO(body.decode("utf-8").removeprefix(BOM))))
    assert tuple(table[0]) == rv.COLUMNS and len(table) == len(rows) + 1
    by_key = {r["order_key"]: r for r in (dict(zip(rv.COLUMNS, row, strict=True)) for row in table[1:])}
    raw = _raw(world)
    issued = {k for k, i in raw.items() if i["status"]["S"] in ("issued", "red_issued") and k != world.keys["old"]}
    assert set(by_key) == issued
    assert world.keys["hz"] not in by_key and world.keys["old"] not in by_key and world.keys["e"] not in by_key
    for key, row in by_key.items():
        item = raw[key]
        assert row["invoice_number"] == item["invoice_number"]["S"] and row["store"] == STORE
        assert all(AMOUNT.match(row[c]) for c in ("amount_excl_tax", "tax", "total"))
        assert D(row["amount_excl_tax"]) + D(row["tax"]) == D(row["total"])
        if item["status"]["S"] == "issued":
            assert row["kind"] == "invoice" and D(row["total"]) == D(_payload(item)["order"]["total"])
    b, ra = by_key[world.keys["b"]], by_key[world.keys["ra"]]
    assert (b["buyer_name"], b["buyer_tax_id"], b["tax_rates"]) == ("上海买方贸易有限公司", COMPANY_TAX_ID, "6%")
    assert ra["kind"] == "reversal" and ra["original_number"] == world.numbers["a"]
    assert D(ra["total"]) == D("-53.00") and D(ra["amount_excl_tax"]) < 0 and D(ra["tax"]) < 0


def test_reconcile_names_every_difference_against_the_sandbox(world: World) -> None:
    loaded = load(MonthReader(world.table), STORE, world.month)
    found, body, asked = reconcile_report(loaded, world.month, ExchangeLookup(STORE))
    got = {(d.kind, d.order_key) for d in found}
    k = world.keys
    assert got == {
        (rc.AMOUNT_MISMATCH, k["d"]),
        (rc.INVOICED_UNKNOWN_TO_PLATFORM, k["g"]),
        (rc.PLATFORM_INVOICE_UNKNOWN_HERE, k["e"]),
        (rc.PAID_NOT_INVOICED, k["e"]),
        (rc.PAID_NOT_INVOICED, k["h"]),
        (rc.PAID_NOT_INVOICED, k["i"]),
        (rc.REFUND_NOT_REVERSED, k["rf"]),
        (rc.RED_EXCEEDS_BLUE, k["f"]),
        (rc.STUCK, k["j"]),
    }
    mismatch = next(d for d in found if d.kind == rc.AMOUNT_MISMATCH)
    assert (mismatch.ledger_total, mismatch.platform_total) == ("999.00", "159.00")
    lost = next(d for d in found if d.kind == rc.PLATFORM_INVOICE_UNKNOWN_HERE)
    assert lost.platform_number == world.numbers["e"] and lost.platform_status == "issued"
    assert asked >= 8  # every record that may have been sent, the red one included
    table = list(csv.reader(io.StringIO(body.decode("utf-8").removeprefix(BOM))))
    assert tuple(table[0]) == rc.COLUMNS and len(table) == len(found) + 1


def test_audit_pdf_counts_causes_operators_and_manifests(world: World) -> None:
    from pypdf import PdfReader

    loaded = load(MonthReader(world.table), STORE, world.month)
    report, pdf = audit_report(loaded, STORE, world.month, ArchiveReader(world.bucket))
    summary = {t.label: t for t in report.summary}
    assert summary["issued"].count == 5 and summary["reversed (red)"].count == 1  # a b d f g; ra
    assert summary["reversed (red)"].total == D("-53.00")
    assert summary["issued"].total == D("159.00") * 4 + D("999.00")  # a b f g (b's order) and d (changed)
    assert summary["failed"].count == 2 and summary["rejected"].count == 1  # e i; h
    assert dict(report.causes) == {"E9999": 1, "E1101": 1, "buyer_tax_id_checksum": 1, "refund_refused": 1}
    assert {(o.operator, o.action) for o in report.operators} == {("alice", "fixed"), ("bob", "retried")}
    sealed = [m for m in report.manifests if m.merkle_root]
    assert [m.merkle_root for m in sealed] == ["ab" * 32]
    assert sum(r.issued for r in report.days) == 5

    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    for expected in ("demo-shanghai", "开票审计报告", "异常原因", "alice", "ab" * 8, "no manifest"):
        assert expected in text, expected
    fonts: dict[str, Any] = {
        str(font.get_object()["/BaseFont"]): font.get_object()
        for page in reader.pages
        for font in page["/Resources"]["/Font"].values()  # type: ignore[index]
    }
    assert fonts
    for name, font in fonts.items():  # only the embedded TrueType subset: no standard font, no fallback
        assert font["/Subtype"] == "/TrueType" and re.fullmatch(r"/[A-Z]{6}\+WenQuanYiMicroHei", name), name
        assert "/FontFile2" in font["/FontDescriptor"].get_object() and "/ToUnicode" in font


def test_the_cli_writes_each_report_and_its_exit_codes(world: World, tmp_path: Path) -> None:
    app = cli_app.application()
    runner = CliRunner()
    month = str(world.month)
    base = ["report", "{}", "--store", STORE, "--month", month, "--out"]
    audit = runner.invoke(app, [*base[:1], "audit", *base[2:], str(tmp_path / "a.pdf")])
    assert audit.exit_code == 0, audit.output
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    receivables = runner.invoke(app, [*base[:1], "receivables", *base[2:], str(tmp_path / "r.csv")])
    assert receivables.exit_code == 0 and "5 invoices, 1 reversals" in receivables.output
    reconcile = runner.invoke(app, [*base[:1], "reconcile", *base[2:], str(tmp_path / "c.csv"), "--by", "carol"])
    assert reconcile.exit_code == 1, reconcile.output  # differences found
    assert "9 differences" in reconcile.output and (tmp_path / "c.csv").exists()
    both = runner.invoke(app, ["report", "all", "--store", STORE, "--month", month, "--out-dir", str(tmp_path / "m")])
    assert both.exit_code == 1, both.output
    made = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert made == [
        f"{k}-{STORE}-{month}.{x}" for k, x in (("audit", "pdf"), ("receivables", "csv"), ("reconcile", "csv"))
    ]
    assert (tmp_path / "m" / made[2]).read_bytes() == (tmp_path / "c.csv").read_bytes()
    bad = runner.invoke(app, ["report", "audit", "--store", STORE, "--month", "2026-13", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()


def test_report_help_needs_no_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORES_TABLE", raising=False)
    app = cli_app.application()
    result = CliRunner().invoke(app, ["report", "--help"])
    assert result.exit_code == 0 and all(c in result.output for c in ("audit", "reconcile", "receivables"))
    for command in ("audit", "reconcile", "receivables"):
        result = CliRunner().invoke(app, ["report", command, "--help"])
        assert result.exit_code == 0 and "--month" in result.output and "--out" in result.output, command


def test_a_clean_month_reconciles_with_exit_code_0(world: World, tmp_path: Path) -> None:
    """An empty month of a store (no records at all): nothing to differ, exit code 0."""
    result = CliRunner().invoke(
        cli_app.application(),
        ["report", "reconcile", "--store", HANGZHOU.store_id, "--month", "2020-01", "--out", str(tmp_path / "c.csv")],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.csv").read_bytes() == (BOM + ",".join(rc.COLUMNS) + "\r\n").encode()


def test_the_bench_seeds_what_the_ledger_reads() -> None:
    """``bench/bench_reports.py`` writes items as the ledger does: each reads back as the record it means."""
    from bench.bench_reports import month_items
    from chalicelib.adapters.ledger_items import record_of
    from chalicelib.reports.facts import fact_of

    month = Month.parse("2026-02")
    items = month_items(SHANGHAI, month, 200)
    records = [record_of(i) for i in items]
    assert len(records) == 212 and {r.status.value for r in records} == {
        "issued",
        "red_issued",
        "rejected",
        "failed",
        "retrying",
    }
    assert all(month.start <= datetime.fromisoformat(r.created_at.replace("Z", "+00:00")) for r in records)
    blue = next(r for r in records if r.status.value == "issued")
    fact = fact_of(blue)
    rate = SHANGHAI.default_item.tax_rate
    assert fact.rates == (rate,) and fact.total == D("90.00") and fact.amount + fact.tax == fact.total
    assert fact.tax == (D("90.00") * rate / (1 + rate)).quantize(D("0.01"), rounding=ROUND_HALF_UP)
