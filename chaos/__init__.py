"""The chaos suite (issue 12): N orders through the local stack under faults, kills and freezes, then
checked from the sandbox's admin view and the ledger. ``python -m chaos`` / ``make chaos``; the
driver is :mod:`chaos.run`, the checks :mod:`chaos.check`; docs/reliability.md."""
