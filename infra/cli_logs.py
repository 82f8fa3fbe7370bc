"""``einvoice logs``: pull the audit archive of a store and verify it offline (docs/finance.md).

- ``logs pull --store S --from DATE --to DATE --out DIR`` copies every archive object and manifest of
  those days (and the manifest of the day before, for the chain's first link) into DIR, keeping the
  bucket's key layout. Resumable: a file already there whose SM3 is its manifest's is not fetched
  again. It checks each object against its manifest as it arrives; a progress bar shows the objects.
- ``logs verify DIR`` needs nothing but DIR and the trusted public key (``--public-key``, else
  ``EINVOICE_ARCHIVE_PUBLIC_KEY``, else the key ``pull`` saw, with a warning to compare it with
  ``docs/finance.md``); a verdict per day, every finding named; exit 1 on any failure.
- ``logs key`` prints the deployment's manifest public key (``--create`` makes the key pair if absent).
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from chalicelib.audit import manifest as manifests
from chalicelib.audit.keys import data_day, day_prefix, manifest_day, manifest_key
from chalicelib.audit.merkle import Sm3Stream, sm3
from chalicelib.audit.verify import DayVerdict, Found, verify_store
from infra.cli_app import console, err, group, print_table, table

if TYPE_CHECKING:
    from chalicelib.adapters.archive import S3Archive
    from chalicelib.services.archive import InvocationArchive

logs = group("logs", "the audit archive: pull it, verify it offline")

PULL_FILE = "pull.json"
CHUNK = 1 << 20
#: Threads reading and hashing files in ``logs verify``: 1 measured fastest (the per-file work is mostly
#: Python, which holds the GIL; docs/benchmarks.md). More may help on a slow network file system.
SCAN_THREADS = 1
PUBLIC_KEY_ENV = "EINVOICE_ARCHIVE_PUBLIC_KEY"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)") from None


def file_sm3(path: Path) -> str:
    h = Sm3Stream()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(body)
    tmp.replace(path)


# --- pull --------------------------------------------------------------------------------------------
@dataclass
class PullDay:
    day: date
    objects: int = 0
    fetched: int = 0
    skipped: int = 0
    sealed: bool = False
    problems: list[str] = field(default_factory=list)


@logs.command("pull")
def pull(
    store: Annotated[str, typer.Option("--store", help="the store id")],
    from_: Annotated[str, typer.Option("--from", help="first day (YYYY-MM-DD, UTC)")],
    to: Annotated[str, typer.Option("--to", help="last day (YYYY-MM-DD, UTC)")],
    out: Annotated[Path, typer.Option("--out", help="the folder to pull into (kept between runs)")],
) -> None:
    """Copy a store's archive days and manifests into a folder, checking each object as it arrives."""
    from chalicelib.adapters.archive import S3Archive

    first, last = _day(from_), _day(to)
    if last < first:
        raise typer.BadParameter("--to is before --from")
    if (last - first).days > 366:
        raise typer.BadParameter("pull at most a year at a time")
    bucket = os.environ.get("ARCHIVE_BUCKET", "")
    if not bucket:
        err.print("ARCHIVE_BUCKET is not set (pass --stack or start the local stack)")
        raise typer.Exit(2)
    archive = S3Archive(bucket)
    out.mkdir(parents=True, exist_ok=True)
    context = first - timedelta(days=1)
    seen: set[str] = set()
    _manifest(archive, store, context, out, seen)  # the chain's first link
    plan: list[tuple[PullDay, dict[str, str], list[tuple[str, int]]]] = []
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        expected = _manifest(archive, store, day, out, seen)
        listing = archive.listing(day_prefix(store, day))
        plan.append((PullDay(day, sealed=expected is not None), expected or {}, listing))
    _fetch_all(archive, store, out, plan)
    state = {
        "store": store,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "chain_from": context.isoformat(),
        "bucket": bucket,
        "public_keys_seen": sorted(seen),
    }
    (out / PULL_FILE).write_text(json.dumps(state, indent=2) + "\n")
    grid = table("day", "objects", "fetched", "already here", "sealed", "problems", right=("objects", "fetched"))
    for report, _, _ in plan:
        grid.add_row(
            report.day.isoformat(),
            str(report.objects),
            str(report.fetched),
            str(report.skipped),
            "yes" if report.sealed else "no",
            str(len(report.problems)) if report.problems else "-",
        )
    print_table(grid)
    problems = [p for report, _, _ in plan for p in report.problems]
    for problem in problems:
        err.print(f"problem: {problem}", markup=False, highlight=False)
    console.print(f"pulled into {out}; now run: einvoice logs verify {out}")
    if problems:
        raise typer.Exit(1)


def _manifest(archive: S3Archive, store: str, day: date, out: Path, seen: set[str]) -> dict[str, str] | None:
    """Fetch the day's manifest into ``out`` (always: it is small): its entries' digests, None if none."""
    key = manifest_key(store, day)
    if not archive.exists(key):
        return None
    blob = archive.get(key)
    _write(out / key, blob)
    try:
        m = manifests.parse(blob)
    except manifests.ManifestError as exc:
        err.print(f"{day}: {exc}")
        return {}
    seen.add(m.public_key)
    return {e.key: e.sm3 for e in m.entries}


def _fetch_all(
    archive: S3Archive, store: str, out: Path, plan: list[tuple[PullDay, dict[str, str], list[tuple[str, int]]]]
) -> None:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(f"pulling {store}", total=sum(len(listing) for _, _, listing in plan))
        for report, expected, listing in plan:
            report.objects = len(listing)
            progress.update(task, description=f"pulling {store} {report.day}")
            for key, _size in listing:
                _fetch(archive, out, key, expected.get(key), report)
                progress.advance(task)
            for key in sorted(set(expected) - {k for k, _ in listing}):
                report.problems.append(f"{key}: in the manifest, not in the archive")


def _fetch(archive: S3Archive, out: Path, key: str, want: str | None, report: PullDay) -> None:
    target = out / key
    if target.exists() and want is not None and file_sm3(target) == want:
        report.skipped += 1
        return
    body = archive.get(key)
    _write(target, body)
    report.fetched += 1
    got = Sm3Stream()
    got.update(body)
    if want is None and report.sealed:
        report.problems.append(f"{key}: not in the manifest")
    elif want is not None and got.hexdigest() != want:
        report.problems.append(f"{key}: SM3 differs from the manifest")


# --- verify -----------------------------------------------------------------------------------------
@dataclass
class Scanned:
    """What a pulled folder holds, per store: manifests by day and data objects by key."""

    manifests: dict[str, dict[date, bytes]] = field(default_factory=dict)
    objects: dict[str, dict[str, Found]] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0


def scan(folder: Path) -> Scanned:
    """Read every manifest and hash every data object under ``folder`` (keys are relative paths), on
    ``SCAN_THREADS`` threads."""
    found = Scanned()
    base = len(str(folder)) + 1
    data: list[tuple[str, str, str]] = []  # store, key, path
    for top, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name == PULL_FILE or name.endswith(".part"):
                continue
            path = os.path.join(top, name)
            key = path[base:].replace(os.sep, "/")
            if (place := manifest_day(key)) is not None:
                found.manifests.setdefault(place[0], {})[place[1]] = Path(path).read_bytes()
            elif (where := data_day(key)) is not None:
                data.append((where[0], key, path))
    paths = [p for _, _, p in data]
    if SCAN_THREADS <= 1:
        digests = _digests(paths)
    else:  # one slice per thread: no per-file task overhead
        step = -(-len(paths) // SCAN_THREADS) or 1
        with ThreadPoolExecutor(max_workers=SCAN_THREADS) as pool:
            parts = pool.map(_digests, [paths[i : i + step] for i in range(0, len(paths), step)])
            digests = [d for part in parts for d in part]
    for (store, key, _), (size, digest) in zip(data, digests, strict=True):
        found.objects.setdefault(store, {})[key] = Found(size, digest)
        found.files += 1
        found.bytes += size
    return found


def _digests(paths: list[str]) -> list[tuple[int, str]]:
    return [_digest(p) for p in paths]


def _digest(path: str) -> tuple[int, str]:
    """(size, SM3 hex) of one file: read whole when small (an archive object is), else in chunks."""
    with open(path, "rb") as f:
        data = f.read(CHUNK)
        if len(data) < CHUNK:
            return len(data), sm3(data).hex()
        h = Sm3Stream()
        size = len(data)
        h.update(data)
        while chunk := f.read(CHUNK):
            size += len(chunk)
            h.update(chunk)
        return size, h.hexdigest()


def verify_folder(folder: Path, public_key: str) -> list[DayVerdict]:
    state = _pull_state(folder)
    chain_from = date.fromisoformat(state["chain_from"]) if "chain_from" in state else None
    found = scan(folder)
    verdicts: list[DayVerdict] = []
    for store in sorted(set(found.manifests) | set(found.objects)):
        verdicts += verify_store(
            store, found.manifests.get(store, {}), found.objects.get(store, {}), public_key, chain_from=chain_from
        )
    return verdicts


def _pull_state(folder: Path) -> dict[str, str]:
    path = folder / PULL_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if isinstance(v, str)} | {"keys": ",".join(data.get("public_keys_seen", []))}


@logs.command("verify")
def verify(
    folder: Annotated[Path, typer.Argument(help="a folder written by `einvoice logs pull`", exists=True)],
    public_key: Annotated[
        str | None,
        typer.Option(help=f"the trusted SM2 public key (128 hex; default ${PUBLIC_KEY_ENV}, see docs/finance.md)"),
    ] = None,
) -> None:
    """Verify pulled archive days offline: objects, Merkle roots, signatures, the chain; a verdict per day."""
    key = public_key or os.environ.get(PUBLIC_KEY_ENV, "")
    if not key:
        seen = [k for k in _pull_state(folder).get("keys", "").split(",") if k]
        if len(seen) != 1:
            err.print("no trusted public key: pass --public-key (the key published in docs/finance.md)")
            raise typer.Exit(2)
        key = seen[0]
        err.print(
            f"note: verifying under the key the manifests name ({key[:16]}…); "
            "compare it with the one published in docs/finance.md, or pass --public-key",
            markup=False,
            highlight=False,
        )
    verdicts = verify_folder(folder, key)
    if not verdicts:
        err.print(f"nothing to verify in {folder}")
        raise typer.Exit(1)
    grid = table("store", "day", "objects", "bytes", "merkle root", "verdict", right=("objects", "bytes"))
    for v in verdicts:
        notes = [f.kind for f in v.findings]
        verdict = "OK" if v.ok and not notes else ("OK (" + ", ".join(sorted(set(notes))) + ")" if v.ok else "FAILED")
        grid.add_row(v.store, v.day.isoformat(), str(v.objects), str(v.bytes), v.merkle_root[:16], verdict)
    print_table(grid)
    failed = [v for v in verdicts if not v.ok]
    for v in verdicts:
        for f in v.findings:
            line = f"{v.store} {v.day} {f.kind}: {f.key}: {f.detail}"
            (err if f.failure else console).print(line, markup=False, highlight=False, soft_wrap=True)
    if failed:
        err.print(f"{len(failed)} of {len(verdicts)} day(s) FAILED verification")
        raise typer.Exit(1)
    console.print(f"all {len(verdicts)} day(s) verified")


# --- key --------------------------------------------------------------------------------------------
@logs.command("key")
def key(
    create: Annotated[bool, typer.Option(help="create the signing key pair if the deployment has none")] = False,
) -> None:
    """Print the public key the manifests are signed under (publish it in docs/finance.md)."""
    from chalicelib.adapters import aws
    from chalicelib.adapters.archive import SigningKeys, ensure_signing_key
    from chalicelib.config import settings

    name = settings().manifest_key_secret
    if create:
        typer.echo(ensure_signing_key(aws.client("secretsmanager"), name))
        return
    typer.echo(SigningKeys(name).public_key())


# --- operator commands ----------------------------------------------------------------------------
def operator_name(by: str | None = None) -> str:
    """Who runs an operator command: ``by``, else $EINVOICE_OPERATOR, else the login."""
    return by or os.environ.get("EINVOICE_OPERATOR") or getpass.getuser()


@contextmanager
def operator_log(operator: str) -> Iterator[InvocationArchive | None]:
    """The audit log of one operator command (``einvoice orders retry/fix``): hand it to the command's
    ledger as its recorder; the transitions it makes are archived as ``operator:<operator>`` when the
    block ends. Without an archive bucket configured, None (nothing recorded)."""
    from chalicelib import wiring
    from chalicelib.services.archive import ArchiveFlushError

    if not os.environ.get("ARCHIVE_BUCKET"):
        yield None
        return
    log = wiring.operator_archive(operator)
    log.begin()
    try:
        yield log
    finally:
        try:
            log.flush()
        except ArchiveFlushError as exc:
            err.print(f"warning: the audit record of this command was not written: {exc}", markup=False)
