"""The customer's channels: e-mail through SES (``send_raw_email``, the PDF attached) and SMS through
SNS (``publish`` to a phone number). Failures become :class:`DeliveryError`: ``permanent`` when the
address itself is refused (an invalid recipient or number), otherwise retried later (throttling,
an unverified sender identity, AWS failing). Addresses never reach the logs unmasked.
"""

from __future__ import annotations

import os
import threading
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.delivery import DeliveryError
from chalicelib.domain.errors import ConfigurationError, EInvoiceError
from chalicelib.services.delivery_ports import Attachment

#: SES is not offered in the AWS China regions: e-mail goes through SES in another region (SES_REGION;
#: in production an account of the commercial partition, see docs/operator.md "E-mail and SMS").
DEFAULT_SES_REGION = "ap-southeast-1"
_lock = threading.Lock()
_ses_clients: dict[str, Any] = {}


def ses_region() -> str:
    return os.environ.get("SES_REGION", "") or DEFAULT_SES_REGION


def ses_client(region: str) -> Any:
    """SES in ``region``, from the session the other clients use (``aws.set_session``: tests, the bench),
    cached per session; AWS_ENDPOINT_URL points it at moto like every other client."""
    import boto3
    from botocore.config import Config

    session = aws._session or boto3.session.Session()  # the adapters' one session (aws.client has no region)
    key = f"{id(session)}:{region}"
    with _lock:
        if key not in _ses_clients:
            config = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)
            _ses_clients.clear()  # a new session (tests switch stacks): forget the old clients
            _ses_clients[key] = session.client("ses", region_name=region, config=config)
        return _ses_clients[key]


#: SES / SNS codes that say the recipient (not us, not AWS) is wrong: retrying cannot help.
PERMANENT_CODES = frozenset({"InvalidParameterValue", "InvalidParameter", "InvalidParameterException"})


def _code(exc: BaseException) -> str:
    cause = exc.__cause__
    response = getattr(cause, "response", None) or getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or getattr(exc, "code", type(exc).__name__)


def _failure(channel: str, exc: Exception) -> DeliveryError:
    code = _code(exc)
    return DeliveryError(f"{channel}: {code}", code=f"{channel}_{code}", permanent=code in PERMANENT_CODES)


def build_email(*, sender: str, to: str, subject: str, text: str, html: str, attachment: Attachment | None) -> bytes:
    """The MIME message: text and HTML alternatives, the PDF attached when given."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.partition("@")[2] or None)
    message.set_content(text, charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    if attachment is not None:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.body, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message.as_bytes()


class SesMailer:
    def __init__(self, configuration_set: str = "", *, region: str = "") -> None:
        self.configuration_set = configuration_set
        self.region = region or ses_region()

    @property
    def _ses(self) -> Any:
        return ses_client(self.region)

    def send_email(
        self, *, sender: str, to: str, subject: str, text: str, html: str, attachment: Attachment | None
    ) -> str:
        raw = build_email(sender=sender, to=to, subject=subject, text=text, html=html, attachment=attachment)
        kwargs: dict[str, Any] = {"Source": sender, "Destinations": [to], "RawMessage": {"Data": raw}}
        if self.configuration_set:
            kwargs["ConfigurationSetName"] = self.configuration_set
        try:
            with aws.unavailable("ses"):
                reply = self._ses.send_raw_email(**kwargs)
        except (EInvoiceError, ConfigurationError) as exc:
            raise _failure("email", exc) from None
        except Exception as exc:  # ClientError codes the classifier passes through (MessageRejected …)
            raise _failure("email", exc) from None
        return str(reply["MessageId"])


class SnsSms:
    @property
    def _sns(self) -> Any:
        return aws.client("sns")

    def send_sms(self, *, to: str, text: str, sender_id: str | None) -> str:
        attributes: dict[str, Any] = {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
        }
        if sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender_id[:11]}
        try:
            with aws.unavailable("sns"):
                reply = self._sns.publish(PhoneNumber=to, Message=text, MessageAttributes=attributes)
        except Exception as exc:
            raise _failure("sms", exc) from None
        return str(reply["MessageId"])
