"""The current tax classification table: the file `einvoice taxcodes import` put in the config bucket.

Read at most once a minute per container (a conditional GET on the ETag after that). Until an operator
imports a table, the curated copy shipped with the code (``chalicelib/domain/data/taxcodes.json``)
is used, so a fresh deployment validates orders from its first request.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.taxcodes import DEFAULT_TABLE_PATH, TaxCodeTable

KEY = "taxcodes/current.json"
CACHE_SECONDS = 60.0


class TaxCodeSource:
    def __init__(self, bucket: str, *, clock: Any = time.monotonic) -> None:
        self.bucket = bucket
        self._clock = clock
        self._table: TaxCodeTable | None = None
        self._etag: str | None = None
        self._checked = -1e18

    def current(self) -> TaxCodeTable:
        now = self._clock()
        if self._table is not None and now - self._checked < CACHE_SECONDS:
            return self._table
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": KEY}
        if self._etag and self._table is not None:
            kwargs["IfNoneMatch"] = self._etag
        try:
            with aws.unavailable("tax code table"):
                reply = aws.client("s3").get_object(**kwargs)
            self._table = TaxCodeTable.from_json(reply["Body"].read())
            self._etag = reply.get("ETag")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("304", "NotModified"):
                pass
            elif code in ("NoSuchKey", "404", "NoSuchBucket") or not self.bucket:
                if self._table is None:
                    self._table = TaxCodeTable.from_json(DEFAULT_TABLE_PATH.read_bytes())
            else:
                raise
        self._checked = now
        assert self._table is not None
        return self._table
