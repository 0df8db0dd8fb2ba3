"""Completely sorted indexes (PyTables ``create_csindex``) without reading a big table back.

PyTables builds an index from the column's values, which it reads from the table slice by slice;
HDF5 reads a field of a compound table by reading whole chunks, so indexing ``ra`` of a shot's
``/Data/Fibers`` (62 kB rows) reads the whole table back, and ``multiframe`` of ``/Data/Images``
(12.7 MB rows) every image: ~25 GB for a 78-IFU shot. The writer knows the values: while
:func:`create_csindex` runs, the table's slice reader is answered from them for that one column
(PyTables' ``Table._read(start, stop, step, field)``, through which ``Column.create_csindex``
fills the index). The index is the one PyTables would build (tests/unit/test_h5_indexing.py
compares both); without values, or if PyTables changes that reader, the column is read as usual.

The index is built with PyTables' largest blocks (``memlevel`` 9 instead of its default 4: slices
of up to ~3.3 M values): the complete sort of the fiber index of 100 shots (10.5 M rows) then
takes a quarter of the time, for ~0.1-0.3 GB of memory.

PyTables sorts in a temporary HDF5 file (beside the table's file) whose arrays it reads and
rewrites several times (``Index.optimize``: swaps of chunks and slices, then the complete sort),
then copies the result into the index. That file takes the index's filters (zlib + shuffle):
two thirds of the index's CPU went to compressing and decompressing scratch data. While
:func:`create_csindex` runs, the temporary arrays are made without filters (``Index.create_temp``
and ``create_temp2`` see no-compression filters in ``Index.filters``); the index itself keeps its filters and its
content (the same values, chunks and filters: tests/unit/test_h5_indexing.py). The scratch file
is then ~16 bytes per row uncompressed (0.35 GB for 10.5 M rows), removed at the end.
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import numpy as np
import tables as tb
from tables.idxutils import calc_chunksize
from tables.index import Index

_SIGNATURE_OK = list(inspect.signature(tb.Table._read).parameters)[:5] == ["self", "start", "stop", "step", "field"]
_TEMP_OK = all(callable(getattr(Index, m, None)) for m in ("create_temp", "create_temp2")) and \
    isinstance(getattr(Index, "filters", None), property)
_NO_FILTERS = tb.Filters(complevel=0)


@contextlib.contextmanager
def _unfiltered_scratch() -> Iterator[None]:
    """Within the block, PyTables' index scratch arrays are made without filters (module docstring)."""
    if not _TEMP_OK:
        yield
        return
    real = {m: getattr(Index, m) for m in ("create_temp", "create_temp2")}

    prop = Index.filters

    def wrap(method):
        def scratch(self: Index) -> None:
            Index.filters = property(lambda _: _NO_FILTERS)     # what create_temp* read; nothing is written
            try:
                method(self)
            finally:
                Index.filters = prop
        return scratch

    for m, fn in real.items():
        setattr(Index, m, wrap(fn))
    try:
        yield
    finally:
        for m, fn in real.items():
            setattr(Index, m, fn)


def create_csindex(table: tb.Table, colname: str, values: np.ndarray | None = None,
                   blocksizes: tuple[int, int, int, int] | None = None) -> None:
    """``table.cols.<colname>.create_csindex()``, fed from ``values`` ((nrows,) in table order)
    when given; ``blocksizes`` (PyTables' superblock, block, slice and chunk sizes) overrides
    the largest blocks (tests use small ones to make PyTables sort through its scratch file)."""
    col = table.cols._f_col(colname)
    blocks = blocksizes or calc_chunksize(max(1, table.nrows), optlevel=9, indsize=8, memlevel=9)
    if values is None or not _SIGNATURE_OK or len(values) != table.nrows:
        with _unfiltered_scratch():
            col.create_csindex(_blocksizes=blocks)
        return
    vals = np.ascontiguousarray(values, dtype=table.coldtypes[colname])
    real = table._read

    def read(start, stop, step, field=None, out=None):
        if field == colname and step == 1 and out is None:
            return vals[start:stop].copy()
        return real(start, stop, step, field, out)

    table._read = read
    try:
        with _unfiltered_scratch():
            col.create_csindex(_blocksizes=blocks)
    finally:
        del table._read
