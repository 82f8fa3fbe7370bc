"""The local tax sandbox: one HTTP server that speaks the ``sta`` protocol and Nuonuo's open platform,
enforces the invoice rules independently of the client code, and injects faults on demand.

``start_sandbox(config)`` runs it in-process (tests, ``make run``); ``python -m chalicelib.sandbox``
runs it on its own. See ``docs/sandbox.md``.
"""

from chalicelib.sandbox.server import SandboxHandle, start_sandbox
from chalicelib.sandbox.state import SandboxConfig, SandboxState

__all__ = ["SandboxConfig", "SandboxHandle", "SandboxState", "start_sandbox"]
