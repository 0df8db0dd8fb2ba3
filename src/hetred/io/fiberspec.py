"""The sky-subtracted spectra of an amp's fibers on the calfib grid, ready for flux calibration.

Read from the products of ``hetred sci`` and ``hetred twical`` through the layout (what
fitradecsp ``getspec``/``getmulti`` take from the multi file and the amp normalisation,
shared/reference/astrom_throughput.md §4 steps 1-3):

* ``rect_*.fits`` (``rectified``): sky_subtracted and error1d, electrons per 2-Å bin on
  3470 + 2 i Å (i < 1036), 0 with error 0 where there is no data;
* the multi file (``multi``): ``wavelength`` and ``fiber_to_fiber`` (112, 1032), the fiber-to-fiber
  taken at the grid wavelengths by linear interpolation in each fiber's own wavelengths (0
  outside them);
* the calibration library of the multi header's ``CALMONTH`` (``callib``): the amp-to-amp factor
  (header ``A2A`` of its ``amp_to_amp`` extension; 1 when the library has none).

:meth:`AmpSpectra.calibrated` divides by fiber-to-fiber x amp-to-amp x the exposure's norm.dat
value; bins with fiber-to-fiber <= 0.1 (Karl's cut) become missing. Errors are propagated
(divided by the same factors).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from astropy.io import fits

from hetred.errors import HetredError
from hetred.layout import Layout

GRID = 3470.0 + 2.0 * np.arange(1036)       #: Å, bin centres of the calfib grid
FTF_MIN = 0.1                               #: fitradecsp: fibers/bins with ftf <= 0.1 are not used


@dataclass
class AmpSpectra:
    """One amp of one exposure: ``counts``, ``error`` (112, 1036) float32 electrons per 2 Å;
    ``ftf`` (112, 1036) float32 fiber-to-fiber on the grid; ``a2a`` float; ``header`` the
    rectified file's primary-header values of :data:`HEADER_KEYS` (CALMONTH, STRUCTAZ, ...)."""

    counts: np.ndarray
    error: np.ndarray
    ftf: np.ndarray
    a2a: float
    header: dict

    def calibrated(self, norm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(counts, error) / (ftf a2a norm), (112, 1036) float32; 0, 0 where there is no data or
        ftf <= 0.1 or a non-finite value."""
        f = self.ftf.astype(np.float64) * self.a2a * norm
        ok = (self.error > 0) & (self.ftf > FTF_MIN) & np.isfinite(self.counts) & np.isfinite(self.error)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(ok, self.counts / f, 0.0)
            e = np.where(ok, self.error / f, 0.0)
        return c.astype(np.float32), e.astype(np.float32)


def ftf_on_grid(wave: np.ndarray, ftf: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """(n_fib, n_grid) fiber-to-fiber at ``grid`` from (n_fib, n_pix) values at each fiber's
    wavelengths, linear; 0 outside a fiber's range or where its wavelengths are not finite and
    increasing. All fibers in one ``np.interp`` (each fiber's wavelengths shifted by its own
    multiple of a span larger than any range)."""
    w = np.asarray(wave, dtype=np.float64)
    f = np.asarray(ftf, dtype=np.float64)
    n = w.shape[0]
    good = np.all(np.isfinite(w), axis=1) & np.all(np.diff(w, axis=1) > 0, axis=1)
    out = np.zeros((n, grid.size), dtype=np.float32)
    if not good.any():
        return out
    wg, fg = w[good], f[good]
    span = 2.0 * (max(float(wg.max()), float(grid.max())) - min(float(wg.min()), float(grid.min())) + 1.0)
    shift = (np.arange(wg.shape[0]) * span)[:, None]
    vals = np.interp((grid[None, :] + shift).ravel(), (wg + shift).ravel(), fg.ravel()).reshape(-1, grid.size)
    inside = (grid[None, :] >= wg[:, :1]) & (grid[None, :] <= wg[:, -1:])
    out[good] = np.where(inside, vals, 0.0)
    return out


#: primary-header keywords kept with the spectra
HEADER_KEYS = ("CALMONTH", "STRUCTAZ", "EXPTIME", "SPECID", "IFUSLOT", "IFUID", "AMP", "PARANGLE")


def _read(path, names: tuple[str, ...], what: str, hint: str):
    """Arrays of ``names`` and the primary keys of a FITS file (fast reader, astropy fallback)."""
    from hetred.io.fastfits import read_images

    try:
        return read_images(path, names, HEADER_KEYS)
    except FileNotFoundError:
        raise HetredError(f"no {what} {path} ({hint})") from None
    except (ValueError, KeyError, OSError):
        pass
    try:
        with fits.open(path, memmap=False) as h:
            return ({n: np.asarray(h[n].data) for n in names},
                    {k: h[0].header[k] for k in HEADER_KEYS if k in h[0].header})
    except (OSError, KeyError, TypeError) as err:
        raise HetredError(f"{what} {path} is unreadable ({err})") from None


def read_amp_spectra(layout: Layout, *, night: str, obs: int, exp: int, specid: int, ifuslot: int,
                     ifuid: str, amp: str) -> AmpSpectra:
    """The spectra of one amp (module docstring). A missing or unreadable product raises
    :class:`HetredError` naming it."""
    keys = dict(night=night, obs=obs, exp=exp, specid=specid, ifuslot=ifuslot, ifuid=ifuid, amp=amp)
    hint = f"run hetred sci --shot {night}v{obs:03d}"
    rect = layout.path("rectified", **keys)
    a, header = _read(rect, ("calfib_counts", "calfibe_counts"), "rectified spectra", hint)
    m, _ = _read(layout.path("multi", **keys), ("wavelength", "fiber_to_fiber"), "multi file", hint)
    counts = np.asarray(a["calfib_counts"], dtype=np.float32)
    error = np.asarray(a["calfibe_counts"], dtype=np.float32)
    wave, ftf = m["wavelength"], m["fiber_to_fiber"]
    if counts.shape != error.shape or counts.shape[1] != GRID.size or wave.shape != ftf.shape \
            or wave.shape[0] != counts.shape[0]:
        raise HetredError(f"{rect}: shapes {counts.shape} / {wave.shape} do not match (112 fibers, 1036 bins)")
    return AmpSpectra(counts, error, ftf_on_grid(wave, ftf), amp_to_amp(layout, header, keys), header)


def amp_to_amp(layout: Layout, header, keys: dict) -> float:
    """The amp-to-amp factor of the library the multi file was made with (``CALMONTH``); 1.0
    when the header names no month or the library has no factor."""
    month = str(header.get("CALMONTH", "")).strip()
    if not month:
        return 1.0
    path = layout.path("callib", month=month, specid=keys["specid"], ifuslot=keys["ifuslot"],
                       ifuid=keys["ifuid"], amp=keys["amp"])
    try:
        v = _a2a(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise HetredError(f"no calibration library {path} (the multi file was made with it; "
                          f"run hetred twical {month})") from None
    return v if np.isfinite(v) and v > 0 else 1.0


@lru_cache(maxsize=512)
def _a2a(path: str, mtime_ns: int) -> float:
    from hetred.io.fastfits import scan

    try:
        for h in scan(path, ("A2A",)):
            if h["name"] == "amp_to_amp":
                return float(h["cards"].get("A2A", 1.0))
    except (OSError, ValueError):
        pass
    return 1.0
