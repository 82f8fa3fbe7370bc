"""Part 1 of ``bench/bench_issuing.py``: paid orders through the webhook route and ``app.worker`` in this
process, against a moto server and the tax sandbox, batch by batch (cold, warm, profiled)."""

from __future__ import annotations

import contextlib
import cProfile
import json
import os
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.issuing_common import (
    order_record_batches,
    restored_environ,
    sample_secret,
    sandbox_config,
    sandbox_default_delay,
    signed_webhook,
    stdout_to,
)
from bench.issuing_counters import AwsCalls, TaxCalls, stage_shares

REGION = "cn-north-1"
WARM_ORDERS = 50
COLD_ORDERS = 1
PROFILE_ORDERS = 10
PROVIDERS = ("sta", "nuonuo")
STORE_OF_PROVIDER = {"sta": "demo-shanghai", "nuonuo": "demo-hangzhou"}
#: A batch that has not drained after this long (plus per order) is reported as it stands.
DRAIN_BASE_S = 90.0
DRAIN_PER_ORDER_S = 8.0
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class Batch:
    label: str
    orders: int
    issued: int = 0
    refused: list[str] = field(default_factory=list)  # webhooks not answered 2xx / not queued
    calls: dict[str, Counter[str]] = field(default_factory=dict)  # phase → Service.Operation → n
    retries: int = 0
    empty_receives: int = 0
    tax: Counter[str] = field(default_factory=Counter)
    tax_client: Counter[str] = field(default_factory=Counter)
    worker_thread_cpu: float = 0.0
    worker_process_cpu: float = 0.0
    sandbox_cpu: float = 0.0
    intake_cpu: float = 0.0
    intake_ms: list[float] = field(default_factory=list)
    invocations: int = 0
    records: int = 0
    failed_records: int = 0
    crashed: int = 0
    wall_s: float = 0.0
    stages: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    deliver_thread_cpu: float = 0.0  # app.deliverer after the batch (bench/issuing_delivery.py)
    delivered: int = 0

    def per(self, phase: str) -> float:
        return self.calls.get(phase, Counter()).total() / max(1, self.orders)

    @property
    def tax_per(self) -> float:
        return self.tax.total() / max(1, self.orders)

    @property
    def cpu_ms(self) -> float:
        return self.worker_thread_cpu * 1000 / max(1, self.orders)

    @property
    def cpu_all_ms(self) -> float:
        return (self.worker_process_cpu - self.sandbox_cpu) * 1000 / max(1, self.orders)


@dataclass
class Run:
    provider: str
    store_id: str
    delay_s: float
    batches: list[Batch]


class InProcess:
    """The app, its worker and Lambda's event source, driven in this process against moto + the sandbox."""

    def __init__(self, workdir: Path) -> None:
        import boto3

        self.workdir = workdir
        self.aws = AwsCalls()
        self.tax = TaxCalls()
        self.boto3 = boto3
        self.outside = boto3.session.Session(region_name=REGION)  # the event source's own session (counted)
        self.aws.attach(self.outside)
        self.observer = boto3.session.Session(region_name=REGION).client("dynamodb")  # the bench's (uncounted)
        self.env: dict[str, str] = {}
        self.http: Any = None

    # --- setup --------------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        from infra.local import bootstrap
        from infra.seed import seed

        session = self.boto3.session.Session(region_name=REGION)
        created = bootstrap(session, prefix=f"bench{uuid.uuid4().hex[:6]}")
        self.env = {
            **created.env,
            "STAGE": "local",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "einvoice",
            "POWERTOOLS_METRICS_NAMESPACE": "EInvoice",
        }
        os.environ.update(self.env)
        seed(session, created.env)
        self._whole_pilot(session)
        self.sqs = self.outside.client("sqs")
        self.queue_url = self.env["ISSUE_QUEUE_URL"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]

    def _whole_pilot(self, session: Any) -> None:
        """Every order of the example stores in the automatic share (demo-hangzhou pilots 50 %)."""
        from chalicelib.adapters import aws
        from chalicelib.adapters.stores import StoreRegistry
        from infra.seed import load_store_files

        aws.set_session(session)
        registry = StoreRegistry(self.env["STORES_TABLE"])
        for store in load_store_files():
            if store.pilot_percentage < 100:
                registry.put(store.model_copy(update={"pilot_percentage": 100}))

    def use_sandbox(self, url: str) -> None:
        endpoints = {
            "STA_ENDPOINT": url,
            "STA_SANDBOX_FLAG": "1",
            "NUONUO_ENDPOINT": f"{url}/open/v1/services",
            "NUONUO_TOKEN_URL": f"{url}/accessToken",
        }
        self.env.update(endpoints)
        os.environ.update(endpoints)

    def cold_start(self) -> None:
        """As close to a new Lambda container as one process allows (see the module docstring)."""
        import app as app_module
        from chalicelib.adapters import aws

        session = self.boto3.session.Session(region_name=REGION)
        self.aws.attach(session)
        clear_app_caches()
        aws.set_session(session)
        from chalice.test import Client

        # Built here, not on the first post: the local gateway and the stage config are not the app's cost.
        self.http = Client(app_module.app, stage_name="local", project_dir=str(ROOT)).http

    # --- one batch ----------------------------------------------------------------------------------
    def batch(self, label: str, store_id: str, n: int, *, profile: bool = False) -> Batch:
        import app as app_module

        result = Batch(label, n)
        self.aws.take()
        self.tax.take()
        started = time.perf_counter()
        secret = sample_secret(store_id)
        keys = []
        for i in range(n):
            request = signed_webhook(store_id, secret, f"BENCH-{label[:1].upper()}{i:04d}-{uuid.uuid4().hex[:6]}")
            with self.aws.during("intake"):
                cpu0, wall0 = time.thread_time(), time.perf_counter()
                reply = self.http.post(request.path, headers=request.headers, body=request.body)
                result.intake_ms.append((time.perf_counter() - wall0) * 1000)
                result.intake_cpu += time.thread_time() - cpu0
            try:
                body = json.loads(reply.body or b"{}")
            except ValueError:
                body = {}
            if reply.status_code // 100 != 2 or body.get("outcome") != "queued" or not body.get("order_key"):
                result.refused.append(f"{reply.status_code} {reply.body[:200]!r}")
                continue
            keys.append(str(body["order_key"]))
        profiler = cProfile.Profile(time.thread_time_ns, 1e-9) if profile else None
        if profile and threading.active_count() > 1:
            # Python 3.12's cProfile sees every thread (sys.monitoring): other threads would mix in.
            result.notes.append(f"{threading.active_count() - 1} other thread(s) ran while profiling")
        self._drain(app_module.worker, keys, result, profiler)
        from bench.issuing_delivery import drain_deliveries

        drain_deliveries(self, keys, result)
        result.wall_s = time.perf_counter() - started
        result.calls, result.retries = self.aws.take()
        receives = result.calls.setdefault("event-source", Counter())
        receives["SQS.ReceiveMessage"] -= result.empty_receives  # shown apart: they measure waiting
        result.tax, result.tax_client, result.sandbox_cpu = self.tax.take()
        if profiler is not None:
            result.stages = stage_shares(profiler)
        return result

    def _drain(self, handler: Callable[..., Any], keys: list[str], result: Batch, profiler: Any) -> None:
        from chalicelib.config import WORKER_BATCH_SIZE, WORKER_TIMEOUT_SECONDS

        try:  # Lambda's execution environment, as the local runner builds it
            from infra.lambda_local import FakeLambdaContext, sqs_event
        except ImportError:
            from infra.worker_runner import FakeLambdaContext, sqs_event

        pending = set(keys)
        deadline = time.monotonic() + DRAIN_BASE_S + DRAIN_PER_ORDER_S * len(keys)
        while pending and time.monotonic() < deadline:
            with self.aws.during("event-source"):
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=WORKER_BATCH_SIZE,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            if not messages:
                result.empty_receives += 1
                pending = self._not_issued(pending)
                continue
            event = sqs_event(messages, self.queue_arn, REGION)
            context = FakeLambdaContext(
                aws_request_id=str(uuid.uuid4()), deadline=time.monotonic() + WORKER_TIMEOUT_SECONDS
            )
            reply: Any = None
            with self.aws.during("worker"):
                thread0, process0 = time.thread_time(), time.process_time()
                if profiler is not None:
                    profiler.enable()
                try:
                    reply = handler(event, context)
                except Exception:  # a crashed invocation: Lambda retries the whole batch later
                    result.crashed += 1
                finally:
                    if profiler is not None:
                        profiler.disable()
                    result.worker_thread_cpu += time.thread_time() - thread0
                    result.worker_process_cpu += time.process_time() - process0
            result.invocations += 1
            result.records += len(messages)
            failed = {f["itemIdentifier"] for f in (reply or {}).get("batchItemFailures", [])}
            if reply is None:
                failed = {m["MessageId"] for m in messages}
            result.failed_records += len(failed)
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                with self.aws.during("event-source"):
                    self.sqs.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                    )
                pending = self._not_issued(pending)  # done: no need to wait out one more empty long poll
        pending = self._not_issued(pending)
        result.issued = len(keys) - len(pending)

    def _not_issued(self, keys: set[str]) -> set[str]:
        """Orders whose ledger record is not ``issued`` yet (the bench's own, uncounted reads)."""
        records = order_record_batches(
            self.observer, self.env["LEDGER_TABLE"], keys, ("order_key", "status"), consistent=True
        )
        return keys - {r.get("order_key", "") for batch in records for r in batch if r.get("status") == "issued"}


@contextlib.contextmanager
def sandbox_process(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """The sandbox as its own process (``python -m chalicelib.sandbox``), for the profiled batches: in
    Python 3.12 cProfile records every thread, and an in-process sandbox would mix its own frames in."""
    from tests.support.processes import free_port, process

    path = workdir / f"sandbox-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "chalicelib.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    with process([*argv, "--config", str(path)], ready_url=f"{url}/admin/health", log=workdir / "sandbox.log"):
        yield url


def measure_in_process(
    *,
    warm: int = WARM_ORDERS,
    cold: int = COLD_ORDERS,
    profiled: int = PROFILE_ORDERS,
    providers: tuple[str, ...] = PROVIDERS,
    delays: tuple[float, ...] | None = None,
) -> list[Run]:
    """Part 1: for each sandbox delay and provider, a cold batch, a warm batch and (optionally) a profiled one.

    One order is sent through first, unreported, so that the handlers' lazy imports are done before the
    first cold batch (cold means cold caches, not first import); the profiled batches run after another
    unreported order against a sandbox process (see :func:`sandbox_process`).
    """
    from tests.support.processes import moto_server

    delays = delays if delays is not None else (sandbox_default_delay(), 0.0)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-issuing-") as tmp:
        workdir = Path(tmp)
        with moto_server(workdir) as moto_url:
            try:
                with (
                    restored_environ({**FAKE_AWS, "AWS_ENDPOINT_URL": moto_url}),
                    stdout_to(workdir / "handlers.log"),
                    warnings.catch_warnings(),
                ):
                    warnings.filterwarnings("ignore", message="No application metrics to publish")
                    harness = InProcess(workdir)
                    harness.bootstrap()
                    with harness.tax.patched():
                        for delay in delays:
                            runs += _one_delay(
                                harness, delay, providers, cold=cold, warm=warm, profiled=profiled, prime=not runs
                            )
            finally:
                _forget_app_state()
    return runs


def _one_delay(
    harness: InProcess, delay: float, providers: tuple[str, ...], *, cold: int, warm: int, profiled: int, prime: bool
) -> list[Run]:
    from chalicelib.sandbox.server import start_sandbox

    config = sandbox_config(delay)
    runs: list[Run] = []
    with start_sandbox(config) as sandbox:
        harness.use_sandbox(sandbox.url)
        for provider in providers:
            store_id = STORE_OF_PROVIDER[provider]
            if prime and not runs:
                harness.cold_start()
                harness.batch("priming", store_id, 1)
            harness.cold_start()
            runs.append(Run(provider, store_id, delay, [harness.batch("cold", store_id, cold)]))
            runs[-1].batches.append(harness.batch("warm", store_id, warm))
    if profiled:
        with sandbox_process(config, harness.workdir) as url:
            harness.use_sandbox(url)
            for run in runs:
                harness.cold_start()
                harness.batch("priming", run.store_id, 1)
                run.batches.append(harness.batch("profiled", run.store_id, profiled, profile=True))
    return runs


def clear_app_caches() -> None:
    """``chalicelib.services.worker.reset()`` (if it exists), every ``functools`` cache of ``app`` and the
    worker module (adapters built on first use, settings), and ``chalicelib.config.settings``."""
    import app as app_module
    from chalicelib import config
    from chalicelib.services import worker

    reset = getattr(worker, "reset", None)
    if callable(reset):
        reset()
    for module in (app_module, worker):
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
    config.settings.cache_clear()


def _forget_app_state() -> None:
    """Leave no client or cached adapter pointing at the moto server that is gone."""
    with contextlib.suppress(Exception):
        from chalicelib.adapters import aws

        aws.set_session(None)
    with contextlib.suppress(Exception):
        clear_app_caches()
