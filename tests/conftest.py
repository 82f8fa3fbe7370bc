"""Shared fixtures: a real moto server per test session, AWS env pointing at it, fresh resources per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded AWS: a moto server process on a free loopback port, shared by the session."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture()
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A boto3 session against moto; every adapter client is pointed at it too."""
    import boto3

    from chalicelib.adapters import aws as aws_clients

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    session = boto3.session.Session(region_name="cn-north-1")
    aws_clients.set_session(session)
    yield session
    aws_clients.set_session(None)


@pytest.fixture()
def stack(aws: object, monkeypatch: pytest.MonkeyPatch) -> object:
    """Every resource of infra/resources.py, created fresh in moto under a unique prefix, env set."""
    from chalicelib import config
    from infra.local import bootstrap

    created = bootstrap(aws, prefix=f"t{uuid.uuid4().hex[:8]}")
    for key, value in created.env.items():
        monkeypatch.setenv(key, value)
    config.settings.cache_clear()
    yield created
    config.settings.cache_clear()


@pytest.fixture(scope="session")
def root() -> Path:
    return Path(__file__).resolve().parent.parent
