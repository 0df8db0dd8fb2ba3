"""Units of ``hetred astrom``: one shot (all IFUs, its exposures), and the run outside the layout.

:func:`astrom_units` lists a month's (or one shot's) science shots from the tarlist;
:func:`run_astrom` does one: it finds the shot's inputs in the layout (CoFeS images and multi
files of ``hetred sci``, the night's fplane, the star catalogue), finds the stars of every image
(:mod:`hetred.astrom.stars`), solves the shot (:mod:`hetred.astrom.solve`) and writes every file
of the astrometry folder atomically, plus the QA PNGs. :func:`run_folder` does the same for a
folder of CoFeS images or DAOPHOT ``.als`` files with a ``radec.orig``, an fplane and a catalogue
(no multi files), into any folder. A shot that cannot be solved fails with one line; a bad image
or an IFU missing from the fplane is left out with a warning (in the done marker's counts).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hetred.astrom import formats as F
from hetred.astrom.inputs import (
    DEFAULT_PIXEL_OFFSET,
    ExposureFiles,
    als_exposures,
    folder_exposures,
    ifupos_fibermaps,
    layout_fibermaps,
    load_fplane,
    night_fplane,
    pixel_offset_of,
    read_pointing,
)
from hetred.astrom.settings import STAGE, AstromSettings
from hetred.astrom.solve import ExposureInput, ShotInput, ShotSolution, products, solve
from hetred.errors import HetredError
from hetred.io.atomic import write_text_atomic
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout, parse, path_under
from hetred.virus.ids import parse_datevobs

__all__ = ["STAGE", "AstromUnit", "astrom_units", "run_astrom", "run_folder"]


@dataclass(frozen=True)
class AstromUnit:
    """One science shot."""

    night: str
    obs: int

    @property
    def datevobs(self) -> str:
        return f"{self.night}v{self.obs:03d}"

    @property
    def unit(self) -> str:
        return self.datevobs


def astrom_units(layout: Layout, month: str | None = None, shot: str | None = None,
                 entries: list | None = None) -> list[AstromUnit]:
    """The science shots of a month (or the one ``shot`` DATEvOBS) in its tarlist (made first when
    missing; or in ``entries``, e.g. a dry run's planned list), sorted."""
    from hetred.lists.tarlist import month_entries

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
    shots = {(e.night, e.obs) for e in rows if e.kind == "sci"}
    if night is not None:
        shots &= {(night, obs)}
    return [AstromUnit(n, o) for n, o in sorted(shots)]


# ------------------------------------------------------------------------------------------------
# star finding on the images of the exposures

def measure(exposures: list[ExposureFiles], settings: AstromSettings, warnings: list[str]
            ) -> tuple[list[ExposureInput], dict[str, Any], tuple[float, float] | None]:
    """Star tables of every image; returns (exposures, counts, the images' pixel offset)."""
    from astropy.io import fits

    from hetred.astrom.fibermodel import Recon
    from hetred.astrom.stars import find_exposure

    finder = settings.finder()
    out, psfs, offsets = [], [], set()
    for e in exposures:
        images, recons = {}, {}
        for slot, p in sorted(e.files.items()):
            try:
                with fits.open(p, memmap=False) as h:
                    images[slot] = np.asarray(h[0].data, dtype=np.float64)
                    off = pixel_offset_of(h[0].header)
                    recons[slot] = Recon.from_header(h[0].header)
            except OSError as err:
                warnings.append(f"{p}: unreadable ({err}): left out")
                continue
            if images[slot].ndim != 2:
                warnings.append(f"{p}: not a 2-D image: left out")
                del images[slot]
                continue
            if off is not None:
                offsets.add(off)
        tables, psf, bad = find_exposure(images, finder)
        for slot, why in sorted(bad.items()):
            warnings.append(f"{e.files[slot]}: {why}: left out")
        if psf is None and not finder.psf_fwhm:
            warnings.append(f"exp{e.index:02d}: no star bright enough to fit the PSF width")
        psfs.append(None if psf is None else round(psf.fwhm_x, 3))
        keep = {s: images[s] for s in tables} if settings.norm_method == "fiber" else {}
        out.append(ExposureInput(e.index, e.stamp, tables, keep, {s: recons[s] for s in keep}))
    if len(offsets) > 1:
        raise HetredError(f"the images have different pixel grids (IFU position of pixel 1: "
                          f"{sorted(offsets)}); set [stages.astrom] pixel_offset")
    return out, {"psf_fwhm_px": psfs}, (offsets.pop() if offsets else None)


def read_als_exposures(exposures: list[ExposureFiles]) -> list[ExposureInput]:
    """The tables of DAOPHOT ``.als`` files."""
    return [ExposureInput(e.index, e.stamp, {s: F.read_als(p) for s, p in sorted(e.files.items())})
            for e in exposures]


def _check_exposures(name: str, exposures: list[ExposureFiles], settings: AstromSettings) -> None:
    want = len(settings.dither_pairs)
    found = [e.index for e in exposures]
    if len(found) != want or sorted(found) != list(range(1, want + 1)):
        names = ", ".join(f"exp{i:02d}" for i in found) or "none"
        raise HetredError(f"{name}: images of {len(found)} exposure(s) ({names}); the astrometry needs "
                          f"the {want} dithered exposures exp01..exp{want:02d}")


def _missing_slots(fplane: dict, exposures, source: str, warnings: list[str]) -> None:
    slots = sorted({s for e in exposures for s in (e.files if hasattr(e, "files") else e.tables)})
    for s in slots:
        if s not in fplane:
            warnings.append(f"IFU slot {s:03d} has images but is not in the fplane ({source}): left out")


# ------------------------------------------------------------------------------------------------
# writing

def write_products(sol: ShotSolution, path_of: Callable[..., Path], settings: AstromSettings) -> list[str]:
    """Every file of :func:`hetred.astrom.solve.products` (and the QA PNGs), written atomically
    where ``path_of(key, **fields)`` says; returns the paths."""
    out = []
    for key, fields, text in products(sol):
        p = path_of(key, **fields)
        write_text_atomic(p, text)
        out.append(str(p))
    if settings.qa:
        from hetred.astrom import qa

        for k, e in enumerate(sol.input.exposures):
            out.append(str(qa.match_png(sol, k, path_of("astrom_match_png", exp=e.index))))
        out.append(str(qa.angoff_png(sol, path_of("astrom_angoff_png"))))
    return out


# ------------------------------------------------------------------------------------------------
# the unit inside the layout

def shot_inputs(layout: Layout, unit: AstromUnit, settings: AstromSettings, catalog: str | Path | None = None,
                fplane: str | Path | None = None) -> tuple[list[ExposureFiles], ShotInput]:
    """The shot's CoFeS images, pointing (first LL multi file), fplane, catalogue and fiber
    positions (the multi files of exposure 1) from the layout; a ShotInput without star tables."""
    warnings: list[str] = []
    by_exp: dict[int, ExposureFiles] = {}
    for p in layout.glob("cofes", night=unit.night, obs=unit.obs):
        f = parse("cofes", p.relative_to(layout.red).as_posix())
        if f is None:
            continue
        e = by_exp.setdefault(f["exp"], ExposureFiles(f["exp"], f["stamp"]))
        e.files[f["ifuslot"]] = p
    exposures = [by_exp[k] for k in sorted(by_exp)]
    if not exposures:
        where = layout.path("cofes", night=unit.night, obs=unit.obs, exp=1, stamp="S", ifuslot=0).parents[2]
        raise HetredError(f"{unit.datevobs}: no CoFeS image under {where} (run hetred sci --shot "
                          f"{unit.datevobs} first)")
    _check_exposures(unit.datevobs, exposures, settings)
    multis: dict[int, dict[tuple[int, str], Path]] = {}
    for p in layout.glob("multi", night=unit.night, obs=unit.obs):
        f = parse("multi", p.relative_to(layout.red).as_posix())
        if f is not None:
            multis.setdefault(f["exp"], {})[(f["ifuslot"], f["amp"])] = p
    first = multis.get(exposures[0].index, {})
    ll = [p for (s, a), p in sorted(first.items()) if a == "LL"] or [p for _, p in sorted(first.items())]
    if not ll:
        raise HetredError(f"{unit.datevobs}: no multi file of exposure {exposures[0].index} (the header "
                          "pointing TRAJRA, TRAJDEC, PARANGLE comes from it)")
    ra_h, dec, pa, _az = read_pointing(ll[0])
    slots = sorted({s for e in exposures for s in e.files})
    fp, source, w = night_fplane(layout, unit.night, slots, fplane)
    warnings += w
    _missing_slots(fp, exposures, source, warnings)
    cat_path = Path(catalog) if catalog is not None else layout.path("star_catalog", datevobs=unit.datevobs)
    if not cat_path.is_file():
        raise HetredError(f"{unit.datevobs}: no star catalogue {cat_path} (shuffle's shout.ifustars; "
                          "give --catalog FILE)")
    cat = F.read_ifustars(cat_path)
    active = [s for s in slots if all(s in e.files for e in exposures)]
    for s in slots:
        if s not in active:
            warnings.append(f"IFU slot {s:03d} lacks images of some exposures: no fiber coordinates")
    fibermaps = ifupos_fibermaps({k: p for k, p in first.items() if k[0] in active})
    for s in active:
        if s not in fibermaps:
            warnings.append(f"IFU slot {s:03d}: no multi file of exposure 1, fiber positions from the IFU layout")
            fibermaps.update(layout_fibermaps([s], fp))
    inp = ShotInput(unit.datevobs, [], fp, cat, (ra_h, dec, pa), DEFAULT_PIXEL_OFFSET, fibermaps, warnings)
    return exposures, inp


def run_astrom(layout: Layout, unit: AstromUnit, settings: AstromSettings | None = None,
               catalog: str | Path | None = None, fplane: str | Path | None = None) -> UnitOutcome:
    """Solve one shot inside the layout (module docstring); the outcome lists every file."""
    settings = settings or AstromSettings()
    t0 = time.perf_counter()
    exposures, inp = shot_inputs(layout, unit, settings, catalog, fplane)
    t1 = time.perf_counter()
    inp.exposures, counts, offset = measure(exposures, settings, inp.warnings)
    inp.pixel_offset = _offset(settings, offset, inp.warnings)
    t2 = time.perf_counter()
    sol = solve(inp, settings)
    t3 = time.perf_counter()
    outputs = write_products(sol, lambda key, **f: layout.path(key, datevobs=unit.datevobs, **f), settings)
    t4 = time.perf_counter()
    counts.update(sol.counts())
    counts["timings"] = {"inputs": round(t1 - t0, 3), "stars": round(t2 - t1, 3), "solve": round(t3 - t2, 3),
                         "write": round(t4 - t3, 3), "solve_steps": sol.timings}
    inputs = sorted({str(p) for e in exposures for p in e.files.values()})
    # depends: the CoFeS images, so a shot whose images are made again is redone
    return UnitOutcome(outputs=outputs, inputs=inputs, counts=counts, depends=inputs)


def _offset(settings: AstromSettings, from_images: tuple[float, float] | None, warnings: list[str]
            ) -> tuple[float, float]:
    if settings.pixel_offset:
        return float(settings.pixel_offset[0]), float(settings.pixel_offset[1])
    if from_images is not None:
        return from_images
    warnings.append(f"no pixel grid in the image headers: pixel offset {DEFAULT_PIXEL_OFFSET} (hetred's grid)")
    return DEFAULT_PIXEL_OFFSET


# ------------------------------------------------------------------------------------------------
# outside the layout

def run_folder(out: str | Path, settings: AstromSettings, *, radec: str | Path, fplane: str | Path,
               catalog: str | Path, images: str | Path | None = None, als: str | Path | None = None,
               name: str | None = None) -> tuple[ShotSolution, list[str]]:
    """One shot from a folder of CoFeS images (``images``) or of DAOPHOT ``.als`` files (``als``),
    a ``radec.orig`` (TRAJRA [h], TRAJDEC, PARANGLE), an fplane and a catalogue, written into
    ``out`` with the file names of the layout's astrometry folder. Fiber positions come from the
    IFU layout (no multi files)."""
    if (images is None) == (als is None):
        raise HetredError("give either an image folder or an .als folder")
    warnings: list[str] = []
    exposures = folder_exposures(images) if images is not None else als_exposures(als)   # type: ignore[arg-type]
    label = name or Path(out).name
    _check_exposures(label, exposures, settings)
    fp = load_fplane(fplane)
    _missing_slots(fp, exposures, str(fplane), warnings)
    ra_h, dec, pa = F.read_radec(radec)
    cat = F.read_ifustars(catalog)
    slots = sorted({s for e in exposures for s in e.files})
    active = [s for s in slots if all(s in e.files for e in exposures) and s in fp]
    inp = ShotInput(label, [], fp, cat, (ra_h, dec, pa), DEFAULT_PIXEL_OFFSET, layout_fibermaps(active, fp),
                    warnings)
    if images is not None:
        inp.exposures, _, offset = measure(exposures, settings, warnings)
    else:
        inp.exposures, offset = read_als_exposures(exposures), None
    inp.pixel_offset = _offset(settings, offset, warnings)
    sol = solve(inp, settings)
    written = write_products(sol, lambda key, **f: path_under(out, key, "astrom_dir", datevobs=label, **f),
                             settings)
    return sol, written

