"""The HTTP server (stdlib ``ThreadingHTTPServer``) that puts both protocols, the admin endpoints,
the invoice files and fault injection on one port.

Routes::

    POST /access/v2/invoke/{nlbm}/{fwbm}     STA (sta.py)
    POST /accessToken                        Nuonuo token (nuonuo.py)
    POST /open/v1/services?senid&nonce&...    Nuonuo methods (nuonuo.py)
    GET  /files/{number}.pdf|ofd|xml         placeholder files of issued invoices
    GET  /admin/health | /admin/invoices | /admin/invoices/count | /admin/red-forms
         (invoices and count filter on ?order_no= &serial= &protocol= &order_key=, the gateway's order key)
    POST /admin/faults | /admin/clock | /admin/reset | /admin/invoices/void
    GET/POST /admin/outage | /admin/tokens  (outage.py: the platform down, tokens expired or refused)

Admin endpoints answer loopback clients only. ``start_sandbox`` runs the server in a thread for
tests and for ``make run``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.sandbox import outage
from chalicelib.sandbox.common import Reply, json_reply, loads
from chalicelib.sandbox.nuonuo import NuonuoFrontEnd
from chalicelib.sandbox.sta import StaFrontEnd
from chalicelib.sandbox.state import SandboxConfig, SandboxState, serial_of_order_key

log = logging.getLogger("chalicelib.sandbox")
MAX_BODY = 20 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        super().__init__(address, SandboxHandler)
        self.state = state
        self.sta = StaFrontEnd(state)
        self.nuonuo = NuonuoFrontEnd(state)


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "TaxSandbox/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- plumbing ------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            return None
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(reply.body)

    def _drop(self) -> None:
        """Close the connection without a reply (a timeout after the work was committed)."""
        self.close_connection = True

    # -- dispatch ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/admin/"):
            self._send(self._admin("GET", url.path, query, b""))
        elif url.path.startswith("/files/"):
            self._send(self._file(url.path))
        else:
            self._send(json_reply(404, {"error": "not found"}))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if body is None:
            self._send(json_reply(413, {"error": "bad Content-Length"}))
            return
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if url.path.startswith("/admin/"):
            self._send(self._admin("POST", url.path, query, body))
        elif len(parts) == 5 and parts[:3] == ["access", "v2", "invoke"]:
            nlbm, fwbm = parts[3], parts[4]
            headers = self._headers()
            self._protocol(
                fwbm,
                lambda: self.server.sta.busy_reply(fwbm, headers),
                lambda: self.server.sta.handle(nlbm, fwbm, headers, body),
                self.server.sta.garble,
            )
        elif url.path == "/accessToken":
            down = self.server.state.outage.active()
            self._send(outage.down_reply() if down else self.server.nuonuo.token(body))
        elif url.path == "/open/v1/services":
            headers = self._headers()
            service = headers.get("method", "").rsplit(".", 1)[-1]
            self._protocol(
                service,
                self.server.nuonuo.busy_reply,
                lambda: self.server.nuonuo.handle(query, headers, body),
                lambda reply, mode: Reply(reply.status, reply.body[: max(1, len(reply.body) // 2)], reply.headers),
            )
        else:
            self._send(json_reply(404, {"error": "not found"}))

    def _protocol(self, service: str, busy: Any, work: Any, garble: Any) -> None:
        if self.server.state.outage.active():  # the platform is down: nothing parsed, nothing done
            self._send(outage.down_reply())
            return
        faults = self.server.state.faults
        settings = faults.settings
        if settings.latency_ms and faults.applies_to(service):
            time.sleep(settings.latency_ms / 1000)
        if faults.draw("busy_pct", service):
            self._send(busy())
            return
        if faults.draw("error_5xx_pct", service):
            status = faults.choice((500, 502, 503))
            self._send(Reply(status, b"upstream error", content_type="text/plain; charset=utf-8"))
            return
        reply: Reply = work()
        if faults.draw("timeout_after_commit_pct", service):
            if settings.timeout_mode == "sleep":
                time.sleep(settings.timeout_sleep_seconds)
            self._drop()
            return
        if faults.draw("garbled_pct", service):
            mode = settings.garble_mode
            if mode == "any":
                mode = faults.choice(("signature", "decrypt", "json"))
            reply = garble(reply, mode)
        self._send(reply)

    # -- files ---------------------------------------------------------------------------------------

    def _file(self, path: str) -> Reply:
        name = path.rsplit("/", 1)[-1]
        number, _, ext = name.partition(".")
        rec = self.server.state.find_by_number(number)
        if rec is None or ext not in ("pdf", "ofd", "xml"):
            return json_reply(404, {"error": "not found"})
        text = f"沙箱发票 {rec.number} {'红字' if rec.red else '蓝字'} 价税合计 {rec.total:.2f}\n"
        if ext == "pdf":
            body = b"%PDF-1.4\n% tax sandbox placeholder\n" + text.encode("utf-8") + b"%%EOF\n"
            return Reply(200, body, content_type="application/pdf")
        if ext == "xml":
            xml = f'<?xml version="1.0" encoding="UTF-8"?><EInvoice><Number>{rec.number}</Number></EInvoice>'
            return Reply(200, xml.encode("utf-8"), content_type="application/xml")
        return Reply(200, text.encode("utf-8"), content_type="application/octet-stream")

    # -- admin ---------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:  # noqa: PLR0912
        if self.client_address[0] not in LOOPBACK:
            return json_reply(403, {"error": "admin endpoints answer loopback clients only"})
        state = self.server.state
        try:
            payload = loads(body) if body.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            route = (method, path.rstrip("/"))
            if route == ("GET", "/admin/health"):
                with state.lock:
                    count = len(state.invoices)
                return json_reply(200, {"status": "ok", "now": state.clock.now(), "invoices": count})
            if route == ("GET", "/admin/invoices"):
                items = state.snapshot(**_filters(query))
                return json_reply(200, {"invoices": items, "count": len(items)})
            if route == ("GET", "/admin/invoices/count"):
                items = state.snapshot(**_filters(query))
                kind = query.get("kind", "")
                count = len([i for i in items if not kind or i["kind"] == kind])
                answer = {"order_no": query.get("order_no", ""), "count": count}
                if query.get("order_key"):
                    answer.update(order_key=query["order_key"], serial=serial_of_order_key(query["order_key"]))
                return json_reply(200, answer)
            if route == ("GET", "/admin/red-forms"):
                state.settle_all()
                with state.lock:
                    forms = [f.to_json() for f in state.forms.values()]
                return json_reply(200, {"red_forms": forms})
            if route == ("GET", "/admin/faults"):
                return json_reply(200, state.faults.settings.to_dict())
            if route == ("POST", "/admin/faults"):
                return json_reply(200, state.faults.update(payload).to_dict())
            if route == ("POST", "/admin/clock"):
                if "set" in payload:
                    state.clock.set(float(payload["set"]), freeze=payload.get("freeze"))
                if "advance" in payload:
                    state.clock.advance(float(payload["advance"]))
                state.settle_all()
                clock = {"now": state.clock.now(), "frozen": state.clock.frozen}
                return json_reply(200, {**clock, "transport_now": state.transport_now()})
            if route == ("POST", "/admin/invoices/void"):  # a void on the platform's workbench (sync tests)
                state.platform_void(str(payload.get("number", "")))
                return json_reply(200, {"voided": payload.get("number")})
            if route == ("POST", "/admin/reset"):
                state.reset()
                return json_reply(200, {"status": "reset"})
            control = outage.admin(state, method, path, payload)
            if control is not None:
                return control
        except (ValueError, TypeError, ArithmeticError) as exc:
            return json_reply(400, {"error": str(exc)})
        return json_reply(404, {"error": f"no admin route {method} {path}"})


def _filters(query: dict[str, str]) -> dict[str, str]:
    return {k: query.get(k, "") for k in ("order_no", "serial", "protocol", "order_key")}


@dataclass
class SandboxHandle:
    server: SandboxHTTPServer
    thread: threading.Thread
    state: SandboxState
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(config: dict[str, Any] | SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> SandboxHTTPServer:
    cfg = config if isinstance(config, SandboxConfig) else SandboxConfig.from_dict(config)
    state = SandboxState(cfg)
    server = SandboxHTTPServer((host, port), state)
    state.base_url = f"http://{host}:{server.server_address[1]}"
    return server


def start_sandbox(config: dict[str, Any] | SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> SandboxHandle:
    """Start the sandbox in a daemon thread; ``port=0`` picks a free port (see ``handle.port``)."""
    server = make_server(config, host, port)
    # A short poll interval makes stop() quick (tests start one sandbox each).
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="tax-sandbox", daemon=True)
    thread.start()
    return SandboxHandle(server, thread, server.state, host, server.server_address[1])
