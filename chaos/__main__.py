"""``python -m chaos --orders N --seed S [--state-dir D] [--keep]`` (``make chaos ORDERS=… SEED=…``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from chaos.run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--orders", type=int, default=300, help="paid orders to post (default 300)")
    parser.add_argument("--seed", type=int, default=7, help="the seed of the workload and the disruptions")
    parser.add_argument("--state-dir", type=Path, default=None, help="the stack's state folder (default: a new one)")
    parser.add_argument(
        "--keep", action="store_true", help="after the check, keep the stack running until Ctrl-C (to look around)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    ok, table, state = run(args.orders, args.seed, args.state_dir, keep=args.keep)
    if not args.keep:
        print(table)
    print(f"\n{'ok' if ok else 'NOT OK'}: {args.orders} orders, seed {args.seed}, {time.monotonic() - started:.0f} s; "
          f"journal and report in {state}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
