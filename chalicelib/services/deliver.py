"""Deliver an issued invoice: its files in the invoice bucket, then the customer's link by e-mail / SMS.

One run for one order (a message of the deliver queue, or ``einvoice invoices resend``):

1. **The project's own PDF**, rendered from the issued record, stored once under
   ``{store}/{yyyy}/{mm}/{dd}/{number}.pdf`` (``chalicelib.domain.delivery.document_key``); the bucket
   has Object Lock, so a key is written once (a conditional write) — a later run uses the recorded
   ``pdf_key``, a run after a crash the object found there (unless it is another order's: then the
   run fails loudly). ``pdf_key``, ``pdf_sha256`` and ``pdf_bytes`` go on the record.
2. **The tax platform's own files** (the PDF / OFD / XML URLs its reply carried): fetched, size-capped,
   content-checked, stored beside it (``….platform.pdf``, ``….ofd``, ``….xml``) with their SHA-256 on
   the record (``platform_pdf_key`` / ``_sha256`` …). A failed fetch never holds the customer's
   delivery back: the message comes back later for the file alone.
3. **The customer's link** (``Links.issue``), issued only when a channel is about to send.
4. **The channels** of ``store.delivery`` with the buyer's contact (``buyer.email`` / ``buyer.mobile``
   of the payload): e-mail with the PDF attached under ``attachment_max_kb`` (else the link only), SMS
   with the link only. A channel already ``sent`` (or refused for good) is not tried again, so a
   duplicate message changes nothing.

Every attempt is one delivery record on the order (``deliveries``, masked address); everything a run
learnt is written in one ledger call at its end (:meth:`DeliveryLedger.annotate`). A run that must be
retried says when (``chalicelib.domain.delivery.RETRY_DELAYS``); the batch handler hides its message
that long — nothing sleeps.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from aws_lambda_powertools import Logger

from chalicelib.domain.delivery import (
    DELIVERABLE,
    MAX_PROVIDER_FILE_BYTES,
    PROVIDER_FILES,
    Channel,
    DeliveryError,
    FileKind,
    Result,
    attempt_record,
    check_file,
    document_key,
    email_address,
    mask_address,
    phone_number,
    retry_delay,
)
from chalicelib.domain.invoice_document import record_order
from chalicelib.domain.models import DeliveryChannel, Store
from chalicelib.domain.order_keys import parse_order_key
from chalicelib.services import delivery_templates as templates
from chalicelib.services.delivery_ports import (
    Attachment,
    DeliveryLedger,
    DocumentStore,
    FileFetcher,
    InvoicePdf,
    LinkIssuer,
    Mailer,
    SmsSender,
)
from chalicelib.services.delivery_record import (
    buyer_contact,
    invoice_number,
    iso_text,
    issued_at,
    message_context,
    parse_message,
)
from chalicelib.services.ports import FieldValue, MetricsPort, OrderRecord, StorePort

__all__ = ["Contacts", "DeliverInvoice", "DeliveryOutcome", "parse_message"]

PDF_TYPE = "application/pdf"


@dataclass(frozen=True)
class Contacts:
    """Where to send: the buyer's (from the payload) or the ones ``resend`` names."""

    email: str | None = None
    sms: str | None = None


@dataclass
class DeliveryOutcome:
    order_key: str
    status: str  # delivered | partial | not_issued | no_record | retry
    retry_in: int | None = None  # seconds: run again then (None: done)
    records: list[dict[str, str]] = field(default_factory=list)
    pdf_key: str | None = None


def _file_field(kind: FileKind) -> str:
    """``platform_pdf`` / ``ofd`` / ``xml``: the prefix of the record's ``*_key`` / ``*_sha256``."""
    return kind.suffix.replace(".", "_")


class DeliverInvoice:
    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        stores: StorePort,
        documents: DocumentStore,
        fetcher: FileFetcher,
        pdf: InvoicePdf,
        links: LinkIssuer,
        mailer: Mailer,
        sms: SmsSender,
        metrics: MetricsPort,
        logger: Logger,
        clock: Callable[[], float] = time.time,
        max_file_bytes: int = MAX_PROVIDER_FILE_BYTES,
    ) -> None:
        self.ledger = ledger
        self.stores = stores
        self.documents = documents
        self.fetcher = fetcher
        self.pdf = pdf
        self.links = links
        self.mailer = mailer
        self.sms = sms
        self.metrics = metrics
        self.log = logger
        self.clock = clock
        self.max_file_bytes = max_file_bytes

    # --- entry --------------------------------------------------------------------------------------
    def deliver(self, order_key: str, *, attempt: int = 1, resend: Contacts | None = None) -> DeliveryOutcome:
        """One run. ``attempt``: how many times this delivery has been tried, this one included.
        ``resend``: send again to these addresses (or, when both are None, to the buyer's), whatever
        was sent before — with a fresh link."""
        view = self.ledger.delivery_view(order_key)
        if view is None:
            self.log.warning("delivery: no such order record", extra={"order_key": order_key})
            return DeliveryOutcome(order_key, "no_record")
        record, history = view
        due = "due_at" in record.fields  # the sweeper's net is still set: this run settles it
        if record.status not in DELIVERABLE:
            self.log.info("delivery: not issued, nothing to deliver", extra={"order_key": order_key})
            return DeliveryOutcome(order_key, "not_issued")
        if record.payload.get("order") is None:  # a red invoice: its order and its blue's buyer
            record = self._red_view(record)
        store = self.stores.get(record.store_id)
        fields: dict[str, FieldValue] = {}
        try:
            pdf_body, pdf_key = self._own_pdf(record, store, fields)
        except DeliveryError as exc:  # never keeps the customer's link back: linked, not attached
            self.log.error("own PDF not stored", extra={"order_key": order_key, "code": exc.code})
            pdf_body, pdf_key, fields["pdf_error"] = None, "", exc.code
        files_pending = self._provider_files(record, store, fields, give_up=retry_delay(attempt) is None)
        targets = self._targets(record, store, history, resend)
        records: list[dict[str, str]] = []
        if targets:
            link = self.links.issue(store.store_id, order_key, now=self.clock(), ttl_days=store.delivery.link_ttl_days)
            fields["link_issued_at"] = iso_text(self.clock())
            fields["link_expires_at"] = iso_text(link.expires_at)
            if pdf_body is None and pdf_key and self._attach_limit(store) > 0:
                pdf_body = self._read(pdf_key)
            context = message_context(record, store, link)
            reason = "resend" if resend is not None else "issued"
            for channel, address in targets:
                records.append(
                    self._send(
                        channel=channel,
                        address=address,
                        store=store,
                        context=context,
                        pdf=pdf_body,
                        pdf_key=pdf_key,
                        attempt=attempt,
                        reason=reason,
                    )
                )
        failed = [r for r in records if r["result"] == Result.FAILED.value]
        delay = retry_delay(attempt) if (failed or files_pending) else None
        if (failed or files_pending) and delay is None:
            for r in failed:
                r["result"] = Result.GAVE_UP.value
            self.metric("DeliveryGaveUp")
        if fields or records:
            fields["delivered_at" if not failed else "delivery_tried_at"] = iso_text(self.clock())
        # from here on this delivery's own message and backoff carry it: no longer due for the sweeper
        if (fields or records or due) and not self.ledger.annotate(
            order_key, fields=fields, deliveries=records, settle_due=due
        ):
            self.log.warning("delivery: the record left 'issued' meanwhile", extra={"order_key": order_key})
        for r in records:
            self.metric(f"Delivery_{r['channel']}_{r['result']}")
        status = "retry" if delay is not None else ("partial" if failed else "delivered")
        self.log.info(
            "delivery run",
            extra={"order_key": order_key, "status": status, "attempt": attempt, "sent": [r["to"] for r in records]},
        )
        return DeliveryOutcome(order_key, status, retry_in=delay, records=records, pdf_key=pdf_key)

    def _red_view(self, record: OrderRecord) -> OrderRecord:
        """A refund record as a delivery reads it: the red order it issued (``RED_ORDER_FIELD``) as the
        payload's order, with the contact of the blue's buyer (never written back: records are masked)."""
        order = record_order(record.payload, record.fields)
        if order is None:
            raise DeliveryError("a red record without its red order", code="no_red_order")
        blue_key = record.text("blue_key") or str(parse_order_key(record.order_key).blue)
        blue = self.ledger.delivery_view(blue_key)
        contact = buyer_contact(blue[0].payload) if blue is not None else {}
        buyer = {**dict(order.get("buyer") or {}), **contact}  # type: ignore[call-overload]
        return replace(record, payload={**record.payload, "order": {**order, "buyer": buyer}})

    # --- files --------------------------------------------------------------------------------------
    def _own_pdf(self, record: OrderRecord, store: Store, fields: dict[str, FieldValue]) -> tuple[bytes | None, str]:
        """The PDF stored once (a conditional write: no read first); the bytes when this run has them."""
        recorded = record.text("pdf_key")
        if recorded:
            return None, recorded
        key = document_key(store.store_id, issued_at(record), invoice_number(record))
        body = self.pdf.render(record.payload, record.fields)
        digest = hashlib.sha256(body).hexdigest()
        stored = self.documents.put(key, body, content_type=PDF_TYPE, sha256=digest, owner=record.order_key)
        if stored.owner and stored.owner != record.order_key:
            raise DeliveryError(f"{key} holds the PDF of another order", code="document_key_taken")
        fields.update(pdf_key=stored.key, pdf_sha256=stored.sha256, pdf_bytes=str(stored.size))
        if stored.sha256 != digest:  # stored by a run that died before recording it: Object Lock keeps that one
            return None, key
        self.metric("InvoicePdfStored")
        return body, key

    def _provider_files(
        self, record: OrderRecord, store: Store, fields: dict[str, FieldValue], *, give_up: bool
    ) -> bool:
        """Fetch and store the platform's files not stored yet; True when one should be tried again."""
        pending = False
        for kind in PROVIDER_FILES:
            name = _file_field(kind)
            url = record.text(kind.field)
            if not url or record.text(f"{name}_key") or record.text(f"{name}_error_permanent"):
                continue
            key = document_key(store.store_id, issued_at(record), invoice_number(record), kind.suffix)
            try:
                body = self.fetcher.fetch(url, max_bytes=self.max_file_bytes)
                check_file(kind, body, max_bytes=self.max_file_bytes)
                digest = hashlib.sha256(body).hexdigest()
                found = self.documents.put(
                    key, body, content_type=kind.content_type, sha256=digest, owner=record.order_key
                )
                if found.owner and found.owner != record.order_key:
                    raise DeliveryError(f"{key} holds another order's file", code="document_key_taken", permanent=True)
            except DeliveryError as exc:
                self.log.warning(
                    "platform file not stored",
                    extra={
                        "order_key": record.order_key,
                        "file": kind.suffix,
                        "code": exc.code,
                        "permanent": exc.permanent,
                    },
                )
                fields[f"{name}_error"] = exc.code
                if exc.permanent or give_up:
                    fields[f"{name}_error_permanent"] = "1"
                else:
                    pending = True
                continue
            fields.update({f"{name}_key": found.key, f"{name}_sha256": found.sha256, f"{name}_error": None})
        return pending

    def _read(self, key: str) -> bytes | None:
        try:
            return self.documents.read(key)
        except Exception:
            self.log.warning("stored PDF unreadable: linked, not attached", extra={"pdf_key": key})
            return None

    # --- channels -----------------------------------------------------------------------------------
    def _targets(
        self, record: OrderRecord, store: Store, history: list[dict[str, str]], resend: Contacts | None
    ) -> list[tuple[Channel, str]]:
        """(channel, address) pairs to send now. An address that is no address yields a permanent record."""
        wanted = {c.value for c in store.delivery.channels}
        buyer = buyer_contact(record.payload)
        explicit = resend is not None and (resend.email or resend.sms)
        raw: list[tuple[Channel, str | None]] = []
        if explicit:
            assert resend is not None
            raw = [(Channel.EMAIL, resend.email), (Channel.SMS, resend.sms)]
        else:
            raw = [
                (Channel.EMAIL, buyer.get("email") if DeliveryChannel.EMAIL.value in wanted else None),
                (Channel.SMS, buyer.get("mobile") if DeliveryChannel.SMS.value in wanted else None),
            ]
        targets: list[tuple[Channel, str]] = []
        for channel, value in raw:
            if not value:
                continue
            try:
                address = email_address(value) if channel is Channel.EMAIL else phone_number(value)
            except DeliveryError:
                address = None
            masked = mask_address(channel, address or value)
            done = {r["to"] for r in history if r.get("channel") == channel.value and r.get("result") != "failed"}
            if resend is None and masked in done:
                continue  # sent, refused for good or given up: a duplicate message changes nothing
            targets.append((channel, address or value))
        return targets

    def _send(
        self,
        *,
        channel: Channel,
        address: str,
        store: Store,
        context: templates.MessageContext,
        pdf: bytes | None,
        pdf_key: str,
        attempt: int,
        reason: str,
    ) -> dict[str, str]:
        now = self.clock()
        try:
            checked = email_address(address) if channel is Channel.EMAIL else phone_number(address)
            assert checked is not None
            if channel is Channel.EMAIL:
                message_id = self._email(checked, store, context, pdf, pdf_key)
            else:
                text = templates.sms(store.delivery.language, context, store.delivery.templates)
                message_id = self.sms.send_sms(to=checked, text=text, sender_id=store.delivery.sms_sender_id)
        except DeliveryError as exc:
            result = Result.PERMANENT if exc.permanent else Result.FAILED
            self.log.warning(
                "delivery failed",
                extra={
                    "channel": channel.value,
                    "to": mask_address(channel, address),
                    "code": exc.code,
                    "result": result,
                },
            )
            return attempt_record(channel, address, result, at=now, error=exc.code, attempt=attempt, reason=reason)
        return attempt_record(
            channel, address, Result.SENT, at=now, message_id=message_id, attempt=attempt, reason=reason
        )

    def _email(self, to: str, store: Store, context: templates.MessageContext, pdf: bytes | None, pdf_key: str) -> str:
        sender = store.delivery.email_from
        if not sender:
            raise DeliveryError("the store has no delivery.email_from", code="no_sender", permanent=True)
        limit = self._attach_limit(store)
        attach = pdf is not None and 0 < len(pdf) <= limit
        rendered = templates.email(
            store.delivery.language,
            replace(context, attached=attach),
            store.delivery.templates,
        )
        attachment = Attachment(pdf_key.rsplit("/", 1)[-1], PDF_TYPE, pdf) if attach and pdf is not None else None
        return self.mailer.send_email(
            sender=sender,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            attachment=attachment,
        )

    @staticmethod
    def _attach_limit(store: Store) -> int:
        return store.delivery.attachment_max_kb * 1024

    # --- helpers ------------------------------------------------------------------------------------
    def metric(self, name: str) -> None:
        try:
            self.metrics.add_metric(name=name, unit="Count", value=1)
        except Exception:
            self.log.debug("metric not recorded", extra={"metric": name})
