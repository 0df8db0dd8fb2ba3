"""The star model and fits of ``hetred throughput`` (hetred.throughput.psf, starfit; kernels
hetred._ext.psfkern against their NumPy references and independent calculations)."""
from __future__ import annotations

import numpy as np
import pytest

from hetred._ext import psfkern
from hetred._ext import reference as ref
from hetred.throughput import starfit as S
from hetred.throughput.psf import AdrModel, direction_from_angle, fiber_table, fwhm_at


def _moffat_alpha(f, beta):
    return f / (2 * np.sqrt(2 ** (1 / beta) - 1))


@pytest.mark.parametrize("nang", [16, 15])
def test_table_kernel_equals_reference(nang):
    # the kernel folds the mirror-symmetric angular nodes; the reference sums all of them
    d = np.linspace(0, 5, 23)
    f = np.array([0.9, 1.7, 3.3])
    xr, wr = np.polynomial.legendre.leggauss(8)
    a = psfkern.moffat_fiber_table(d, f, 3.9, 0.75, xr, wr, nang)
    b = ref.moffat_fiber_table_reference(d, f, 3.9, 0.75, xr, wr, nang)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fwhm", [1.2, 1.8, 3.0])
@pytest.mark.parametrize("beta", [3.5, 3.9])
def test_centred_fiber_is_analytic(fwhm, beta):
    # a fiber centred on the source: 1 - (1 + R^2/a^2)^(1 - beta) (independent closed form)
    t = fiber_table(beta)
    a = _moffat_alpha(fwhm, beta)
    assert float(t.fractions(0.0, fwhm)) == pytest.approx(1 - (1 + 0.75**2 / a**2) ** (1 - beta), rel=2e-4)


@pytest.mark.parametrize("d", [0.4, 1.3, 2.7])
def test_offset_fiber_matches_brute_force(d):
    # a 1201 x 1201 lattice over the disk (independent of the quadrature)
    fwhm, beta = 1.8, 3.9
    x = np.linspace(-0.75, 0.75, 1201)
    xx, yy = np.meshgrid(x, x)
    inside = xx**2 + yy**2 <= 0.75**2
    a2 = _moffat_alpha(fwhm, beta) ** 2
    dens = (beta - 1) / (np.pi * a2) * (1 + ((xx + d) ** 2 + yy**2) / a2) ** -beta
    brute = dens[inside].sum() * (x[1] - x[0]) ** 2
    assert float(fiber_table(beta).fractions(d, fwhm)) == pytest.approx(brute, rel=2e-3)


def test_fractions_kernel_equals_reference():
    t = fiber_table()
    rng = np.random.default_rng(1)
    d, f = rng.uniform(0, 9, 500), rng.uniform(0.3, 5.0, 500)       # beyond both ends too
    np.testing.assert_allclose(t.fractions(d, f),
                               ref.table_interp_reference(t.table, d, f, t.d_step, t.fwhm0, t.fwhm_step),
                               rtol=1e-12, atol=1e-15)


def test_chi2_kernel_equals_reference():
    t = fiber_table()
    rng = np.random.default_rng(2)
    fx, fy = rng.uniform(-4, 4, 60), rng.uniform(-4, 4, 60)
    flux = 500 * t.fractions(np.hypot(fx - 0.3, fy + 0.2), 1.9) + rng.normal(0, 2, 60)
    err = np.where(rng.uniform(size=60) < 0.1, 0.0, 2.0)
    tx, ty, tf = rng.uniform(-1, 1, 40), rng.uniform(-1, 1, 40), rng.uniform(1.2, 3.2, 40)
    c1, a1 = t.chi2(fx, fy, flux, err, tx, ty, tf)
    c2, a2 = ref.chi2_trials_reference(fx, fy, flux, err, tx, ty, tf, t.table, t.d_step, t.fwhm0, t.fwhm_step)
    np.testing.assert_allclose(c1, c2, rtol=1e-9)
    np.testing.assert_allclose(a1, a2, rtol=1e-12)


def test_fwhm_scaling_and_adr_direction():
    assert float(fwhm_at(4550.0, 1.8)) == 1.8
    assert float(fwhm_at(3640.0, 2.0)) == pytest.approx(2.0 * (3640 / 4550) ** -0.2)
    # the IFU x axis on the sky for PA 30 deg (hetred.virus.coords tangent plane) is (sin, cos)
    from hetred.virus.coords import rotation_angle, tangent_to_radec

    ra, dec = tangent_to_radec(np.array([0.0, 1.0]), np.array([0.0, 0.0]), 150.0, 50.0, rotation_angle(30.0))
    east, north = (ra[1] - ra[0]) * np.cos(np.radians(50.0)) * 3600, (dec[1] - dec[0]) * 3600
    np.testing.assert_allclose(direction_from_angle(30.0), (east, north), atol=1e-5)
    adr = AdrModel(direction=np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]]))
    sx, sy = adr.shift(np.array([3500.0, 4500.0, 5250.0]), np.array([0, 1, 2]))
    np.testing.assert_allclose(sy[0], [-0.74, 0.0, 0.14])
    np.testing.assert_allclose(sx[1], [-0.74, 0.0, 0.14])
    np.testing.assert_allclose(np.hypot(sx[2], sy[2]), [0.74, 0.0, 0.14])


def _star(cx, cy, fwhm, amp_of_wave, adr, rng=None, noise=0.0):
    """A synthetic star in the 448 fibers of an IFU x 3 dithers (Karl's model itself)."""
    from hetred.virus.coords import DITHERS
    from hetred.virus.ifu import ifu_positions

    xy = ifu_positions()
    x = np.concatenate([xy[:, 0] + d[0] for d in DITHERS])
    y = np.concatenate([xy[:, 1] + d[1] for d in DITHERS])
    e = np.repeat([0, 1, 2], len(xy))
    keep = np.hypot(x - cx, y - cy) < 6
    x, y, e = x[keep], y[keep], e[keep]
    data = S.StarData(x, y, e, np.zeros((x.size, S.WAVE.size), np.float32),
                      np.ones((x.size, S.WAVE.size), np.float32), np.array([""] * x.size))
    p = S.model_fractions(fiber_table(), data, cx, cy, fwhm, adr)
    data.spec[:] = p * amp_of_wave[None, :]
    if rng is not None:
        data.spec += rng.normal(0, noise, data.spec.shape)
        data.err[:] = noise
    return data


def test_position_fwhm_and_spectrum_recovered_exactly():
    adr = AdrModel(direction=np.array([[0.6, 0.8]] * 3))
    amp = 800.0 * (1 + (S.WAVE - 4500) / 4000)
    star = _star(0.37, -0.21, 2.13, amp, adr)
    t = fiber_table()
    flux, err = S.band_flux(star.spec, np.where(star.err > 0, 1.0, 0.0))
    sx, sy = adr.shift(np.array([4550.0]), star.exp)
    x, y = star.x - sx[:, 0], star.y - sy[:, 0]
    r = S.fit_position(t, x, y, flux, err, 2.0, 0.0, 0.0, 0.2, 9)
    r = S.fit_position(t, x, y, flux, err, 2.0, r.x, r.y, 0.05, 9)
    assert (r.x, r.y) == pytest.approx((0.35, -0.20), abs=0.026)
    f = S.fit_fwhm(t, x, y, flux, err, 0.37, -0.21, np.linspace(1.2, 3.2, 201))
    assert f.fwhm == pytest.approx(2.13, abs=0.011)
    sp = S.extract(t, star, 0.37, -0.21, 2.13, adr)
    np.testing.assert_allclose(sp.counts, amp, rtol=2e-4)


def test_extraction_noise_and_error():
    rng = np.random.default_rng(5)
    adr = AdrModel()
    amp = np.full(S.WAVE.size, 300.0)
    star = _star(-1.1, 0.8, 1.7, amp, adr, rng, noise=10.0)
    sp = S.extract(fiber_table(), star, -1.1, 0.8, 1.7, adr)
    pull = (sp.counts - amp) / sp.error
    assert abs(pull.mean()) < 0.1 and np.std(pull) == pytest.approx(1.0, abs=0.06)


def test_bin100_sums_and_edges():
    counts = np.full(S.WAVE.size, 3.0)
    c, e, cov = S.bin100(counts, np.ones(S.WAVE.size))
    np.testing.assert_allclose(c, 150.0)                  # 3 per 2 A over 100 A
    np.testing.assert_allclose(cov[:-1], 1.0)
    assert cov[-1] == pytest.approx(0.51)                # 5490-5541 A of the last bin exist
    np.testing.assert_allclose(e[:-1], np.sqrt(49 + 2 * 0.25))   # 49 whole + 2 half 2-A bins
    err = np.ones(S.WAVE.size)
    err[(S.WAVE > 3994) & (S.WAVE < 4086)] = 0     # a gap: 4040 A keeps 10 A (< 20 %), 3940 A all
    c2, _, cov2 = S.bin100(counts, err)
    assert cov2[5] == pytest.approx(0.1) and c2[5] == 0.0 and cov2[4] == 1.0
    err[(S.WAVE > 5100) & (S.WAVE < 5130)] = 0     # 5140 A keeps 72 A: scaled up to the bin
    c3, _, cov3 = S.bin100(counts, err)
    assert cov3[16] == pytest.approx(0.72) and c3[16] == pytest.approx(150.0)
