"""The csindexes fed from the writer's values are the ones PyTables builds by reading the table."""
from __future__ import annotations

import numpy as np
import tables as tb
from tables.idxutils import calc_chunksize

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
    blocks = calc_chunksize(n, optlevel=9, indsize=8, memlevel=9)
    for c in ("ra", "multiframe"):                 # PyTables alone (its scratch file compressed), same blocks
        t2.cols._f_col(c).create_csindex(_blocksizes=blocks)
    for c in ("ra", "multiframe"):
        i1, i2 = t1.cols._f_col(c).index, t2.cols._f_col(c).index
        assert i1.is_csi and i2.is_csi
        assert np.array_equal(i1.read_indices(), i2.read_indices())
        assert np.array_equal(i1.read_sorted(), i2.read_sorted(), equal_nan=c == "ra")
        assert i1.filters == i2.filters == tb.index.default_index_filters
        for name, leaf in i2._v_children.items():   # every array of the index: same chunks, filters, values
            mine = i1._v_children[name]
            assert (mine.chunkshape, mine.filters) == (leaf.chunkshape, leaf.filters), name
            assert np.array_equal(mine.read(), leaf.read(), equal_nan=c == "ra"), name
    idx_cls = tb.index.Index                    # PyTables' own methods and property are back
    assert idx_cls.create_temp.__qualname__ == "Index.create_temp"
    assert idx_cls.create_temp2.__qualname__ == "Index.create_temp2"
    assert idx_cls.filters.fget.__qualname__ == "Index.filters"
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


def test_scratch_unfiltered_index_unchanged(tmp_path, monkeypatch):
    """Blocks small enough that PyTables sorts through its scratch file (several superblocks,
    blocks and slices, a last row): the index is the one PyTables builds with its compressed
    scratch file, array for array."""
    rng = np.random.default_rng(7)
    n = 70_000
    ra = rng.uniform(150, 151, n).astype(np.float32)
    ra[::97] = np.nan
    ra[5000:9000] = ra[5000]                   # ties
    mf = np.array([f"multi_{k % 313:03d}_053_020_LL".encode() for k in range(n)])
    f1, t1 = _table(tmp_path / "a.h5", ra, mf)
    f2, t2 = _table(tmp_path / "b.h5", ra, mf)
    blocks = (32768, 16384, 4096, 512)
    seen = []
    real = tb.index.Index.create_temp

    def spy(self):
        seen.append(self.filters)              # what the scratch file is made with
        return real(self)

    for c, v in (("ra", ra), ("multiframe", mf)):
        t2.cols._f_col(c).create_csindex(_blocksizes=blocks)
        monkeypatch.setattr(tb.index.Index, "create_temp", spy)
        create_csindex(t1, c, v, blocksizes=blocks)
        monkeypatch.setattr(tb.index.Index, "create_temp", real)
    assert [s.complevel for s in seen] == [0, 0]
    for c in ("ra", "multiframe"):
        i1, i2 = t1.cols._f_col(c).index, t2.cols._f_col(c).index
        assert i1.is_csi and i2.is_csi and i1.nslices > 4
        assert i1.filters == i2.filters == tb.index.default_index_filters
        for name, leaf in i2._v_children.items():
            mine = i1._v_children[name]
            assert (mine.chunkshape, mine.filters) == (leaf.chunkshape, leaf.filters), name
            assert np.array_equal(mine.read(), leaf.read(), equal_nan=c == "ra"), name
    sel = (ra > 150.2) & (ra < 150.3)
    assert np.array_equal(np.sort(t1.get_where_list("(ra > 150.2) & (ra < 150.3)")), np.flatnonzero(sel))
    f1.close()
    f2.close()
