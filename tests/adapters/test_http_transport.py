"""HttpTransport against real local servers on 127.0.0.1: replies, timeouts, refusals, drops, TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib.adapters.http import HttpTransport
from chalicelib.domain.errors import AmbiguousTaxError, ConfigurationError, RetryableTaxError
from chalicelib.taxapi.base import HttpRequest

RELEASE = threading.Event()  # set at teardown so a stalled handler finishes at once


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["path"] == path)


class Handler(BaseHTTPRequestHandler):
    recorder: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.recorder.add({"path": self.path, "headers": dict(self.headers), "body": body})  # type: ignore[attr-defined]
        if self.path == "/stall":
            RELEASE.wait(10)
            return
        if self.path == "/drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = b'{"ok": true, "echo": ' + str(len(body)).encode() + b"}"
        self.send_response(200 if self.path != "/busy" else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Nonce", "abc")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def start(server: ThreadingHTTPServer) -> threading.Thread:
    server.recorder = Recorder()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    RELEASE.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    start(server)
    yield server
    RELEASE.set()
    server.shutdown()
    server.server_close()


def url(server: ThreadingHTTPServer, path: str, scheme: str = "http") -> str:
    host, port = server.server_address[:2]
    return f"{scheme}://{host}:{port}{path}"


def post(target: str, *, idempotent: bool = False, body: bytes = b"signed-body") -> HttpRequest:
    return HttpRequest(
        method="POST",
        url=target,
        headers=(("Content-Type", "text/plain; charset=utf-8"), ("fwbm", "QDFPSC")),
        body=body,
        idempotent=idempotent,
        operation="issue",
    )


def transport(**kwargs: Any) -> HttpTransport:
    sleeps: list[float] = []
    kwargs.setdefault("sleep", sleeps.append)
    kwargs.setdefault("connect_timeout", 2.0)
    kwargs.setdefault("read_timeout", 2.0)
    return HttpTransport(**kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- plain HTTP ----------------------------------------------------------------------------------
def test_a_normal_reply_is_returned_with_status_headers_and_body(http_server: ThreadingHTTPServer) -> None:
    response = transport().send(post(url(http_server, "/access/v2/invoke/LQKP/QDFPSC?x=1")))
    assert response.status == 200
    assert response.body == b'{"ok": true, "echo": 11}'
    assert response.header("x-nonce") == "abc"
    [seen] = http_server.recorder.requests  # type: ignore[attr-defined]
    assert seen["path"] == "/access/v2/invoke/LQKP/QDFPSC?x=1"
    assert seen["body"] == b"signed-body"
    assert seen["headers"]["fwbm"] == "QDFPSC"
    assert seen["headers"]["Content-Type"] == "text/plain; charset=utf-8"


def test_an_error_status_is_returned_not_raised(http_server: ThreadingHTTPServer) -> None:
    # Mapping statuses to the taxonomy is the provider's job (it knows the protocol).
    assert transport().send(post(url(http_server, "/busy"))).status == 503


def test_a_read_timeout_after_sending_is_ambiguous(http_server: ThreadingHTTPServer) -> None:
    with pytest.raises(AmbiguousTaxError):
        transport(read_timeout=0.2).send(post(url(http_server, "/stall")))
    assert http_server.recorder.count("/stall") == 1  # type: ignore[attr-defined]


def test_an_idempotent_request_is_not_resent_after_a_read_timeout(http_server: ThreadingHTTPServer) -> None:
    with pytest.raises(AmbiguousTaxError):
        transport(read_timeout=0.2, retries=3).send(post(url(http_server, "/stall"), idempotent=True))
    assert http_server.recorder.count("/stall") == 1  # type: ignore[attr-defined]


def test_a_refused_port_is_retryable() -> None:
    with pytest.raises(RetryableTaxError):
        transport().send(post(f"http://127.0.0.1:{free_port()}/x"))


def test_an_idempotent_request_is_retried_on_refusal_at_most_n_times() -> None:
    sleeps: list[float] = []
    with pytest.raises(RetryableTaxError, match="3 attempt"):
        transport(retries=2, sleep=sleeps.append).send(post(f"http://127.0.0.1:{free_port()}/x", idempotent=True))
    assert len(sleeps) == 2


def test_a_non_idempotent_request_is_not_retried_on_refusal() -> None:
    sleeps: list[float] = []
    with pytest.raises(RetryableTaxError, match="1 attempt"):
        transport(retries=5, sleep=sleeps.append).send(post(f"http://127.0.0.1:{free_port()}/x"))
    assert sleeps == []


def test_a_non_idempotent_request_is_sent_exactly_once_when_the_server_drops_the_connection(
    http_server: ThreadingHTTPServer,
) -> None:
    with pytest.raises(AmbiguousTaxError):
        transport(retries=5).send(post(url(http_server, "/drop")))
    assert http_server.recorder.count("/drop") == 1  # type: ignore[attr-defined]


def test_an_unresolvable_host_is_retryable() -> None:
    with pytest.raises(RetryableTaxError):
        transport(retries=0).send(post("http://no-such-host.invalid/x"))


def test_a_relative_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        transport().send(post("/only/a/path"))


def test_a_reply_over_the_size_limit_is_ambiguous(http_server: ThreadingHTTPServer) -> None:
    with pytest.raises(AmbiguousTaxError):
        transport(max_response_bytes=5).send(post(url(http_server, "/big")))


# --- TLS -----------------------------------------------------------------------------------------
def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "einvoice test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[ThreadingHTTPServer, Path]]:
    cert_path, key_path = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    start(server)
    yield server, cert_path
    server.shutdown()
    server.server_close()


def test_https_with_an_untrusted_self_signed_certificate_is_refused_before_sending(
    https_server: tuple[ThreadingHTTPServer, Path],
) -> None:
    server, _ = https_server
    with pytest.raises(RetryableTaxError, match="TLS"):
        transport(retries=0).send(post(url(server, "/tls", "https")))
    assert server.recorder.count("/tls") == 0  # type: ignore[attr-defined]


def test_https_with_the_ca_file_works(https_server: tuple[ThreadingHTTPServer, Path]) -> None:
    server, cert_path = https_server
    response = transport(ca_file=str(cert_path)).send(post(url(server, "/tls", "https")))
    assert response.status == 200
    assert server.recorder.count("/tls") == 1  # type: ignore[attr-defined]


def test_https_to_a_name_the_certificate_does_not_cover_is_refused(
    https_server: tuple[ThreadingHTTPServer, Path],
) -> None:
    server, cert_path = https_server
    port = server.server_address[1]
    with pytest.raises(RetryableTaxError, match="TLS"):
        transport(ca_file=str(cert_path), retries=0).send(post(f"https://localhost:{port}/tls"))


def test_a_tls_handshake_failure_on_an_idempotent_request_is_retried_then_retryable(
    https_server: tuple[ThreadingHTTPServer, Path],
) -> None:
    server, _ = https_server
    sleeps: list[float] = []
    with pytest.raises(RetryableTaxError, match="3 attempt"):
        transport(retries=2, sleep=sleeps.append).send(post(url(server, "/tls", "https"), idempotent=True))
    assert len(sleeps) == 2
    assert server.recorder.count("/tls") == 0  # type: ignore[attr-defined]


def test_verification_cannot_be_switched_off() -> None:
    with pytest.raises(TypeError):
        HttpTransport(verify=False)  # type: ignore[call-arg]


class KeepAliveHandler(Handler):
    protocol_version = "HTTP/1.1"
    timeout = 0.3  # the server closes a connection idle for longer than this


@pytest.fixture
def keepalive_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveHandler)
    start(server)
    yield server
    server.shutdown()
    server.server_close()


def test_connections_are_kept_alive_between_calls(keepalive_server: ThreadingHTTPServer) -> None:
    t = transport()
    for _ in range(3):
        assert t.send(post(url(keepalive_server, "/ok"))).status == 200
    assert t.connections_opened == 1
    assert keepalive_server.recorder.count("/ok") == 3  # type: ignore[attr-defined]


def test_a_connection_the_server_closed_while_idle_is_replaced_not_reported_lost(
    keepalive_server: ThreadingHTTPServer,
) -> None:
    t = transport()
    assert t.send(post(url(keepalive_server, "/ok"))).status == 200
    time.sleep(0.6)  # the server's idle timeout passes and it closes its end
    assert t.send(post(url(keepalive_server, "/ok"))).status == 200  # not AmbiguousTaxError
    assert t.connections_opened == 2
    assert keepalive_server.recorder.count("/ok") == 2  # type: ignore[attr-defined]


def test_an_http_1_0_server_gets_a_fresh_connection_every_time(http_server: ThreadingHTTPServer) -> None:
    t = transport()
    for _ in range(2):
        assert t.send(post(url(http_server, "/ok"))).status == 200
    assert t.connections_opened == 2
