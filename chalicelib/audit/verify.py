"""Offline verification of pulled archive days: pure, over what was pulled and one trusted public key.

Input per store: the manifests found (by the day their place names), the data objects found (key →
size and SM3) and the trusted public key. Output: one :class:`DayVerdict` per day, each finding
named by its kind:

- ``changed``: an object's bytes differ from its manifest entry;
- ``missing``: a manifest entry with no object; ``added``: an object no manifest lists;
- ``reordered``: a manifest at another day's place, an entry outside its day or out of key order,
  an object that moved to another day or name (its digest is listed under another key);
- ``chain_broken``: a manifest whose ``previous`` is not the SM3 of the day-before manifest (changed,
  deleted, or a new chain started);
- ``bad_signature`` / ``wrong_key``: the SM2 signature fails under the trusted key, or the manifest
  names another key; ``merkle_mismatch``: the root is not that of the entries; ``unreadable``;
- ``unsealed`` (a note, not a failure): a day with objects and no manifest, after the last manifest
  (not sealed yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from chalicelib.audit.keys import data_day, day_prefix
from chalicelib.audit.manifest import Manifest, ManifestError, merkle_root, parse

FAILURES = frozenset(
    {
        "changed",
        "missing",
        "added",
        "reordered",
        "chain_broken",
        "bad_signature",
        "wrong_key",
        "merkle_mismatch",
        "unreadable",
    }
)


@dataclass(frozen=True)
class Found:
    size: int
    sm3: str


@dataclass(frozen=True)
class Finding:
    kind: str
    key: str
    detail: str

    @property
    def failure(self) -> bool:
        return self.kind in FAILURES


@dataclass
class DayVerdict:
    store: str
    day: date
    objects: int = 0
    bytes: int = 0
    merkle_root: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.failure for f in self.findings)

    def add(self, kind: str, key: str, detail: str) -> None:
        self.findings.append(Finding(kind, key, detail))


def verify_store(
    store: str,
    manifests: Mapping[date, bytes],
    objects: Mapping[str, Found],
    public_key: str,
    *,
    chain_from: date | None = None,
) -> list[DayVerdict]:
    """Every day of ``store`` that has a manifest or an object, in order. ``chain_from``: a manifest
    of this day is context only (the link before the first pulled day): checked, not reported."""
    by_day: dict[date, dict[str, Found]] = {}
    for key, found in objects.items():
        place = data_day(key)
        if place is not None and place[0] == store:
            by_day.setdefault(place[1], {})[key] = found
    verdicts: dict[date, DayVerdict] = {}
    parsed: dict[date, Manifest] = {}
    for day in sorted(set(manifests) | set(by_day)):
        v = verdicts[day] = DayVerdict(store, day)
        held = by_day.get(day, {})
        v.objects, v.bytes = len(held), sum(f.size for f in held.values())
        if day in manifests:
            m = _manifest(v, manifests[day], public_key)
            if m is not None:
                parsed[day] = m
    last_sealed = max(parsed, default=None)
    expected_elsewhere: dict[str, tuple[str, date]] = {}
    for day, m in parsed.items():
        for e in m.entries:
            expected_elsewhere[e.sm3] = (e.key, day)
    for day, v in verdicts.items():
        m = parsed.get(day)
        if m is None:
            if day in manifests:
                continue  # unreadable: already named
            if last_sealed is None or day > last_sealed:
                v.add("unsealed", day_prefix(store, day), "no manifest yet: this day is not sealed")
            else:
                v.add("missing", day_prefix(store, day), "no manifest for this day, though later days are sealed")
            continue
        _objects(v, m, by_day.get(day, {}), expected_elsewhere)
    _chain(verdicts, parsed)
    return [v for d, v in sorted(verdicts.items()) if d != chain_from]


def _manifest(v: DayVerdict, raw: bytes, public_key: str) -> Manifest | None:
    key = f"{v.store}/manifests/{v.day:%Y/%m/%d}.json"
    try:
        m = parse(raw)
    except ManifestError as exc:
        v.add("unreadable", key, str(exc))
        return None
    v.merkle_root = m.merkle_root
    if m.day != v.day or m.store != v.store:
        v.add("reordered", key, f"this is the manifest of {m.store} {m.day}, found at {v.store} {v.day}")
    if m.public_key.lower() != public_key.lower():
        v.add("wrong_key", key, f"signed under {m.public_key[:16]}…, not the trusted key {public_key[:16]}…")
    if not m.signature_ok(public_key):
        v.add("bad_signature", key, "the SM2 signature does not verify under the trusted public key")
    keys = [e.key.encode("utf-8") for e in m.entries]
    if keys != sorted(keys):
        v.add("reordered", key, "the manifest's entries are not in key order")
    if merkle_root(m.entries) != m.merkle_root:
        v.add("merkle_mismatch", key, "the Merkle root is not that of the listed entries")
    prefix = day_prefix(m.store, m.day)
    for e in m.entries:
        if not e.key.startswith(prefix):
            v.add("reordered", e.key, f"listed in the manifest of {m.day} but outside that day")
    return m


def _objects(v: DayVerdict, m: Manifest, found: Mapping[str, Found], elsewhere: Mapping[str, tuple[str, date]]) -> None:
    expected = {e.key: e for e in m.entries if e.key.startswith(day_prefix(v.store, v.day))}
    for key, e in expected.items():
        got = found.get(key)
        if got is None:
            v.add("missing", key, f"listed in the manifest (SM3 {e.sm3[:16]}…), not found")
        elif got.sm3 != e.sm3 or got.size != e.size:
            v.add("changed", key, f"SM3 {got.sm3[:16]}… ({got.size} B), manifest says {e.sm3[:16]}… ({e.size} B)")
    for key, got in found.items():
        if key in expected:
            continue
        origin = elsewhere.get(got.sm3)
        if origin is not None:
            v.add("reordered", key, f"this is {origin[0]} (of {origin[1]}), moved here")
        else:
            v.add("added", key, "not listed in the manifest of this day")


def _chain(verdicts: Mapping[date, DayVerdict], parsed: Mapping[date, Manifest]) -> None:
    days = sorted(parsed)
    for i, day in enumerate(days):
        m, v = parsed[day], verdicts[day]
        link = m.previous
        if i == 0:
            if link is not None and link.day >= day:
                v.add("chain_broken", m.key, f"the previous link points to {link.day}, not to an earlier day")
            continue
        before = days[i - 1]
        if link is None:
            v.add("chain_broken", m.key, f"starts a new chain, though {before} has a manifest")
        elif link.day != before:
            if before < link.day < day:
                v.add("chain_broken", m.key, f"links to {link.day}, whose manifest is missing")
            else:
                v.add("chain_broken", m.key, f"links to {link.day}; the manifest before it is of {before}")
        elif link.sm3 != parsed[before].sm3:
            v.add("chain_broken", m.key, f"the manifest of {before} is not the one this day was chained to")
