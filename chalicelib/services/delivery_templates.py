"""The customer's messages, per store and language (zh, en): Jinja2, sandboxed, HTML autoescaped.

A store may replace any template in ``delivery.templates`` (``"sms.zh"``, ``"email_html.en"`` …);
those sources are the operator's, rendered in Jinja2's sandbox so a template cannot reach Python.
Every template sees the same variables (:class:`MessageContext`): ``seller``, ``number``, ``amount``
(text, ``¥`` included), ``date`` (开票日期, China time), ``link``, ``expires`` (the link's last day),
``attached`` (the PDF is attached to the mail).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

NAMES = ("email_subject", "email_text", "email_html", "sms")
LANGUAGES = ("zh", "en")

DEFAULTS: dict[str, str] = {
    "email_subject.zh": "{{ seller }} 电子发票 {{ number }}",
    "email_subject.en": "{{ seller }}: your e-invoice {{ number }}",
    "email_text.zh": (
        "您好，\n\n{{ seller }} 已为您开具电子发票。\n"
        "发票号码：{{ number }}\n开票日期：{{ date }}\n价税合计：{{ amount }}\n\n"
        "{% if attached %}发票 PDF 见附件。{% endif %}查看与下载：{{ link }}\n"
        "（链接有效期至 {{ expires }}）\n"
    ),
    "email_text.en": (
        "Hello,\n\n{{ seller }} has issued your e-invoice.\n"
        "Invoice number: {{ number }}\nDate: {{ date }}\nTotal: {{ amount }}\n\n"
        "{% if attached %}The PDF is attached. {% endif %}View and download: {{ link }}\n"
        "(the link works until {{ expires }})\n"
    ),
    "email_html.zh": (
        '<!doctype html><html lang="zh"><body style="font-family:sans-serif">'
        "<p>您好，</p><p>{{ seller }} 已为您开具电子发票。</p>"
        "<table><tr><td>发票号码</td><td>{{ number }}</td></tr><tr><td>开票日期</td><td>{{ date }}</td></tr>"
        "<tr><td>价税合计</td><td>{{ amount }}</td></tr></table>"
        '<p>{% if attached %}发票 PDF 见附件。{% endif %}<a href="{{ link }}">查看与下载发票</a>'
        "（有效期至 {{ expires }}）</p></body></html>"
    ),
    "email_html.en": (
        '<!doctype html><html lang="en"><body style="font-family:sans-serif">'
        "<p>Hello,</p><p>{{ seller }} has issued your e-invoice.</p>"
        "<table><tr><td>Invoice number</td><td>{{ number }}</td></tr><tr><td>Date</td><td>{{ date }}</td></tr>"
        "<tr><td>Total</td><td>{{ amount }}</td></tr></table>"
        '<p>{% if attached %}The PDF is attached. {% endif %}<a href="{{ link }}">View and download</a>'
        " (until {{ expires }})</p></body></html>"
    ),
    "sms.zh": "【{{ seller }}】您的电子发票 {{ number }}（{{ amount }}）已开具，查看下载：{{ link }}",
    "sms.en": "[{{ seller }}] Your e-invoice {{ number }} ({{ amount }}) is issued: {{ link }}",
}


@dataclass(frozen=True)
class MessageContext:
    seller: str
    number: str
    amount: str
    date: str
    link: str
    expires: str
    attached: bool = False


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@cache
def _environment(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=True)


def source(name: str, language: str, overrides: dict[str, str]) -> str:
    if name not in NAMES:
        raise ValueError(f"no message template {name!r} (known: {', '.join(NAMES)})")
    lang = language if language in LANGUAGES else "zh"
    return overrides.get(f"{name}.{lang}") or DEFAULTS[f"{name}.{lang}"]


def render(name: str, language: str, context: MessageContext, overrides: dict[str, str] | None = None) -> str:
    """One template filled in; HTML templates escape every variable."""
    env = _environment(name.endswith("_html"))
    return env.from_string(source(name, language, overrides or {})).render(**asdict(context))


def email(language: str, context: MessageContext, overrides: dict[str, str] | None = None) -> Rendered:
    subject = " ".join(render("email_subject", language, context, overrides).split())[:200]
    return Rendered(
        subject=subject,
        text=render("email_text", language, context, overrides),
        html=render("email_html", language, context, overrides),
    )


def sms(language: str, context: MessageContext, overrides: dict[str, str] | None = None) -> str:
    return render("sms", language, context, overrides).strip()
