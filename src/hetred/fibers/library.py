"""The monthly calibration library file of an amp (``callib``, written by ``hetred twical``, read by
the science reduction): trace, wavelength, fiber-to-fiber, amp-to-amp, profile, dead fibers
and their scatters over the month (docs/stages/twical.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred._version import __version__


def library_hdul(month, h0, trace, wave, ftf, dead, prof, tr_scatter, wave_scatter, ftf_scatter,
                 trace_dead, sources, a2a: float = 1.0) -> fits.HDUList:
    """The callib file (docs/formats.md)."""
    ph = fits.PrimaryHDU()
    h = ph.header
    for k in ("SPECID", "IFUSLOT", "IFUID", "CONTID", "AMP"):
        h[k] = h0.get(k, "")
    h["MONTH"] = month
    h["NEXP"] = (len(sources), "twilight exposures combined")
    h["ORIENT"] = ("oriented", "rows cross-dispersion, columns wavelength up")
    h["HETRED"] = __version__
    f32 = np.float32
    hd = [ph, fits.ImageHDU(np.asarray(trace, f32), name="trace"),
          fits.ImageHDU(np.asarray(wave, f32), name="wavelength"),
          fits.ImageHDU(np.asarray(ftf, f32), name="fiber_to_fiber"),
          amp_to_amp_hdu(a2a, 0.0, 0, "unset")]
    hd[1].header["BUNIT"] = "pixel"
    hd[2].header["BUNIT"] = "Angstrom"
    hd.extend(prof.to_hdus("profile"))
    dflag = np.asarray(dead, np.uint8) | (np.asarray(trace_dead, np.uint8) << 1)
    t = fits.BinTableHDU.from_columns([
        fits.Column(name="FIBER", format="J", array=np.arange(1, dflag.size + 1)),
        fits.Column(name="DEAD", format="L", array=np.asarray(dead, bool)),
        fits.Column(name="FLAGS", format="B", array=dflag)], name="dead_fibers")
    hd.append(t)
    hd += [fits.ImageHDU(np.asarray(tr_scatter, f32), name="trace_scatter"),
           fits.ImageHDU(np.asarray(wave_scatter if wave_scatter is not None else np.zeros_like(wave), f32),
                         name="wavelength_scatter"),
           fits.ImageHDU(np.asarray(ftf_scatter, f32), name="fiber_to_fiber_scatter")]
    return fits.HDUList(hd)


def amp_to_amp_hdu(value: float, error: float, nexp: int, status: str = "measured") -> fits.ImageHDU:
    h = fits.ImageHDU(np.array([value], np.float32), name="amp_to_amp")
    h.header["A2A"] = (float(value), "amp-to-amp factor (multiply ftf by it)")
    h.header["A2AERR"] = (float(error), "biweight scale over the exposures")
    h.header["A2ANEXP"] = (int(nexp), "exposures combined")
    h.header["A2ASTAT"] = (status, "measured or unset (1.0)")
    return h


def read_library(path: Path) -> dict:
    with fits.open(path) as h:
        out = {n: np.asarray(h[n].data) for n in ("trace", "wavelength", "fiber_to_fiber",
                                                   "trace_scatter", "wavelength_scatter",
                                                   "fiber_to_fiber_scatter")}
        out["dead"] = np.asarray(h["dead_fibers"].data["DEAD"], bool)
        out["amp_to_amp"] = float(h["amp_to_amp"].header["A2A"])
        out["header"] = h[0].header.copy()
    return out
