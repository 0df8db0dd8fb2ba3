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
    rectified file's primary header (multi/raw cards: EXPTIME, STRUCTAZ, CALMONTH, ...)."""

    counts: np.ndarray
    error: np.ndarray
    ftf: np.ndarray
    a2a: float
    header: fits.Header

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
    wavelengths; 0 outside a fiber's range or where its wavelengths are not increasing."""
    out = np.zeros((wave.shape[0], grid.size), dtype=np.float32)
    for i in range(wave.shape[0]):
        w, f = wave[i].astype(np.float64), ftf[i].astype(np.float64)
        if not (np.all(np.isfinite(w)) and np.all(np.diff(w) > 0)):
            continue
        out[i] = np.interp(grid, w, f, left=0.0, right=0.0)
    return out


def read_amp_spectra(layout: Layout, *, night: str, obs: int, exp: int, specid: int, ifuslot: int,
                     ifuid: str, amp: str) -> AmpSpectra:
    """The spectra of one amp (module docstring). A missing or unreadable product raises
    :class:`HetredError` naming it."""
    keys = dict(night=night, obs=obs, exp=exp, specid=specid, ifuslot=ifuslot, ifuid=ifuid, amp=amp)
    rect = layout.path("rectified", **keys)
    multi = layout.path("multi", **keys)
    try:
        with fits.open(rect, memmap=False) as h:
            counts = np.asarray(h["calfib_counts"].data, dtype=np.float32)
            error = np.asarray(h["calfibe_counts"].data, dtype=np.float32)
            header = h[0].header.copy()
    except FileNotFoundError:
        raise HetredError(f"no rectified spectra {rect} (run hetred sci --shot {night}v{obs:03d})") from None
    except (OSError, KeyError, TypeError) as err:
        raise HetredError(f"rectified spectra {rect} are unreadable ({err})") from None
    try:
        with fits.open(multi, memmap=True) as h:
            wave = np.array(h["wavelength"].data, dtype=np.float64)
            ftf = np.array(h["fiber_to_fiber"].data, dtype=np.float64)
    except FileNotFoundError:
        raise HetredError(f"no multi file {multi} (run hetred sci --shot {night}v{obs:03d})") from None
    except (OSError, KeyError, TypeError) as err:
        raise HetredError(f"multi file {multi} is unreadable ({err})") from None
    if counts.shape != error.shape or counts.shape[1] != GRID.size or wave.shape != ftf.shape \
            or wave.shape[0] != counts.shape[0]:
        raise HetredError(f"{rect}: shapes {counts.shape} / {wave.shape} do not match (112 fibers, 1036 bins)")
    return AmpSpectra(counts, error, ftf_on_grid(wave, ftf), amp_to_amp(layout, header, keys), header)


def amp_to_amp(layout: Layout, header: fits.Header, keys: dict) -> float:
    """The amp-to-amp factor of the library the multi file was made with (``CALMONTH``); 1.0
    when the header names no month or the library has no factor."""
    month = str(header.get("CALMONTH", "")).strip()
    if not month:
        return 1.0
    path = layout.path("callib", month=month, specid=keys["specid"], ifuslot=keys["ifuslot"],
                       ifuid=keys["ifuid"], amp=keys["amp"])
    try:
        with fits.open(path, memmap=True) as h:
            v = float(h["amp_to_amp"].header.get("A2A", 1.0))
    except FileNotFoundError:
        raise HetredError(f"no calibration library {path} (the multi file was made with it; run hetred twical {month})") from None
    except (OSError, KeyError):
        return 1.0
    return v if np.isfinite(v) and v > 0 else 1.0
