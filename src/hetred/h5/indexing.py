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
"""
from __future__ import annotations

import inspect

import numpy as np
import tables as tb
from tables.idxutils import calc_chunksize

_SIGNATURE_OK = list(inspect.signature(tb.Table._read).parameters)[:5] == ["self", "start", "stop", "step", "field"]


def create_csindex(table: tb.Table, colname: str, values: np.ndarray | None = None) -> None:
    """``table.cols.<colname>.create_csindex()``, fed from ``values`` ((nrows,) in table order)
    when given."""
    col = table.cols._f_col(colname)
    blocks = calc_chunksize(max(1, table.nrows), optlevel=9, indsize=8, memlevel=9)
    if values is None or not _SIGNATURE_OK or len(values) != table.nrows:
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
        col.create_csindex(_blocksizes=blocks)
    finally:
        del table._read
