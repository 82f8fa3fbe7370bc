"""Delivery rules, pure: where an invoice's files live, what a provider file must look like, how a
buyer's contact is checked and masked, what one delivery attempt records, and when a retry comes.

- **Keys** (the invoice bucket, one place): ``{store}/{yyyy}/{mm}/{dd}/{invoice number}.pdf`` is the
  project's own PDF; the tax platform's files sit beside it as ``….platform.pdf``, ``….ofd``,
  ``….xml``. The date is the issue date in China time (UTC+8), as 开票日期 shows it.
- **Provider files** are size-capped and content-checked (a PDF starts with ``%PDF``, an OFD is a ZIP
  container, an XML document starts with ``<``) before anything is stored.
- **A delivery record** is one attempt on one channel: ``channel``, ``to`` (masked), ``result``
  (:class:`Result`), ``at``, ``message_id``, ``error``. Records never hold a whole address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from chalicelib.domain.china_time import CHINA_TZ as CHINA_TIME
from chalicelib.domain.errors import EInvoiceError
from chalicelib.domain.order_state import OrderStatus

#: Records whose invoice is delivered: an issued blue, and a refund record whose red invoice is issued
#: (its PDF from ``invoice_document.RED_ORDER_FIELD``, sent to the blue's buyer).
DELIVERABLE: frozenset[OrderStatus] = frozenset({OrderStatus.ISSUED, OrderStatus.RED_ISSUED})
#: An issued record stays due (the sweeper's ``by_due`` list) until its first delivery run: if the
#: worker's delivery message was never sent or was lost, the sweeper sends it again this long after.
DELIVERY_DUE_SECONDS = 15 * 60
#: The largest provider file fetched (bytes); a bigger reply is refused, not truncated.
MAX_PROVIDER_FILE_BYTES = 10 * 1024 * 1024
#: Retries of a delivery (seconds after each failed attempt: the message's visibility), then it gives up.
RETRY_DELAYS: tuple[int, ...] = (30, 120, 600, 1800, 3600, 3 * 3600)
#: The deliver queue's maxReceiveCount: every retry above, plus margin for crashed invocations.
DELIVER_MAX_RECEIVES = len(RETRY_DELAYS) + 4


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Result(StrEnum):
    SENT = "sent"
    FAILED = "failed"  # may pass: retried on RETRY_DELAYS
    PERMANENT = "permanent"  # never passes as is (invalid address, refused recipient): not retried
    GAVE_UP = "gave_up"  # still failing after every retry


@dataclass(frozen=True)
class FileKind:
    field: str  # the record's URL attribute (written by the settler from the provider's reply)
    suffix: str  # after the invoice number in the key
    content_type: str
    magic: tuple[bytes, ...]  # the body must start with one of these


PROVIDER_FILES: tuple[FileKind, ...] = (
    FileKind("pdf_url", "platform.pdf", "application/pdf", (b"%PDF",)),
    FileKind("ofd_url", "ofd", "application/ofd", (b"PK\x03\x04",)),
    FileKind("xml_url", "xml", "application/xml", (b"<?xml", b"<", b"\xef\xbb\xbf<")),
)


class DeliveryError(EInvoiceError):
    """A channel or a file fetch failed; ``permanent``: retrying the same thing cannot help."""

    code = "delivery_failed"

    def __init__(self, message: str, *, code: str | None = None, permanent: bool = False) -> None:
        super().__init__(message, code=code)
        self.permanent = permanent


def china_date(issued_at: str | datetime) -> datetime:
    """The issue time in China time (an ISO text without offset is taken as UTC)."""
    at = datetime.fromisoformat(issued_at) if isinstance(issued_at, str) else issued_at
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(CHINA_TIME)


def document_key(store_id: str, issued_at: str | datetime, invoice_number: str, suffix: str = "pdf") -> str:
    """``{store}/{yyyy}/{mm}/{dd}/{invoice number}.{suffix}``."""
    if not re.fullmatch(r"[0-9A-Za-z]{8,32}", invoice_number):
        raise ValueError(f"an invoice number of 8–32 letters or digits, not {invoice_number!r}")
    day = china_date(issued_at)
    return f"{store_id}/{day:%Y}/{day:%m}/{day:%d}/{invoice_number}.{suffix}"


def check_file(kind: FileKind, body: bytes, *, max_bytes: int = MAX_PROVIDER_FILE_BYTES) -> None:
    """Raise DeliveryError (permanent: the platform serves this file so) unless ``body`` is a plausible
    file of ``kind`` within the size cap."""
    if not body:
        raise DeliveryError(f"{kind.suffix}: empty file", code="file_empty", permanent=True)
    if len(body) > max_bytes:
        raise DeliveryError(
            f"{kind.suffix}: {len(body)} bytes, over {max_bytes}", code="file_too_large", permanent=True
        )
    if not body.lstrip(b" \t\r\n" if kind.suffix == "xml" else b"").startswith(kind.magic):
        raise DeliveryError(f"{kind.suffix}: not a {kind.content_type} file", code="file_content", permanent=True)


# --- contacts ----------------------------------------------------------------------------------------
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@" + _LABEL + r"(?:\." + _LABEL + r")+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def email_address(value: str | None) -> str | None:
    """The address when it is one (None when absent); DeliveryError(permanent) when it is not."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > 254 or not _EMAIL.match(text):
        raise DeliveryError("not an e-mail address", code="invalid_email", permanent=True)
    return text


def phone_number(value: str | None) -> str | None:
    """E.164 (``+8613812345678``); an 11-digit mainland mobile number gets ``+86``. None when absent;
    DeliveryError(permanent) when it is no phone number."""
    if value is None or not value.strip():
        return None
    text = re.sub(r"[\s()-]", "", value.strip())
    if text.startswith("00"):  # the international prefix dialled from China
        text = "+" + text[2:]
    if _CN_MOBILE.match(text):
        text = "+86" + text
    if not _E164.match(text):
        raise DeliveryError(
            "not a phone number (E.164, or an 11-digit mainland mobile)", code="invalid_phone", permanent=True
        )
    return text


def mask_email(address: str) -> str:
    """``zhang.san@example.com`` → ``zh***@example.com`` (the domain kept: it says which provider)."""
    local, _, domain = address.partition("@")
    return f"{local[:2]}***@{domain}" if domain else "***"


def mask_phone(number: str) -> str:
    """``+8613812345678`` → ``+86138****5678``."""
    return number[:6] + "*" * max(0, len(number) - 10) + number[-4:] if len(number) > 10 else "*" * len(number)


def mask_address(channel: Channel, address: str) -> str:
    return mask_email(address) if channel is Channel.EMAIL else mask_phone(address)


def attempt_record(
    channel: Channel,
    address: str,
    result: Result,
    *,
    at: float,
    message_id: str = "",
    error: str = "",
    attempt: int = 1,
    reason: str = "issued",
) -> dict[str, str]:
    """One delivery record (every value text, the address masked)."""
    return {
        "channel": channel.value,
        "to": mask_address(channel, address),
        "result": result.value,
        "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
        "message_id": message_id,
        "error": error[:200],
        "attempt": str(attempt),
        "reason": reason,
    }


def retry_delay(attempt: int) -> int | None:
    """Seconds before the next try after failed attempt number ``attempt`` (1-based); None: give up."""
    return RETRY_DELAYS[attempt - 1] if 1 <= attempt <= len(RETRY_DELAYS) else None
