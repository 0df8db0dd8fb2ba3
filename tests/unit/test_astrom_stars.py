"""hetred's star finder and PSF photometry (hetred.astrom.stars) on synthetic images, against the
injected truth and against photutils' PSFPhotometry (the library reference of the same fit)."""
from __future__ import annotations

import numpy as np
import pytest

from hetred.astrom.stars import BadImage, FinderSettings, Psf, find_exposure, find_stars, fit_psf, moffat_psf


def _image(stars, psf: Psf, noise=0.5, shape=(51, 51), seed=1):
    """stars: (x, y, flux) with 0-based pixel centres; the PSF integrated on a 5x5 sub-grid."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    img = rng.normal(0.0, noise, shape)
    sub = (np.arange(5) + 0.5) / 5 - 0.5
    for x, y, f in stars:
        acc = np.zeros(shape)
        for sx in sub:
            for sy in sub:
                acc += psf.value(xx + sx - x, yy + sy - y)
        img += f * acc / 25.0
    return img


def test_psf_is_normalised_and_its_gradient_matches_finite_differences():
    psf = Psf(3.27, 3.634, 0.0475, 2.5)
    h = 0.01
    g = np.arange(-200, 200.001, h * 20)
    xx, yy = np.meshgrid(g, g)
    # integral of the unit-flux PSF (the far wings of beta = 2.5 carry ~0.02 % beyond 200 px)
    assert np.sum(psf.value(xx, yy)) * (h * 20) ** 2 == pytest.approx(1.0, abs=2e-3)
    dx, dy = np.array([0.7, -1.3]), np.array([0.2, 2.1])
    _p, gx, gy = psf.value_and_gradient(dx, dy)
    assert gx == pytest.approx(-(psf.value(dx + 1e-6, dy) - psf.value(dx - 1e-6, dy)) / 2e-6, rel=1e-5)
    assert gy == pytest.approx(-(psf.value(dx, dy + 1e-6) - psf.value(dx, dy - 1e-6)) / 2e-6, rel=1e-5)
    # DAOPHOT's half width at half maximum along x
    assert psf.value(np.array([1.635]), np.array([0.0]))[0] / psf.value(np.array([0.0]), np.array([0.0]))[0] \
        == pytest.approx(0.5, abs=1e-3)


def test_fit_recovers_injected_stars_including_a_close_pair():
    psf = moffat_psf(4.5)
    truth = [(12.3, 30.6, 900.0), (33.8, 14.2, 300.0), (41.0, 18.5, 150.0), (25.0, 45.5, 60.0)]
    img = _image(truth, psf, noise=0.3)
    t = find_stars(img, FinderSettings(psf_fwhm=(4.5,), psf_xy=0.0, mag_zero_point=25.0))
    assert 4 <= len(t) <= 7          # a 2-sigma threshold also finds a few noise peaks (as DAOPHOT)
    for (x, y, f), tol in zip(truth, (0.03, 0.1, 0.1, 0.5)):   # a pair 8.4 px apart; S/N ~ 20: sigma ~0.15 px
        k = int(np.argmin(np.hypot(t["x"] - 1 - x, t["y"] - 1 - y)))     # .als x, y are 1-based
        assert t["x"][k] - 1 == pytest.approx(x, abs=tol) and t["y"][k] - 1 == pytest.approx(y, abs=tol)
        assert 10 ** ((25 - t["mag"][k]) / 2.5) == pytest.approx(f, rel=0.06)


def test_fit_agrees_with_photutils_psfphotometry():
    """The same fixed-PSF fit (x, y, flux within the fitting radius) done by photutils."""
    from astropy.table import Table
    from photutils.psf import MoffatPSF, PSFPhotometry

    fw, beta = 4.0, 2.5
    psf = moffat_psf(fw, beta)
    truth = [(14.2, 20.7, 500.0), (35.6, 33.1, 200.0), (25.4, 9.8, 80.0)]
    img = _image(truth, psf, noise=0.3, seed=4)
    x0 = np.array([14.0, 35.9, 25.0])
    y0 = np.array([21.0, 33.0, 10.1])
    ours = fit_psf(img, 0.3, x0, y0, psf, radius=3.0)
    alpha = fw / (2 * np.sqrt(2 ** (1 / beta) - 1))
    model = MoffatPSF(alpha=alpha, beta=beta)
    model.alpha.fixed = model.beta.fixed = True
    phot = PSFPhotometry(model, (7, 7), aperture_radius=3.0)
    ref = phot(img, error=np.full(img.shape, 0.3), init_params=Table({"x": x0, "y": y0}))
    # photutils fits the full 7x7 box, hetred the pixels within 3 px: same answer within the noise
    assert ours.x == pytest.approx(np.asarray(ref["x_fit"]), abs=0.05)
    assert ours.y == pytest.approx(np.asarray(ref["y_fit"]), abs=0.05)
    assert ours.flux == pytest.approx(np.asarray(ref["flux_fit"]), rel=0.03)
    assert ours.x == pytest.approx([t[0] for t in truth], abs=0.1)     # S/N ~ 30 for the faintest


def test_bad_images_are_reported_not_fatal():
    s = FinderSettings()
    good = _image([(20.0, 20.0, 500.0)], moffat_psf(4.0))
    tables, _psf, bad = find_exposure({1: good, 2: np.full((51, 51), np.nan), 3: np.zeros((51, 51))}, s)
    assert set(tables) == {1} and np.min(np.hypot(tables[1]["x"] - 21, tables[1]["y"] - 21)) < 0.1
    assert bad == {2: "no finite pixel (all NaN)", 3: "no noise (constant image)"}
    with pytest.raises(BadImage):
        find_stars(np.full((51, 51), np.nan), s)
    partial = good.copy()
    partial[:, :10] = np.nan                    # a dead amp's columns: the rest still measured
    t = find_stars(partial, s)
    assert np.min(np.hypot(t["x"] - 21, t["y"] - 21)) < 0.1


def test_fitted_psf_width():
    from hetred.astrom.stars import fit_psf_fwhm

    psf = moffat_psf(4.6)
    imgs = {k: _image([(15.0 + k, 22.0, 800.0), (36.0, 30.0 - k, 500.0)], psf, noise=0.3, seed=k)
            for k in range(4)}
    got = fit_psf_fwhm(imgs, FinderSettings(psf_fwhm=()))
    assert got is not None and got.fwhm_x == pytest.approx(4.6, abs=0.15)
