"""The embedded AWS: moto's server, with its DynamoDB requests made isolated as DynamoDB's are.

    python -m infra.moto_server -H 127.0.0.1 -p 4566      (moto.server's own arguments)

Why not ``python -m moto.server`` as it is: moto 5 runs ``TransactWriteItems`` by deep-copying every
table it touches and, when a condition fails, putting the copies back. A transaction that fails while
another request writes to the same table erases that write, and a record can even step back to an older
status. DynamoDB's transactions are isolated and never do that. The gateway relies on that isolation:
two concurrent deliveries of one order are one transaction that wins and one whose condition fails.
Found by the chaos suite (an order answered 200 twice, then gone from the ledger) and by the load run
(an issued order back in ``queued``, its message long deleted). Reproduced alone: 8 of 1,701 plain
puts were lost next to failing transactions; none were lost with this module.

So every DynamoDB request is served one at a time, under one lock in this process. Every other service
is untouched and stays concurrent. This costs nothing moto did not already pay: a transaction copies
whole tables under the interpreter lock anyway (docs/reliability.md, "The embedded AWS").
"""

from __future__ import annotations

import threading

_LOCK = threading.RLock()


def serialise_dynamodb() -> None:
    """Make moto's DynamoDB handler serve one request at a time (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_einvoice_serialised", False):
        return
    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> object:
        with _LOCK:
            return original(self)

    call_action._einvoice_serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action


def main(argv: list[str] | None = None) -> None:
    serialise_dynamodb()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main()
