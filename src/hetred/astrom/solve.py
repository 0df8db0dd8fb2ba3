"""One shot's astrometry from its star tables: the whole of vdrp's step 8 after star finding.

:func:`solve` runs, in vdrp's order (HETDEX/vdrp src/vdrp/astrometry.py ``main``;
shared/reference/astrom_throughput.md §1): registration and ``norm.dat`` (mktot, rmaster, flux_norm),
the offset fit of every exposure at every trial rotation offset with the nominal one last
(compute_offset), the optimal offset (compute_optimal_ang_off) and, when
``apply_optimal_angle``, the fit at that offset (vdrp since 2019), the shot centre (combine_radec),
the matched stars' IFU positions (add_ifu_xy) and every fiber's RA/Dec (fibcoords).
:func:`products` turns the result into the files (layout key, fields, text).

Pure: no file is read or written here (:mod:`hetred.astrom.run` does that).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hetred.astrom import formats as F
from hetred.astrom.fibers import FiberTable, fiber_coords, format_dith, format_fixed_width
from hetred.astrom.getoff import ExposureFit, Placed, fit_exposure, ifu_xy, place
from hetred.astrom.register import Registration, all_raw_table, flux_norm, frame_stars, register
from hetred.astrom.rotation import ExposureOptimum, Trial, combine_radec, optimal_angle, refine_angle
from hetred.astrom.settings import AstromSettings
from hetred.errors import HetredError
from hetred.virus.fplane import FplaneEntry, format_fplane


@dataclass
class ExposureInput:
    """One exposure: its number (1-based), time stamp and ``.als`` table per IFU slot."""

    index: int
    stamp: str                               #: CoFeS stamp, 17 characters (15 from .als names)
    tables: dict[int, np.ndarray]            #: ifuslot -> :data:`~hetred.astrom.formats.ALS_DTYPE`
    images: dict[int, np.ndarray] = field(default_factory=dict)   #: ifuslot -> CoFeS image (fiber norm)
    recon: dict[int, Any] = field(default_factory=dict)            #: ifuslot -> fibermodel.Recon

    @property
    def prefix(self) -> str:
        """vdrp's 15-character file prefix (``20180611T054545``)."""
        return self.stamp[:15]


@dataclass
class ShotInput:
    """Everything :func:`solve` needs for one shot."""

    name: str                                #: DATEvOBS (or the folder name outside the layout)
    exposures: list[ExposureInput]
    fplane: dict[int, FplaneEntry]
    catalog: np.ndarray                      #: :data:`~hetred.astrom.formats.CAT_DTYPE`
    radec_orig: tuple[float, float, float]   #: TRAJRA (hours), TRAJDEC, PARANGLE (deg)
    pixel_offset: tuple[float, float]        #: (xoff, yoff) added to the 1-based pixel x, y
    fibermaps: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ShotSolution:
    """What :func:`solve` found (see the module docstring)."""

    input: ShotInput
    settings: AstromSettings
    placed: list[Placed]
    trials: dict[float, list[ExposureFit]]
    optimum: float
    optima: list[ExposureOptimum]
    angle: float                             #: the rotation offset of the final solution
    fits: list[ExposureFit]                  #: per exposure at ``angle``
    used: list[bool]                         #: exposures that entered combine_radec
    final: tuple[float, float, float]
    scatter: tuple[float, float]             #: arcsec, of the de-dithered exposure centres
    registration: Registration
    norm: np.ndarray
    fibers: list[FiberTable]
    warnings: list[str]
    norm_info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)     #: s per step of :func:`solve`

    def counts(self) -> dict[str, Any]:
        """Numbers for the done marker and the CLI summary."""
        return {
            "ra": round(self.final[0], 6), "dec": round(self.final[1], 6), "pa": round(self.final[2], 6),
            "angoff": round(self.angle, 8), "optimal_angoff": None if np.isnan(self.optimum) else round(self.optimum, 8),
            "stars": [len(p) for p in self.placed], "pairs": [f.last.n for f in self.fits],
            "rms": [[round(f.last.s_ra, 5), round(f.last.s_dec, 5)] for f in self.fits],
            "scatter_arcsec": [round(self.scatter[0], 3), round(self.scatter[1], 3)],
            "norm": [round(float(v), 8) for v in self.norm], "registered": [round(float(v), 3) for v in
                                                                           (*self.registration.dx, *self.registration.dy)],
            "fibers": sum(len(t) for t in self.fibers), "warnings": self.warnings, "norm_info": self.norm_info,
        }


def solve(inp: ShotInput, settings: AstromSettings) -> ShotSolution:
    """The astrometry of one shot (module docstring). Raises :class:`HetredError` with one line
    when the shot cannot be solved (no star detected, no detection near a catalogue star)."""
    import time

    clock = [time.perf_counter()]
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 4)
        clock[0] = now

    warnings = list(inp.warnings)
    dithers = settings.dither_pairs
    if len(inp.exposures) > len(dithers):
        raise HetredError(f"{inp.name}: {len(inp.exposures)} exposures but only {len(dithers)} dither offsets")
    xoff, yoff = inp.pixel_offset
    placed = [place(e.tables, inp.fplane, xoff, yoff) for e in inp.exposures]
    if sum(len(p) for p in placed) == 0:
        nimg = sum(len(e.tables) for e in inp.exposures)
        raise HetredError(f"{inp.name}: no star found on any of its {nimg} IFU images")
    # registration and flux normalisation (mktot, rmaster, flux_norm)
    frames = [frame_stars(e.tables, inp.fplane, settings.mktot_magmin, settings.mktot_magmax)
              for e in inp.exposures]
    reg = register(frames, dithers[:len(frames)])
    mags = all_raw_table(reg)[3]
    lap("register")
    norm, norm_info = None, {"method": "psf"}
    if len(frames) > 1 and settings.norm_method == "fiber":
        if all(e.images for e in inp.exposures) and inp.fibermaps:
            from hetred.astrom.normfit import fiber_norm

            norm, norm_info = fiber_norm(inp, frames, reg, settings)
        else:
            warnings.append("no images or fiber positions for the fiber-model norm: norm.dat from the PSF "
                            "magnitudes (vdrp)")
    if norm is None and len(frames) > 1 and norm_info["method"] == "psf":
        norm = flux_norm(mags, settings.fluxnorm_mag_max)
    if norm is None:
        warnings.append(f"no star brighter than {settings.fluxnorm_mag_max:g} mag in every exposure: "
                        "norm.dat set to 1")
        norm = np.ones(len(frames))
    lap("norm")
    # offsets at every trial rotation offset, the nominal one last (compute_offset)
    ra_h, dec0, pa0 = inp.radec_orig
    ra0 = ra_h * 15.0
    cat_ra, cat_dec = inp.catalog["ra"], inp.catalog["dec"]

    def fit_all(angle: float) -> list[ExposureFit]:
        return [fit_exposure(p, cat_ra, cat_dec, ra0, dec0, pa0, angle, settings.radii) for p in placed]

    angles = [a for a in settings.angoff_trials if a != settings.angoff] + [settings.angoff]
    trials = {a: fit_all(a) for a in angles}
    rows = [Trial(e.index, a, f.last.rms, f.last.n) for a in angles
            for e, f in zip(inp.exposures, trials[a]) if f.last.n > 0]
    optimum, optima = optimal_angle(rows, settings.smoothing, settings.angle_grid_step)
    if not np.isnan(optimum) and settings.angoff_refine:
        fine = [round(optimum + off, 6) for off in settings.angoff_refine]
        for a in fine:
            if a not in trials:
                trials[a] = fit_all(a)
                rows += [Trial(e.index, a, f.last.rms, f.last.n) for e, f in zip(inp.exposures, trials[a])
                         if f.last.n > 0]
        refined, fine_optima = refine_angle(rows, fine)
        if not np.isnan(refined):
            optimum, optima = refined, fine_optima
    if np.isnan(optimum):
        warnings.append("too few rotation trials with matched stars for an optimal rotation offset")
    elif optimum not in trials:
        trials[optimum] = fit_all(optimum)
    lap("offsets_and_rotation")
    angle = optimum if settings.apply_optimal_angle and not np.isnan(optimum) else settings.angoff
    fits = trials[angle]
    used = [f.last.n > 0 for f in fits]
    if not any(used):
        raise HetredError(f"{inp.name}: no detected star within {settings.radii[-1]:g}\" of a catalogue star "
                          f"in any exposure ({len(inp.catalog)} catalogue stars, "
                          f"{sum(len(p) for p in placed)} detections)")
    for e, ok in zip(inp.exposures, used):
        if not ok:
            warnings.append(f"exp{e.index:02d}: no detection near a catalogue star, left out of the shot centre")
    # vdrp reads radec2_expNN.dat and radec2_final.dat back: their printed values (%.6f) go on
    sols = [printed(f.ra, f.dec, f.pa) for f, ok in zip(fits, used) if ok]
    dith = [dithers[e.index - 1] for e, ok in zip(inp.exposures, used) if ok]
    ra, dec, pa, sra, sdec = combine_radec(sols, dith)
    ra, dec, pa = printed(ra, dec, pa)
    fibers = [fiber_coords(inp.fibermaps, inp.fplane, ra, dec, pa, dithers[e.index - 1], e.stamp,
                           f"exp{e.index:02d}") for e in inp.exposures]
    lap("combine_and_fibers")
    return ShotSolution(inp, settings, placed, trials, optimum, optima, angle, fits, used, (ra, dec, pa),
                        (sra, sdec), reg, np.asarray(norm, float), fibers, warnings, norm_info, timings)


def printed(*values: float) -> tuple[float, ...]:
    """Values as a ``radec*.dat`` file holds them (``%.6f``)."""
    return tuple(float(f"{v:.6f}") for v in values)


def angle_tag(angle: float) -> str:
    """vdrp's trial file tag, ``{:06.3f}`` (1.45 -> ``01.450``)."""
    return f"{angle:06.3f}"


def _tmp_csv(placed: Placed, fit: ExposureFit) -> str:
    """``tmp_expNN.csv``: the detections as projected for the last getoff2 call (vdrp add_ra_dec)."""
    head = "ID,icx,icy,mag,mag_std,sky,niter,CHI,SHARP,ra,dec,ifuslot,xfplane,yfplane"
    rows = [head]
    for k, r in enumerate(placed.als):
        rows.append(",".join([str(int(r["id"])), repr(float(r["x"])), repr(float(r["y"])), repr(float(r["mag"])),
                              repr(float(r["merr"])), repr(float(r["sky"])), repr(float(r["niter"])),
                              repr(float(r["chi"])), repr(float(r["sharp"])), repr(float(fit.ra_det[k])),
                              repr(float(fit.dec_det[k])), f"{int(placed.ifuslot[k]):03d}",
                              repr(float(placed.xfp[k])), repr(float(placed.yfp[k]))]))
    return "\n".join(rows) + "\n"


def _getoff_text(placed: Placed, fit: ExposureFit, cat: np.ndarray) -> str:
    g = fit.last
    return F.format_getoff(g.dra, g.ddec, fit.ra_det[g.det], fit.dec_det[g.det], cat["ra"][g.cat],
                           cat["dec"][g.cat], placed.ifuslot[g.det])


def _xy_text(placed: Placed, fit: ExposureFit, cat: np.ndarray, fplane: dict[int, FplaneEntry]) -> str:
    """``xy_expNN.dat`` (vdrp add_ifu_xy): each pair's detection and catalogue star in IFU x, y."""
    g = fit.last
    cols: list[list[str]] = []
    names: list[str] = []
    for tag, ra, dec in (("det", fit.ra_det[g.det], fit.dec_det[g.det]), ("cat", cat["ra"][g.cat], cat["dec"][g.cat])):
        ra = np.array([float(f"{v:.6f}") for v in ra])      # as read back from getoff.out
        dec = np.array([float(f"{v:.6f}") for v in dec])
        x, y, slot = ifu_xy(ra, dec, fplane, *printed(fit.ra, fit.dec, fit.pa))
        names += [f"RA_{tag}", f"DEC_{tag}", f"IFUSLOT_{tag}", f"xifu_{tag}", f"yifu_{tag}", f"ifuslot_{tag}"]
        cols += [[repr(float(v)) for v in ra], [repr(float(v)) for v in dec],
                 [str(int(s)) for s in placed.ifuslot[g.det]], [repr(float(v)) for v in x],
                 [repr(float(v)) for v in y], [str(int(s)) for s in slot]]
    return format_fixed_width(names, cols)


def products(sol: ShotSolution) -> list[tuple[str, dict[str, Any], str]]:
    """Every file of the shot as (layout key, fields, text); ``fields`` lacks ``datevobs``."""
    inp, s = sol.input, sol.settings
    out: list[tuple[str, dict[str, Any], str]] = []
    ra_h, dec0, pa0 = inp.radec_orig
    out.append(("astrom_radec_orig", {}, F.format_radec(ra_h, dec0, pa0)))
    out.append(("astrom_fplane", {}, format_fplane(inp.fplane)))
    cat = inp.catalog
    out.append(("astrom_catalog", {}, F.format_ifustars(cat["ra"], cat["dec"],
                                                        np.column_stack([cat[b] for b in "ugriz"]),
                                                        ids=cat["id"])))
    for e in inp.exposures:
        for slot, t in sorted(e.tables.items()):
            out.append(("astrom_als", {"stamp": e.prefix, "ifuslot": slot}, F.format_als(t)))
    # registration
    reg = sol.registration
    frames_rows = []
    for k, e in enumerate(inp.exposures):
        p = frame_stars(e.tables, inp.fplane, s.mktot_magmin, s.mktot_magmax)
        frames_rows.append(zip(p.ids, p.x, p.y, p.mag))
        out.append(("astrom_tot", {"stamp": e.prefix}, F.format_tot_als(frames_rows[-1])))
    names = [f"{e.prefix}tot.als" for e in inp.exposures]
    out.append(("astrom_mch", {}, F.format_mch(names, reg.dx, reg.dy, reg.dmag, reg.sigma)))
    ids, x, y, mags, errs = all_raw_table(reg)
    out.append(("astrom_raw", {}, F.format_all_raw(ids, x, y, mags, errs)))
    out.append(("astrom_norm", {}, F.format_norm(sol.norm)))
    # trials
    ra0 = ra_h * 15.0
    for angle, fits in sorted(sol.trials.items()):
        tag = angle_tag(angle)
        for e, p, f in zip(inp.exposures, sol.placed, fits):
            g = f.last
            fld = {"exp": e.index, "angle": tag}
            out.append(("astrom_trial_getoff", fld, _getoff_text(p, f, cat)))
            out.append(("astrom_trial_getoff2", fld, F.format_getoff2(g.inc_ra, g.inc_dec, g.s_ra, g.s_dec, g.n)))
            out.append(("astrom_trial_radec", fld, F.format_radec(ra0, dec0, pa0 + angle)))
            out.append(("astrom_trial_radec2", fld, F.format_radec(f.ra, f.dec, f.pa)))
    # the solution
    for e, p, f in zip(inp.exposures, sol.placed, sol.fits):
        g = f.last
        fld = {"exp": e.index}
        out.append(("astrom_radec_exp", fld, F.format_radec(ra0, dec0, pa0 + sol.angle)))
        out.append(("astrom_radec2_exp", fld, F.format_radec(f.ra, f.dec, f.pa)))
        out.append(("astrom_getoff", fld, _getoff_text(p, f, cat)))
        out.append(("astrom_getoff2", fld, F.format_getoff2(g.inc_ra, g.inc_dec, g.s_ra, g.s_dec, g.n)))
        out.append(("astrom_tmp", fld, _tmp_csv(p, f)))
        out.append(("astrom_xy", fld, _xy_text(p, f, cat, inp.fplane)))
    out.append(("radec_final", {}, F.format_radec(*sol.final)))
    per_exp = [format_dith([t]) for t in sol.fibers]
    for e, text in zip(inp.exposures, per_exp):
        out.append(("astrom_dith", {"exp": e.index}, text))
    heads = {text.split("\n", 1)[0] for text in per_exp}
    if len(heads) == 1:         # same column widths: dithall.use is the exposures' rows stacked
        out.append(("dithall", {}, per_exp[0] + "".join(text.split("\n", 1)[1] for text in per_exp[1:])))
    else:
        out.append(("dithall", {}, format_dith(sol.fibers)))
    return out
