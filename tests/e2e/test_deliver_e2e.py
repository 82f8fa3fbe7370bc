"""`make run`'s demo order: posted after start-up, issued, delivered; its printed link opens the
customer's page, and the PDF behind it downloads."""

from __future__ import annotations

import html
import re
import time
import urllib.request
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

LINK = re.compile(r"the customer's link: (\S+)")


def test_the_demo_order_is_delivered_and_its_link_downloads_the_pdf(local_stack: Any) -> None:
    deadline = time.monotonic() + 150
    while not (found := LINK.search(local_stack.output())):
        assert "The stack keeps running" not in local_stack.output(), local_stack.output()[-3000:]  # a missed step
        assert time.monotonic() < deadline, local_stack.output()[-3000:]
        time.sleep(0.5)
    link = found.group(1)
    with urllib.request.urlopen(link, timeout=30) as reply:
        page = reply.read().decode()
    assert reply.status == 200
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)]
    pdf_urls = [h for h in hrefs if ".pdf" in h or "/pdf" in h]
    assert pdf_urls, page[:2000]
    url = pdf_urls[0] if pdf_urls[0].startswith("http") else link.split("/i/")[0] + pdf_urls[0]
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = reply.read()
    assert body.startswith(b"%PDF")

    from infra.cli_dev import outbox

    mails = [m for m in outbox(local_stack.aws) if link in m.links]
    assert len(mails) == 1 and mails[0].to == ["buyer@example.com"] and mails[0].attachments
