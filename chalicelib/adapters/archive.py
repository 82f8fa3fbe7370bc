"""The archive bucket (ARCHIVE_BUCKET, Object Lock): audit objects and manifests in S3, and the
manifest signing key in Secrets Manager.

Every object is written once under its own key (``chalicelib/audit/keys.py``); the bucket's default
retention (COMPLIANCE in prod, GOVERNANCE in dev, ≥ 5 years: ``infra/resources.py``) locks each
version as it is written, so nothing here can delete or replace what it wrote. Reads are for the
manifest job and the finance CLI; several objects are fetched at once on a small thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.secrets import SecretStore
from chalicelib.crypto import sm2
from chalicelib.domain.errors import ConfigurationError

#: Objects fetched in parallel by :meth:`S3Archive.get_many`.
READ_CONCURRENCY = 16


class S3Archive:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @property
    def _s3(self) -> Any:
        if not self.bucket:
            raise ConfigurationError("ARCHIVE_BUCKET is not set", code="missing_archive_bucket")
        return aws.client("s3")

    def put(self, key: str, body: bytes) -> None:
        content_type = "application/json" if key.endswith(".json") else "application/gzip"
        with aws.unavailable("archive"):
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, key: str) -> bytes:
        with aws.unavailable("archive"):
            body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def listing(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every current object under ``prefix``, in key order."""
        found: list[tuple[str, int]] = []
        with aws.unavailable("archive"):
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
        return sorted(found)

    def children(self, prefix: str) -> list[str]:
        """The next path level under ``prefix`` (``a/`` → ``a/2026/``, …), in order."""
        found: list[str] = []
        with aws.unavailable("archive"):
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            ):
                found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return sorted(found)

    def get_many(self, keys: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(key, bytes) of each key, in the order given, fetched ``READ_CONCURRENCY`` at a time."""
        ordered = list(keys)
        if not ordered:
            return
        with ThreadPoolExecutor(max_workers=min(READ_CONCURRENCY, len(ordered))) as pool:
            yield from zip(ordered, pool.map(self.get, ordered), strict=True)


class SigningKeys:
    """The per-deployment SM2 key pair of the manifests, one JSON secret:
    ``{"private_key": "64 hex", "public_key": "128 hex"}`` (``docs/operator.md``)."""

    def __init__(self, secret_name: str, secrets: SecretStore | None = None) -> None:
        self.name = secret_name
        self.secrets = secrets or SecretStore()

    def pair(self) -> tuple[str, str]:
        value = self.secrets.get_json(self.name)
        private, public = str(value.get("private_key", "")), str(value.get("public_key", ""))
        if not private or not public or sm2.public_key_from_private(private) != public.lower():
            raise ConfigurationError(f"secret {self.name!r} is not a matching SM2 key pair", code="bad_signing_key")
        return private, public.lower()

    def public_key(self) -> str:
        return self.pair()[1]


def ensure_signing_key(sm: Any, secret_name: str) -> str:
    """Create the signing key secret if it does not exist (``sm``: a Secrets Manager client; the local
    bootstrap, ``einvoice logs key --create``); the public key either way. The private key is generated
    here and never printed."""
    try:
        value = json.loads(sm.get_secret_value(SecretId=secret_name)["SecretString"])
        return str(value["public_key"])
    except sm.exceptions.ResourceNotFoundException:
        pass
    pair = sm2.generate_keypair()
    sm.create_secret(
        Name=secret_name,
        Description="einvoice: SM2 key signing the audit archive's daily manifests",
        SecretString=json.dumps({"private_key": pair.private_key, "public_key": pair.public_key}),
    )
    return pair.public_key
