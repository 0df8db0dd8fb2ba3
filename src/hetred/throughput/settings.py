"""Settings of ``hetred throughput``: ``[stages.throughput]`` in the config file
(docs/stages/throughput.md). Defaults are Karl's (karlspipe hdr2.1 tpfits/rallcal, rsetstar_w,
cal_script/rspstar3, progs/fitradecsp.f, mkrsprun.f, combsed.f, fitpoly.f) unless said otherwise.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hetred.config import parse_stage_table
from hetred.errors import HetredError
from hetred.throughput.psf import API_ADR_OFFSET, BETA, KARL_ADR_WAVE

STAGE = "throughput"


@dataclass(frozen=True)
class ThroughputSettings:
    """Parameters of the star extraction, SED fits and response curve of a shot."""

    mag_limit: float = 22.5          #: rsetstar_w: catalogue stars with g < this
    beta: float = BETA               #: Moffat index of the star model (fitradecsp 3.9)
    fit_radius: float = 4.0          #: arcsec: fibers used for position and FWHM (rsp3fc "4")
    extract_radius: float = 3.0      #: arcsec: fibers used for the spectrum (mkrsprun "3")
    band: tuple[float, ...] = (4500.0, 4600.0)   #: Å: band of the position/FWHM fits (4550 +- 50)
    fwhm_start: float = 1.8          #: arcsec: FWHM of the first position raster (Karl: fwhm.use or 1.55)
    raster_steps: tuple[float, ...] = (0.2, 0.05)   #: arcsec: rspstar3's two passes
    raster_n: int = 9                #: positions per side of each raster (9 x 9)
    #: hetred's: the position is the minimum of a quadratic through the chi^2 of the 3 x 3 raster
    #: points around the best (Karl: the best raster point, i.e. 0.05" steps)
    raster_refine: bool = True
    fwhm_grid: tuple[float, ...] = (1.2, 3.2, 100)  #: fitradecsp mode 108: first, last, count
    fwhm_default: float = 1.8        #: mkrsprun: FWHM used when no star gives one
    fwhm_min_amp: float = 10.0       #: mkrsprun: a star's FWHM counts when its amplitude > this
    fwhm_min_snr: float = 10.0       #: ... and its amplitude S/N >= this (hetred's; Karl: chi2 > 0.1)
    #: hetred's: a star whose catalogue neighbours add more than this fraction of its light within
    #: fit_radius is not used (shot.flag_blends); 0 = off (Karl keeps every star)
    blend_max_light: float = 0.02
    min_fibers: int = 10             #: rgettp: stars need more fibers than this with data
    adr_direction: str = "parangle"  #: "parangle" (hetdex_api, Remedy) or "structaz" (fitradecsp)
    adr_wave: tuple[float, ...] = KARL_ADR_WAVE      #: Å
    #: arcsec at adr_wave: hetdex_api's get_ADR table (Karl's fitradecsp: -0.74, -0.40, 0.0, 0.08, 0.20)
    adr_offset: tuple[float, ...] = API_ADR_OFFSET
    #: hetred's: Å where the ADR offset is taken as 0, i.e. the wavelength of the positions (the
    #: catalogue's: ~4700 Å for SDSS g); Karl's table is 0 at 4500 Å
    adr_ref_wave: float = 4700.0
    ebv: float = 0.02                #: E(B-V) of the SED fits (rgettp3 --ebv 0.02)
    g_convention: str = "observed"   #: "observed" or "stellarsedfits" (sedfit.py)
    sigcut: float = 0.2              #: rgettp0b "0.2 0.02": combsed's scale cut ...
    rmscut: float = 0.02             #: ... and rms cut
    reference: str = "robin"         #: combsed's reference shape (goodsed.dat substitute): "robin"
    fallback: str = "month-median"   #: without accepted stars: the month's median curve ("none": fail)
    qa: bool = True                  #: write the QA PNG

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> ThroughputSettings:
        """Settings from a ``[stages.throughput]`` table; unknown keys and bad values are errors."""
        s = cls(**parse_stage_table(cls, values, "stages.throughput"))
        bad = []
        if s.adr_direction not in ("parangle", "structaz"):
            bad.append("adr_direction must be parangle or structaz")
        if s.g_convention not in ("observed", "stellarsedfits"):
            bad.append("g_convention must be observed or stellarsedfits")
        if s.reference != "robin":
            bad.append("reference must be robin")
        if s.fallback not in ("month-median", "none"):
            bad.append("fallback must be month-median or none")
        if len(s.band) != 2 or s.band[0] >= s.band[1] or len(s.raster_steps) < 1 or s.raster_n < 3:
            bad.append("band needs 2 increasing values, raster_steps at least one, raster_n >= 3")
        if len(s.fwhm_grid) != 3 or s.fwhm_grid[0] >= s.fwhm_grid[1] or s.fwhm_grid[2] < 2:
            bad.append("fwhm_grid = [first, last, count]")
        if len(s.adr_wave) != len(s.adr_offset) or len(s.adr_wave) < 2:
            bad.append("adr_wave and adr_offset need the same length (>= 2)")
        if s.fit_radius <= 0 or s.extract_radius <= 0 or s.beta <= 1:
            bad.append("fit_radius, extract_radius > 0 and beta > 1")
        if bad:
            raise HetredError("[stages.throughput]: " + "; ".join(bad))
        return s
