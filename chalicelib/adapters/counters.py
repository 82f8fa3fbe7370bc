"""The dashboard's counter items in the ledger table: one per store and China date, incremented atomically.

``pk = counters#<store>``, ``sk = day#YYYY-MM-DD``; attributes (all numbers, made by ``ADD``):
``n_<outcome>`` (issued / rejected / failed / blocked), ``fen_issued``, ``tcn#<tax code>`` and
``tcf#<tax code>`` (lines and fen per tax code), per SKU slot ``skn#<slot>`` / ``skf#<slot>`` /
``skh#<slot>`` (lines, fen, sum of the SKUs' hashes) and ``skl#<slot>`` (the slot's first SKU, a
string set once with ``if_not_exists``: the bound of ``chalicelib.domain.counters``), ``lat#<bucket>``
(the latency histogram of ``chalicelib.domain.counters``), and ``exception_keys`` (a string set).
One UpdateItem per change; a period is read with one Query per store (the sort key's range), never a
scan. The items carry no ``store_id`` / ``created_at`` / ``due``, so they stay out of the ledger's indexes.
"""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.counters import CounterDelta, DayCounts, sku_reading, sku_slots


def _key(store_id: str, day: str) -> dict[str, Any]:
    return {"pk": {"S": f"counters#{store_id}"}, "sk": {"S": f"day#{day}"}}


def update_of(delta: CounterDelta) -> dict[str, Any]:
    """The UpdateItem arguments (without the table) of one delta."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    adds: list[str] = []
    sets: list[str] = []

    def add(attr: str, value: dict[str, Any]) -> None:
        i = len(adds)
        names[f"#a{i}"] = attr
        values[f":v{i}"] = value
        adds.append(f"#a{i} :v{i}")

    def set_once(attr: str, value: str) -> None:
        i = len(sets)
        names[f"#s{i}"] = attr
        values[f":s{i}"] = {"S": value}
        sets.append(f"#s{i} = if_not_exists(#s{i}, :s{i})")

    add(f"n_{delta.outcome}", {"N": "1"})
    if delta.fen:
        add("fen_issued", {"N": str(delta.fen)})
    for code, lines, fen in delta.tax_codes:
        add(f"tcn#{code}", {"N": str(lines)})
        add(f"tcf#{code}", {"N": str(fen)})
    for slot in sku_slots(delta.skus):
        add(f"skn#{slot.slot}", {"N": str(slot.lines)})
        add(f"skf#{slot.slot}", {"N": str(slot.fen)})
        if slot.hashes:
            add(f"skh#{slot.slot}", {"N": str(slot.hashes)})
        set_once(f"skl#{slot.slot}", slot.label)
    if delta.latency:
        add(f"lat#{delta.latency}", {"N": "1"})
    if delta.exception_key:
        add("exception_keys", {"SS": [delta.exception_key]})
    return {
        "Key": _key(delta.store_id, delta.day),
        "UpdateExpression": ("SET " + ", ".join(sets) + " " if sets else "") + "ADD " + ", ".join(adds),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def counts_of(item: dict[str, Any]) -> DayCounts:
    counts: dict[str, int] = {}
    lines: dict[str, int] = {}
    fens: dict[str, int] = {}
    latency: dict[str, int] = {}
    slots: dict[str, list[int]] = {}  # slot → [lines, fen, hashes]
    for name, value in item.items():
        if "N" not in value:
            continue
        number = int(value["N"])
        if name[:4] in ("skn#", "skf#", "skh#"):
            slots.setdefault(name[4:], [0, 0, 0])["nfh".index(name[2])] = number
        elif name.startswith("n_"):
            counts[name[2:]] = number
        elif name.startswith("tcn#"):
            lines[name[4:]] = number
        elif name.startswith("tcf#"):
            fens[name[4:]] = number
        elif name.startswith("lat#"):
            latency[name[4:]] = number
    skus: dict[str, tuple[int, int]] = {}
    for slot, (n, f, h) in slots.items():
        sku = sku_reading(slot, item.get(f"skl#{slot}", {}).get("S", ""), n, h)
        was = skus.get(sku, (0, 0))
        skus[sku] = (was[0] + n, was[1] + f)
    return DayCounts(
        day=item["sk"]["S"].removeprefix("day#"),
        counts=counts,
        fen_issued=int(item.get("fen_issued", {}).get("N", "0")),
        tax_codes={code: (lines[code], fens.get(code, 0)) for code in lines},
        latency=latency,
        exception_keys=frozenset(item.get("exception_keys", {}).get("SS", [])),
        skus=skus,
    )


class DynamoCounters:
    def __init__(self, table_name: str) -> None:
        self.table = table_name

    def add(self, delta: CounterDelta) -> None:
        with aws.unavailable("counters"):
            aws.client("dynamodb").update_item(TableName=self.table, **update_of(delta))

    def days(self, store_id: str, first: str, last: str) -> list[DayCounts]:
        found: list[DayCounts] = []
        paginator = aws.client("dynamodb").get_paginator("query")
        with aws.unavailable("counters"):
            for page in paginator.paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
                ExpressionAttributeValues={
                    ":pk": {"S": f"counters#{store_id}"},
                    ":a": {"S": f"day#{first}"},
                    ":b": {"S": f"day#{last}"},
                },
            ):
                found.extend(counts_of(i) for i in page.get("Items", []))
        return found
