"""The interaction log of one invocation: tax calls and status changes, buffered, flushed to the archive.

:class:`InvocationArchive` is the recorder port's implementation the composition root hands to the
exchange (``InteractionRecorder``) and to the ledger (``TransitionRecorder``). It keeps the records of
the open invocation in memory, grouped by store and stream, and :meth:`flush` writes **one object per
invocation, store and stream** (``chalicelib/audit/keys.py``) through an :class:`ArchiveWriter`.

The worker opens an invocation when a batch starts and flushes before it returns the batch response
(which is what acknowledges the SQS messages): a record is in the archive before its message is gone.
A flush that fails raises; the objects it could not write are kept and written by the next flush of
this container under their own invocation id, and the worker reports every message of the batch as
failed, so they come back. Outside an open invocation (the webhook path) nothing is buffered.

The webhook intake's own steps (``received``, ``received → queued``) are therefore archived by the
worker when it first claims the order (:func:`record_intake`), from the record's ``created_at`` and
``updated_at``: no AWS call is added to the intake's 5-second budget, and they land in the claiming
invocation's transitions object, which the worker writes anyway.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from chalicelib.audit import records
from chalicelib.audit.keys import object_key
from chalicelib.domain.order_state import OrderEvent, OrderStatus
from chalicelib.services.ports import OrderRecord


class InteractionRecorder(Protocol):
    """What the exchange tells the archive about one tax call."""

    def record(
        self,
        *,
        at: datetime,
        store: str,
        provider: str,
        operation: str,
        attempt: int,
        latency_ms: int,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        params: Mapping[str, object],
        body: bytes,
        response_status: int | None,
        response_headers: Iterable[tuple[str, str]],
        response_body: bytes | None,
        outcome: str,
        provider_code: str | None,
        message: str | None,
        error_class: str | None,
        keys: Mapping[str, str],
    ) -> None: ...


@runtime_checkable
class TransitionRecorder(Protocol):
    """What the ledger tells the archive about one status change it made."""

    def transition(
        self, *, at: datetime, store: str, order_key: str, event: str, before: str | None, after: str, cause: str | None
    ) -> None: ...


class ArchiveWriter(Protocol):
    def put(self, key: str, body: bytes) -> None: ...


def _parse_time(text: str | int | None) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


#: The actor of the intake's steps (the webhook function, not the worker that archives them).
INTAKE_ACTOR = "intake"


def intake_steps(before: OrderRecord) -> list[dict[str, Any]]:
    """The intake's transitions of a record the worker is claiming for the first time (pure): the
    ``received`` write at ``created_at`` and, for a queued record, ``received → queued`` at its
    ``updated_at`` (the intake's last write; nothing else writes a queued record before its first
    claim). Anything else (already claimed, held, a refund) has none."""
    if before.number("claims") > 0 or before.status not in (OrderStatus.RECEIVED, OrderStatus.QUEUED):
        return []
    received = _parse_time(before.created_at)
    if received is None:
        return []
    steps: list[dict[str, Any]] = [
        {"at": received, "event": "received", "before": None, "after": OrderStatus.RECEIVED.value}
    ]
    if before.status is OrderStatus.QUEUED:
        queued = _parse_time(before.fields.get("updated_at")) or received
        steps.append(
            {
                "at": queued,
                "event": OrderEvent.ENQUEUED.value,
                "before": OrderStatus.RECEIVED.value,
                "after": OrderStatus.QUEUED.value,
            }
        )
    return steps


def record_intake(recorder: object, before: OrderRecord) -> None:
    """Archive the intake's steps of ``before`` through ``recorder`` (if it records transitions)."""
    if isinstance(recorder, InvocationArchive):
        for step in intake_steps(before):
            recorder.transition(
                store=before.store_id, order_key=before.order_key, cause=step["event"], actor=INTAKE_ACTOR, **step
            )
    elif isinstance(recorder, TransitionRecorder):
        for step in intake_steps(before):
            recorder.transition(store=before.store_id, order_key=before.order_key, cause=step["event"], **step)


class NoRecorder:
    """Records nothing (tests and tools that do not archive)."""

    def record(self, **_: object) -> None:
        return None

    def transition(self, **_: object) -> None:
        return None


def _invocation_id(at: datetime) -> str:
    return f"{at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


class ArchiveFlushError(RuntimeError):
    """Some objects could not be written; they are kept for the next flush."""


class InvocationArchive:
    def __init__(self, writer: ArchiveWriter, *, actor: str, clock: Callable[[], datetime] | None = None) -> None:
        self.writer = writer
        self.actor = actor
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._open: tuple[str, datetime, str] | None = None  # invocation id, start, actor
        self._buffer: dict[tuple[str, str], list[dict[str, Any]]] = {}
        #: Objects a failed flush could not write: key → body.
        self.pending: dict[str, bytes] = {}

    # --- the invocation ---------------------------------------------------------------------------
    def begin(self, *, actor: str | None = None, invocation: str | None = None) -> str:
        """Open an invocation (a new one replaces an unflushed one, whose records are kept)."""
        at = self.clock()
        with self._lock:
            self._stage()
            self._open = (invocation or _invocation_id(at), at, actor or self.actor)
            return self._open[0]

    @property
    def invocation(self) -> str | None:
        return self._open[0] if self._open else None

    def flush(self) -> list[str]:
        """Write every buffered object (and any left by an earlier failed flush); the keys written.
        Raises :class:`ArchiveFlushError` if any could not be written (those stay pending)."""
        with self._lock:
            self._stage()
            self._open = None
            todo = dict(self.pending)
        written, failed = [], []
        for key, body in todo.items():
            try:
                self.writer.put(key, body)
            except Exception:
                failed.append(key)
                continue
            written.append(key)
            with self._lock:
                self.pending.pop(key, None)
        if failed:
            raise ArchiveFlushError(f"{len(failed)} archive object(s) not written: {', '.join(failed)}")
        return written

    def _stage(self) -> None:
        """Encode the open invocation's buffer into pending objects (lock held)."""
        if self._open is None or not self._buffer:
            self._buffer.clear()
            return
        invocation, at, _ = self._open
        for (store, stream), lines in self._buffer.items():
            if stream == "transitions":  # the intake's steps, archived at claim, come first
                lines.sort(key=lambda line: str(line["time"]))
            self.pending[object_key(store, at.date(), stream, invocation)] = records.encode_lines(lines)
        self._buffer.clear()

    def _add(self, store: str, stream: str, line: dict[str, Any]) -> None:
        with self._lock:
            if self._open is not None:
                self._buffer.setdefault((store, stream), []).append(line)

    # --- the recorder ports -----------------------------------------------------------------------
    def record(
        self,
        *,
        at: datetime,
        store: str,
        provider: str,
        operation: str,
        attempt: int,
        latency_ms: int,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        params: Mapping[str, object],
        body: bytes,
        response_status: int | None,
        response_headers: Iterable[tuple[str, str]],
        response_body: bytes | None,
        outcome: str,
        provider_code: str | None,
        message: str | None,
        error_class: str | None,
        keys: Mapping[str, str],
    ) -> None:
        opened = self._open
        if opened is None:
            return
        line = records.interaction(
            at=at,
            store=store,
            provider=provider,
            operation=operation,
            attempt=attempt,
            latency_ms=latency_ms,
            method=method,
            url=url,
            headers=headers,
            params=params,
            body=body,
            response_status=response_status,
            response_headers=response_headers,
            response_body=response_body,
            outcome=outcome,
            provider_code=provider_code,
            message=message,
            error_class=error_class,
            keys=keys,
            actor=opened[2],
            invocation=opened[0],
        )
        self._add(store, "interactions", line)

    def transition(
        self,
        *,
        at: datetime,
        store: str,
        order_key: str,
        event: str,
        before: str | None,
        after: str,
        cause: str | None,
        actor: str | None = None,
    ) -> None:
        """``actor``: whose step it was, when not this invocation's (the intake's, archived at claim)."""
        opened = self._open
        if opened is None:
            return
        line = records.transition(
            at=at,
            store=store,
            order_key=order_key,
            event=event,
            before=before,
            after=after,
            cause=cause,
            actor=actor or opened[2],
            invocation=opened[0],
        )
        self._add(store, "transitions", line)


class ArchiveSession(Protocol):
    """What the worker (and an operator command) does with the archive: open an invocation, flush it."""

    def begin(self, *, actor: str | None = None, invocation: str | None = None) -> str: ...
    def flush(self) -> list[str]: ...
