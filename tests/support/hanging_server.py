"""An AWS that hangs: a TCP server on 127.0.0.1 that accepts every connection and never answers a byte.

Point ``AWS_ENDPOINT_URL`` at :func:`hanging_endpoint` and every botocore call connects at once, then
waits for a reply that never comes — what a network partition or a stuck endpoint looks like to a
client, and what its read timeout, its retries and the intake deadline have to bound.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def hanging_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>``: accepts and holds every connection until the block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # never read, never answered, never closed until the end

    thread = threading.Thread(target=accept, name="hanging-endpoint", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()
