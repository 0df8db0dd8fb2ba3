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


class WriteError(HetredError):
    """A product, marker or temporary file that cannot be written (read-only tree, full disk,
    permissions): names the file and the system's reason."""

    def __init__(self, target: object, err: OSError) -> None:
        reason = err.strerror or str(err) or err.__class__.__name__
        # astropy repeats its "Not enough space on disk: ..." sentence: each sentence once
        reason = ". ".join(dict.fromkeys(x.strip() for x in reason.split(". ") if x.strip()))
        other = getattr(err, "filename", None)
        if other is not None and str(other) != str(target) and ".tmp" not in str(other):
            reason += f" ({other})"
        super().__init__(f"cannot write {target}: {reason}")
        self.target = str(target)
        self.reason = reason
        self.errno = err.errno


class EmptyUnit(HetredError):
    """A unit with nothing to do in the data (e.g. a ``bri`` background unit of a dark month):
    not a failure. :func:`hetred.jobs.units.run_unit` writes an *empty* marker with the reason,
    ``counts`` (what the unit saw, e.g. the levels of the frames) and ``depends`` (files whose
    change makes the unit worth re-evaluating, e.g. the tarlist)."""

    def __init__(self, reason: str, counts: dict | None = None, depends: list | tuple = ()) -> None:
        super().__init__(reason)
        self.counts = dict(counts or {})
        self.depends = [str(p) for p in depends]
