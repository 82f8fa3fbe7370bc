"""The archive's object keys: one format, one place.

::

    {store}/{yyyy}/{mm}/{dd}/interactions/{invocation}.jsonl.gz   tax calls of one invocation and store
    {store}/{yyyy}/{mm}/{dd}/transitions/{invocation}.jsonl.gz    status changes of one invocation and store
    {store}/manifests/{yyyy}/{mm}/{dd}.json                        the signed manifest of one day

Days are UTC days. A store id never contains ``/`` (``chalicelib.domain.models.Store``).
"""

from __future__ import annotations

import re
from datetime import date

STREAMS = ("interactions", "transitions")
SUFFIX = ".jsonl.gz"
MANIFESTS = "manifests"
_DATA = re.compile(r"^(?P<store>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<stream>[a-z]+)/(?P<name>[^/]+)$")
_MANIFEST = re.compile(r"^(?P<store>[^/]+)/manifests/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})\.json$")


def day_prefix(store: str, day: date) -> str:
    """Every data object of ``store`` on ``day`` starts with this (the manifest's listing)."""
    return f"{store}/{day:%Y/%m/%d}/"


def object_key(store: str, day: date, stream: str, invocation: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"unknown archive stream {stream!r}")
    return f"{day_prefix(store, day)}{stream}/{invocation}{SUFFIX}"


def manifest_prefix(store: str) -> str:
    return f"{store}/{MANIFESTS}/"


def manifest_key(store: str, day: date) -> str:
    return f"{manifest_prefix(store)}{day:%Y/%m/%d}.json"


def data_day(key: str) -> tuple[str, date] | None:
    """(store, day) of a data object key; None for anything else."""
    m = _DATA.match(key)
    if not m:
        return None
    return m["store"], date(int(m["y"]), int(m["m"]), int(m["d"]))


def manifest_day(key: str) -> tuple[str, date] | None:
    """(store, day) of a manifest key; None for anything else."""
    m = _MANIFEST.match(key)
    if not m:
        return None
    return m["store"], date(int(m["y"]), int(m["m"]), int(m["d"]))
