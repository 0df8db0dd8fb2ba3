"""Fixtures' helpers for tests/stages/test_sci.py (tests may read the truth; the reduction never does).

(the bright emission lines the flux tests need, the random lines being too faint for a 3 %
test, are a simulator option: ``FrameCounts(bright_lines=4)``, on in the demo preset);
* :func:`write_truth_library` -- a ``callib`` file made from the truth of one amp (trace,
  wavelength, fiber-to-fiber, dead fibers, the pixel-integrated profile), so that the science
  stage can be tested in seconds without the twilight calibration;
* :func:`write_truth_pixelflat` -- the truth pixel flat as a ``pixelflat`` product.
"""
from __future__ import annotations

import numpy as np
from astropy.io import fits


def truth_profile(sigma: np.ndarray, power: np.ndarray, nknot: int = 17):
    """A :class:`hetred.fibers.profile.FiberProfile` of the simulator's pixel-integrated profile
    exp(-1/2 |y/sigma|^p) (sigma, power: (112, 1032) truth images) at ``nknot`` knot columns."""
    from hetred.fibers.profile import FiberProfile, node_offsets
    from hetred.sim.optics import profile_cdf_exact

    off = node_offsets()
    cols = np.linspace(0, sigma.shape[1] - 1, nknot)
    ci = np.rint(cols).astype(int)
    s = sigma[:, ci][:, :, None]
    p = power[:, ci][:, :, None]
    d = off[None, None, :]
    vals = profile_cdf_exact(d + 0.5, s, p) - profile_cdf_exact(d - 0.5, s, p)
    vals /= vals.sum(axis=2, keepdims=True) * (off[1] - off[0])
    return FiberProfile(off, cols, vals.astype(np.float32))


def write_truth_library(layout, month: str, night: str, ifuslot: int, amp: str):
    """The ``callib`` file of one amp from its truth; returns its path."""
    from hetred.fibers.library import library_hdul
    from hetred.io.atomic import write_fits_atomic

    with fits.open(layout.path("truth_amp", night=night, ifuslot=ifuslot, amp=amp)) as t:
        h0 = t[0].header.copy()
        trace = t["TRACE"].data.astype(np.float32)
        wave = t["WAVELENGTH"].data.astype(np.float32)
        ftf = t["FIBER_TO_FIBER"].data.astype(np.float32)
        prof = truth_profile(t["PROFILE_SIGMA"].data.astype(np.float64), t["PROFILE_POWER"].data.astype(np.float64))
        dead = np.zeros(112, bool)
        dead[np.asarray(t["DEAD_FIBERS"].data["FIBER"], int) - 1] = True
    path = layout.path("callib", month=month, specid=int(h0["SPECID"]), ifuslot=ifuslot,
                       ifuid=str(h0["IFUID"]), amp=amp)
    zeros = np.zeros_like(trace)
    write_fits_atomic(path, library_hdul(month, h0, trace, wave, ftf, dead, prof, zeros, zeros, zeros,
                                         np.zeros(112, bool), ["truth"]))
    return path


def write_truth_pixelflat(layout, night: str, ifuslot: int, amp: str):
    """The truth PIXELFLAT (oriented) as the ``pixelflat`` product of the amp's camera."""
    from hetred.io.atomic import write_fits_atomic

    with fits.open(layout.path("truth_amp", night=night, ifuslot=ifuslot, amp=amp)) as t:
        flat = t["PIXELFLAT"].data.astype(np.float32)
        specid = int(t[0].header["SPECID"])
    path = layout.path("pixelflat", specid=specid, amp=amp)
    write_fits_atomic(path, fits.HDUList([fits.PrimaryHDU(flat)]))
    return path
