"""The bias-stage kernels (hetred._ext.boxfilter) against Karl's Fortran restated in NumPy.

* the per-pixel stack combine (imcmb) and the neighbour biweight behind the 1x7 box (imbox2)
  equal the literal restatement of ``biwgt`` bit for bit and the NumPy references to 1e-5;
* the 1x7 box follows imbox2: centre left out (radius 0), zeros skipped, window cut at edges;
* the trap search (imgetctrap) equals its NumPy reference, with and without the screen;
* the uint16 histogram biweight (improcb's statistics) equals the reference.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from hetred._ext import boxfilter as B
from hetred._ext import reference as R
from hetred.bias.masterbias import box_filter_1x7, box_offsets, combine_bias, find_charge_traps, trap_rules
from hetred.bias.settings import BiasSettings

F32 = np.float32


@pytest.fixture(params=[0, 1], ids=["baseline", "best"])
def simd(request):
    """Run a test on the baseline vector path and on the best one (AVX2 where present)."""
    old = B.simd_level()
    B.simd_level(request.param)
    yield request.param
    B.simd_level(old)


def test_sorting_networks_sort():
    for n in range(1, 13):                       # 0-1 principle: all 2^n binary inputs
        net = B.sorting_network(n)
        for bits in itertools.product((0, 1), repeat=n):
            a = list(bits)
            for i, j in net:
                if a[i] > a[j]:
                    a[i], a[j] = a[j], a[i]
            assert a == sorted(a)
    rng = np.random.default_rng(0)
    for n in (18, 33, 100, 257):
        net = B.sorting_network(n)
        for _ in range(20):
            a = list(rng.random(n))
            for i, j in net:
                if a[i] > a[j]:
                    a[i], a[j] = a[j], a[i]
            assert a == sorted(a)


def _samples(rng, n, m):
    x = (rng.standard_normal((n, m)) * 3 + rng.uniform(-5, 5)).astype(F32)
    x[:, : m // 8] = np.round(x[:, : m // 8])                    # ties
    x[:, m // 8: m // 4] *= F32(20.0) ** (rng.random((n, m // 8)) < 0.2)   # outliers
    return x


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 10, 18, 20, 33, 100])
def test_stack_combine_equals_karl_bit_for_bit(simd, n):
    rng = np.random.default_rng(n)
    x = _samples(rng, n, 1000)
    loc, scale = B.biweight_stack(x)
    for j in range(0, 1000, 37):
        ref = R.biweight_scalar_reference(x[:, j])
        assert (loc[j], scale[j]) == (F32(ref[0]), F32(ref[1])), j
    rloc, rscale = R.stack_biweight_reference(x)
    np.testing.assert_allclose(loc, rloc, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scale, rscale, rtol=1e-5, atol=1e-5)


def test_stack_combine_reference_1e5_on_a_frame_band():
    rng = np.random.default_rng(7)
    stack = (rng.standard_normal((11, 48, 1032)) * 3 + 0.2).astype(F32)
    got = combine_bias(stack)
    ref, _ = R.stack_biweight_reference(stack)
    assert got.shape == (48, 1032) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_stack_combine_skips_non_finite_and_any_strides():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 50)).astype(F32)
    x[2, 3] = np.nan
    x[4, 3] = np.inf
    loc, _ = B.biweight_stack(x)
    ref = R.biweight_scalar_reference(np.delete(x[:, 3], [2, 4]))
    assert loc[3] == F32(ref[0])
    loc_t, _ = B.biweight_stack(np.asfortranarray(x))
    np.testing.assert_array_equal(loc, loc_t)


def test_box_offsets_are_imbox2s_window():
    assert box_offsets(7, 1, 0.0).tolist() == [[-3, 0], [-2, 0], [-1, 0], [1, 0], [2, 0], [3, 0]]
    assert len(box_offsets(3, 3, 0.0)) == 8 and len(box_offsets(3, 3, 1.0)) == 4


def test_box_filter_equals_reference(simd):
    rng = np.random.default_rng(2)
    img = (rng.standard_normal((120, 1032)) + 1.5).astype(F32)
    img[rng.random(img.shape) < 0.02] = 0.0            # imbox2 skips exact zeros
    img[40:47, 17] = 0.0                               # a pixel with no usable neighbour
    got = box_filter_1x7(img)
    ref = R.box_filter_reference(img)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    assert got[43, 17] == 0.0


def test_box_filter_edges_centre_and_zero_skip():
    rng = np.random.default_rng(3)
    col = rng.standard_normal(20).astype(F32) + 5
    img = np.tile(col[:, None], (1, 8))
    img[10, :] = 1000.0                                # the centre never enters its own output
    img[12, 3] = 0.0                                   # a zero neighbour is skipped
    out = box_filter_1x7(img)
    bw = lambda v: F32(R.biweight_scalar_reference(np.asarray(v, F32))[0])
    assert out[0, 0] == bw(img[1:4, 0])                # row 1 (1-based): rows 2-4
    assert out[1, 0] == bw(img[[0, 2, 3, 4], 0])       # row 2: rows 1, 3-5
    assert out[2, 0] == bw(img[[0, 1, 3, 4, 5], 0])
    assert out[19, 0] == bw(img[16:19, 0])             # last row: the 3 below
    assert out[10, 0] == bw(img[[7, 8, 9, 11, 12, 13], 0])
    assert out[9, 3] == bw(img[[6, 7, 8, 10, 11], 3])  # the zero at row 12 left out
    assert out[12, 3] == bw(img[[9, 10, 11, 13, 14, 15], 3])   # a zero centre still gets a value


def _master(rng, shape=(300, 1032), traps=()):
    m = (rng.standard_normal(shape) * 0.5 + 1.0).astype(F32)
    for col, row0, amp in traps:
        m[row0:, col] += F32(amp)
    return m


def test_trap_hits_equal_reference_with_and_without_screen(simd):
    rng = np.random.default_rng(4)
    m = _master(rng, traps=[(200, 50, 20.0), (701, 0, 8.0)])
    m[rng.integers(0, 300, 200), rng.integers(0, 1032, 200)] += 30.0      # hot pixels
    m[100:103, 500:560] = 1.0                                             # ties: MAD 0 windows
    ref = R.trap_hits_reference(m)
    np.testing.assert_array_equal(B.trap_hits(m, screen=0.0), ref)
    np.testing.assert_array_equal(B.trap_hits(m), ref)
    assert ref[:9].sum() == 0 and ref[:, :9].sum() == 0 and ref[:, -10:].sum() == 0


def test_trap_finder_finds_injected_traps_and_applies_karls_rules():
    rng = np.random.default_rng(5)
    m = _master(rng, shape=(1032, 1032), traps=[(300, 400, 15.0), (650, 60, 12.0), (900, 0, 25.0)])
    res = find_charge_traps(m)
    # 1-based columns; first row = lowest hit row - 10, or 1 when that is below 100
    assert res.traps == [(301, 391), (651, 1), (901, 1)]
    assert (res.masked[390:, 300] == 0).all() and res.masked[389, 300] != 0
    assert (res.masked[:, 650] == 0).all() and (res.masked[:, 900] == 0).all()
    np.testing.assert_array_equal(np.delete(res.masked, [300, 650, 900], axis=1),
                                  np.delete(m, [300, 650, 900], axis=1))
    clean = find_charge_traps(_master(rng, shape=(1032, 1032)))
    assert clean.traps == [] and (clean.masked != 0).all()


def test_trap_rules():
    hits = np.zeros((400, 40), np.uint8)
    hits[150:201, 5] = 1          # 51 hits: a trap, from row 151 - 10 = 141
    hits[150:200, 6] = 1          # 50 hits: not (the test is > 50)
    hits[95:300, 7] = 1           # lowest hit row 96 -> 86 < 100 -> row 1
    assert trap_rules(hits) == [(6, 141), (8, 1)]


def test_biweight_uint16_equals_reference():
    rng = np.random.default_rng(6)
    a = np.clip(np.round(rng.standard_normal((401, 401)) * 3 + 2186), 0, 65535).astype(np.uint16)
    a[::50, ::7] = 65535
    for off in (0.0, 2186.1103515625):
        loc, scale = B.biweight_uint16(a, off)
        rloc, rscale = R.biweight_uint16_reference(a, off)
        assert loc == pytest.approx(rloc, abs=1e-5) and scale == pytest.approx(rscale, rel=1e-5)
    small = np.array([[3, 9, 4, 4, 5, 6]], np.uint16)
    assert B.biweight_uint16(small, 1.5) == pytest.approx(R.biweight_scalar_reference(small[0] - F32(1.5)))


def test_both_vector_paths_agree_bit_for_bit():
    rng = np.random.default_rng(8)
    x = _samples(rng, 13, 4000)
    img = _master(rng, shape=(64, 1032), traps=[(100, 10, 9.0)])
    old = B.simd_level()
    try:
        out = []
        for level in (0, 1):
            B.simd_level(level)
            out.append((B.biweight_stack(x), box_filter_1x7(img), B.trap_hits(img, screen=0)))
    finally:
        B.simd_level(old)
    (a0, s0), b0, h0 = out[0]
    (a1, s1), b1, h1 = out[1]
    np.testing.assert_array_equal(a0, a1)
    np.testing.assert_array_equal(s0, s1)
    np.testing.assert_array_equal(b0, b1)
    np.testing.assert_array_equal(h0, h1)


def test_settings_from_config():
    s = BiasSettings.from_config({"scale_lo": 1, "scale_hi": "12", "qa": False})
    assert (s.scale_lo, s.scale_hi, s.qa) == (1.0, 12.0, False)
    from hetred.errors import HetredError
    with pytest.raises(HetredError, match="unknown setting"):
        BiasSettings.from_config({"scale_low": 1})
    with pytest.raises(HetredError, match="scale_lo < scale_hi"):
        BiasSettings.from_config({"scale_lo": 11})
    with pytest.raises(HetredError, match="not a valid"):
        BiasSettings.from_config({"qa": "yes"})


def test_combine_leaves_out_karls_blank():
    x = np.full((5, 4), 2.0, F32)
    x[:, 1] = [1.0, 2.0, 3.0, 4.0, 5.0]
    x[0, 1] = -666.0          # nint(-666.0) == -666: left out, as imcmb does
    x[1, 2] = -665.5          # nint rounds halves away from zero: -666, left out
    x[2, 3] = -666.5          # nint(-666.5) == -667: kept
    out = combine_bias(x[:, None, :])[0]
    assert out[1] == F32(R.biweight_scalar_reference([2.0, 3.0, 4.0, 5.0])[0])
    assert out[2] == 2.0
    assert out[3] == F32(R.biweight_scalar_reference(x[:, 3])[0])


def test_location_only_paths_give_the_same_location():
    rng = np.random.default_rng(9)
    x = _samples(rng, 11, 3000)
    loc, scale = B.biweight_stack(x)
    loc2, none = B.biweight_stack(x, want_scale=False)
    assert none is None
    np.testing.assert_array_equal(loc, loc2)
    img = _master(rng, shape=(40, 1032))
    offs = box_offsets()
    a = B.neighbour_biweight(img, offs, skip_zero=True)
    b = B.neighbour_biweight(img, offs, skip_zero=True, want_scale=False)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    assert b[1] is None
