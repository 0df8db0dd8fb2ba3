"""SED fits, response curve and the throughput text files (hetred.throughput.sedfit, response,
hetred.io.shotfiles) against independent calculations and, when ../shared is there, the real
stellarSEDfits files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hetred.io import shotfiles
from hetred.throughput import response as R
from hetred.throughput import sedfit as F

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "stellar"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data/real/stellar")


def test_cardelli_known_values():
    # CCM at V (5500 A: y ~ 0 -> a = 1, b = 0) is R_V; at B (4400 A) A_B / E(B-V) ~ R_V + 1
    assert F.cardelli(np.array([1e4 / 1.82]))[0] == pytest.approx(3.1, abs=1e-9)
    assert F.cardelli(np.array([4400.0]))[0] == pytest.approx(4.1, abs=0.05)


def _model_mags(t, m, g, ebv):
    return t.grid[m, 4:9] - t.grid[m, 5] + g + (F.EXT_UGRIZ - F.EXT_UGRIZ[1]) * ebv


def test_fit_of_a_grid_model_returns_its_sed():
    # u g r i z constrain the SED near g well; models of the same colours differ by up to ~10 %
    # below 4000 A (qfit_gaia's averaging of the acceptable models), checked loosely there
    t = F.load_templates()
    for m in (100, 500, 900):
        g, ebv = 18.0, 0.02
        fit = F.fit_seds(_model_mags(t, m, g, ebv)[None, :], ebv=ebv)
        true = t.binned[m] * 10 ** (-0.4 * (g - t.grid[m, 0] - F.EXT_UGRIZ[1] * ebv)) \
            * 10 ** (-0.4 * ebv * F.cardelli(F.SED_WAVE))
        assert fit.ok[0] and fit.nmodels[0] >= 3
        red = F.SED_WAVE >= 4300
        np.testing.assert_allclose(fit.sed[0][red] / true[red], 1.0, atol=0.03)
        np.testing.assert_allclose(fit.sed[0][1:] / true[1:], 1.0, atol=0.15)
        other = F.fit_seds(_model_mags(t, m, g, ebv)[None, :], ebv=ebv, g_convention="stellarsedfits")
        np.testing.assert_allclose(other.sed[0] / fit.sed[0], 10 ** (-0.4 * 3.771 * ebv), rtol=1e-5)


def test_bad_magnitudes_are_rejected_with_a_reason():
    fit = F.fit_seds(np.array([[np.nan, 18, 17.5, 17.3, 17.2], [19.0, 18.0, 17.6, 17.4, 17.3]]))
    assert not fit.ok[0] and "not finite" in fit.reason[0] and fit.ok[1]


def _shared_grid():
    return np.loadtxt(SHARED / "stargrid-150501.dat", usecols=[1, 2, 3, 4, 8, 9, 10, 11, 12], skiprows=1)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/real/stellar")
def test_packaged_prior_is_qfit_gaias():
    # qfit_gaia's LinearNDInterpolator of the mgvz tables at every model (a Delaunay of 54,000
    # points: ~1 min, hence slow)
    from scipy.interpolate import LinearNDInterpolator

    grid = _shared_grid()
    xd, yd = np.loadtxt(SHARED / "mgvz_mg_x.dat"), np.loadtxt(SHARED / "mgvz_zmet_y.dat")
    zz = np.loadtxt(SHARED / "mgvz_prior_z.dat")
    xx, yy = np.meshgrid(xd, yd)
    prior = LinearNDInterpolator(np.column_stack([xx.ravel(), yy.ravel()]), zz.ravel())(grid[:, 0], grid[:, 1])
    np.testing.assert_allclose(F.load_templates().prior, prior, rtol=1e-12)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/real/stellar")
def test_selection_equals_a_literal_qfit_gaia():
    # qfit_gaia's likelihood restated naively on the real grid file (the prior values: the
    # packaged ones, checked against qfit_gaia's interpolation by the slow test above)
    grid = _shared_grid()
    t = F.load_templates()
    np.testing.assert_allclose(t.grid, grid, atol=1e-4)
    odd = (grid[:, 2] > 3.76) & (grid[:, 2] < 3.79) & (grid[:, 3] > 2.5) & (grid[:, 3] < 3.0)
    rng = np.random.default_rng(3)
    for m in rng.integers(0, 1024, 5):
        mags = _model_mags(t, m, 19.0, 0.02) + rng.normal(0, 0.02, 5)
        model = grid[:, 4:9] + F.EXT_UGRIZ * 0.02
        e = np.sqrt(np.array([0.05**2, 0.02**2, 0.02**2, 0.02**2]) + 0.02**2 + 0.0008)
        lnp = np.full(1024, -np.inf)
        for k in np.nonzero(~odd)[0]:
            d = [((mags[c] - mags[c + 1]) - (model[k, c] - model[k, c + 1])) / e[c] for c in range(4)]
            lnp[k] = -0.5 * sum(dd * dd + np.log(2 * np.pi * ee * ee) for dd, ee in zip(d, e)) + t.prior[k]
        third = np.sort(lnp[np.isfinite(lnp)])[-3]
        kept = np.nonzero(third - lnp < 2.5)[0]
        fit = F.fit_seds(mags[None, :])
        assert fit.nmodels[0] == kept.size
        assert np.isclose(lnp[fit.best[0]], third)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/real/stellar")
def test_packaged_templates_are_the_real_spectra():
    # the packaged 100-A means, divided by the same means of the real (cut) MILES file, are one
    # constant per model (the M_g scaling): the spectra are the real ones, bin by bin
    from astropy.io import fits

    t = F.load_templates()
    with fits.open(SHARED / "miles_templates_3540_5700.fits") as h:
        spec = h[0].data.astype(float)
        w = h[0].header["CRVAL1"] + h[0].header["CDELT1"] * np.arange(spec.shape[1])
    for m in (0, 333, 1023):
        means = [spec[m, (w >= c - 50) & (w < c + 50)].mean() for c in F.SED_WAVE[1:]]
        r = t.binned[m, 1:] / np.array(means)
        assert np.ptp(r) / r.mean() < 5e-3      # the edge pixels are weighted by overlap in the package


def test_robin_polynomial_values():
    # shared/reference/astrom_throughput.md §3.6: 0.0217 @3500, 0.1060 @4540, 0.0831 @5500
    np.testing.assert_allclose(R.robin([3500.0, 4540.0, 5500.0]), [0.0217, 0.1060, 0.0831], atol=6e-5)


def test_fitpoly_recovers_its_model():
    w = F.SED_WAVE
    tp = R.robin(w) * (1.37 + 0.11 * (w - 4500) / 2000)
    f = R.fitpoly(w, tp, tp_g=0.12)
    assert (f.c1, f.c2) == pytest.approx((1.37, 0.11), abs=2e-4)
    np.testing.assert_allclose(f.rat_poly[w < 5450], 1.0, atol=2e-3)
    # tp_gband: 1.1 tp_g P(lambda) / P(grid point nearest 4940 A) (1 + 0.18 (lambda - 4500) / 2000)
    xp = np.linspace(3500, 5500, 100)
    p0 = R.robin(xp[np.argmin(np.abs(xp - 4940))])
    np.testing.assert_allclose(f.tp_gband, 1.1 * 0.12 * np.interp(w, xp, R.robin(xp)) / p0
                               * (1 + 0.18 * (w - 4500) / 2000), rtol=1e-9)
    assert not np.any(R.fitpoly(w, tp).tp_gband)


def test_combsed_flags_and_combines():
    w = F.SED_WAVE
    base = R.robin(w) * 1.5
    rng = np.random.default_rng(4)
    curves = np.array([base * (1 + rng.normal(0, 0.01, w.size)) * s for s in (0.95, 1.0, 1.05, 1.02)]
                      + [base * (1 + 0.5 * (w - 4500) / 2000)]            # wrong shape: rms too big
                      + [base * 0.002])                                  # no light: level < 0.005
    c = R.combsed(curves, R.robin(w), 0.2, 0.02)
    assert list(c.flag[:4]) == [0, 0, 0, 0] and c.flag[4] >= 1 and c.flag[5] == 2
    assert c.n == 4
    np.testing.assert_allclose(c.tp / base, 1.005, atol=0.02)
    assert np.all(c.tp_low < c.tp) and np.all(c.tp_high > c.tp)


def test_getsdssg_and_g_counts():
    # Karl's sum S_i y_i / sum S_i over 4000 < lambda < 5400 (no lambda weight): a constant stays
    w = F.SED_WAVE
    assert R.getsdssg(w, np.full(w.size, 7.0)) == pytest.approx(7.0)
    y = np.where(w == 4540.0, 1.0, 0.0)
    s = np.array(R.SDSSG)
    inside = (w > 4000) & (w < 5400)
    assert R.getsdssg(w, y) == pytest.approx(np.interp(4540, s[:, 0], s[:, 1]) / np.interp(w[inside], s[:, 0], s[:, 1]).sum())
    # AB g = 20 at 4680 A: 5.048e-9 x 1e-8 erg/s/cm2/A / (6.626e-27 x 3e18 / 4680) photons x 360 s x 5e5 cm2 x 100 A
    assert float(R.g_expected_counts(20.0)) == pytest.approx(5.048e-17 * 4680 / 1.9878e-8 * 1.8e10, rel=1e-4)


def test_sedtp_files_round_trip_and_formats():
    w = F.SED_WAVE
    text = shotfiles.format_sedtp_f(w, R.robin(w), np.ones(w.size), np.zeros(w.size))
    lines = text.splitlines()
    assert len(lines) == 21 and lines[10] == " 4540.0  0.1060  0.0000  0.0000  1.0000  0.0000"
    assert all(len(line) == 1 + 6 + 5 * 8 for line in lines)            # 1x,f6.1,5(1x,f7.4)
    comb = shotfiles.format_sedtp(w, R.robin(w), R.robin(w) - 0.001, R.robin(w) + 0.001, R.robin(w))
    assert comb.splitlines()[10] == "4540.0  0.106  0.105  0.107  0.106"      # f6.1,4(1x,f6.3)
    assert shotfiles.format_fwhm_all([("20180110v007", 1.8123, 0.1, 12)]) == "20180110v007 1.8123 0.1000 12\n"


def test_dithall_with_and_without_header(tmp_path):
    head = ("          ra         dec  ifuslot        XS        YS   xfplane   yfplane"
            "                     multifits          timestamp  exposure\n")
    row = (" 207.6156535  51.2284981   ifu015    -1.270     0.000   -51.270  -450.000"
           "  multi_301_015_038_LL_001.ixy  20180611T054545.2     exp01\n")
    for text in (head + row, row):
        p = tmp_path / "dithall.use"
        p.write_text(text)
        d = shotfiles.read_dithall(p)
        assert (len(d), d.specid[0], d.ifuslot[0], d.ifuid[0], d.amp[0], d.fiber[0], d.exp[0]) == \
            (1, 301, 15, "038", "LL", 1, 1)
        assert d.ra[0] == 207.6156535
