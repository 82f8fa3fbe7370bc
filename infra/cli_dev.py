"""``einvoice dev``: helpers for the local stack.

``dev outbox`` lists what the embedded AWS (moto server) recorded as sent: the e-mails of SES
(``send_raw_email``: sender, recipients, subject, attachments, the customer's link) and the SMS of
SNS (``publish`` to a phone number). moto keeps them in memory and shows every model instance it
tracks at ``GET /moto-api/data.json`` (``ses.RawMessage``: ``id``, ``source``, ``destinations``,
``raw_data``; ``sns.SMS``: ``message_id``, ``phone_number``, ``message``) — that is what this reads,
so it works against a moto *server* (``make run``), never against real AWS.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from dataclasses import dataclass, field
from email import message_from_string, policy
from typing import Annotated, Any

import typer

from infra.cli_app import console, err, group, print_table, table

dev = group("dev", "helpers for the local stack (make run)")

LINK_RE = re.compile(r"https?://[^\s\"'<>]+/i/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Sent:
    channel: str  # email | sms
    id: str
    to: list[str]
    subject: str = ""
    sender: str = ""
    text: str = ""
    attachments: list[tuple[str, int]] = field(default_factory=list)  # (file name, bytes)

    @property
    def links(self) -> list[str]:
        return list(dict.fromkeys(LINK_RE.findall(self.text)))


def _email(raw: dict[str, Any]) -> Sent:
    message = message_from_string(str(raw.get("raw_data", "")), policy=policy.default)
    texts: list[str] = []
    attachments: list[tuple[str, int]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_filename():
            payload = part.get_payload(decode=True)
            attachments.append((str(part.get_filename()), len(payload) if isinstance(payload, bytes) else 0))
        elif part.get_content_type() == "text/plain":
            texts.append(str(part.get_content()))
    return Sent(
        channel="email",
        id=str(raw.get("id", "")),
        to=list(dict.fromkeys(str(d) for d in raw.get("destinations") or [])),  # moto adds the To header's again
        subject=str(message.get("Subject", "")),
        sender=str(raw.get("source", "")),
        text="\n".join(texts),
        attachments=attachments,
    )


def outbox(endpoint: str, *, timeout: float = 10.0) -> list[Sent]:
    """Every e-mail (SES) and SMS (SNS) the moto server at ``endpoint`` has recorded, oldest first."""
    with urllib.request.urlopen(f"{endpoint.rstrip('/')}/moto-api/data.json", timeout=timeout) as reply:  # noqa: S310
        data = json.loads(reply.read())
    sent = [_email(m) for m in data.get("ses", {}).get("RawMessage", [])]
    sent += [
        Sent(
            channel="sms",
            id=str(m.get("message_id", "")),
            to=[str(m.get("phone_number", ""))],
            text=str(m.get("message", "")),
        )
        for m in data.get("sns", {}).get("SMS", [])
    ]
    return sent


def endpoint() -> str:
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    if not url:
        err.print("dev outbox reads the embedded AWS of the local stack: start it with `make run`")
        raise typer.Exit(2)
    return url


@dev.command("outbox")
def outbox_command(
    to: Annotated[str | None, typer.Option(help="only what went to this address or number")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """What the customers would have received: the e-mails and SMS that moto's SES and SNS recorded."""
    items = [s for s in outbox(endpoint()) if to is None or any(to in t for t in s.to)]
    if as_json:
        typer.echo(
            json.dumps(
                [{**s.__dict__, "links": s.links} for s in items],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if not items:
        console.print("nothing sent yet")
        return
    grid = table("channel", "to", "subject / message", "attachments", "link")
    for s in items:
        summary = s.subject if s.channel == "email" else s.text
        files = ", ".join(f"{name} ({size:,} B)" for name, size in s.attachments)
        grid.add_row(s.channel, ", ".join(s.to), summary[:80], files, (s.links or [""])[0])
    print_table(grid)
