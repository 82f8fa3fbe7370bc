"""The invoice font ships inside the deployment package (``chalice package`` via ``infra.package``),
and the zipped package stays below Lambda's 50 MB limit for a directly uploaded zip."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from chalicelib.pdf.fonts import FONT_FILE
from infra.font import LICENCE_PATH

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("package")]  # chalice package: ~7 s

LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024
FONT_COMPRESSED_BUDGET = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def deployment(packaged: Callable[..., Path]) -> Path:
    return packaged("dev").parent / "deployment.zip"


def test_the_font_and_its_licence_are_in_the_zip(deployment: Path) -> None:
    root = FONT_FILE.parents[3]
    with zipfile.ZipFile(deployment) as archive:
        names = {info.filename: info for info in archive.infolist()}
        font = names[FONT_FILE.relative_to(root).as_posix()]
        assert archive.read(font.filename) == FONT_FILE.read_bytes()
        assert LICENCE_PATH.relative_to(root).as_posix() in names
        assert font.compress_size <= FONT_COMPRESSED_BUDGET


def test_the_zipped_package_is_below_the_lambda_limit(deployment: Path) -> None:
    assert deployment.stat().st_size < LAMBDA_ZIP_LIMIT
