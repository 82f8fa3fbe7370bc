"""A delivery's signature checked against the store's secret, surviving a rotation in a warm container.

The platform module verifies (``chalicelib/webhooks/<platform>.py``); this module chooses the secret
value it verifies with. The operator rotates by putting ``[new, old]``, letting the platform switch,
then putting ``[new]`` (docs/operator.md); a container caches a secret's value for
``chalicelib.adapters.secrets.CACHE_SECONDS``, and a platform may sign with the new secret the moment
it is told — or the operator may go straight to ``[new]``. So when no cached secret verifies a
signature of the right shape (a code of :data:`SECRET_MAY_BE_STALE`), the secret is read once more
past the cache (``RereadableSecretPort.reread_json``, which reads a name at most once every few
seconds, so a flood of bad signatures costs no flood of Secrets Manager reads) and, if its value
changed, the delivery is verified again with it; else the first refusal stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from chalicelib.domain.errors import IgnoredEvent, SignatureInvalid, UnusableContent
from chalicelib.domain.models import PaymentEvent

#: The ``SignatureInvalid`` codes a newer value of the secret could cure: a signature of the right
#: shape no listed secret verifies, a WeChat Pay platform key or APIv3 key not known yet, an app id
#: changed, a secret missing or unreadable. Malformed or missing headers, stale timestamps
#: (``TimestampOutOfWindow``) and probes are refused without a read.
SECRET_MAY_BE_STALE = frozenset(
    {"bad_signature", "unknown_key", "decrypt_failed", "key_expired", "app_mismatch", "no_secret", "bad_secret"}
)


class SecretPort(Protocol):
    def get_json(self, name: str) -> dict[str, Any]: ...


@runtime_checkable
class RereadableSecretPort(SecretPort, Protocol):
    def reread_json(self, name: str) -> dict[str, Any] | None:
        """The secret read past the cache (and cached), or None when re-read too recently."""
        ...


def verify_delivery(
    module: ModuleType,
    raw_body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    *,
    secrets: SecretPort,
    secret_name: str,
) -> list[PaymentEvent | UnusableContent]:
    """The delivery's events as ``module`` verifies them with the secret ``secret_name`` (re-read once
    past the cache when the cached value does not verify, see the module docstring); a signed event
    whose content cannot be used is kept as its ``UnusableContent``. Raises ``SignatureInvalid``,
    ``IgnoredEvent``."""
    used = secrets.get_json(secret_name)
    try:
        return _verified(module, raw_body, headers, used, now)
    except SignatureInvalid as exc:
        if exc.code not in SECRET_MAY_BE_STALE or not isinstance(secrets, RereadableSecretPort):
            raise
        fresh = secrets.reread_json(secret_name)
        if fresh is None or fresh == used:
            raise
    return _verified(module, raw_body, headers, fresh, now)


def _verified(
    module: ModuleType, raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime
) -> list[PaymentEvent | UnusableContent]:
    if hasattr(module, "verify_each"):  # platforms that batch several messages in one push (抖店)
        items: list[PaymentEvent | UnusableContent] = module.verify_each(raw_body, headers, secrets, now)
        if not items:
            raise IgnoredEvent("no message of this push needs an invoice")
        return items
    try:
        return [module.verify(raw_body, headers, secrets, now)]
    except UnusableContent as exc:  # signed, but its content cannot be used: recorded too
        return [exc]
