"""Settings of ``hetred sci``: ``[stages.sci]`` in the config file (docs/stages/sci.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "sci"


@dataclass(frozen=True)
class SciSettings:
    """Parameters of the science reduction (defaults are Karl's where he has one)."""

    flat_min: float = 0.666          #: vred: pixels with pixel flat <= this are masked (0)
    chi2_cut: float = 10.0           #: vred extract: fiber columns with chi^2 above this are masked
    chi2_grow: int = 1               #: vred: ... together with this many columns on either side
    reject_sigma: float = 5.0        #: a further pass masks single pixels this many sigma high (0: off)
    shift_max: float = 3.0           #: px: largest trace shift accepted before the unit fails
    master_block: int = 40           #: samples (fiber-columns, sorted by wavelength) per master-sky point
    master_iter: int = 2             #: master sky passes (continuum fibers found after the first)
    continuum_sigma: float = 2.5     #: vred getback: continuum fiber when level > this x scatter
    continuum_scale_cap: float = 70.0  #: vred getback: the scatter is capped at this (e-)
    continuum_grow: int = 1          #: vred getback: neighbours of a continuum fiber left out too
    residual_background: bool = True  #: vred getback: subtract a smooth residual per fiber
    zero_point_lines: tuple[float, ...] = (4358.34, 5460.75)  #: Å (air), bright sky lines checked
    zero_point_tolerance: float = 0.3  #: Å: a larger measured offset is flagged (WZPFLAG)
    apply_zero_point: bool = False   #: shift the wavelengths by the measured offset
    #: vred's limited output (iuse = 2, what Karl's run1s asks for): model2d, flat and flat_orig
    #: written as (1, 1); false writes them in full
    limited_output: bool = True
    rectified: bool = True           #: write rect_*.fits (step 6)
    cofes: bool = True               #: write CoFeS*_sci.fits (step 7)
    fplane_png: bool = True          #: write the exposure's focal-plane PNG (step 8)
    calibration_overrides: Any = field(default=None)   #: see hetred.sci.calibration

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> "SciSettings":
        """Settings from a ``[stages.sci]`` table; unknown keys and bad values are errors."""
        def overrides(value):
            from hetred.sci.calibration import parse_overrides
            parse_overrides(value)          # fail here with the config's words
            return value

        out = parse_stage_table(cls, values, "stages.sci", {"calibration_overrides": overrides})
        s = cls(**out)
        if s.master_block < 5 or s.master_iter < 1 or s.chi2_cut <= 0 or s.chi2_grow < 0:
            raise HetredError("[stages.sci]: need master_block >= 5, master_iter >= 1, chi2_cut > 0, "
                              "chi2_grow >= 0")
        return s

    def as_header(self) -> dict[str, Any]:
        """The settings as short header values (provenance)."""
        return {"FLATMIN": self.flat_min, "CHI2CUT": self.chi2_cut, "CHI2GROW": self.chi2_grow,
                "REJSIG": self.reject_sigma, "SKYBLOCK": self.master_block,
                "CONTSIG": self.continuum_sigma, "RESBACK": self.residual_background}
