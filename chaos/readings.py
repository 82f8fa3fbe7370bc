"""What the checker reads after a chaos run, in one pass: the sandbox's admin view, the ledger, the
archive bucket, Secrets Manager and the state dir's logs. The only IO of the checker; the invariants
(:mod:`chaos.check`) and the leak scan (:mod:`chaos.leaks`) are pure functions of a :class:`Readings`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

from chalicelib.adapters.ledger_items import record_of, unpack
from chalicelib.services.ports import OrderRecord
from chaos.journal import Journal

HTTP_TIMEOUT = 15


@dataclass
class Readings:
    invoices: list[dict[str, Any]] = field(default_factory=list)  # GET /admin/invoices
    red_forms: list[dict[str, Any]] = field(default_factory=list)  # GET /admin/red-forms
    tokens: list[str] | None = None  # GET /admin/tokens; None: the sandbox lists none (404)
    records: list[OrderRecord] = field(default_factory=list)  # ledger items with sk = order
    events: dict[str, str] = field(default_factory=dict)  # event item pk → order key it names
    items: list[dict[str, Any]] = field(default_factory=list)  # every ledger item (DynamoDB JSON)
    archive: list[tuple[str, bytes]] = field(default_factory=list)  # archive bucket: key → bytes
    secrets: list[tuple[str, str]] = field(default_factory=list)  # Secrets Manager: name → value text
    logs: list[tuple[str, str]] = field(default_factory=list)  # *.log in the state dir: path → text
    problems: list[str] = field(default_factory=list)  # what could not be read (a row fails on it)


def _get_json(url: str) -> Any:
    with urlopen(url, timeout=HTTP_TIMEOUT) as reply:  # noqa: S310 - the loopback sandbox of the stack
        return json.loads(reply.read())


def token_values(answer: Any) -> list[str]:
    """Every token string in ``GET /admin/tokens``'s answer, whatever its shape: a list of strings, or
    objects whose keys name a token (``token``, ``access_token``, …), or a mapping token → details."""
    found: list[str] = []

    def walk(value: Any, name: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if "token" in str(k).lower() and isinstance(v, str):
                    found.append(v)
                elif isinstance(v, dict | list):
                    walk(v, str(k))
                elif name.lower() in ("tokens", "") and isinstance(v, int | float) and len(str(k)) >= 16:
                    found.append(str(k))  # {token: expiry}
        elif isinstance(value, list):
            for v in value:
                if isinstance(v, str):
                    found.append(v)
                else:
                    walk(v, name)

    walk(answer)
    return sorted({t for t in found if t})


def read_sandbox(base: str, readings: Readings) -> None:
    base = base.rstrip("/")
    try:
        readings.invoices = list(_get_json(f"{base}/admin/invoices")["invoices"])
        readings.red_forms = list(_get_json(f"{base}/admin/red-forms").get("red_forms", []))
    except (OSError, ValueError, KeyError) as exc:
        readings.problems.append(f"sandbox admin view unreadable: {exc}")
    try:
        readings.tokens = token_values(_get_json(f"{base}/admin/tokens"))
    except HTTPError as exc:
        if exc.code != 404:
            readings.problems.append(f"sandbox tokens unreadable: HTTP {exc.code}")
        readings.tokens = None
    except (OSError, ValueError) as exc:
        readings.problems.append(f"sandbox tokens unreadable: {exc}")


def read_ledger(ddb: Any, table: str, readings: Readings) -> None:
    query: dict[str, Any] = {"TableName": table}
    while True:
        reply = ddb.scan(**query)
        for item in reply.get("Items", []):
            readings.items.append(item)
            sk = item.get("sk", {}).get("S")
            if sk == "order" and "order_key" in item:
                readings.records.append(record_of(item))
            elif sk == "event" and "order_key" in item:
                readings.events[item["pk"]["S"]] = item["order_key"]["S"]
        if "LastEvaluatedKey" not in reply:
            return
        query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


def read_archive(s3: Any, bucket: str, readings: Readings) -> None:
    token: dict[str, Any] = {}
    while True:
        reply = s3.list_objects_v2(Bucket=bucket, **token)
        for obj in reply.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            readings.archive.append((obj["Key"], body))
        if not reply.get("IsTruncated"):
            return
        token = {"ContinuationToken": reply["NextContinuationToken"]}


def read_secrets(sm: Any, readings: Readings) -> None:
    names: list[str] = []
    for page in sm.get_paginator("list_secrets").paginate():
        names.extend(s["Name"] for s in page.get("SecretList", []))
    for name in names:
        value = sm.get_secret_value(SecretId=name)
        if "SecretString" in value:
            readings.secrets.append((name, value["SecretString"]))
        elif "SecretBinary" in value:
            raw = value["SecretBinary"]
            readings.secrets.append((name, raw.hex() if isinstance(raw, bytes) else str(raw)))


def read_logs(state_dir: str, readings: Readings) -> None:
    root = Path(state_dir)
    if not root.is_dir():
        readings.problems.append(f"state dir {state_dir} not found")
        return
    for path in sorted(root.rglob("*.log")):
        readings.logs.append((str(path), path.read_text(encoding="utf-8", errors="replace")))


def payload_text(item: dict[str, Any]) -> str:
    """A ledger item's packed payload as JSON text ('' when it has none or it cannot be read)."""
    if "payload" not in item:
        return ""
    try:
        return json.dumps(unpack(item["payload"]["B"]), ensure_ascii=False)
    except (ValueError, TypeError, KeyError, OSError):
        return ""


def read_stack(journal: Journal, session: Any = None) -> Readings:
    """Everything the checker looks at, read once after the run has settled."""
    import boto3

    stack = journal.stack
    env: dict[str, str] = dict(stack.get("env") or {})
    readings = Readings()
    if stack.get("sandbox"):
        read_sandbox(str(stack["sandbox"]), readings)
    else:
        readings.problems.append("the journal names no sandbox")
    session = session or boto3.session.Session(
        region_name=str(stack.get("region") or "cn-north-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the embedded AWS's fixed dummy credentials
    )
    endpoint = str(stack.get("aws") or "") or None

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=endpoint)

    reads: list[tuple[str, Callable[[], None]]] = [
        ("ledger", lambda: read_ledger(client("dynamodb"), env["LEDGER_TABLE"], readings)),
        ("archive", lambda: read_archive(client("s3"), env["ARCHIVE_BUCKET"], readings)),
        ("secrets", lambda: read_secrets(client("secretsmanager"), readings)),
    ]
    for what, read in reads:
        try:
            read()
        except Exception as exc:
            readings.problems.append(f"{what} unreadable: {type(exc).__name__}: {exc}"[:300])
    if stack.get("state_dir"):
        read_logs(str(stack["state_dir"]), readings)
    return readings
