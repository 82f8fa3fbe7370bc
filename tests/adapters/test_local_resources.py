"""The local stack is built from the same definitions as the deploy template, property for property."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.config import MAX_RECEIVE_COUNT, QUEUE_VISIBILITY_SECONDS
from infra.package import merge_template
from infra.resources import MIN_RETENTION_DAYS, resource_set


def test_every_deployed_resource_exists_locally(stack: Any) -> None:
    rs = resource_set()
    conditional = {k for k, v in rs.resources.items() if "Condition" in v}
    assert set(rs.resources) - conditional == set(stack.physical)


def test_env_names_match_the_template_bindings(stack: Any) -> None:
    template = merge_template(["APIHandler", "Worker"])
    template_env = set(template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"])
    assert template_env == set(stack.env)


def test_tables_have_the_template_keys_ttl_and_pitr(aws: Any, stack: Any) -> None:
    ddb = aws.client("dynamodb")
    for logical, spec in resource_set().resources.items():
        if spec["Type"] != "AWS::DynamoDB::Table":
            continue
        name = stack.physical[logical]
        desc = ddb.describe_table(TableName=name)["Table"]
        assert desc["KeySchema"] == spec["Properties"]["KeySchema"]
        assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes", [])} == {
            g["IndexName"] for g in spec["Properties"].get("GlobalSecondaryIndexes", [])
        }
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        if "TimeToLiveSpecification" in spec["Properties"]:
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            assert ttl["AttributeName"] == spec["Properties"]["TimeToLiveSpecification"]["AttributeName"]


def test_queue_has_redrive_to_the_dlq_and_long_visibility(aws: Any, stack: Any) -> None:
    sqs = aws.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=stack.physical["IssueQueue"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.attrs["IssueDLQ"]["Arn"]
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT  # the retry schedule's 24 h, not a count of 5
    assert int(attrs["VisibilityTimeout"]) == QUEUE_VISIBILITY_SECONDS


def test_archive_bucket_is_locked_versioned_encrypted_private_and_tiered(aws: Any, stack: Any) -> None:
    s3 = aws.client("s3")
    for logical in ("ArchiveBucket", "InvoiceBucket"):
        bucket = stack.physical[logical]
        lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        assert lock["ObjectLockEnabled"] == "Enabled"
        assert lock["Rule"]["DefaultRetention"]["Days"] >= MIN_RETENTION_DAYS
        assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(pab.values())
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert [t["StorageClass"] for t in rules[0]["Transitions"]] == ["STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"]
        assert rules[0]["Expiration"]["Days"] >= MIN_RETENTION_DAYS


def test_a_locked_archive_object_cannot_be_deleted(aws: Any, stack: Any) -> None:
    s3 = aws.client("s3")
    bucket = stack.physical["ArchiveBucket"]
    put = s3.put_object(Bucket=bucket, Key="audit/x.json", Body=b"{}")
    import pytest
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="audit/x.json", VersionId=put["VersionId"])


def test_conditional_resources_follow_the_template_conditions(aws: Any) -> None:
    from infra.local import bootstrap

    created = bootstrap(aws, prefix="cond", params={"AlarmEmail": "ops@example.com"})
    assert "AlarmEmailSubscription" in created.physical
    subs = aws.client("sns").list_subscriptions_by_topic(TopicArn=created.physical["AlarmTopic"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "ops@example.com")]
