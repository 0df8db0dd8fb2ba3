"""imcmbext/imcmbchi (hetred.resmap.combine) by hand, and the row-block reader (hetred.resmap.stream)."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from hetred.io.fastfits import write_images
from hetred.resmap import combine as C
from hetred.resmap.stream import RowReader, rows_per_block
from hetred.stats import biweight


def test_nuse_is_fortran_nint():
    assert [C.nuse_of(n) for n in (1, 2, 3, 5, 7, 100, 102)] == [0, 0, 1, 1, 1, 20, 20]
    assert C.nuse_of(12) == 2 and C.nuse_of(13) == 3          # 2.4 -> 2, 2.6 -> 3


def test_imcmbext_pixel_by_pixel():
    rng = np.random.default_rng(1)
    n = 9
    sky = rng.uniform(80, 120, (n, 2, 3)).astype(np.float32)
    skysub = rng.normal(0, 10, (n, 2, 3)).astype(np.float32)
    err = np.full((n, 2, 3), 10.0, np.float32)
    skysub[:3, 0, 0] = 0.0                    # left out: sky_subtracted 0
    sky[3, 0, 0] = -1.0                       # left out: sky <= 0
    skysub[:, 1, 2] = 0.0                     # no file: res 0, sres 0, rres 1
    err[:5, 0, 1] = 0.0                       # errors of 0 left out of the error location
    res, sres, rres = C.imcmbext_block(skysub, sky, err, nuse=C.nuse_of(n))
    ok = (skysub[:, 0, 0] != 0) & (sky[:, 0, 0] > 0)
    loc, scl = biweight((skysub[ok, 0, 0] / sky[ok, 0, 0]).astype(np.float32))
    assert res[0, 0] == loc and sres[0, 0] == scl
    assert rres[0, 0] == pytest.approx(scl * biweight(sky[ok, 0, 0])[0] / biweight(err[ok, 0, 0])[0], rel=1e-6)
    assert (res[1, 2], sres[1, 2], rres[1, 2]) == (0.0, 0.0, 1.0)
    # err 0 in 5 of 9 files: 4 errors > nuse = 2, so rres is computed
    assert rres[0, 1] != 1.0


def test_normalise_rres():
    r = np.ones((112, 1032), np.float32)
    r[1:111, 9:1021] = 1.2                    # rows 2-111, columns 10-1021 (1-based)
    r[50, 50] = 1.0                           # a 1 stays a 1
    out, norm, n = C.normalise_rres(r)
    assert norm == pytest.approx(1.2) and n == 110 * 1012 - 1
    assert out[5, 500] == pytest.approx(1.0) and out[50, 50] == 1.0 and out[0, 0] == 1.0
    few = np.ones((112, 1032), np.float32)
    few[5, :900] = 1.3                        # 900 values: not more than 1000, no normalisation
    out2, norm2, _ = C.normalise_rres(few)
    assert norm2 == 1.0 and (out2 == few).all()


def test_imcmbchi_leaves_out_minus_666():
    chi = np.array([[1.0], [2.0], [-666.0], [3.0], [-665.8]], np.float32)[:, :, None]
    got = C.imcmbchi_block(chi)
    assert got[0, 0] == biweight(np.array([1.0, 2.0, 3.0], np.float32))[0]


def _files(tmp_path, n, shape=(112, 1032)):
    rng = np.random.default_rng(n)
    out = []
    for k in range(n):
        p = tmp_path / f"m{k:03d}.fits"
        arrs = [rng.normal(size=shape).astype(np.float32) for _ in range(4)]
        write_images(p, [(np.zeros((1, 1), np.float32), [("EXTNAME", "processed", "")])]
                     + [(a, [("EXTNAME", nm, "")]) for a, nm in zip(arrs, ("sky_subtracted", "sky_spectrum",
                                                                            "error1d", "chi2"))])
        out.append((p, arrs))
    return out


def test_row_reader_blocks_equal_the_files(tmp_path):
    files = _files(tmp_path, 5)
    rd = RowReader([p for p, _ in files])
    b = rd.block(17, 29)
    for i, (_, arrs) in enumerate(files):
        np.testing.assert_array_equal(b["sky_subtracted"][i], arrs[0][17:29])
        np.testing.assert_array_equal(b["chi2"][i], arrs[3][17:29])


def test_memory_is_flat_in_the_number_of_files(tmp_path):
    """The stacks of a block stay within the budget: 4 and 16 times the files, same peak."""
    from hetred.resmap.run import combine_files
    from hetred.resmap.settings import ResmapSettings

    st = ResmapSettings(memory_mb=8.0, qa=False)
    peaks = {}
    for n in (6, 24):
        paths = [p for p, _ in _files(tmp_path / f"n{n}", n)] if (tmp_path / f"n{n}").mkdir() is None else []
        tracemalloc.start()
        out = combine_files(paths, st)
        peaks[n] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        assert out["rows_per_block"] == rows_per_block(n, 1032, 4, 8.0)
    assert rows_per_block(24, 1032, 4, 8.0) < rows_per_block(6, 1032, 4, 8.0)
    assert peaks[24] < 1.5 * peaks[6], peaks          # the output maps (2 MB) and the block budget
