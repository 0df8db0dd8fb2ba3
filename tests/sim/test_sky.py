"""Simulator sky: Moffat-in-fiber integrals, dithers, ADR, SEDs and photometry, catalogue, truth."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hetred.sim import photometry as P
from hetred.sim import sky
from hetred.virus.coords import DITHERS, fiber_radec, radec_to_ifu
from hetred.virus.fplane import FplaneEntry
from hetred.virus.ifu import amp_positions

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
SLOT = FplaneEntry(ifuslot=22, x_fp=-349.9, y_fp=250.0, specid=320, specslot=22, ifuid="038")
WAVE = np.tile(3470.0 + 2.0 * np.arange(1032), (112, 1))   # (112, 1032) Å


def _slots(n: int = 9) -> list[FplaneEntry]:
    out = [FplaneEntry(ifuslot=0, x_fp=0.0, y_fp=0.0, specid=900, specslot=0, ifuid="000")]
    for i in range(n):
        out.append(FplaneEntry(ifuslot=11 + i, x_fp=100.0 * (i % 3 - 1), y_fp=100.0 * (i // 3 - 1),
                               specid=301 + i, specslot=i + 1, ifuid=f"{i + 20:03d}"))
    return out


def _real(*parts: str) -> Path:
    p = REAL.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real reference data not available: {p}")
    return p


def _scene(stars=None, lines=None, fwhm: float = 1.8, adr_angle: float = 0.0,
           **kw) -> sky.ShotScene:
    stars = np.zeros(0, sky.STAR_DTYPE) if stars is None else stars
    lines = np.zeros(0, sky.LINE_DTYPE) if lines is None else lines
    return sky.ShotScene(night="20200101", obs=7, ra0=150.0, dec0=52.0, pa=40.0, header_ra=150.0,
                         header_dec=52.0, header_pa=40.0, fwhm=fwhm, transparency=np.ones(3),
                         stars=stars, lines=lines, adr_angle=adr_angle, **kw)


def _line_at(x: float, y: float, wave: float = 4500.0, flux: float = 1e-16, sigma: float = 2.0,
             slot: FplaneEntry = SLOT) -> np.ndarray:
    ra, dec = fiber_radec(slot, np.array([[x, y]]), 1, 150.0, 52.0, 40.0)
    return np.array([(1, ra[0], dec[0], wave, flux, sigma, slot.ifuslot, x, y)], sky.LINE_DTYPE)


def _star_at(x: float, y: float, g: float = 17.0, teff: float = 6000.0) -> np.ndarray:
    ra, dec = fiber_radec(SLOT, np.array([[x, y]]), 1, 150.0, 52.0, 40.0)
    return np.array([(1, ra[0], dec[0], teff, 0, g, 0, 0, 0, SLOT.ifuslot, x, y, -1, 0, g, 0, 0, 0)],
                    sky.STAR_DTYPE)


# --- PSF and fiber integrals -----------------------------------------------------------------

@pytest.mark.parametrize("fwhm", [1.3, 1.8, 2.5])
def test_moffat_normalised_and_fwhm(fwhm):
    r = np.linspace(0.0, 200.0, 400001)
    total = np.trapezoid(2 * np.pi * r * sky.moffat_profile(r, fwhm), r)
    assert total == pytest.approx(1.0, abs=2e-4)
    peak = sky.moffat_profile(0.0, fwhm)
    assert sky.moffat_profile(fwhm / 2, fwhm) == pytest.approx(peak / 2, rel=1e-12)
    assert sky.moffat_enclosed(1e6, fwhm) == pytest.approx(1.0)


def _brute_fiber(d: float, fwhm: float, h: float = 0.0025) -> float:
    g = np.arange(-0.75 + h / 2, 0.75, h)
    x, y = np.meshgrid(g, g)
    m = x**2 + y**2 <= 0.75**2
    # normalise by the exact disk area so the pixelised edge does not bias the sum
    return float(sky.moffat_profile(np.hypot(x[m] + d, y[m]), fwhm).mean() * np.pi * 0.75**2)


@pytest.mark.parametrize("fwhm", [1.3, 2.5])
@pytest.mark.parametrize("d", [0.0, 0.4, 1.1, 2.5, 4.0])
def test_fiber_fraction_matches_brute_force(fwhm, d):
    got = float(sky.fiber_fraction(d, fwhm))
    assert got == pytest.approx(_brute_fiber(d, fwhm), rel=2e-3, abs=1e-6)
    if d == 0.0:   # centred: the analytic enclosed fraction
        assert got == pytest.approx(float(sky.moffat_enclosed(0.75, fwhm)), rel=1e-9)


def test_centred_fraction_values():
    # 1.8" seeing: a centred 1.5" fiber takes 29.8% of the light (1 - (1+(0.75/α)²)^-2.5)
    assert float(sky.fiber_fraction(0.0, 1.8)) == pytest.approx(0.2981, abs=1e-4)
    assert float(sky.fiber_fraction(9.0, 1.8)) == 0.0


@pytest.mark.parametrize("fwhm", [1.3, 2.5])
def test_dense_fiber_grid_recovers_unit_flux(fwhm):
    # Σ fraction over a dense lattice of fibers = fiber-area fill factor of that lattice
    s = 0.25
    xs = np.arange(-12.0, 12.0 + s / 2, s) + 0.0731
    x, y = np.meshgrid(xs, xs)
    fill = np.pi * 0.75**2 / s**2
    total = sky.fiber_fraction(np.hypot(x, y), fwhm).sum()
    assert total / fill == pytest.approx(1.0, abs=0.01)


def test_fill_factor():
    assert sky.FILL_FACTOR == pytest.approx(0.316, abs=0.001)


# --- fiber_source_flux -----------------------------------------------------------------------

def _total_line_flux(scene: sky.ShotScene, slot: FplaneEntry = SLOT) -> np.ndarray:
    """Wavelength-integrated flux summed over all fibers, per exposure (3,)."""
    out = []
    for exp in (1, 2, 3):
        f = sum(sky.fiber_source_flux(scene, slot, amp, exp, WAVE) for amp in sky.AMPS)
        out.append(np.trapezoid(f, WAVE, axis=1).sum())
    return np.array(out)


@pytest.mark.parametrize("fwhm", [1.3, 1.8, 2.5])
@pytest.mark.parametrize("xy", [(0.3, -0.2), (-7.7, 5.1), (10.2, 11.9)])
def test_three_dither_total_is_fill_factor(fwhm, xy):
    flux = 2e-16
    scene = _scene(lines=_line_at(*xy, flux=flux), fwhm=fwhm)
    per_exp = _total_line_flux(scene) / flux
    assert per_exp.sum() == pytest.approx(3 * sky.FILL_FACTOR, rel=0.05)
    assert np.all((per_exp > 0.15) & (per_exp < 0.5))


def test_line_spectrum_integrates_to_flux():
    w = np.linspace(3400.0, 5600.0, 20001)
    line = sky.gaussian_line(w, 4321.0, 3e-17, 2.2)
    assert np.trapezoid(line, w) == pytest.approx(3e-17, rel=1e-9)
    # in a fiber: ∫ spectrum dλ = flux × (fiber fraction at the line)
    scene = _scene(lines=_line_at(0.0, 0.0, wave=5000.0, flux=1e-16, sigma=3.0))
    f = sky.fiber_source_flux(scene, SLOT, "LL", 1, WAVE)
    k = int(np.argmax(f.sum(axis=1)))
    xy = amp_positions("LL", SLOT.ifuid)[k]
    d = np.hypot(xy[0] - float(sky.adr_offset(5000.0)), xy[1])
    frac = float(sky.fiber_fraction(d, sky.fwhm_at(5000.0, 1.8)))      # the seeing at the line
    assert np.trapezoid(f[k], WAVE[k]) == pytest.approx(1e-16 * frac, rel=2e-3)


def test_star_fiber_spectrum_is_sed_times_fraction():
    scene = _scene(stars=_star_at(2.0, -3.0, g=16.5, teff=5200.0))
    wave = np.full((112, 1032), 4700.0)
    for amp in sky.AMPS:
        f = sky.fiber_source_flux(scene, SLOT, amp, 2, wave)
        x, y = radec_to_ifu(SLOT, scene.stars["ra"], scene.stars["dec"], 2, 150.0, 52.0, 40.0)
        fxy = amp_positions(amp, SLOT.ifuid)
        frac = sky.fiber_fraction(np.hypot(fxy[:, 0] - x[0] - sky.adr_offset(4700.0),
                                           fxy[:, 1] - y[0]), sky.fwhm_at(4700.0, 1.8))
        sed = np.interp(4700.0, scene.sed_wave, scene.sed_flam[0])
        np.testing.assert_allclose(f[:, 0], frac * sed, rtol=1e-12, atol=1e-30)


def test_transparency_not_applied_and_far_sources_ignored():
    lines = _line_at(0.0, 0.0)
    a = sky.fiber_source_flux(_scene(lines=lines), SLOT, "RU", 1, WAVE)
    s2 = _scene(lines=lines)
    s2.transparency = np.array([0.5, 0.5, 0.5])
    np.testing.assert_array_equal(a, sky.fiber_source_flux(s2, SLOT, "RU", 1, WAVE))
    other = FplaneEntry(ifuslot=23, x_fp=-349.9, y_fp=350.0, specid=321, specslot=23, ifuid="039")
    assert not sky.fiber_source_flux(_scene(lines=lines), other, "RU", 1, WAVE).any()


def _centroid(scene: sky.ShotScene, wave: float) -> np.ndarray:
    """Flux-weighted position of all fibers of the 3 dithers, IFU frame of exposure 1."""
    num, den = np.zeros(2), 0.0
    for exp in (1, 2, 3):
        for amp in sky.AMPS:
            f = sky.fiber_source_flux(scene, SLOT, amp, exp, np.full((112, 1032), wave))[:, 0]
            xy = amp_positions(amp, SLOT.ifuid) + np.array(DITHERS[exp - 1])
            num += (f[:, None] * xy).sum(axis=0)
            den += f.sum()
    return num / den


@pytest.mark.parametrize("angle", [0.0, 90.0])
def test_adr_moves_the_source_along_its_direction(angle):
    scene = _scene(stars=_star_at(1.0, 2.0), adr_angle=angle)
    shift = _centroid(scene, 5500.0) - _centroid(scene, 3500.0)
    expect = (0.20 + 0.74) * np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    np.testing.assert_allclose(shift, expect, atol=0.06)
    np.testing.assert_allclose(sky.adr_offset(sky.ADR_WAVE), sky.ADR_OFFSET, atol=0.03)


def test_dither_moves_the_source():
    # at the wavelength where ADR = 0 the 3-dither centroid is the catalogue position
    roots = np.roots(sky.ADR_POLY)
    w0 = float(next(r.real for r in roots if abs(r.imag) < 1e-9 and 4500 < r.real < 5000))
    assert abs(float(sky.adr_offset(w0))) < 1e-9
    for xy in ((0.0, 0.0), (-5.3, 8.8)):
        c = _centroid(_scene(stars=_star_at(*xy)), w0)
        np.testing.assert_allclose(c, xy, atol=0.08)


# --- SEDs and photometry ---------------------------------------------------------------------

@pytest.mark.parametrize("teff", [4000.0, 5500.0, 7000.0, 9000.0])
def test_synthetic_g_equals_normalisation(teff):
    f = P.stellar_sed(teff, 18.3)
    assert float(P.ab_mag(P.SED_WAVE, f, "g")) == pytest.approx(18.3, abs=1e-9)
    assert f.shape == P.SED_WAVE.shape and np.all(f > 0)


def test_ab_zero_point():
    # a flat f_nu = 3631 Jy source is magnitude 0 in every band
    flam = 3631e-23 * P.C_AA / P.SED_WAVE**2
    for b in P.BANDS:
        assert float(P.ab_mag(P.SED_WAVE, flam, b)) == pytest.approx(0.0, abs=1e-9)


def test_colours_are_stellar_like():
    mags = {t: P.synthetic_mags(P.SED_WAVE, P.stellar_sed(t, 18.0)) for t in (4000, 6000, 9000)}
    gr = {t: float(m["g"] - m["r"]) for t, m in mags.items()}
    assert gr[4000] > gr[6000] > gr[9000]
    assert 0.8 < gr[4000] < 1.5 and 0.3 < gr[6000] < 0.7 and -0.4 < gr[9000] < 0.3
    for m in mags.values():
        assert 0.3 < float(m["u"] - m["g"]) < 3.0


def test_sed_has_absorption_lines_and_break():
    w = P.SED_WAVE
    f = P.stellar_sed(8500.0, 17.0)
    cont = np.interp(4861.3, [4780.0, 4940.0], np.interp([4780.0, 4940.0], w, f))
    assert np.interp(4861.3, w, f) < 0.7 * cont          # Hβ
    cool = P.stellar_sed(4200.0, 17.0)
    assert np.interp(3933.7, w, cool) < 0.5 * np.interp(3900.0, w, cool)   # Ca K
    assert np.interp(3850.0, w, cool) < 0.6 * np.interp(4150.0, w, cool)   # 4000 Å break


def test_g_curve_matches_sdssg_file():
    d = np.loadtxt(_real("filters", "sdssg.dat"))
    for teff in (4000.0, 5000.0, 6500.0, 9000.0):
        f = P.stellar_sed(teff, 19.0)
        g_file = float(P.ab_mag_curve(P.SED_WAVE, f, d[:, 0], d[:, 1]))
        assert g_file == pytest.approx(19.0, abs=0.02)


# --- scene, catalogue, truth -----------------------------------------------------------------

@pytest.fixture(scope="module")
def scene_and_slots():
    slots = _slots()
    scene = sky.make_shot_scene(np.random.default_rng(2024), "20190105", 14, slots,
                                n_stars_per_ifu=2.0, n_lines_per_ifu=3.0)
    return scene, slots


def test_scene_parameters(scene_and_slots):
    scene, slots = scene_and_slots
    assert 1.3 <= scene.fwhm <= 2.5 and scene.transparency.shape == (3,)
    assert np.all(np.abs(scene.transparency - 1) <= 0.1)
    off = np.hypot((scene.header_ra - scene.ra0) * np.cos(np.radians(scene.dec0)),
                   scene.header_dec - scene.dec0) * 3600
    assert 1.0 <= off <= 3.0
    dpa = (scene.pa - scene.header_pa + 180) % 360 - 180      # PARANGLE + angoff = pa (vdrp)
    assert 1.4 <= dpa <= 1.65 and dpa == pytest.approx(scene.angoff, abs=1e-9)
    assert len(scene.stars) > 5 and len(scene.lines) > 10
    assert np.all((scene.stars["g"] >= 15) & (scene.stars["g"] <= 22))
    assert np.all((scene.stars["teff"] >= 4000) & (scene.stars["teff"] <= 9000))
    ln = scene.lines
    assert np.all((ln["wave"] >= 3500) & (ln["wave"] <= 5500))
    assert np.all((ln["flux"] >= 3e-17) & (ln["flux"] <= 1e-15))
    assert np.all((ln["sigma"] >= 1.5) & (ln["sigma"] <= 4))
    ifus = {s.ifuslot for s in slots if s.is_ifu}
    assert set(scene.stars["ifuslot"]) | set(ln["ifuslot"]) <= ifus


def test_star_mags_follow_the_template_grid(scene_and_slots):
    # true u g r i z: the grid's absolute magnitudes shifted to g, reddened with qfit_gaia's
    # coefficients; the SED through the simulator's SDSS g curve gives back g (the grid's M_g is
    # stellarSEDfits' sloan_g curve: a few hundredths apart); catalogue values within 5 sigma
    from hetred.sim import stars as S

    scene, _ = scene_and_slots
    assert len(scene.stars) > 5 and 0.01 <= scene.ebv <= 0.03
    lib = S.templates()
    g_syn = P.ab_mag(scene.sed_wave, scene.sed_flam, "g")
    for k, st in enumerate(scene.stars):
        m = int(np.nonzero(lib.rows == st["model"])[0][0])
        true = np.array([st[b] for b in P.BANDS])
        np.testing.assert_allclose(true, S.true_mags(m, st["g"], scene.ebv), atol=1e-9)
        assert g_syn[k] == pytest.approx(st["g"], abs=0.05)
        cat = np.array([st[b + "_cat"] for b in P.BANDS])
        assert np.all(np.abs(cat - true) < 5 * S.catalogue_error(true) + 0.005)


def test_sources_fall_inside_ifus(scene_and_slots):
    scene, slots = scene_and_slots
    by_slot = {s.ifuslot: s for s in slots}
    for cat, lim in ((scene.stars, 19.0), (scene.lines, 23.5)):
        for src in cat:
            slot = by_slot[int(src["ifuslot"])]
            x, y = radec_to_ifu(slot, np.array([src["ra"]]), np.array([src["dec"]]), 1,
                                scene.ra0, scene.dec0, scene.pa)
            assert (x[0], y[0]) == pytest.approx((src["x_ifu"], src["y_ifu"]), abs=1e-6)
            assert abs(x[0]) <= lim and abs(y[0]) <= lim
            d = np.hypot(*(np.vstack([amp_positions(a, slot.ifuid) for a in sky.AMPS])
                           - [x[0], y[0]]).T)
            assert d.min() < 1.5    # lands on (or next to) a fiber


def test_truth_fibers_are_the_brightest(scene_and_slots):
    scene, slots = scene_and_slots
    truth = sky.scene_truth(scene, slots)
    json.dumps(truth)
    assert truth["dithers"] == [list(d) for d in DITHERS]
    by_slot = {s.ifuslot: s for s in slots}
    for kind, cat in (("stars", scene.stars), ("lines", scene.lines)):
        for k in range(0, len(cat), 3):
            t = truth[kind][k]
            one = _scene(fwhm=scene.fwhm, **{kind: cat[k:k + 1]})
            one.ra0, one.dec0, one.pa = scene.ra0, scene.dec0, scene.pa
            if kind == "stars":
                one.sed_wave, one.sed_flam = scene.sed_wave, scene.sed_flam[k:k + 1]
                unit = np.interp(t["ref_wave"], scene.sed_wave, scene.sed_flam[k])
            else:
                unit = float(sky.gaussian_line(t["ref_wave"], t["wave"], t["flux"], t["sigma"]))
            wave = np.full((112, 1032), t["ref_wave"])
            for exp in ("1", "2", "3"):
                fibers = t["fibers"][exp]
                assert fibers, f"{kind} {k} exp {exp} sees no fiber"
                slot = by_slot[fibers[0]["ifuslot"]]
                got = {(a, i + 1): v for a in sky.AMPS for i, v in
                       enumerate(sky.fiber_source_flux(one, slot, a, int(exp), wave)[:, 0] / unit)}
                best = max(got, key=got.get)
                assert (fibers[0]["amp"], fibers[0]["fiber"]) == best
                listed = {(f["amp"], f["fiber"]) for f in fibers if f["ifuslot"] == slot.ifuslot}
                assert listed == {key for key, v in got.items() if v > 0.01}
                for f in fibers[:5]:
                    assert f["fraction"] == pytest.approx(got[(f["amp"], f["fiber"])], rel=1e-9)
                total = sum(f["fraction"] for f in fibers)
                assert 0.1 < total <= 0.6


def test_catalogue_round_trip(scene_and_slots, tmp_path):
    scene, _ = scene_and_slots
    path = tmp_path / "stars.cat"
    sky.write_catalogue(scene, path)
    text = path.read_text().splitlines()
    # shuffle's shout.ifustars (the real 20180611v017 file): 10 '#' lines, 000001 ID RA DEC u g r i z
    assert text[1] == "#col  1: SHOTID " and sum(t.startswith("#") for t in text) == 10
    assert len(text) == len(scene.stars) + 10 and all(t.split()[0] == "000001" for t in text[10:])
    cat = sky.read_catalogue(path)
    np.testing.assert_allclose(cat["ra"], scene.stars["ra"], atol=1e-6)
    np.testing.assert_allclose(cat["dec"], scene.stars["dec"], atol=1e-6)
    for b in P.BANDS:      # the catalogue values (true + errors), printed with 2 decimals (%7.2f)
        np.testing.assert_allclose(cat[b], scene.stars[b + "_cat"], atol=0.005 + 1e-9)


def test_determinism():
    slots = _slots(4)
    a = sky.make_shot_scene(np.random.default_rng(5), "20190105", 3, slots)
    b = sky.make_shot_scene(np.random.default_rng(5), "20190105", 3, slots)
    c = sky.make_shot_scene(np.random.default_rng(6), "20190105", 3, slots)
    assert json.dumps(sky.scene_truth(a, slots)) == json.dumps(sky.scene_truth(b, slots))
    np.testing.assert_array_equal(a.stars, b.stars)
    np.testing.assert_array_equal(a.lines, b.lines)
    np.testing.assert_array_equal(sky.fiber_source_flux(a, slots[1], "LU", 3, WAVE),
                                  sky.fiber_source_flux(b, slots[1], "LU", 3, WAVE))
    assert (a.ra0, a.fwhm) != (c.ra0, c.fwhm)
    d = sky.make_shot_scene(np.random.default_rng(5), "20190105", 3, slots, ra0=200.0, dec0=51.0)
    assert (d.ra0, d.dec0) == (200.0, 51.0)
