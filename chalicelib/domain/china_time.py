"""China Standard Time, the one clock of an invoice: 开票日期, the month a report covers, the day a
counter counts (UTC+8, no daylight saving). The sandbox keeps its own copy on purpose: it stands in for
the tax platform and shares no code with the client."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


def china_date(text: str | None) -> str | None:
    """An ISO time as its China date (``YYYY-MM-DD``); a naive time is taken as China time already;
    text that is not a time gives its first ten characters, nothing gives None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text[:10]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA_TZ)
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d")
