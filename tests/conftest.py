"""Shared fixtures: a real moto server per test session, AWS env pointing at it, fresh resources per test.

Under pytest-xdist (``make test`` runs ``-n auto --dist loadgroup``) every worker is its own session: its
own moto server on a free port, its own temporary directories; ``tests/support/xdist_groups.py`` keeps
the tests that share an expensive fixture on one worker and hands the slow groups out first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import moto_server

# No test may reach a real AWS account: fake credentials, a China region, and no instance metadata.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "cn-north-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "EInvoiceTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "einvoice")
# The intake's 5 s deadline is a production answer to the platforms' own timeouts; on a loaded 2-core
# machine running the tiers in parallel, moto can take longer than its 1.5 s read timeout. The tests
# that check the deadline set their own (tests/app/test_hostile_bodies.py).
os.environ.setdefault("INTAKE_DEADLINE_SECONDS", "30")

pytest_plugins = ["tests.support.xdist_groups"]  # which tests share a worker, and in what order


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded AWS: a moto server process on a free loopback port, shared by the session."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="session")
def _boto3_session() -> Any:
    """One boto3 session for the whole run: a new one per test would parse every service model again."""
    import boto3

    return boto3.session.Session(region_name="cn-north-1")


@pytest.fixture()
def aws(moto_url: str, _boto3_session: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A boto3 session against moto; every adapter client is pointed at it too."""
    from chalicelib.adapters import aws as aws_clients

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    aws_clients.set_session(_boto3_session)
    yield _boto3_session
    aws_clients.set_session(None)


class _ClientCache:
    """What ``infra.local.bootstrap`` uses of a boto3 session, with each client made once per run."""

    def __init__(self, session: Any, endpoint: str) -> None:
        self._session = session
        self._endpoint = endpoint
        self._clients: dict[tuple[str, str], Any] = {}
        self.region_name = session.region_name

    def client(self, service: str, region_name: str | None = None, **options: Any) -> Any:
        region = region_name or self.region_name
        if options:  # a client with its own config: not shared
            return self._session.client(service, region_name=region, endpoint_url=self._endpoint, **options)
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._session.client(service, region_name=region, endpoint_url=self._endpoint)
        return self._clients[key]


@pytest.fixture(scope="session")
def _bootstrap_clients(moto_url: str, _boto3_session: Any) -> _ClientCache:
    return _ClientCache(_boto3_session, moto_url)


@pytest.fixture()
def stack(aws: object, _bootstrap_clients: _ClientCache, monkeypatch: pytest.MonkeyPatch) -> object:
    """Every resource of infra/resources.py, created fresh in moto under a unique prefix, env set."""
    from chalicelib import config
    from infra.local import bootstrap

    created = bootstrap(_bootstrap_clients, prefix=f"t{uuid.uuid4().hex[:8]}")
    for key, value in created.env.items():
        monkeypatch.setenv(key, value)
    config.settings.cache_clear()
    yield created
    config.settings.cache_clear()


@pytest.fixture(scope="session")
def root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make package`` for a stage, built once per session (and xdist worker): ``chalice package``
    takes 7–30 s, and four test modules read its output. Returns the template's path (the code zip is
    beside it, ``deployment.zip``). The modules that use it share the ``package`` xdist group."""
    from infra.package import package

    built: dict[tuple[str, bool], Path] = {}

    def build(stage: str, *, lint: bool = False) -> Path:
        if (stage, True) in built:  # a linted build serves an unlinted request too
            return built[(stage, True)]
        if (stage, lint) not in built:
            built[(stage, lint)] = package(stage, tmp_path_factory.mktemp("package") / stage, lint=lint)
        return built[(stage, lint)]

    return build
