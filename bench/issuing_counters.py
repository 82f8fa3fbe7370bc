"""Part 1's instruments: AWS calls (a botocore hook), tax HTTP calls (at the sandbox and at the client) and the
worker's CPU by stage (cProfile self time grouped by module). See ``bench/bench_issuing.py``."""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import urlsplit


class AwsCalls:
    """AWS API calls by phase and ``Service.Operation``, from botocore's ``before-call`` event."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.calls: dict[str, Counter[str]] = {}
        self.attempts: dict[str, Counter[str]] = {}

    def attach(self, session: Any) -> None:
        session.events.register("before-call", self._on_call)
        session.events.register("before-send", self._on_send)

    def _name(self, model: Any, event_name: str) -> str:
        if model is not None:
            return f"{model.service_model.service_id}.{model.name}"
        return ".".join(event_name.split(".")[1:3])

    def _on_call(self, model: Any = None, event_name: str = "", **_: Any) -> None:
        if self.phase is not None:
            self.calls.setdefault(self.phase, Counter())[self._name(model, event_name)] += 1

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        if self.phase is not None:
            self.attempts.setdefault(self.phase, Counter())[".".join(event_name.split(".")[1:3])] += 1

    @contextlib.contextmanager
    def during(self, phase: str | None) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    def take(self) -> tuple[dict[str, Counter[str]], int]:
        """The counts so far (then zero) and how many HTTP attempts were retries."""
        calls, attempts = self.calls, self.attempts
        self.calls, self.attempts = {}, {}
        retries = sum(attempts.get(p, Counter()).total() for p in attempts) - sum(c.total() for c in calls.values())
        return calls, max(0, retries)


class TaxCalls:
    """Tax HTTP requests received by the in-process sandbox (by protocol route) and the CPU its handler
    threads spent; plus the sends seen at ``HttpTransport.send`` in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.server: Counter[str] = Counter()
        self.client: Counter[str] = Counter()
        self.sandbox_cpu = 0.0

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        from chalicelib.sandbox.server import SandboxHandler

        counter = self
        # Per request, not per connection: a keep-alive connection's handler thread lives across batches.
        original_post, original_handle = SandboxHandler.do_POST, SandboxHandler.handle_one_request

        def do_post(handler: Any) -> None:
            label = _tax_label(handler.path, handler.headers)
            if label:
                with counter.lock:
                    counter.server[label] += 1
            original_post(handler)

        def handle(handler: Any) -> None:
            started = time.thread_time()
            try:
                original_handle(handler)
            finally:
                with counter.lock:
                    counter.sandbox_cpu += time.thread_time() - started

        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(SandboxHandler, "do_POST", do_post))
            stack.enter_context(mock.patch.object(SandboxHandler, "handle_one_request", handle))
            with contextlib.suppress(ImportError, AttributeError):
                from chalicelib.adapters.http import HttpTransport

                original_send = HttpTransport.send

                def send(transport: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                    with counter.lock:
                        counter.client[str(getattr(request, "operation", "") or "request")] += 1
                    return original_send(transport, request, *args, **kwargs)

                stack.enter_context(mock.patch.object(HttpTransport, "send", send))
            yield

    def take(self) -> tuple[Counter[str], Counter[str], float]:
        with self.lock:
            taken = self.server, self.client, self.sandbox_cpu
            self.server, self.client, self.sandbox_cpu = Counter(), Counter(), 0.0
        return taken


def _tax_label(path: str, headers: Any) -> str:
    parts = urlsplit(path).path.strip("/").split("/")
    if len(parts) == 5 and parts[:3] == ["access", "v2", "invoke"]:
        return f"sta {parts[4]}"
    if parts == ["accessToken"]:
        return "nuonuo token"
    if parts == ["open", "v1", "services"]:
        return "nuonuo " + str(headers.get("method", "?")).rsplit(".", 1)[-1]
    return ""  # admin, files: not tax protocol calls


# --- CPU by stage (cProfile, self time grouped by module) -------------------------------------------
TAX_HTTP = "tax HTTP transport (chalicelib.adapters.http and the http.client / socket work under it)"
STAGES = (
    ("AWS SDK (botocore, boto3, urllib3: signing, serialising, its HTTP to moto)", ("botocore", "boto3", "urllib3")),
    ("ledger & other AWS adapters (chalicelib.adapters)", ("chalicelib/adapters/",)),
    ("tax protocol code: build, map, parse (chalicelib.taxapi)", ("chalicelib/taxapi",)),
    ("crypto (chalicelib.crypto, cryptography, hashlib, hmac)", ("chalicelib/crypto", "cryptography", "gmssl")),
    ("pydantic (model validation and dumps)", ("pydantic",)),
    ("issuing core (chalicelib.services, chalicelib.domain)", ("chalicelib/services", "chalicelib/domain")),
    ("Powertools (batch, logger, metrics), Chalice, logging", ("aws_lambda_powertools", "chalice", "/logging/")),
)
_CRYPTO_BUILTINS = ("_hashlib", "_hmac", "_sha", "_md5", "_blake2")
OTHER = "other (stdlib reached from none of the above)"


def stage_of(filename: str, function: str) -> str:
    """The stage of a profiled function by its module; OTHER for built-ins and the stdlib (those are
    charged to their callers by :func:`stage_shares`)."""
    if filename == "~":
        return STAGES[3][0] if any(n in function for n in _CRYPTO_BUILTINS) else OTHER
    path = filename.replace("\\", "/")
    if "chalicelib/adapters/http" in path:
        return TAX_HTTP
    for stage, needles in STAGES:
        if any(n in path for n in needles):
            return stage
    return OTHER


def stage_shares(profile: cProfile.Profile) -> dict[str, float]:
    """Share of profiled self time (thread CPU) by stage.

    A function of no stage of its own (a built-in such as ``str.join``, a stdlib helper such as
    ``urllib.parse``) is charged to its callers' stages, in proportion to the time each call site spent in
    it, up the call graph until a function with a stage is found.
    """
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def split(key: Any, seen: frozenset[Any]) -> dict[str, float]:
        if key in memo:
            return memo[key]
        own = stage_of(key[0], key[2])
        callers = stats[key][4] if key in stats else {}
        if own != OTHER or not callers or key in seen:
            return {own: 1.0}
        weights = {caller: values[2] for caller, values in callers.items()}
        whole = sum(weights.values())
        if whole <= 0:
            weights, whole = {caller: 1.0 for caller in callers}, float(len(callers))
        result: Counter[str] = Counter()
        for caller, weight in weights.items():
            for stage, share in split(caller, seen | {key}).items():
                result[stage] += share * weight / whole
        memo[key] = dict(result)
        return memo[key]

    totals: Counter[str] = Counter()
    for key, (_cc, _nc, self_time, _ct, _callers) in stats.items():
        for stage, share in split(key, frozenset()).items():
            totals[stage] += self_time * share
    whole = sum(totals.values()) or 1.0
    return {stage: value / whole for stage, value in totals.most_common()}
