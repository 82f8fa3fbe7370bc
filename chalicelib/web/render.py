"""Rendering of the customer's pages and the headers every one of them is sent with.

Jinja2 with autoescaping on for every template (``.html`` and the CSS included), ``StrictUndefined``
(a missing value is a bug, not an empty string), templates under ``chalicelib/web/templates``. The
one stylesheet is inlined in ``<style>`` and allowed by its SHA-256 in the Content-Security-Policy:
no script, no external source of any kind, forms only to this origin, no framing.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["css"] = stylesheet()
    return env


@cache
def stylesheet() -> str:
    return (TEMPLATES / "style.css").read_text(encoding="utf-8")


@cache
def content_security_policy() -> str:
    digest = base64.b64encode(hashlib.sha256(stylesheet().encode("utf-8")).digest()).decode()
    return "; ".join(
        [
            "default-src 'none'",
            f"style-src 'sha256-{digest}'",
            "img-src data:",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The headers of every customer page (and of the download redirect)."""
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        **(extra or {}),
    }


def render(template: str, **context: Any) -> str:
    text: str = environment().get_template(template).render(**context)
    return text
