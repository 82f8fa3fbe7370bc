"""The browser tier's setup: Debian's ``chromium`` and ``chromium-driver`` (``make browser``; ``make test`` runs it).

Standard library only. When ``/usr/bin/chromium``, ``/usr/bin/chromedriver`` or the CJK font
(``fonts-wqy-zenhei``, for readable screenshots) is missing:

- as root (CI on a clean machine): ``apt-get update && apt-get install -y --no-install-recommends
  chromium chromium-driver fonts-wqy-zenhei`` — Debian's packages, never a browser download of Selenium Manager's;
- otherwise: how to install them is printed and the step succeeds; the browser tests then skip with
  that reason (``tests/browser/conftest.py``), unless ``CI`` is set, where they fail.

Exit codes: 0 ready (or not root, told how), 1 the install failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: A CJK font too (16 MB): the pages are Chinese, and a screenshot without one shows empty boxes.
PACKAGES = ("chromium", "chromium-driver", "fonts-wqy-zenhei")
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
INSTALL_HINT = (
    "the browser tier needs Debian's chromium and chromium-driver: "
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium chromium-driver fonts-wqy-zenhei"
)


def missing() -> list[str]:
    """The browser files that are not there (empty: the tier can run)."""
    return [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]


def font_missing() -> bool:
    """No CJK font: the tier runs, but its screenshots show boxes for Chinese text."""
    return not FONT.exists()


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run(argv: list[str], log: Path) -> int:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def main(argv: list[str] | None = None) -> int:
    log = Path(os.environ.get("EINVOICE_STATE_DIR", ".local")) / "browser-setup.log"
    absent = missing() + ([str(FONT)] if font_missing() else [])
    if not absent:
        print("browser tier: chromium, chromedriver and a CJK font present")
        return 0
    if not _is_root() or shutil.which("apt-get") is None:
        print(f"browser tier: {', '.join(absent)} missing; {INSTALL_HINT} (the browser tests skip until then)")
        return 0
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"browser tier: installing {' '.join(PACKAGES)} with apt-get (log: {log}) …", flush=True)
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        if _run(step, log) != 0:
            print(f"browser tier: {' '.join(step)} failed; see {log}", file=sys.stderr)
            return 1
    if missing():
        print(f"browser tier: still missing {', '.join(missing())} after the install; see {log}", file=sys.stderr)
        return 1
    print(f"browser tier: {' '.join(PACKAGES)} installed ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
