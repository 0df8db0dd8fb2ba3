"""Spectrograph optics of one amp, in the ORIENTED frame (rows = cross-dispersion y, columns =
wavelength x, both 0-based with pixel centres at integers).

* traces: 112 fibers in blocks of 37/38/37 (gaps of one missing fiber after fibers 37 and 75,
  as in Remedy's Fiber_Locations files), pitch 8.70-8.77 px, first fiber at y = 15-30 px, a few
  pixels of curvature along the columns that changes smoothly across the slit, small per-fiber
  irregularities (0.15 px), and a per-night shift of up to 0.2 px;
* cross-dispersion profile exp(-1/2 |y/sigma|^p), sigma ~ 2.5 px and p ~ 2.5 varying smoothly
  with fiber and column, integrated exactly over each pixel through its CDF
  1/2 + sign(y)/2 * P(1/p, 1/2 |y/sigma|^p) (P = regularized lower incomplete gamma), tabulated
  on a fine (z, p) grid (interpolation error < 1e-6 of the fiber's light);
* halo / scattered light: a fraction (3-4 %) of each fiber's light spread along the rows with a
  kernel 1/(|d| + d0), d0 = 4 px, |d| <= 400 px, centred on the fiber's trace at each column
  (light beyond the amp edge is lost);
* wavelength: the quadratic of :mod:`hetred.sim.spectra` plus a smooth per-fiber offset of a few
  A and a per-night shift; LSF FWHM 5-6 A varying smoothly;
* throughput: fiber-to-fiber 5-10 % rms, slowly varying with wavelength, a smooth trend across
  the slit, 0-2 dead fibers per amp (relative throughput 0.02-0.3), and an amp-to-amp factor.

How the wavelength, trace, profile and LSF vary along the slit is a *family*
(:mod:`hetred.sim.families`): ``classic`` (the low-order polynomials above) or a wider smooth
form (``poly``, ``edge``, ``piecewise``, ``sine``) drawn from a stream of its own, so that the
other properties of the amp (throughput, dead fibers, detector) are the same in every family.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.special import gammainc

from hetred.sim import families, seeds, spectra

NFIB = 112
NROWS = 1032
NCOLS = 1032
HALF = 9                 #: rows below the trace pixel in the profile window
NW = 2 * HALF + 2        #: rows in the profile window (20)
PAD = 12                 #: padding rows of the render buffer
BLOCKS = (37, 38, 37)
HALO_D0 = 4.0
HALO_DMAX = 400

_ZMAX, _NZ = 6.0, 3001
_PMIN, _PMAX, _NP = 1.8, 3.2, 141


@lru_cache(maxsize=1)
def _cdf_table() -> np.ndarray:
    """H[p, z] = 1/2 P(1/p, z^p / 2): the profile's CDF from 0 to z = |y|/sigma."""
    z = np.linspace(0.0, _ZMAX, _NZ)
    p = np.linspace(_PMIN, _PMAX, _NP)
    return (0.5 * gammainc(1.0 / p[:, None], 0.5 * z[None, :] ** p[:, None])).astype(np.float64)


def profile_cdf(y: np.ndarray, sigma: np.ndarray, power: np.ndarray) -> np.ndarray:
    """CDF of the normalised profile exp(-1/2 |y/sigma|^p) at offsets y (broadcasting)."""
    table = _cdf_table()
    z = np.minimum(np.abs(y) / sigma, _ZMAX * (1 - 1e-9)) * ((_NZ - 1) / _ZMAX)
    pp = (np.clip(power, _PMIN, _PMAX * (1 - 1e-9)) - _PMIN) * ((_NP - 1) / (_PMAX - _PMIN))
    zi = z.astype(np.int32)
    pi = pp.astype(np.int32)
    fz = z - zi
    fp = pp - pi
    flat = table.ravel()
    i00 = pi * _NZ + zi
    h = ((flat[i00] * (1 - fz) + flat[i00 + 1] * fz) * (1 - fp)
         + (flat[i00 + _NZ] * (1 - fz) + flat[i00 + _NZ + 1] * fz) * fp)
    return 0.5 + np.sign(y) * h


def profile_cdf_exact(y: np.ndarray, sigma: np.ndarray, power: np.ndarray) -> np.ndarray:
    """The same CDF with scipy's incomplete gamma (reference for tests)."""
    return 0.5 + np.sign(y) * 0.5 * gammainc(1.0 / power, 0.5 * (np.abs(y) / sigma) ** power)


def _smooth_field(rng: np.random.Generator, order: int = 2) -> np.ndarray:
    """A smooth (112, 1032) field in about [-1, 1]: random low-order polynomial in (fiber, column)."""
    f = np.linspace(-1, 1, NFIB)[:, None]
    x = np.linspace(-1, 1, NCOLS)[None, :]
    out = np.zeros((NFIB, NCOLS))
    terms = [(i, j) for i in range(order + 1) for j in range(order + 1 - i)]
    for i, j in terms:
        out += rng.normal(0, 1) * f ** i * x ** j / len(terms) ** 0.5
    return out / max(1.0, np.abs(out).max())


def nominal_positions(pitch: float, y0: float) -> np.ndarray:
    """y of the 112 fibers at the reference column: blocks 37/38/37 with one-fiber gaps."""
    k = np.arange(NFIB) + (np.arange(NFIB) >= BLOCKS[0]) + (np.arange(NFIB) >= BLOCKS[0] + BLOCKS[1])
    return y0 + pitch * k


@dataclass
class Optics:
    """Everything optical about one amp on one night (oriented frame)."""

    trace: np.ndarray          #: (112, 1032) y of each fiber's centre at each column
    sigma: np.ndarray          #: (112, 1032) profile sigma (px)
    power: np.ndarray          #: (112, 1032) profile exponent p
    coeffs: np.ndarray         #: (112, 3) wavelength polynomial per fiber
    wave: np.ndarray           #: (112, 1032) wavelength at pixel centres (A)
    dwave: np.ndarray          #: (112, 1032) A per pixel
    fwhm: np.ndarray           #: (112, 1032) LSF FWHM (A)
    ftf: np.ndarray            #: (112, 1032) relative throughput incl. amp factor and dead fibers
    dead: list[int]            #: 1-based dead fibers
    dead_throughput: list[float]
    amp2amp: float
    halo_frac: float
    night_shift_y: float
    night_shift_wave: float
    matrix: sparse.csc_matrix = field(repr=False)  #: pixel (padded frame) x (fiber, column) weights
    peak_frac: float = 0.0     #: nominal fraction of a fiber's light in its peak pixel
    family: str = "classic"    #: the family of the fiber dependence (hetred.sim.families)
    family_params: dict = field(default_factory=dict, repr=False)   #: its draws (truth)

    def spread(self, spec: np.ndarray) -> np.ndarray:
        """(1032, 1032) float32 image of fiber spectra ``spec`` (112, 1032 electrons per column)."""
        s = np.ascontiguousarray(spec, dtype=np.float32)
        img = (self.matrix @ s.ravel()).reshape(NROWS + 2 * PAD, NCOLS)[PAD:PAD + NROWS]
        if self.halo_frac > 0:
            img += self.halo_light(s)
        return img

    def halo_light(self, spec: np.ndarray) -> np.ndarray:
        """(1032, 1032) float32 scattered light of fiber spectra ``spec`` (112, 1032 electrons per
        column): at column x, fiber f puts ``halo_frac`` of its light into row y with the kernel
        k(d) = 1/(|d| + d0), |d| <= dmax, normalised to sum 1 over integer d, centred on its trace
        at that column, d = y - trace[f, x]. The light is laid at the trace with linear weights on
        the two rows around it and convolved along the rows with k (one FFT per column), so a
        sub-pixel position interpolates k linearly between integer offsets; rows beyond the
        frame are lost."""
        from scipy import fft as sfft

        s = np.asarray(spec, dtype=np.float64)
        t = np.asarray(self.trace, dtype=np.float64)
        i0 = np.floor(t).astype(np.int64)
        w1 = t - i0
        flat = np.clip(i0 + 1, 0, NROWS) * NCOLS + np.arange(NCOLS)[None, :]   # rows -1 .. NROWS
        dep = (np.bincount(flat.ravel(), (s * (1.0 - w1)).ravel(), (NROWS + 2) * NCOLS)
               + np.bincount((flat + NCOLS).ravel(), (s * w1).ravel(), (NROWS + 2) * NCOLS))
        dep = dep.reshape(NROWS + 2, NCOLS)
        d = np.arange(-HALO_DMAX, HALO_DMAX + 1)
        k = 1.0 / (np.abs(d) + HALO_D0)
        k *= self.halo_frac / k.sum()
        n = sfft.next_fast_len(NROWS + 2 + 2 * HALO_DMAX, real=True)
        full = sfft.irfft(sfft.rfft(dep.astype(np.float32), n, axis=0)
                          * sfft.rfft(k, n).astype(np.complex64)[:, None], n, axis=0)
        # full[j] = sum_i dep[i] k[j - i]; dep row i is frame row i - 1, k index j - i is d + dmax
        return full[HALO_DMAX + 1:HALO_DMAX + 1 + NROWS].astype(np.float32)


def build_optics(seed: int, night: str, ifuslot: int, amp: str, family: str = "classic",
                 pixels: bool = True) -> Optics:
    """The optics of one amp: persistent parts keyed by (slot, amp), the night's shifts by night.

    ``family``: how trace, profile, wavelength and LSF vary along the slit
    (:data:`hetred.sim.families.CHOICES`; ``mixed`` picks one per amp from the seed).
    ``pixels=False`` skips the pixel weights (``matrix`` is None): the fiber-level
    simulations need only the wavelengths, LSF and throughput (every draw is the same)."""
    r = seeds.rng(seed, seeds.OPTICS, ifuslot=ifuslot, amp=amp)
    rf = seeds.rng(seed, seeds.FAMILY, ifuslot=ifuslot, amp=amp)
    family = families.resolve(family, rf)
    slit = None if family == "classic" else families.slit_model(family, rf, NCOLS)
    rn = seeds.rng(seed, seeds.NIGHT_AMP, night=night, ifuslot=ifuslot, amp=amp)
    fib = np.arange(NFIB)
    fnorm = np.linspace(-1, 1, NFIB)[:, None]
    xnorm = ((np.arange(NCOLS) - spectra.XCEN) / spectra.XCEN)[None, :]

    # --- traces
    pitch = r.uniform(8.70, 8.77)
    y0 = r.uniform(15.0, 30.0)
    ynom = nominal_positions(pitch, y0) + r.normal(0, 0.15, NFIB)
    curv0, curv1, tilt = r.uniform(-3, 3), r.uniform(-2, 2), r.uniform(-1, 1)
    curv = curv0 + curv1 * fnorm
    tilt = np.full((NFIB, 1), tilt)
    shift_y = rn.uniform(-0.2, 0.2)
    # --- profile
    sig_field, pow_field = _smooth_field(r), _smooth_field(r)
    # --- wavelength
    c0, c1, c2 = spectra.WAVE_POLY
    off = r.uniform(-3, 3) * (fnorm[:, 0] ** 2 - 1 / 3) + r.uniform(-2, 2) * fnorm[:, 0] + r.uniform(-1.5, 1.5)
    stretch = 1.0 + r.uniform(-0.002, 0.002) * fnorm[:, 0] + r.uniform(-0.002, 0.002)
    dc2 = np.zeros(NFIB)
    shift_w = rn.uniform(-0.2, 0.2) * 2.0
    fwhm_field = _smooth_field(r)
    if slit is not None:      # the family replaces the classic draws (r keeps its order)
        ynom = ynom + slit.ydist
        curv, tilt = slit.curv[:, None], slit.tilt[:, None]
        sig_field, pow_field, fwhm_field = slit.sigma_field, slit.power_field, slit.fwhm_field
        off, stretch, dc2 = slit.zero, slit.stretch, slit.dc2
    trace = ynom[:, None] + curv * (xnorm ** 2 - 1.0 / 3.0) + tilt * xnorm + shift_y
    sigma = 2.5 * (1.0 + 0.04 * sig_field)
    power = 2.5 + 0.15 * pow_field
    xc = spectra.XCEN     # stretch and dc2 act about the centre column
    coeffs = np.stack([c0 + off + shift_w + (1 - stretch) * c1 * xc + dc2 * xc ** 2,
                       c1 * stretch - 2.0 * dc2 * xc, c2 + dc2], axis=1)
    x = np.arange(NCOLS, dtype=float)
    wave = spectra.wavelength(coeffs, x)
    dwave = spectra.dispersion(coeffs, x)
    fwhm = 5.5 + 0.35 * fwhm_field + 0.1 * xnorm
    # --- throughput
    level = r.normal(1.0, r.uniform(0.05, 0.10), NFIB)
    slope = r.normal(0.0, 0.03, NFIB)[:, None]
    curve = r.normal(0.0, 0.02, NFIB)[:, None]
    lw = (wave - 4500.0) / 1000.0
    trend = 1.0 + 0.03 * r.uniform(-1, 1) * fnorm
    amp2amp = float(r.normal(1.0, 0.03))
    ndead = int(r.choice([0, 0, 1, 1, 2]))
    dead = sorted(int(i) for i in r.choice(fib, size=ndead, replace=False))
    dead_tp = [float(r.uniform(0.02, 0.3)) for _ in dead]
    ftf = np.clip(level[:, None], 0.5, 1.5) * (1 + slope * lw + curve * lw ** 2) * trend * amp2amp
    for i, tp in zip(dead, dead_tp):
        ftf[i] *= tp
    halo_frac = float(r.uniform(0.03, 0.04))
    peak = float(np.diff(profile_cdf(np.array([-0.5, 0.5]), 2.5, 2.5))[0]) * (1 - halo_frac)
    if not pixels:
        return Optics(trace=trace, sigma=sigma.astype(np.float32), power=power.astype(np.float32),
                      coeffs=coeffs, wave=wave, dwave=dwave, fwhm=fwhm, ftf=ftf.astype(np.float32),
                      dead=[i + 1 for i in dead], dead_throughput=dead_tp, amp2amp=amp2amp,
                      halo_frac=halo_frac, night_shift_y=shift_y, night_shift_wave=shift_w,
                      matrix=None, peak_frac=peak, family=family,  # type: ignore[arg-type]
                      family_params={} if slit is None else slit.params)

    weights, base_idx = _profile_weights(trace, sigma, power)
    weights *= np.float32(1.0 - halo_frac)
    matrix = _sparse_matrix(weights, base_idx)
    del weights
    return Optics(trace=trace, sigma=sigma.astype(np.float32), power=power.astype(np.float32),
                  coeffs=coeffs, wave=wave, dwave=dwave, fwhm=fwhm, ftf=ftf.astype(np.float32),
                  dead=[i + 1 for i in dead], dead_throughput=dead_tp, amp2amp=amp2amp,
                  halo_frac=halo_frac, night_shift_y=shift_y, night_shift_wave=shift_w,
                  matrix=matrix, peak_frac=peak, family=family,
                  family_params={} if slit is None else slit.params)


def _profile_weights(trace: np.ndarray, sigma: np.ndarray, power: np.ndarray):
    """Pixel-integrated profile weights (NW, 112, 1032) and flat indices of the windows."""
    r0 = np.floor(trace).astype(np.int64) - HALF
    edges = ((r0 - trace - 0.5).astype(np.float32)[None]
             + np.arange(NW + 1, dtype=np.float32)[:, None, None])
    cdf = profile_cdf(edges, sigma.astype(np.float32)[None], power.astype(np.float32)[None])
    weights = np.diff(cdf, axis=0).astype(np.float32)
    rows = r0[None] + np.arange(NW)[:, None, None]
    weights[(rows < 0) | (rows >= NROWS)] = 0.0          # light off the amp is lost
    r0c = np.clip(r0, -PAD, NROWS + PAD - NW)
    base_idx = (r0c + PAD) * NCOLS + np.arange(NCOLS)[None, :]
    return weights, base_idx


def _sparse_matrix(weights: np.ndarray, base_idx: np.ndarray) -> sparse.csc_matrix:
    """CSC matrix whose column (f*1032 + x) holds the NW profile weights of fiber f at column x
    in rows base_idx[f, x] + k*1032 of the padded frame (already sorted: no conversion cost)."""
    ncol = NFIB * NCOLS
    data = np.ascontiguousarray(np.moveaxis(weights, 0, -1)).ravel()
    idx = (base_idx[:, :, None] + (np.arange(NW) * NCOLS)[None, None, :]).astype(np.int32).ravel()
    indptr = np.arange(0, ncol * NW + 1, NW, dtype=np.int32)
    return sparse.csc_matrix((data, idx, indptr), shape=((NROWS + 2 * PAD) * NCOLS, ncol))


def _halo_matrix(ycen: np.ndarray, frac: float) -> np.ndarray:
    """(1032, 112) matrix: halo light in row y from one electron of fiber f."""
    d = np.arange(-HALO_DMAX, HALO_DMAX + 1)
    norm = (1.0 / (np.abs(d) + HALO_D0)).sum()
    dist = np.abs(np.arange(NROWS)[:, None] - ycen[None, :])
    k = np.where(dist <= HALO_DMAX, 1.0 / (dist + HALO_D0), 0.0) / norm
    return (frac * k).astype(np.float32)
