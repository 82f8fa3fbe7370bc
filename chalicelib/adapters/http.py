"""The HTTP transport: sends one provider ``HttpRequest`` and returns its ``HttpResponse``, stdlib only.

This module owns the only network IO of the tax layer and the one decision that matters most for
money: *was the request sent?* Failures before any request byte left (connection refused, DNS, TLS
handshake or certificate failure, connect timeout) are ``RetryableTaxError``: the platform never saw
the request. Failures after the bytes started to leave (read timeout, connection reset or closed
before a complete reply) are ``AmbiguousTaxError``: the outcome is unknown and the caller must query
by serial before issuing again. A request whose ``idempotent`` is False is attempted exactly once;
an idempotent one is retried at most ``retries`` times, and only after pre-send failures. TLS
certificate and host name verification are always on (``ssl.create_default_context``); a custom CA
file may be given (tests, private CAs) but verification cannot be disabled. Messages name the
operation, host and failure class, never headers or bodies (they carry signatures and tax data).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from chalicelib.domain.errors import AmbiguousTaxError, ConfigurationError, RetryableTaxError
from chalicelib.taxapi.base import HttpRequest, HttpResponse

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


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
                return self._send_once(request)
            except _NotSent as failure:
                if attempt + 1 >= attempts:
                    raise RetryableTaxError(
                        f"{request.operation or 'request'}: {failure.reason} (not sent, {attempt + 1} attempt(s))",
                        code="tax_retryable",
                    ) from None
                self._sleep(self._backoff * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self, request: HttpRequest) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("request URL must be absolute http(s)", code="bad_endpoint")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self._connect_timeout)
        return conn, path

    def _send_once(self, request: HttpRequest) -> HttpResponse:
        conn, path = self._connection(request)
        what = request.operation or "request"
        host = conn.host
        try:
            # Phase 1: TCP connect + TLS handshake. Nothing of the request has left yet.
            try:
                conn.connect()
            except ssl.SSLError as exc:  # certificate or handshake failure (SSLCertVerificationError included)
                raise _NotSent(f"TLS handshake with {host} failed ({type(exc).__name__})") from None
            except socket.gaierror:
                raise _NotSent(f"cannot resolve {host}") from None
            except (TimeoutError, OSError) as exc:
                raise _NotSent(f"cannot connect to {host} ({type(exc).__name__})") from None
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
                raise AmbiguousTaxError(
                    f"{what}: connection to {host} lost after sending ({type(exc).__name__})"
                ) from None
            if len(body) > self._max_response_bytes:
                raise AmbiguousTaxError(f"{what}: reply from {host} larger than {self._max_response_bytes} bytes")
            return HttpResponse(status=reply.status, headers=tuple(reply.getheaders()), body=body)
        finally:
            conn.close()


class _NotSent(Exception):
    """Internal: the attempt failed before any request byte was written."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
