"""The daily manifest job (``app.archive_manifest``): seal each store's finished days, check the day before.

For each store with anything in the archive, every day from the one after its last manifest up to
yesterday (UTC; a day is sealed only ``GRACE`` after it ended, so an invocation that began before
midnight has flushed) gets a signed manifest (``chalicelib/audit/manifest.py``): the SM3 of each
object under the day's prefix, their Merkle root and the SM3 of the previous manifest. A day with no
object gets an empty manifest, so the chain has no gap. After sealing, the manifest the new ones
chain to is verified again against the objects as they are now (and its own link); a failure is
published to the alarm topic. At most ``MAX_DAYS`` days are sealed per store and run (catching up
after an outage takes a few runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools import Logger

from chalicelib.audit import manifest
from chalicelib.audit.keys import MANIFESTS, day_prefix, manifest_day, manifest_key, manifest_prefix
from chalicelib.audit.merkle import sm3
from chalicelib.audit.verify import DayVerdict, Found, verify_store
from chalicelib.services.ports import AlertPort

GRACE = timedelta(minutes=15)
MAX_DAYS = 31


class ArchiveStore(Protocol):
    def put(self, key: str, body: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def listing(self, prefix: str) -> list[tuple[str, int]]: ...
    def children(self, prefix: str) -> list[str]: ...
    def get_many(self, keys: Iterable[str]) -> Iterator[tuple[str, bytes]]: ...


class SigningKeyPort(Protocol):
    def pair(self) -> tuple[str, str]:
        """(private key hex, public key hex)."""
        ...


@dataclass
class StoreRun:
    store: str
    sealed: list[date] = field(default_factory=list)
    checked: DayVerdict | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ManifestJob:
    def __init__(
        self,
        *,
        archive: ArchiveStore,
        keys: SigningKeyPort,
        alerts: AlertPort,
        logger: Logger,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.archive = archive
        self.keys = keys
        self.alerts = alerts
        self.log = logger
        self.clock = clock

    def run(self) -> list[StoreRun]:
        target = (self.clock() - GRACE).date() - timedelta(days=1)
        return [self.seal(store, target) for store in self.stores()]

    def stores(self) -> list[str]:
        return [p.rstrip("/") for p in self.archive.children("")]

    # --- one store --------------------------------------------------------------------------------
    def seal(self, store: str, target: date) -> StoreRun:
        run = StoreRun(store)
        sealed = self.sealed_days(store)
        last = max((d for d in sealed if d <= target), default=None)
        start = last + timedelta(days=1) if last is not None else self.first_day(store)
        if start is None or start > target:
            return run
        private, public = self.keys.pair()
        link = manifest.Link(last, manifest.digest(self.archive.get(manifest_key(store, last)))) if last else None
        day = start
        while day <= target and len(run.sealed) < MAX_DAYS:
            blob = manifest.build(
                store=store,
                day=day,
                entries=self.entries(store, day),
                previous=link,
                private_key=private,
                public_key=public,
                created_at=self.clock(),
            )
            self.archive.put(manifest_key(store, day), blob)
            link = manifest.Link(day, manifest.digest(blob))
            run.sealed.append(day)
            day += timedelta(days=1)
        if run.sealed:
            self.log.info("archive days sealed", extra={"store_id": store, "days": [d.isoformat() for d in run.sealed]})
        if last is not None:
            run.checked = self.check(store, last, public, sealed)
        return run

    def sealed_days(self, store: str) -> list[date]:
        days = [manifest_day(k) for k, _ in self.archive.listing(manifest_prefix(store))]
        return sorted(d[1] for d in days if d is not None and d[0] == store)

    def first_day(self, store: str) -> date | None:
        """The earliest day with a data object (three listings: years, months, days)."""
        prefix = f"{store}/"
        parts: list[str] = []
        for _ in range(3):
            levels = [p for p in self.archive.children(prefix) if p[len(prefix) :].rstrip("/").isdigit()]
            if not levels:
                return None
            prefix = levels[0]
            parts.append(prefix.rstrip("/").rsplit("/", 1)[1])
        return date(int(parts[0]), int(parts[1]), int(parts[2]))

    def entries(self, store: str, day: date) -> list[manifest.Entry]:
        keys = [k for k, _ in self.archive.listing(day_prefix(store, day)) if f"/{MANIFESTS}/" not in k]
        return [manifest.Entry(k, len(b), sm3(b).hex()) for k, b in self.archive.get_many(keys)]

    def check(self, store: str, day: date, public_key: str, sealed: list[date]) -> DayVerdict:
        """Verify ``day``'s manifest against the objects now in the bucket (and its link to the one before)."""
        manifests = {day: self.archive.get(manifest_key(store, day))}
        before = max((d for d in sealed if d < day), default=None)
        if before is not None:
            manifests[before] = self.archive.get(manifest_key(store, before))
        objects = {e.key: Found(e.size, e.sm3) for e in self.entries(store, day)}
        [verdict] = verify_store(store, manifests, objects, public_key, chain_from=before)
        if not verdict.ok:
            problems = "\n".join(f"- {f.kind}: {f.key}: {f.detail}" for f in verdict.findings if f.failure)
            self.log.error("archive manifest fails verification", extra={"store_id": store, "day": day.isoformat()})
            self.alerts.publish(
                f"einvoice: archive manifest of {store} {day} fails verification",
                f"The audit archive of store {store} for {day} no longer matches its signed manifest:\n{problems}\n"
                "See docs/operator.md (audit archive) before anything else is changed.",
            )
        return verdict
