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
            aws.client("sns").publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=message)
