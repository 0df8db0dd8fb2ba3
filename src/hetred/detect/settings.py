"""Settings of ``hetred detect`` and ``hetred continuum``: ``[stages.detect]`` (docs/stages/detect.md).

Defaults are Karl's HDR2.1 production values (karlspipe hdr2.1/progs/fitradecsp.f, mode 104,
called by detect/mkdetrun with ``35 4505 50 ... 0.5 3 104``; shared/reference/detect_fullsky.md
§1). Two profiles:

* ``hdr2.1`` (the default): every quirk of §1.12 kept, so the search finds what Karl's did;
* ``fixed``: each quirk corrected (the ``QUIRKS`` table below says what and why).

``profile = "fixed"`` in the table (or ``--profile fixed``) starts from that profile; other keys
of the table override it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "detect"
STAGE_CONTINUUM = "continuum"
MODES = ("search", "negate", "inject")

#: fitradecsp fit2d: ADR offsets (arcsec) at 3500 ... 5500 Å (Karl); hetdex_api get_ADR has -0.08" at 4500 Å
KARL_ADR = (-0.74, -0.40, 0.0, 0.08, 0.20)
API_ADR = (-0.74, -0.40, -0.08, 0.08, 0.20)
ADR_WAVE = (3500.0, 4000.0, 4500.0, 5000.0, 5500.0)


@dataclass(frozen=True)
class DetectSettings:
    """Parameters of the line search (units: arcsec, Å, flux 1e-17 erg/s/cm²)."""

    # --- which fibers, which positions (rfindcen, getspec, mkraster) -------------------------
    radius: float = 35.0            #: fibers loaded within this of the IFU centre (rad0)
    center_radius: float = 5.0      #: IFU centre = biweight RA/Dec of the fibers within this of IFU (0, 0)
    fit_radius: float = 3.5         #: fibers summed at a position (radmaxfit)
    step: float = 0.5               #: raster step around every fiber, pass 1
    nstep: int = 3                  #: raster points per axis, pass 1
    refine_step: float = 0.15       #: raster step around each candidate, pass 2
    refine_nstep: int = 5
    # --- the spectral search (fitspec) --------------------------------------------------------
    window_spacing: float = 8.0     #: Å between window centres (nint(2070/8)+1 = 260 windows)
    window_half: float = 50.0       #: each fit uses the pixels within this of its centre
    max_shift: float = 20.0         #: |line - window centre| <= this
    edge_margin: float = 6.0        #: line >= this from the window's first/last pixel
    sigma_search: float = 3.0       #: Gaussian sigma (Å), fixed in the search
    sigma_fix: float = 2.5          #: start of the final fits A (fixed) and B (free)
    sigma_mc: float = 3.0           #: start of the Monte-Carlo fits (free)
    scan_step: float = 1.0          #: Å, line-centre grid of the profile-likelihood scan (refined by a parabola)
    sncut_fit: float = 4.0          #: a window's fit is kept with S/N >= this (sncut)
    sncut_hi: float = 900.0
    sncut: float = 4.5              #: candidates for pass 2 and the final list (sncut0)
    sigcut: float = 1.5             #: pass-2 candidates need sigma > this (sigcut0)
    chicut: float = 5.0             #: chi^2 / n of a window fit <= this
    con_max: float = 1000.0         #: continuum of a window fit <= this
    sigma_max: float = 50.0
    merge_radius: float = 3.0       #: getbestp: suppress within this AND merge_wave (rd)
    merge_wave: float = 4.0         #: also getbestw's per-position wavelength merge (wd)
    match_radius: float = 3.5       #: getmatch
    match_wave: float = 2.5
    max_candidates: int = 1000      #: pass-2 candidates at most
    max_fits: int = 350000          #: stored window fits at most ("Hit nt max")
    # --- final measurement ---------------------------------------------------------------------
    mc: int = 100                   #: Monte-Carlo realisations (the first is the data)
    rng: str = "karl"               #: karl: NR ran1/gasdev with idum=-1 reset per fit; numpy: seeded per unit
    seed: int = 0                   #: numpy generator seed (rng = "numpy"), recorded in the done marker
    mc_columns: int = 27            #: 27 (HDR2.1 .mc) or 33 (with Karl's later columns 28-33)
    write_res: bool = False         #: also write the .res list of pass-2 maxima (format 1101)
    # --- PSF and ADR (fit2d, adcor) --------------------------------------------------------------
    moffat_beta: float = 3.9
    fiber_radius: float = 0.75
    fwhm: float = 0.0               #: arcsec at 4550 Å; 0: fwhm.out of the throughput stage, else fwhm_default
    fwhm_default: float = 1.55      #: Karl's getfwhm default
    adr_offset: tuple[float, ...] = KARL_ADR
    adr_direction: str = "structaz"  #: structaz: (sin az, cos az) of STRUCTAZ (Karl); parangle: IFU x on the sky
    structaz_default: float = 150.0  #: STRUCTAZ < -1000 or missing
    # --- spectra and the error model (getspec2) ------------------------------------------------
    read_noise: float = 3.0
    sky_err: float = 0.03
    sky_err_max: float = 0.06
    ftf_min: float = 0.1
    amp_chi2_min: float = 0.15      #: an amp whose chi^2 biweight is <= this is zeroed
    rres_default: float = 1.04      #: error-ratio map missing (Karl: 1.04, which inflates errors by 23.5 %)
    exptime: float = 360.0          #: s, Karl's flux conversion
    area: float = 5.0e5             #: cm^2
    per_2aa: bool = True            #: counts per 2 Å (hetred's throughput is per 2 Å bin; Karl's per native pixel)
    allow_no_norm: bool = False     #: a missing norm.dat means 1, 1, 1 (Karl's program stops)
    flag_wave: float = 4505.0       #: fiber flag: biweight of the counts in flag_wave +- flag_window is 0
    flag_window: float = 3.0        #: pass 1 (Karl's literal 3); pass 2 and the final fits use window_half
    # --- the quirks (hdr2.1 keeps them; fixed corrects them) ----------------------------------
    adr_weight: str = "divide"      #: divide: w = g / f / G (HDR2.1); multiply: w = g f / G
    merge_cos: str = "unsquared"    #: distances cos(dec) dRA^2 + dDec^2 (unsquared) or (cos dRA)^2 + dDec^2
    con_start: str = "lowest12"     #: LM start of the continuum: biweight of the 12 lowest values, or of all
    amp_start: str = "stale"        #: LM start amplitude from the previous fit's data (stale) or this one's
    stale_fitb: bool = True         #: a failed fit B writes the previous fit's sigma, chi^2
    fill_masked: bool = True        #: sclean fills masked pixels (x4 errors); false: they are left out
    frat: str = "karl"              #: karl: residual rms / mean error; corrected: against the interpolated noise
    #: the line fit's stop: a successful step with a relative chi^2 change below this (mrqmin in
    #: fitherms: 1e-3, which stops before the minimum; the fixed profile converges)
    fit_tol: float = 1e-3
    az_index: str = "compressed"    #: adcor takes STRUCTAZ by the compressed fiber index (compressed) or its own
    orphan_blocks: bool = True      #: .list/.spec of a detection whose final fit failed are written
    errors: str = "karl"            #: karl: fitradecsp's error model; error1d: the multi file's error1d
    # --- continuum sources (step 15) -----------------------------------------------------------
    cont_cut: float = 50.0          #: e- per column, biweight of native columns 100-200 or 800-900 of exp01
    cont_merge: float = 6.5         #: matchradec2 radius
    cont_radius: float = 5.0        #: fibers loaded around a continuum source
    cont_fit_radius: float = 7.0    #: fibers in the PSF position fit (mode 107)
    cont_step: float = 0.15
    cont_nstep: int = 19
    cont_dedupe: float = 4.0        #: findmatch radius

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None, profile: str | None = None) -> DetectSettings:
        """Settings from a ``[stages.detect]`` table (and a profile, which wins over the table's
        ``profile`` key); unknown keys, profiles and bad values are one-line errors."""
        table = dict(values or {})
        name = profile or table.pop("profile", None)
        table.pop("profile", None)
        base = cls()
        if name:
            if name not in PROFILES:
                raise HetredError(f"[stages.detect]: unknown profile {name!r} (known: {', '.join(PROFILES)})")
            base = replace(base, **PROFILES[name])
        s = replace(base, **parse_stage_table(cls, table, "stages.detect"))
        s.check()
        return s

    def check(self) -> None:
        """One-line errors for values that cannot work."""
        def bad(msg: str) -> None:
            raise HetredError(f"[stages.detect]: {msg}")

        for name in ("radius", "fit_radius", "step", "refine_step", "window_spacing", "window_half",
                     "sigma_search", "sigma_fix", "sigma_mc", "scan_step", "moffat_beta", "fiber_radius",
                     "exptime", "area", "fwhm_default", "fit_tol"):
            if getattr(self, name) <= 0:
                bad(f"{name} must be > 0")
        if self.moffat_beta <= 1:
            bad("moffat_beta must be > 1")
        if self.nstep < 1 or self.refine_nstep < 1 or self.mc < 1:
            bad("nstep, refine_nstep and mc must be >= 1")
        if len(self.adr_offset) != len(ADR_WAVE):
            bad(f"adr_offset needs {len(ADR_WAVE)} values (arcsec at {', '.join(f'{w:.0f}' for w in ADR_WAVE)} Å)")
        if self.scan_step > self.sigma_search:
            bad("scan_step must not exceed sigma_search")
        choices = {"rng": ("karl", "numpy"), "adr_direction": ("structaz", "parangle"),
                   "adr_weight": ("divide", "multiply"), "merge_cos": ("unsquared", "squared"),
                   "con_start": ("lowest12", "all"), "amp_start": ("stale", "current"),
                   "frat": ("karl", "corrected"), "az_index": ("compressed", "own"), "errors": ("karl", "error1d")}
        for name, ok in choices.items():
            if getattr(self, name) not in ok:
                bad(f"{name} must be one of {', '.join(ok)}, got {getattr(self, name)!r}")
        if self.mc_columns not in (27, 33):
            bad("mc_columns must be 27 or 33")
        if self.fwhm < 0:
            bad("fwhm must be >= 0 (0: from the throughput stage)")

    @property
    def profile_name(self) -> str:
        """``fixed`` when every quirk setting has its fixed value, ``hdr2.1`` when every one has
        Karl's, else ``custom``."""
        quirks = {k: getattr(self, k) for k in PROFILES["fixed"]}
        if quirks == PROFILES["fixed"]:
            return "fixed"
        if quirks == {k: getattr(DetectSettings, k) for k in PROFILES["fixed"]}:
            return "hdr2.1"
        return "custom"


#: profile -> values replacing the defaults (hdr2.1 = the defaults)
PROFILES: dict[str, dict[str, Any]] = {
    "hdr2.1": {},
    "fixed": {
        "adr_weight": "multiply",
        "merge_cos": "squared",
        "con_start": "all",
        "amp_start": "current",
        "stale_fitb": False,
        "fill_masked": False,
        "frat": "corrected",
        "fit_tol": 1e-7,
        "az_index": "own",
        "orphan_blocks": False,
        "errors": "error1d",
        "flag_window": 50.0,
        "rng": "numpy",
        "rres_default": 1.0,
        "allow_no_norm": True,
        "adr_direction": "parangle",
        "adr_offset": API_ADR,
    },
}

#: every quirk the fixed profile changes: (setting, Karl's behaviour, the fix)
QUIRKS: tuple[tuple[str, str, str], ...] = (
    ("adr_weight", "sumspec weights w = g / f / G divide by the ADR factor f (HDR2.1; Karl's later code marks "
     "it 'old one')", "w = g f / G: the weights follow the light"),
    ("merge_cos", "getbestp/getmatch distances cos(dec) dRA^2 + dDec^2 (cos not squared): merge regions "
     "stretched by 1/sqrt(cos dec) in RA", "(cos dec dRA)^2 + dDec^2"),
    ("con_start", "LM continuum start: biweight of the 12 lowest window values", "biweight of all"),
    ("amp_start", "LM amplitude start from ymax of the previous fit's data (a stale array)",
     "ymax of this window"),
    ("stale_fitb", "a failed fit B writes the previous fit's sigma and chi^2 into .mc 17-18", "0.00"),
    ("fill_masked", "sclean fills masked pixels with the mean of +-5 good ones and 4x the error",
     "masked pixels are left out of the sums"),
    ("flag_window", "fiber flag from the biweight of 4505 +- 3 Å in pass 1 (+-50 Å later)", "+-50 Å always"),
    ("frat", "Monte-Carlo noise = errors x residual rms / mean error, the rms lowered by the correlation "
     "that linear interpolation onto the 2-Å grid puts between pixels (MC errors ~15 % low)",
     "the rms compared with the noise expected after interpolation, and made unbiased for the fit's free "
     "parameters (x sqrt(n / (n - 4)), +4 % over a 100-Å window)"),
    ("fit_tol", "the LM line fit stops at the first successful step whose relative chi^2 change is < 1e-3: "
     "short of the minimum (preset of 6 x 300 lines, seed 5, ideal S/N > 10: median |dlambda| 0.3025 A, flux "
     "bias +1.89 %)", "1e-7: converged (0.2989 A, +1.66 %; +15 % CPU in the line fits)"),
    ("az_index", "adcor takes STRUCTAZ by the compressed fiber index (all fibers get exposure 1's)",
     "each fiber its own exposure's"),
    ("rng", "NR ran1/gasdev reset (idum = -1) for every fit: the same noise sequence for every detection",
     "one NumPy generator per unit, seeded (recorded in the done marker)"),
    ("orphan_blocks", "a detection whose final fit fails still gets .list rows and a .spec block", "neither"),
    ("errors", "fitradecsp's own error model: sky + local source + 3 rn^2 + (3-6 % of it)^2, x the error-ratio "
     "map (rres); its 3 rn^2 (27 e-^2) is a third of the read noise of an optimal extraction across the fiber "
     "profile (~70 e-^2), so without rres maps the blue (read-noise dominated) errors are too small",
     "the multi file's error1d (hetred sci's propagated error), interpolated in variance"),
    ("rres_default", "no error-ratio map: 1.04, which multiplies every error by 1.235", "1.0"),
    ("allow_no_norm", "no norm.dat: the program stops", "1, 1, 1 with a logged warning"),
    ("adr_direction", "ADR along (sin az, cos az) of the multi header's STRUCTAZ, Karl's table (0 at 4500 Å)",
     "along the IFU x axis on the sky (the PA of radec2_final.dat) with hetdex_api's table"),
)
