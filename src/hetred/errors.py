"""Exceptions whose message is the one line a user sees."""
from __future__ import annotations


class HetredError(Exception):
    """A failure a user can act on; the CLI prints ``hetred: error: <message>`` and exits 1."""


class RawReadError(HetredError):
    """A raw amp file that cannot be used: names the tar and member (or file) and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
