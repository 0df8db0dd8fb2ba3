"""``hetred continuum``: step 15, continuum sources (karlspipe hdr2.1/cs: rgetmax, rfindmax/imfindmax,
matchradec2, rmkcs/rspcs (fitradecsp mode 107), rmkcs2/rf1 (mode 100), awks.dat/findmatch;
detect_fullsky.md §3). One unit per shot:

1. **Bright fibers** (rgetmax): in every exp01 multi file (file-name order) each fiber's biweight
   of ``sky_subtracted`` over native columns 100-200 (b) and 800-900 (r); fibers with b or r
   above ``cont_cut`` (50 e- per column) are kept, placed at their exp01 ``dithall.use`` position;
2. **Merge** (matchradec2, 6.5"): in that order, each surviving fiber suppresses every later one
   within 6.5" and the largest b + r of the group is kept -> ``DATEvOBS.cs``;
3. **Position** (mode 107): the fibers within 5" of the fiber, their biweight counts at
   4505 +- 3 Å fitted on a 19 x 19 raster 0.15" apart by the PSF model (fibers within 7" of each
   point, amplitude as Karl's grid search); the least chi^2 point -> ``fitres/DATEvOBS_s.res``;
4. **Extraction** (mode 100): at that point the PSF-weighted spectrum of the fibers within 3.5"
   -> ``spec/DATEvOBS_s.spec`` (format 1302, src_index 1) and ``.list`` (format 1203, l2);
5. **De-duplication** (findmatch, 4"): of two sources closer than 4" the one with the smaller
   chi + amp is dropped (its files too) -> ``DATEvOBS.rcs``, one ``rf1`` line per source as
   hetdex_api's create_cont_hdf5.py reads it (col2 ra, col3 dec, col7 obnum, col8 DATEvOBS).

Karl drops a duplicate with ``grep -v " id "`` on the whole rf1 line, which removes every line
when the id is 1, 3, 5, 50 or 100 (those numbers are fields of every line); here the source with
that id is dropped, in both profiles.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hetred.detect import formats as F
from hetred.detect.inputs import read_dithall
from hetred.detect.loading import fiber_flags, load_fibers
from hetred.detect.measure import position_weights, raw_xy
from hetred.detect.psf import PsfModel, amplitude_grid, lookup, tangent, untangent
from hetred.detect.search import raster
from hetred.detect.settings import STAGE_CONTINUUM, DetectSettings
from hetred.detect.spectrum import weighted_spectrum
from hetred.errors import HetredError
from hetred.io.atomic import write_text_atomic
from hetred.jobs.units import ShotUnit, UnitOutcome
from hetred.layout import Layout, parse
from hetred.stats import biweight

COLS_B = (99, 200)       #: native columns 100-200 (1-based, inclusive)
COLS_R = (799, 900)      #: 800-900


@dataclass(frozen=True)
class ContinuumUnit(ShotUnit):
    """One science shot (unit id ``DATEvOBS``)."""


@dataclass
class BrightFiber:
    ra: float
    dec: float
    b: float
    r: float
    name: str        #: multi_SSS_III_UUU_AA_FFF
    ifuslot: int


def bright_fibers(layout: Layout, datevobs: str, cut: float, notes: list[str]) -> list[BrightFiber]:
    """rgetmax: exp01 fibers with b or r above ``cut`` at their exp01 dithall positions."""
    from astropy.io import fits

    night, obs = datevobs[:8], int(datevobs[9:])
    d = read_dithall(layout.path("dithall", datevobs=datevobs))
    where = {(m[:24], ex): k for k, (m, ex) in enumerate(zip(d.multifits, d.exposure))}
    files = sorted(layout.glob("multi", night=night, obs=obs, exp=1), key=lambda p: p.name)
    if not files:
        raise HetredError(f"{datevobs}: no multi file of exp01 (run hetred sci first)")
    out = []
    for p in files:
        f = parse("multi", p.relative_to(layout.red).as_posix())
        if f is None:
            continue
        try:
            with fits.open(p, memmap=False) as h:
                sky = np.asarray(h["sky_subtracted"].data, dtype=np.float32)
        except (OSError, KeyError) as err:
            notes.append(f"{p}: unreadable ({err}): left out")
            continue
        sky = np.where(np.isfinite(sky), sky, 0.0).astype(np.float32)
        b = np.clip(biweight(sky[:, COLS_B[0]:COLS_B[1]], axis=1)[0], -999999.0, 999999.0)
        r = np.clip(biweight(sky[:, COLS_R[0]:COLS_R[1]], axis=1)[0], -999999.0, 999999.0)
        stem = p.stem
        for k in np.nonzero((b > cut) | (r > cut))[0]:
            name = f"{stem}_{k + 1:03d}"
            row = where.get((name, "exp01"))
            if row is None:
                notes.append(f"{name}: bright but not in dithall.use (exp01): left out")
                continue
            out.append(BrightFiber(float(d.ra[row]), float(d.dec[row]), float(b[k]), float(r[k]), name, f["ifuslot"]))
    return out


def matchradec2(src: list[BrightFiber], radius: float) -> list[int]:
    """Karl's matchradec2 (the list in its order): indices kept."""
    n = len(src)
    if n == 0:
        return []
    ra = np.array([s.ra for s in src])
    dec = np.array([s.dec for s in src])
    sn = np.array([s.b + s.r for s in src])
    cosd = np.cos(np.radians(dec[0]))
    iok = np.ones(n, bool)
    iok2 = np.ones(n, bool)
    for i in range(n - 1):
        if not iok[i]:
            continue
        imax, snmax = i, sn[i]
        d = 3600.0 * np.hypot(cosd * (ra[i + 1:] - ra[i]), dec[i + 1:] - dec[i])
        for j in np.nonzero(d < radius)[0] + i + 1:
            iok[j] = iok2[j] = iok2[i] = False
            if sn[j] >= snmax:
                imax, snmax = j, sn[j]
                iok[i] = False
        iok2[imax] = True
    return [int(i) for i in np.nonzero(iok2)[0]]


def fit_position(x: np.ndarray, y: np.ndarray, sflux: np.ndarray, sfluxe: np.ndarray, xw: np.ndarray,
                 iflag: np.ndarray, cx: float, cy: float, psf: PsfModel, settings: DetectSettings
                 ) -> tuple[float, float, float, float]:
    """Mode 107: (x, y, chi, amp) of the least chi^2 point of the raster around (cx, cy) for the
    fibers (x, y) with biweight counts ``sflux`` +- ``sfluxe`` (getchifib2)."""
    px, py = raster(np.array([cx]), np.array([cy]), settings.cont_step, settings.cont_nstep)
    best = (np.inf, cx, cy, 0.0)
    for qx, qy in zip(px, py):
        d = np.hypot(x - qx, y - qy)
        use = d < settings.cont_fit_radius
        g = lookup(psf.tables[0], d[use])
        ok = (iflag[use] == 0) & (sfluxe[use] > 0)
        wgt = np.where(ok, xw[use] / np.where(ok, sfluxe[use], 1.0) ** 2, 0.0)
        sgg, sgf = float(np.sum(wgt * g * g)), float(np.sum(wgt * g * sflux[use]))
        amp = amplitude_grid(sgg, sgf)
        chi = float(np.sum(wgt * (g * amp - sflux[use]) ** 2))
        if chi < best[0]:
            best = (chi, float(qx), float(qy), amp)
    return best[1], best[2], best[0], best[3]


def run_continuum(layout: Layout, unit: ContinuumUnit, settings: DetectSettings | None = None) -> UnitOutcome:
    """One shot (module docstring); the outcome lists the files."""
    settings = settings or DetectSettings()
    t0 = time.perf_counter()
    dv, month = unit.datevobs, unit.datevobs[:6]
    notes: list[str] = []
    bright = bright_fibers(layout, dv, settings.cont_cut, notes)
    kept = [bright[i] for i in matchradec2(bright, settings.cont_merge)]
    written = []
    cs = layout.path("continuum_cs", month=month, datevobs=dv)
    write_text_atomic(cs, "".join(f" {s.ra:11.7f} {s.dec:11.7f} {s.b:14.2f} {s.r:14.2f} {dv}\n" for s in kept))
    written.append(str(cs))
    by_slot: dict[int, list[int]] = {}
    for k, s in enumerate(kept):
        by_slot.setdefault(s.ifuslot, []).append(k)
    results: dict[int, tuple] = {}
    used_inputs: set[str] = set()
    looked: set[str] = {str(layout.path("dithall", datevobs=dv))}
    for slot, ks in sorted(by_slot.items()):
        fs = load_fibers(layout, dv, slot, settings)
        notes += [n for n in fs.notes if n not in notes]
        used_inputs.update(fs.inputs)
        looked.update(fs.looked)
        psf = PsfModel.make(fs.shot.fwhm, settings)
        iflag, sflux, sfluxe, xw = fiber_flags(fs, settings.flag_window, settings)
        for k in ks:
            s = kept[k]
            cx, cy = (float(v[0]) for v in tangent(np.array([s.ra]), np.array([s.dec]), fs.ra0, fs.dec0))
            near = np.hypot(fs.x - cx, fs.y - cy) < settings.cont_radius
            if not near.any():
                notes.append(f"source {k + 1} ({s.name}): no fiber within {settings.cont_radius}\": left out")
                continue
            bx, by, chi, amp = fit_position(fs.x[near], fs.y[near], sflux[near], sfluxe[near], xw[near], iflag[near],
                                            cx, cy, psf, settings)
            results[k] = (fs, psf, iflag, near, bx, by, chi, amp)
    rext = []
    for k in sorted(results):
        fs, psf, iflag, near, bx, by, chi, amp = results[k]
        ra, dec = (float(v[0]) for v in untangent(np.array([bx]), np.array([by]), fs.ra0, fs.dec0))
        name = str(k + 1)
        res = layout.path("continuum_res", month=month, datevobs=dv, name=name)
        write_text_atomic(res, f"{ra:10.6f} {dec:10.6f} {chi:.3f} {amp:.3f} {name} {dv}\n")
        written.append(str(res))
        rext.append((k, ra, dec, chi, amp))
    drop = dedupe([(ra, dec, chi + amp) for _, ra, dec, chi, amp in rext], settings.cont_dedupe)
    lines = []
    for j, (k, ra, dec, chi, amp) in enumerate(rext):
        if j in drop:
            continue
        fs, psf, iflag, near, bx, by, _, _ = results[k]
        name = str(k + 1)
        spec_text, list_text = extract(fs, psf, iflag, bx, by, ra, dec, settings)
        for key, text in (("continuum_spec", spec_text), ("continuum_list", list_text)):
            p = layout.path(key, month=month, datevobs=dv, name=name)
            write_text_atomic(p, text)
            written.append(str(p))
        lines.append(f"rf1 {ra:.6f} {dec:.6f} 5 4505 50 {name} {dv} 1.7 3 3.5 0 1 100 {chi:.3f} {amp:.3f}\n")
    rcs = layout.path("continuum_rcs", month=month, datevobs=dv)
    write_text_atomic(rcs, "".join(lines))
    written.append(str(rcs))
    counts = {"bright_fibers": len(bright), "merged": len(kept), "sources": len(lines), "duplicates": len(drop),
              "notes": notes, "seconds": round(time.perf_counter() - t0, 3)}
    from hetred.detect.run import unit_notes

    looked.update(str(p) for p in layout.glob("multi", night=dv[:8], obs=int(dv[9:]), exp=1))
    return UnitOutcome(outputs=written, inputs=sorted(used_inputs), counts=counts, depends=sorted(looked),
                       notes=unit_notes(notes, unit.unit))


def dedupe(rows: list[tuple[float, float, float]], radius: float) -> set[int]:
    """findmatch + awks.dat: for every pair closer than ``radius`` (list order i < j) the one with
    the smaller chi + amp (i on ties) is dropped."""
    drop: set[int] = set()
    if not rows:
        return drop
    cosd = np.cos(np.radians(rows[0][1]))
    for i in range(len(rows) - 1):
        for j in range(i + 1, len(rows)):
            d = 3600.0 * np.hypot(cosd * (rows[i][0] - rows[j][0]), rows[i][1] - rows[j][1])
            if d < radius:
                drop.add(j if rows[i][2] > rows[j][2] else i)
    return drop


def extract(fs, psf: PsfModel, iflag: np.ndarray, x: float, y: float, ra: float, dec: float,
            settings: DetectSettings) -> tuple[str, str]:
    """Mode 100 at (x, y): the .spec block (nga 1, ratzero of the fibers loaded within
    ``cont_radius``) and the .list rows (wavein 4505) of the fibers within 3.5"."""
    loaded = np.nonzero(np.hypot(fs.x - x, fs.y - y) < settings.cont_radius)[0]
    use = loaded[np.hypot(fs.x[loaded] - x, fs.y[loaded] - y) < settings.fit_radius]
    g, fadc, fadcw = position_weights(fs, use, x, y, psf, settings.az_index == "compressed")
    spec = weighted_spectrum(g, fadc, fadcw, iflag[use], fs.counts[use], fs.counts_err[use], fs.flux[use],
                             fs.flux_err[use], fs.good[use], fs.rvar[use], settings)
    ratzero = 100.0 * float(np.count_nonzero(~fs.good[loaded])) / max(fs.good[loaded].size, 1)
    spec_text = F.format_spec([spec.wave, spec.flux, spec.flux_err, spec.counts, spec.counts_err, spec.apsum,
                               spec.apsum_err, spec.dummy, spec.apcor], ratzero, 1)
    rows = []
    for j, k in enumerate(use):
        ix, iy = raw_xy(fs, int(k), 4505.0)
        rak, deck = float(np.float32(fs.ra[k])), float(np.float32(fs.dec[k]))
        rows.append(F.format_list(F.ListRow(rak, deck, float(fs.xs[k]), float(fs.ys[k]), fs.multifits[k],
                                            fs.expname[k], float(np.hypot(fs.x[k] - x, fs.y[k] - y)), 4505.0,
                                            fs.timestamp[k], fs.datevobs[:8], fs.datevobs[9:12], ix, iy,
                                            float(g[j]), int(iflag[k]), 1)))
    return spec_text, "".join(rows)


__all__ = ["STAGE_CONTINUUM", "ContinuumUnit", "bright_fibers", "dedupe", "matchradec2", "run_continuum"]
