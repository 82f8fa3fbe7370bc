"""The reports' CSV: UTF-8 with a byte-order mark, comma-separated, CRLF line ends, every field quoted
as needed (RFC 4180). The BOM is what makes Excel open Chinese text as UTF-8 (without it, Excel on a
Chinese Windows reads the file as GBK); accounting imports (Kingdee, Yonyou, the 金税 tools) accept it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

BOM = "\ufeff"


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    out = io.StringIO(newline="")
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")
