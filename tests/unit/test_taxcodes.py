"""The tax classification table: the shipped data file and the validation of replacement files."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.errors import ConfigurationError
from chalicelib.domain.models import ZeroRateFlag
from chalicelib.domain.taxcodes import DEFAULT_TABLE_PATH, VAT_RATES, TaxCodeTable, TaxCodeTableError
from chalicelib.sandbox import rules as sandbox_rules

CATERING = "3070401000000000000"
LODGING = "3070402000000000000"
SOFTWARE = "3040201010000000000"


@pytest.fixture(scope="module")
def table() -> TaxCodeTable:
    return TaxCodeTable.default()


def _doc(*entries: dict[str, Any], version: str = "t1") -> str:
    return json.dumps({"version": version, "entries": list(entries)}, ensure_ascii=False)


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": CATERING, "name": "餐饮服务", "short_name": "餐饮服务", "rates": ["0.06"]}
    entry.update(overrides)
    return entry


def test_shipped_table_loads_with_a_version_and_the_known_codes(table: TaxCodeTable) -> None:
    assert table.version
    assert 20 <= len(table) <= 40
    assert table.short_name(CATERING) == "餐饮服务"
    assert table.short_name(LODGING) == "住宿服务"
    assert table.short_name(SOFTWARE) == "信息技术服务"


def test_software_services_allow_six_percent_not_thirteen(table: TaxCodeTable) -> None:
    assert table.allowed(SOFTWARE, D("0.06"))
    assert table.allowed(SOFTWARE, D("0.060"))  # same value, other spelling
    assert not table.allowed(SOFTWARE, D("0.13"))


def test_every_shipped_entry_is_consistent(table: TaxCodeTable) -> None:
    for entry in table:
        assert len(entry.code) == 19 and entry.code.isdigit()
        assert entry.rates <= VAT_RATES
        assert (D(0) in entry.rates) == bool(entry.zero_rate_flags)


def test_general_rates_by_family(table: TaxCodeTable) -> None:
    goods13 = ["1030201010000000000", "1040201010000000000", "1090505000000000000"]
    goods9 = ["1030102010100000000", "1060201010000000000", "1010101010000000000"]
    assert all(table.allowed(c, D("0.13")) for c in goods13)
    assert all(table.allowed(c, D("0.09")) and not table.allowed(c, D("0.13")) for c in goods9)


SANDBOX_COPY = Path(sandbox_rules.__file__).with_name("taxcodes.json")
#: the table's zero-rate flag names → the sandbox's (the wire's) codes
WIRE_FLAGS = {"exempt": "1", "not_taxable": "2", "zero_rate": "3"}


def sandbox_entries_of(domain_file: dict[str, Any]) -> list[dict[str, Any]]:
    """The sandbox file's ``codes`` for a validator table file: the same entries, the platform's names."""
    return [
        {
            "ssflbm": e["code"],
            "spmc": e["name"],
            "sphfwjc": e["short_name"],
            "sl": e["rates"],
            "lslbs": [WIRE_FLAGS[f] for f in e.get("zero_rate_flags", [])],
            **({"note": e["note"]} if e.get("note") else {}),
        }
        for e in domain_file["entries"]
    ]


def test_the_sandbox_copy_holds_the_same_table() -> None:
    """One table as data: the sandbox's file is the validator's, entry for entry, under the platform's
    field names (change both together)."""
    domain = json.loads(DEFAULT_TABLE_PATH.read_text(encoding="utf-8"))
    sandbox = json.loads(SANDBOX_COPY.read_text(encoding="utf-8"))
    assert sandbox["version"] == domain["version"]
    assert sandbox["codes"] == sandbox_entries_of(domain)


def test_the_sandbox_reads_the_table_as_the_validator_does(table: TaxCodeTable) -> None:
    """Two independent loaders, one reading: same codes, names, short names, rates and zero-rate flags."""
    sandbox = sandbox_rules.TaxCodeTable.load()
    assert [c.code for c in sandbox.all()] == [e.code for e in table]
    for entry in table:
        code = sandbox.get(entry.code)
        assert code is not None
        assert (code.name, code.short_name, code.rates) == (entry.name, entry.short_name, entry.rates)
        assert code.zero_rate_flags == {WIRE_FLAGS[f.value] for f in entry.zero_rate_flags}


def test_corrected_entries(table: TaxCodeTable) -> None:
    flour = table.lookup("1030101010000000000")
    assert flour is not None and (flour.name, flour.short_name) == ("小麦粉", "谷物加工品")
    assert not table.allowed(LODGING, D("0.05"))  # 5 % is 不动产租赁 / 简易计税, not lodging
    for entry in table:  # the small-scale rates and exemption are open to every code
        assert {D("0.03"), D("0.01"), D(0)} <= entry.rates, entry.code
        assert entry.zero_rate_flags == {ZeroRateFlag.EXEMPT}, entry.code
        assert D("0.05") not in entry.rates, entry.code


def test_unknown_code_is_not_allowed_anything(table: TaxCodeTable) -> None:
    assert table.lookup("9999999999999999999") is None
    assert not table.allowed("9999999999999999999", D("0.06"))
    assert table.short_name("9999999999999999999") is None
    assert "9999999999999999999" not in table


def test_round_trip_through_to_json(table: TaxCodeTable) -> None:
    again = TaxCodeTable.from_json(table.to_json())
    assert again.version == table.version
    assert list(again) == list(table)


def test_shipped_file_is_the_file_next_to_the_module() -> None:
    raw = json.loads(DEFAULT_TABLE_PATH.read_text(encoding="utf-8"))
    assert raw["entries"][0]["rates"] and all(isinstance(r, str) for e in raw["entries"] for r in e["rates"])


def test_zero_rate_entry_carries_its_flags() -> None:
    t = TaxCodeTable.from_json(_doc(_entry(rates=["0.09", "0"], zero_rate_flags=["exempt"])))
    entry = t.lookup(CATERING)
    assert entry is not None
    assert entry.allows_flag(ZeroRateFlag.EXEMPT)
    assert not entry.allows_flag(ZeroRateFlag.NOT_TAXABLE)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({"entries": [_entry()]}), "version"),
        (json.dumps({"version": "v", "entries": []}), "entries"),
        (json.dumps({"version": "v", "entries": [_entry()], "extra": 1}), "unknown top-level"),
        (_doc(_entry(code="307040100000000000")), r"entries\[0\]: 'code' must be a string of 19 digits"),
        (_doc(_entry(), _entry()), r"entries\[1\] \(code 3070401000000000000\): duplicate of entries\[0\]"),
        (_doc(_entry(rates=["0.07"])), r"entries\[0\] \(code 3070401000000000000\): rate '0.07' is not a VAT rate"),
        (
            '{"version": "v", "entries": [{"code": "3070401000000000000", "name": "n", "short_name": "s", '
            '"rates": [0.06]}]}',
            "not a JSON number",
        ),
        (_doc(_entry(rates=[])), "non-empty list"),
        (_doc(_entry(rates=["0.06", "0.060"])), "listed twice"),
        (_doc(_entry(rates=["abc"])), "not a number"),
        (_doc(_entry(rates=["NaN"])), "not a number"),
        (_doc(_entry(rates=["0"])), "needs 'zero_rate_flags'"),
        (_doc(_entry(zero_rate_flags=["exempt"])), "'0' is not among the rates"),
        (_doc(_entry(rates=["0"], zero_rate_flags=["free"])), "'free' is not one of"),
        (_doc(_entry(short_name="")), "short_name"),
        (_doc(_entry(short_name="*餐饮*")), r"must not contain '\*'"),
        (_doc(_entry(name=" ")), "'name'"),
        (_doc(_entry(colour="blue")), "unknown key"),
        (_doc({"code": CATERING, "name": "x"}), "missing"),
        (_doc("not an object"), "must be an object"),
    ],
)
def test_bad_files_are_refused_with_a_message_naming_the_entry(document: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        TaxCodeTable.from_json(document)


def test_from_json_accepts_bytes() -> None:
    t = TaxCodeTable.from_json(_doc(_entry(), version="2026.2").encode("utf-8"))
    assert t.version == "2026.2"
    assert len(t) == 1


def test_table_errors_are_configuration_errors_and_value_errors() -> None:
    # `einvoice taxcodes import` catches ValueError; the services catch ConfigurationError.
    with pytest.raises(TaxCodeTableError) as info:
        TaxCodeTable.from_json("{}")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ConfigurationError)
