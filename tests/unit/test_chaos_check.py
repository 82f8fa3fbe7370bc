"""The chaos checker's pure parts (``chaos/check.py``, ``chaos/leaks.py``, ``chaos/table.py``): a small
journal and what the stack would hold after it, clean, then broken one way at a time — each break is
named in its row's detail, and a secret is never printed whole."""

from __future__ import annotations

import base64
import json
import time
from copy import deepcopy
from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib.adapters.ledger_items import iso
from chalicelib.audit import records as audit_records
from chalicelib.domain.order_keys import event_order_key, order_key, red_form_serial, serial_for
from chalicelib.domain.order_state import OrderStatus
from chalicelib.domain.taxpayer import mask, uscc_check_char
from chalicelib.services.ports import OrderRecord
from chaos import check, leaks, table
from chaos.journal import Disruption, Journal, Post
from chaos.readings import Readings, token_values

S = OrderStatus
STORE, PLATFORM = "demo-shanghai", "standard"
SELLER = "91310115MA1K4ABC2B"
BUYER = "91310115MA1K4ABC3C"
SECRET = "whsec_bG9jYWwtZGVtby1zaGFuZ2hhaS1zZWNyZXQtMDE="
SIGNATURE = "v1,c2lnbmF0dXJlLW9mLXRoZS1maXJzdC1wb3N0LTAx"
TOKEN = "tok-3f9a1c77e2b04d55"


def key(order_id: str, refund_id: str | None = None) -> str:
    return order_key(STORE, PLATFORM, order_id, refund_id)


def post(seq: int, order_id: str, amount: str, **kw: object) -> Post:
    base: dict[str, object] = {
        "seq": seq,
        "kind": "paid",
        "store_id": STORE,
        "platform": PLATFORM,
        "order_id": order_id,
        "event_id": f"ev-{seq}",
        "refund_id": None,
        "amount": amount,
        "status": 200,
        "reply": {"outcome": "queued", "order_key": key(order_id, kw.get("refund_id"))},  # type: ignore[arg-type]
        "signature_values": [f"{SIGNATURE}{seq:02d}"],
    }
    base.update(kw)
    return Post(**base)  # type: ignore[arg-type]


def record(k: str, status: OrderStatus, *, total: str = "", **fields: str | int) -> OrderRecord:
    payload: dict[str, object] = {"event": {"amount": total}}
    if total:
        payload["order"] = {"total": total, "total_amount": total, "total_tax": "0.00", "buyer": {"tax_id": BUYER}}
    return OrderRecord(
        order_key=k,
        store_id=STORE,
        status=status,
        kind="refunded" if ":refund:" in k else "paid",
        payload=payload,
        created_at=iso(time.time() - 60),
        violations=[{"code": "tax_id_format", "field": "buyer.tax_id"}] if status is S.REJECTED else None,
        fields={"updated_at": iso(time.time() - 30), **fields},
    )


def invoice(serial: str, number: str, total: str, *, red: bool = False, blue_number: str = "") -> dict[str, object]:
    return {
        "protocol": "sta",
        "serial": serial,
        "order_no": "x",
        "kind": "red" if red else "blue",
        "status": "issued",
        "number": number,
        "amount": total,
        "tax": "0.00",
        "total": total,
        "blue_number": blue_number,
        "seller_tax_id": SELLER,
        "buyer_tax_id": BUYER,
    }


def interaction(body: bytes, **extra: object) -> dict[str, object]:
    return {
        "v": 1,
        "kind": "interaction",
        "order_key": key("O1"),
        "request_body_b64": base64.b64encode(body).decode(),
        "response": {"status": 200, "headers": [], "body_b64": None},
        "message": "ok",
        **extra,
    }


N1, N2, NR = "26310000000000000001", "26310000000000000002", "26310000000000000003"
R1, R5 = key("O1", "R1"), key("O5", "R5")


@pytest.fixture()
def world(tmp_path: Path) -> tuple[Journal, Readings]:
    posts = [
        post(1, "O1", "159.00", buyer_tax_id=BUYER),
        post(2, "O1", "159.00", duplicate_of=1),  # an identical re-delivery
        post(3, "O2", "100.00"),
        post(
            4,
            "O2",
            "100.00",
            duplicate_of=3,
            resigned=True,
            event_id="ev-4-resigned",
            reply={"outcome": "duplicate", "order_key": key("O2")},
        ),
        post(5, "O3", "50.00", expect="reject", status=422, reply={"error": "OrderRejected"}),
        post(6, "O4", "70.00", expect="hold", reply={"outcome": "held"}),
        post(7, "O5", "80.00"),
        post(8, "O1", "53.00", kind="refund", refund_id="R1"),
        post(9, "O5", "80.00", kind="refund", refund_id="R5"),
        post(10, "O2", "100.00", duplicate_of=3, concurrent=True, status=None, reply=None),
    ]
    journal = Journal(
        started=time.time() - 120,
        ended=time.time(),
        orders=5,
        stack={"api": "", "aws": "", "sandbox": "", "state_dir": str(tmp_path), "region": "cn-north-1", "env": {}},
        posts=posts,
        disruptions=[Disruption(at=1.0, until=2.0, what="worker_kill", detail={"pid": 1})],
        known_secrets=["local-sta-sign-key"],
    )
    records = [
        record(
            key("O1"), S.ISSUED, total="159.00", invoice_number=N1, serial=serial_for(key("O1")), refunded_total="53.00"
        ),
        record(
            R1,
            S.RED_ISSUED,
            invoice_number=NR,
            serial=red_form_serial(R1),
            red_total="53.00",
            form_round="1",
            blue_key=key("O1"),
        ),
        record(key("O2"), S.ISSUED, total="100.00", invoice_number=N2, serial=serial_for(key("O2"))),
        record(key("O3"), S.REJECTED),
        record(key("O4"), S.HELD, total="70.00"),
        record(key("O5"), S.CANCELLED, total="0.00"),
        record(R5, S.REFUND_NETTED, netted_into=key("O5"), refund_total="80.00"),
    ]
    log = f'{{"level":"INFO","message":"issued","buyer":"{mask(BUYER)}","order_key":"{key("O1")}"}}\n'
    readings = Readings(
        invoices=[
            invoice(serial_for(key("O1")), N1, "159.00"),
            invoice(serial_for(key("O2")), N2, "100.00"),
            invoice(red_form_serial(R1), NR, "-53.00", red=True, blue_number=N1),
        ],
        tokens=[TOKEN],
        records=records,
        events={f"event#{event_order_key(STORE, PLATFORM, 'ev-1')}": key("O1")},
        items=[{"pk": {"S": f"order#{r.order_key}"}, "status": {"S": r.status.value}} for r in records],
        archive=[
            (
                "demo-shanghai/2026/12/02/interactions/a.jsonl.gz",
                audit_records.encode_lines([interaction(json.dumps({"nsrsbh": SELLER, "gmfnsrsbh": BUYER}).encode())]),
            )
        ],
        secrets=[
            ("einvoice/demo-shanghai/webhook/standard", json.dumps({"secrets": [SECRET]})),
            ("einvoice/demo-shanghai/sta", json.dumps({"app_id": "LOCALAPP0001", "sign_key": "local-sta-sign-key"})),
        ],
        logs=[(str(tmp_path / "api.log"), log)],
    )
    return journal, readings


def rows(report: check.CheckReport) -> dict[str, check.Row]:
    return {r.name: r for r in report.rows}


def broken(report: check.CheckReport) -> dict[str, check.Row]:
    return {r.name: r for r in report.rows if not r.ok}


def test_a_clean_run_passes_and_prints_one_table(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    report = check.evaluate(journal, readings)
    assert broken(report) == {}, [(r.name, r.detail) for r in report.rows if not r.ok]
    assert report.ok and len(report.rows) == 9
    figures = dict(report.figures)
    assert figures["duplicates identical / concurrent / re-signed"] == "1 / 1 / 1"
    assert figures["refunds full / partial"] == "1 / 1"
    assert figures["disruptions: worker_kill"] == "1"
    assert figures["log lines scanned"] == "1" and figures["archive records scanned"] == "1"
    text = table.render(report, journal, tty=False)
    assert "✓" in text and "✗" not in text and "\x1b[" not in text
    assert "one blue invoice per paid order" in text and "orders (asked / sent)" in text
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_a_second_blue_invoice_under_the_same_serial_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.invoices.append(invoice(serial_for(key("O2")), "26310000000000000009", "100.00"))
    row = broken(check.evaluate(journal, readings))["one blue invoice per paid order"]
    assert any(key("O2") in d and "2 blue invoices" in d for d in row.detail)


def test_a_blue_invoice_the_ledger_does_not_know_is_named_by_its_order(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    extra = invoice("EI00000000000000FFFF", "26310000000000000010", "159.00")
    readings.invoices.append({**extra, "order_no": "O1"})
    report = check.evaluate(journal, readings)
    row = broken(report)["one blue invoice per paid order"]
    assert any("unknown to the ledger" in d and key("O1") in d for d in row.detail)


def test_a_lost_order_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.records = [replace(r, status=S.QUEUED) if r.order_key == key("O2") else r for r in readings.records]
    bad = broken(check.evaluate(journal, readings))
    assert any(key("O2") in d and "in flight: queued" in d for d in bad["no order lost"].detail)
    assert "one blue invoice per paid order" in bad  # the sandbox holds an invoice the ledger does not say issued


def test_an_acknowledged_order_missing_from_the_ledger_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.records = [r for r in readings.records if r.order_key != key("O4")]
    bad = broken(check.evaluate(journal, readings))
    assert any(key("O4") in d and "no ledger record" in d for d in bad["no order lost"].detail)
    assert any(key("O4") in d for d in bad["every acknowledged webhook accounted for"].detail)


def test_an_invalid_post_that_was_issued_and_a_failure_without_reason_are_named(
    world: tuple[Journal, Readings],
) -> None:
    journal, readings = world
    swap = {
        key("O3"): replace(readings.records[3], status=S.HELD, violations=None),
        key("O2"): replace(readings.records[2], status=S.FAILED),
    }
    readings.records = [swap.get(r.order_key, r) for r in readings.records]
    detail = broken(check.evaluate(journal, readings))["no order lost"].detail
    assert any(key("O3") in d and "sent invalid, is held" in d for d in detail)
    assert any(key("O2") in d and "failed without a reason" in d for d in detail)


def test_a_red_above_its_blue_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.invoices[2] = {**readings.invoices[2], "total": "-200.00", "amount": "-200.00"}
    bad = broken(check.evaluate(journal, readings))
    detail = bad["red totals equal refunds, never above the blue"].detail
    assert any(key("O1") in d and "exceeds blue" in d for d in detail)
    assert "reconciliation clean" in bad  # the platform's red total differs from the ledger's


def test_a_refund_whose_red_never_came_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.invoices = readings.invoices[:2]
    detail = broken(check.evaluate(journal, readings))["red totals equal refunds, never above the blue"].detail
    assert any(key("O1") in d and "red invoices total 0.00" in d for d in detail)


def test_an_event_id_recorded_for_another_order_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.events[f"event#{event_order_key(STORE, PLATFORM, 'ev-3')}"] = key("O1")
    detail = broken(check.evaluate(journal, readings))["every acknowledged webhook accounted for"].detail
    assert any("ev-3" in d and key("O1") in d for d in detail)


def test_a_ledger_record_no_post_made_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.records.append(record(key("O9"), S.QUEUED))
    detail = broken(check.evaluate(journal, readings))["every acknowledged webhook accounted for"].detail
    assert any(key("O9") in d and "never sent" in d for d in detail)


def test_a_leaked_secret_in_a_log_line_is_named_by_file_and_line_never_printed(
    world: tuple[Journal, Readings],
) -> None:
    journal, readings = world
    path, text = readings.logs[0]
    readings.logs[0] = (path, text + f"DEBUG verifying with {SECRET}\n")
    report = check.evaluate(journal, readings)
    row = broken(report)["no secret in logs, archive or ledger"]
    assert row.detail == [f"{path}:2: secret {leaks.masked(SECRET)} (einvoice/demo-shanghai/webhook/standard)"]
    rendered = table.render(report, journal, tty=False) + json.dumps(report.to_dict())
    assert SECRET not in rendered and "✗" in rendered


def test_a_known_secret_of_the_journal_in_an_archive_record_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    journal.known_secrets.append("driver-only-sm4-key-0001")
    blob = audit_records.encode_lines([interaction(b"{}", message="key driver-only-sm4-key-0001")])
    readings.archive.append(("demo-shanghai/2026/12/02/interactions/b.jsonl.gz", blob))
    detail = broken(check.evaluate(journal, readings))["no secret in logs, archive or ledger"].detail
    assert detail and detail[0].startswith("archive demo-shanghai/2026/12/02/interactions/b.jsonl.gz record 1")


def test_a_secret_inside_the_evidence_is_still_a_leak(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    blob = audit_records.encode_lines([interaction(f'{{"sign":"{TOKEN}"}}'.encode())])
    readings.archive.append(("demo-shanghai/2026/12/02/interactions/c.jsonl.gz", blob))
    detail = broken(check.evaluate(journal, readings))["no token in logs, archive or ledger"].detail
    assert detail and "record 1 request_body_b64" in detail[0] and TOKEN not in detail[0]


def test_a_signature_in_a_log_line_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    sig = journal.posts[0].signature_values[0].split(",")[1]  # the value without its "v1," prefix
    readings.logs.append(("/state/worker.log", f"bad signature {sig}\n"))
    detail = broken(check.evaluate(journal, readings))["no signature in logs, archive or ledger"].detail
    assert detail and detail[0].startswith("/state/worker.log:1: signature") and "(post 1)" in detail[0]


def test_a_full_tax_id_in_a_log_is_named_a_masked_one_is_fine(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.logs.append(("/state/api.log", f"buyer {mask(BUYER)} ok\nbuyer {BUYER} refused\n"))
    detail = broken(check.evaluate(journal, readings))["no full tax id outside the evidence"].detail
    assert detail == [f"/state/api.log:2: tax id {leaks.masked(BUYER)} (tax id)"]


def test_a_uscc_shaped_string_in_a_log_is_found_by_the_project_rules(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    first = "91440300MA5F00012"
    uscc = first + uscc_check_char(first)
    wrong = first + ("0" if uscc[-1] != "0" else "1")
    readings.logs.append(("/state/api.log", f"serial EI{uscc} is not an id\nbad {wrong}\nid {uscc}\n"))
    detail = broken(check.evaluate(journal, readings))["no full tax id outside the evidence"].detail
    assert detail == [f"/state/api.log:3: tax id {leaks.masked(uscc)} (USCC-shaped)"]


def test_a_full_tax_id_outside_the_evidence_of_an_archive_record_is_named(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    blob = audit_records.encode_lines([interaction(b"{}", message=f"seller {SELLER}")])
    readings.archive.append(("k.jsonl.gz", blob))
    readings.items.append({"pk": {"S": f"order#{key('O1')}"}, "last_error": {"S": f"buyer {BUYER} refused"}})
    detail = broken(check.evaluate(journal, readings))["no full tax id outside the evidence"].detail
    assert any(d.startswith("archive k.jsonl.gz record 1:") for d in detail)
    assert any(d.startswith(f"ledger order#{key('O1')}:") for d in detail)


def test_tokens_not_listed_by_the_sandbox_are_not_checked_rather_than_passed(
    world: tuple[Journal, Readings],
) -> None:
    journal, readings = world
    readings.tokens = None
    row = rows(check.evaluate(journal, readings))["no token in logs, archive or ledger"]
    assert not row.ok and row.observed == "not checked: sandbox lists no tokens"


def test_an_unreadable_source_fails_the_report(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    readings.problems.append("archive unreadable: EndpointConnectionError")
    assert not broken(check.evaluate(journal, readings))["the stack was readable"].ok


def test_secret_values_flattened_identifiers_and_public_keys_left_out() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvgIBADANBgkqhkiG9w0BAQEFAASC\nAAAA\n-----END PRIVATE KEY-----\n"
    public = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----\n"
    value = json.dumps(
        {
            "app_id": "LOCALAPP0001",
            "sm4_key": "0123456789abcdef",
            "short": "abc",
            "keys": {"PUB_KEY_ID_1": public},
            "private": pem,
            "list": ["whsec_one_two_three"],
        }
    )
    assert sorted(leaks.flatten_secret(value)) == sorted(
        ["0123456789abcdef", "MIIEvgIBADANBgkqhkiG9w0BAQEFAASC", "whsec_one_two_three"]
    )
    assert leaks.flatten_secret("plain-secret-text") == ["plain-secret-text"]
    assert leaks.masked("0123456789abcdef") == "0123********cdef[16]" and leaks.masked("abc") == "***[3]"


def test_token_values_read_any_reasonable_shape() -> None:
    assert token_values({"tokens": [{"access_token": "a" * 20, "expires": 1}, "b" * 20]}) == ["a" * 20, "b" * 20]
    assert token_values({"tokens": {"c" * 20: 1700000000}}) == ["c" * 20]


def test_the_journal_round_trips_through_its_file(world: tuple[Journal, Readings], tmp_path: Path) -> None:
    journal, _ = world
    path = tmp_path / "chaos-journal.json"
    journal.save(path)
    again = Journal.load(path)
    assert again == journal and again.acknowledged_seqs() == {1, 3, 6, 7, 8, 9}
    assert deepcopy(again.first_posts()) == [p for p in journal.posts if p.duplicate_of is None]


def test_a_rejected_buyers_tax_id_known_only_to_the_ledger_is_looked_for(world: tuple[Journal, Readings]) -> None:
    journal, readings = world
    odd = "91110000ZZ0000001X"  # fails the check character: only the ledger's payload names it
    readings.records = [
        replace(r, payload={"event": {"buyer": {"tax_id": odd}}}) if r.order_key == key("O3") else r
        for r in readings.records
    ]
    readings.logs.append(("/state/api.log", f"rejected buyer {odd}\n"))
    detail = broken(check.evaluate(journal, readings))["no full tax id outside the evidence"].detail
    assert detail == [f"/state/api.log:1: tax id {leaks.masked(odd)} (tax id)"]
