"""The per-exposure twilight product (``calwork``) of ``twical-reduce``, read back by the combine
and the amp-to-amp steps.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred.fibers.profile import FiberProfile
from hetred.fibers.trace import TraceSolution
from hetred.twical.wavelength import WaveSolution


def read_calwork(path: Path) -> dict:
    """The per-exposure products of a calwork file."""

    with fits.open(path) as h:
        return {"trace": TraceSolution.from_hdus(h, "TRACE"), "profile": FiberProfile.from_hdus(h, "PROFILE"),
                "wave": WaveSolution.from_hdulist(h), "spectra": np.asarray(h["SPECTRA"].data, np.float32),
                "ftf": np.asarray(h["FIBER_TO_FIBER"].data, np.float32),
                "dead": np.asarray(h["DEAD"].data, bool), "header": h[0].header.copy()}
