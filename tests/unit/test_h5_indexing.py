"""The csindexes fed from the writer's values are the ones PyTables builds by reading the table."""
from __future__ import annotations

import numpy as np
import tables as tb

from hetred.h5.indexing import create_csindex


class Row(tb.IsDescription):
    multiframe = tb.StringCol(20, pos=0)
    ra = tb.Float32Col(pos=1)
    big = tb.Float32Col((300,))


def _table(path, ra, mf):
    f = tb.open_file(str(path), "w")
    t = f.create_table(f.root, "T", Row, expectedrows=len(ra))
    a = np.zeros(len(ra), dtype=t.dtype)
    a["ra"], a["multiframe"] = ra, mf
    for k in range(0, len(a), 997):
        t.append(a[k:k + 997])
    t.flush()
    return f, t


def test_index_from_memory_equals_pytables_own(tmp_path):
    rng = np.random.default_rng(3)
    n = 70_000                                 # more than one index slice
    ra = rng.uniform(150, 151, n).astype(np.float32)
    ra[::101] = np.nan
    mf = np.array([f"multi_{k % 313:03d}_053_020_LL".encode() for k in range(n)])
    f1, t1 = _table(tmp_path / "a.h5", ra, mf)
    f2, t2 = _table(tmp_path / "b.h5", ra, mf)
    calls = {"n": 0}
    real = t1._read

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)
    t1._read = counting
    create_csindex(t1, "ra", ra)               # (it reads through t1._read = counting when it falls back)
    t1._read = counting
    create_csindex(t1, "multiframe", mf)
    assert calls["n"] == 0                     # nothing read back from the table
    create_csindex(t2, "ra")
    create_csindex(t2, "multiframe")
    for c in ("ra", "multiframe"):
        i1, i2 = t1.cols._f_col(c).index, t2.cols._f_col(c).index
        assert i1.is_csi and i2.is_csi
        assert np.array_equal(i1.read_indices(), i2.read_indices())
        assert np.array_equal(i1.read_sorted(), i2.read_sorted(), equal_nan=c == "ra")
    q = t1.read_where("(ra > 150.2) & (ra < 150.3)")
    assert np.array_equal(np.sort(q["ra"]), np.sort(ra[(ra > 150.2) & (ra < 150.3)]))
    assert len(t1.read_where("multiframe == b'multi_007_053_020_LL'")) == len(mf[mf == b"multi_007_053_020_LL"])
    f1.close()
    f2.close()


def test_without_values_or_wrong_length_pytables_reads_the_column(tmp_path):
    ra = np.arange(10, dtype=np.float32)
    f, t = _table(tmp_path / "c.h5", ra, np.array([b"m"] * 10))
    create_csindex(t, "ra", ra[:5])            # wrong length: the ordinary path
    assert t.cols.ra.index.is_csi
    f.close()
