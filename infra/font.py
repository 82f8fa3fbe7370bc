"""Rebuild the invoice PDF's CJK font: ``python -m infra.font [--deb PATH] [--check]``.

The font is WenQuanYi Micro Hei (文泉驿微米黑, Apache-2.0 or GPL-3+ with the font exception; itself
Droid Sans Fallback + Droid Sans), from Debian's ``fonts-wqy-microhei`` package. It is chosen over
Droid Sans Fallback alone because that one has no Latin glyphs (no ASCII digits), and both are
TrueType (``glyf`` outlines), which reportlab needs (it cannot embed CFF / OpenType-PS fonts).

Steps, each deterministic for the pinned package:

1. ``apt-get download fonts-wqy-microhei`` into a temporary folder (no root needed), unless ``--deb``
   names the file; its SHA-256 must be :data:`DEB_SHA256`;
2. ``dpkg-deb -x``, take face 0 of ``wqy-microhei.ttc`` (the proportional face);
3. subset with fontTools to :func:`charset` — every character of GBK the font has (GB2312's 6,763
   hanzi and GBK's 21,003 hanzi, i.e. all 常用字 and 次常用字, plus its symbols), ASCII, Latin-1,
   general punctuation, CJK symbols and punctuation, the fullwidth forms and ¥ — dropping hinting,
   layout and vertical tables (unused by reportlab) and keeping the glyph outlines untouched;
4. write :data:`FONT_PATH` and the licence beside it.

reportlab embeds, per document, only the glyphs the document uses (a few KB); the file here is what
the deployment package carries (``chalicelib/`` ships whole with ``chalice package``).
``--check`` rebuilds into a temporary folder and compares bytes with the committed font.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FONT_DIR = ROOT / "chalicelib" / "pdf" / "fonts"
FONT_PATH = FONT_DIR / "WenQuanYiMicroHei-GBK.ttf"
LICENCE_PATH = FONT_DIR / "LICENSE-wqy-microhei.txt"
PACKAGE = "fonts-wqy-microhei"
#: Debian bookworm's fonts-wqy-microhei 0.2.0-beta-3.1 (all).
DEB_SHA256 = "239163df984eea5c9da3b551aee374936222cdbd67f1a1be3cdcf3d76143ad66"
TTC_MEMBER = "usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
COPYRIGHT_MEMBER = f"usr/share/doc/{PACKAGE}/copyright"
APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")
DROP_TABLES = ["FFTM", "GDEF", "GPOS", "GSUB", "vhea", "vmtx", "gasp"]


def charset() -> set[int]:
    """The code points to keep (before intersecting with what the font has)."""
    points: set[int] = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100))
    points |= set(range(0x2000, 0x2070)) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    points |= {0x00A5, 0x20AC, 0x2116, 0x2103, 0x25A1, 0x3013}
    for lead in range(0x81, 0xFF):  # every two-byte GBK code (GB2312 is its A1A1–F7FE part)
        for trail in range(0x40, 0xFF):
            try:
                points.add(ord(bytes((lead, trail)).decode("gbk")))
            except UnicodeDecodeError:
                continue
    return points


def fetch_deb(folder: Path) -> Path:
    subprocess.run(["apt-get", "download", PACKAGE], cwd=folder, check=True, capture_output=True)  # noqa: S607 - apt's client
    found = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if not found:
        raise SystemExit(f"apt-get download {PACKAGE} produced no .deb")
    return found[0]


def build(deb: Path, out_dir: Path) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTCollection

    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    if digest != DEB_SHA256:
        raise SystemExit(f"{deb.name}: SHA-256 {digest}, expected {DEB_SHA256} (update DEB_SHA256 deliberately)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)  # noqa: S607 - Debian's own tool, on PATH
        face = TTCollection(str(Path(tmp) / TTC_MEMBER), recalcTimestamp=False).fonts[0]
        options = subset.Options()
        options.hinting = False
        options.layout_features = []
        options.drop_tables += DROP_TABLES
        options.name_IDs = ["*"]
        options.name_languages = ["*"]
        options.notdef_outline = True
        options.recalc_timestamp = False
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(charset() & set(face.getBestCmap())))
        subsetter.subset(face)
        out_dir.mkdir(parents=True, exist_ok=True)
        font_path = out_dir / FONT_PATH.name
        face.save(str(font_path))
        licence = (Path(tmp) / COPYRIGHT_MEMBER).read_text(encoding="utf-8")
    apache = APACHE_TEXT.read_text(encoding="utf-8") if APACHE_TEXT.exists() else ""
    (out_dir / LICENCE_PATH.name).write_text(
        f"{FONT_PATH.name}: a subset (built by infra/font.py) of WenQuanYi Micro Hei from Debian's {deb.name}.\n"
        "Licensed under the Apache License, Version 2.0 (or GPL-3+ with the font exception, see below).\n\n"
        f"--- debian/copyright ---\n{licence}\n--- Apache License 2.0 ---\n{apache}",
        encoding="utf-8",
    )
    return font_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.font", description=__doc__.splitlines()[0])
    parser.add_argument("--deb", type=Path, help=f"a downloaded {PACKAGE} .deb (default: apt-get download)")
    parser.add_argument("--check", action="store_true", help="rebuild elsewhere and compare with the committed font")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        deb = args.deb or fetch_deb(Path(tmp))
        if args.check:
            built = build(deb, Path(tmp) / "out")
            same = built.read_bytes() == FONT_PATH.read_bytes()
            print(f"{FONT_PATH.relative_to(ROOT)}: {'reproduced byte for byte' if same else 'DIFFERS'}")
            return 0 if same else 1
        font = build(deb, Path(tmp) / "out")
        FONT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(font, FONT_PATH)
        shutil.copyfile(font.parent / LICENCE_PATH.name, LICENCE_PATH)
    print(f"wrote {FONT_PATH.relative_to(ROOT)} ({FONT_PATH.stat().st_size:,} bytes) and {LICENCE_PATH.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
