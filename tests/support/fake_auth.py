"""In-memory fakes of the credential store and the counters, passing the adapters' contract tests
(``tests/contract/test_auth_contract.py``)."""

from __future__ import annotations

from chalicelib.domain.counters import CounterDelta, DayCounts
from chalicelib.services.auth import ApiKeyRecord, OperatorRecord, SessionRecord


class FakeAuthStore:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKeyRecord] = {}
        self.operators: dict[str, OperatorRecord] = {}
        self.sessions: dict[str, SessionRecord] = {}
        self.failures: dict[tuple[str, int], int] = {}

    def get_api_key(self, store_id: str) -> ApiKeyRecord | None:
        return self.keys.get(store_id)

    def put_api_key(self, record: ApiKeyRecord) -> None:
        if not (record.previous_hash and record.previous_valid_until):  # as stored: both or neither
            record = ApiKeyRecord(record.store_id, record.current_hash, float(int(record.created_at)))
        else:
            record = ApiKeyRecord(
                record.store_id,
                record.current_hash,
                float(int(record.created_at)),
                record.previous_hash,
                float(int(record.previous_valid_until)),
            )
        self.keys[record.store_id] = record

    def get_operator(self, name: str) -> OperatorRecord | None:
        return self.operators.get(name)

    def put_operator(self, record: OperatorRecord) -> None:
        self.operators[record.name] = OperatorRecord(
            record.name, record.password_hash, record.stores, float(int(record.created_at))
        )

    def put_session(self, record: SessionRecord) -> None:
        self.sessions[record.token_hash] = SessionRecord(
            record.token_hash, record.operator, record.stores, record.csrf, float(int(record.expires_at))
        )

    def get_session(self, token_hash: str) -> SessionRecord | None:
        return self.sessions.get(token_hash)

    def delete_session(self, token_hash: str) -> None:
        self.sessions.pop(token_hash, None)

    def add_login_failure(self, name: str, window: int, *, expires_at: float) -> int:
        self.failures[(name, window)] = self.failures.get((name, window), 0) + 1
        return self.failures[(name, window)]

    def login_failures(self, name: str, window: int) -> int:
        return self.failures.get((name, window), 0)


class FakeCounters:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], DayCounts] = {}

    def add(self, delta: CounterDelta) -> None:
        was = self.items.get((delta.store_id, delta.day), DayCounts(delta.day))
        counts = dict(was.counts)
        counts[delta.outcome] = counts.get(delta.outcome, 0) + 1
        codes = dict(was.tax_codes)
        for code, n, f in delta.tax_codes:
            old = codes.get(code, (0, 0))
            codes[code] = (old[0] + n, old[1] + f)
        latency = dict(was.latency)
        if delta.latency:
            latency[delta.latency] = latency.get(delta.latency, 0) + 1
        keys = was.exception_keys | ({delta.exception_key} if delta.exception_key else set())
        self.items[(delta.store_id, delta.day)] = DayCounts(
            delta.day, counts, was.fen_issued + delta.fen, codes, latency, frozenset(keys)
        )

    def days(self, store_id: str, first: str, last: str) -> list[DayCounts]:
        return [v for (s, d), v in sorted(self.items.items()) if s == store_id and first <= d <= last]
