"""``python -m chalicelib.sandbox --host 127.0.0.1 --port 8900 --config examples/sandbox.json``."""

from __future__ import annotations

import argparse
import json
import logging
from decimal import Decimal
from pathlib import Path

from chalicelib.sandbox.server import make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.sandbox", description="Local tax sandbox (STA + Nuonuo)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--config", type=Path, default=Path("examples/sandbox.json"))
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    config = json.loads(args.config.read_text(encoding="utf-8"), parse_float=Decimal)
    server = make_server(config, args.host, args.port)
    print(f"tax sandbox listening on {server.state.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
