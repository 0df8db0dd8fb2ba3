"""Atomic writers: a product appears complete or not at all.

Each writer writes to a temporary name in the destination folder, then renames it
(``os.replace`` is atomic on POSIX within one file system). A failure of the file system
(read-only tree, full disk, permissions) raises :class:`hetred.errors.WriteError` naming the
destination, and the temporary file is removed. A process killed outright (SIGKILL)
mid-write leaves its hidden ``.{name}.XXXX.tmp`` behind; inside :func:`journal_temporaries`
(which :func:`hetred.jobs.units.run_unit` opens around a unit) every temporary name is reported
before it is written to, so the unit's next run removes what a killed run left.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

from hetred.errors import WriteError

#: file mode of products: 0666 less the process umask (mkstemp alone would leave 0600)
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

_JOURNAL: ContextVar[Callable[[Path], None] | None] = ContextVar("hetred_tmp_journal", default=None)


@contextlib.contextmanager
def journal_temporaries(record: Callable[[Path], None]) -> Iterator[None]:
    """Within the block, ``record(tmp)`` is called with every temporary path before it is used."""
    token = _JOURNAL.set(record)
    try:
        yield
    finally:
        _JOURNAL.reset(token)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it."""
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
    except OSError as err:
        raise WriteError(dest, err) from None
    tmp_path = Path(tmp)
    try:
        record = _JOURNAL.get()
        if record is not None:
            record(tmp_path)
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, dest)
    except BaseException as err:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:     # the tree went away or read-only: the original error is the one to report
            pass
        if isinstance(err, OSError):
            raise WriteError(dest, err) from None
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON (indented, sorted keys) atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_fits_atomic(path: str | Path, hdul: Any) -> None:
    """Write an astropy HDUList atomically."""
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, overwrite=True)
