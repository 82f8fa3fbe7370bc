"""Lazily created, cached boto3 clients: none exists until first use (cold starts matter).

Every adapter asks this module for its client, so tests and the local stack can point all of them at
moto with one environment variable (``AWS_ENDPOINT_URL``) or hand in a session of their own. botocore
errors that mean "AWS is not reachable / throttling us" become ``InfrastructureUnavailable`` through
:func:`unavailable`, so routes answer 503 and platforms retry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.domain.errors import InfrastructureUnavailable

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_session: Any = None

#: Client-side error codes that mean "try again later", not "your request is wrong".
_TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "InternalFailure",
    "SlowDown",
    "RequestTimeout",
    "TransactionInProgressException",
}


def set_session(session: Any) -> None:
    """Use this boto3 session for every client from now on (tests, the CLI's --profile)."""
    global _session  # noqa: PLW0603 - one process-wide session, swapped by tests and the CLI
    with _lock:
        _session = session
        _clients.clear()


def client(service: str) -> Any:
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            session = _session or boto3.session.Session()
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)
            _clients[service] = session.client(service, config=config)
        return _clients[service]


def reset() -> None:
    with _lock:
        _clients.clear()


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Turn connection failures and throttling into InfrastructureUnavailable (→ 503, platform retries)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES:
            raise InfrastructureUnavailable(f"{what}: AWS is throttling or failing") from exc
        raise
    except BotoCoreError as exc:
        raise InfrastructureUnavailable(f"{what}: AWS unreachable ({exc.__class__.__name__})") from exc
