"""The HTTP transport: sends one provider ``HttpRequest`` and returns its ``HttpResponse``, stdlib only.

This module owns the only network IO of the tax layer and the one decision that matters most for
money: *was the request sent?* Failures before any request byte left (connection refused, DNS, TLS
handshake or certificate failure, connect timeout) are ``RetryableTaxError``: the platform never saw
the request. Failures after the bytes started to leave (read timeout, connection reset or closed
before a complete reply) are ``AmbiguousTaxError``: the outcome is unknown and the caller must query
by serial before issuing again. A request whose ``idempotent`` is False is attempted exactly once;
an idempotent one is retried at most ``retries`` times, and only after pre-send failures.

Connections are kept alive (one small pool per host, per container): a reused connection is first
checked for having been closed by the server while idle (a readable idle socket is a dropped one) and
replaced if so, so reuse does not turn into a spurious "lost after sending". A failure after sending on
a reused connection is still Ambiguous — the server may have read the request — except for an
idempotent request, which is then resent once on a fresh connection. TLS
certificate and host name verification are always on (``ssl.create_default_context``); a custom CA
file may be given (tests, private CAs) but verification cannot be disabled. Messages name the
operation, host and failure class, never headers or bodies (they carry signatures and tax data).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from chalicelib.domain.errors import AmbiguousTaxError, ConfigurationError, RetryableTaxError
from chalicelib.taxapi.base import HttpRequest, HttpResponse

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: An idle kept-alive connection older than this is not reused (servers close idle ones after ~5–60 s).
DEFAULT_IDLE_SECONDS = 4.0
#: Idle connections kept per host.
POOL_SIZE = 4

_Key = tuple[str, str, int | None]


class HttpTransport:
    """Send provider requests over HTTP(S) with explicit timeouts and honest failure mapping.

    ``connect_timeout`` bounds TCP connect plus TLS handshake; ``read_timeout`` bounds each socket
    read/write after that (``http.client`` semantics: per operation, not a total deadline).
    ``sleep`` and ``backoff`` are injectable so retry tests do not sleep.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retries: int = 2,
        ca_file: str | None = None,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ConfigurationError("timeouts must be positive", code="bad_timeout")
        if retries < 0:
            raise ConfigurationError("retries must be >= 0", code="bad_retries")
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._max_response_bytes = max_response_bytes
        self._idle_seconds = idle_seconds
        self._pool: dict[_Key, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        #: Connections opened so far (the benchmark reports reuse).
        self.connections_opened = 0
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # create_default_context already sets CERT_REQUIRED and check_hostname; asserted, not assumed.
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
        self._tls = context

    def __repr__(self) -> str:
        return (
            f"HttpTransport(connect_timeout={self._connect_timeout}, read_timeout={self._read_timeout}, "
            f"retries={self._retries})"
        )

    def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; return the reply (any status) or raise Retryable / Ambiguous."""
        attempts = 1 + self._retries if request.idempotent else 1
        for attempt in range(attempts):
            try:
                try:
                    return self._send_once(request, reuse=True)
                except _Stale:
                    # A kept-alive connection failed after sending; only an idempotent request may go again.
                    return self._send_once(request, reuse=False)
            except _NotSent as failure:
                if attempt + 1 >= attempts:
                    raise RetryableTaxError(
                        f"{request.operation or 'request'}: {failure.reason} (not sent, {attempt + 1} attempt(s))",
                        code="tax_retryable",
                    ) from None
                self._sleep(self._backoff * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self, request: HttpRequest, *, reuse: bool) -> tuple[http.client.HTTPConnection, str, _Key, bool]:
        """A connection for ``request`` (an idle pooled one when ``reuse`` and still open) and its path."""
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("request URL must be absolute http(s)", code="bad_endpoint")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        key: _Key = (parts.scheme, parts.hostname, parts.port)
        if reuse:
            idle = self._take(key)
            if idle is not None:
                return idle, path, key, True
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self._connect_timeout)
        return conn, path, key, False

    def _take(self, key: _Key) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._pool.get(key)
                if not idle:
                    return None
                since, conn = idle.pop()
            if now - since <= self._idle_seconds and not _dropped(conn):
                return conn
            conn.close()

    def _give_back(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._pool.setdefault(key, [])
            if len(idle) < POOL_SIZE:
                idle.append((time.monotonic(), conn))
                return
        conn.close()

    def _send_once(self, request: HttpRequest, *, reuse: bool) -> HttpResponse:
        conn, path, key, reused = self._connection(request, reuse=reuse)
        what = request.operation or "request"
        host = conn.host
        keep = False
        try:
            if not reused:
                # Phase 1: TCP connect + TLS handshake. Nothing of the request has left yet.
                try:
                    conn.connect()
                except ssl.SSLError as exc:  # certificate or handshake failure (SSLCertVerificationError included)
                    raise _NotSent(f"TLS handshake with {host} failed ({type(exc).__name__})") from None
                except socket.gaierror:
                    raise _NotSent(f"cannot resolve {host}") from None
                except (TimeoutError, OSError) as exc:
                    raise _NotSent(f"cannot connect to {host} ({type(exc).__name__})") from None
                self.connections_opened += 1
            if conn.sock is not None:
                conn.sock.settimeout(self._read_timeout)
            # Phase 2: from the first byte written on, the platform may have acted on the request.
            try:
                conn.request(request.method, path, body=request.body, headers=dict(request.headers))
                reply = conn.getresponse()
                body = reply.read(self._max_response_bytes + 1)
            except TimeoutError:
                raise AmbiguousTaxError(f"{what}: no reply from {host} within {self._read_timeout}s") from None
            except (http.client.HTTPException, OSError) as exc:
                if reused and request.idempotent:
                    raise _Stale from None
                raise AmbiguousTaxError(
                    f"{what}: connection to {host} lost after sending ({type(exc).__name__})"
                ) from None
            if len(body) > self._max_response_bytes:
                raise AmbiguousTaxError(f"{what}: reply from {host} larger than {self._max_response_bytes} bytes")
            keep = not reply.will_close and reply.isclosed()
            return HttpResponse(status=reply.status, headers=tuple(reply.getheaders()), body=body)
        finally:
            if keep:
                self._give_back(key, conn)
            else:
                conn.close()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that is readable has been closed (or spoken to) by the server."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Stale(Exception):
    """Internal: a reused connection failed after sending an idempotent request (resend it fresh)."""


class _NotSent(Exception):
    """Internal: the attempt failed before any request byte was written."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
