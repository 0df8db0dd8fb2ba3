"""Settings of ``hetred fullsky``: ``[stages.fullsky]`` in the config file (docs/stages/fullsky.md).

Every default is Karl's value in karlspipe hdr2.1 ``progs/vred3.f`` (line numbers there); the
names say what each one does. Columns and fibers are 1-based as in the Fortran.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "fullsky"


@dataclass(frozen=True)
class FullskySettings:
    """vred3's parameters (iuse = 1, the full-field sky) and hetred's switches."""

    #: points per run of the exposure's master sky (getmaster ... 1000: smooth3 takes ns + 1 points,
    #: i to i + ns, so neighbouring runs share one point) [vred3:99, 746-751]
    run_full: int = 1000
    #: the same for an amp's own master (getmaster ... 21) [vred3:134, 181]
    run_amp: int = 21
    #: a fiber is a continuum fiber when the biweight of its residual from the amp master exceeds
    #: continuum_sigma x (biweight scale of all the amp's residuals) / sqrt(continuum_pixels)
    #: [vred3:152-166: xcut = 7.0 * xs / sqrt(900.)]
    continuum_sigma: float = 7.0
    continuum_pixels: float = 900.0
    #: true (hetred's default): a fiber with fewer live pixels than continuum_pixels is held to
    #: sqrt(its own count) instead (the noise of its biweight); vred3's fixed sqrt(900) lets a fiber
    #: of a few live pixels (one whose fiber-to-fiber is just below ftf_min) pass on noise alone
    continuum_own_count: bool = True
    #: with at least this many continuum fibers the factor is set to 1 and no residual background
    #: is subtracted [vred3:192, 362]
    continuum_max: int = 40
    #: a factor at or below this is set to 1 [vred3:193]
    factor_min: float = 0.1
    #: the W0 grid: wt0 + [-w0_half, +w0_half] Angstrom in w0_steps steps (nwt=25, wtmin/wtmax=-1/+1)
    w0_half: float = 1.0
    w0_steps: int = 25
    #: the W1 grid: [-w1_half, +w1_half] per Angstrom in w1_steps steps (nwt2=11, wtmin2/wtmax2 = -/+0.4/1000)
    w1_half: float = 0.4e-3
    w1_steps: int = 11
    #: the shifted wavelength is lambda + W0 + W1 (w1_pivot - lambda) [vred3:210-211]
    w1_pivot: float = 4500.0
    #: the Hg 5461 line's window (exclusive) and its extra weight in the sum [vred3:217-220]
    hg_window: tuple[float, float] = (5455.0, 5472.0)
    hg_weight: float = 5.0
    #: W0 at an end of its grid: the grid is centred on it and searched again, at most this often [vred3:200, 229-238]
    max_recentre: int = 8
    #: the amp-master points of the W0/W1 sum. "all": vred3's, where a point moved beyond the exposure
    #: master's ends meets xlinint2's 0 and adds (y - 0)^2, which pulls the amps at the ends of the
    #: wavelength range by up to 0.2 Å (docs/stages/fullsky.md); "inside" (hetred's default): the points
    #: that stay within the exposure master at every grid point of the search (the same set for the
    #: whole grid)
    search_points: str = "inside"
    #: passes of the master and the W0/W1 search. 1: vred3's. 2 (hetred's default): the exposure master
    #: made again from every sample at its corrected wavelength (λ + W0 + W1 (pivot - λ)) divided by its
    #: amp's Factor, and every amp measured against it (the first master blends the amps' shifts)
    passes: int = 2
    #: false: the grid point (vred3); true (hetred's default): the minimum of the quadratic through the
    #: 3 x 3 sums around it (vred3's grid steps are 0.083 Å and 0.08e-3 per Å)
    refine: bool = True
    #: Angstrom: the exposure master as the W0/W1 search and Factor see it is a moving mean (wavelengths
    #: and values) over as many of its points as span this width (0: vred3's master). 0.5 (hetred's
    #: default; 9 points of the 312-amp master) averages the master's noise (0.4 % per point), which the
    #: search's piecewise-linear master carries into W0/W1, and stays far below the lines' width (LSF
    #: sigma ~2.3 Å); a master sparser than this (few amps) is used as it is
    search_smooth: float = 0.5
    #: false: the grid's (or the quadratic's) minimum (vred3); true (hetred's default): from there, the
    #: least-squares minimum of the same sum over (scale, W0, W1) by Gauss-Newton steps (master
    #: derivative by central differences of newton_step Å), kept only when it converges within
    #: newton_reach grid steps of the grid minimum
    newton: bool = True
    newton_step: float = 0.1
    newton_reach: float = 2.0
    #: Angstrom: the W0/W1 search leaves out the amp-master points within this distance of a hole in the
    #: amp's data, the columns where more than mask_fraction of its live fibers have no data inside their
    #: wavelength range (a bad column's pix_mask box; 0: vred3, every point). A sky line whose core or one
    #: wing is masked is placed by what is left of it, and on one wing the difference between the amp's
    #: line profile and the exposure master's (a blend of the amps' LSFs in runs of run_full points) reads
    #: as a shift: 0.2 Å rms at Hg 4358 (docs/stages/fullsky.md, "Why 053 LL reads low"). 8 Å covers the
    #: wings of a line (LSF sigma ~2.3 Å) whose centre lies next to the hole
    mask_guard: float = 8.0
    mask_fraction: float = 0.5
    #: residual background (getback, iback = 0): the non-continuum fibers within +-back_fibers (not the
    #: fiber itself), biweights over the columns between back_columns (1-based, inclusive, shared ends)
    #: placed at the segments' middles and interpolated linearly in column, flat beyond [vred3:445-516]
    back_fibers: int = 3
    back_columns: tuple[int, ...] = (100, 400, 700, 1000)
    #: Nlow: fibers whose biweight over nlow_columns (1-based, inclusive) of the subtracted spectrum,
    #: less the amp's, is below -nlow_sigma x the amp's biweight scale (with more than nlow_min_pixels
    #: pixels) [vred3:453-454, 544-568]
    nlow_columns: tuple[int, int] = (300, 800)
    nlow_sigma: float = 2.0
    nlow_min_pixels: int = 10
    #: pixels whose fiber-to-fiber is below ftf_min or whose amp-to-amp is below a2a_min are zeroed [vred3:84]
    ftf_min: float = 0.3
    a2a_min: float = 0.6
    #: readcal2: an amp-to-amp value below this is replaced by the previous one (1 for the first) [vred3:868]
    a2a_replace_below: float = 0.7
    #: Avg is clamped below, Scale above at +-999 [vred3:379-380]
    clamp: float = 999.0
    #: ds9 colour: red when Factor < factor_low or > factor_high, Scale > scale_high or < scale_low,
    #: or Scale > scale_w0 and |W0| > w0_flag [vred3:384-392]
    factor_low: float = 0.7
    factor_high: float = 1.1
    scale_low: float = 1.0
    scale_high: float = 20.0
    scale_w0: float = 16.0
    w0_flag: float = 0.9
    #: the output grid: wave0 + dwave i, i < nwave (getftf's waves) [vred3:585-587]
    wave0: float = 3470.0
    dwave: float = 2.0
    nwave: int = 1036
    #: residual maps of ``hetred resmap`` (res, month of the shot): s x (1 - res) as vred3 (readcal2);
    #: false or missing map: res = 0
    use_res_map: bool = True
    #: Karl zeroes an amp whose amp-to-amp file is missing; hetred's library holds one value per amp,
    #: "unset" when twical's a2a step did not measure it: true zeroes (flags) such amps as Karl does
    require_amp_to_amp: bool = True
    #: append the fullsky HDU to the shot's _cal.fits when every exposure of the shot is done (imaddsky)
    addsky: bool = True
    #: write the exposure's QA PNG
    qa: bool = True

    #: "hetred" (the defaults above) or "karl": vred3 in every respect (search_points "all", passes 1,
    #: refine false); keys given next to it override the profile
    profile: str = "hetred"

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> FullskySettings:
        """Settings from a ``[stages.fullsky]`` table; unknown keys and bad values are errors."""
        vals = dict(values or {})
        prof = str(vals.get("profile", "hetred"))
        if prof not in PROFILES:
            raise HetredError(f"[stages.fullsky]: profile must be one of {', '.join(PROFILES)}, got {prof!r}")
        vals = {**PROFILES[prof], **vals}
        s = cls(**parse_stage_table(cls, vals, "stages.fullsky"))
        bad = []
        if s.run_full < 2 or s.run_amp < 2:
            bad.append("run_full and run_amp >= 2")
        if s.w0_steps < 3 or s.w1_steps < 1 or s.w0_half <= 0 or s.w1_half < 0:
            bad.append("w0_steps >= 3, w1_steps >= 1, w0_half > 0, w1_half >= 0")
        if len(s.back_columns) < 2 or list(s.back_columns) != sorted(s.back_columns):
            bad.append("back_columns increasing, at least 2")
        if len(s.hg_window) != 2 or len(s.nlow_columns) != 2:
            bad.append("hg_window and nlow_columns: two values")
        if s.search_smooth < 0 or s.newton_step <= 0 or s.newton_reach <= 0:
            bad.append("search_smooth >= 0, newton_step > 0, newton_reach > 0")
        if s.mask_guard < 0 or not 0 < s.mask_fraction <= 1:
            bad.append("mask_guard >= 0, 0 < mask_fraction <= 1")
        if s.passes < 1:
            bad.append("passes >= 1")
        if s.search_points not in ("inside", "all"):
            bad.append("search_points 'inside' or 'all'")
        if s.nwave < 2 or s.dwave <= 0 or s.max_recentre < 1:
            bad.append("nwave >= 2, dwave > 0, max_recentre >= 1")
        if bad:
            raise HetredError("[stages.fullsky]: need " + "; ".join(bad))
        return s

    @property
    def grid(self):
        """The output wavelengths (nwave,) Angstrom."""
        import numpy as np

        return self.wave0 + self.dwave * np.arange(self.nwave)


#: named settings: ``profile = "karl"`` is vred3 exactly
PROFILES: dict[str, dict[str, Any]] = {
    "hetred": {},
    "karl": {"search_points": "all", "passes": 1, "refine": False, "search_smooth": 0.0, "newton": False,
             "continuum_own_count": False, "mask_guard": 0.0},
}
