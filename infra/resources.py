"""The one list of AWS resources: tables, queues, buckets, the key and the alarm topic.

Both consumers read this module and nothing else:

- ``infra/package.py`` renders it into the CloudFormation merge template that ``chalice package`` folds
  into the deploy template (with the IAM policy and the function wiring that refer to it);
- ``infra/local.py`` creates the same resources in the embedded AWS (moto server) for ``make run`` and
  the tests, by interpreting the very same CloudFormation properties.

Each resource says which environment variable carries its name to the functions (``ENV``), so the code
reads ``STORES_TABLE`` whether it runs in Lambda or on a laptop.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from chalicelib.config import MAX_RECEIVE_COUNT, QUEUE_VISIBILITY_SECONDS
from chalicelib.domain.delivery import DELIVER_MAX_RECEIVES
from infra.alarms import alarms

#: Retention floor for invoices and tax-interface logs: 5 years (1,827 days covers two leap days).
MIN_RETENTION_DAYS = 1827

PARAMETERS: dict[str, dict[str, Any]] = {
    "RetentionDays": {
        "Type": "Number",
        "Default": MIN_RETENTION_DAYS,
        "MinValue": MIN_RETENTION_DAYS,
        "Description": "Object Lock retention of invoices and tax-interface logs, in days (at least 5 years).",
    },
    "ObjectLockMode": {
        "Type": "String",
        "Default": "COMPLIANCE",
        "AllowedValues": ["COMPLIANCE", "GOVERNANCE"],
        "Description": "COMPLIANCE: nobody, not even root, can delete a locked version before it expires.",
    },
    "AlarmEmail": {
        "Type": "String",
        "Default": "",
        "Description": "Optional e-mail address subscribed to the alarm topic.",
    },
}

#: The Object Lock mode of each stage's locked buckets (the template parameter's default, see
#: :func:`parameters`): prod COMPLIANCE (nobody, not even root, shortens or removes a lock); dev and test
#: GOVERNANCE (a user with s3:BypassGovernanceRetention may clean test data); the local stack keeps the
#: parameter's own default.
LOCK_MODE_BY_STAGE = {"prod": "COMPLIANCE", "test": "GOVERNANCE", "dev": "GOVERNANCE"}


def retention_days(value: object) -> int:
    """A retention in days, validated: a whole number of at least 5 years (``MIN_RETENTION_DAYS``)."""
    days = int(str(value))
    if days < MIN_RETENTION_DAYS:
        raise ValueError(f"retention of {days} days is below the 5-year floor ({MIN_RETENTION_DAYS} days)")
    return days


def parameters(stage: str | None = None) -> dict[str, dict[str, Any]]:
    """The template parameters, their defaults for ``stage`` (Object Lock mode, validated retention)."""
    params = copy.deepcopy(PARAMETERS)
    retention_days(params["RetentionDays"]["Default"])
    if stage in LOCK_MODE_BY_STAGE:
        params["ObjectLockMode"]["Default"] = LOCK_MODE_BY_STAGE[stage]
    return params


CONDITIONS: dict[str, Any] = {"HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}}

_SSE_KMS = {
    "ServerSideEncryptionConfiguration": [
        {
            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Ref": "DataKey"}},
            "BucketKeyEnabled": True,
        }
    ]
}
_PUBLIC_ACCESS_BLOCKED = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


def _archive_lifecycle(prefix_id: str) -> dict[str, Any]:
    """Cheaper storage as records age; versions expire only after the retention period."""
    return {
        "Rules": [
            {
                "Id": f"{prefix_id}-tiering",
                "Status": "Enabled",
                "Transitions": [
                    {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
                    {"StorageClass": "GLACIER_IR", "TransitionInDays": 180},
                    {"StorageClass": "DEEP_ARCHIVE", "TransitionInDays": 730},
                ],
                "ExpirationInDays": {"Ref": "RetentionDays"},
                "NoncurrentVersionExpiration": {"NoncurrentDays": {"Ref": "RetentionDays"}},
            }
        ]
    }


def _locked_bucket(prefix_id: str) -> dict[str, Any]:
    return {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "ObjectLockEnabled": True,
            "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": {"Ref": "ObjectLockMode"}, "Days": {"Ref": "RetentionDays"}}},
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": _SSE_KMS,
            "PublicAccessBlockConfiguration": _PUBLIC_ACCESS_BLOCKED,
            "LifecycleConfiguration": _archive_lifecycle(prefix_id),
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        },
    }


def _table(
    key: list[tuple[str, str]], *, ttl: str | None = None, gsis: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    attributes = {name for name, _ in key}
    for g in gsis or []:
        attributes.update(k["AttributeName"] for k in g["KeySchema"])
    props: dict[str, Any] = {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind in key],
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "DataKey"}},
        "DeletionProtectionEnabled": True,
    }
    if ttl:
        props["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
    if gsis:
        props["GlobalSecondaryIndexes"] = gsis
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": props,
    }


@dataclass(frozen=True)
class Binding:
    """How a resource reaches the functions: env var name and the intrinsic that yields the value."""

    env: str
    value: str  # "Ref" or an attribute name for Fn::GetAtt


@dataclass(frozen=True)
class ResourceSet:
    resources: dict[str, dict[str, Any]]
    bindings: dict[str, Binding] = field(default_factory=dict)

    def binding_value(self, logical_id: str) -> dict[str, Any]:
        b = self.bindings[logical_id]
        return {"Ref": logical_id} if b.value == "Ref" else {"Fn::GetAtt": [logical_id, b.value]}


def resource_set() -> ResourceSet:
    """A fresh copy of every resource (callers may mutate what they get)."""
    resources: dict[str, dict[str, Any]] = {
        "DataKey": {
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": "einvoice: encrypts tables, buckets and queues",
                "EnableKeyRotation": True,
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AccountAdministers",
                            "Effect": "Allow",
                            "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ],
                },
            },
        },
        "StoresTable": _table([("store_id", "HASH")]),
        "LedgerTable": _table(
            [("pk", "HASH"), ("sk", "RANGE")],
            ttl="expires_at",
            gsis=[
                {
                    "IndexName": "by_store",
                    "KeySchema": [
                        {"AttributeName": "store_id", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                },
                {
                    # Sparse: only records waiting for something carry ``due``; the sweeper's list.
                    "IndexName": "by_due",
                    "KeySchema": [
                        {"AttributeName": "due", "KeyType": "HASH"},
                        {"AttributeName": "due_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
        ),
        "IssueDLQ": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True},
        },
        "IssueQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": QUEUE_VISIBILITY_SECONDS,
                "MessageRetentionPeriod": 1209600,
                "ReceiveMessageWaitTimeSeconds": 20,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["IssueDLQ", "Arn"]},
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                },
            },
        },
        # Delivery (chalicelib/services/deliver.py): one message per issued order; retries hide it.
        "DeliverDLQ": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True},
        },
        "DeliverQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": QUEUE_VISIBILITY_SECONDS,
                "MessageRetentionPeriod": 1209600,
                "ReceiveMessageWaitTimeSeconds": 20,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["DeliverDLQ", "Arn"]},
                    "maxReceiveCount": DELIVER_MAX_RECEIVES,
                },
            },
        },
        "ArchiveBucket": _locked_bucket("archive"),
        "InvoiceBucket": _locked_bucket("invoices"),
        "ConfigBucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "BucketEncryption": _SSE_KMS,
                "PublicAccessBlockConfiguration": _PUBLIC_ACCESS_BLOCKED,
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "old-versions",
                            "Status": "Enabled",
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 365},
                        }
                    ]
                },
            },
        },
        "AlarmTopic": {
            # Not KMS-encrypted: CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key,
            # and alarm messages carry metric names only, never invoice data.
            "Type": "AWS::SNS::Topic",
            "Properties": {"DisplayName": "einvoice alarms"},
        },
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
        },
        "DeadLetterAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": "An order could not be issued after every retry: it waits in the DLQ.",
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["IssueDLQ", "QueueName"]}}],
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": "AlarmTopic"}],
            },
        },
    }
    resources.update(alarms())  # the CloudWatch alarms of the alerts (infra/alarms.py)
    for bucket in ("ArchiveBucket", "InvoiceBucket", "ConfigBucket"):
        resources[f"{bucket}TlsOnly"] = {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": bucket},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [
                                {"Fn::GetAtt": [bucket, "Arn"]},
                                {"Fn::Sub": "${" + bucket + ".Arn}/*"},
                            ],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                },
            },
        }
    bindings = {
        "StoresTable": Binding("STORES_TABLE", "Ref"),
        "LedgerTable": Binding("LEDGER_TABLE", "Ref"),
        "IssueQueue": Binding("ISSUE_QUEUE_URL", "Ref"),
        "IssueDLQ": Binding("ISSUE_DLQ_URL", "Ref"),
        "DeliverQueue": Binding("DELIVER_QUEUE_URL", "Ref"),
        "DeliverDLQ": Binding("DELIVER_DLQ_URL", "Ref"),
        "ArchiveBucket": Binding("ARCHIVE_BUCKET", "Ref"),
        "InvoiceBucket": Binding("INVOICE_BUCKET", "Ref"),
        "ConfigBucket": Binding("CONFIG_BUCKET", "Ref"),
        "AlarmTopic": Binding("ALARM_TOPIC_ARN", "Ref"),
        "DataKey": Binding("DATA_KEY_ID", "Ref"),
    }
    return ResourceSet(copy.deepcopy(resources), bindings)
