"""Units of ``hetred detect``: one IFU of one shot (all its exposures), in one of three modes.

:func:`detect_units` lists the (shot, IFU slot) pairs of a month's (or one shot's) science
exposures in the tarlist; :func:`run_detect` does one: it loads the IFU's fibers
(:mod:`hetred.detect.loading`), negates them (``negate``, Karl's mode 112) or adds the sources of
a sources file (``inject``, modes 110/111), searches (:mod:`hetred.detect.search`), measures each
detection (:mod:`hetred.detect.measure`) and writes ``DATEvOBS_SSS_III_UUU.mc``, ``.list``,
``.spec`` (and ``.res`` with ``write_res``) atomically under ``detect/MONTH/DATEvOBS/MODE/``.
Missing later-stage inputs fall back as Karl's code does (:mod:`hetred.detect.inputs`), each noted
in the done marker's ``counts.notes``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetred.detect import formats as F
from hetred.detect.linefit import FitState
from hetred.detect.loading import FiberSet, fiber_flags, load_fibers
from hetred.detect.measure import Measurement, measure
from hetred.detect.psf import PsfModel, untangent
from hetred.detect.search import SearchData, SearchResult, search
from hetred.detect.settings import MODES, STAGE, DetectSettings
from hetred.errors import HetredError
from hetred.io.atomic import write_text_atomic
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.virus.ids import parse_datevobs

__all__ = ["STAGE", "DetectUnit", "detect_units", "run_detect", "unit_seed"]


@dataclass(frozen=True)
class DetectUnit:
    """One IFU slot of one shot, searched in one mode."""

    datevobs: str
    ifuslot: int
    mode: str = "search"

    @property
    def unit(self) -> str:
        base = f"{self.datevobs}_{self.ifuslot:03d}"
        return base if self.mode == "search" else f"{base}_{self.mode}"

    @property
    def month(self) -> str:
        return self.datevobs[:6]


def detect_units(layout: Layout, month: str | None = None, shot: str | None = None,
                 ifuslots: list[int] | None = None, mode: str = "search", entries: list | None = None
                 ) -> list[DetectUnit]:
    """The (shot, IFU slot) pairs of a month's science exposures (or of one ``shot``) in its
    tarlist (made first when missing) or ``entries``, narrowed to ``ifuslots``; sorted."""
    from hetred.lists.tarlist import month_entries

    if mode not in MODES:
        raise HetredError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    night = obs = None
    if shot is not None:
        try:
            night, obs = parse_datevobs(shot)
        except ValueError:
            raise HetredError(f"--shot must be DATEvOBS like 20180110v007, got {shot!r}") from None
        if month is not None and month != night[:6]:
            raise HetredError(f"shot {shot} is not in month {month}")
        month = night[:6]
    if month is None:
        raise HetredError("give a MONTH or --shot DATEvOBS")
    rows = month_entries(layout, month) if entries is None else entries
    keys = {(e.night, e.obs, e.ifuslot) for e in rows if e.kind == "sci"}
    if night is not None:
        keys = {k for k in keys if (k[0], k[1]) == (night, obs)}
    if ifuslots:
        keys = {k for k in keys if k[2] in set(ifuslots)}
    return [DetectUnit(f"{n}v{o:03d}", s, mode) for n, o, s in sorted(keys)]


def unit_seed(unit: DetectUnit, settings: DetectSettings) -> list[int]:
    """The entropy of the unit's NumPy generator (``rng = numpy``): the seed, shot, slot, mode."""
    return [int(settings.seed), int(unit.datevobs.replace("v", "")), unit.ifuslot, MODES.index(unit.mode)]


def paths(layout: Layout, fs: FiberSet, mode: str) -> dict[str, Path]:
    """The unit's output files by extension."""
    fields = {"month": fs.datevobs[:6], "datevobs": fs.datevobs, "run": mode, "specid": int(fs.specid),
              "ifuslot": fs.ifuslot, "ifuid": fs.ifuid}
    return {ext: layout.path(f"detect_{ext}", **fields) for ext in ("mc", "list", "spec", "res")}


def search_data(fs: FiberSet, psf: PsfModel) -> SearchData:
    return SearchData(fs.flux, fs.flux_err, fs.good.astype(np.uint8), fs.x, fs.y, fs.ux, fs.uy, psf)


def detect_fiberset(fs: FiberSet, settings: DetectSettings, state: FitState, reference: bool = False
                    ) -> tuple[SearchResult, list[Measurement], dict[str, float]]:
    """Search and measure a loaded (and possibly negated or injected) fiber set."""
    t0 = time.perf_counter()
    psf = PsfModel.make(fs.shot.fwhm, settings)
    flag1 = fiber_flags(fs, settings.flag_window, settings)[0]
    flag2 = fiber_flags(fs, settings.window_half, settings)[0]
    cosd = float(np.cos(np.radians(fs.dec0)))
    t1 = time.perf_counter()
    res = search(search_data(fs, psf), flag1, flag2, cosd, settings, reference=reference)
    t2 = time.perf_counter()
    out: list[Measurement] = []
    d = res.detections
    nga = 0
    for i in range(len(d)):
        m = measure(fs, nga + 1, float(d.x[i]), float(d.y[i]), float(d.wave[i]), flag2, psf, state)
        if m.mc is None and not settings.orphan_blocks:
            continue
        nga += 1
        out.append(m)
    t3 = time.perf_counter()
    return res, out, {"prepare": round(t1 - t0, 3), "search": round(t2 - t1, 3), "measure": round(t3 - t2, 3)}


def write_outputs(fs: FiberSet, res: SearchResult, meas: list[Measurement], files: dict[str, Path],
                  settings: DetectSettings) -> tuple[list[str], int]:
    """The .mc/.list/.spec (and .res) texts, written atomically; returns (paths, clamped values)."""
    clamps = F.Clamps()
    mc = "".join(F.format_mc(m.mc, clamps, settings.mc_columns) for m in meas if m.mc is not None)
    lst = "".join(F.format_list(r, clamps) for m in meas for r in m.rows)
    spec = "".join(F.format_spec([m.spectrum.wave, m.spectrum.flux, m.spectrum.flux_err, m.spectrum.counts,
                                  m.spectrum.counts_err, m.spectrum.apsum, m.spectrum.apsum_err,
                                  m.spectrum.dummy, m.spectrum.apcor], fs.ratzero, m.src_index, clamps)
                   for m in meas)
    written = []
    for ext, text in (("mc", mc), ("list", lst), ("spec", spec)):
        write_text_atomic(files[ext], text)
        written.append(str(files[ext]))
    if settings.write_res:
        mx = res.maxima
        ra, dec = untangent(mx.x, mx.y, fs.ra0, fs.dec0)
        text = "".join(F.format_res(ra[i], dec[i], mx.wave[i], mx.sn[i], mx.chi[i], mx.flux[i] * 2.0, mx.sigma[i],
                                    mx.con[i], clamps) for i in range(len(mx)))
        write_text_atomic(files["res"], text)
        written.append(str(files["res"]))
    return written, clamps.n


def run_detect(layout: Layout, unit: DetectUnit, settings: DetectSettings | None = None,
               sources: str | Path | None = None) -> UnitOutcome:
    """One unit (module docstring); the outcome lists the files, counts and timings."""
    settings = settings or DetectSettings()
    t0 = time.perf_counter()
    fs = load_fibers(layout, unit.datevobs, unit.ifuslot, settings)
    t1 = time.perf_counter()
    seed = unit_seed(unit, settings)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    state = FitState(settings, rng=rng)
    extra_inputs = []
    if unit.mode == "negate":
        fs.flux = -fs.flux
        fs.counts = -fs.counts
    elif unit.mode == "inject":
        from hetred.detect.inject import inject, read_sources

        sp = Path(sources) if sources else layout.path("detect_sources", month=unit.month, datevobs=unit.datevobs,
                                                        ifuslot=unit.ifuslot)
        if not sp.is_file():
            raise HetredError(f"--mode inject needs a sources file {sp} (ra dec wave flux [sigma]; give --sources)")
        psf = PsfModel.make(fs.shot.fwhm, settings)
        n_in = inject(fs, read_sources(sp), psf, rng if settings.rng == "numpy" else None)
        fs.notes.append(f"injected {n_in} sources from {sp}")
        extra_inputs.append(str(sp))
    res, meas, times = detect_fiberset(fs, settings, state)
    written, clamped = write_outputs(fs, res, meas, paths(layout, fs, unit.mode), settings)
    t2 = time.perf_counter()
    if res.capped:
        fs.notes.append(f"stored window fits reached max_fits {settings.max_fits} (Karl's 'Hit nt max'): "
                        "the search stopped early")
    if clamped:
        fs.notes.append(f"{clamped} values did not fit their Fortran field and were clamped")
    counts = {
        "mode": unit.mode, "profile": settings.profile_name, "fibers": len(fs), "amps": len(fs.amps),
        "fwhm": fs.shot.fwhm, "ratzero": round(fs.ratzero, 3), "positions": list(res.n_positions),
        "window_fits": list(res.n_fits), "candidates": res.n_candidates, "detections": len(meas),
        "mc_lines": sum(m.mc is not None for m in meas),
        "rng": settings.rng, "seed": seed if settings.rng == "numpy" else "karl (idum=-1 reset per fit)",
        "notes": fs.notes, "timings": {"load": round(t1 - t0, 3), **times, "total": round(t2 - t0, 3)},
    }
    return UnitOutcome(outputs=written, inputs=sorted(set(fs.inputs + extra_inputs)), counts=counts,
                       depends=sorted(set(fs.looked + extra_inputs)), notes=unit_notes(fs.notes, unit.unit))


def unit_notes(notes: list[str], unit: str) -> dict[str, list[str]]:
    """The done marker's ``notes`` ({what: [units]}): a fallback of :data:`hetred.detect.inputs.FALLBACKS`
    by its kind, anything else under its own text."""
    from hetred.detect.inputs import FALLBACKS

    out: dict[str, list[str]] = {}
    for n in notes:
        if n.startswith("[") and "] " in n and n[1:n.index("]")] in FALLBACKS:
            out.setdefault(FALLBACKS[n[1:n.index("]")]], []).append(unit)
        else:
            out.setdefault("notes", []).append(f"{unit}: {n}")
    return out
