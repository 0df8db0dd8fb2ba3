"""The two-pass search of fitradecsp mode 104 (karlspipe hdr2.1/progs/fitradecsp.f main program,
``mkraster``, ``getbestp``, ``getmatch``; shared/reference/detect_fullsky.md §1.4, §1.8).

* pass 1: a ``nstep x nstep`` raster (``step`` apart) around every loaded fiber;
* at every position the kernel (:func:`hetred._ext.detkern.search_positions`) sums the fibers
  within 3.5" with the PSF weights and scans the spectrum (sigma fixed at 3 Å) window by window,
  keeping the best fit within 4 Å (getbestw);
* getbestp: over all positions, the highest S/N fit removes every other within 3" AND 4 Å, and so
  on; getmatch (3.5", 2.5 Å) then marks the maxima that survive a second suppression;
* pass 2: around each marked maximum with S/N > 4.5 (at most 1000) a ``refine_nstep`` raster
  ``refine_step`` apart, searched again; its getbestp/getmatch maxima with S/N > 4.5 are the
  detections.

Distances: the ``merge_cos`` quirk (hdr2.1) measures cos(dec) dRA^2 + dDec^2, i.e. on the tangent
plane dx^2 / cos(dec) + dy^2 (Karl's cos is not squared); ``squared`` the true distance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred._ext import detkern
from hetred._ext.detect_reference import (
    OPT_COMPRESSED,
    OPT_MASK,
    OPT_MAXFITS,
    OPT_MULTIPLY,
    OPT_PROPAGATE,
    P_CHICUT,
    P_CONMAX,
    P_DSTEP,
    P_EDGE,
    P_HALF,
    P_NFITHALF,
    P_NFITMIN,
    P_NWIN,
    P_RADIUS,
    P_SCAN,
    P_SHIFT,
    P_SIGMA,
    P_SNCUT,
    P_SNHI,
    P_WD,
    P_XNP,
    search_positions_reference,
)
from hetred.detect.psf import D_STEP, PsfModel, node_hats
from hetred.detect.settings import DetectSettings


@dataclass
class Fits:
    """Window fits (n,): position (x, y arcsec), wave, flux (1e-17), sigma, con, sn, chi."""

    x: np.ndarray
    y: np.ndarray
    wave: np.ndarray
    flux: np.ndarray
    sigma: np.ndarray
    con: np.ndarray
    sn: np.ndarray
    chi: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: np.ndarray) -> Fits:
        return Fits(*(getattr(self, k)[idx] for k in ("x", "y", "wave", "flux", "sigma", "con", "sn", "chi")))


def n_windows(settings: DetectSettings) -> int:
    """nint(2070 / spacing) + 1 (260 for 8 Å)."""
    return int(np.floor(2070.0 / settings.window_spacing + 0.5)) + 1


def kernel_params(settings: DetectSettings, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(par, opt) arrays of the search kernel."""
    sig = settings.sigma_search if sigma is None else sigma
    par = np.zeros(16)
    par[P_RADIUS] = settings.fit_radius
    par[P_SIGMA] = sig
    par[P_SCAN] = settings.scan_step
    par[P_HALF] = settings.window_half
    par[P_SHIFT] = settings.max_shift
    par[P_EDGE] = settings.edge_margin
    par[P_SNCUT] = settings.sncut_fit
    par[P_SNHI] = settings.sncut_hi
    par[P_CHICUT] = settings.chicut
    par[P_CONMAX] = settings.con_max
    par[P_WD] = settings.merge_wave
    par[P_NWIN] = n_windows(settings)
    par[P_XNP] = max(3.0, 4.0 * sig / 2.0)          # Karl's xnp: 4 sigma / pixsize, used as Å
    par[P_NFITHALF] = 6.0
    par[P_NFITMIN] = 6.0
    par[P_DSTEP] = D_STEP
    opt = np.zeros(5, dtype=np.int64)
    opt[OPT_MULTIPLY] = settings.adr_weight == "multiply"
    opt[OPT_MASK] = not settings.fill_masked
    opt[OPT_PROPAGATE] = not settings.fill_masked
    opt[OPT_COMPRESSED] = settings.az_index == "compressed"
    opt[OPT_MAXFITS] = settings.max_fits
    return par, opt


@dataclass
class SearchData:
    """What the kernel needs of a unit's fibers (contiguous arrays)."""

    flux: np.ndarray          #: (n, 1036) float32, 1e-17 per 2 Å
    flux_err: np.ndarray
    pixgood: np.ndarray       #: (n, 1036) uint8
    x: np.ndarray             #: (n,) arcsec east
    y: np.ndarray             #: (n,) arcsec north
    ux: np.ndarray            #: (n,) ADR shift direction of the fiber
    uy: np.ndarray
    psf: PsfModel


def run_kernel(data: SearchData, iflag: np.ndarray, px: np.ndarray, py: np.ndarray, settings: DetectSettings,
               reference: bool = False) -> Fits:
    """Search at positions (px, py) with fiber flags ``iflag`` (1 = left out); ``reference``
    runs the NumPy reference instead of the Cython kernel."""
    par, opt = kernel_params(settings)
    lo, w = node_hats()
    args = (np.ascontiguousarray(data.flux, np.float32), np.ascontiguousarray(data.flux_err, np.float32),
            np.ascontiguousarray(data.pixgood, np.uint8), np.ascontiguousarray(data.x, np.float64),
            np.ascontiguousarray(data.y, np.float64), np.ascontiguousarray(data.ux, np.float64),
            np.ascontiguousarray(data.uy, np.float64), np.ascontiguousarray(iflag, np.int8),
            np.ascontiguousarray(px, np.float64), np.ascontiguousarray(py, np.float64),
            np.ascontiguousarray(data.psf.tables, np.float64), np.asarray(data.psf.adr, np.float64),
            np.ascontiguousarray(lo, np.int64), np.ascontiguousarray(w, np.float64), par, opt)
    fn = search_positions_reference if reference else detkern.search_positions
    pos, wave, flux, sig, con, sn, chi = fn(*args)
    return Fits(np.asarray(px)[pos], np.asarray(py)[pos], wave, flux, sig, con, sn, chi)


def raster(cx: np.ndarray, cy: np.ndarray, step: float, nstep: int) -> tuple[np.ndarray, np.ndarray]:
    """mkraster: ``nstep x nstep`` points ``step`` apart centred on each (cx, cy) (arcsec), in
    Karl's order (centre by centre; RA outer, Dec inner, from the -RA, -Dec corner)."""
    if nstep < 2:
        return np.asarray(cx, float).copy(), np.asarray(cy, float).copy()
    off = step * np.arange(nstep) - step * (nstep - 1) / 2.0
    ox = np.repeat(off, nstep)
    oy = np.tile(off, nstep)
    return ((np.asarray(cx, float)[:, None] + ox[None, :]).ravel(),
            (np.asarray(cy, float)[:, None] + oy[None, :]).ravel())


def _dist2(dx: np.ndarray, dy: np.ndarray, cosd: float, settings: DetectSettings) -> np.ndarray:
    if settings.merge_cos == "unsquared":
        return dx * dx / cosd + dy * dy
    return dx * dx + dy * dy


def getbestp(f: Fits, cosd: float, settings: DetectSettings) -> Fits:
    """Greedy suppression: the highest S/N (first in input order on ties) removes every fit
    within ``merge_radius`` AND ``merge_wave``; the survivors in the order taken."""
    n = len(f)
    if n == 0:
        return f
    order = np.lexsort((np.arange(n), -f.sn))
    wsort = np.argsort(f.wave, kind="stable")
    ws = f.wave[wsort]
    done = np.zeros(n, bool)
    keep = []
    r2 = settings.merge_radius ** 2
    for i in order:
        if done[i]:
            continue
        keep.append(i)
        a = np.searchsorted(ws, f.wave[i] - settings.merge_wave, side="left")
        b = np.searchsorted(ws, f.wave[i] + settings.merge_wave, side="right")
        cand = wsort[a:b]
        cand = cand[np.abs(f.wave[cand] - f.wave[i]) < settings.merge_wave]
        d2 = _dist2(f.x[cand] - f.x[i], f.y[cand] - f.y[i], cosd, settings)
        done[cand[d2 < r2]] = True
        done[i] = True
    return f.take(np.array(keep, dtype=np.int64))


def getmatch(f: Fits, cosd: float, settings: DetectSettings) -> np.ndarray:
    """Karl's getmatch over the getbestp list (in its order): (n,) bool, the maxima marked 1."""
    n = len(f)
    iok = np.ones(n, bool)
    iok2 = np.ones(n, bool)
    if n == 0:
        return iok2
    wsort = np.argsort(f.wave, kind="stable")
    ws = f.wave[wsort]
    r2 = settings.match_radius ** 2
    for i in range(n - 1):
        if not iok[i]:
            continue
        a = np.searchsorted(ws, f.wave[i] - settings.match_wave, side="left")
        b = np.searchsorted(ws, f.wave[i] + settings.match_wave, side="right")
        cand = wsort[a:b]
        cand = np.sort(cand[(cand > i) & (np.abs(f.wave[cand] - f.wave[i]) < settings.match_wave)])
        if cand.size:
            d2 = _dist2(f.x[cand] - f.x[i], f.y[cand] - f.y[i], cosd, settings)
            cand = cand[d2 < r2]
        imax, snmax = i, f.sn[i]
        for j in cand:
            iok[j] = False
            iok2[j] = False
            iok2[i] = False
            if f.sn[j] >= snmax:
                imax, snmax = j, f.sn[j]
                iok[i] = False
        iok2[imax] = True
    return iok2


@dataclass
class SearchResult:
    """The detections (pass-2 maxima with S/N > sncut, marked by getmatch) and the counts."""

    detections: Fits
    maxima: Fits                  #: every pass-2 getbestp maximum (the .res list)
    n_positions: tuple[int, int]
    n_fits: tuple[int, int]
    n_candidates: int
    capped: bool


def search(data: SearchData, iflag1: np.ndarray, iflag2: np.ndarray, cosd: float, settings: DetectSettings,
           reference: bool = False) -> SearchResult:
    """Both passes (module docstring). ``iflag1``/``iflag2``: the fiber flags of pass 1 (4505 +- 3 Å
    in hdr2.1) and of pass 2."""
    px, py = raster(data.x, data.y, settings.step, settings.nstep)
    f1 = run_kernel(data, iflag1, px, py, settings, reference)
    m1 = getbestp(f1, cosd, settings)
    mark = getmatch(m1, cosd, settings)
    cand = np.nonzero((m1.sn > settings.sncut) & mark & (m1.sigma > settings.sigcut))[0][:settings.max_candidates]
    qx, qy = raster(m1.x[cand], m1.y[cand], settings.refine_step, settings.refine_nstep)
    f2 = run_kernel(data, iflag2, qx, qy, settings, reference) if cand.size else run_kernel(
        data, iflag2, np.zeros(0), np.zeros(0), settings, reference)
    m2 = getbestp(f2, cosd, settings)
    mark2 = getmatch(m2, cosd, settings)
    det = np.nonzero((m2.sn > settings.sncut) & mark2)[0]
    capped = len(f1) >= settings.max_fits or len(f2) >= settings.max_fits
    return SearchResult(m2.take(det), m2, (len(px), len(qx)), (len(f1), len(f2)), int(cand.size), capped)
