"""pip-audit of the virtualenv: a known vulnerability fails, and a run that audited nothing says so.

``pip-audit`` asks a vulnerability service about every package installed: OSV (its default) or PyPI's JSON
API (``--vulnerability-service pypi``). When neither answers — a machine that reaches the package
registry's index and files only — it skips each package ("Dependency not found on PyPI and could not
be audited") and still prints "No known vulnerabilities found" with exit status 0: a pass that checked
nothing. This step tries OSV, then PyPI, and reads pip-audit's JSON:

- a known vulnerability (not in :data:`IGNORED`) → the table, exit 1;
- nothing audited by either service → a clear message that this is *not* a pass, exit 0 (CI is not
  broken by the network it runs on), or exit 1 with ``PIP_AUDIT_STRICT=1``;
- some packages skipped → their count on stderr, and the result of the others.

``python -m infra.security_audit`` (``make lint``); docs/operator.md → "Security checks".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SERVICES = ("osv", "pypi")
#: Vulnerability ids accepted, each with its reason (none today).
IGNORED: dict[str, str] = {}


def audit(service: str) -> dict[str, Any] | None:
    """pip-audit's JSON report with ``service`` (None when pip-audit itself failed to run)."""
    pip_audit = Path(sys.executable).with_name("pip-audit")
    # The virtualenv it runs in: what requirements*.txt installed, transitive packages included, read
    # from the installed metadata (``-r`` would resolve the files again in a scratch venv: ~60 s).
    args = [str(pip_audit), "--progress-spinner", "off", "-f", "json", "--vulnerability-service", service]
    for vuln in IGNORED:
        args += ["--ignore-vuln", vuln]
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        print(f"pip-audit ({service}) did not run: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return report


def summary(report: dict[str, Any]) -> tuple[int, int, list[tuple[str, str, str]]]:
    """(packages audited, packages skipped, [(package, version, vulnerability id)])."""
    deps = report.get("dependencies", [])
    skipped = sum(1 for d in deps if d.get("skip_reason"))
    found = [(d["name"], d.get("version", "?"), v["id"]) for d in deps for v in d.get("vulns", [])]
    return len(deps) - skipped, skipped, found


def main() -> int:
    tried: list[str] = []
    for service in SERVICES:
        report = audit(service)
        if report is None:
            tried.append(f"{service}: pip-audit failed")
            continue
        audited, skipped, found = summary(report)
        if found:
            print(f"pip-audit ({service}): {len(found)} known vulnerabilities", file=sys.stderr)
            for name, version, vuln in found:
                print(f"  {name} {version}: {vuln}", file=sys.stderr)
            return 1
        if audited:
            note = f", {skipped} could not be audited" if skipped else ""
            print(f"pip-audit ({service}): no known vulnerabilities in {audited} packages{note}")
            return 0
        tried.append(f"{service}: 0 of {skipped} packages audited")
    strict = os.environ.get("PIP_AUDIT_STRICT") == "1"
    print(
        "pip-audit: NOT AUDITED — no vulnerability service answered from this machine "
        f"({'; '.join(tried)}). This is not a pass: run `python -m infra.security_audit` where OSV "
        "(api.osv.dev) or PyPI's JSON API is reachable (docs/operator.md, Security checks)"
        + ("" if strict else "; PIP_AUDIT_STRICT=1 makes this an error."),
        file=sys.stderr,
    )
    return 1 if strict else 0


if __name__ == "__main__":
    sys.exit(main())
