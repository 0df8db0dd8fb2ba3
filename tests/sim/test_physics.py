"""The simulated light and detector land where the truth says."""
from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from hetred.io.raw import read_raw_member
from hetred.sim import spectra
from tests.sim.util import extract, find_peaks, refine_centroid

AMPS = ("LL", "LU", "RL", "RU")


def _truth(sim_night, amp, *names):
    path = sim_night.truth_amp(amp)
    return [fits.getdata(path, n) for n in names]


def _good_fibers(ftf_col):
    """Fibers that are not dead and whose neighbours are not dead (symmetric neighbourhood)."""
    good = ftf_col > 0.5
    return good & np.r_[True, good[:-1]] & np.r_[good[1:], True]


@pytest.mark.parametrize("amp", AMPS)
def test_twilight_peaks_on_truth_trace(sim_night, amp):
    tar, member, _ = [m for m in sim_night.members("twi") if m[1].endswith(f"{amp}_twi.fits")][0]
    img = read_raw_member(tar, member).oriented()
    trace, ftf = _truth(sim_night, amp, "TRACE", "FIBER_TO_FIBER")
    col = 500
    prof = np.median(img[:, col - 3:col + 4], axis=1)
    peaks = find_peaks(prof)
    want = trace[:, col - 3:col + 4].mean(axis=1)
    ok = _good_fibers(ftf[:, col])
    err = np.array([peaks[np.argmin(np.abs(peaks - y))] - y for y in want])
    assert ok.sum() >= 100
    assert np.abs(err[ok]).max() < 0.1, np.abs(err[ok]).max()
    assert abs(np.median(err[ok])) < 0.03
    # blocks of 37/38/37 with one-fiber gaps, pitch ~8.72
    d = np.diff(trace[:, col])
    assert np.all((d[[36, 74]] > 16.5) & (d[[36, 74]] < 18.5))
    assert 8.6 < np.median(d) < 8.85 and 10 < trace[0, col] < 35


@pytest.mark.parametrize("lamp,line", [("hg", 5460.750), ("cd-a", 5085.822)])
@pytest.mark.parametrize("amp", ["LL", "RU"])
def test_arc_line_lands_where_truth_wavelength_says(sim_night, lamp, line, amp):
    tar, member, _ = [m for m in sim_night.members("cmp", lamp) if m[1].endswith(f"{amp}_cmp.fits")][0]
    img = read_raw_member(tar, member).oriented()
    trace, wave, ftf, pflat = _truth(sim_night, amp, "TRACE", "WAVELENGTH", "FIBER_TO_FIBER", "PIXELFLAT")
    spec = extract(img / np.maximum(pflat, 0.1), trace)     # flat-fielded with the truth pixel flat
    cols = np.arange(1032, dtype=float)
    errs = []
    for f in np.nonzero(ftf[:, 516] > 0.5)[0]:
        x_pred = float(np.interp(line, wave[f], cols))
        x0, y0 = int(round(x_pred)), int(round(trace[f, int(round(x_pred))]))
        if pflat[max(y0 - 5, 0):y0 + 6, x0 - 6:x0 + 7].min() < 0.1:
            continue                   # a dead column of the truth crosses the line
        s = spec[f] - np.median(spec[f])
        assert np.argmax(s) in (int(np.floor(x_pred)), int(np.ceil(x_pred)))    # the brightest line
        errs.append(refine_centroid(s, x_pred, half=4.0) - x_pred)
    errs = np.array(errs)
    assert len(errs) > 80
    assert np.abs(errs).max() < 0.2, np.abs(errs).max()


def test_arc_peak_and_brightest_line(sim_night):
    for lamp in ("hg", "cd-a"):
        raw = read_raw_member(*sim_night.members("cmp", lamp)[0][:2])
        lvl = raw.overscan_level()
        peak_e = (np.percentile(raw.data[:, :1032], 99.99) - lvl) * raw.header["GAIN"]
        assert 8e3 < peak_e < 4e4 and raw.data[:, :1032].max() < 65535


def test_overscan_matches_truth_bias_level(sim_night):
    levels = sim_night.truth_night["amps"]
    n = 0
    for kind in ("zro", "drk", "flt", "twi", "sci"):
        for tar, member, e in sim_night.members(kind):
            raw = read_raw_member(tar, member)
            truth = levels[f"{sim_night.ifuslot:03d}{raw.amp}"]["bias_levels"][e["stamp"]]
            assert abs(raw.overscan_level() - truth) < 0.5, (member, raw.overscan_level(), truth)
            n += 1
    assert n == 4 * 11


def test_bias_levels_drift_a_few_adu(sim_night):
    for amp, rec in sim_night.truth_night["amps"].items():
        lv = np.array(list(rec["bias_levels"].values()))
        assert 1000 <= lv.min() and lv.max() <= 2210
        assert 0.1 < lv.max() - lv.min() < 20


def test_traps_present_in_biases(sim_night):
    seen = 0
    for tar, member, _ in sim_night.members("zro"):
        raw = read_raw_member(tar, member)
        traps = fits.getdata(sim_night.truth_amp(raw.amp), "TRAPS")
        lvl = raw.overscan_level()
        for t in traps:
            c, r0, excess = int(t["COL_RAW"]), int(t["ROW_RAW"]), float(t["EXCESS"])
            col = raw.data[:, c].astype(float) - lvl
            assert abs(np.median(col[r0 + 2:]) - excess) < 3.0
            if r0 > 20:
                assert abs(np.median(col[:r0 - 2][10:])) < 3.0
            seen += 1
    assert seen > 0            # the fixture amps have traps (seed 1)


def test_gain_truth_close_to_header(sim_night):
    for amp, rec in sim_night.truth_night["amps"].items():
        assert abs(rec["gain_true"] / rec["gain_header"] - 1) <= 0.02
        assert 0.85 <= rec["gain_header"] <= 0.90


def test_sources_land_in_truth_fibers(sim_night):
    dvo = sim_night.truth_night["shots"][0]
    shot = json.loads(sim_night.layout.path("truth_shot", night=sim_night.night, datevobs=dvo).read_text())
    top = shot["injected"][0]
    assert top["electrons"] > 2000
    amp, exp, fiber = top["amp"], top["exp"], top["fiber"]
    tar, member, _ = [m for m in sim_night.members("sci") if m[2]["exp"] == exp and m[1].endswith(f"{amp}_sci.fits")][0]
    img = read_raw_member(tar, member).oriented()
    trace, ftf = _truth(sim_night, amp, "TRACE", "FIBER_TO_FIBER")
    spec = extract(img, trace) / np.maximum(ftf, 0.05)           # flat-fielded fiber spectra
    sky = np.median(spec, axis=0)
    excess = ((spec - sky) * ftf).sum(axis=1)                   # electrons above the sky
    f = fiber - 1
    assert np.argmax(excess) == f
    assert 0.6 * top["electrons"] < excess[f] < 1.4 * top["electrons"]
    # a fiber that got nothing shows no such excess
    injected = {r["fiber"] for r in shot["injected"] if r["amp"] == amp and r["exp"] == exp}
    empty = [i for i in range(112) if i + 1 not in injected and ftf[i, 516] > 0.5]
    assert np.median(np.abs(excess[empty])) < 0.2 * top["electrons"]


def test_sky_level_dark_time():
    """~120 electrons per fiber per column at 4540 A in 360 s (hetdex_numbers §13)."""
    wave = np.array([[4540.0]])
    cont = spectra.on_pixels(spectra.sky_continuum_fine(), wave) * spectra.FIBER_AREA_ARCSEC2
    e = spectra.electrons(cont, wave, np.array([[1.98]]), 360.0)
    assert 100 < float(e[0, 0]) < 140


def test_truth_amp_contents(sim_night):
    with fits.open(sim_night.truth_amp("LU")) as h:
        for name in ("TRACE", "WAVELENGTH", "FIBER_TO_FIBER", "PROFILE_SIGMA", "PROFILE_POWER", "LSF_FWHM"):
            assert h[name].data.shape == (112, 1032) and h[name].data.dtype.kind == "f"
        assert h["PIXELFLAT"].data.shape == (1032, 1032)
        assert h["BIAS_STRUCTURE"].data.shape == (1032, 1064) and "raw" in h["BIAS_STRUCTURE"].header["ORIENT"]
        assert 0.0 < np.std(h["BIAS_STRUCTURE"].data[20:, :1032]) < 1.0
        pf = h["PIXELFLAT"].data
        assert 0.005 < np.std(pf[(pf > 0.95) & (pf < 1.05)]) < 0.015
        w = h["WAVELENGTH"].data
        disp = np.diff(w, axis=1)
        assert 1.98 < disp[:, 0].mean() < 2.05 and 1.86 < disp[:, -1].mean() < 1.92
        assert 3480 < w[:, 0].mean() < 3505 and 5500 < w[:, -1].mean() < 5530
        assert 2.2 < h["PROFILE_SIGMA"].data.mean() < 2.8 and 2.2 < h["PROFILE_POWER"].data.mean() < 2.8
        assert h[0].header["GAIN_HDR"] == read_raw_member(*sim_night.members("zro")[1][:2]).header["GAIN"]
        stamps = list(h["EXPOSURES"].data["STAMP"])
        assert len(stamps) == 13 and all(f"BIAS {s}" in h[0].header for s in stamps)


def test_sky_variation_moves_the_sources_too():
    """An amp's W0/W1 (hetred.sim.skyvar) move all its light, Karl's convention: a source line of
    true wavelength lam lands at the calibration wavelength lam - W0 - W1 (4500 - lam) (to first
    order), as the sky lines do; without a sky variation it lands at lam."""
    from hetred.sim import FrameCounts, SkyVariation, almanac
    from hetred.sim.focalplane import slot_entry
    from hetred.sim.frame import AmpModel, night_contexts
    from hetred.sim.plan import plan_night
    from hetred.sim.skyvar import line_position

    night, slot, seed = "20180110", slot_entry(53), 3
    plan = plan_night(night, FrameCounts(zro=0, drk=0, flt=0, hg=0, cd=0, twi=0, shots=1, bright_lines=4))
    var = SkyVariation(w0=0.5, w1=0.3e-3, continuum=(0, 0))
    still, moving = (night_contexts(seed, plan, [slot], skyvar=v)[0] for v in (None, var))
    assert still.exposure.kind == "sci" and len(still.scene.lines)
    checked = 0
    for amp in AMPS:
        model = AmpModel(seed, night, slot, amp, almanac.night_start(night))
        a = model.amp_sky(moving)
        assert abs(a.w0) > 0.0
        lines = {k: (near, e) for k, near, e in model.line_electrons(moving)}
        for k, near, e0 in model.line_electrons(still):
            lam = float(still.scene.lines["wave"][k])
            f = int(near[np.argmax(e0)])
            if e0.max() < 2000 or not 3600 < lam < 5400:
                continue
            wave = model.optics.wave[f]
            cols = np.abs(wave - lam) < 15.0
            cen = {}
            for tag, ctx in (("still", still), ("moving", moving)):
                s = model._sources(ctx)[f]
                s = s - np.median(s[np.abs(wave - lam) < 40.0])           # the line above the other sources
                cen[tag] = float(np.sum(wave[cols] * s[cols]) / np.sum(s[cols]))
            assert abs(cen["still"] - lam) < 0.15, (cen, lam)
            want = line_position(lam, a.w0, a.w1) - lam
            assert abs((cen["moving"] - cen["still"]) - want) < 0.03, (cen, want, a)
            assert np.isclose(lines[k][1].sum(), e0.sum(), rtol=2e-3)    # the same light, moved
            checked += 1
    assert checked >= 3
