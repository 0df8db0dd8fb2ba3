"""Rectification (hetred.sci.rectify, kernel hetred._ext.rebin) on synthetic spectra whose truth
is known exactly.

* the Cython kernel equals its NumPy reference (reference.rebin_reference) to 1e-5, and both
  equal a brute-force dense overlap matrix, with masked / NaN pixels, dead and non-monotonic
  fibers and partial coverage at the ends;
* flux conservation: the sum over output bins equals the sum over native pixels when the
  fiber lies inside the grid; a constant spectral density is reproduced exactly in every bin;
* the propagated errors equal the Monte-Carlo scatter; a line keeps its counts and centroid;
* masked pixels blank exactly the bins they touch (0 with error 0, the calfib convention);
* the rectified product is written and read back with its provenance header.
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hetred._ext import reference as R
from hetred._ext.rebin import rebin_fibers
from hetred.layout import Layout
from hetred.sci import rectify as RC

NFIB, NPIX = 112, 1032


def virus_wave(rng, nfib: int = NFIB, npix: int = NPIX) -> np.ndarray:
    """VIRUS-like wavelengths: ~3470-5540 A over 1032 columns, a few A shift per fiber, curved."""
    t = np.linspace(0.0, 1.0, npix)[None, :]
    start = 3466.0 + rng.uniform(-4, 4, (nfib, 1))
    span = 2075.0 + rng.uniform(-6, 6, (nfib, 1))
    return start + span * t + 6.0 * (t ** 2 - t)


def noisy_inputs(seed: int = 3):
    rng = np.random.default_rng(seed)
    wave = virus_wave(rng)
    spec = rng.normal(200.0, 40.0, (NFIB, NPIX))
    err = np.sqrt(np.abs(spec) + 9.0)
    mask = rng.random((NFIB, NPIX)) < 0.01
    spec[5, 100:103] = np.nan                   # NaN values
    err[6, 200] = 0.0                           # Karl's zeroed error
    wave[7] = 0.0                               # dead fiber: no wavelength solution
    wave[8, 500] = wave[8, 499] - 0.1           # non-monotonic fiber
    return spec, err, wave, mask


def dense_rebin(counts, var, bad, wave, edges):
    """Brute force: the full (nout, npix) overlap-fraction matrix of one fiber."""
    e = np.empty(wave.size + 1)
    e[1:-1] = 0.5 * (wave[1:] + wave[:-1])
    e[0] = wave[0] - 0.5 * (wave[1] - wave[0])
    e[-1] = wave[-1] + 0.5 * (wave[-1] - wave[-2])
    lo, hi = edges[:-1, None], edges[1:, None]
    ov = np.clip(np.minimum(e[None, 1:], hi) - np.maximum(e[None, :-1], lo), 0, None)
    frac = ov / np.diff(e)[None, :]
    frac[frac <= RC.EPS] = 0.0
    flux = frac @ np.where(bad, 0, counts)
    err = np.sqrt((frac ** 2) @ np.where(bad, 0, var))
    missing = ((frac > 0) @ bad.astype(float) > 0) | (edges[:-1] < e[0]) | (edges[1:] > e[-1])
    return np.where(missing, 0, flux), np.where(missing, 0, err)


def test_kernel_equals_reference_and_brute_force():
    spec, err, wave, mask = noisy_inputs()
    flux, ferr = RC.rectify(spec, err, wave, mask)
    assert flux.shape == ferr.shape == (NFIB, RC.N_RECT) and flux.dtype == ferr.dtype == np.float32
    bad = ~(np.isfinite(spec) & (err > 0)) | mask
    c, v = np.where(bad, 0, spec), np.where(bad, 0, err ** 2)
    rf, re = R.rebin_reference(c, v, bad, wave, RC.RECT_EDGES, RC.EPS)
    scale = np.abs(rf).max()
    assert np.max(np.abs(flux - rf)) <= 1e-5 * scale
    assert np.max(np.abs(ferr - re)) <= 1e-5 * np.abs(re).max()
    assert np.array_equal(flux == 0, rf == 0)
    for f in (0, 5, 6, 50, 111):
        df, de = dense_rebin(c[f], v[f], bad[f], wave[f], RC.RECT_EDGES)
        np.testing.assert_allclose(flux[f], df, rtol=1e-5, atol=1e-5 * scale)
        np.testing.assert_allclose(ferr[f], de, rtol=1e-5, atol=1e-5 * np.abs(re).max())
    # the invalid fibers are blank; the NaN and zero-error pixels blank only their bins
    assert not flux[7].any() and not ferr[7].any() and not flux[8].any()
    for f, k in ((5, 101), (6, 200)):
        b = np.searchsorted(RC.RECT_EDGES, wave[f, k]) - 1
        assert flux[f, b] == 0 and ferr[f, b] == 0


def test_flux_conservation_inside_the_grid():
    rng = np.random.default_rng(5)
    wave = 3480.0 + np.cumsum(rng.uniform(1.9, 2.1, (4, 1000)), axis=1)    # 3482 .. ~5480 A
    spec = rng.uniform(0, 100, wave.shape)
    flux, _ = RC.rectify(spec, np.ones_like(spec), wave)
    for f in range(4):
        e = np.concatenate([[wave[f, 0] - 0.5 * (wave[f, 1] - wave[f, 0])], 0.5 * (wave[f, 1:] + wave[f, :-1]),
                            [wave[f, -1] + 0.5 * (wave[f, -1] - wave[f, -2])]])
        cum = np.concatenate([[0.0], np.cumsum(spec[f])])
        got = np.nonzero(flux[f])[0]
        assert np.all(np.diff(got) == 1)                 # one contiguous run of covered bins
        first, last = got[0], got[-1]
        # the bins just outside reach beyond the fiber's first / last pixel edge
        assert RC.RECT_EDGES[first] >= e[0] > RC.RECT_EDGES[first - 1]
        assert RC.RECT_EDGES[last + 1] <= e[-1] < RC.RECT_EDGES[last + 2]
        # sum over bins == the pixels' counts between the outer bin edges (edge pixels in part)
        want = np.interp(RC.RECT_EDGES[last + 1], e, cum) - np.interp(RC.RECT_EDGES[first], e, cum)
        assert abs(flux[f].sum() - want) <= 1e-6 * want
        # and the whole pixels inside are all counted: the difference is only the two edge pixels
        inside = (e[:-1] >= RC.RECT_EDGES[first]) & (e[1:] <= RC.RECT_EDGES[last + 1])
        assert spec[f][inside].sum() <= flux[f].sum() <= spec[f][inside].sum() + 2 * spec[f].max()


def test_constant_density_is_exact():
    """A step function of constant density d (counts per A) gives 2 d in every covered bin."""
    rng = np.random.default_rng(6)
    wave = virus_wave(rng, nfib=3)
    e = np.concatenate([wave[:, :1] - 0.5 * (wave[:, 1:2] - wave[:, :1]), 0.5 * (wave[:, 1:] + wave[:, :-1]),
                        wave[:, -1:] + 0.5 * (wave[:, -1:] - wave[:, -2:-1])], axis=1)
    spec = 7.5 * np.diff(e, axis=1)
    flux, _ = RC.rectify(spec, np.ones_like(spec), wave)
    covered = flux != 0
    assert covered.sum(axis=1).min() > 1025
    np.testing.assert_allclose(flux[covered], 15.0, rtol=1e-6)


def test_errors_match_monte_carlo_and_lines_keep_counts_and_centre():
    rng = np.random.default_rng(7)
    wave = virus_wave(rng, nfib=1)[0]
    centre, sigma, total = 4501.3, 2.4, 5000.0
    e = np.concatenate([[wave[0] - 0.5 * (wave[1] - wave[0])], 0.5 * (wave[1:] + wave[:-1]),
                        [wave[-1] + 0.5 * (wave[-1] - wave[-2])]])
    from scipy.special import erf
    cdf = 0.5 * (1 + erf((e - centre) / (sigma * np.sqrt(2))))
    line = total * np.diff(cdf)
    err = np.sqrt(line + 100.0)                                 # as if on a continuum of 100
    flux, ferr = RC.rectify(line[None], err[None], wave[None])
    sel = np.abs(RC.RECT_WAVE - centre) < 20
    got = flux[0][sel]
    assert abs(got.sum() - total) / total < 1e-4
    cen = np.sum(RC.RECT_WAVE[sel] * got) / got.sum()
    assert abs(cen - centre) < 0.02
    # Monte Carlo: 3000 noise draws, scatter per bin vs the propagated error
    draws = line[None] + rng.normal(size=(3000, wave.size)) * err[None]
    mc, _ = RC.rectify(draws, np.broadcast_to(err, draws.shape), np.broadcast_to(wave, draws.shape))
    ok = ferr[0] > 0
    ratio = mc[:, ok].std(axis=0) / ferr[0][ok]
    assert abs(np.median(ratio) - 1) < 0.02 and ratio.min() > 0.85 and ratio.max() < 1.15


def test_masked_pixel_blanks_exactly_its_bins():
    wave = (3460.0 + 2.02 * np.arange(NPIX))[None]
    spec = np.full((1, NPIX), 50.0)
    mask = np.zeros((1, NPIX), bool)
    mask[0, 400] = True
    flux, ferr = RC.rectify(spec, np.ones_like(spec), wave, mask)
    lo, hi = wave[0, 400] - 1.01, wave[0, 400] + 1.01
    touch = (RC.RECT_EDGES[1:] > lo + 1e-6) & (RC.RECT_EDGES[:-1] < hi - 1e-6)
    assert touch.sum() in (2, 3)          # a 2.02 A pixel can touch three 2 A bins
    assert np.all(flux[0][touch] == 0) and np.all(ferr[0][touch] == 0)
    inside = (RC.RECT_EDGES[:-1] >= wave[0, 0] - 1.01) & (RC.RECT_EDGES[1:] <= wave[0, -1] + 1.01)
    assert np.all(flux[0][inside & ~touch] > 0) and np.all(ferr[0][inside & ~touch] > 0)


def test_kernel_rejects_bad_shapes():
    a = np.zeros((2, 10))
    with pytest.raises(ValueError):
        rebin_fibers(a, np.zeros((2, 9)), np.zeros((2, 10), np.uint8), a, RC.RECT_EDGES)
    with pytest.raises(ValueError):
        RC.rectify(np.zeros((2, 10)), np.ones((2, 10)), np.zeros((3, 10)))


def test_rectified_product_round_trip(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    spec, err, wave, mask = noisy_inputs()
    flux, ferr = RC.rectify(spec, err, wave, mask)
    raw = fits.Header()
    raw["OBJECT"] = "DEXfl_12_34"
    raw["NAME0"] = "20180611T054545.2_015LL_sci.fits"
    raw["NAXIS1"] = 1032
    raw["CRVAL1"] = 1.0
    raw["EXPTIME"] = 360.0
    p = RC.write_rectified(lay, night="20180611", obs=17, exp=1, specid=301, ifuslot=15, ifuid="038",
                           amp="LL", flux=flux, error=ferr, header=raw, inputs=["multi_301_015_038_LL.fits"])
    assert p.name == "rect_301_015_038_LL.fits" and "virus0000017/exp01/virus" in p.as_posix()
    f2, e2, h = RC.read_rectified(p)
    assert np.array_equal(f2, flux) and np.array_equal(e2, ferr)
    assert h["HETRED"] and h["SPECID"] == "301" and h["IFUSLOT"] == "015" and h["AMP"] == "LL"
    assert h["OBJECT"] == "DEXfl_12_34" and h["EXPTIME"] == 360.0 and h["NAME0"].startswith("2018")
    assert "CRVAL1" not in h and "multi_301_015_038_LL.fits" in str(h["HISTORY"])
    with fits.open(p) as hd:
        assert [x.name for x in hd] == ["PRIMARY", "CALFIB_COUNTS", "CALFIBE_COUNTS"]
        eh = hd["calfib_counts"].header
        assert eh["CRVAL1"] == 3470.0 and eh["CDELT1"] == 2.0 and eh["CRPIX1"] == 1.0
        assert hd[1].data.dtype.kind == "f" and hd[1].data.dtype.itemsize == 4
        assert hd[1].data.shape == (NFIB, 1036)
