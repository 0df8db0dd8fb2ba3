"""Pure pieces of hetred astrom: formats, getoff2 edge cases, settings, registration."""
from __future__ import annotations

import numpy as np
import pytest

from hetred.astrom import formats as F
from hetred.errors import HetredError


def _als(rows):
    return np.array(rows, dtype=F.ALS_DTYPE)


def test_als_round_trip_and_empty(tmp_path):
    t = _als([(2, 31.493, 50.715, 19.77, 0.0782, -0.235, 5.0, 0.31, 0.016),
              (1, 48.093, 4.003, 17.475, 0.0386, -1.192, 7.0, 0.96, 0.637)])
    text = F.format_als(t, lowbad=-11.2, thresh=2.26)
    lines = text.splitlines()
    assert lines[0] == F.ALS_HEADER
    assert lines[1] == "  1   51   51   -11.2 84000.0    2.26    0.50    1.27    1.06    3.00"
    assert lines[2] == ""
    # the real file's row (fiducial 20180611T054545_034.als)
    assert lines[3] == "     2   31.493   50.715   19.770   0.0782   -0.235       5.     0.31    0.016"
    p = tmp_path / "a.als"
    p.write_text(text)
    assert np.array_equal(F.read_als(p), t)
    assert F.format_als(t[:0]) == ""
    p.write_text("")
    assert len(F.read_als(p)) == 0


def test_ifustars_write_read_and_bad_input(tmp_path):
    p = tmp_path / "s.ifustars"
    p.write_text(F.format_ifustars([207.506788], [51.27734], np.array([[17.09, 15.17, 14.48, 14.67, 14.18]]),
                                   ids=["1237661959906852902"]))
    lines = p.read_text().splitlines()
    assert sum(ln.startswith("#") for ln in lines) == 10 and lines[1] == "#col  1: SHOTID "
    assert lines[10].split() == ["000001", "1237661959906852902", "207.506788", "51.277340", "17.09",
                                 "15.17", "14.48", "14.67", "14.18"]
    cat = F.read_ifustars(p)
    assert cat["ra"][0] == 207.506788 and cat["g"][0] == 15.17
    with pytest.raises(HetredError, match="does not exist"):
        F.read_ifustars(tmp_path / "nope")
    (tmp_path / "e").write_text("# only a header\n")
    with pytest.raises(HetredError, match="has no stars"):
        F.read_ifustars(tmp_path / "e")
    (tmp_path / "b").write_text("000001 1 207.5 51.2\n")
    with pytest.raises(HetredError, match="line 1: expected 9 columns"):
        F.read_ifustars(tmp_path / "b")


def test_getoff2_no_pair_and_one_pair():
    from hetred.astrom.getoff import getoff2

    g = getoff2(np.array([10.0]), np.array([20.0]), np.array([11.0]), np.array([20.0]), 3.0)
    assert (g.n, g.inc_ra, g.inc_dec, g.s_ra, g.s_dec) == (0, 0.0, 0.0, 666.0, 666.0)
    g = getoff2(np.array([10.0]), np.array([20.0]), np.array([10.0 + 1.8 / 3600]), np.array([20.0]), 3.0)
    assert g.n == 1 and g.inc_ra == 0.0005 and g.s_ra == -1.0     # biwgt of one value: (x, -1)
    assert F.format_getoff2(g.inc_ra, g.inc_dec, g.s_ra, g.s_dec, g.n) == \
        "  0.00050 -0.00000 -1.00000 -1.00000     1\n"     # -0/3600 prints -0.00000, as in Fortran


def test_settings_karl_defaults_and_vdrp_profile():
    from hetred.astrom.settings import AstromSettings

    s = AstromSettings.from_config(None)
    assert s.radii == (17.0, 8.0, 3.0) and s.fluxnorm_mag_max == 18.0 and s.mktot_magmax == 22.0
    assert s.dither_pairs == ((0.0, 0.0), (1.215, -0.70), (1.215, 0.70)) and s.apply_optimal_angle
    assert s.angoff_trials[-2:] == (1.65, 1.7)
    v = AstromSettings.from_config({"profile": "vdrp-test", "fluxnorm_mag_max": 18.5})
    assert v.radii == (11.0, 5.0, 3.0) and v.pixel_offset == (-26.2, -26.7) and not v.apply_optimal_angle
    assert v.fluxnorm_mag_max == 18.5
    assert AstromSettings.from_config({"profile": "karl"}, profile="vdrp-test").radii == (11.0, 5.0, 3.0)
    with pytest.raises(HetredError, match="unknown profile 'x'"):
        AstromSettings.from_config(None, profile="x")
    with pytest.raises(HetredError, match=r"\[stages.astrom\]: unknown setting"):
        AstromSettings.from_config({"radius": 3})
    with pytest.raises(HetredError, match="pixel_offset"):
        AstromSettings.from_config({"pixel_offset": [1.0]})


def test_path_under_keeps_the_table_names(tmp_path):
    from hetred.layout import LayoutError, path_under

    assert path_under(tmp_path, "radec_final", "astrom_dir", datevobs="20180611v017") == \
        tmp_path / "radec2_final.dat"
    assert path_under(tmp_path, "astrom_trial_getoff2", "astrom_dir", datevobs="x", exp=2, angle="01.450") \
        == tmp_path / "add_radec_angoff_trial" / "getoff2_exp02_01.450Deg.out"
    with pytest.raises(LayoutError):
        path_under(tmp_path, "tarlist", "astrom_dir", month="201801", datevobs="x")


def test_combine_radec_undoes_the_dithers():
    from hetred.astrom.rotation import combine_radec
    from hetred.virus.coords import rotation_angle, tangent_to_radec

    ra0, dec0, pa = 150.0, 50.0, 30.0
    sols = []
    for dx, dy in ((0, 0), (1.215, -0.7), (1.215, 0.7)):     # each exposure's centre moved by its dither
        r, d = tangent_to_radec(np.array([dx]), np.array([dy]), ra0, dec0, rotation_angle(pa))
        sols.append((float(r[0]), float(d[0]), pa))
    ra, dec, p, sra, _sdec = combine_radec(sols, [(0, 0), (1.215, -0.7), (1.215, 0.7)])
    assert (ra - ra0) * 3600 * np.cos(np.radians(dec0)) == pytest.approx(0, abs=1e-5)   # 2nd order
    assert (dec - dec0) * 3600 == pytest.approx(0, abs=1e-5) and p == pa and sra < 1e-5


def test_register_recovers_shifts_and_leaves_static_artefacts():
    from hetred.astrom.register import FrameStars, flux_norm, register

    rng = np.random.default_rng(3)
    n = 40
    x, y = rng.uniform(-300, 300, n), rng.uniform(-300, 300, n)
    mag = rng.uniform(15, 20, n)
    true = [(0.0, 0.0), (1.10, -0.95), (1.18, 0.61)]
    scale = [1.0, 1.05, 0.97]
    frames = []
    for (dx, dy), sc in zip(true, scale):
        fx = np.append(x - dx + rng.normal(0, 0.05, n), 100.0)     # + an artefact fixed on the detector
        fy = np.append(y - dy + rng.normal(0, 0.05, n), 100.0)
        fm = np.append(mag - 2.5 * np.log10(sc) + rng.normal(0, 0.005, n), 17.0)
        frames.append(FrameStars(np.arange(n + 1), np.zeros(n + 1, int), fx, fy, fm, np.full(n + 1, 0.01)))
    reg = register(frames, [(0, 0), (1.215, -0.7), (1.215, 0.7)])
    assert reg.dx == pytest.approx([0, 1.10, 1.18], abs=0.03)
    assert reg.dy == pytest.approx([0, -0.95, 0.61], abs=0.03)
    assert np.sum(reg.nframes == 3) == n                  # the artefact does not move with the dither
    norm = flux_norm(np.where(np.isfinite(reg.mags), reg.mags, 99.9999), 19.0)
    assert norm / norm.mean() == pytest.approx(np.array(scale) / np.mean(scale), abs=0.003)
