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
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from chalicelib.audit import records
from chalicelib.audit.keys import object_key


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


class TransitionRecorder(Protocol):
    """What the ledger tells the archive about one status change it made."""

    def transition(
        self, *, at: datetime, store: str, order_key: str, event: str, before: str | None, after: str, cause: str | None
    ) -> None: ...


class ArchiveWriter(Protocol):
    def put(self, key: str, body: bytes) -> None: ...


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
        self, *, at: datetime, store: str, order_key: str, event: str, before: str | None, after: str, cause: str | None
    ) -> None:
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
            actor=opened[2],
            invocation=opened[0],
        )
        self._add(store, "transitions", line)


class ArchiveSession(Protocol):
    """What the worker (and an operator command) does with the archive: open an invocation, flush it."""

    def begin(self, *, actor: str | None = None, invocation: str | None = None) -> str: ...
    def flush(self) -> list[str]: ...
