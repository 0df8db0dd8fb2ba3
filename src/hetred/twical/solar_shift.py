"""Karl's twilight wavelength method as a zero-point refinement (docs/stages/twical_wavelength.md).

karlspipe's vred.f found the wavelengths by comparing the twilight (the Sun) with a solar
template, ``lib_calib/datafiles/sun_use.dat`` (``fitmaster``, ``getwtrace3``). hetred fits the
wavelengths to arc lines (:mod:`hetred.twical.wavelength`) and uses the twilight only for what it
is best at: a per-fiber shift (A) of an existing solution, measured on the exposure's own light.

For each fiber, the twilight spectrum is compared with the template convolved to the line spread
(Gaussian, FWHM ``lsf_fwhm``; less the template's own ``template_fwhm`` in quadrature) and
averaged over the pixel, sampled at lambda(x) + shift, in windows around the strong Fraunhofer
features (:data:`WINDOWS`); each window has its own linear continuum (throughput, fiber-to-fiber,
the twilight's colour), fitted by linear least squares at every trial shift. The shift minimising
chi^2 is found on a coarse grid, then on a fine grid, then by a parabola. A fiber whose fit fails
(dead, no light) is flagged and gets its neighbours' shift.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetred.errors import HetredError

#: (lo, hi) A: Ca II K+H, H delta, G band + H gamma + Fe 4383, H beta, Mg b, Fe 5270
WINDOWS: tuple[tuple[float, float], ...] = (
    (3900.0, 4000.0), (4080.0, 4125.0), (4280.0, 4400.0), (4840.0, 4885.0),
    (5150.0, 5200.0), (5255.0, 5285.0),
)
FWHM_SIGMA = 2.3548200450309493
GRID_STEP = 0.05             #: A, the template's working grid
OWN_NSIG = 3.0               #: 'smooth' mode: a fiber this many errors off the local line keeps its own shift


@dataclass
class SolarTemplate:
    """A solar spectrum on a uniform grid (A, relative flux)."""

    wave: np.ndarray
    flux: np.ndarray
    fwhm: float = 0.0        #: resolution already in the template (A); 0: full resolution

    def convolved(self, fwhm: float, pixel: float = 0.0) -> np.ndarray:
        """Flux convolved to Gaussian FWHM ``fwhm`` (quadrature difference to the template's own)
        and a box of ``pixel`` A (the pixel width), on :attr:`wave`."""
        out = self.flux.astype(float)
        step = self.wave[1] - self.wave[0]
        extra = np.sqrt(max(fwhm ** 2 - self.fwhm ** 2, 0.0)) / FWHM_SIGMA / step
        if extra > 0.3:
            k = np.arange(-int(5 * extra) - 1, int(5 * extra) + 2)
            out = _convolve(out, np.exp(-0.5 * (k / extra) ** 2))
        nbox = int(round(pixel / step))
        if nbox >= 2:
            out = _convolve(out, np.ones(nbox | 1))
        return out


def _convolve(flux: np.ndarray, kern: np.ndarray) -> np.ndarray:
    kern = kern / kern.sum()
    pad = kern.size // 2
    padded = np.concatenate([np.full(pad, flux[0]), flux, np.full(pad, flux[-1])])
    return np.convolve(padded, kern, mode="valid")


def load_solar_template(path: str | Path, fwhm: float = 0.0) -> SolarTemplate:
    """A two-column text file ``wavelength(A) flux`` (Karl's sun_use.dat), resampled to 0.05 A."""
    p = Path(path)
    try:
        data = np.loadtxt(p, usecols=(0, 1), comments="#")
    except (OSError, ValueError) as err:
        raise HetredError(f"solar template {p}: cannot read ({err})") from None
    if data.ndim != 2 or data.shape[0] < 100:
        raise HetredError(f"solar template {p}: expected two columns and many lines")
    return make_template(data[:, 0], data[:, 1], fwhm)


def make_template(wave: np.ndarray, flux: np.ndarray, fwhm: float = 0.0) -> SolarTemplate:
    """A template from arrays (any sampling; sorted and resampled to :data:`GRID_STEP`)."""
    o = np.argsort(wave)
    w, f = np.asarray(wave, float)[o], np.asarray(flux, float)[o]
    grid = np.arange(np.ceil(w[0] / GRID_STEP) * GRID_STEP, w[-1], GRID_STEP)
    return SolarTemplate(grid, np.interp(grid, w, f), float(fwhm))


@dataclass
class TwilightShift:
    """Per-fiber shifts (A, to ADD to the solution), with errors and what was applied."""

    shift: np.ndarray        #: (nfib,) measured (NaN where it failed)
    error: np.ndarray        #: (nfib,) 1-sigma (A)
    applied: np.ndarray      #: (nfib,) what to add (``mode``), never NaN
    ok: np.ndarray           #: (nfib,) bool
    mode: str
    amp_shift: float         #: biweight of the good fibers' shifts

    @property
    def bad(self) -> np.ndarray:
        return ~self.ok


def measure_shift(spectra: np.ndarray, wavelength: np.ndarray, template: SolarTemplate,
                  lsf_fwhm: float | np.ndarray = 5.5, windows=WINDOWS, max_shift: float = 4.0,
                  fiber_mask: np.ndarray | None = None, pixel_box: bool = True,
                  mode: str = "smooth", smooth_fibers: int = 13, clip: float = 6.0,
                  mask: np.ndarray | None = None) -> TwilightShift:
    """Per-fiber wavelength shift of a twilight against the solar template.

    spectra: (nfib, 1032) extracted twilight (or a stack (n, nfib, 1032), averaged); wavelength:
    (nfib, 1032) the current solution (A); lsf_fwhm: scalar or (nfib,) A (e.g. the arc solution's
    ``lsf_fwhm``); fiber_mask: True = dead fiber (not measured). ``mode``: 'fiber' applies each
    fiber's own shift, 'smooth' (after Karl's getwtrace3, which smooths over 13 fibers) a clipped
    straight line through the ``smooth_fibers`` nearest measured fibers (one-sided at the slit
    edges, so a trend there is followed, not pulled inward), except for a fiber whose own shift
    is more than :data:`OWN_NSIG` of its errors off that line (a change along the slit sharper
    than the window: the fiber keeps its own), 'amp' one biweight shift for the amp. The corrected solution is wavelength + applied.
    Pixels in ``mask`` (nfib, 1032, True = bad), non-finite or exactly 0 are not used; pixels
    more than ``clip`` robust sigmas off the best model are dropped (twice).
    """
    if mode not in ("fiber", "smooth", "amp"):
        raise HetredError(f"twilight shift mode {mode!r}: use fiber, smooth or amp")
    spec = np.asarray(spectra, dtype=float)
    if spec.ndim == 3:
        spec = spec.mean(axis=0)
    wave = np.asarray(wavelength, dtype=float)
    nfib = spec.shape[0]
    fwhm = np.broadcast_to(np.nan_to_num(np.asarray(lsf_fwhm, float), nan=5.5), (nfib,))
    disp = float(np.median(np.gradient(wave, axis=1)))
    cache: dict[float, np.ndarray] = {}
    shift = np.full(nfib, np.nan)
    error = np.full(nfib, np.nan)
    dead = np.zeros(nfib, bool) if fiber_mask is None else np.asarray(fiber_mask, bool)
    coarse = np.arange(-max_shift, max_shift + 1e-9, 0.25)
    for f in range(nfib):
        if dead[f]:
            continue
        key = round(float(fwhm[f]), 1)
        if key not in cache:
            cache[key] = template.convolved(key, disp if pixel_box else 0.0)
        tflux = cache[key]
        sel = _window_pixels(wave[f], spec[f], windows, None if mask is None else mask[f])
        if sel is None:
            continue
        chi_c = _chi2(sel, template.wave, tflux, coarse)
        k = int(np.argmin(chi_c))
        for _ in range(2):
            sel = _clip_pixels(sel, template.wave, tflux, float(coarse[k]), clip)
            chi_c = _chi2(sel, template.wave, tflux, coarse)
            k = int(np.argmin(chi_c))
        fine = coarse[k] + np.arange(-0.3, 0.3 + 1e-9, 0.02)
        chi_f = _chi2(sel, template.wave, tflux, fine)
        j = int(np.clip(np.argmin(chi_f), 1, fine.size - 2))
        y0, y1, y2 = chi_f[j - 1:j + 2]
        curv = (y0 - 2 * y1 + y2) / 0.02 ** 2
        if not np.isfinite(curv) or curv <= 0 or k in (0, coarse.size - 1):
            continue
        shift[f] = fine[j] + 0.02 * 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        dof = max(sel[0].size - 2 * len(sel[3]) - 1, 1)
        error[f] = np.sqrt(2.0 / curv * max(y1 / dof, 1.0))
    return _finish(shift, error, dead, mode, smooth_fibers)


def _window_pixels(w: np.ndarray, d: np.ndarray, windows, bad: np.ndarray | None = None):
    """Pixels of one fiber in the windows: (wave, data, weight, list of (start, stop), u)."""
    ws, ds, us, seg = [], [], [], []
    n = 0
    for lo, hi in windows:
        m = (w >= lo) & (w <= hi) & np.isfinite(d) & (d != 0)
        if bad is not None:
            m &= ~bad
        if m.sum() < 8:
            continue
        wi = w[m]
        ws.append(wi)
        ds.append(d[m])
        us.append((wi - wi.mean()) / max(np.ptp(wi), 1.0))
        seg.append((n, n + wi.size))
        n += wi.size
    if not seg:
        return None
    data = np.concatenate(ds)
    if np.median(data) <= 0:
        return None
    weight = 1.0 / np.maximum(data, 0.05 * np.median(data))    # Poisson-like (electrons)
    return np.concatenate(ws), data, weight, seg, np.concatenate(us)


def _chi2(sel, twave, tflux, shifts, want_model: bool = False):
    """chi^2 at each trial shift with a linear continuum per window (exact linear LS); with
    ``want_model`` also the best-fit model (ns, npix)."""
    w, d, wt, seg, u = sel
    m = np.interp(w[None, :] + shifts[:, None], twave, tflux)      # (ns, npix)
    starts = np.array([a for a, _ in seg])
    gw = m * wt[None, :]
    ugw = gw * u[None, :]

    def red(a):
        return np.add.reduceat(a, starts, axis=-1)                   # sums per window

    s11, s12, s22 = red(gw * m), red(ugw * m), red(ugw * m * u[None, :])
    b1, b2 = red(gw * d[None, :]), red(ugw * d[None, :])
    det = s11 * s22 - s12 ** 2
    det = np.where(det > 0, det, np.inf)
    quad = (s22 * b1 * b1 - 2 * s12 * b1 * b2 + s11 * b2 * b2) / det
    out = float((d * d * wt).sum()) - quad.sum(axis=1)
    if not want_model:
        return out
    c1 = (s22 * b1 - s12 * b2) / det
    c2 = (s11 * b2 - s12 * b1) / det
    idx = np.repeat(np.arange(len(seg)), [b - a for a, b in seg])
    return out, m * (c1[:, idx] + c2[:, idx] * u[None, :])


def _clip_pixels(sel, twave, tflux, shift: float, clip: float):
    """Drop pixels more than ``clip`` robust sigmas off the best model at ``shift`` (bad columns,
    cosmic rays); returns the reduced selection (or the same one)."""
    w, d, wt, seg, u = sel
    _, model = _chi2(sel, twave, tflux, np.array([shift]), want_model=True)
    nr = (d - model[0]) * np.sqrt(wt)
    scale = max(1.4826 * float(np.median(np.abs(nr))), 1.0)
    keep = np.abs(nr) <= clip * scale
    if keep.all():
        return sel
    new_seg, n, idx = [], 0, []
    for a, b in seg:
        k = np.nonzero(keep[a:b])[0] + a
        if k.size >= 8:
            idx.append(k)
            new_seg.append((n, n + k.size))
            n += k.size
    if not idx:
        return sel
    i = np.concatenate(idx)
    return w[i], d[i], wt[i], new_seg, u[i]


def _finish(shift, error, dead, mode, nsm) -> TwilightShift:
    from hetred.stats import biweight
    from hetred.twical.wavefit import local_trend

    nfib = shift.size
    fib = np.arange(nfib, dtype=float)
    ok = np.isfinite(shift) & ~dead
    if ok.sum() >= 3:
        # a shift far from its neighbours' trend (> 5 scales and 0.5 A) is not trusted; the trend
        # is local, so a steep but smooth change toward a slit edge is kept
        dev = shift - local_trend(fib, shift, ok, max(nsm, 3), exclude_self=True)
        scl = biweight(dev[ok & np.isfinite(dev)])[1] if (ok & np.isfinite(dev)).sum() >= 3 else 0.0
        ok &= ~((np.abs(dev) > 5 * max(scl, 0.02)) & (np.abs(dev) > 0.5))
    amp_shift = float(biweight(shift[ok])[0]) if ok.sum() else 0.0
    smooth = np.full(nfib, amp_shift)
    if ok.sum() >= 3:     # a clipped straight line over the nsm nearest measured fibers: at the
        # slit edges the window is one-sided and a running mean would pull the outermost fibers;
        # a fiber whose own shift departs from the line by more than OWN_NSIG errors keeps its own
        trend = local_trend(fib, shift, ok, max(nsm, 3))
        smooth = np.where(np.isfinite(trend), trend, amp_shift)
        own = ok & (np.abs(shift - smooth) > OWN_NSIG * np.nan_to_num(error, nan=np.inf))
        smooth = np.where(own, shift, smooth)
    if mode == "amp":
        applied = np.full(nfib, amp_shift)
    elif mode == "smooth":
        applied = smooth
    else:
        applied = np.where(ok, shift, smooth)
    return TwilightShift(shift=shift, error=error, applied=applied, ok=ok, mode=mode, amp_shift=amp_shift)


def apply_twilight(solution, spectra: np.ndarray, template: SolarTemplate, **kwargs):
    """Measure the twilight shift of a :class:`~hetred.twical.wavelength.WaveSolution` and return
    (corrected solution, :class:`TwilightShift`); fibers without a measurement get TWI_BAD."""
    from hetred.twical.wavelength import WaveFlag

    kwargs.setdefault("lsf_fwhm", np.where(np.isfinite(solution.lsf_fwhm), solution.lsf_fwhm, 5.5))
    kwargs.setdefault("fiber_mask", (solution.flags & WaveFlag.DEAD) > 0)
    ts = measure_shift(spectra, solution.wavelength, template, **kwargs)
    flags = np.where(ts.ok, 0, int(WaveFlag.TWI_BAD)).astype(np.int32)
    return solution.with_shift(ts.applied, flags), ts
