"""The deliver use case with in-memory ports: what is stored, recorded, sent, retried and never repeated."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from chalicelib.domain import delivery
from chalicelib.domain.delivery import DeliveryError, Result
from chalicelib.domain.models import Store
from chalicelib.domain.order_state import OrderStatus
from chalicelib.services.deliver import Contacts, DeliverInvoice
from chalicelib.services.deliver_batch import DeliverBatch
from chalicelib.services.delivery_ports import Attachment, StoredFile
from tests.support.fake_ledger import FakeLedger

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
NUMBER = "26312000000000012345"
KEY = "demo-shanghai:standard:SO-1"


def store(**delivery: Any) -> Store:
    doc = json.loads((ROOT / "examples/stores/demo-shanghai.json").read_text())
    doc["delivery"] = {**doc["delivery"], **delivery}
    return Store.model_validate(doc)


class Stores:
    def __init__(self, s: Store) -> None:
        self.s = s

    def get(self, store_id: str) -> Store:
        return self.s


class Documents:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.owners: dict[str, str] = {}
        self.puts = 0

    def find(self, key: str) -> StoredFile | None:
        body = self.objects.get(key)
        return None if body is None else StoredFile(key, hashlib.sha256(body).hexdigest(), len(body))

    def put(self, key: str, body: bytes, *, content_type: str, sha256: str, owner: str) -> StoredFile:
        if key in self.objects:  # under Object Lock: never rewritten, the stored one answered
            found = self.find(key)
            assert found is not None
            return StoredFile(key, found.sha256, found.size, self.owners[key])
        self.puts += 1
        self.objects[key], self.owners[key] = body, owner
        return StoredFile(key, sha256, len(body), owner)

    def read(self, key: str) -> bytes:
        return self.objects[key]


class Fetcher:
    def __init__(self, files: dict[str, bytes | DeliveryError]) -> None:
        self.files = files
        self.calls: list[str] = []

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        self.calls.append(url)
        got = self.files[url]
        if isinstance(got, DeliveryError):
            raise got
        return got


class Pdf:
    def __init__(self) -> None:
        self.renders = 0

    def render(self, payload: dict[str, Any], fields: Mapping[str, str | int]) -> bytes:
        self.renders += 1
        return b"%PDF-1.7 own " + str(fields["invoice_number"]).encode()


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: float
    token: str = "t"


class Links:
    def __init__(self) -> None:
        self.issued: list[str] = []

    def issue(self, store_id: str, order_key: str, *, now: float, ttl_days: int) -> Link:
        self.issued.append(order_key)
        return Link(f"http://127.0.0.1:8000/i/token{len(self.issued)}", now + ttl_days * 86400)


@dataclass
class Mailer:
    fail: list[DeliveryError] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send_email(
        self, *, sender: str, to: str, subject: str, text: str, html: str, attachment: Attachment | None
    ) -> str:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append({"to": to, "subject": subject, "text": text, "html": html, "attachment": attachment})
        return f"ses-{len(self.sent)}"


@dataclass
class Sms:
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send_sms(self, *, to: str, text: str, sender_id: str | None) -> str:
        self.sent.append((to, text))
        return f"sns-{len(self.sent)}"


class Metrics:
    def add_metric(self, name: str, unit: str, value: float) -> object:
        return None


@dataclass
class World:
    ledger: FakeLedger
    documents: Documents
    fetcher: Fetcher
    pdf: Pdf
    links: Links
    mailer: Mailer
    sms: Sms
    use_case: DeliverInvoice


def world(s: Store | None = None, files: dict[str, bytes | DeliveryError] | None = None) -> World:
    ledger = FakeLedger(clock=lambda: NOW)
    parts = World(ledger, Documents(), Fetcher(files or {}), Pdf(), Links(), Mailer(), Sms(), None)  # type: ignore[arg-type]
    parts.use_case = DeliverInvoice(
        ledger=ledger,
        stores=Stores(s or store()),
        documents=parts.documents,
        fetcher=parts.fetcher,
        pdf=parts.pdf,
        links=parts.links,
        mailer=parts.mailer,
        sms=parts.sms,
        metrics=Metrics(),
        logger=Logger(service="test"),
        clock=lambda: NOW,
    )
    return parts


def issued(w: World, *, email: str | None = "zhang.san@example.com", mobile: str | None = None, **fields: Any) -> None:
    buyer = {"name": "张三", "type": "individual", "email": email, "mobile": mobile}
    w.ledger.put(
        KEY,
        store_id="demo-shanghai",
        status=OrderStatus.ISSUED,
        payload={"order": {"buyer": buyer, "total": "106.00"}},
        invoice_number=NUMBER,
        issued_at="2026-12-01T18:30:00+00:00",  # 02:30 on 2 December in China
        total_amount="100.00",
        total_tax="6.00",
        **fields,
    )


def test_first_delivery_stores_the_pdf_records_it_and_mails_the_link_with_the_pdf_attached() -> None:
    w = world()
    issued(w)
    out = w.use_case.deliver(KEY)
    assert out.status == "delivered" and out.retry_in is None
    key = f"demo-shanghai/2026/12/02/{NUMBER}.pdf"
    assert list(w.documents.objects) == [key]
    fields = w.ledger.issue_fields(KEY)
    assert fields["pdf_key"] == key
    assert fields["pdf_sha256"] == hashlib.sha256(w.documents.objects[key]).hexdigest()
    [mail] = w.mailer.sent
    assert mail["to"] == "zhang.san@example.com" and NUMBER in mail["subject"]
    assert "http://127.0.0.1:8000/i/token1" in mail["text"] and "¥106.00" in mail["text"]
    assert mail["attachment"].filename == f"{NUMBER}.pdf" and mail["attachment"].body.startswith(b"%PDF")
    [record] = w.ledger.delivery_view(KEY)[1]  # type: ignore[index]
    assert record["channel"] == "email" and record["result"] == "sent" and record["message_id"] == "ses-1"
    assert record["to"] == "zh***@example.com"  # masked: never the whole address
    assert w.links.issued == [KEY]


def test_a_re_delivery_changes_nothing() -> None:
    w = world()
    issued(w)
    w.use_case.deliver(KEY)
    before = w.ledger.delivery_view(KEY)
    again = w.use_case.deliver(KEY, attempt=2)
    assert again.status == "delivered" and again.records == []
    assert w.pdf.renders == 1 and w.documents.puts == 1 and len(w.mailer.sent) == 1 and w.links.issued == [KEY]
    assert w.ledger.delivery_view(KEY) == before


def test_an_existing_object_is_never_rewritten_and_its_digest_is_recorded() -> None:
    w = world()
    issued(w)
    key = f"demo-shanghai/2026/12/02/{NUMBER}.pdf"
    w.documents.objects[key], w.documents.owners[key] = b"%PDF-1.7 stored by a run that died", KEY
    w.use_case.deliver(KEY)
    digest = hashlib.sha256(w.documents.objects[key]).hexdigest()
    assert w.documents.puts == 0 and w.ledger.issue_fields(KEY)["pdf_sha256"] == digest
    assert w.mailer.sent[0]["attachment"].body == w.documents.objects[key]  # read back for the mail


def test_another_orders_file_under_the_key_is_never_taken_the_link_still_goes_out() -> None:
    w = world()
    issued(w)
    key = f"demo-shanghai/2026/12/02/{NUMBER}.pdf"
    w.documents.objects[key], w.documents.owners[key] = b"%PDF someone else's", "demo-shanghai:standard:OTHER"
    out = w.use_case.deliver(KEY)
    assert out.status == "delivered" and w.mailer.sent[0]["attachment"] is None
    fields = w.ledger.issue_fields(KEY)
    assert fields["pdf_error"] == "document_key_taken" and "pdf_key" not in fields


def test_an_ses_failure_is_retried_on_the_schedule_and_then_sent() -> None:
    w = world()
    issued(w)
    w.mailer.fail.append(DeliveryError("email: Throttling", code="email_Throttling"))
    first = w.use_case.deliver(KEY)
    assert first.status == "retry" and first.retry_in == delivery.RETRY_DELAYS[0]
    second = w.use_case.deliver(KEY, attempt=2)
    assert second.status == "delivered" and len(w.mailer.sent) == 1
    results = [r["result"] for r in w.ledger.delivery_view(KEY)[1]]  # type: ignore[index]
    assert results == ["failed", "sent"]
    assert w.documents.puts == 1  # the PDF was stored once


def test_a_bad_address_is_recorded_as_permanent_and_not_retried() -> None:
    w = world(store(channels=["link", "email", "sms"]))
    issued(w, email="not-an-address", mobile="13812345678")
    out = w.use_case.deliver(KEY)
    assert out.retry_in is None
    by_channel = {r["channel"]: r for r in out.records}
    assert by_channel["email"]["result"] == Result.PERMANENT.value and by_channel["email"]["error"] == "invalid_email"
    assert by_channel["sms"]["result"] == "sent" and by_channel["sms"]["to"] == "+86138****5678"
    assert w.sms.sent[0][0] == "+8613812345678" and "token1" in w.sms.sent[0][1]
    assert w.use_case.deliver(KEY, attempt=2).records == []  # not tried again


def test_giving_up_after_the_last_retry() -> None:
    w = world()
    issued(w)
    w.mailer.fail.extend(DeliveryError("x", code="email_Throttling") for _ in range(10))
    last = w.use_case.deliver(KEY, attempt=len(delivery.RETRY_DELAYS) + 1)
    assert last.retry_in is None and last.records[0]["result"] == "gave_up"


def test_a_large_pdf_is_linked_not_attached() -> None:
    w = world(store(attachment_max_kb=0))
    issued(w)
    w.use_case.deliver(KEY)
    mail = w.mailer.sent[0]
    assert mail["attachment"] is None and "见附件" not in mail["text"]


def test_the_platforms_files_are_checked_and_stored_and_a_failed_fetch_never_holds_the_mail_back() -> None:
    files: dict[str, bytes | DeliveryError] = {
        "https://tax.example/f.pdf": b"%PDF-1.4 platform",
        "https://tax.example/f.ofd": DeliveryError("down", code="tax_retryable"),
        "https://tax.example/f.xml": b"not xml",
    }
    w = world(files=files)
    issued(
        w, pdf_url="https://tax.example/f.pdf", ofd_url="https://tax.example/f.ofd", xml_url="https://tax.example/f.xml"
    )
    out = w.use_case.deliver(KEY)
    assert len(w.mailer.sent) == 1  # the customer is not kept waiting for the OFD
    assert out.status == "retry" and out.retry_in == delivery.RETRY_DELAYS[0]
    fields = w.ledger.issue_fields(KEY)
    assert fields["platform_pdf_key"].endswith(f"{NUMBER}.platform.pdf")
    assert fields["platform_pdf_sha256"] == hashlib.sha256(b"%PDF-1.4 platform").hexdigest()
    assert fields["xml_error"] == "file_content" and fields["xml_error_permanent"] == "1"
    assert fields["ofd_error"] == "tax_retryable" and "ofd_key" not in fields
    files["https://tax.example/f.ofd"] = b"PK\x03\x04 ofd"
    second = w.use_case.deliver(KEY, attempt=2)
    assert second.status == "delivered" and len(w.mailer.sent) == 1
    assert w.ledger.issue_fields(KEY)["ofd_key"].endswith(".ofd")
    assert w.fetcher.calls.count("https://tax.example/f.xml") == 1  # refused for good: not fetched again


def test_resend_to_a_given_address_sends_again_with_a_fresh_link() -> None:
    w = world()
    issued(w)
    w.use_case.deliver(KEY)
    out = w.use_case.deliver(KEY, resend=Contacts(email="li.si@example.org"))
    assert [m["to"] for m in w.mailer.sent] == ["zhang.san@example.com", "li.si@example.org"]
    assert out.records[0]["reason"] == "resend" and w.links.issued == [KEY, KEY]
    assert "token2" in w.mailer.sent[1]["text"]


def test_english_templates_and_html_escaping() -> None:
    s = store(language="en", templates={"email_html.en": "<p>{{ seller }}</p><a href='{{ link }}'>x</a>"})
    s = s.model_copy(update={"seller": s.seller.model_copy(update={"name": "A&B <Coffee>"})})
    w = world(s)
    issued(w)
    w.use_case.deliver(KEY)
    mail = w.mailer.sent[0]
    assert mail["subject"] == f"A&B <Coffee>: your e-invoice {NUMBER}" and "View and download" in mail["text"]
    assert mail["html"].startswith("<p>A&amp;B &lt;Coffee&gt;</p>")  # autoescaped in HTML only


def test_not_issued_and_unknown_records_need_nothing() -> None:
    w = world()
    w.ledger.put(KEY, store_id="demo-shanghai", status=OrderStatus.ACCEPTED, payload={})
    assert w.use_case.deliver(KEY).status == "not_issued"
    assert w.use_case.deliver("demo-shanghai:standard:none").status == "no_record"
    assert w.mailer.sent == [] and w.documents.objects == {}


def test_the_batch_hides_a_message_to_retry_for_its_backoff() -> None:
    w = world()
    issued(w)
    w.mailer.fail.append(DeliveryError("x", code="email_Throttling"))

    class Queue:
        def __init__(self) -> None:
            self.hidden: list[tuple[str, int]] = []

        def send_many(self, order_keys: Any, *, reason: str = "issued") -> None: ...
        def hide(self, receipts: list[tuple[str, int]]) -> None:
            self.hidden.extend(receipts)

    q = Queue()
    batch = DeliverBatch(use_case=w.use_case, queue=q, logger=Logger(service="test"))
    record = {"messageId": "m1", "receiptHandle": "r1", "body": json.dumps({"order_key": KEY}), "attributes": {}}
    junk = {"messageId": "m2", "receiptHandle": "r2", "body": "{", "attributes": {}}
    result = batch.handle([record, junk], lambda: 60_000)
    assert result.failed == ["m1"] and q.hidden == [("r1", delivery.RETRY_DELAYS[0])]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("13812345678", "+8613812345678"), ("+86 138-1234-5678", "+8613812345678"), ("0085291234567", "+85291234567")],
)
def test_phone_numbers(value: str, expected: str) -> None:
    assert delivery.phone_number(value) == expected


def test_bad_contacts_are_permanent() -> None:
    for bad in ("12345", "abc"):
        with pytest.raises(DeliveryError) as exc:
            delivery.phone_number(bad)
        assert exc.value.permanent
    with pytest.raises(DeliveryError):
        delivery.email_address("a@b")
