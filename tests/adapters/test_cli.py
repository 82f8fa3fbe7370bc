"""The `einvoice` CLI against moto: stores, secrets (never echoed), orders, --help everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chalicelib.domain.order_keys import order_key
from infra.cli_app import application
from tests.support.processes import ROOT


def run(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    """(exit code, standard output, standard error) of ``einvoice ARGS`` run in this process."""
    result = CliRunner().invoke(application(), args, input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_stores_put_list_and_show_round_trip(stack: Any) -> None:
    for f in sorted((ROOT / "examples" / "stores").glob("*.json")):
        assert run(["stores", "put", str(f)])[0] == 0
    code, out, _ = run(["stores", "list"])
    assert code == 0
    assert "demo-shanghai" in out and "demo-hangzhou" in out and "nuonuo" in out
    code, out, _ = run(["stores", "show", "demo-hangzhou"])
    shown = json.loads(out)
    assert shown["seller"]["tax_id"] == "339902999999789113"
    assert shown["provider"]["credentials_secret"] == "einvoice/demo-hangzhou/nuonuo"
    assert run(["stores", "show", "nope"])[0] == 1


def test_an_invalid_store_file_names_the_fields(stack: Any, tmp_path: Path) -> None:
    bad = json.loads((ROOT / "examples" / "stores" / "demo-shanghai.json").read_text())
    bad["store_id"] = "Bad Id"
    bad["pilot_percentage"] = 150
    bad["webhook_secrets"]["standard"] = "not-under-the-prefix"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, _, err = run(["stores", "put", str(path)])
    assert code == 2
    assert "store_id" in err and "pilot_percentage" in err and "webhook_secrets" in err


def test_secrets_put_reads_stdin_and_never_prints_the_value(stack: Any, aws: Any) -> None:
    value = '{"secrets": ["whsec_c2VjcmV0LXZhbHVlLW5ldmVyLXByaW50ZWQ="]}'
    code, out, err = run(["secrets", "put", "einvoice/x/webhook/standard"], stdin=value)
    assert code == 0 and "created" in out
    assert "whsec_" not in out + err
    code, out, _ = run(["secrets", "put", "einvoice/x/webhook/standard"], stdin=value)
    assert "updated" in out
    got = aws.client("secretsmanager").get_secret_value(SecretId="einvoice/x/webhook/standard")["SecretString"]
    assert got == value
    assert run(["secrets", "put", "outside/prefix"], stdin=value)[0] == 2


def test_orders_list_shows_a_rejected_order_with_its_violations(stack: Any) -> None:
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
    code, out, _ = run(["orders", "list", "s1"])
    assert code == 0 and "rejected" in out and key in out
    code, out, _ = run(["orders", "show", key])
    assert json.loads(out)["violations"][0]["field"] == "buyer.tax_id"
    code, _, err = run(["orders", "show", "s1:o1"])  # the key of old, without the platform
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
    """``python -m infra.cli`` (as the e2e tests run it) with ``--help``: the usage, named ``einvoice``."""
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", *args, "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: einvoice" in result.stdout


def _command_paths() -> list[list[str]]:
    """Every group and command of the application, as the words that name it."""
    import typer.main

    def walk(command: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            found.extend(walk(sub, [*path, name]))
        return found

    return walk(typer.main.get_command(application()), [])


def test_help_everywhere_and_never_a_stack_for_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every command of every module answers --help, with no stack to resolve (no environment, no
    .local/stack.json); a command itself does resolve one."""
    from infra import cli

    for var in ("STORES_TABLE", "LEDGER_TABLE", "CONFIG_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cli, "STACK_FILE", tmp_path / "stack.json")
    paths = _command_paths()
    assert ["orders", "retry"] in paths and ["dlq", "redrive"] in paths
    for path in paths:
        code, out, err = run([*path, "--help"])
        assert code == 0, (path, err)
        assert f"Usage: einvoice {' '.join(path)}".rstrip() in " ".join(out.split()), path
    code, _, err = run(["stores", "list"])
    assert code == 1 and "no stack" in err


def test_lists_are_tables_whose_rows_stay_whole_when_piped(stack: Any) -> None:
    """Captured (not a terminal), a table is as wide as its rows: one order, one line."""
    from chalicelib.adapters.ledger import Ledger

    key = order_key("s1", "standard", "a-long-order-id-" + "x" * 60)
    violations = [{"field": "buyer.tax_id", "code": "tax_id_format", "message": "m", "message_en": "e" * 80}]
    Ledger(stack.env["LEDGER_TABLE"]).create_order(
        key, "s1", kind="paid", status="rejected", payload={}, outbox=False, violations=violations
    )
    code, out, _ = run(["orders", "list", "s1"])
    header, _, row = out.splitlines()[:3]
    assert code == 0 and header.split() == ["CREATED", "STATUS", "KIND", "ORDER", "KEY", "FIRST", "VIOLATION"]
    assert key in row and "buyer.tax_id: tax_id_format — " in row and row.index(key) == header.index("ORDER KEY")


def test_taxcodes_import_replaces_the_table_the_validator_reads(stack: Any, tmp_path: Path) -> None:
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
    code, out, _ = run(["taxcodes", "import", str(path)])
    assert code == 0 and "2026.2-test" in out

    fresh = TaxCodeSource(stack.env["CONFIG_BUCKET"]).current()  # a new container, or after the cache minute
    assert fresh.version == "2026.2-test"
    assert fresh.lookup("3070401000000000000") is None


def test_an_invalid_taxcodes_file_is_refused_and_the_current_table_kept(stack: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"version": "x", "entries": [{"code": "123", "name": "n", "short_name": "s", "rates": ["0.07"]}]})
    )
    code, _, err = run(["taxcodes", "import", str(path)])
    assert code == 2
    assert "entries[0]" in err


def _failed_record(stack: Any, status: str) -> str:
    """An order record driven to ``status`` through the ledger's own transitions."""
    import time

    from chalicelib.adapters.ledger import Ledger
    from chalicelib.domain.order_keys import order_key
    from chalicelib.domain.order_state import OrderEvent

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
def test_orders_retry_queues_again_and_always_queries_first(stack: Any, aws: Any, status: str) -> None:
    from chalicelib.adapters.ledger import Ledger

    key = _failed_record(stack, status)
    code, out, _ = run(["orders", "retry", key, *(["--repin"] if status == "blocked" else [])])
    assert code == 0 and "queries serial" in out
    fields = Ledger(stack.env["LEDGER_TABLE"]).issue_fields(key)
    assert fields["status"] == "ambiguous"  # the next attempt queries by serial first
    assert fields["retries"] == 0  # a fresh horizon
    assert ("pin" in fields) is (status != "blocked")  # --repin forgets the old configuration
    assert _messages(aws, stack.env["ISSUE_QUEUE_URL"]) == [{"order_key": key, "kind": "paid"}]


def test_orders_retry_refuses_an_issued_or_unknown_order(stack: Any) -> None:
    code, _, err = run(["orders", "retry", "demo-shanghai:shopify:nope"])
    assert code == 1 and "no order" in err


def test_dlq_list_and_redrive(stack: Any, aws: Any) -> None:
    import json as _json

    key = _failed_record(stack, "retrying")
    sqs = aws.client("sqs")
    dlq = stack.env["ISSUE_DLQ_URL"]
    sqs.send_message(QueueUrl=dlq, MessageBody=_json.dumps({"order_key": key, "kind": "paid"}))
    sqs.send_message(QueueUrl=dlq, MessageBody="garbage")
    code, out, _ = run(["dlq", "list"])
    assert code == 0 and "2 message(s)" in out and key in out
    code, out, err = run(["dlq", "redrive"])
    assert code == 1 and "redriven 1" in out and "kept (not an issue message)" in err
    assert _messages(aws, stack.env["ISSUE_QUEUE_URL"]) == [{"order_key": key, "kind": "paid"}]


# --- webhook sample: every platform of every example store -------------------------------------------
def _parsed_curl(text: str) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) of the curl command ``webhook sample`` prints."""
    from infra.webhook_samples import parse_curl

    url, request = parse_curl(text)
    return url, request.headers, request.body


def _example_pairs() -> list[tuple[str, str]]:
    from infra.seed import load_store_files

    return [(store.store_id, platform) for store in load_store_files() for platform in store.webhook_secrets]


EXAMPLE_PAIRS = _example_pairs()


def test_the_examples_cover_every_platform() -> None:
    from chalicelib.webhooks import PLATFORMS

    assert {platform for _, platform in EXAMPLE_PAIRS} == set(PLATFORMS)


@pytest.mark.parametrize(("store_id", "platform"), EXAMPLE_PAIRS)
def test_webhook_sample_is_signed_as_the_platform_signs_it(stack: Any, aws: Any, store_id: str, platform: str) -> None:
    """What `einvoice webhook sample STORE --platform P` prints passes the gateway's own verifier."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from chalicelib.webhooks import platform as webhook_platform
    from infra.seed import example_secrets, seed

    seed(aws, stack.env)
    code, out, err = run(["webhook", "sample", store_id, "--platform", platform, "--order-id", "S-1001"])
    assert code == 0, err
    url, headers, body = _parsed_curl(out)
    assert url == f"http://127.0.0.1:8000/webhooks/{platform}/{store_id}"
    secret = example_secrets()[f"einvoice/{store_id}/webhook/{platform}"]
    event = webhook_platform(platform).verify(body, headers, secret, datetime.now(UTC))
    assert (event.order_id, event.amount) == ("S-1001", Decimal("88.00"))


def test_webhook_sample_names_what_the_store_accepts(stack: Any, aws: Any) -> None:
    from infra.seed import seed

    seed(aws, stack.env)
    code, _, err = run(["webhook", "sample", "demo-shanghai", "--platform", "shopify"])
    assert code == 1 and "accepts standard, wechatpay, alipay" in err
    code, out, _ = run(["webhook", "sample", "demo-hangzhou"])  # no --platform: Standard Webhooks
    assert code == 0 and "/webhooks/standard/demo-hangzhou" in out
    code, out, _ = run(["webhook", "sample", "demo-shanghai", "--platform", "all"])
    assert code == 0
    assert [_parsed_curl(c)[0].rsplit("/", 2)[1] for c in out.strip().split("\n\n")] == [
        "standard",
        "wechatpay",
        "alipay",
    ]
    assert run(["webhook", "sample", "nope"])[0] == 1


def test_webhook_sample_refuses_a_public_key_without_a_test_only_private_half(stack: Any, aws: Any) -> None:
    """A real merchant's WeChat Pay secret holds WeChat's public key: no sample can be signed for it."""
    from chalicelib.adapters.secrets import SecretStore
    from infra.seed import seed
    from tests.support import platform_events as pe

    seed(aws, stack.env)
    SecretStore().put("einvoice/demo-shanghai/webhook/wechatpay", json.dumps(pe.secret_values("wechatpay")))
    try:
        code, out, err = run(["webhook", "sample", "demo-shanghai", "--platform", "wechatpay"])
    finally:
        seed(aws, stack.env)  # the example secret back, for whoever reads it next in this moto
    assert code == 1 and out == "" and "test-only" in err


def test_the_test_only_keys_pair_with_the_example_public_keys() -> None:
    from infra import webhook_samples as ws
    from infra.seed import example_secrets, test_only_signing_keys

    secrets, keys = example_secrets(), test_only_signing_keys()
    assert set(keys) == ws.RSA_SIGNED
    for platform in ws.RSA_SIGNED:
        found = ws.signing_key_for(platform, secrets[f"einvoice/demo-shanghai/webhook/{platform}"], keys[platform])
        assert found is not None, platform


# --- rejected orders: listed with their first violation, corrected, issued ---------------------------
def _post_standard(stack: Any, aws: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a Standard Webhooks event to demo-shanghai through the app (the example stores and secrets)."""
    from chalice.test import Client

    import app as app_module
    from infra.seed import seed
    from tests.app.conftest import signed

    secret = seed(aws, stack.env)["sample_secret"]
    app_module._ingest.cache_clear()
    body, headers = signed(event, secret=secret)
    with Client(app_module.app, stage_name="local") as client:
        r = client.http.post("/webhooks/standard/demo-shanghai", body=body, headers=headers)
    app_module._ingest.cache_clear()
    return r.status_code, r.json_body


def _event(order_id: str, **data: Any) -> dict[str, Any]:
    line = {"sku": "LATTE-L", "name": "拿铁咖啡（大杯）", "quantity": "1", "unit_price": "88.00", "total": "88.00"}
    return {"type": "order.paid", "data": {"order_id": order_id, "amount": "88.00", "lines": [line], **data}}


BAD_BUYER = {"title": "某公司", "tax_id": "12345", "type": "company"}
GOOD_TAX_ID = "91350100M000100Y43"


def test_orders_list_by_status_finds_rejected_orders_behind_newer_ones_with_their_first_violation(stack: Any) -> None:
    from chalicelib.adapters.ledger import Ledger

    ledger = Ledger(stack.env["LEDGER_TABLE"])
    rejected = order_key("s1", "standard", "old-rejected")
    violations = [
        {"field": "buyer.tax_id", "code": "tax_id_format", "message": "格式错误", "message_en": "bad tax id"},
        {"field": "buyer.name", "code": "name_too_long", "message": "太长", "message_en": "too long"},
    ]
    ledger.create_order(
        rejected, "s1", kind="paid", status="rejected", payload={"event": {}}, outbox=False, violations=violations
    )
    for i in range(3):  # newer orders than the rejected one
        ledger.create_order(
            order_key("s1", "standard", f"new-{i}"), "s1", kind="paid", status="held", payload={}, outbox=False
        )

    code, out, _ = run(["orders", "list", "s1", "--status", "rejected", "--limit", "2"])
    assert code == 0
    [row] = [line for line in out.splitlines() if rejected in line]
    assert "buyer.tax_id: tax_id_format — bad tax id (+1 more)" in row
    assert "new-0" not in out
    assert run(["orders", "list", "s1", "--status", "nonsense"])[0] == 2


def test_orders_fix_corrects_a_rejected_buyer_and_the_order_goes_to_the_queue(stack: Any, aws: Any) -> None:
    from chalicelib.adapters.ledger import Ledger

    status, body = _post_standard(stack, aws, _event("FIX-1", buyer=BAD_BUYER))
    key = order_key("demo-shanghai", "standard", "FIX-1")
    assert status == 422 and body["order_key"] == key
    ledger = Ledger(stack.env["LEDGER_TABLE"])
    before = ledger.get_order(key)

    # still invalid: the violations are shown, nothing changes
    code, out, err = run(["orders", "fix", key, "--buyer-tax-id", "ABC"])
    assert code == 1 and "still invalid" in err and "buyer.tax_id: tax_id_format" in err
    assert ledger.get_order(key) == before

    code, out, err = run(
        [
            "orders",
            "fix",
            key,
            "--buyer-title",
            "上海示例科技有限公司",
            "--buyer-tax-id",
            GOOD_TAX_ID,
            "--by",
            "ops-lin",
        ],
    )
    assert code == 0, err
    assert "queued for issuing" in out and "buyer.tax_id, buyer.title" in out and GOOD_TAX_ID not in out
    after = ledger.get_order(key)
    assert after.status == "queued" and after.violations is None
    assert after.payload["order"]["buyer"]["tax_id"] == GOOD_TAX_ID  # what the worker issues
    assert after.fields["fixed_by"] == "ops-lin" and after.fields["fixed_at"]
    assert json.loads(after.fields["fixed_changes"])["buyer.tax_id"] == {"from": "12345", "to": GOOD_TAX_ID}
    assert json.loads(after.fields["fixed_violations"]) == before.violations
    assert _messages(aws, stack.env["ISSUE_QUEUE_URL"]) == [{"order_key": key, "kind": "paid"}]

    code, _, err = run(["orders", "fix", key, "--buyer-title", "x"])  # corrected once
    assert code == 1 and "only a rejected order" in err


def test_orders_fix_from_a_file_corrects_content_that_could_not_be_used(stack: Any, aws: Any, tmp_path: Path) -> None:
    from chalicelib.adapters.ledger import Ledger

    status, body = _post_standard(stack, aws, _event("FIX-2", amount="-88.00"))
    key = order_key("demo-shanghai", "standard", "FIX-2")
    assert status == 422 and body["errors"][0]["code"] == "event_amount_invalid"

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"order_id": "other", "amount": "88.00"}))
    code, _, err = run(["orders", "fix", key, "--from-file", str(wrong)])
    assert code == 2 and "part of the order key" in err

    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"currency": "CNY"}))  # the amount is still missing
    code, _, err = run(["orders", "fix", key, "--from-file", str(incomplete)])
    assert code == 1 and "amount: event_field_missing" in err

    corrected = tmp_path / "corrected.json"
    line = {"sku": "LATTE-L", "name": "拿铁咖啡（大杯）", "quantity": "2", "unit_price": "44.00", "total": "88.00"}
    corrected.write_text(json.dumps({"amount": "88.00", "lines": [line]}, ensure_ascii=False))
    code, out, err = run(["orders", "fix", key, "--from-file", str(corrected)])
    assert code == 0 and "changed: amount, lines" in out, err
    record = Ledger(stack.env["LEDGER_TABLE"]).get_order(key)
    assert record.status == "queued" and record.payload["order"]["total"] == "88.00"
    assert json.loads(record.fields["fixed_changes"])["amount"] == {"from": None, "to": "88.00"}


def test_orders_fix_holds_an_order_outside_the_pilot_and_refuses_one_keyed_by_its_event(stack: Any, aws: Any) -> None:
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.stores import StoreRegistry

    _post_standard(stack, aws, _event("FIX-3", buyer=BAD_BUYER))
    registry = StoreRegistry(stack.env["STORES_TABLE"])
    registry.put(registry.get("demo-shanghai").model_copy(update={"pilot_percentage": 0}))
    key = order_key("demo-shanghai", "standard", "FIX-3")
    code, out, err = run(["orders", "fix", key, "--buyer-tax-id", GOOD_TAX_ID])
    assert code == 0 and "held" in out, err
    assert Ledger(stack.env["LEDGER_TABLE"]).get_order(key).status == "held"
    assert _messages(aws, stack.env["ISSUE_QUEUE_URL"]) == []

    event = _event("ignored")
    del event["data"]["order_id"]
    status, body = _post_standard(stack, aws, event)
    assert status == 422 and ":event%3A" in body["order_key"]
    code, _, err = run(["orders", "fix", body["order_key"], "--from-file", "/dev/null"])
    assert code == 2  # an empty file is no JSON object
    code, _, err = run(["orders", "fix", body["order_key"]])
    assert code == 1 and "order id could not be read" in err


def test_orders_fix_has_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "orders", "fix", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--from-file" in result.stdout and "--buyer-tax-id" in result.stdout
