"""The simulator places stars and fibers on the sky by the conventions of the real files (vdrp and
pyhetdex, shared/reference/astrom_throughput.md §1.4, §1.7, §1.12): a simulated fiber's RA/Dec
pinned to an independent calculation with astropy's TAN WCS built as pyhetdex's TangentPlane."""
from __future__ import annotations

import numpy as np
import pytest
from astropy import wcs

from hetred.sim.cofes_shot import simulate_cofes_shot
from hetred.sim.focalplane import slot_entry
from hetred.virus.ifu import amp_positions

#: vdrp's dither offsets (utest/test_astrometry.py), which the simulator uses
VDRP_DITHERS = ((0.0, 0.0), (1.270, -0.730), (1.270, 0.730))


def _tangent_plane(ra0: float, dec0: float, rot: float) -> wcs.WCS:
    """pyhetdex TangentPlane: crpix 0, TAN, cdelt (-1/3600, 1/3600), pc = [[cos, sin], [-sin, cos]]."""
    w = wcs.WCS(naxis=2)
    w.wcs.crpix = [0.0, 0.0]
    w.wcs.crval = [ra0, dec0]
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cdelt = [-1.0 / 3600.0, 1.0 / 3600.0]
    r = np.radians(rot)
    w.wcs.pc = [[np.cos(r), np.sin(r)], [-np.sin(r), np.cos(r)]]
    return w


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return simulate_cofes_shot(tmp_path_factory.mktemp("conv"), [slot_entry(93)], seed=11)


def test_a_simulated_fiber_is_where_astropy_puts_it(shot):
    """Slot 093, amp RU, fiber 57, exposure 2: vdrp's get_fiber_coords with the TRUE pointing and
    the header PARANGLE plus the true rotation offset."""
    slot = shot.slots[0]
    sc = shot.scene
    pa = sc.header_pa + sc.angoff                        # PARANGLE + angoff (vdrp compute_offset)
    xs, ys = amp_positions("RU", slot.ifuid)[56]
    dx, dy = VDRP_DITHERS[1]
    xfp, yfp = xs + slot.y_fp + dx, ys + slot.x_fp + dy   # "remember to flip x,y"
    ra, dec = _tangent_plane(sc.ra0, sc.dec0, 360.0 - (pa + 90.0)).wcs_pix2world(xfp, yfp, 1)
    assert shot.fiber_ra[2][93]["RU"][56] == pytest.approx(float(ra), abs=1e-9)
    assert shot.fiber_dec[2][93]["RU"][56] == pytest.approx(float(dec), abs=1e-9)


def test_stars_sit_where_the_catalogue_says(shot):
    """A star placed at IFU (x, y) of exposure 1 has the catalogue RA/Dec of that focal-plane point."""
    sc = shot.scene
    slot = shot.slots[0]
    s = sc.stars[0]
    w = _tangent_plane(sc.ra0, sc.dec0, 360.0 - (sc.header_pa + sc.angoff + 90.0))
    ra, dec = w.wcs_pix2world(s["x_ifu"] + slot.y_fp, s["y_ifu"] + slot.x_fp, 1)
    assert s["ra"] == pytest.approx(float(ra), abs=1e-9) and s["dec"] == pytest.approx(float(dec), abs=1e-9)


def test_header_pointing_is_a_few_arcsec_off_and_rotation_is_vdrps(shot, tmp_path):
    sc = shot.scene
    ra_h, dec, pa = (float(v) for v in (shot.folder / "radec.orig").read_text().split())
    off = np.hypot((ra_h * 15 - sc.ra0) * np.cos(np.radians(sc.dec0)), dec - sc.dec0) * 3600
    assert 0.9 <= off <= 3.1
    assert 1.4 <= (sc.pa - pa) % 360 <= 1.65
