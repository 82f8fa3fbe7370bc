"""Alerts to the alarm topic (ALARM_TOPIC_ARN). Messages name stores, orders and secret *names*, never
secret values, tokens or full tax ids."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from chalicelib.adapters import aws

logger = Logger(child=True)


class SnsAlerts:
    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> None:
        if not self.topic_arn:
            logger.warning("no alarm topic configured; alert not sent", extra={"subject": subject})
            return
        with aws.unavailable("alarm topic"):
            aws.client("sns").publish(TopicArn=self.topic_arn, Subject=sns_subject(subject), Message=message)


def sns_subject(subject: str) -> str:
    """SNS takes a subject of at most 100 printable ASCII characters, one line: an order key may carry
    Chinese or control characters, so they are escaped rather than making SNS refuse the alert."""
    one_line = " ".join(subject.split())
    return one_line.encode("ascii", "backslashreplace").decode("ascii")[:100] or "einvoice alert"
