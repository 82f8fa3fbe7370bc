"""Provider credentials from the store's secret (a JSON object of strings), through the SecretStore."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.errors import ConfigurationError
from chalicelib.domain.models import Store
from chalicelib.taxapi.base import Credentials


class JsonSecrets(Protocol):
    def get_json(self, name: str) -> dict[str, object]: ...


class SecretCredentials:
    def __init__(self, secrets: JsonSecrets) -> None:
        self._secrets = secrets

    def load(self, store: Store) -> Credentials:
        raw = self._secrets.get_json(store.provider.credentials_secret)
        values = {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int) and not isinstance(v, bool)}
        if not values:
            raise ConfigurationError(
                f"store {store.store_id}: provider credentials secret holds no values", code="missing_credential"
            )
        return Credentials(values)
