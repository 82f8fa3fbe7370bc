"""Lazily created, cached boto3 clients in named profiles: none exists until first use (cold starts matter).

Every adapter asks this module for its client, so tests and the local stack can point all of them at
moto with one environment variable (``AWS_ENDPOINT_URL``) or hand in a session of their own.

**Profiles.** A client is built for a *profile*, its timeouts and retries:

- ``default`` — the worker, the sweeper, the CLI: connect 3 s, read 10 s, botocore's standard retries
  (4 attempts). Time there is plentiful and a retry is cheaper than a failed attempt.
- ``intake`` — the webhook route. The platforms give up after a few seconds (WeChat Pay, Alipay) and
  retry a 5xx for days, so an AWS that hangs must become a 503 well inside their timeout: short
  timeouts (connect 1 s, read 1.5 s), one retry, and a **deadline** for the whole request
  (``INTAKE_DEADLINE_SECONDS``, 5 s by default, from the environment): an attempt — a retry included —
  is started only if it can end by the deadline, less a reserve for the reply; otherwise the call
  raises ``InfrastructureUnavailable`` (code ``intake_deadline``) at once. With a shorter deadline the
  timeouts shrink with it, so one attempt always fits.

``client(service, profile=...)`` names the profile; an adapter that names none gets the profile of the
*scope* it runs in (a context variable, so threads and tasks never mix): :func:`intake` wraps a use
case so that each call of it runs in the intake profile under a fresh deadline — the composition root
hands the route ``aws.intake(Ingest(...))`` and no adapter changes. Outside any scope: ``default``.

**Errors** (:func:`unavailable`), so that nothing a sender controls reaches a 500:

- throttling and AWS-side failures, unreachable endpoints, timeouts → ``InfrastructureUnavailable``
  (503: the platform retries);
- a request AWS refuses as invalid — a key over DynamoDB's 2,048 bytes, an item over 400 KB, a value
  the service cannot take: the same request fails the same way on every retry, and on the intake path
  it is built from what the sender put in the body → :class:`RequestRefused`, a ``MalformedPayload``
  (422), logged as an error (it may also be a bug of ours: the log says which request);
- our own configuration (credentials, permissions, a queue that does not exist) → ``ConfigurationError``
  (503 until an operator fixes it);
- codes a caller handles itself (a missing secret or key, a refused condition) and unknown codes pass
  through as the ``ClientError`` they are.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from chalicelib.domain.errors import ConfigurationError, InfrastructureUnavailable, MalformedPayload

log = logging.getLogger(__name__)


DEFAULT = "default"
INTAKE = "intake"
#: The intake's answer is due this long after the use case starts, AWS retries included (environment
#: variable INTAKE_DEADLINE_SECONDS overrides it).
INTAKE_DEADLINE_SECONDS = 5.0
#: Kept for what follows the last AWS call (the reply, the log line, metrics): every attempt must end
#: this long before the deadline.
INTAKE_RESERVE_SECONDS = 0.5
_MIN_DEADLINE_SECONDS = 1.0


@dataclass(frozen=True)
class Profile:
    """Timeouts and retries of the clients of one profile."""

    name: str
    connect_timeout: float
    read_timeout: float
    total_attempts: int  # the first attempt included

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt can take (a read timeout bounds each wait for bytes, not a slow
        trickle; AWS answers whole or not at all)."""
        return self.connect_timeout + self.read_timeout


#: The settings every client had before profiles existed (botocore's ``max_attempts: 3`` = 4 attempts).
DEFAULT_PROFILE = Profile(DEFAULT, connect_timeout=3.0, read_timeout=10.0, total_attempts=4)


def intake_deadline_seconds() -> float:
    """INTAKE_DEADLINE_SECONDS from the environment (at least 1 s), else 5 s."""
    raw = os.environ.get("INTAKE_DEADLINE_SECONDS", "")
    try:
        value = float(raw) if raw.strip() else INTAKE_DEADLINE_SECONDS
    except ValueError:
        log.warning("INTAKE_DEADLINE_SECONDS=%r is not a number; using %s", raw, INTAKE_DEADLINE_SECONDS)
        value = INTAKE_DEADLINE_SECONDS
    return max(_MIN_DEADLINE_SECONDS, value)


def intake_profile(deadline_seconds: float | None = None) -> Profile:
    """Connect 1 s, read 1.5 s, one retry at the default 5 s deadline; shorter when the deadline leaves
    less (one attempt always fits), longer when a deployment gives the intake more time (a third of the
    budget stays the most one wait may take, so the retry still fits)."""
    budget = (deadline_seconds or intake_deadline_seconds()) - INTAKE_RESERVE_SECONDS
    connect = min(budget / 4, max(1.0, budget / 9))
    read = min(budget / 2, max(1.5, budget / 6))
    return Profile(INTAKE, connect_timeout=connect, read_timeout=read, total_attempts=2)


def profile_settings(name: str) -> Profile:
    if name == DEFAULT:
        return DEFAULT_PROFILE
    if name == INTAKE:
        return intake_profile()
    raise ValueError(f"no AWS client profile {name!r} (known: {DEFAULT}, {INTAKE})")


# --- scopes ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scope:
    profile: str
    deadline: float | None  # time.monotonic() by which every attempt must have ended


_scope: ContextVar[_Scope | None] = ContextVar("aws_client_scope", default=None)


@contextmanager
def scope(name: str, *, deadline_seconds: float | None = None) -> Iterator[None]:
    """Run the block's AWS calls in profile ``name`` (those that name no profile), each attempt ending
    within ``deadline_seconds`` from now less the reserve (no deadline: None)."""
    profile_settings(name)  # an unknown profile fails here, not at the first call
    deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds - INTAKE_RESERVE_SECONDS
    token = _scope.set(_Scope(name, deadline))
    try:
        yield
    finally:
        _scope.reset(token)


class _Scoped:
    """A use case whose every call runs in a scope; its attributes are the use case's."""

    def __init__(self, target: Any, name: str, deadline: Callable[[], float | None]) -> None:
        self._target = target
        self._name = name
        self._deadline = deadline

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with scope(self._name, deadline_seconds=self._deadline()):
            return self._target(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._target, attr)

    def __repr__(self) -> str:
        return f"aws.{self._name}({self._target!r})"


def intake[T](target: T) -> T:
    """``target`` (the intake use case) with each call run in the intake profile under the intake
    deadline (read at every call). The composition root hands this to the webhook route."""
    return cast(T, _Scoped(target, INTAKE, intake_deadline_seconds))


def in_scope(target: Any, name: str = INTAKE) -> bool:
    """Whether ``target`` was wrapped by :func:`intake` (or another scope named ``name``)."""
    return isinstance(target, _Scoped) and target._name == name


def _check_deadline(attempt_seconds: float, **_: Any) -> None:
    """botocore ``before-send`` (every attempt, retries included): refuse an attempt that could end after
    the scope's deadline."""
    current = _scope.get()
    if current is None or current.deadline is None:
        return
    left = current.deadline - time.monotonic()
    if left < attempt_seconds:
        raise InfrastructureUnavailable(
            f"AWS: {max(left, 0.0):.2f} s left before the intake deadline, an attempt may take {attempt_seconds:.2f} s",
            code="intake_deadline",
        )


# --- clients -----------------------------------------------------------------------------------------
_lock = threading.Lock()
_clients: dict[tuple[str, str], Any] = {}
_session: Any = None


def set_session(session: Any) -> None:
    """Use this boto3 session for every client from now on (tests, the CLI's --profile)."""
    global _session  # noqa: PLW0603 - one process-wide session, swapped by tests and the CLI
    with _lock:
        _session = session
        _clients.clear()


def client(service: str, profile: str | None = None) -> Any:
    """The cached client of ``service`` in ``profile`` (default: the current scope's, else ``default``)."""
    current = _scope.get()
    name = profile or (current.profile if current is not None else DEFAULT)
    key = (service, name)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            settings = profile_settings(name)
            session = _session or boto3.session.Session()
            config = Config(
                retries={"total_max_attempts": settings.total_attempts, "mode": "standard"},
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
            )
            made = session.client(service, config=config)
            made.meta.events.register("before-send", functools.partial(_check_deadline, settings.attempt_seconds))
            _clients[key] = made
        return _clients[key]


def reset() -> None:
    with _lock:
        _clients.clear()


# --- errors ------------------------------------------------------------------------------------------
class RequestRefused(MalformedPayload):
    """AWS refused a request as invalid (a key or item too large, a value it cannot take): retrying it
    cannot help, and on the intake path it was built from the body, so the sender is answered 422."""

    code = "request_refused"


#: Client-side error codes that mean "try again later", not "your request is wrong".
_TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "BandwidthLimitExceeded",
    "InternalServerError",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
    "TransactionConflictException",
    "KMSThrottlingException",
}
#: The request itself is invalid: the same request fails the same way however often it is sent.
_INVALID_REQUEST_CODES = {
    "ValidationException",  # DynamoDB: key over 2,048 / 1,024 bytes, item over 400 KB, an empty key …
    "ValidationError",
    "SerializationException",
    "ItemCollectionSizeLimitExceededException",
    "InvalidParameterValue",  # SQS, SNS
    "InvalidParameterValueException",
    "InvalidParameter",
    "InvalidParameterException",
    "InvalidParameterCombination",
    "MissingParameter",
    "InvalidMessageContents",  # SQS: characters outside its allowed set
    "InvalidAttributeValue",
    "BatchRequestTooLong",
    "AWS.SimpleQueueService.BatchRequestTooLong",
    "InvalidBatchEntryId",
    "AWS.SimpleQueueService.InvalidBatchEntryId",
    "InvalidRequestException",  # Secrets Manager
    "InvalidRequest",
    "InvalidArgument",  # S3
    "KeyTooLongError",
    "EntityTooLarge",
    "RequestEntityTooLarge",
}
#: Our own configuration is wrong: an operator must act (503 meanwhile: the platforms' retries deliver
#: the event once fixed). ResourceNotFoundException is not here: the secret store turns it into its own
#: ConfigurationError, and so may others.
_CONFIGURATION_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "AuthorizationError",  # SNS
    "NotFound",  # SNS: no such topic
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
}


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Classify AWS failures (see the module docstring): 503 for AWS's and our configuration's, 422 for
    a request refused as invalid; codes callers handle themselves pass through."""
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _TRANSIENT_CODES or (status >= 500 and code not in _INVALID_REQUEST_CODES):
            raise InfrastructureUnavailable(f"{what}: AWS is throttling or failing ({code})") from exc
        if code in _INVALID_REQUEST_CODES:
            log.error(
                "%s: AWS refused the request as invalid (%s %s: %s)",
                what,
                exc.operation_name,
                code,
                error.get("Message"),
            )
            raise RequestRefused(
                f"{what}: AWS refused the request as invalid ({code}: {error.get('Message', '')})"
            ) from exc
        if code in _CONFIGURATION_CODES:
            raise ConfigurationError(f"{what}: AWS refused our credentials or configuration ({code})") from exc
        raise
    except ParamValidationError as exc:  # botocore's own check of the parameters, before sending
        log.error("%s: a request parameter is invalid (%s)", what, exc)
        raise RequestRefused(f"{what}: a request parameter is invalid") from exc
    except BotoCoreError as exc:
        raise InfrastructureUnavailable(f"{what}: AWS unreachable ({exc.__class__.__name__})") from exc
