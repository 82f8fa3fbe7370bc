"""The embedded AWS: moto's server, its DynamoDB requests made isolated as DynamoDB's are, its memory bounded.

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

And moto keeps every model object it ever made, a failed transaction's table copy included: memory
grew with the square of the table until the kernel killed it (:func:`untrack_dynamodb_models`).
"""

from __future__ import annotations

import threading

from infra import moto_transactions

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


def untrack_dynamodb_models() -> None:
    """Stop moto from keeping every DynamoDB model object it ever made (idempotent).

    moto's ``BaseModel.__new__`` appends each instance to its class's ``instances_tracked`` list, for
    ``/moto-api/data.json`` and ``reset``; a transaction's whole-table copy is such an instance, so
    each failed ``TransactWriteItems`` kept a copy of the table alive for good — memory quadratic in
    the table (3,000 orders: 5.4 GB; the 2,000-order chaos run was killed by the kernel at 23.6 GB).
    DynamoDB's models are left untracked; every other service's stay as moto keeps them.
    """
    from moto.core.common_models import BaseModel

    if getattr(BaseModel.__new__, "_einvoice_untracked", False):
        return
    tracked_new = BaseModel.__new__

    def new(cls: type[BaseModel], *args: object, **kwargs: object) -> BaseModel:
        if cls.__module__.startswith("moto.dynamodb"):
            return object.__new__(cls)
        return tracked_new(cls, *args, **kwargs)

    new._einvoice_untracked = True  # type: ignore[attr-defined]
    BaseModel.__new__ = staticmethod(new)


def main(argv: list[str] | None = None) -> None:
    serialise_dynamodb()
    untrack_dynamodb_models()
    moto_transactions.install()  # no whole-table copies (infra/moto_transactions.py)
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main()
