"""Step 9: one star in the fibers of a shot -- position, FWHM and spectrum (karlspipe hdr2.1
tpfits/rsetstar_w, cal_script/rspstar3, cs/rsp3fc, progs/mkrsprun.f and fitradecsp.f modes 107,
108, 109; shared/reference/astrom_throughput.md §3.1-3.2).

The data of a star are the calibrated counts (electrons per 2 Å on 3470 + 2 i Å, divided by the
fiber-to-fiber, the amp-to-amp factor and the exposure's norm.dat value) of every fiber of the
three exposures near it, with their propagated errors (0 = no data). Positions are arcsec on
the local tangent plane about a reference point (x east, y north).

* Band flux of a fiber (fitradecsp ``getfl2d``): biweight (Karl's ``biwgt``) of its bins in
  4500-4600 Å; error sqrt(sum sigma^2) / n (the error of the band mean; Karl uses the per-bin
  error sqrt(biweight(sigma^2)), which only rescales chi^2).
* Position (mode 107): chi^2 of the Moffat model (:mod:`hetred.throughput.psf`) with the
  least-squares amplitude on a raster of ``nstep`` x ``nstep`` positions ``step`` apart around
  a centre -- 0.2" around the catalogue position, then 0.05" around the best (rspstar3).
* FWHM (mode 108): chi^2 on 100 FWHMs 1.2-3.2" at the best position.
* Spectrum (mode 109): at every 2-Å bin, the least-squares amplitude of the model fractions p_i
  (FWHM and ADR of that wavelength) over the fibers within 3" of the star that have data:
  A = sum p_i y_i / sum p_i^2 (Karl's ``sumspec``, unweighted), error sqrt(sum p_i^2 s_i^2) /
  sum p_i^2; A is the star's counts per 2 Å in one exposure. 100-Å bins (3540..5540 Å): the
  mean over the covered part of [c - 50, c + 50) Å times 100 / 2 (Karl's ``sumspec100``; at
  least 20 % of the bin covered).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred.stats import biweight
from hetred.throughput.psf import AdrModel, FiberTable, fwhm_at

WAVE = 3470.0 + 2.0 * np.arange(1036)          #: the calfib grid, Å (bin centres)
BIN_CENTRES = np.arange(3540.0, 5540.0 + 1.0, 100.0)   #: Karl's 100-Å bins, Å
BAND = (4500.0, 4600.0)                         #: Å, rsp3fc "4550 50"


@dataclass
class StarData:
    """The fibers near one star: ``x``, ``y`` (n,) arcsec from the reference point (east,
    north); ``exp`` (n,) 0-based exposure; ``spec``, ``err`` (n, 1036) calibrated counts per
    2 Å and errors (err 0 = no data); ``label`` (n,) ``multi_SSS_III_UUU_AA/FFF/expNN``."""

    x: np.ndarray
    y: np.ndarray
    exp: np.ndarray
    spec: np.ndarray
    err: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, keep: np.ndarray) -> StarData:
        return StarData(self.x[keep], self.y[keep], self.exp[keep], self.spec[keep], self.err[keep],
                        self.label[keep])


def band_flux(spec: np.ndarray, err: np.ndarray, wave: np.ndarray = WAVE,
              band: tuple[float, float] = BAND) -> tuple[np.ndarray, np.ndarray]:
    """(flux, error) per fiber, each (n,): Karl's biweight of the bins with data inside ``band``
    (open interval, as getfl2d) and sqrt(sum err^2) / n; 0, 0 for a fiber without data."""
    sel = (wave > band[0]) & (wave < band[1])
    s, e = spec[:, sel].astype(np.float64), err[:, sel].astype(np.float64)
    has = e > 0
    n = has.sum(axis=1)
    vals = np.where(has, s, np.nan)
    flux = np.zeros(len(spec))
    ok = n > 0
    if ok.any():
        unit = np.nanmax(np.abs(vals[ok]), axis=1)
        unit = np.where(unit > 0, unit, 1.0)
        loc, _ = biweight(vals[ok] / unit[:, None], axis=1)     # scale-free use of Karl's biwgt
        flux[ok] = np.asarray(loc, dtype=np.float64) * unit
    with np.errstate(invalid="ignore", divide="ignore"):
        sig = np.where(ok, np.sqrt((e * e).sum(axis=1)) / np.maximum(n, 1), 0.0)
    return flux, sig


@dataclass
class Raster:
    """Result of a position or FWHM search: best ``x``, ``y``, ``fwhm``, ``chi2``, ``amp``,
    and the trials (``tx``, ``ty``, ``tfwhm``, ``tchi2``, ``tamp``)."""

    x: float
    y: float
    fwhm: float
    chi2: float
    amp: float
    tx: np.ndarray
    ty: np.ndarray
    tfwhm: np.ndarray
    tchi2: np.ndarray
    tamp: np.ndarray
    nfib: int


def _best(table: FiberTable, x, y, f, e, tx, ty, tf) -> Raster:
    chi, amp = table.chi2(x, y, f, e, tx, ty, tf)
    k = int(np.argmin(chi))
    return Raster(float(tx[k]), float(ty[k]), float(tf[k]), float(chi[k]), float(amp[k]),
                  tx, ty, tf, chi, amp, int(np.sum(e > 0)))


def fit_position(table: FiberTable, x: np.ndarray, y: np.ndarray, flux: np.ndarray, err: np.ndarray,
                 fwhm: float, cx: float, cy: float, step: float, nstep: int) -> Raster:
    """Mode 107: the raster of ``nstep`` x ``nstep`` positions ``step`` apart centred on (cx,
    cy) for fibers at (x, y) (the source's frame at the band: ADR already removed) with band
    fluxes and errors; fibers with err <= 0 left out."""
    k = (np.arange(nstep) - (nstep - 1) / 2.0) * step
    gx, gy = np.meshgrid(cx + k, cy + k, indexing="ij")
    tx, ty = gx.ravel(), gy.ravel()
    return _best(table, x, y, flux, err, tx, ty, np.full(tx.size, fwhm))


def refine_position(r: Raster, step: float, dof: int = 0) -> tuple[float, float, float]:
    """The minimum of a quadratic surface fitted to the chi^2 of the 3 x 3 raster points around
    the best one (hetred's; Karl keeps the raster point): sub-step positions, and their 1-sigma
    error (arcsec, both axes together: sqrt of the trace of 2 H^-1 for the chi^2 Hessian H,
    scaled by chi^2 / dof when that exceeds 1; NaN when not measured). The raster point itself
    when the best is on the raster's edge, the surface is not convex, or its minimum is more than
    one step away."""
    n = round(np.sqrt(r.tx.size))
    chi = r.tchi2.reshape(n, n)
    i, j = np.unravel_index(int(np.argmin(chi)), chi.shape)
    if not (0 < i < n - 1 and 0 < j < n - 1) or not np.all(np.isfinite(chi[i - 1:i + 2, j - 1:j + 2])):
        return r.x, r.y, float("nan")
    u, v = np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], indexing="ij")
    u, v = u.ravel(), v.ravel()
    a = np.column_stack([np.ones(9), u, v, u * u, u * v, v * v])
    c = np.linalg.lstsq(a, chi[i - 1:i + 2, j - 1:j + 2].ravel(), rcond=None)[0]
    h = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
    if np.linalg.det(h) <= 0 or h[0, 0] <= 0:
        return r.x, r.y, float("nan")
    du, dv = np.linalg.solve(h, -c[1:3])
    if abs(du) > 1 or abs(dv) > 1:
        return r.x, r.y, float("nan")
    scale = max(1.0, r.chi2 / dof) if dof > 0 else 1.0
    err = float(np.sqrt(np.trace(2.0 * np.linalg.inv(h)) * scale)) * step
    return r.x + du * step, r.y + dv * step, err


def fit_fwhm(table: FiberTable, x: np.ndarray, y: np.ndarray, flux: np.ndarray, err: np.ndarray,
             cx: float, cy: float, grid: np.ndarray) -> Raster:
    """Mode 108: chi^2 of every FWHM of ``grid`` at (cx, cy)."""
    g = np.asarray(grid, dtype=np.float64)
    return _best(table, x, y, flux, err, np.full(g.size, cx), np.full(g.size, cy), g)


@dataclass
class Spectrum:
    """An extracted star: ``counts``, ``error`` (1036,) counts per 2 Å in one exposure (0, 0
    where missing); ``cover`` (1036,) sum of the model fractions of the fibers used; ``nfib``
    (1036,) fibers used."""

    counts: np.ndarray
    error: np.ndarray
    cover: np.ndarray
    nfib: np.ndarray


def model_fractions(table: FiberTable, star: StarData, cx: float, cy: float, fwhm: float,
                    adr: AdrModel, wave: np.ndarray = WAVE) -> np.ndarray:
    """(n_fib, n_wave) fraction of the star's light in each fiber at each wavelength: Moffat of
    FWHM ``fwhm`` (at 4550 Å, scaled with wavelength) at (cx, cy) + the ADR shift."""
    sx, sy = adr.shift(wave, star.exp)
    d = np.hypot(star.x[:, None] - cx - sx, star.y[:, None] - cy - sy)
    return table.fractions(d, fwhm_at(wave, fwhm)[None, :])


def extract(table: FiberTable, star: StarData, cx: float, cy: float, fwhm: float, adr: AdrModel,
            radius: float = 3.0, min_cover: float = 0.5, wave: np.ndarray = WAVE) -> Spectrum:
    """Mode 109 (module docstring): the star's spectrum from the fibers within ``radius`` of
    (cx, cy). A bin whose fibers with data collect less than ``min_cover`` of the median
    coverage is missing."""
    near = np.hypot(star.x - cx, star.y - cy) < radius
    s = star.subset(near)
    p = model_fractions(table, s, cx, cy, fwhm, adr, wave)
    have = s.err > 0
    pp = np.where(have, p, 0.0)
    spp = (pp * pp).sum(axis=0)
    spy = (pp * np.where(have, s.spec, 0.0)).sum(axis=0)
    var = (pp * pp * np.where(have, s.err.astype(np.float64) ** 2, 0.0)).sum(axis=0)
    cover = pp.sum(axis=0)
    full = float(np.median(p.sum(axis=0))) if len(s) else 0.0
    ok = (spp > 0) & (cover >= min_cover * full) & (full > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        counts = np.where(ok, spy / spp, 0.0)
        error = np.where(ok, np.sqrt(var) / spp, 0.0)
    return Spectrum(counts, error, cover, have.sum(axis=0))


def bin_weights(wave: np.ndarray = WAVE, centres: np.ndarray = BIN_CENTRES, width: float = 100.0,
                dwave: float = 2.0) -> np.ndarray:
    """(n_bin, n_wave) overlap (in units of a 2-Å bin) of each 2-Å bin with [c - 50, c + 50)."""
    lo, hi = wave - dwave / 2, wave + dwave / 2
    a, b = centres[:, None] - width / 2, centres[:, None] + width / 2
    return np.clip(np.minimum(hi[None, :], b) - np.maximum(lo[None, :], a), 0.0, None) / dwave


def bin100(counts: np.ndarray, error: np.ndarray, wave: np.ndarray = WAVE,
           centres: np.ndarray = BIN_CENTRES, min_cover: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, error, covered fraction) per 100-Å bin from counts per 2 Å: the overlap-weighted
    mean of the 2-Å bins with data x 50 (Karl's sumspec100: the sum scaled by the bins present);
    a bin with less than ``min_cover`` of its 100 Å covered by data is 0 (the 5540-Å bin has at
    most 5490-5541 Å: about half)."""
    w = bin_weights(wave, centres)
    have = (error > 0).astype(np.float64)
    wh = w * have[None, :]
    sw = wh.sum(axis=1)
    full = (centres[1] - centres[0]) / (wave[1] - wave[0]) if centres.size > 1 else 50.0
    ok = sw >= min_cover * full
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(ok, (wh * counts[None, :]).sum(axis=1) / sw * full, 0.0)
        e = np.where(ok, np.sqrt((wh**2 * error[None, :] ** 2).sum(axis=1)) / sw * full, 0.0)
    return c, e, sw / full
