"""Retention of the audit archive: Object Lock in the deploy template and on the local stack, and a
locked version that cannot be deleted or overwritten (moto, GOVERNANCE without the bypass)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.package import FUNCTION_GRANTS, function_ids, merge_template
from infra.resources import LOCK_MODE_BY_STAGE, MIN_RETENTION_DAYS, retention_days


@pytest.fixture(scope="module")
def dev_template(packaged: Callable[..., Path]) -> dict[str, Any]:
    path = packaged("dev")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


@pytest.fixture(scope="module")
def governed(moto_url: str) -> Iterator[tuple[Any, Any]]:
    """A local stack in GOVERNANCE mode (dev), its boto3 session and stack."""
    import boto3

    from chalicelib.adapters import aws as aws_clients
    from infra.local import bootstrap

    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ENDPOINT_URL", moto_url)
    session = boto3.session.Session(region_name="cn-north-1")
    aws_clients.set_session(session)
    yield session, bootstrap(session, prefix=f"r{uuid.uuid4().hex[:8]}", params={"ObjectLockMode": "GOVERNANCE"})
    aws_clients.set_session(None)
    mp.undo()


@pytest.mark.slow
def test_the_dev_template_locks_the_archive_in_governance_for_five_years(dev_template: dict[str, Any]) -> None:
    params = dev_template["Parameters"]
    assert params["ObjectLockMode"]["Default"] == "GOVERNANCE"
    assert params["RetentionDays"]["MinValue"] >= MIN_RETENTION_DAYS <= params["RetentionDays"]["Default"]
    props = dev_template["Resources"]["ArchiveBucket"]["Properties"]
    retention = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention == {"Mode": {"Ref": "ObjectLockMode"}, "Days": {"Ref": "RetentionDays"}}
    assert props["VersioningConfiguration"]["Status"] == "Enabled" and props["ObjectLockEnabled"] is True
    [rule] = props["LifecycleConfiguration"]["Rules"]
    classes = [t["StorageClass"] for t in rule["Transitions"]]
    assert classes == ["STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"]
    assert rule["ExpirationInDays"] == {"Ref": "RetentionDays"}  # never before the lock ends
    job = dev_template["Resources"]["ArchiveManifest"]["Properties"]
    assert job["Events"]["ArchiveManifestEvent"]["Properties"]["Schedule"] == "rate(1 day)"
    assert job["Timeout"] >= 120
    policy = dev_template["Resources"]["ArchiveManifestRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert {s["Sid"] for s in policy["Statement"]} == {"Logs", "Tracing", *FUNCTION_GRANTS["ArchiveManifest"]}


def test_prod_is_compliance_and_retention_is_never_below_five_years() -> None:
    assert LOCK_MODE_BY_STAGE["prod"] == "COMPLIANCE"
    prod = merge_template(function_ids(), "prod")["Parameters"]
    assert prod["ObjectLockMode"]["Default"] == "COMPLIANCE"
    assert retention_days(MIN_RETENTION_DAYS) == MIN_RETENTION_DAYS
    with pytest.raises(ValueError, match="5-year floor"):
        retention_days(MIN_RETENTION_DAYS - 1)


def test_the_local_stack_refuses_a_retention_below_five_years(moto_url: str) -> None:
    import boto3

    from infra.local import bootstrap

    with pytest.raises(ValueError, match="5-year floor"):
        bootstrap(boto3.session.Session(region_name="cn-north-1"), prefix="never", params={"RetentionDays": 365})


def test_the_local_archive_bucket_has_the_lock_and_the_tiers(governed: tuple[Any, Any]) -> None:
    session, stack = governed
    s3 = session.client("s3")
    bucket = stack.physical["ArchiveBucket"]
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    retention = lock["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "GOVERNANCE" and retention["Days"] == MIN_RETENTION_DAYS
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [t["StorageClass"] for t in rule["Transitions"]] == ["STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"]
    # the signing key the manifest job needs exists after the bootstrap
    from chalicelib.adapters.archive import SigningKeys
    from chalicelib.config import MANIFEST_KEY_SECRET

    assert len(SigningKeys(MANIFEST_KEY_SECRET).public_key()) == 128


def test_a_locked_version_cannot_be_deleted_or_overwritten(governed: tuple[Any, Any]) -> None:
    session, stack = governed
    s3 = session.client("s3")
    bucket = stack.physical["ArchiveBucket"]
    key = "demo-shanghai/2026/12/01/interactions/locked.jsonl.gz"
    version = s3.put_object(Bucket=bucket, Key=key, Body=b"original")["VersionId"]
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=version)
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    s3.put_object(Bucket=bucket, Key=key, Body=b"forged")  # a new version, never a replaced one
    s3.delete_object(Bucket=bucket, Key=key)  # a delete marker, not a deletion
    kept = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    assert kept == b"original"


def test_the_local_scheduler_runs_the_daily_manifest() -> None:
    import app
    from infra.scheduler import discover

    [job] = [s for s in discover(app.app) if s.name == "archive_manifest"]
    assert job.seconds == 86400 and job.handler.endswith("archive_manifest")
