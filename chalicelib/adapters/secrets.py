"""Secret values from Secrets Manager, by name, cached briefly per container; never logged.

A secret's value is a JSON object (``{"secrets": ["whsec_…"]}``, provider credentials …); a plain
string value is returned as ``{"secret": value}``. The cache keeps rotation cheap: a new value is seen
within ``CACHE_SECONDS``, and during a rotation both old and new secrets can be listed in one value.

A platform may start signing with a new secret the moment it is told, while a warm container still
holds the old value: :meth:`SecretStore.reread_json` reads a secret again past the cache, for the
intake to retry a signature no cached secret verifies (``chalicelib.services.ingest``). It reads at
most once per name every ``REREAD_SECONDS`` (a flood of bad signatures costs no flood of reads);
inside that interval it answers None.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.errors import ConfigurationError

CACHE_SECONDS = 60.0
#: The shortest interval between two reads of one secret past the cache.
REREAD_SECONDS = 5.0


class SecretStore:
    def __init__(self, *, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._reread: dict[str, float] = {}

    def get_json(self, name: str) -> dict[str, Any]:
        cached = self._cache.get(name)
        now = self._clock()
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        return self._read(name, now)

    def reread_json(self, name: str) -> dict[str, Any] | None:
        """The secret read again past the cache (and cached), or None when it was re-read less than
        ``REREAD_SECONDS`` ago."""
        now = self._clock()
        last = self._reread.get(name)
        if last is not None and now - last < REREAD_SECONDS:
            return None
        self._reread[name] = now
        return self._read(name, now)

    def _read(self, name: str, now: float) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            with aws.unavailable("secrets"):
                raw = aws.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise ConfigurationError(f"secret {name!r} does not exist", code="missing_secret") from None
            raise
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        parsed: dict[str, Any] = value if isinstance(value, dict) else {"secret": raw}
        self._cache[name] = (now, parsed)
        return parsed

    def put(self, name: str, value: str) -> str:
        """Create the secret or store a new version; returns 'created' or 'updated'."""
        from botocore.exceptions import ClientError

        sm = aws.client("secretsmanager")
        self._cache.pop(name, None)
        try:
            sm.create_secret(Name=name, SecretString=value)
            return "created"
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
        sm.put_secret_value(SecretId=name, SecretString=value)
        return "updated"
