"""Tests of the biweight kernel against Karl Gebhardt's ``biwgt`` (biwt.f).

The Cython kernel (hetred._ext.biweight) must agree bit for bit with the
literal restatement of the Fortran (biweight_scalar_reference) and to float32
rounding with the vectorised NumPy restatement (biweight_reference).
"""
import math

import numpy as np
import pytest

from hetred._ext.biweight import biweight_1d, biweight_columns
from hetred._ext.reference import biweight_reference, biweight_scalar_reference
from hetred.stats import biweight, biweight_location, biweight_scale

F32 = np.float32
ULP1 = float(np.spacing(F32(1.0)))          # 2**-23


def kernel_1d(values):
    """The column kernel on one sample, as Python floats."""
    col = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    loc, scale = biweight_columns(col)
    return float(loc[0]), float(scale[0])


ALL_1D = [kernel_1d, biweight_1d, biweight_scalar_reference,
          lambda v: biweight(np.asarray(v, np.float32)),
          lambda v: biweight_reference(np.asarray(v, np.float32))]


@pytest.mark.parametrize("fn", ALL_1D)
@pytest.mark.parametrize("values, expected", [
    ([], (-666.0, -2.0)),
    ([np.nan, np.inf, -np.inf], (-666.0, -2.0)),
    ([7.5], (7.5, -1.0)),
    ([np.nan, -3.25, np.nan], (-3.25, -1.0)),
    ([4.0, 1.0], (2.5, 1.5)),
    ([1.0, np.nan, 2.0], (1.5, 0.5)),
    ([5.0, 5.0, 5.0, 5.0, 6.0], (5.0, 0.0)),                       # MAD = 0
    ([1000.0, 1000.0, 1000.0, 1000.00006, 1000.00012], (1000.0, 0.0)),
])
def test_special_cases(fn, values, expected):
    loc, scale = fn(np.asarray(values, dtype=np.float32))
    assert (loc, scale) == expected


def test_mad_early_return_uses_relative_limit():
    # MAD = 6.1e-5 is < 1e-6 * 1000, so (median, MAD) comes back unchanged
    x = F32(1000.0) + np.array([0, 1, 1, 2, 5, 9], np.float32) * np.spacing(F32(1000.0))
    loc, scale = biweight(x)
    med = F32(0.5) * (x[2] + x[3])
    mad = np.median(np.abs(x - med))
    assert loc == med and scale == F32(mad) and scale > 0
    # the same spread around 0 is not below 1e-6 * max(1, |median|): it iterates
    loc0, scale0 = biweight(x - F32(1000.0))
    assert scale0 != F32(mad)


def test_zero_median_quirk_returns_median():
    # median 0, MAD 1: delta starts at max(2e-5, 0) < 1e-4 * MAD, so no step
    x = np.array([-1.0, -0.5, 0.0, 3.0, 4.0], np.float32)
    loc, scale = biweight(x)
    assert loc == 0.0
    assert biweight_scalar_reference(x)[0] == 0.0
    assert biweight_reference(x)[0] == 0.0
    # the same sample shifted away from 0 does move off its median ...
    assert abs(biweight(x + F32(10.0))[0] - 10.0) > 0.1
    # ... and so does it scaled to MAD = 0.1, where 2e-5 >= 1e-4 * MAD
    assert abs(biweight(x / F32(10.0))[0]) > 0.01


def test_hand_computed_symmetric_sample():
    # median 3, MAD 1; symmetric, so sum1 = 0 and the location stays at 3.
    # Scale, c = 9 MAD = 9: t0 = -2..2, t1 = 81 - t0^2 = 77, 80, 81, 80, 77
    sum1 = 2 * 4 * 77**4 + 2 * 1 * 80**4                       # 363144328
    sum2 = 2 * 77 * (81 - 20) + 2 * 80 * (81 - 5) + 81 * 81     # 28115
    expected = F32(5 * math.sqrt(sum1 / 4.0) / sum2)            # 1.6945...
    for fn in ALL_1D:
        loc, scale = fn(np.array([4.0, 1.0, 5.0, 3.0, 2.0], np.float32))
        assert loc == 3.0 and scale == expected
    assert float(expected) == pytest.approx(1.69450, abs=1e-5)


def test_location_iteration_stops_after_20_steps():
    # bimodal sample whose iteration has not converged after the 20-step cap
    x = np.array([6, 0, 1, 6, 5, 5, 1, 0, 0, 0, 6, 6, 2, 5, 6], np.float32)
    loc, scale = biweight(x)
    assert (loc, scale) == biweight_scalar_reference(x) == biweight_1d(x)
    med, mad = 5.0, 1.0
    assert biweight_reference(x)[0] == pytest.approx(loc, rel=1e-5)
    t0 = x.astype(np.float64) - loc
    w = np.where(np.abs(t0) < 6 * mad, (36 * mad**2 - t0**2) ** 2, 0.0)
    assert abs(np.sum(t0 * w) / np.sum(w)) >= 1e-4 * mad       # would step again
    assert abs(loc - med) > 0.1


def test_karl_mad_walk_differs_from_true_mad_on_ulp_ties():
    # Even n, the lower half all tied and the median rounding onto it: the walk
    # takes all n/2 picks from below and returns 0, the true MAD is ulp/2.
    x = F32(1.0) + np.array([0, 0, 0, 1, 2, 3], np.float32) * F32(ULP1)
    assert biweight_scalar_reference(x) == (1.0, 0.0)
    assert kernel_1d(x) == (1.0, 0.0) and biweight_1d(x) == (1.0, 0.0)
    assert biweight_reference(x) == (1.0, ULP1 / 2)


def random_sample(rng, n, kind):
    if kind == 0:                                    # small integers: many ties
        return rng.integers(-3, 4, n).astype(np.float32)
    if kind == 1:                                    # ties at the 1-ulp level
        return F32(1.0) + rng.integers(0, 4, n).astype(np.float32) * F32(ULP1)
    if kind == 2:                                    # halves far apart
        return (2.0**24 * rng.integers(0, 2, n) + rng.integers(0, 5, n)).astype(np.float32)
    if kind == 3:                                    # heavy tails
        return rng.standard_cauchy(n).astype(np.float32)
    if kind == 4:                                    # near zero, with exact zeros
        return np.where(rng.random(n) < 0.4, 0.0, rng.standard_normal(n)).astype(np.float32)
    scale, offset = rng.choice([1e-3, 1.0, 1e3]), rng.choice([0.0, 1.0, 1e4])
    return (offset + scale * rng.standard_normal(n)).astype(np.float32)


def test_kernel_matches_literal_fortran_restatement_exactly():
    rng = np.random.default_rng(12345)
    nmax, ncol = 30, 3000
    stack = np.full((nmax, ncol), np.nan, np.float32)
    for c in range(ncol):
        n = int(rng.integers(3, nmax + 1))
        stack[:n, c] = random_sample(rng, n, c % 6)
        stack[:, c] = rng.permutation(stack[:, c])
    loc, scale = biweight_columns(stack)
    ref = np.array([biweight_scalar_reference(stack[:, c]) for c in range(ncol)], np.float32)
    one = np.array([biweight_1d(stack[:, c]) for c in range(ncol)], np.float32)
    np.testing.assert_array_equal(loc, ref[:, 0])
    np.testing.assert_array_equal(scale, ref[:, 1])
    np.testing.assert_array_equal(one, ref)


def assert_close_to_reference(a, axis, data_scale):
    loc, scale = biweight(a, axis=axis)
    rloc, rscale = biweight_reference(a, axis=axis)
    assert np.shape(loc) == np.shape(rloc)
    floor = 1e-5 * data_scale          # absolute floor where the location is ~0
    np.testing.assert_array_less(np.abs(loc - rloc), 1e-5 * np.abs(rloc) + floor)
    np.testing.assert_allclose(scale, rscale, rtol=1e-5, atol=floor)


@pytest.mark.parametrize("offset", [1000.0, 0.0])
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_kernel_matches_vectorised_reference(offset, axis):
    rng = np.random.default_rng(7 + int(offset) + axis)
    a = (offset + 3.0 * rng.standard_normal((17, 13, 11))).astype(np.float32)
    a[rng.random(a.shape) < 0.1] = np.nan                               # gaps
    out = rng.random(a.shape) < 0.05
    a[out] += (rng.choice([-1, 1], out.sum()) * 200.0).astype(np.float32)  # outliers
    assert_close_to_reference(a, axis, data_scale=3.0)


def test_large_n_path():
    # n > 256: NumPy pre-sort instead of the sorting network; heapsort in biwgt
    rng = np.random.default_rng(3)
    a = (50.0 + 2.0 * rng.standard_normal((300, 9))).astype(np.float32)
    a[rng.random(a.shape) < 0.02] = np.nan
    a[0, :3], a[1, 2:5] = -np.inf, np.inf
    assert_close_to_reference(a, 0, data_scale=2.0)
    loc, scale = biweight(a, axis=0)
    for c in (0, 2, 4):
        ref = biweight_scalar_reference(a[:, c])
        assert (float(loc[c]), float(scale[c])) == ref == biweight_1d(a[:, c])


def test_axis_none_and_wrappers():
    rng = np.random.default_rng(11)
    a = (5.0 + rng.standard_normal((6, 7, 5))).astype(np.float32)
    loc, scale = biweight(a)
    assert isinstance(loc, float) and isinstance(scale, float)
    assert (loc, scale) == biweight_scalar_reference(a.ravel())
    assert (loc, scale) == biweight_1d(a.ravel())
    assert biweight_location(a) == loc and biweight_scale(a) == scale
    np.testing.assert_array_equal(biweight_location(a, axis=1), biweight(a, axis=1)[0])


@pytest.mark.parametrize("axis", [1, 2])
def test_3d_over_inner_axes_matches_per_slice(axis):
    rng = np.random.default_rng(axis)
    a = (100.0 + 4.0 * rng.standard_normal((4, 9, 8))).astype(np.float32)
    a[0, 3, 2] = np.nan
    loc, scale = biweight(a, axis=axis)
    assert loc.shape == scale.shape == tuple(np.delete(a.shape, axis))
    moved = np.moveaxis(a, axis, -1)
    for idx in np.ndindex(*moved.shape[:-1]):
        assert (loc[idx], scale[idx]) == biweight_scalar_reference(moved[idx])


def test_input_layouts_give_identical_results():
    rng = np.random.default_rng(5)
    a = (1000.0 + 3.0 * rng.standard_normal((20, 64))).astype(np.float32)
    loc, scale = biweight(a, axis=0)
    big_endian = biweight(a.astype(">f4"), axis=0)
    as_f64 = biweight(a.astype(np.float64), axis=0)
    strided = biweight_columns(np.asfortranarray(a)[:, ::2])
    for other in (big_endian, as_f64):
        np.testing.assert_array_equal(other[0], loc)
        np.testing.assert_array_equal(other[1], scale)
    np.testing.assert_array_equal(strided[0], loc[::2])
    np.testing.assert_array_equal(biweight(a.T, axis=1)[0], loc)


def test_empty_and_bad_axis():
    loc, scale = biweight(np.zeros((0, 3), np.float32), axis=0)
    np.testing.assert_array_equal(loc, [-666.0] * 3)
    np.testing.assert_array_equal(scale, [-2.0] * 3)
    assert biweight(np.zeros((3, 0), np.float32), axis=0)[0].shape == (0,)
    with pytest.raises(np.exceptions.AxisError):
        biweight(np.zeros((3, 4)), axis=2)
