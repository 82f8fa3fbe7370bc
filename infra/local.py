"""Create the resources of infra/resources.py in an AWS endpoint (moto server) from their CFN properties.

This is a small interpreter of exactly the CloudFormation the deploy template uses: it resolves
``Ref`` / ``Fn::GetAtt`` / ``Fn::Sub`` and parameters, then makes the API calls that CloudFormation
would make for each resource type. Because it reads the same definitions, the local stack cannot drift
from what is deployed; a resource type it does not know is an error, not a silent skip.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from infra.resources import CONDITIONS, PARAMETERS, resource_set, retention_days

ACCOUNT = "123456789012"
PARTITION = "aws"

# Creation order: a resource comes after the ones it refers to.
_ORDER = [
    "AWS::KMS::Key",
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
]


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass
class LocalStack:
    """What was created: physical ids and attributes by logical id, and the env for the functions."""

    prefix: str
    region: str
    physical: dict[str, str] = field(default_factory=dict)  # Ref value
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


class _Resolver:
    def __init__(self, stack: LocalStack, params: dict[str, Any]) -> None:
        self.stack = stack
        self.params = params

    def ref(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        pseudo = {"AWS::Region": self.stack.region, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION}
        if name in pseudo:
            return pseudo[name]
        return self.stack.physical[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Ref"}:
                return self.ref(value["Ref"])
            if set(value) == {"Fn::GetAtt"}:
                logical, attr = value["Fn::GetAtt"]
                return self.stack.attrs[logical][attr]
            if set(value) == {"Fn::Sub"}:
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), value["Fn::Sub"])
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _sub(self, token: str) -> str:
        if "." in token and not token.startswith("AWS::"):
            logical, attr = token.split(".", 1)
            return str(self.stack.attrs[logical][attr])
        return str(self.ref(token))


def bootstrap(session: Any, *, prefix: str = "einvoice-local", params: dict[str, Any] | None = None) -> LocalStack:
    """Create every resource in the endpoint behind ``session`` (a boto3 Session) and return the env."""
    region = session.region_name or "cn-north-1"
    stack = LocalStack(prefix=prefix, region=region)
    values = {k: v.get("Default") for k, v in PARAMETERS.items()}
    values.update(params or {})
    values["RetentionDays"] = retention_days(values["RetentionDays"])  # never below 5 years
    r = _Resolver(stack, values)
    rs = resource_set()
    by_type = sorted(
        rs.resources.items(), key=lambda kv: _ORDER.index(kv[1]["Type"]) if kv[1]["Type"] in _ORDER else 99
    )
    for logical, spec in by_type:
        if "Condition" in spec and not _condition(CONDITIONS[spec["Condition"]], r):
            continue
        kind = spec["Type"]
        creator = _CREATORS.get(kind)
        if creator is None:
            raise ValueError(f"the local stack cannot create {kind} ({logical}); add it to infra/local.py")
        creator(session, stack, logical, r.resolve(spec.get("Properties", {})))
    for logical, binding in rs.bindings.items():
        stack.env[binding.env] = stack.physical[logical]
    from chalicelib.adapters.archive import ensure_signing_key
    from chalicelib.config import MANIFEST_KEY_SECRET

    # The manifests' SM2 key (per deployment; in production the operator creates it: docs/operator.md).
    ensure_signing_key(session.client("secretsmanager"), MANIFEST_KEY_SECRET)
    verify_senders(session, example_senders())
    return stack


def example_senders() -> list[str]:
    """The ``delivery.email_from`` of the example stores (examples/stores/*.json)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "examples" / "stores"
    found = {json.loads(f.read_text()).get("delivery", {}).get("email_from") for f in sorted(folder.glob("*.json"))}
    return sorted(a for a in found if a)


def verify_senders(session: Any, addresses: list[str]) -> None:
    """SES sends only from a verified identity: moto verifies at once (production: docs/operator.md).
    SES lives in its own region (not offered in China): ``chalicelib.adapters.mailer.ses_region``."""
    from chalicelib.adapters.mailer import ses_region

    ses = session.client("ses", region_name=ses_region())
    for address in addresses:
        ses.verify_email_identity(EmailAddress=address)


def _condition(expr: Any, r: _Resolver) -> bool:
    """Evaluate a CloudFormation condition (Fn::Equals / Fn::Not / Fn::And / Fn::Or over resolved values)."""
    ((fn, args),) = expr.items()
    if fn == "Fn::Equals":
        return bool(r.resolve(args[0]) == r.resolve(args[1]))
    if fn == "Fn::Not":
        return not _condition(args[0], r)
    if fn == "Fn::And":
        return all(_condition(a, r) for a in args)
    if fn == "Fn::Or":
        return any(_condition(a, r) for a in args)
    raise ValueError(f"the local stack cannot evaluate the condition function {fn}")


def _name(stack: LocalStack, logical: str) -> str:
    return f"{stack.prefix}-{_kebab(logical)}"


def _kms_key(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    kms = session.client("kms")
    key = kms.create_key(Description=p.get("Description", ""), Policy=json.dumps(p["KeyPolicy"]))["KeyMetadata"]
    if p.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    stack.physical[logical] = key["KeyId"]
    stack.attrs[logical] = {"Arn": key["Arn"], "KeyId": key["KeyId"]}


def _queue(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    sqs = session.client("sqs")
    name = _name(stack, logical)
    attributes: dict[str, str] = {}
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled"):
        if key in p:
            attributes[key] = str(p[key]).lower() if isinstance(p[key], bool) else str(p[key])
    if "RedrivePolicy" in p:
        attributes["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.physical[logical] = url
    stack.attrs[logical] = {"Arn": arn, "QueueName": name, "QueueUrl": url}


def _table(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    ddb = session.client("dynamodb")
    name = _name(stack, logical)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "BillingMode": p["BillingMode"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "KeySchema": p["KeySchema"],
        "DeletionProtectionEnabled": p.get("DeletionProtectionEnabled", False),
    }
    if "GlobalSecondaryIndexes" in p:
        kwargs["GlobalSecondaryIndexes"] = p["GlobalSecondaryIndexes"]
    sse = p.get("SSESpecification")
    if sse:
        kwargs["SSESpecification"] = {
            "Enabled": sse["SSEEnabled"],
            "SSEType": sse["SSEType"],
            "KMSMasterKeyId": sse["KMSMasterKeyId"],
        }
    arn = ddb.create_table(**kwargs)["TableDescription"]["TableArn"]
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    if "TimeToLiveSpecification" in p:
        ttl = p["TimeToLiveSpecification"]
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]}
        )
    stack.physical[logical] = name
    stack.attrs[logical] = {"Arn": arn}


def _bucket(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    s3 = session.client("s3")
    name = _name(stack, logical)
    kwargs: dict[str, Any] = {"Bucket": name, "ObjectLockEnabledForBucket": bool(p.get("ObjectLockEnabled"))}
    if stack.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": stack.region}
    s3.create_bucket(**kwargs)
    if "VersioningConfiguration" in p:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
        )
    if "ObjectLockConfiguration" in p:
        olc = p["ObjectLockConfiguration"]
        retention = olc["Rule"]["DefaultRetention"]
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": olc["ObjectLockEnabled"],
                "Rule": {"DefaultRetention": {"Mode": retention["Mode"], "Days": int(retention["Days"])}},
            },
        )
    if "BucketEncryption" in p:
        rules = []
        for rule in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
            default = rule["ServerSideEncryptionByDefault"]
            rules.append(
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": default["SSEAlgorithm"],
                        "KMSMasterKeyID": default["KMSMasterKeyID"],
                    },
                    "BucketKeyEnabled": rule.get("BucketKeyEnabled", False),
                }
            )
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in p:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
    if "LifecycleConfiguration" in p:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in p["LifecycleConfiguration"]["Rules"]]},
        )
    stack.physical[logical] = name
    stack.attrs[logical] = {"Arn": f"arn:{PARTITION}:s3:::{name}"}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle shape → the S3 API's."""
    out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Transitions" in rule:
        out["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    return out


def _bucket_policy(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    session.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
    stack.physical[logical] = p["Bucket"]


def _topic(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    arn = session.client("sns").create_topic(Name=_name(stack, logical))["TopicArn"]
    stack.physical[logical] = arn
    stack.attrs[logical] = {"TopicArn": arn}


def _subscription(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    arn = session.client("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"])
    stack.physical[logical] = arn["SubscriptionArn"]


def _alarm(session: Any, stack: LocalStack, logical: str, p: dict[str, Any]) -> None:
    keys = (
        "Namespace",
        "MetricName",
        "Dimensions",
        "Statistic",
        "Period",
        "EvaluationPeriods",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "AlarmActions",
        "AlarmDescription",
    )
    kwargs = {k: p[k] for k in keys if k in p}
    session.client("cloudwatch").put_metric_alarm(AlarmName=_name(stack, logical), **kwargs)
    stack.physical[logical] = _name(stack, logical)


_CREATORS = {
    "AWS::KMS::Key": _kms_key,
    "AWS::SQS::Queue": _queue,
    "AWS::DynamoDB::Table": _table,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::Subscription": _subscription,
    "AWS::CloudWatch::Alarm": _alarm,
}
