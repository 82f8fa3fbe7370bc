"""Invariant 6 (issue 12 item 4): no secret, token, signature or full tax id in any log line, archive
record or ledger item of a chaos run.

What is looked for (the *needles*):

- **secrets**: every value in Secrets Manager (each JSON string value of 8 characters or more,
  flattened; a PEM private key by each line of its body) and the journal's ``known_secrets``.
  Identifiers the protocols send in the clear are not secrets: fields named ``app_id``, ``app_key``,
  ``client_id`` and key ids, and PEM *public* keys;
- **tokens**: every access token the sandbox issued (``GET /admin/tokens``);
- **signatures**: every signature / HMAC header value the driver sent (``Post.signature_values``), and
  each of its parts of 16 characters or more (``t=…,v1=<hex>``: the hex alone is a leak too);
- **full tax ids**: the sellers' and buyers' (the sandbox's invoices, ``Post.buyer_tax_id``, every
  ``tax_id`` in the ledger's payloads), and, in
  log lines and archive records, any 18-character string that passes the project's own USCC rules
  (``chalicelib.domain.taxpayer``: format and GB 32100 check character).

Where a full tax id is allowed — the **evidence**, which carries them because the invoice does:
an archive interaction's exact bytes as sent and received (``request_body_b64``,
``response.body_b64``: STA's is SM4 ciphertext, Nuonuo's the signed JSON with the seller's and buyer's
tax ids), and a ledger item's :data:`LEDGER_EVIDENCE` attributes (the order to be issued, a refund's
red invoice, the seller the record is pinned to). Evidence is decoded and still
scanned for secrets, tokens and signatures; every other field, every log line and every other ledger
attribute holds no full tax id. A hit is reported by place (file:line, archive key and record, ledger
key and attribute) with the value masked, never the value itself.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.audit import records as audit_records
from chalicelib.domain.taxpayer import USCC_LENGTH, mask, tax_id_problem, uscc_checksum_ok
from chaos.journal import Journal
from chaos.readings import Readings, payload_text

MIN_SECRET = 8
#: Needles are found by their first characters (every needle is at least this long).
PREFIX = MIN_SECRET
MIN_PART = 16
SECRET, TOKEN, SIGNATURE, TAX_ID = "secret", "token", "signature", "tax id"
#: Secret fields that identify rather than authenticate (sent in the clear by the protocols).
IDENTIFIER = re.compile(r"(^|_)(app_?id|app_?key|client_?id|key_?id|comment)$", re.I)
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.S)
_USCC_SHAPED = re.compile(r"(?<![0-9A-Za-z])[0-9A-Z]{18}(?![0-9A-Za-z])")
_SPLIT = re.compile(r"[,;=\s]+")
#: Archive fields that are the exact bytes as sent / received (the evidence).
EVIDENCE_FIELDS = ("request_body_b64",)
EVIDENCE_RESPONSE_FIELDS = ("body_b64",)
#: Ledger attributes that are the invoice to issue, or what it is issued under: the order (``payload``),
#: a refund's red invoice (``red_order``), the configuration pin (``pin``: protocol|endpoint|seller tax id).
LEDGER_EVIDENCE = frozenset({"payload", "red_order", "pin"})


@dataclass(frozen=True)
class Needle:
    value: str
    category: str
    source: str  # where the value came from (a secret's name, "journal", "post 12"), never the value


@dataclass(frozen=True)
class Hit:
    where: str
    needle: Needle

    def text(self) -> str:
        return f"{self.where}: {self.needle.category} {masked(self.needle.value)} ({self.needle.source})"


def masked(value: str) -> str:
    """A needle as a report may print it: its length, at most its first and last four characters."""
    keep = 4 if len(value) >= 16 else 2 if len(value) >= 8 else 0
    return f"{mask(value, keep=keep)}[{len(value)}]" if keep else f"{'*' * len(value)}[{len(value)}]"


# --- the needles ----------------------------------------------------------------------------------


def _pem_parts(value: str) -> list[str] | None:
    found = _PEM.findall(value.replace("\\n", "\n"))
    if not found:
        return None
    parts: list[str] = []
    for kind, body in found:
        if "PUBLIC" in kind:
            continue
        parts.extend(line.strip() for line in body.splitlines() if len(line.strip()) >= MIN_PART)
    return parts


def flatten_secret(value: str) -> list[str]:
    """The values of one secret worth looking for (see the module docstring)."""
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    found: list[str] = []

    def walk(v: Any, name: str) -> None:
        if isinstance(v, dict):
            for k, inner in v.items():
                walk(inner, str(k))
        elif isinstance(v, list):
            for inner in v:
                walk(inner, name)
        elif isinstance(v, str) and not IDENTIFIER.search(name):
            pem = _pem_parts(v)
            if pem is not None:
                found.extend(pem)
            elif len(v) >= MIN_SECRET:
                found.append(v)

    walk(parsed, "")
    return found


def signature_parts(value: str) -> list[str]:
    parts = [value] if len(value) >= MIN_SECRET else []
    parts += [p for p in _SPLIT.split(value) if len(p) >= MIN_PART and p != value]
    return parts


def needles(journal: Journal, readings: Readings) -> list[Needle]:
    found: dict[tuple[str, str], Needle] = {}

    def add(value: str, category: str, source: str) -> None:
        if len(value) >= PREFIX and (value, category) not in found:
            found[(value, category)] = Needle(value, category, source)

    for name, value in readings.secrets:
        for v in flatten_secret(value):
            add(v, SECRET, name)
    for v in journal.known_secrets:
        for part in flatten_secret(v) if v.lstrip().startswith("{") else [v]:
            if len(part) >= MIN_SECRET:
                add(part, SECRET, "journal")
    for t in readings.tokens or []:
        if len(t) >= MIN_SECRET:
            add(t, TOKEN, "sandbox")
    for post in journal.posts:
        for sig in post.signature_values:
            for part in signature_parts(sig):
                add(part, SIGNATURE, f"post {post.seq}")
    for tax_id in tax_ids(journal, readings):
        add(tax_id, TAX_ID, "tax id")
    return list(found.values())


def tax_ids(journal: Journal, readings: Readings) -> set[str]:
    """Every full tax id the run involved: the invoices' sellers and buyers, the posts' buyers, and every
    ``tax_id`` in the ledger's payloads (the stores' sellers, and the buyers of rejected orders too)."""
    ids = {p.buyer_tax_id for p in journal.posts if p.buyer_tax_id}
    for inv in readings.invoices:
        ids.update(str(inv.get(k) or "") for k in ("seller_tax_id", "buyer_tax_id"))

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "tax_id" and isinstance(v, str):
                    ids.add(v.strip())
                else:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for record in readings.records:
        walk(record.payload)
    return {i for i in ids if len(i) >= 15}


# --- the documents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    where: str
    text: str
    evidence: bool  # full tax ids allowed here
    patterns: bool  # look for USCC-shaped strings too


def _b64_text(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return base64.b64decode(value, validate=False).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def archive_documents(key: str, blob: bytes) -> Iterator[Document]:
    """One archive object as documents: each record's evidence decoded apart from its other fields."""
    if blob[:2] != b"\x1f\x8b":
        yield Document(f"archive {key}", blob.decode("utf-8", errors="replace"), False, True)
        return
    try:
        lines = audit_records.decode_lines(blob)
    except (OSError, ValueError, EOFError):
        yield Document(f"archive {key}", gzip.decompress(blob).decode("utf-8", errors="replace"), False, True)
        return
    for n, record in enumerate(lines, 1):
        rest = dict(record)
        where = f"archive {key} record {n}"
        for name in EVIDENCE_FIELDS:
            if name in rest:
                yield Document(f"{where} {name}", _b64_text(rest.pop(name)), True, False)
        response = rest.get("response")
        if isinstance(response, dict):
            response = dict(response)
            for name in EVIDENCE_RESPONSE_FIELDS:
                if name in response:
                    yield Document(f"{where} response.{name}", _b64_text(response.pop(name)), True, False)
            rest["response"] = response
        yield Document(where, json.dumps(rest, ensure_ascii=False), False, True)


def ledger_documents(item: dict[str, Any]) -> Iterator[Document]:
    """One ledger item: its :data:`LEDGER_EVIDENCE` attributes apart (tax ids allowed), the rest together."""
    where = f"ledger {item.get('pk', {}).get('S', '?')}"
    if "payload" in item:
        yield Document(f"{where} payload", payload_text(item), True, False)
    for name in sorted(LEDGER_EVIDENCE & set(item)):
        if name != "payload":
            yield Document(f"{where} {name}", json.dumps(item[name], ensure_ascii=False, default=str), True, False)
    rest = {k: v for k, v in item.items() if k not in LEDGER_EVIDENCE}
    yield Document(where, json.dumps(rest, ensure_ascii=False, default=str), False, False)


def log_documents(path: str, text: str) -> Iterator[Document]:
    for n, line in enumerate(text.splitlines(), 1):
        if line:
            yield Document(f"{path}:{n}", line, False, True)


# --- the scan -------------------------------------------------------------------------------------


class Scanner:
    """Every needle in a document at once: candidates by their first :data:`PREFIX` characters (one
    dict look-up per position: linear in the text, whatever the number of needles — a run of 2,000
    orders has thousands of signatures), confirmed with ``startswith``."""

    def __init__(self, found: Iterable[Needle]) -> None:
        self.needles = list(found)
        self.by_value = {n.value: n for n in self.needles}
        self.prefix: dict[str, list[Needle]] = {}
        for n in sorted(self.needles, key=lambda n: -len(n.value)):
            self.prefix.setdefault(n.value[:PREFIX], []).append(n)

    def scan(self, doc: Document) -> list[Hit]:
        hits: dict[tuple[str, str], Hit] = {}
        text, get = doc.text, self.prefix.get
        for i in range(len(text) - PREFIX + 1):
            candidates = get(text[i : i + PREFIX])
            if not candidates:
                continue
            for needle in candidates:
                if text.startswith(needle.value, i) and not (needle.category == TAX_ID and doc.evidence):
                    hits.setdefault((needle.category, needle.source), Hit(doc.where, needle))
                    break
        if doc.patterns and not doc.evidence:
            for m in _USCC_SHAPED.finditer(text):
                value = m.group(0)
                if value not in self.by_value and uscc_shaped(value):
                    hits.setdefault((TAX_ID, value), Hit(doc.where, Needle(value, TAX_ID, "USCC-shaped")))
        return list(hits.values())


def uscc_shaped(value: str) -> bool:
    """An 18-character unified social credit code by the project's rules (format and check character)."""
    return len(value) == USCC_LENGTH and tax_id_problem(value) is None and uscc_checksum_ok(value)


def documents(readings: Readings) -> tuple[list[Document], dict[str, int]]:
    docs: list[Document] = []
    scanned = {"log_lines": 0, "archive_records": 0, "ledger_items": len(readings.items)}
    for path, text in readings.logs:
        lines = list(log_documents(path, text))
        scanned["log_lines"] += len(lines)
        docs.extend(lines)
    for key, blob in readings.archive:
        parts = list(archive_documents(key, blob))
        scanned["archive_records"] += sum(1 for d in parts if not d.evidence)
        docs.extend(parts)
    for item in readings.items:
        docs.extend(ledger_documents(item))
    return docs, scanned


def scan(journal: Journal, readings: Readings) -> tuple[list[Hit], dict[str, int]]:
    scanner = Scanner(needles(journal, readings))
    docs, scanned = documents(readings)
    hits = [h for d in docs for h in scanner.scan(d)]
    return hits, scanned


def rows(journal: Journal, readings: Readings) -> tuple[list[Any], dict[str, int]]:
    """The leak rows: one per category (secrets, tokens, signatures, full tax ids)."""
    from chaos.check import Row, _row

    hits, scanned = scan(journal, readings)
    where = (
        f"{scanned['log_lines']} log lines, {scanned['archive_records']} archive records, "
        f"{scanned['ledger_items']} ledger items"
    )
    found: list[Row] = []
    for category, name in (
        (SECRET, "no secret in logs, archive or ledger"),
        (TOKEN, "no token in logs, archive or ledger"),
        (SIGNATURE, "no signature in logs, archive or ledger"),
        (TAX_ID, "no full tax id outside the evidence"),
    ):
        offenders = [h.text() for h in hits if h.needle.category == category]
        if category == TOKEN and readings.tokens is None:
            found.append(Row(name, "none found", "not checked: sandbox lists no tokens", False, []))
            continue
        found.append(_row(name, "none found", offenders, None if offenders else f"none in {where}"))
    return found, scanned
