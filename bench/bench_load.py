"""Load (issue 12 item 3): an open-loop webhook load against the local stack, bounded, with what bounds it.

``make load`` (or ``BENCH_LOAD=1 python -m bench --only load``) runs, for each rate in ``RATE`` (a comma
list; default ``10,30``: one this 2-core machine nearly sustains, one it does not), a fresh
``python -m infra.localstack`` on free loopback ports, sends that many signed webhooks a second for
``SECONDS`` (default 40; or ``ORDERS`` in all at each rate) and waits, bounded, until the worker has issued
every accepted order; then it stops the stack. The section reports per rate the achieved webhooks/s, the
answers (2xx / 409 / 5xx, and what the 503s were from the API's log), intake latency p50 / p95 / p99,
payment → invoice p50 / p95, the CPU of each process group during intake and during the drain, the issue
and deliver queues' depth over the run, and names the stage that bounds each figure. The run itself is
:mod:`bench.load_run`, the text :mod:`bench.load_report`.

Why open-loop: webhooks come from many shops' platforms, which do not wait for one answer before sending
the next, so the load is a rate, not a number of clients; a closed-loop client slows down with the service
and hides its queueing (``bench/bench_issuing.py`` part 2 is that closed-loop run, 4 posters). A few rates
in one run stand in for a ramp: where the achieved rate falls behind the target is the knee. The in-flight
requests are capped (``BENCH_LOAD_CONNECTIONS``, default 16) so an overloaded stack cannot make the
generator grow without bound; a request that waits for a sender keeps its due time in the latency.

It takes minutes, so a plain ``python -m bench`` keeps the last section unless ``BENCH_LOAD=1``. Settings:
``BENCH_LOAD_RATE``, ``BENCH_LOAD_SECONDS`` or ``BENCH_LOAD_ORDERS``, ``BENCH_LOAD_CONNECTIONS``,
``BENCH_LOAD_DRAIN_S`` (300: the wait for the worker after the last answer). Loopback only; nothing here
asserts a timing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.load_report import render
from bench.load_run import CONNECTIONS, DRAIN_LIMIT_S, SECONDS, measure

ENABLE = "BENCH_LOAD"
TITLE = "## Load: open-loop webhooks against the local stack"
#: One run a rate, each on a fresh stack: one the stack sustains on this machine, one it does not.
RATES = "10,30"


@dataclass(frozen=True)
class Settings:
    rates: tuple[float, ...]
    seconds: float | None  # None: ``orders`` at each rate
    orders: int | None
    connections: int
    drain_limit_s: float

    def seconds_at(self, rate: float) -> float:
        return self.orders / rate if self.orders else float(self.seconds or SECONDS)


def settings() -> Settings:
    """Rates, seconds (or orders), connections and drain limit from the environment (``make load`` sets them)."""
    rates = tuple(float(r) for r in (os.environ.get("BENCH_LOAD_RATE") or RATES).split(",") if r.strip())
    orders = int(os.environ.get("BENCH_LOAD_ORDERS") or 0) or None
    seconds = None if orders else float(os.environ.get("BENCH_LOAD_SECONDS") or SECONDS)
    connections = int(os.environ.get("BENCH_LOAD_CONNECTIONS") or CONNECTIONS)
    drain = float(os.environ.get("BENCH_LOAD_DRAIN_S") or DRAIN_LIMIT_S)
    if not rates or min(rates) <= 0 or (seconds is not None and seconds <= 0) or connections < 1 or drain < 0:
        raise ValueError("BENCH_LOAD_RATE, _SECONDS / _ORDERS and _CONNECTIONS must be positive")
    return Settings(rates, seconds, orders, connections, drain)


def command(s: Settings) -> str:
    size = f"ORDERS={s.orders}" if s.orders else f"SECONDS={s.seconds:g}"
    extra = f" CONNECTIONS={s.connections}" if s.connections != CONNECTIONS else ""
    return f"make load RATE={','.join(f'{r:g}' for r in s.rates)} {size}{extra}"


def kept_section() -> str:
    from bench.__main__ import OUTPUT, existing_sections

    if OUTPUT.exists():
        found = existing_sections(OUTPUT.read_text(encoding="utf-8")).get(__name__.rsplit(".", 1)[-1])
        if found:
            return found
    return f"{TITLE}\n\nNot measured yet: `make load` (`{ENABLE}=1 python -m bench --only load`).\n"


def run() -> str:
    if os.environ.get(ENABLE) != "1":
        return kept_section()
    s = settings()
    results = [
        measure(rate, s.seconds_at(rate), connections=s.connections, drain_limit_s=s.drain_limit_s) for rate in s.rates
    ]
    return render(results, command(s))


if __name__ == "__main__":
    os.environ.setdefault(ENABLE, "1")
    print(run())
