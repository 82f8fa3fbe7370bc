"""The admin pages' rendering: Jinja2 with autoescaping, and charts drawn server-side as inline SVG.

No CDN, no JavaScript: every chart is an ``<svg>`` element built here from numbers, its labels
escaped (:func:`markupsafe.escape`), so the page works offline and with scripts disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from chalicelib.domain.counters import yuan
from chalicelib.services.dashboard import DashboardView

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
WIDTH, HEIGHT, PAD = 640, 180, 28
LABEL_CHARS = 24  # a share chart's row label (SKUs may be long): cut, the whole in its <title>


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "svg"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yuan"] = lambda f: f"¥{yuan(int(f)):,}"
    env.filters["percent"] = lambda r: "—" if r is None else f"{Decimal(r) * 100:.1f} %"
    env.filters["seconds"] = seconds_label
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(f"admin/{template}").render(**context)


def seconds_label(label: str | None) -> str:
    if label is None:
        return "—"
    if label == "inf":
        return "> 24 h"
    s = int(label)
    if s < 60:
        return f"≤ {s} s"
    if s < 3600:
        return f"≤ {s // 60} min"
    return f"≤ {s // 3600} h"


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, unit: str = "") -> Markup:
    """Vertical bars, one per label (days), the largest value on top."""
    top = max([*values, 0]) or 1
    n = max(len(values), 1)
    step = (WIDTH - 2 * PAD) / n
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (HEIGHT - 2 * PAD) * (value / top)
        x = PAD + i * step
        y = HEIGHT - PAD - h
        tip = escape(f"{label}: {value:,.2f}{unit}" if unit else f"{label}: {value:,.0f}")
        bars.append(
            f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" class="bar">'
            f"<title>{tip}</title></rect>"
        )
    ticks = []
    for i, label in enumerate(labels):
        if n <= 14 or i % max(n // 7, 1) == 0:
            x = PAD + i * step + step / 2
            ticks.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" class="tick">{escape(label[5:])}</text>')
    peak = escape(f"{top:,.2f}{unit}" if unit else f"{top:,.0f}")
    return Markup(  # noqa: S704 - every interpolated text above is escape()d, numbers are formatted
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<text x="{PAD}" y="14" class="tick">{peak}</text>' + "".join(bars) + "".join(ticks) + "</svg>"
    )


def share_chart(title: str, rows: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars: each row's share of the whole (tax codes, SKUs by amount)."""
    whole = sum(v for _, v in rows) or 1
    row_h = 22
    height = max(len(rows), 1) * row_h + 8
    parts = []
    for i, (label, value) in enumerate(rows):
        share = value / whole
        w = (WIDTH - 260) * share
        y = 4 + i * row_h
        shown = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
        parts.append(
            f'<text x="0" y="{y + 15}" class="tick"><title>{escape(label)}</title>{escape(shown)}</text>'
            f'<rect x="180" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" class="bar"/>'
            f'<text x="{186 + w:.1f}" y="{y + 15}" class="tick">{share * 100:.1f} %</text>'
        )
    return Markup(  # noqa: S704 - every interpolated text above is escape()d, numbers are formatted
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>' + "".join(parts) + "</svg>"
    )


def dashboard_page(view: DashboardView, *, csrf: str, days: int) -> str:
    labels = [d.day for d in view.days]
    return render(
        "dashboard.html",
        view=view,
        csrf=csrf,
        days=days,
        count_chart=bar_chart("每日开票数 invoices per day", labels, [d.count("issued") for d in view.days]),
        amount_chart=bar_chart(
            "每日开票金额 amount per day", labels, [float(yuan(d.fen_issued)) for d in view.days], unit=" ¥"
        ),
        share=share_chart("税收分类编码占比 share by tax code", [(code, f) for code, _, f in view.tax_share]),
        sku_chart=share_chart("商品 SKU 占比 share by SKU", [(s.sku, s.fen) for s in view.sku_share]),
    )
