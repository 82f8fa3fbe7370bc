"""The audit report as a PDF (reportlab platypus): tables, a daily bar chart, a chart of exception causes.

Text is set in the invoice font (``chalicelib/pdf/fonts.py``: WenQuanYi Micro Hei, embedded as a
subset), so Chinese names and reasons print; a character the font lacks prints as 〓.
"""

from __future__ import annotations

import io
from decimal import Decimal

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from chalicelib.pdf.fonts import font_name, printable
from chalicelib.reports.audit import AuditReport
from chalicelib.reports.facts import plain

WIDTH = A4[0] - 30 * mm


def _styles() -> tuple[ParagraphStyle, ParagraphStyle, ParagraphStyle]:
    font = font_name()
    body = ParagraphStyle("body", fontName=font, fontSize=8.5, leading=11)
    head = ParagraphStyle("head", fontName=font, fontSize=12, leading=16, spaceBefore=8, spaceAfter=4)
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=20, spaceAfter=6)
    return title, head, body


def _esc(text: object) -> str:
    return printable(str(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _table(rows: list[list[str]], widths: list[float] | None = None) -> Table:
    font = font_name()
    grid = Table([[printable(c) for c in row] for row in rows], colWidths=widths, repeatRows=1)
    grid.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), font),
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return grid


def _daily_chart(report: AuditReport) -> Drawing:
    font = font_name()
    drawing = Drawing(WIDTH, 170, initialFontName=font, initialFontSize=7)
    counts = VerticalBarChart()
    counts.x, counts.y, counts.width, counts.height = 35, 30, WIDTH / 2 - 50, 110
    counts.data = [[r.issued for r in report.days] or [0]]
    counts.categoryAxis.categoryNames = [f"{r.day.day}" if r.day.day % 5 == 1 else "" for r in report.days] or [""]
    counts.categoryAxis.labels.fontName = counts.valueAxis.labels.fontName = font
    counts.categoryAxis.labels.fontSize = counts.valueAxis.labels.fontSize = 6
    counts.bars[0].fillColor = colors.HexColor("#3b6ea5")
    amounts = VerticalBarChart()
    amounts.x, amounts.y, amounts.width, amounts.height = WIDTH / 2 + 35, 30, WIDTH / 2 - 50, 110
    amounts.data = [[float(r.issued_total) for r in report.days] or [0.0]]
    amounts.categoryAxis.categoryNames = counts.categoryAxis.categoryNames
    amounts.categoryAxis.labels.fontName = amounts.valueAxis.labels.fontName = font
    amounts.categoryAxis.labels.fontSize = amounts.valueAxis.labels.fontSize = 6
    amounts.bars[0].fillColor = colors.HexColor("#d08c2e")
    drawing.add(counts)
    drawing.add(amounts)
    drawing.add(String(35, 150, "每日开票数量 invoices issued per day", fontName=font, fontSize=8))
    drawing.add(String(WIDTH / 2 + 35, 150, "每日开票金额 amount issued per day (CNY)", fontName=font, fontSize=8))
    return drawing


def _causes_chart(report: AuditReport) -> Drawing:
    font = font_name()
    causes = report.causes[:10]
    height = 30 + 16 * max(1, len(causes))
    drawing = Drawing(WIDTH, height + 20, initialFontName=font, initialFontSize=7)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 150, 10, WIDTH - 190, height
    chart.data = [[n for _, n in reversed(causes)] or [0]]
    chart.categoryAxis.categoryNames = [printable(c[:32]) for c, _ in reversed(causes)] or ["(none)"]
    chart.categoryAxis.labels.fontName = chart.valueAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = chart.valueAxis.labels.fontSize = 6.5
    chart.bars[0].fillColor = colors.HexColor("#b94a48")
    chart.valueAxis.valueMin = 0
    drawing.add(chart)
    drawing.add(String(0, height + 10, "异常原因 exceptions by cause", fontName=font, fontSize=8))
    return drawing


def _money(value: Decimal) -> str:
    return plain(value)


def audit_pdf(report: AuditReport) -> bytes:
    title, head, body = _styles()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Audit report {report.store_id} {report.month}",
        author="einvoice",
        initialFontName=font_name(),  # else reportlab adds Helvetica (not embedded) to every page
        initialFontSize=8,
    )
    m = report.month
    story: list[object] = [
        Paragraph(_esc(f"开票审计报告 Audit report — {report.store_id} — {m}"), title),
        Paragraph(
            _esc(
                f"Month {m} in UTC{m.utc_offset_hours:+d} ({m.start:%Y-%m-%d %H:%M} – {m.end:%Y-%m-%d %H:%M} UTC); "
                f"generated {report.generated_at}. Amounts in CNY; reversals are negative."
            ),
            body,
        ),
        Paragraph(_esc("汇总 Summary"), head),
        _table(
            [["", "count", "amount excl. tax", "tax", "total"]]
            + [[t.label, str(t.count), _money(t.amount), _money(t.tax), _money(t.total)] for t in report.summary]
        ),
        Paragraph(_esc("每日 Daily"), head),
        _daily_chart(report),
        Paragraph(_esc("异常 Exceptions and their causes"), head),
        _causes_chart(report),
        _table([["cause", "count"]] + [[c, str(n)] for c, n in report.causes] or [["(none)", "0"]]),
        Spacer(1, 4),
    ]
    if report.exceptions:
        rows = [["received", "order", "status", "cause", "detail"]]
        rows += [[e.received, e.order_key, e.status, e.cause, e.detail[:70]] for e in report.exceptions]
        story.append(_table(rows, [28 * mm, 52 * mm, 20 * mm, 28 * mm, WIDTH - 128 * mm]))
        if report.exceptions_total > len(report.exceptions):
            story.append(
                Paragraph(_esc(f"… {report.exceptions_total - len(report.exceptions)} more (see reconcile)"), body)
            )
    story += [
        Paragraph(_esc("状态变化 Status changes"), head),
        Paragraph(_esc(report.history_source), body),
        _table([["status now", "records"]] + [[s, str(n)] for s, n in report.statuses]),
    ]
    if report.changes:
        story.append(Spacer(1, 4))
        story.append(_table([["change", "count"]] + [[c, str(n)] for c, n in report.changes[:40]]))
    story.append(Paragraph(_esc("操作员 Operators"), head))
    if report.operators:
        rows = [["operator", "action", "order", "at"]] + [
            [o.operator, o.action, o.order_key, o.at] for o in report.operators
        ]
        story.append(_table(rows[:300]))
    else:
        story.append(Paragraph(_esc("no operator action this month"), body))
    story.append(Paragraph(_esc("存档清单 Manifest roots (UTC days)"), head))
    rows = [["day", "merkle root", "objects", "previous (SM3, first 16)"]]
    rows += [[r.day, r.merkle_root or "no manifest", str(r.objects), r.previous] for r in report.manifests]
    story.append(_table(rows, [20 * mm, 110 * mm, 14 * mm, WIDTH - 144 * mm]))
    doc.build(story)
    return out.getvalue()
