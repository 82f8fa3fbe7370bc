"""`make setup`: create .venv and install everything, saying what it does and how far it is.

Run by the machine's python3.12 before .venv exists, so it uses the standard library only. Steps:

1. create .venv (without pip when this interpreter has a pip that can install into another
   environment, ``pip --python``: that skips ensurepip's ~4 s);
2. make sure every pinned package is in the wheel cache, a folder of wheels shared by every clone
   on this machine (``$EINVOICE_WHEELHOUSE``, default ``~/.cache/einvoice/wheels``): the first setup
   downloads them once, later ones — another clone, changed pins — find them there. (pip's own HTTP
   cache does not help where a proxy strips the caching headers, as on CI machines);
3. install them from that folder alone (``--no-index``: no network) and without compiling bytecode;
4. install the project itself (editable, the ``einvoice`` command);
5. compile the bytecode in the background, at low priority (what is imported first compiles itself).

pip's own output goes to ``.local/setup.log``; the screen gets one line a step (updated in place on a
terminal). ``EINVOICE_COMPILE=0`` skips step 5.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
STEPS = 5
#: A pip that can install into another environment (``--python``, pip 22.3).
PIP_WITH_PYTHON_OPTION = (22, 3)


class SetupFailed(SystemExit):
    pass


class Screen:
    """One line a step; on a terminal the line shows live progress until the step is done."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.step = 0
        self.title = ""
        self.started = time.monotonic()

    def begin(self, title: str, *, again: bool = False) -> None:
        """Start the next step (``again``: the current one anew, its number kept)."""
        self.step += 0 if again else 1
        self.title = title
        self.started = time.monotonic()
        self._line(f"{title} …", final=not self.live)

    def progress(self, detail: str) -> None:
        if self.live:
            self._line(f"{self.title} … {detail}", final=False)

    def done(self, summary: str) -> None:
        self._line(f"{summary} ({time.monotonic() - self.started:.1f} s)", final=True)

    def _line(self, text: str, *, final: bool) -> None:
        prefix = f"[{self.step}/{STEPS}] "
        if self.live:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + (prefix + text)[:width] + ("\n" if final else ""))
        else:
            self.stream.write(prefix + text + "\n")
        self.stream.flush()


class Pip:
    """pip, its output appended to the log, each line handed to a progress callback."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log

    def run(self, args: Sequence[str], on_line: Callable[[str], None] = lambda _line: None) -> bool:
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n$ pip {' '.join(args)}\n")
            log.flush()
            env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(
                [*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                on_line(line.rstrip())
            return proc.wait() == 0


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def _own_pip() -> list[str] | None:
    """This interpreter's pip, when it can install into another environment."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    if _version(out.stdout.split()[1]) < PIP_WITH_PYTHON_OPTION:
        return None
    return [sys.executable, "-m", "pip"]


def wheelhouse() -> Path:
    configured = os.environ.get("EINVOICE_WHEELHOUSE")
    if configured:
        return Path(configured).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "einvoice" / "wheels"


def _pins_digest(requirements: Path) -> str:
    """What the set of wheels depends on: the pinned files, the interpreter and the platform."""
    digest = hashlib.sha256(f"{sys.version_info[:2]} {sys.platform} {platform.machine()}".encode())
    for name in ("requirements.txt", "requirements-dev.txt"):
        path = requirements.parent / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _short(path: Path) -> str:
    home = Path.home()
    if path.is_relative_to(ROOT):
        return str(path.relative_to(ROOT))
    return "~/" + str(path.relative_to(home)) if path.is_relative_to(home) else str(path)


class Setup:
    def __init__(self, venv: Path, requirements: Path, log: Path, screen: Screen) -> None:
        self.venv = venv
        self.python = venv / "bin" / "python"
        self.requirements = requirements
        self.log = log
        self.screen = screen
        self.wheels = wheelhouse()
        self.pip: Pip | None = None

    # -- steps ------------------------------------------------------------------------------------
    def create_venv(self) -> None:
        s = self.screen
        if self.python.exists():
            s.begin(f"reusing {_short(self.venv)}")
            self.pip = Pip([str(self.python), "-m", "pip"], self.log)
            s.done(f"{_short(self.venv)} exists (Python {platform.python_version()})")
            return
        s.begin(f"creating {_short(self.venv)} with Python {platform.python_version()} ({sys.executable})")
        own = _own_pip()
        args = [sys.executable, "-m", "venv", *(["--without-pip"] if own else []), str(self.venv)]
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n$ {' '.join(args)}\n")
            log.flush()
            if subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, check=False).returncode:
                raise self.failed("python3.12 -m venv failed")
        if own:  # pip itself arrives with the packages (chalice needs it)
            self.pip = Pip([*own, "--python", str(self.python)], self.log)
        else:
            self.pip = Pip([str(self.python), "-m", "pip"], self.log)
        s.done(f"created {_short(self.venv)}")

    def fetch(self) -> int:
        """Every pinned package as a wheel in the wheel cache; returns how many wheels the pins need."""
        s = self.screen
        marker = self._marker()
        if marker.exists():
            wanted = json.loads(marker.read_text())
            if all((self.wheels / name).exists() for name in wanted):
                s.begin(f"looking for the packages in the wheel cache {_short(self.wheels)}")
                s.done(f"all {len(wanted)} packages are in the wheel cache {_short(self.wheels)}")
                return len(wanted)
        return self._download()

    def _download(self, *, again: bool = False) -> int:
        s = self.screen
        s.begin(f"downloading the packages into the wheel cache {_short(self.wheels)} (once per machine)", again=again)
        saved: list[str] = []
        fetched = 0
        current = ""

        def on_line(line: str) -> None:
            nonlocal fetched, current
            if m := re.match(r"\s*(?:Collecting|Processing) (\S+)", line):
                current = Path(m.group(1)).name
            elif m := re.match(r"\s*Downloading (\S+)(?: \((.+)\))?", line):
                fetched += 1
                current = f"{m.group(1)} {m.group(2) or ''}".strip()
            elif m := re.match(r"\s*(?:Saved|File was already downloaded) (\S+\.whl)", line):
                saved.append(Path(m.group(1)).name)
            s.progress(f"{len(saved)} ready, {fetched} downloaded — {current}")

        assert self.pip is not None
        self.wheels.mkdir(parents=True, exist_ok=True)
        args = ["wheel", "-r", str(self.requirements), "pip", "-w", str(self.wheels), "--find-links", str(self.wheels)]
        if not self.pip.run(args, on_line):
            raise self.failed("downloading the packages failed")
        self._marker().write_text(json.dumps(sorted(set(saved))))
        s.done(f"{len(set(saved))} packages in the wheel cache, {fetched} of them downloaded now")
        return len(set(saved))

    def install(self, count: int) -> None:
        s = self.screen
        s.begin(f"installing {count} packages from the wheel cache")
        resolved = 0
        installing = 0

        def on_line(line: str) -> None:
            nonlocal resolved, installing
            if line.lstrip().startswith("Processing "):
                resolved += 1
                s.progress(f"resolving {resolved}/{count}")
            elif line.startswith("Installing collected packages:"):
                installing = line.count(",") + 1
                s.progress(f"unpacking {installing} packages")

        assert self.pip is not None
        args = ["install", "--no-index", "--find-links", str(self.wheels), "--no-compile", "-r", str(self.requirements)]
        if not self.pip.run([*args, "pip"], on_line):
            # A wheel went missing since the marker was written (a cleaned cache): fetch and retry once.
            count = self._download(again=True)
            s.begin(f"installing {count} packages from the wheel cache", again=True)
            if not self.pip.run([*args, "pip"], on_line):
                raise self.failed("installing the packages failed")
        if installing == 0:
            s.done(f"all {count} packages were installed already")
        else:
            s.done(f"installed {count} packages" + (f" ({installing} of them new)" if installing < count else ""))

    def install_project(self) -> None:
        s = self.screen
        s.begin("installing the project (editable) and the `einvoice` command")
        venv_pip = Pip([str(self.python), "-m", "pip"], self.log)
        # setuptools is in .venv already (chalice needs it): no isolated build environment to fill.
        if not venv_pip.run(["install", "--no-deps", "--no-build-isolation", "--no-compile", "-e", str(ROOT)]):
            raise self.failed("installing the project failed")
        s.done("installed the project: .venv/bin/einvoice")

    def compile_in_background(self) -> None:
        s = self.screen
        s.begin("compiling bytecode")
        if os.environ.get("EINVOICE_COMPILE", "1") == "0":
            s.done("skipped bytecode compilation (EINVOICE_COMPILE=0): modules compile when first imported")
            return
        site = next((self.venv / "lib").glob("python3*/site-packages"))
        out = self.log.with_name("compile.log")
        argv = [str(self.python), "-m", "compileall", "-q", "-j", "0", str(site)]
        if shutil.which("nice"):
            argv = ["nice", "-n", "10", *argv]
        with out.open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        s.done(f"compiling bytecode in the background (pid {proc.pid}, log {_short(out)}); nothing waits for it")

    # -- helpers ----------------------------------------------------------------------------------
    def _marker(self) -> Path:
        return self.wheels / f".pins-{_pins_digest(self.requirements)}.json"

    def failed(self, what: str) -> SetupFailed:
        tail = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        return SetupFailed(f"{what}; the last lines of {_short(self.log)}:\n  " + "\n  ".join(tail))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make setup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", default=str(ROOT / ".venv"))
    parser.add_argument("--requirements", default=str(ROOT / "requirements-dev.txt"))
    parser.add_argument("--log", default=str(ROOT / ".local" / "setup.log"))
    parser.add_argument("--stamp", help="file to touch when everything is installed")
    args = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 12):
        raise SetupFailed(f"setup needs Python 3.12 (the Lambda runtime), not {platform.python_version()}")
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"make setup, {time.strftime('%Y-%m-%d %H:%M:%S')}\n", encoding="utf-8")
    started = time.monotonic()
    screen = Screen(sys.stdout)
    setup = Setup(Path(args.venv), Path(args.requirements), log, screen)
    try:
        setup.wheels.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: a cache inside the clone still serves its next setup
        setup.wheels = log.parent / "wheels"
    setup.create_venv()
    count = setup.fetch()
    setup.install(count)
    setup.install_project()
    setup.compile_in_background()
    if args.stamp:
        Path(args.stamp).touch()
    print(f"setup done in {time.monotonic() - started:.0f} s; pip's own output: {_short(log)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
