"""``infra.security_audit``: a vulnerability fails, a run that audited nothing says so (and fails only when strict)."""

from __future__ import annotations

from typing import Any

import pytest

from infra import security_audit

SKIPPED = {"name": "jinja2", "skip_reason": "Dependency not found on PyPI and could not be audited: jinja2 (3.1.6)"}
CLEAN = {"name": "boto3", "version": "1.44.5", "vulns": []}
VULNERABLE = {"name": "jinja2", "version": "3.1.0", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}]}


def reports(monkeypatch: pytest.MonkeyPatch, by_service: dict[str, dict[str, Any] | None]) -> list[str]:
    asked: list[str] = []

    def audit(service: str) -> dict[str, Any] | None:
        asked.append(service)
        return by_service[service]

    monkeypatch.setattr(security_audit, "audit", audit)
    return asked


def test_summary_counts_audited_skipped_and_found() -> None:
    assert security_audit.summary({"dependencies": [SKIPPED, CLEAN, VULNERABLE]}) == (
        2,
        1,
        [("jinja2", "3.1.0", "GHSA-h5c8-rqwp-cp95")],
    )


def test_a_known_vulnerability_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    reports(monkeypatch, {"osv": {"dependencies": [CLEAN, VULNERABLE]}, "pypi": None})
    assert security_audit.main() == 1
    assert "GHSA-h5c8-rqwp-cp95" in capsys.readouterr().err


def test_osv_unreachable_falls_back_to_pypi(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = reports(monkeypatch, {"osv": None, "pypi": {"dependencies": [CLEAN, SKIPPED]}})
    assert security_audit.main() == 0
    assert asked == ["osv", "pypi"]
    assert "no known vulnerabilities in 1 packages, 1 could not be audited" in capsys.readouterr().out


@pytest.mark.parametrize(("strict", "status"), [("", 0), ("1", 1)])
def test_nothing_audited_is_said_and_fails_only_when_strict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], strict: str, status: int
) -> None:
    monkeypatch.setenv("PIP_AUDIT_STRICT", strict)
    reports(monkeypatch, {"osv": None, "pypi": {"dependencies": [SKIPPED]}})
    assert security_audit.main() == status
    err = capsys.readouterr().err
    assert "NOT AUDITED" in err and "0 of 1 packages audited" in err
