"""VIRUS model: amp geometry, orientation, IFU, fiber map, fplane, dithers, coordinates, ids."""
from __future__ import annotations

import numpy as np
import pytest

from hetred.virus import amp as A
from hetred.virus import coords, ids, ifu
from hetred.virus.fplane import FplaneEntry, format_fplane, parse_fplane, read_fplane
from tests.helpers import real_file


def test_amp_geometry_constants():
    assert (A.NROWS, A.NCOLS_RAW, A.NCOLS, A.NOVERSCAN) == (1032, 1064, 1032, 32)
    assert A.BIASSEC == "[1033:1064,1:1032]" and A.TRIMSEC == "[1:1032,1:1032]"
    assert A.BINNING == (2, 1)
    raw = np.zeros((1032, 1064))
    assert A.trim(raw).shape == (1032, 1032)
    assert A.overscan_region(raw).shape == (1032 - 9, 1060 - 1033)


def test_amp_from_header():
    assert A.amp_from_header({"CCDPOS": "L ", "CCDHALF": "U "}) == "LU"
    assert A.amp_from_header({"CCDPOS": "R", "CCDHALF": "L"}) == "RL"
    with pytest.raises(ValueError):
        A.amp_from_header({"CCDPOS": "X", "CCDHALF": "L"})
    assert A.ampname_from_header({"AMPLIFIE": "UL"}) == "UL"


@pytest.mark.parametrize("amp", A.AMPS)
@pytest.mark.parametrize("ampname", ["LR", "UL", "LL", ""])
def test_orientation_and_inverse(amp, ampname):
    img = np.arange(12.0).reshape(3, 4)
    out = A.orient(img, amp, ampname)
    rotated = amp in ("LU", "RL")
    mirrored = ampname in ("LR", "UL")
    expect = img
    if rotated:
        expect = expect[::-1, ::-1]
    if mirrored:
        expect = expect[:, ::-1]
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(A.deorient(out, amp, ampname), img)


def test_rotation_of_lu_moves_corner():
    img = np.zeros((1032, 1032))
    img[0, 0] = 1  # first raw pixel
    assert A.orient(img, "LU", "")[-1, -1] == 1
    assert A.orient(img, "LL", "LR")[0, -1] == 1
    assert A.orient(img, "RL", "LR")[-1, 0] == 1


def test_generated_ifu_geometry():
    pos = ifu.ifu_positions()
    assert pos.shape == (448, 2)
    ys = np.unique(np.round(pos[:, 1], 6))
    assert len(ys) == 23
    counts = [int(np.sum(np.isclose(pos[:, 1], y))) for y in ys]
    assert counts.count(19) == 12 and counts.count(20) == 11
    assert pos[0] == pytest.approx((-22.88, -24.24), abs=0.01)
    assert np.abs(pos[:, 0]).max() == pytest.approx(24.15, abs=0.01)
    # hexagonal: 2.54" along a row, 2.20" between rows
    assert ifu.X_PITCH == pytest.approx(2.54, abs=0.005)
    assert ifu.ROW_PITCH == pytest.approx(2.20, abs=0.005)


def test_generated_ifu_equals_real_ifucen():
    path = real_file("ifucen", "IFUcen_HETDEX.txt")
    real = ifu.read_ifucen(path)
    assert real.shape == (448, 2)
    assert np.abs(real - ifu.ifu_positions()).max() < 0.02


def test_fiber_amp_mapping():
    np.testing.assert_array_equal(ifu.amp_fiber_ids("LU")[[0, -1]], [112, 1])
    np.testing.assert_array_equal(ifu.amp_fiber_ids("LL")[[0, -1]], [224, 113])
    np.testing.assert_array_equal(ifu.amp_fiber_ids("RL")[[0, -1]], [336, 225])
    np.testing.assert_array_equal(ifu.amp_fiber_ids("RU")[[0, -1]], [448, 337])
    all_ids = np.concatenate([ifu.amp_fiber_ids(a) for a in A.AMPS])
    assert sorted(all_ids) == list(range(1, 449))
    for fid in (1, 112, 113, 300, 448):
        amp, np_ = ifu.amp_of_fiber(fid)
        assert ifu.amp_fiber_ids(amp)[np_ - 1] == fid
    swapped = ifu.amp_fiber_ids("LU", ifuid="007")
    assert list(swapped[[112 - 38, 112 - 39]]) == [39, 38]
    assert ifu.amp_positions("LU").shape == (112, 2)
    np.testing.assert_allclose(ifu.amp_positions("LU")[-1], ifu.ifu_positions()[0])


@pytest.mark.parametrize("name", ["fplane_vdrp_config.txt", "fplane_20180611.txt"])
def test_real_fplanes_read_and_round_trip(name):
    path = real_file("fplane", name)
    fp = read_fplane(path)
    assert 0 in fp and fp[0].specid == 900 and not fp[0].is_ifu
    real_ifus = [e for e in fp.values() if e.is_ifu]
    assert len(real_ifus) >= 20
    assert all(isinstance(e.ifuid, str) and len(e.ifuid) == 3 for e in real_ifus)
    again = parse_fplane(format_fplane(fp))
    assert again == fp


def test_fplane_values_from_the_file():
    fp = read_fplane(real_file("fplane", "fplane_vdrp_config.txt"))
    e = fp[21]
    assert (e.x_fp, e.y_fp, e.specid, e.specslot, e.ifuid) == (-349.910, 350.210, 315, 218, "073")


def test_fplane_contid_column():
    e = FplaneEntry(53, -50.0, 150.0, 320, 236, "020", contid="0059")
    text = format_fplane([e])
    assert text.splitlines()[1].split()[-1] == "0059"
    assert parse_fplane(text)[53].contid == "0059"


def test_dithers():
    assert coords.DITHERS == ((0.0, 0.0), (1.27, -0.73), (1.27, 0.73))
    assert coords.dither_offset(2) == (1.27, -0.73)
    with pytest.raises(ValueError):
        coords.dither_offset(4)


def test_tangent_plane_equals_astropy_wcs():
    from astropy.wcs import WCS

    ra0, dec0, rot = 150.1, 2.2, 360.0 - (37.0 + 90.0)
    w = WCS(naxis=2)
    w.wcs.crpix = [0.0, 0.0]
    w.wcs.crval = [ra0, dec0]
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cdelt = [-1 / 3600.0, 1 / 3600.0]
    r = np.radians(rot)
    w.wcs.pc = [[np.cos(r), np.sin(r)], [-np.sin(r), np.cos(r)]]
    x = np.array([0.0, 100.0, -350.0, 420.0])
    y = np.array([0.0, -40.0, 250.0, 380.0])
    ra_ref, dec_ref = w.wcs_pix2world(x, y, 1)
    ra, dec = coords.tangent_to_radec(x, y, ra0, dec0, rot)
    np.testing.assert_allclose(ra, ra_ref, atol=1e-9)
    np.testing.assert_allclose(dec, dec_ref, atol=1e-9)


def test_fiber_radec_round_trip_and_axis_swap():
    slot = FplaneEntry(53, -50.0, 150.0, 320, 236, "020")
    xy = ifu.ifu_positions()
    ra0, dec0, pa = 214.9, 52.8, 250.3
    for exp in (1, 2, 3):
        ra, dec = coords.fiber_radec(slot, xy, exp, ra0, dec0, pa, angoff=1.55)
        x, y = coords.radec_to_ifu(slot, ra, dec, exp, ra0, dec0, pa, angoff=1.55)
        np.testing.assert_allclose(x, xy[:, 0], atol=1e-7)
        np.testing.assert_allclose(y, xy[:, 1], atol=1e-7)
    # the axis swap: an IFU at Y_FP=+150 sits 150" along the tangent-plane x axis
    centre = coords.fiber_radec(slot, np.zeros((1, 2)), 1, ra0, dec0, pa=0.0)
    xt, yt = coords.radec_to_tangent(centre[0], centre[1], ra0, dec0, coords.rotation_angle(0.0))
    assert xt[0] == pytest.approx(150.0, abs=1e-6) and yt[0] == pytest.approx(-50.0, abs=1e-6)
    # distance from the shot centre is preserved (~158")
    sep = np.hypot((centre[0][0] - ra0) * np.cos(np.radians(dec0)), centre[1][0] - dec0) * 3600
    assert sep == pytest.approx(np.hypot(150, 50), rel=1e-4)


def test_ids():
    assert ids.shotid("20180124", 10) == 20180124010
    assert ids.datevobs("20180124", 10) == "20180124v010"
    assert ids.parse_datevobs("20180124v010") == ("20180124", 10)
    assert ids.shotid_to_datevobs(20180124010) == "20180124v010"
    mf = ids.multiframe(8, 93, "54", "LL")
    assert mf == "multi_008_093_054_LL"
    assert ids.fiber_id(20180124010, 2, mf, 7) == "20180124010_2_multi_008_093_054_LL_007"
    with pytest.raises(ValueError):
        ids.parse_datevobs("20180124_010")
