"""The invoice's files: the invoice bucket (S3, write-once under Object Lock, SSE-KMS), the fetch of
the tax platform's own files over the project's HTTP transport, and the project's own PDF.

- :class:`S3Documents` never overwrites: ``put`` is conditional (``If-None-Match: *``), so a second
  run (or two racing) cannot write a key again; when refused it answers the object already there
  (one HEAD). Every object is written with ``aws:kms`` under the stack's key and carries its SHA-256
  and its order key (metadata ``sha256``, ``order-key``), so a run that finds an object records the
  same digest without reading it, and never takes another order's file for its own.
- :class:`HttpFiles` fetches with ``GET`` through :class:`~chalicelib.adapters.http.HttpTransport`
  (TLS verified, size-capped by the transport's own ``max_response_bytes``). Only ``https`` URLs are
  fetched, except from a loopback host (the local tax sandbox); a 4xx is permanent, everything else
  is retried later.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from chalicelib.adapters import aws
from chalicelib.adapters.http import HttpTransport
from chalicelib.domain.delivery import DeliveryError
from chalicelib.domain.errors import TaxError
from chalicelib.services.delivery_ports import StoredFile
from chalicelib.taxapi.base import HttpRequest

_MISSING = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"PreconditionFailed", "ConditionalRequestConflict", "412"}


class S3Documents:
    def __init__(self, bucket: str, kms_key_id: str = "") -> None:
        self.bucket = bucket
        self.kms_key_id = kms_key_id

    @property
    def _s3(self) -> Any:
        return aws.client("s3")

    def find(self, key: str) -> StoredFile | None:
        from botocore.exceptions import ClientError

        try:
            with aws.unavailable("invoice bucket"):
                head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise
        meta = head.get("Metadata") or {}
        return StoredFile(key, meta.get("sha256", ""), int(head.get("ContentLength", 0)), meta.get("order-key", ""))

    def put(self, key: str, body: bytes, *, content_type: str, sha256: str, owner: str) -> StoredFile:
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
        if self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        try:
            with aws.unavailable("invoice bucket"):
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type,
                    Metadata={"sha256": sha256, "order-key": owner},
                    ChecksumAlgorithm="SHA256",  # Object Lock requires a checksum header
                    IfNoneMatch="*",
                    **extra,
                )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _EXISTS:
                found = self.find(key)  # written by a concurrent run: keep that one
                if found is not None:
                    return found
            raise
        return StoredFile(key, sha256, len(body), owner)

    def read(self, key: str) -> bytes:
        with aws.unavailable("invoice bucket"):
            body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def presigned_url(self, key: str, *, seconds: int = 300) -> str:
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
        )
        return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpFiles:
    """GET a provider file; DeliveryError (permanent for a refused URL or a 4xx)."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(host)):
            raise DeliveryError("only https file URLs are fetched", code="file_url_refused", permanent=True)
        request = HttpRequest("GET", url, (("Accept", "*/*"),), b"", idempotent=True, operation="fetch invoice file")
        try:
            reply = self.transport.send(request)
        except TaxError as exc:  # not sent, timed out, or over the transport's size cap
            raise DeliveryError(f"file fetch from {host} failed", code=exc.code) from None
        if 400 <= reply.status < 500 and reply.status not in (408, 429):
            raise DeliveryError(
                f"file fetch from {host}: HTTP {reply.status}", code=f"file_http_{reply.status}", permanent=True
            )
        if reply.status != 200:
            raise DeliveryError(f"file fetch from {host}: HTTP {reply.status}", code=f"file_http_{reply.status}")
        if len(reply.body) > max_bytes:
            raise DeliveryError(f"file from {host} over {max_bytes} bytes", code="file_too_large", permanent=True)
        return reply.body


class ProjectPdf:
    """The project's own PDF (``chalicelib/pdf``), imported on first use (reportlab is heavy)."""

    def render(self, payload: dict[str, Any], fields: Mapping[str, str | int]) -> bytes:
        from chalicelib.domain.invoice_document import document_from_record  # type: ignore[import-not-found,unused-ignore]
        from chalicelib.pdf.render import render_invoice_pdf  # type: ignore[import-not-found,unused-ignore]

        body: bytes = render_invoice_pdf(document_from_record(payload, fields))
        return body


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
