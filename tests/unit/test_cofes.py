"""Reconstructed IFU images (hetred.sci.cofes) and the focal-plane PNG (hetred.sci.fplane_png).

* the grid and header are those of the real CoFeS files (51 x 51 float32, first pixel at IFU
  (-25.15, -25.24)", CRPIX1/CRPIX2 carrying those numbers), checked against the real
  astrometry image of shot 20180611 v017 in ../shared when present;
* orientation: image[j, i] is IFU (x, y) = (-25.15 + i, -25.24 + j);
* Karl's normalisation: a uniform field of f per fiber reconstructs to ~f per pixel;
* a point source sampled by the fiber pattern of one exposure is recovered at its position
  (within the under-sampling limit of one dither);
* the band flux is the biweight over columns 400..800 without masked / NaN columns;
* the 1de.png is written for a simulated and for the real focal plane.
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hetred.layout import Layout
from hetred.sci import cofes as C
from hetred.sci import fplane_png as P
from hetred.virus import ifu
from hetred.virus.fplane import FplaneEntry, read_fplane
from tests.helpers import real_file


def _star(xy: np.ndarray, x0: float, y0: float, total: float = 1000.0, fwhm: float = 1.8) -> np.ndarray:
    """Counts per fiber of a Gaussian star (fiber area 1.77 arcsec^2, no aperture integral)."""
    s = fwhm / 2.355
    r2 = (xy[:, 0] - x0) ** 2 + (xy[:, 1] - y0) ** 2
    return total * np.exp(-0.5 * r2 / s ** 2) / (2 * np.pi * s ** 2) * (np.pi * 0.75 ** 2)


def _centroid(img: np.ndarray, half: int = 4) -> tuple[float, float]:
    j, i = np.unravel_index(np.argmax(img), img.shape)
    sub = img[j - half:j + half + 1, i - half:i + half + 1]
    jj, ii = np.mgrid[j - half:j + half + 1, i - half:i + half + 1]
    w = np.clip(sub, 0, None)
    return C.X0 + (ii * w).sum() / w.sum(), C.Y0 + (jj * w).sum() / w.sum()


def test_grid_matches_the_real_files():
    assert C.grid_x()[0] == -25.15 and C.grid_y()[0] == -25.24 and C.grid_x().size == 51
    xy = ifu.ifu_positions()
    # one pixel beyond the outermost fibers, as Panacea's make_collapsed_frame grid
    assert np.isclose(xy[:, 0].min() - 1.0, C.X0, atol=0.01) and np.isclose(xy[:, 1].min() - 1.0, C.Y0)


def test_real_astrometry_image_has_our_grid():
    p = real_file("astrometry", "20180611T054545_015.fits")
    with fits.open(p) as h:
        assert h[0].data.shape == (C.NPIX, C.NPIX) and h[0].data.dtype.itemsize == 4
        assert np.isclose(h[0].header["CRVAL1"], C.X0) and np.isclose(h[0].header["CRVAL2"], C.Y0)
        assert h[0].header["CDELT1"] == C.PIXEL


def test_orientation_single_fiber():
    img = C.cofes_image(np.array([[10.0, -5.0]]), np.array([3.0]))
    j, i = np.unravel_index(np.argmax(img), img.shape)
    assert (i, j) == (int(round(10.0 - C.X0)), int(round(-5.0 - C.Y0)))
    assert img.dtype == np.float32 and img.shape == (51, 51)
    # truncated at 6": nothing beyond
    yy, xx = np.meshgrid(C.grid_y(), C.grid_x(), indexing="ij")
    assert np.all(img[np.hypot(xx - 10, yy + 5) >= C.RMAX] == 0)


def test_uniform_field_reconstructs_to_the_fiber_value():
    xy = ifu.ifu_positions()
    img = C.cofes_image(xy, np.full(448, 12.0))
    yy, xx = np.meshgrid(C.grid_y(), C.grid_x(), indexing="ij")
    inner = (np.abs(xx) < 17) & (np.abs(yy) < 17)
    assert abs(img[inner].mean() / 12.0 - 1) < 0.02
    assert img[inner].std() / img[inner].mean() < 0.03
    # zero and NaN fibers are skipped (holes), not propagated
    f = np.full(448, 12.0)
    f[0], f[200] = 0.0, np.nan
    assert np.all(np.isfinite(C.cofes_image(xy, f)))


@pytest.mark.parametrize("x0,y0", [(0.3, -0.4), (-12.7, 8.1), (15.2, 15.9)])
def test_point_source_position(x0, y0):
    """One exposure under-samples the PSF (fibers 2.5" apart): measured over 200 random positions,
    the image centroid is off by median/max 0.42/0.61" for 1.8" FWHM and 0.14/0.26" for 2.5"."""
    xy = ifu.ifu_positions()
    img = C.cofes_image(xy, _star(xy, x0, y0, fwhm=2.5))
    cx, cy = _centroid(img)
    assert np.hypot(cx - x0, cy - y0) < 0.3
    img = C.cofes_image(xy, _star(xy, x0, y0, fwhm=1.8))
    cx, cy = _centroid(img)
    assert np.hypot(cx - x0, cy - y0) < 0.65


def test_band_flux_biweight_without_masked_columns():
    rng = np.random.default_rng(2)
    spec = rng.normal(0.0, 1.0, (112, 1032)).astype(np.float32) + np.linspace(0, 10, 112)[:, None]
    spec[:, :399] = 1e4             # outside the band: ignored
    spec[:, 800:] = -1e4
    mask = np.zeros(spec.shape, bool)
    mask[3, 399:700] = True         # masked part of the band: left out
    spec[3, 399:700] = 1e6
    spec[4, 500:510] = np.nan
    spec[5, :] = np.nan             # no usable column -> 0
    got = C.fiber_band_flux(spec, mask)
    want = np.linspace(0, 10, 112)
    ok = np.arange(112) != 5
    assert np.max(np.abs(got[ok] - want[ok])) < 0.25 and got[5] == 0.0
    with pytest.raises(ValueError):
        C.fiber_band_flux(spec, columns=(0, 10))


def test_cofes_from_amps_and_file(tmp_path):
    """Four amps' multi arrays -> image -> CoFeS file with the real files' header cards."""
    rng = np.random.default_rng(4)
    x0, y0 = -6.3, 11.2
    ifupos, sky = {}, {}
    for amp in C.AMPS:
        pos = ifu.amp_positions(amp)
        ifupos[amp] = pos
        sky[amp] = rng.normal(0, 2.0, (112, 1032)) + _star(pos, x0, y0, total=2e4, fwhm=2.5)[:, None]
    img = C.cofes_from_amps(ifupos, sky)
    cx, cy = _centroid(img)
    assert np.hypot(cx - x0, cy - y0) < 0.4
    del ifupos["RU"]                 # a missing amp leaves its fibers dark
    img2 = C.cofes_from_amps(ifupos, sky)
    three = ("LL", "LU", "RL")
    want = C.cofes_image(np.vstack([ifupos[a] for a in three]),
                         np.concatenate([C.fiber_band_flux(sky[a]) for a in three]))
    np.testing.assert_allclose(img2, want, rtol=1e-6, atol=1e-6)

    lay = Layout(tmp_path / "raw", tmp_path / "red")
    h = C.cofes_header(ifuslot=15, ifuid="038", specid=301, name0="20180611T054545.2_015LL_sci.fits")
    p = C.write_cofes(lay, night="20180611", obs=17, exp=1, stamp="20180611T054545.2", ifuslot=15,
                      image=img, header=h)
    assert p.name == "CoFeS20180611T054545.2_015_sci.fits"
    assert p.parent.as_posix().endswith("reductions/20180611/virus/virus0000017/exp01/virus")
    with fits.open(p) as hd:
        assert len(hd) == 1 and hd[0].data.shape == (51, 51) and hd[0].header["BITPIX"] == -32
        hh = hd[0].header
        assert hh["CRPIX1"] == -25.15 and hh["CRPIX2"] == -25.24
        assert not any(k in hh for k in ("CRVAL1", "CRVAL2", "CTYPE1", "CDELT1", "CD1_1"))
        assert hh["IFUSLOT"] == "015" and hh["HETRED"]
    back, _ = C.read_cofes(p)
    assert np.array_equal(back, img)
    with pytest.raises(ValueError):
        C.write_cofes(lay, night="20180611", obs=17, exp=1, stamp="20180611T054545.2", ifuslot=15,
                      image=np.zeros((50, 50)))


def _is_png(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_fplane_png_simulated(tmp_path):
    fp = {0: FplaneEntry(0, 0.0, 0.0, 900, 900, "900"),
          53: FplaneEntry(53, -50.0, 150.0, 301, 1, "038"),
          54: FplaneEntry(54, -50.0, 50.0, 302, 2, "039"),
          65: FplaneEntry(65, 50.0, -50.0, 303, 3, "040")}
    xy = ifu.ifu_positions()
    images = {53: C.cofes_image(xy, _star(xy, 3, 3, 5e3)), 65: C.cofes_image(xy, np.full(448, 5.0))}
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    p = P.write_fplane_png(lay, night="20180611", obs=17, exp=1, images=images, fplane=fp)
    assert p.name == "d20180611s017exp011de.png" and p.parent.name == "virus"
    assert _is_png(p)[0] == 800


def test_fplane_png_real_focal_plane(tmp_path):
    """The real shot 20180611 v017 exp01 images (renamed CoFeS) on the real fplane."""
    fp = read_fplane(real_file("fplane", "fplane_20180611.txt"))
    folder = real_file("astrometry")
    images = {}
    for f in sorted(folder.glob("20180611T054545_0??.fits")) + sorted(folder.glob("20180611T054545_1??.fits")):
        slot = int(f.stem.split("_")[1])
        images[slot] = fits.getdata(f)
    assert len(images) > 30
    p = P.render_fplane_png(tmp_path / "real1de.png", images, fp, title="20180611v017 exp01",
                            vmin=-2, vmax=5)
    assert _is_png(p)[0] == 800


def test_unit_cofes_and_exposure_png(tmp_path):
    """What ``hetred sci`` calls: the unit's CoFeS from its amps' arrays, then the exposure's
    1de.png from the CoFeS files on disk and the night's fplane."""
    from types import SimpleNamespace as NS

    from hetred.errors import HetredError
    from hetred.virus.fplane import write_fplane

    lay = Layout(tmp_path / "raw", tmp_path / "red")
    rng = np.random.default_rng(8)
    fp = {53: FplaneEntry(53, -50.0, 150.0, 301, 1, "038"), 65: FplaneEntry(65, 50.0, -50.0, 303, 3, "040")}
    for slot in fp:
        unit = NS(night="20180110", obs=7, exp=2, ifuslot=slot, stamp="20180110T031501.3")
        raws, results = [], []
        for amp in C.AMPS:
            pos = ifu.amp_positions(amp)
            sky = rng.normal(0, 1.0, (112, 1032)).astype(np.float32) + _star(pos, 4.0, -7.0, 3e4, 2.5)[:, None]
            err = np.ones_like(sky)
            err[:, 500:520] = 0.0                            # masked columns
            sky[:, 500:520] = 1e6
            raws.append(NS(amp=amp, header=fits.Header([("IFUID", "038"), ("SPECID", 301)]),
                           source=f"x.tar::virus0000007/exp02/virus/20180110T031501.3_{slot:03d}{amp}_sci.fits"))
            results.append(NS(amp=amp, arrays={"ifupos": pos, "sky_subtracted": sky, "error1d": err}))
        p = C.write_unit_cofes(lay, unit, raws, results)
        assert p.name == f"CoFeS20180110T031501.3_{slot:03d}_sci.fits"
        img, h = C.read_cofes(p)
        assert h["NAME0"] == f"20180110T031501.3_{slot:03d}LL_sci.fits" and h["SPECID"] == "301"
        cx, cy = _centroid(img)
        assert np.hypot(cx - 4.0, cy + 7.0) < 0.3 and img.max() < 1e4
    with pytest.raises(HetredError, match="fp20180110.txt"):
        P.write_exposure_png(lay, night="20180110", obs=7, exp=2)
    write_fplane(lay.path("fplane", night="20180110"), fp)
    png = P.write_exposure_png(lay, night="20180110", obs=7, exp=2)
    assert png.name == "d20180110s007exp021de.png" and _is_png(png)[0] == 800
    assert P.write_exposure_png(lay, night="20180110", obs=7, exp=3) is None


def test_stamps_equal_the_full_grid_sum():
    """cofes_image adds each fiber on a small stamp; the same sum over the whole grid agrees."""
    rng = np.random.default_rng(9)
    xy = ifu.ifu_positions() + rng.uniform(-0.7, 0.7, (448, 2))
    xy[:5] = [[-26.0, 0.0], [25.5, 25.5], [0.0, -30.0], [24.0, -24.0], [-20.0, 22.0]]   # at / off the edges
    f = rng.normal(5.0, 2.0, 448)
    dx = C.grid_x()[None, None, :] - xy[:, 0, None, None]
    dy = C.grid_y()[None, :, None] - xy[:, 1, None, None]
    r2 = dx * dx + dy * dy
    g = np.where(r2 < C.RMAX ** 2, np.exp(-0.5 * r2 / C.SIGMA ** 2), 0.0)
    want = np.tensordot(f, g, axes=(0, 0)) / C._sumg()
    np.testing.assert_allclose(C.cofes_image(xy, f), want, rtol=1e-6, atol=1e-6)
