"""Secret values from Secrets Manager, by name, cached briefly per container; never logged.

A secret's value is a JSON object (``{"secrets": ["whsec_…"]}``, provider credentials …); a plain
string value is returned as ``{"secret": value}``. The cache keeps rotation cheap: a new value is seen
within ``CACHE_SECONDS``, and during a rotation both old and new secrets can be listed in one value.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.errors import ConfigurationError

CACHE_SECONDS = 60.0


class SecretStore:
    def __init__(self, *, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def get_json(self, name: str) -> dict[str, Any]:
        cached = self._cache.get(name)
        now = self._clock()
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
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
