"""The archive's pure parts: SM3 against gmssl, the Merkle tree, the signed manifest and its verdicts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from gmssl import func
from gmssl import sm3 as gm_sm3

from chalicelib.audit import manifest, merkle, records
from chalicelib.audit.keys import data_day, manifest_day, manifest_key, object_key
from chalicelib.audit.verify import Found, verify_store
from chalicelib.crypto import sm2

PAIR = sm2.generate_keypair()
STORE = "demo-shanghai"
D1, D2, D3 = date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30)


def gm(data: bytes) -> bytes:
    return bytes.fromhex(gm_sm3.sm3_hash(func.bytes_to_list(data)))


@pytest.mark.parametrize("data", [b"", b"abc", b"a" * 64, bytes(range(256)) * 41])
def test_sm3_agrees_with_gmssl_the_independent_implementation(data: bytes) -> None:
    assert merkle.sm3(data) == gm(data)
    stream = merkle.Sm3Stream()
    for i in range(0, len(data), 100):
        stream.update(data[i : i + 100])
    assert stream.hexdigest() == gm(data).hex()


def test_the_merkle_root_follows_the_documented_construction_with_gmssl() -> None:
    entries = [(f"k{i}", gm(bytes([i]))) for i in range(5)]

    def leaf(k: str, d: bytes) -> bytes:
        return gm(b"\x00" + len(k).to_bytes(4, "big") + k.encode() + d)

    def node(a: bytes, b: bytes) -> bytes:
        return gm(b"\x01" + a + b)

    leaves = [leaf(k, d) for k, d in entries]
    expected = node(node(node(leaves[0], leaves[1]), node(leaves[2], leaves[3])), leaves[4])
    assert merkle.root(list(reversed(entries))) == expected  # sorted by key whatever the order given
    assert merkle.root([]) == gm(b"")
    assert merkle.root(entries[:1]) == leaves[0]
    # the key is bound into the leaf: same bytes under another name is another root
    assert merkle.root([("other", entries[0][1])]) != merkle.root(entries[:1])


def test_keys_round_trip() -> None:
    key = object_key(STORE, D1, "interactions", "inv-1")
    assert key == "demo-shanghai/2026/11/28/interactions/inv-1.jsonl.gz"
    assert data_day(key) == (STORE, D1)
    assert manifest_day(manifest_key(STORE, D2)) == (STORE, D2)
    assert data_day(manifest_key(STORE, D2)) is None
    with pytest.raises(ValueError):
        object_key(STORE, D1, "other", "x")


def _day_objects(day: date, n: int) -> dict[str, bytes]:
    return {object_key(STORE, day, "interactions", f"inv-{day:%d}-{i}"): f"{day}:{i}".encode() * 10 for i in range(n)}


def _chain(days: list[date], n: int = 3) -> tuple[dict[date, bytes], dict[str, Found]]:
    blobs: dict[date, bytes] = {}
    objects: dict[str, Found] = {}
    link = None
    for day in days:
        data = _day_objects(day, n)
        entries = [manifest.Entry(k, len(b), merkle.sm3(b).hex()) for k, b in data.items()]
        objects.update({k: Found(len(b), merkle.sm3(b).hex()) for k, b in data.items()})
        blob = manifest.build(
            store=STORE,
            day=day,
            entries=entries,
            previous=link,
            private_key=PAIR.private_key,
            public_key=PAIR.public_key,
            created_at=datetime(2026, 12, 1, tzinfo=UTC),
        )
        blobs[day] = blob
        link = manifest.Link(day, manifest.digest(blob))
    return blobs, objects


def kinds(verdicts: list, day: date) -> set[str]:  # type: ignore[type-arg]
    [v] = [v for v in verdicts if v.day == day]
    return {f.kind for f in v.findings}


def test_an_untouched_chain_verifies() -> None:
    blobs, objects = _chain([D1, D2, D3])
    verdicts = verify_store(STORE, blobs, objects, PAIR.public_key)
    assert [v.day for v in verdicts] == [D1, D2, D3] and all(v.ok and not v.findings for v in verdicts)
    m = manifest.parse(blobs[D2])
    assert m.previous == manifest.Link(D1, manifest.digest(blobs[D1]))
    assert m.signature_ok(PAIR.public_key) and sm2.verify(
        PAIR.public_key, manifest.signed_message(m.signed_bytes), m.signature
    )
    assert json.loads(blobs[D2])["public_key"] == PAIR.public_key


def test_each_tampering_is_named() -> None:
    blobs, objects = _chain([D1, D2, D3])
    k1 = sorted(k for k in objects if data_day(k) == (STORE, D2))[0]
    changed = dict(objects, **{k1: Found(objects[k1].size, "00" * 32)})
    assert kinds(verify_store(STORE, blobs, changed, PAIR.public_key), D2) == {"changed"}
    missing = {k: v for k, v in objects.items() if k != k1}
    assert kinds(verify_store(STORE, blobs, missing, PAIR.public_key), D2) == {"missing"}
    added = dict(objects, **{object_key(STORE, D2, "interactions", "intruder"): Found(3, "11" * 32)})
    assert kinds(verify_store(STORE, blobs, added, PAIR.public_key), D2) == {"added"}
    moved_key = object_key(STORE, D3, "interactions", "moved")
    moved = {k: v for k, v in objects.items() if k != k1} | {moved_key: objects[k1]}
    verdicts = verify_store(STORE, blobs, moved, PAIR.public_key)
    assert kinds(verdicts, D2) == {"missing"} and kinds(verdicts, D3) == {"reordered"}


def test_swapped_days_and_a_broken_chain_are_named() -> None:
    blobs, objects = _chain([D1, D2, D3])
    swapped = blobs | {D1: blobs[D2], D2: blobs[D1]}
    verdicts = verify_store(STORE, swapped, objects, PAIR.public_key)
    assert "reordered" in kinds(verdicts, D1) and "reordered" in kinds(verdicts, D2)
    assert "chain_broken" in kinds(verdicts, D2) | kinds(verdicts, D3)

    gap = {d: b for d, b in blobs.items() if d != D2}
    verdicts = verify_store(STORE, gap, objects, PAIR.public_key)
    assert kinds(verdicts, D2) == {"missing"} and kinds(verdicts, D3) == {"chain_broken"}

    # another chain for D1 (signed with the right key, e.g. re-sealed): D2's link no longer holds
    other, _ = _chain([D1], n=2)
    verdicts = verify_store(STORE, blobs | {D1: other[D1]}, objects, PAIR.public_key)
    assert "chain_broken" in kinds(verdicts, D2)


def test_a_forged_manifest_fails_its_signature_and_an_unknown_key_is_named() -> None:
    blobs, objects = _chain([D1])
    data = json.loads(blobs[D1])
    data["objects"] = data["objects"][:1]
    data["merkle_root"] = manifest.merkle_root([manifest.Entry(o["key"], o["size"], o["sm3"]) for o in data["objects"]])
    forged = manifest.canonical(data)
    assert {"bad_signature", "added"} <= kinds(verify_store(STORE, {D1: forged}, objects, PAIR.public_key), D1)
    other = sm2.generate_keypair()
    assert {"wrong_key", "bad_signature"} <= kinds(verify_store(STORE, blobs, objects, other.public_key), D1)
    assert kinds(verify_store(STORE, {D1: b"not json"}, objects, PAIR.public_key), D1) == {"unreadable"}


def test_an_unsealed_day_is_a_note_not_a_failure() -> None:
    blobs, objects = _chain([D1])
    later = D1 + timedelta(days=1)
    extra = {object_key(STORE, later, "transitions", "x"): Found(1, "22" * 32)}
    [_, v] = verify_store(STORE, blobs, objects | extra, PAIR.public_key)
    assert v.ok and {f.kind for f in v.findings} == {"unsealed"}


def test_records_mask_tax_ids_contacts_and_never_keep_a_secret() -> None:
    line = records.interaction(
        at=datetime(2026, 12, 1, tzinfo=UTC),
        store=STORE,
        provider="nuonuo",
        operation="issue",
        attempt=1,
        latency_ms=12,
        method="POST",
        url="https://x/open/v1/services?senid=1&appkey=AK&accessToken=TOKEN123",
        headers=[("X-Nuonuo-Sign", "SIGNATURE=="), ("accessToken", "TOKEN123"), ("userTax", "91310000MA1FL8XQ3B")],
        params={
            "order": {
                "buyer": {"tax_id": "91310000MA1FL8XQ3B", "email": "li.lei@example.com", "mobile": "13800138000"},
                "seller": {"account": "6222020202020202", "name": "上海示例"},
            }
        },
        body=b'{"taxnum":"91310000MA1FL8XQ3B"}',
        response_status=200,
        response_headers=[("Set-Cookie", "s=SESSION")],
        response_body=b"{}",
        outcome="ok",
        provider_code=None,
        message=None,
        error_class=None,
        keys={"order_key": "demo-shanghai:standard:1", "serial": "S1"},
        actor="worker:test",
        invocation="inv",
    )
    text = records.decode_lines(records.encode_lines([line]))[0]
    flat = json.dumps(text, ensure_ascii=False)
    secrets = ("TOKEN123", "SIGNATURE==", "SESSION", "91310000MA1FL8XQ3B", "li.lei@", "13800138000", "6222020202020202")
    for secret in secrets:
        assert secret not in flat
    assert text["request"]["params"]["order"]["buyer"]["tax_id"] == "9131**********XQ3B"
    assert text["request"]["params"]["order"]["seller"]["name"] == "上海示例"
    assert text["serials"] == ["S1"] and text["request_body_b64"]  # the exact body, base64
    assert records.encode_lines([line]) == records.encode_lines([line])  # deterministic bytes
