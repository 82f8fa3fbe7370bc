"""A :class:`~infra.webhook_samples_core.SignedRequest` as a ready-to-paste ``curl`` command, and back
(:func:`curl`, :func:`parse_curl`).
"""

from __future__ import annotations

import shlex

from infra.webhook_samples_core import SignedRequest


def curl(url: str, request: SignedRequest) -> str:
    """``request`` as a curl command (headers in a stable order, the body byte for byte; the answer
    ends with a newline, so several samples piped to bash print one answer a line)."""
    lines = [f"curl -sS -X POST {shlex.quote(url)}"]
    lines += [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in request.headers.items()]
    lines.append(f"--data-binary {shlex.quote(request.body.decode('utf-8'))} -w '\\n'")
    return " \\\n  ".join(lines)


def parse_curl(command: str) -> tuple[str, SignedRequest]:
    """(url, request) of a command :func:`curl` printed: what a reader of the sample would send."""
    words = iter(shlex.split(command))
    url, headers, body = "", {}, b""
    for word in words:
        if word == "-H":
            name, _, value = next(words).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif word == "--data-binary":
            body = next(words).encode()
        elif word.startswith("http"):
            url = word
    platform = url.rsplit("/webhooks/", 1)[-1].split("/")[0]
    return url, SignedRequest(platform, body, headers)
