"""An in-memory link store with the DynamoDB store's semantics (``chalicelib/adapters/links.py``).

It passes the same contract suite (``tests/contract/test_link_store_contract.py``).
"""

from __future__ import annotations

import dataclasses
import threading

from chalicelib.services.links import LinkRecord


class FakeLinkStore:
    def __init__(self) -> None:
        self.links: dict[str, LinkRecord] = {}
        self._lock = threading.Lock()

    def put(self, link: LinkRecord) -> bool:
        with self._lock:
            if link.token_hash in self.links:
                return False
            self.links[link.token_hash] = link
            return True

    def get(self, token_hash: str) -> LinkRecord | None:
        return self.links.get(token_hash)

    def of_order(self, order_key: str) -> list[LinkRecord]:
        found = [r for r in self.links.values() if r.order_key == order_key]
        return sorted(found, key=lambda r: (r.issued_at, r.token_hash))

    def revoke(self, token_hash: str, *, now: float) -> bool:
        with self._lock:
            record = self.links.get(token_hash)
            if record is None or record.revoked_at is not None:
                return False
            self.links[token_hash] = dataclasses.replace(record, revoked_at=round(now, 3))
            return True
