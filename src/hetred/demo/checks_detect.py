"""The line detection (``hetred detect``) and continuum sources (``hetred continuum``) in the demo,
against the simulator's truth.

* the demo night's shot, reduced from raw by every stage before: its IFUs searched; the 4 bright
  lines per IFU (``FrameCounts.bright_lines``) must be found, their flux, wavelength and
  position measured;
* a shot simulated at the level of the multi files (:mod:`hetred.sim.detect_shot`) with 300
  faint line emitters in each of IFUs 053, 062, 082, 083, 086 and 087, a blank IFU 063 and stars (g 17-21) in IFU 073, searched and
  searched negated (purity), its completeness against the ideal matched filter; its stars for the
  continuum sources.

Both use the ``fixed`` profile: the simulator puts the ADR along the IFU x axis (hetdex_api's
convention), which Karl's STRUCTAZ convention (profile hdr2.1) follows only where the header's
STRUCTAZ is PA + 180 (the detection preset writes it so; the raw simulator's STRUCTAZ is the
telescope's). The PSF model is the simulator's: the seeing FWHM of the truth (so that these rows
judge the detection alone; hetred throughput measures it in the demo to ~1 %, and a run without
``fwhm`` reads its fwhm.out) and Moffat beta 3.5 (hetdex_api's; Karl's 3.9 on
these data biases fluxes by ~ -3.5 %, docs/stages/detect.md).

The raw shot's 4 bright lines per IFU (1.5e-14 erg/s/cm², for the sci stage's flux test) reach
S/N ~ 1000 near their centres, above Karl's ``sncut_hi`` (900): his search rejects those fits and
keeps a ring of satellites around them; they are not checked. Its random lines above 1e-16 are.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from hetred.demo.result import Check
from hetred.errors import HetredError

if TYPE_CHECKING:
    from hetred.demo.result import DemoResult

PRESET = "detect_preset"
#: six line IFUs (1800 lines): 160-440 with ideal S/N > 10 (fewer in bad seeing), so the median flux bias is
#: known to 0.6-1 % (three IFUs: 82-220 lines, 0.8-1.5 % by bootstrap; seeds 2 and 5 read -2.5 and +3.4 %)
#: (one IFU: 37 lines, +-2.4 %, too few for a 3 % tolerance)
LINE_SLOTS, BLANK_SLOTS, STAR_SLOTS = (53, 62, 82, 83, 86, 87), (63,), (73,)
LSF_SIGMA = 5.5 / 2.3548200450309493


def _settings(fwhm: float):
    from hetred.detect.settings import DetectSettings

    return DetectSettings.from_config({"fwhm": fwhm, "moffat_beta": 3.5}, profile="fixed")


def _run(layout, unit, settings) -> list[str]:
    from hetred.detect.run import STAGE, run_detect
    from hetred.jobs.units import run_unit

    r = run_unit(layout, STAGE, unit.unit, lambda: run_detect(layout, unit, settings), overwrite=True)
    if r.status == "failed":
        raise HetredError(f"detect {unit.unit}: {r.message}")
    return list(r.outcome.outputs) if r.outcome else []


def preset_layout(res: DemoResult):
    from hetred.layout import Layout

    root = res.root / PRESET
    return Layout(root / "raw", root / "red")


def stage_detect(res: DemoResult) -> list[str]:
    """Detect on the demo shot's IFUs and on the preset shot (search and negate)."""
    from hetred.detect.run import DetectUnit
    from hetred.sim.detect_shot import simulate_detect_shot
    from hetred.virus.ids import parse_datevobs

    assert res.summary is not None
    out: list[str] = []
    for dvo in res.summary.shots:
        night, _ = parse_datevobs(dvo)
        truth = json.loads(res.layout.path("truth_shot", night=night, datevobs=dvo).read_text())
        s = _settings(float(truth["fwhm"]))
        for slot in res.summary.ifuslots:
            out += _run(res.layout, DetectUnit(dvo, int(slot)), s)
    lay = preset_layout(res)
    shot = simulate_detect_shot(lay, line_slots=LINE_SLOTS, blank_slots=BLANK_SLOTS + STAR_SLOTS, n_lines=300,
                                n_stars=6, star_slots=STAR_SLOTS, g_range=(17.0, 21.0), seed=res.summary.seed)
    np.save(res.root / PRESET / "lines.npy", shot.lines)
    np.save(res.root / PRESET / "stars.npy", shot.stars)
    (res.root / PRESET / "meta.json").write_text(json.dumps({"datevobs": shot.datevobs, "fwhm": shot.scene.fwhm}))
    s = _settings(shot.scene.fwhm)
    for slot in LINE_SLOTS + BLANK_SLOTS:
        for mode in ("search", "negate"):
            out += _run(lay, DetectUnit(shot.datevobs, slot, mode), s)
    return out


#: the allowances of the demo shot's rows beside each line's noise: its 2 IFUs' calibration (the
#: response curve of ~10 stars, norm.dat: ~3 %), the wavelength solution
SYS_FLUX, SYS_WAVE = 0.03, 0.1
MIN_IDEAL_SN = 8.0           #: lines a search must find: ideal S/N >= this (the threshold is ~5)


def _shot_rows(res: DemoResult, dvo: str) -> list[Check]:
    """The demo shot's random lines of 1e-16 - 1e-14 erg/s/cm^2 (module docstring), judged
    against each line's noise: its ideal matched-filter S/N from the calibrated fibers'
    errors (:func:`hetred.demo.detect_eval.ideal_snr_calfib`) says whether a search must find
    it; the rows below judge those found among them: its measured S/N (``sn``) gives the 1-sigma
    of its flux (F / sn) and wavelength (sqrt2 sigma_obs / sn), each added in quadrature to the
    SYS_* allowance; the worst |deviation| / that sigma must be <= 3 (a few lines: ~1 % chance
    per row of a 3-sigma excursion); the worst position offset <= 0.5"."""
    from hetred.demo import detect_eval as E

    truth = json.loads(res.layout.path("truth_shot", night=dvo[:8], datevobs=dvo).read_text())
    bright = [ln for ln in truth["lines"] if 1e-16 <= ln["flux"] < 1e-14]
    t = np.zeros(len(bright), dtype=[("ra", "f8"), ("dec", "f8"), ("wave", "f8"), ("flux", "f8"),
                                    ("sigma_obs", "f8")])
    for k, ln in enumerate(bright):
        t[k] = (ln["ra"], ln["dec"], ln["wave"], ln["flux"], np.hypot(ln["sigma"], LSF_SIGMA))
    fwhm = float(truth["fwhm"])
    ideal = E.ideal_snr_calfib(res.layout, res.month, dvo, t, fwhm) if len(t) else np.zeros(0)
    det = E.read_mc(E.mc_files(res.layout.red, "search"))
    idx = E.match(det, t)
    must = ideal >= MIN_IDEAL_SN
    found = idx >= 0
    rows = [Check("detect", f"{dvo}: lines of 1e-16 - 1e-14 erg/s/cm² with ideal S/N >= {MIN_IDEAL_SN:g} found "
                  f"({len(t) - int(must.sum())} fainter, {int((found & ~must).sum())} of them found)",
                  int((found & must).sum()), f"= {int(must.sum())}", bool(found[must].all()), "lines")]
    judged = found & must        # near the threshold a detection is a noise peak's position
    if not judged.any():
        return rows
    i = idx[judged]
    tf = t[judged]
    sn = np.maximum(det["sn"][i], 1.0)
    zf = np.abs(det["flux"][i] * 1e-17 / tf["flux"] - 1.0) / np.hypot(1.0 / sn, SYS_FLUX)
    zw = np.abs(det["wave"][i] - tf["wave"]) / np.hypot(np.sqrt(2.0) * tf["sigma_obs"] / sn, SYS_WAVE)
    cosd = np.cos(np.radians(np.mean(tf["dec"])))
    d = 3600 * np.hypot((det["ra"][i] - tf["ra"]) * cosd, det["dec"][i] - tf["dec"])
    n = int(judged.sum())
    for what, z, sys in (("flux / truth - 1", zf, f"{SYS_FLUX:.0%}"), ("wavelength - truth", zw, f"{SYS_WAVE} A")):
        rows.append(Check("detect", f"{dvo}: those found ({n}; ideal S/N >= {MIN_IDEAL_SN:g}), worst |{what}| / its "
                          f"sigma (noise from S/N, {sys} allowance)", float(np.max(z)), "<= 3", bool(np.max(z) <= 3.0),
                          "sigma"))
    # the position is not judged in sigmas: the search's raster and its S/N peak give it a floor of
    # ~0.2" (the preset: median offset 0.25" at ideal S/N 15-30 in 2.4" seeing, 1.9 x the ideal
    # centroid noise), so the worst offset is held to the 0.5" it always was
    rows.append(Check("detect", f"{dvo}: those found ({n}), worst position offset", float(np.max(d)), "<= 0.5",
                      bool(np.max(d) <= 0.5), "arcsec"))
    return rows


def check_detect(res: DemoResult) -> list[Check]:
    from hetred.demo import detect_eval as E

    assert res.summary is not None
    rows: list[Check] = []
    for dvo in res.summary.shots:
        rows += _shot_rows(res, dvo)
    root = res.root / PRESET
    lines = np.load(root / "lines.npy")
    red = root / "red"
    det = E.read_mc(E.mc_files(red, "search", LINE_SLOTS))
    neg = E.read_mc(E.mc_files(red, "negate", LINE_SLOTS))
    idx = E.match(det, lines)
    comp = E.completeness(lines, idx)
    rows.append(Check("detect", f"preset ({len(lines)} lines): f50 / ideal matched-filter flux at S/N 5", comp.ratio,
                      "<= 1.2", comp.ratio <= 1.2, ""))
    curve = E.purity_curve(det["sn"], neg["sn"])
    p5 = next(p for t, _, _, p in curve if t == 5.0)
    rows.append(Check("detect", "preset: purity at S/N >= 5 (negated search)", p5, ">= 0.95", p5 >= 0.95, ""))
    bl = E.read_mc(E.mc_files(red, "search", BLANK_SLOTS))
    bn = E.read_mc(E.mc_files(red, "negate", BLANK_SLOTS))
    nb, nn = int(np.sum(bl["sn"] >= 5)), int(np.sum(bn["sn"] >= 5))
    z = abs(nb - nn) / np.sqrt(max(nb + nn, 1))
    rows.append(Check("detect", f"preset blank IFU: S/N >= 5 search {nb} vs negated {nn} (Poisson sigmas)", z,
                      "<= 2", z <= 2.0, "sigma"))
    m = E.measurement(det, lines, idx, 10.0)
    sd = E.median_flux_bias_sd(det, lines, idx, 10.0)
    rows.append(Check("detect", f"preset, ideal S/N > 10, not blended ({m.n} lines): median flux bias "
                      f"(its bootstrap 1-sigma {sd:.3f})", m.flux_bias, "|.| <= 0.03",
                      abs(m.flux_bias) <= 0.03, ""))
    rows.append(Check("detect", "preset: median |wavelength - truth|", m.dwave_median, "<= 0.3", m.dwave_median <= 0.3,
                      "A"))
    rows.append(Check("detect", "preset: median position offset", m.pos_median, "<= 0.3", m.pos_median <= 0.3,
                      "arcsec"))
    rows.append(Check("detect", "preset: median linewidth / truth", m.sigma_ratio, "0.9-1.1",
                      0.9 <= m.sigma_ratio <= 1.1, ""))
    return rows


def stage_continuum(res: DemoResult) -> list[str]:
    from hetred.detect.continuum import STAGE_CONTINUUM, ContinuumUnit, run_continuum
    from hetred.jobs.units import run_unit

    root = res.root / PRESET
    meta = json.loads((root / "meta.json").read_text())
    lay = preset_layout(res)
    unit = ContinuumUnit(meta["datevobs"])
    r = run_unit(lay, STAGE_CONTINUUM, unit.unit, lambda: run_continuum(lay, unit, _settings(meta["fwhm"])),
                 overwrite=True)
    if r.status == "failed":
        raise HetredError(f"continuum {unit.unit}: {r.message}")
    return list(r.outcome.outputs) if r.outcome else []


def check_continuum(res: DemoResult) -> list[Check]:
    root = res.root / PRESET
    meta = json.loads((root / "meta.json").read_text())
    stars = np.load(root / "stars.npy")
    lay = preset_layout(res)
    rcs = lay.path("continuum_rcs", month=meta["datevobs"][:6], datevobs=meta["datevobs"]).read_text().splitlines()
    found = np.array([[float(ln.split()[1]), float(ln.split()[2])] for ln in rcs if ln.strip()]).reshape(-1, 2)
    cosd = np.cos(np.radians(np.mean(stars["dec"]))) if len(stars) else 1.0
    bright = stars[stars["g"] < 20.0]
    counts, offs = [], []
    for s in bright:
        d = 3600 * np.hypot((found[:, 0] - s["ra"]) * cosd, found[:, 1] - s["dec"]) if len(found) else np.zeros(0)
        counts.append(int(np.sum(d < 2.0)))
        offs.append(float(d.min()) if d.size else 99.0)
    once = sum(c == 1 for c in counts)
    return [Check("continuum", "preset stars g < 20 found exactly once (Karl's 50 e- cut)", once,
                  f"= {len(bright)}", once == len(bright), "stars"),
            Check("continuum", "preset stars g < 20: worst position offset", max(offs) if offs else 0.0, "<= 0.3",
                  (max(offs) if offs else 0.0) <= 0.3, "arcsec")]
