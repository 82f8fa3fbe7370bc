"""Status sync: each issued invoice's platform status reconciled with the ledger (sweeper, CLI, callbacks).

What the platform may say about an invoice we recorded as ``issued`` (blue) or ``red_issued`` (red):

==================  ===================================================================================
platform            what the sync does
==================  ===================================================================================
issued, same no.    ``synced_at`` / ``platform_status`` written (``annotate``: no status change)
voiding (31)        recorded (``platform_status = voiding``); the next sync sees the end
voided (3)          the state machine's ``platform_voided`` (→ ``voided``) **and an alert**: someone
                    voided it outside this service (the platform's workbench)
another number      recorded (``platform_invoice_number``) and alerted, never changed silently
not found / failed  recorded (``platform_status = missing | failed``) and alerted
a red we don't      a Nuonuo callback for a red invoice whose blue (``oldEleInvoiceNumber``) is ours but
know (callback)     whose serial is not: recorded on the blue (``external_reds``) and alerted; the blue's
                    status stays (its refund book does not know the amount); a blue we do not
                    hold: alerted all the same
==================  ===================================================================================

The sweeper's cadence (:func:`due_now`): once every :data:`SYNC_EVERY_MINUTES`, each store's records
created in the last :data:`SYNC_DAYS` days (index ``by_store``, a key-range query per store — never a
table scan; the status filter is applied by DynamoDB after reading) in ``issued`` / ``red_issued``
whose ``synced_at`` is older than :data:`SYNC_STALE_HOURS`, at most :data:`SYNC_BATCH` per run. AWS
calls per run: one Scan of the (small) stores table, ⌈records in window / 1 MB⌉ queries per store, one
``UpdateItem`` per record synced; tax calls: one query per 50 records per store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import NotFound, SignatureInvalid
from chalicelib.domain.order_keys import store_of
from chalicelib.domain.order_state import OrderEvent, OrderStatus
from chalicelib.services.exchange import Exchange, Session
from chalicelib.services.ports import AlertPort, CredentialsPort, Fields, OrderRecord, ProviderPort, StorePort
from chalicelib.services.red_ports import RedLedger
from chalicelib.taxapi import nuonuo_mapping
from chalicelib.taxapi.base import InvoiceResult, InvoiceStatus

#: The sweeper's sync window and cadence (the one place these live).
SYNC_DAYS = 30
SYNC_STALE_HOURS = 24
SYNC_EVERY_MINUTES = 60
SYNC_BATCH = 200
#: Records whose platform status is reconciled.
SYNCABLE: frozenset[OrderStatus] = frozenset({OrderStatus.ISSUED, OrderStatus.RED_ISSUED})
#: A Nuonuo callback's record is looked for among the store's records of the last this many days (a
#: ``by_store`` key-range read: the ledger has no index by serial). Issue results arrive within minutes;
#: a later status change of an older invoice is acknowledged and left to the hourly sync (SYNC_DAYS).
CALLBACK_DAYS = 2
#: The header carrying a callback's signature (*assumed*: the reference documents no callback format;
#: see docs/integrators.md "Nuonuo callbacks").
CALLBACK_SIGN_HEADER = "x-nuonuo-sign"


def callback_signature(app_secret: str, body: bytes) -> str:
    """Base64(HMAC-SHA1(appSecret, body)): the request signature's algorithm over the exact bytes."""
    return base64.b64encode(hmac.new(app_secret.encode(), body, hashlib.sha1).digest()).decode()


def iso(when: datetime) -> str:
    """The ledger's ``created_at`` text (``2026-12-02T01:02:03.000000Z``)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def due_now(now: float) -> bool:
    """Whether the sweeper's run at ``now`` (epoch seconds, every minute) also syncs."""
    return int(now // 60) % SYNC_EVERY_MINUTES == 0


class SyncLedger(RedLedger, Protocol):
    """What the sync reads and writes besides the order ledger."""

    def store_records(
        self, store_id: str, *, since: str, statuses: frozenset[OrderStatus] | None = None, limit: int = 1000
    ) -> list[OrderRecord]: ...

    def annotate(self, order_key: str, *, fields: Fields, statuses: frozenset[OrderStatus]) -> bool: ...


@dataclass(frozen=True)
class Synced:
    """One record's reconciliation: ``action`` is ``unchanged``, ``voided``, ``recorded`` (a difference
    written and alerted) or ``skipped`` (not an issued record)."""

    order_key: str
    status: str
    platform: str
    action: str
    detail: str = ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StatusSync:
    def __init__(
        self,
        *,
        ledger: SyncLedger,
        stores: StorePort,
        credentials: CredentialsPort,
        providers: ProviderPort,
        exchange: Exchange,
        alerts: AlertPort,
        logger: Logger,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.ledger, self.stores, self.credentials = ledger, stores, credentials
        self.providers, self.exchange, self.alerts, self.log, self.clock = providers, exchange, alerts, logger, clock

    # --- on demand ---------------------------------------------------------------------------------
    def sync_keys(self, keys: Iterable[str]) -> list[Synced]:
        records = []
        for key in keys:
            record = self.ledger.get_order(key)
            if record is None:
                raise NotFound(f"no order record {key}")
            records.append(record)
        return self.sync_records(records)

    def sync_store(self, store_id: str, since: datetime) -> list[Synced]:
        return self.sync_records(self.ledger.store_records(store_id, since=iso(since), statuses=SYNCABLE))

    def sweep(self, store_ids: Iterable[str], *, limit: int = SYNC_BATCH) -> int:
        """The sweeper's slow pass (see the module): the number of records synced."""
        now = self.clock()
        since, stale = iso(now - timedelta(days=SYNC_DAYS)), (now - timedelta(hours=SYNC_STALE_HOURS)).isoformat()
        done = 0
        for store_id in store_ids:
            if done >= limit:
                break
            found = self.ledger.store_records(store_id, since=since, statuses=SYNCABLE, limit=limit * 5)
            due = [r for r in found if (r.text("synced_at") or "") < stale][: limit - done]
            if due:
                try:
                    done += len(self.sync_records(due))
                except Exception:  # one store's platform down: the others are still synced
                    self.log.exception("status sync of a store failed", extra={"store_id": store_id})
        return done

    def sync_records(self, records: list[OrderRecord]) -> list[Synced]:
        out: list[Synced] = []
        by_store: dict[str, list[OrderRecord]] = {}
        for r in records:
            if r.status not in SYNCABLE or not r.text("serial"):
                out.append(Synced(r.order_key, r.status.value, "", "skipped", "not an issued invoice"))
                continue
            by_store.setdefault(r.store_id, []).append(r)
        for store_id, group in by_store.items():
            store = self.stores.get(store_id)
            credentials = self.credentials.load(store)
            session = Session(store, credentials, self.providers.get(store, credentials))
            serials = tuple(str(r.text("serial")) for r in group)
            found = self.exchange.query(session, serials, self.clock(), {"store_id": store_id, "op": "sync"})
            out.extend(self.apply(r, found.get(str(r.text("serial")))) for r in group)
        return out

    # --- provider callbacks (Nuonuo ``callBackUrl``) ----------------------------------------------------
    def nuonuo_callback(self, store_id: str, body: bytes, signature: str | None) -> list[Synced]:
        """Verify and apply a Nuonuo callback (``SignatureInvalid`` when it cannot be verified): the body
        is one ``queryInvoiceResult`` item or a list of them (*assumed*), each applied as a sync would."""
        store = self.stores.get(store_id)
        if str(store.provider.provider.value) != "nuonuo":
            raise SignatureInvalid("the store does not issue through Nuonuo", code="unknown_key")
        secret = self.credentials.load(store).require("app_secret")
        if not signature or not hmac.compare_digest(callback_signature(secret, body), signature.strip()):
            raise SignatureInvalid("bad callback signature", code="bad_signature")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise SignatureInvalid("the callback body is not JSON", code="malformed_body") from None
        items = parsed if isinstance(parsed, list) else [parsed]
        since = self.clock() - timedelta(days=CALLBACK_DAYS)
        records = {
            str(r.text("serial")): r
            for r in self.ledger.store_records(store_id, since=iso(since), statuses=SYNCABLE, limit=100_000)
            if r.text("serial")
        }
        out: list[Synced] = []
        for item in items:
            result = nuonuo_mapping.invoice_result(item)
            record = records.get(result.serial)
            if record is not None:
                out.append(self.apply(record, result, source="callback"))
                continue
            blue_number = str(item.get("oldEleInvoiceNumber") or "") if isinstance(item, dict) else ""
            red = isinstance(item, dict) and str(item.get("invoiceType")) == "2"
            if red and blue_number and result.invoice_number and result.status is InvoiceStatus.ISSUED:
                window = self.clock() - timedelta(days=SYNC_DAYS)  # rare: a wider look for the blue
                found = self.external_red(store_id, blue_number, result.invoice_number, since=window)
                if found is None:  # not among our recent records: still told, never dropped
                    detail = f"red invoice {result.invoice_number} reverses {blue_number}, not issued by this service"
                    self.log.warning("unknown red invoice", extra={"store_id": store_id, "detail": detail})
                    self._publish(f"Unknown red invoice: {store_id}", detail)
                    found = Synced(result.serial, "", result.status.value, "alerted", detail)
                out.append(found)
                continue
            # not issued on our side yet (the worker's own query records it), or not ours
            out.append(Synced(result.serial, "", result.status.value, "skipped", "no issued record under this serial"))
        return out

    # --- one record --------------------------------------------------------------------------------
    def apply(self, record: OrderRecord, result: InvoiceResult | None, *, source: str = "query") -> Synced:
        """Reconcile ``record`` with what the platform says (``None``: it knows nothing of the serial)."""
        now = self.clock()
        key, ours = record.order_key, record.text("invoice_number") or ""
        base: dict[str, str | int | None] = {"synced_at": now.isoformat(), "sync_source": source}
        if result is None:
            return self._differs(record, "missing", {**base, "platform_status": "missing"}, "not found on the platform")
        platform = result.status.value
        if result.status is InvoiceStatus.VOIDED:
            written = self.ledger.transition(
                key,
                OrderEvent.PLATFORM_VOIDED,
                now=now.timestamp(),
                fields={**base, "platform_status": platform, "last_error": "voided on the platform"},
            )
            if written.ok:
                self._alert(record, f"voided on the tax platform outside this service ({ours})")
                return Synced(key, OrderStatus.VOIDED.value, platform, "voided", "voided on the platform")
            return Synced(key, record.status.value, platform, "skipped", "the record changed meanwhile")
        if result.status is InvoiceStatus.PENDING:  # issued here, still issuing there: not what we hold
            return self._differs(
                record, platform, {**base, "platform_status": platform}, "the platform reports pending"
            )
        if result.status is InvoiceStatus.FAILED:
            return self._differs(record, platform, {**base, "platform_status": platform}, "the platform reports failed")
        if result.status is InvoiceStatus.ISSUED and result.invoice_number and result.invoice_number != ours:
            fields = {**base, "platform_status": platform, "platform_invoice_number": result.invoice_number}
            return self._differs(record, platform, fields, f"the platform holds number {result.invoice_number}")
        self.ledger.annotate(key, fields={**base, "platform_status": platform}, statuses=SYNCABLE)
        return Synced(key, record.status.value, platform, "unchanged")

    def external_red(self, store_id: str, blue_number: str, red_number: str, *, since: datetime) -> Synced | None:
        """A red invoice we did not issue reverses our blue ``blue_number``: recorded on it, alerted."""
        blue = next(
            (
                r
                for r in self.ledger.store_records(store_id, since=iso(since), statuses=SYNCABLE)
                if r.text("invoice_number") == blue_number
            ),
            None,
        )
        if blue is None:
            return None
        known = blue.text("external_reds") or ""
        reds = sorted({*filter(None, known.split(",")), red_number})
        fields: dict[str, str | int | None] = {"external_reds": ",".join(reds), "synced_at": self.clock().isoformat()}
        return self._differs(blue, "reversed", fields, f"reversed on the platform by red invoice {red_number}")

    def _differs(self, record: OrderRecord, platform: str, fields: Fields, detail: str) -> Synced:
        self.ledger.annotate(record.order_key, fields=fields, statuses=SYNCABLE)
        self._alert(record, detail)
        return Synced(record.order_key, record.status.value, platform, "recorded", detail)

    def _alert(self, record: OrderRecord, detail: str) -> None:
        self.log.warning("platform status differs", extra={"order_key": record.order_key, "detail": detail})
        self._publish(
            f"Invoice status differs: {store_of(record.order_key)}",
            f"{record.order_key} ({record.text('invoice_number') or '-'}): {detail}. "
            "Recorded on the ledger; nothing was changed silently (docs/operator.md 'Status sync').",
        )

    def _publish(self, subject: str, message: str) -> None:
        try:
            self.alerts.publish(subject[:100], message)
        except Exception:
            self.log.exception("could not publish an alert", extra={"subject": subject[:100]})
