"""What one attempt or check did, for the worker to act on (delete, hide for a while, re-queue)."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.order_state import OrderStatus


@dataclass(frozen=True)
class PendingCheck:
    """An accepted request waiting for its result under the claim that sent it."""

    order_key: str
    claim_id: str
    serial: str
    store_id: str
    pin: str
    sends: int
    provider_ref: str = ""

    def as_message(self) -> dict[str, str]:
        return {
            "order_key": self.order_key,
            "claim_id": self.claim_id,
            "serial": self.serial,
            "sends": str(self.sends),
            "provider_ref": self.provider_ref,
        }

    @classmethod
    def from_message(cls, store_id: str, pin: str, entry: dict[str, str]) -> PendingCheck:
        return cls(
            order_key=str(entry["order_key"]),
            claim_id=str(entry["claim_id"]),
            serial=str(entry["serial"]),
            store_id=store_id,
            pin=pin,
            sends=int(entry.get("sends", "0") or 0),
            provider_ref=str(entry.get("provider_ref", "")),
        )


@dataclass(frozen=True)
class Outcome:
    """``retry_in``: hide this message that many seconds and let it come back; None: done with it.
    ``check``: look up this accepted request later; ``requeue``: (order key, delay) messages to send;
    ``dead_letter``: the schedule's horizon is over — move the message to the dead-letter queue."""

    order_key: str
    status: OrderStatus | None  # None: the message was not about a known record (yet)
    retry_in: int | None = None
    check: PendingCheck | None = None
    requeue: tuple[tuple[str, int], ...] = ()
    dead_letter: bool = False
    invoice_number: str | None = None
    detail: str = ""
    #: the attempt's claim had been taken over: it wrote nothing (the newer attempt decides)
    lost: bool = False
