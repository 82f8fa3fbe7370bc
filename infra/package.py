"""`make package`: the deploy template = `chalice package` + a merge template made from infra/resources.py.

The merge template adds every resource of ``infra.resources``, the template parameters, the function
wiring Chalice cannot express (the SQS event source's ``FunctionResponseTypes: [ReportBatchItemFailures]``
and queue ARN, the worker's timeout, every function's environment), a least-privilege IAM policy
that names each resource, and API Gateway's own answers in the project's error shape
(:func:`gateway_responses`). The packaged template is then linted with cfn-lint; a lint error fails.

    python -m infra.package [--stage dev|test|prod] [--out build/package] [--no-lint]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from chalicelib.config import MANIFEST_KEY_SECRET, WORKER_BATCH_SIZE, WORKER_TIMEOUT_SECONDS
from infra.resources import CONDITIONS, parameters, resource_set

ROOT = Path(__file__).resolve().parent.parent
WORKER_ID = "Worker"
SQS_EVENT_ID = "WorkerSqsEventSource"
DELIVERER_ID = "Deliverer"
#: SQS-triggered function → (its event source id, the template's queue it consumes).
QUEUE_CONSUMERS: dict[str, tuple[str, str]] = {
    WORKER_ID: (SQS_EVENT_ID, "IssueQueue"),
    DELIVERER_ID: ("DelivererSqsEventSource", "DeliverQueue"),
}
MANIFEST_ID = "ArchiveManifest"
MANIFEST_TIMEOUT_SECONDS = 300
#: Secrets the functions may read: every secret name a store refers to must start with this prefix.
SECRET_PREFIX = "einvoice/"  # noqa: S105 - a name prefix, not a secret


def function_ids() -> list[str]:
    """Logical ids of the Lambda functions ``chalice package`` will generate for app.py."""
    sys.path.insert(0, str(ROOT))
    from chalice.utils import to_cfn_resource_name

    import app as app_module

    chalice_app = app_module.app
    ids = ["APIHandler"] if chalice_app.routes else []
    ids += [to_cfn_resource_name(source.name) for source in chalice_app.event_sources]
    ids += [to_cfn_resource_name(function.name) for function in chalice_app.pure_lambda_functions]
    return ids


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _objects(bucket: str) -> dict[str, Any]:
    return {"Fn::Sub": "${" + bucket + ".Arn}/*"}


def _send_to(queue: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [_arn(queue)]}


def _consume(queue: str) -> dict[str, Any]:
    """What an SQS-triggered function needs on its queue (the worker also re-sends and hides messages)."""
    actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    return {"Effect": "Allow", "Action": [*actions, "sqs:SendMessage"], "Resource": [_arn(queue)]}


def _statements() -> dict[str, dict[str, Any]]:
    """Every grant, by name; each function gets only the ones it needs (FUNCTION_GRANTS)."""
    return {
        "Logs": {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/*"
            },
        },
        "Tracing": {
            "Effect": "Allow",
            "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            "Resource": "*",  # X-Ray has no resource-level permissions
        },
        "ReadStores": {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:Query"],
            "Resource": [_arn("StoresTable")],
        },
        "Ledger": {
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
                "dynamodb:ConditionCheckItem",
                "dynamodb:BatchGetItem",  # the store API and the dashboard read several records at once
                "dynamodb:DeleteItem",  # an operator's logout ends the session item
            ],
            "Resource": [_arn("LedgerTable"), {"Fn::Sub": "${LedgerTable.Arn}/index/*"}],
        },
        "SendToQueue": _send_to("IssueQueue"),
        "ConsumeQueue": _consume("IssueQueue"),
        "SendToDeliverQueue": _send_to("DeliverQueue"),
        "ConsumeDeliverQueue": _consume("DeliverQueue"),
        "DeliverDeadLetter": _send_to("DeliverDLQ"),
        "InvoiceFiles": {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": [_objects("InvoiceBucket")],
        },
        "ReadInvoiceFiles": {  # the presigned download links are signed with the API's own role
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [_objects("InvoiceBucket")],
        },
        "SendMail": {  # SES in SES_REGION (not offered in the China regions: docs/operator.md)
            "Effect": "Allow",
            "Action": ["ses:SendRawEmail"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:ses:*:${AWS::AccountId}:identity/*"},
        },
        "SendSms": {  # SNS has no resource for a phone number: publishing an SMS is granted on "*"
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": "*",
        },
        "DeadLetter": _send_to("IssueDLQ"),
        "WriteArchive": {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": [_objects("ArchiveBucket"), _objects("InvoiceBucket")],
        },
        "ManifestArchive": {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": [_objects("ArchiveBucket")],
        },
        "ManifestKey": {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                + MANIFEST_KEY_SECRET
                + "-*"
            },
        },
        "ListArchive": {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [_arn("ArchiveBucket")],
        },
        "ReadConfig": {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [_objects("ConfigBucket")],
        },
        "DataKey": {
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [_arn("DataKey")],
        },
        "Secrets": {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                + SECRET_PREFIX
                + "*"
            },
        },
        "Alarms": {
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": [{"Ref": "AlarmTopic"}],
        },
    }


#: Function (logical id) → the grants it needs. A function missing here gets only Logs and Tracing.
FUNCTION_GRANTS: dict[str, list[str]] = {
    "APIHandler": [
        "ReadStores",
        "Ledger",
        "SendToQueue",
        "ReadConfig",
        "ReadInvoiceFiles",
        "DataKey",
        "Secrets",
        "Alarms",
    ],
    "Worker": [
        "ReadStores",
        "Ledger",
        "ConsumeQueue",
        "DeadLetter",
        "SendToDeliverQueue",
        "WriteArchive",
        "DataKey",
        "Secrets",
        "Alarms",
    ],
    "Deliverer": [
        "ReadStores",
        "Ledger",
        "ConsumeDeliverQueue",
        "DeliverDeadLetter",
        "InvoiceFiles",
        "DataKey",
        "Secrets",
        "Alarms",
        "SendMail",
        "SendSms",
    ],
    "Sweeper": ["Ledger", "SendToQueue", "DataKey"],
    "ArchiveManifest": ["ManifestArchive", "ListArchive", "DataKey", "ManifestKey", "Alarms"],
}


def role_id(function_id: str) -> str:
    """The IAM role Chalice generates for a function when policies are not auto-generated."""
    return "ApiHandlerRole" if function_id == "APIHandler" else f"{function_id}Role"


def iam_policy(function_id: str) -> dict[str, Any]:
    """Least privilege for one function: its grants, each on the resources it names."""
    every = _statements()
    names = ["Logs", "Tracing", *FUNCTION_GRANTS.get(function_id, [])]
    return {"Version": "2012-10-17", "Statement": [{"Sid": n, **every[n]} for n in names]}


#: API Gateway's own answers (no Lambda reached): type → (status, the project's error code, message);
#: None keeps the gateway's status, or its message. A path deeper than the catch-all routes
#: (``app.CATCH_ALL_DEPTH``) has no resource, which API Gateway answers 403 MISSING_AUTHENTICATION_TOKEN
#: ("Missing Authentication Token"): it is the app's 404 ``not_found``. A type not named here falls back
#: to DEFAULT_4XX / DEFAULT_5XX.
GATEWAY_ERRORS: dict[str, tuple[str | None, str, str | None]] = {
    "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found", "no route for this path"),
    "REQUEST_TOO_LARGE": (None, "payload_too_large", None),  # over API Gateway's 10 MB (ours: 413 above 256 KB)
    "UNSUPPORTED_MEDIA_TYPE": (None, "unsupported_media_type", None),
    "THROTTLED": (None, "throttled", None),
    "QUOTA_EXCEEDED": (None, "throttled", None),
    "ACCESS_DENIED": (None, "access_denied", None),
    "WAF_FILTERED": (None, "access_denied", None),
    "INTEGRATION_FAILURE": (None, "integration_failure", None),
    "INTEGRATION_TIMEOUT": (None, "integration_timeout", None),
    "DEFAULT_4XX": (None, "request_refused", None),
    "DEFAULT_5XX": (None, "gateway_error", None),
}
GATEWAY_RESPONSES_KEY = "x-amazon-apigateway-gateway-responses"


def gateway_responses() -> dict[str, Any]:
    """``x-amazon-apigateway-gateway-responses`` of the REST API: ``{"error": code, "message": …}``.

    In the API's definition (Chalice's ``RestAPI``, a SAM API), not as ``AWS::ApiGateway::GatewayResponse``
    resources: a gateway response takes effect only with a deployment made after it, and SAM re-deploys
    the stage exactly when the definition changes — separate resources would race the first deployment
    and be missed by any later one that changes nothing else. The templates are not VTL: simple
    substitution only, and ``$context.error.messageString`` is already a quoted JSON string.
    """
    found: dict[str, Any] = {}
    for response_type, (status, code, text) in GATEWAY_ERRORS.items():
        message = json.dumps(text) if text is not None else "$context.error.messageString"
        entry: dict[str, Any] = {
            "responseTemplates": {"application/json": f'{{"error":"{code}","message":{message}}}'},
        }
        if status is not None:
            entry["statusCode"] = status
        found[response_type] = entry
    return found


def merge_template(functions: list[str], stage: str | None = None) -> dict[str, Any]:
    rs = resource_set()
    env = {b.env: rs.binding_value(logical_id) for logical_id, b in rs.bindings.items()}
    resources: dict[str, Any] = dict(rs.resources)
    for fid in functions:
        resources[fid] = {"Properties": {"Environment": {"Variables": env}}}
    for fid, (event_id, _queue) in QUEUE_CONSUMERS.items():
        if fid not in functions:
            continue
        resources[fid]["Properties"].update(
            {
                "Timeout": WORKER_TIMEOUT_SECONDS,
                "Events": {
                    event_id: {
                        "Type": "SQS",
                        "Properties": {
                            "BatchSize": WORKER_BATCH_SIZE,
                            # Without it Lambda deletes the whole batch when the handler returns,
                            # including the messages it reported as failed.
                            "FunctionResponseTypes": ["ReportBatchItemFailures"],
                        },
                    }
                },
            }
        )
    if MANIFEST_ID in functions:  # reads a day's objects (thousands) and signs: minutes, not seconds
        resources[MANIFEST_ID]["Properties"]["Timeout"] = MANIFEST_TIMEOUT_SECONDS
    if "APIHandler" in functions:  # deep-merged into Chalice's API definition (see gateway_responses)
        resources["RestAPI"] = {"Properties": {"DefinitionBody": {GATEWAY_RESPONSES_KEY: gateway_responses()}}}
    for fid in functions:
        resources[role_id(fid)] = {
            "Properties": {"Policies": [{"PolicyName": "EinvoiceLeastPrivilege", "PolicyDocument": iam_policy(fid)}]}
        }
    return {
        "Parameters": parameters(stage),
        "Conditions": CONDITIONS,
        "Resources": resources,
        "Outputs": {
            "IssueQueueUrl": {"Value": {"Ref": "IssueQueue"}},
            "ArchiveBucketName": {"Value": {"Ref": "ArchiveBucket"}},
            "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        },
    }


def package(stage: str, out: Path, lint: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    merge_path = out.parent / f"merge-template-{stage}.json"
    merge_path.write_text(json.dumps(merge_template(function_ids(), stage), indent=2, ensure_ascii=False))
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "cn-north-1")}
    chalice = Path(sys.executable).parent / "chalice"
    subprocess.run(
        [
            str(chalice),
            "package",
            "--stage",
            stage,
            "--pkg-format",
            "cloudformation",
            "--merge-template",
            str(merge_path),
            str(out),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    template = out / "sam.json"
    point_worker_at_queue(template)
    if lint:
        lint_template(template)
    return template


def point_worker_at_queue(template: Path) -> None:
    """Replace the queue ARN Chalice derives from a queue *name* by the template's own queue.

    This is the one edit the merge template cannot make: Chalice merges dictionaries, so an
    ``Fn::GetAtt`` given there would sit beside Chalice's ``Fn::Sub`` in one object instead of replacing it.
    """
    doc = json.loads(template.read_text())
    for fid, (event_id, queue) in QUEUE_CONSUMERS.items():
        if fid in doc["Resources"]:
            doc["Resources"][fid]["Properties"]["Events"][event_id]["Properties"]["Queue"] = _arn(queue)
    template.write_text(json.dumps(doc, indent=2, ensure_ascii=False))


def lint_template(template: Path) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    # Regions: both China regions (the merchants' home) and a commercial one for the partition checks.
    result = subprocess.run(
        [str(cfn_lint), "--regions", "cn-north-1", "cn-northwest-1", "ap-east-1", "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"cfn-lint found problems in {template}:\n{result.stdout}{result.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", choices=["dev", "test", "prod"])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default build/package/<stage>)")
    parser.add_argument("--no-lint", action="store_true", help="skip cfn-lint")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / "package" / args.stage
    template = package(args.stage, out, lint=not args.no_lint)
    print(
        f"template: {template}\ncode:     {out / 'deployment.zip'}\ncfn-lint: {'skipped' if args.no_lint else 'clean'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
