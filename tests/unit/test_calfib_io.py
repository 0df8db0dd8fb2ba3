"""The calibrated-fiber arithmetic and its shared readers (hetred.calfib.calibrate,
hetred.io.fiberspec, hetred.io.fastfits) against independent calculations and astropy."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hetred.calfib import calibrate as C
from hetred.io import fastfits
from hetred.io.fiberspec import GRID, AmpSpectra, ftf_on_grid


def test_fastfits_round_trip_and_astropy_agree(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(7, 13)).astype(np.float32)
    b = rng.normal(size=(3, 5)).astype(np.float32)
    p = fastfits.write_images(tmp_path / "x.fits", [(a, [("EXTNAME", "calib", ""), ("CALMONTH", "201801", "m"),
                                                         ("STRUCTAZ", 123.5, "")]),
                                                    (b, [("EXTNAME", "second", "")])])
    with fits.open(p) as h:
        h.verify("exception")
        np.testing.assert_array_equal(h[0].data, a)
        np.testing.assert_array_equal(h["second"].data, b)
        assert h[0].header["CALMONTH"] == "201801"
    arrays, keys = fastfits.read_images(p, ("calib", "second"), ("CALMONTH", "STRUCTAZ", "NOPE"))
    np.testing.assert_array_equal(arrays["calib"], a)
    np.testing.assert_array_equal(arrays["second"], b)
    assert keys == {"CALMONTH": "201801", "STRUCTAZ": 123.5}
    # a file astropy wrote (a table HDU in between, a primary with no data): still found by name
    hd = fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("A", "J", array=np.arange(5))],
                                                                        name="tab"),
                       fits.ImageHDU(a.astype(np.float64), name="wavelength")])
    hd.writeto(tmp_path / "y.fits")
    arr, _ = fastfits.read_images(tmp_path / "y.fits", ("wavelength",))
    np.testing.assert_array_equal(arr["wavelength"], a.astype(np.float64))
    with pytest.raises(KeyError):
        fastfits.read_images(tmp_path / "y.fits", ("nothing",))


def test_ftf_on_grid_equals_per_fiber_interp():
    rng = np.random.default_rng(2)
    wave = 3466 + rng.uniform(-5, 5, (20, 1)) + np.linspace(0, 2080, 1032)[None, :]
    ftf = rng.uniform(0.8, 1.2, (20, 1032))
    wave[3, 500] = wave[3, 499]                     # not increasing: that fiber is 0
    got = ftf_on_grid(wave, ftf)
    for i in range(20):
        want = np.zeros(GRID.size) if i == 3 else np.interp(GRID, wave[i], ftf[i], left=0, right=0)
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-7)


def test_calibration_factors_and_masks():
    counts = np.full((2, GRID.size), 100.0, np.float32)
    err = np.full((2, GRID.size), 10.0, np.float32)
    err[1, :5] = 0                                   # no data
    ftf = np.ones((2, GRID.size), np.float32)
    ftf[0, 10] = 0.05                                # below Karl's 0.1
    fac = C.flux_factor([3540.0, 5540.0], [0.13, 0.13])
    cal, cale, cc, cce = C.calibrate(counts, err, ftf, 0.9, 1.1, fac)
    np.testing.assert_allclose(cc[0, 0], 100 / 0.99, rtol=1e-6)
    np.testing.assert_allclose(cal[0, 535], 100 / 0.99 * 6.626e-27 * 3e18 / 360 / 5e5 / GRID[535] / 0.13 * 1e17,
                               rtol=1e-5)
    assert cal[0, 10] == cale[0, 10] == cc[0, 10] == 0 and not cal[1, :5].any() and not cce[1, :5].any()
    np.testing.assert_allclose(cale / np.where(cal != 0, cal, 1), np.where(cal != 0, 0.1, 0), rtol=1e-5)
    amp = AmpSpectra(counts, err, ftf, 0.9, {})
    c2, e2 = amp.calibrated(1.1)
    np.testing.assert_array_equal(c2, cc)
    np.testing.assert_array_equal(e2, cce)


def test_karl_error_model():
    # flat counts c over sky s: sigma = sqrt(s + c + 3 * 3^2 + (0.03 (s + c))^2)
    c = np.full((3, 200), 40.0)
    sky = np.full((3, 200), 160.0)
    sig = C.karl_error(c, sky)
    np.testing.assert_allclose(sig, np.sqrt(200 + 27 + (0.03 * 200) ** 2), rtol=1e-5)
    # a narrow line (3 px) exceeds the +-5 px biweight + 1.2 scale: the +-1 px value is used
    c[:, 100:103] = 400.0
    sig = C.karl_error(c, sky)
    assert sig[0, 101] == pytest.approx(np.sqrt(560 + 27 + (0.03 * 560) ** 2), rel=1e-4)
    # negative counts add nothing
    assert C.karl_error(np.full((1, 50), -30.0), np.full((1, 50), 100.0))[0, 25] == \
        pytest.approx(np.sqrt(100 + 27 + 9), rel=1e-6)
