"""The `einvoice` CLI against moto: stores, secrets (never echoed), orders, --help everywhere."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.order_state import order_key
from infra import cli
from tests.support.processes import ROOT


def run(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str, str]:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = cli.main(args)
    finally:
        sys.stdin = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stores_put_list_and_show_round_trip(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for f in sorted((ROOT / "examples" / "stores").glob("*.json")):
        assert run(["stores", "put", str(f)], capsys)[0] == 0
    code, out, _ = run(["stores", "list"], capsys)
    assert code == 0
    assert "demo-shanghai" in out and "demo-hangzhou" in out and "nuonuo" in out
    code, out, _ = run(["stores", "show", "demo-hangzhou"], capsys)
    shown = json.loads(out)
    assert shown["seller"]["tax_id"] == "339902999999789113"
    assert shown["provider"]["credentials_secret"] == "einvoice/demo-hangzhou/nuonuo"
    assert run(["stores", "show", "nope"], capsys)[0] == 1


def test_an_invalid_store_file_names_the_fields(stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = json.loads((ROOT / "examples" / "stores" / "demo-shanghai.json").read_text())
    bad["store_id"] = "Bad Id"
    bad["pilot_percentage"] = 150
    bad["webhook_secrets"]["standard"] = "not-under-the-prefix"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, _, err = run(["stores", "put", str(path)], capsys)
    assert code == 2
    assert "store_id" in err and "pilot_percentage" in err and "webhook_secrets" in err


def test_secrets_put_reads_stdin_and_never_prints_the_value(
    stack: Any, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    value = '{"secrets": ["whsec_c2VjcmV0LXZhbHVlLW5ldmVyLXByaW50ZWQ="]}'
    code, out, err = run(["secrets", "put", "einvoice/x/webhook/standard"], capsys, stdin=value)
    assert code == 0 and "created" in out
    assert "whsec_" not in out + err
    code, out, _ = run(["secrets", "put", "einvoice/x/webhook/standard"], capsys, stdin=value)
    assert "updated" in out
    got = aws.client("secretsmanager").get_secret_value(SecretId="einvoice/x/webhook/standard")["SecretString"]
    assert got == value
    assert run(["secrets", "put", "outside/prefix"], capsys, stdin=value)[0] == 2


def test_orders_list_shows_a_rejected_order_with_its_violations(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from chalicelib.adapters.ledger import Ledger

    ledger = Ledger(stack.env["LEDGER_TABLE"])
    key = order_key("s1", "standard", "o1")
    ledger.create_order(
        key,
        "s1",
        kind="paid",
        status="rejected",
        payload={"event": {}},
        outbox=False,
        violations=[{"field": "buyer.tax_id", "code": "tax_id_format", "message": "m", "message_en": "e"}],
    )
    code, out, _ = run(["orders", "list", "s1"], capsys)
    assert code == 0 and "rejected" in out and key in out
    code, out, _ = run(["orders", "show", key], capsys)
    assert json.loads(out)["violations"][0]["field"] == "buyer.tax_id"
    code, _, err = run(["orders", "show", "s1:o1"], capsys)  # the key of old, without the platform
    assert code == 1 and "store_id:platform:order_id" in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["stores"],
        ["stores", "put"],
        ["stores", "list"],
        ["stores", "show"],
        ["secrets", "put"],
        ["orders", "list"],
        ["orders", "show"],
        ["taxcodes", "import"],
        ["webhook", "sample"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", *args, "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage: einvoice" in result.stdout


def test_taxcodes_import_replaces_the_table_the_validator_reads(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.adapters.taxcodes import TaxCodeSource
    from chalicelib.domain.taxcodes import DEFAULT_TABLE_PATH

    source = TaxCodeSource(stack.env["CONFIG_BUCKET"])
    shipped = source.current()
    assert shipped.lookup("3070401000000000000") is not None  # nothing imported yet: the shipped copy

    table = json.loads(DEFAULT_TABLE_PATH.read_text())
    table["version"] = "2026.2-test"
    table["entries"] = [e for e in table["entries"] if e["code"] != "3070401000000000000"]
    path = tmp_path / "codes.json"
    path.write_text(json.dumps(table, ensure_ascii=False))
    code, out, _ = run(["taxcodes", "import", str(path)], capsys)
    assert code == 0 and "2026.2-test" in out

    fresh = TaxCodeSource(stack.env["CONFIG_BUCKET"]).current()  # a new container, or after the cache minute
    assert fresh.version == "2026.2-test"
    assert fresh.lookup("3070401000000000000") is None


def test_an_invalid_taxcodes_file_is_refused_and_the_current_table_kept(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"version": "x", "entries": [{"code": "123", "name": "n", "short_name": "s", "rates": ["0.07"]}]})
    )
    code, _, err = run(["taxcodes", "import", str(path)], capsys)
    assert code == 2
    assert "entries[0]" in err


def _failed_record(stack: Any, status: str) -> str:
    """An order record driven to ``status`` through the ledger's own transitions."""
    import time

    from chalicelib.adapters.ledger import Ledger
    from chalicelib.domain.order_state import OrderEvent, order_key

    key = order_key("demo-shanghai", "shopify", f"R-{status}")
    ledger = Ledger(stack.env["LEDGER_TABLE"])
    assert (
        ledger.create_order(key, "demo-shanghai", kind="paid", status="received", payload={"order": {}}, outbox=True)
        is None
    )
    now = time.time()
    assert ledger.transition(key, OrderEvent.CLAIM, now=now, claim_id="c", lease_until=now + 60, keep={"pin": "old"}).ok
    event = {"failed": OrderEvent.FAIL, "blocked": OrderEvent.BLOCK, "retrying": OrderEvent.RETRY}[status]
    assert ledger.transition(key, event, now=now, claim_id="c", add={"retries": 7}).ok
    return key


def _messages(aws: Any, url: str) -> list[dict[str, Any]]:
    import json as _json

    sqs = aws.client("sqs")
    reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [_json.loads(m["Body"]) for m in reply.get("Messages", [])]


@pytest.mark.parametrize("status", ["failed", "blocked", "retrying"])
def test_orders_retry_queues_again_and_always_queries_first(
    stack: Any, aws: Any, capsys: pytest.CaptureFixture[str], status: str
) -> None:
    from chalicelib.adapters.ledger import Ledger

    key = _failed_record(stack, status)
    code, out, _ = run(["orders", "retry", key, *(["--repin"] if status == "blocked" else [])], capsys)
    assert code == 0 and "queries serial" in out
    fields = Ledger(stack.env["LEDGER_TABLE"]).issue_fields(key)
    assert fields["status"] == "ambiguous"  # the next attempt queries by serial first
    assert fields["retries"] == 0  # a fresh horizon
    assert ("pin" in fields) is (status != "blocked")  # --repin forgets the old configuration
    assert _messages(aws, stack.env["ISSUE_QUEUE_URL"]) == [{"order_key": key, "kind": "paid"}]


def test_orders_retry_refuses_an_issued_or_unknown_order(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["orders", "retry", "demo-shanghai:shopify:nope"], capsys)
    assert code == 1 and "no order" in err


def test_dlq_list_and_redrive(stack: Any, aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json as _json

    key = _failed_record(stack, "retrying")
    sqs = aws.client("sqs")
    dlq = stack.env["ISSUE_DLQ_URL"]
    sqs.send_message(QueueUrl=dlq, MessageBody=_json.dumps({"order_key": key, "kind": "paid"}))
    sqs.send_message(QueueUrl=dlq, MessageBody="garbage")
    code, out, _ = run(["dlq", "list"], capsys)
    assert code == 0 and "2 message(s)" in out and key in out
    code, out, err = run(["dlq", "redrive"], capsys)
    assert code == 1 and "redriven 1" in out and "kept (not an issue message)" in err
    assert _messages(aws, stack.env["ISSUE_QUEUE_URL"]) == [{"order_key": key, "kind": "paid"}]
