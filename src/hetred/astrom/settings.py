"""Settings of ``hetred astrom``: ``[stages.astrom]`` in the config file (docs/stages/astrom.md).

Defaults are Karl's production values (HETDEX/karlspipe hdr2.1/vdrp/vdrp.config, copied in
shared/data/real/astrometry/vdrp_20180611v017/config/vdrp_karl_production.config); the profile
``vdrp-test`` holds the values of vdrp's own test of shot 20180611 v017 (utest/test_astrometry.py),
which reproduce its expected outputs. ``profile = "vdrp-test"`` in the table (or ``--profile``)
starts from the profile; other keys of the table override it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "astrom"

#: Karl's production dither offsets (dx, dy) of exposures 1-3, arcsec (vdrp.config dither_offsets;
#: Remedy's too). vdrp's default and hetred.virus.coords.DITHERS (the simulator's) are (1.27, -/+0.73)
KARL_DITHERS = (0.0, 0.0, 1.215, -0.70, 1.215, 0.70)
#: Karl's trial rotation offsets (deg)
KARL_TRIALS = (1.35, 1.375, 1.4, 1.425, 1.45, 1.475, 1.5, 1.525, 1.55, 1.575, 1.6, 1.65, 1.7)


@dataclass(frozen=True)
class AstromSettings:
    """Parameters of the astrometry (Karl's values; see :data:`PROFILES` for vdrp's test)."""

    #: getoff2 matching radii, arcsec, in order (Karl 17, 8, 3; vdrp 11, 5, 3)
    radii: tuple[float, ...] = (17.0, 8.0, 3.0)
    #: nominal rotation offset added to PARANGLE, deg (vdrp add_radec_angoff)
    angoff: float = 1.45
    #: trial rotation offsets, deg (vdrp add_radec_angoff_trial)
    angoff_trials: tuple[float, ...] = KARL_TRIALS
    #: smoothing of the rms-vs-angle spline (vdrp optimal_ang_off_smoothing)
    smoothing: float = 0.05
    #: step (deg) of the grid the splines' minima are searched on (vdrp: 0.01, which quantises
    #: each exposure's optimum to 0.01 deg)
    angle_grid_step: float = 0.01
    #: hetred's second step: trials at vdrp's optimum plus these offsets (deg) and the vertex of a
    #: parabola through their rms² per exposure (rotation.refine_angle: the smoothing spline of rms
    #: is biased by ~0.008 deg when many IFUs make rms V-shaped); empty: vdrp's optimum
    angoff_refine: tuple[float, ...] = (-0.02, -0.01, 0.0, 0.01, 0.02)
    #: true: the final solution uses the optimal rotation (vdrp since 2019); false: the nominal one
    #: (the real 20180611v017 expected outputs)
    apply_optimal_angle: bool = True
    #: dither offsets (dx1, dy1, dx2, dy2, dx3, dy3), arcsec, IFU x/y (Karl's production)
    dithers: tuple[float, ...] = KARL_DITHERS
    #: registration stars: magmin < mag < magmax (vdrp mktot_magmin/magmax; Karl 0, 22)
    mktot_magmin: float = 0.0
    mktot_magmax: float = 22.0
    #: stars brighter than this in every exposure make norm.dat (Karl 18, vdrp 19)
    fluxnorm_mag_max: float = 18.0
    #: norm.dat from "fiber": each star's flux fitted through the fibers (hetred.astrom.fibermodel;
    #: free of the ~10 % fiber-sampling scatter of image photometry), or "psf": the PSF magnitudes
    #: of the images (vdrp's getNorm)
    norm_method: str = "fiber"
    #: Moffat beta of the seeing in the fiber model (hetdex_api Extract.moffat_psf: 3.5; Karl's
    #: fitradecsp uses 3.9)
    norm_beta: float = 3.5
    #: pixel -> IFU arcsec offset (xoff, yoff) added to the 1-based pixel x, y; empty: from the
    #: images (CRPIX1 - 1, CRPIX2 - 1 of the CoFeS header, the IFU position of pixel 1 minus 1),
    #: else (-26.15, -26.24) (hetred's and Panacea's 51 x 51 grid). vdrp's 2018 value: (-26.2, -26.7)
    pixel_offset: tuple[float, ...] = ()
    #: star finder: detection threshold in sky sigmas (vdrp daophot_sigma) and the FWHM (px) of
    #: its kernel (DAOPHOT daophot.opt FWHM)
    find_sigma: float = 2.0
    find_fwhm: float = 2.0
    #: least distance between two detections, px (photutils 3.0's default for a 2-px kernel)
    find_separation: float = 5.0
    #: PSF of the photometry, a Moffat: beta, FWHM along x and y (px) and DAOPHOT's cross term, by
    #: default the analytic part of vdrp's use.psf (MOFFAT25, HWHM 1.635 x 1.817 px, 0.0475);
    #: empty psf_fwhm: a circular FWHM fitted per exposure to its brightest stars
    psf_beta: float = 2.5
    psf_fwhm: tuple[float, ...] = (3.27, 3.634)
    psf_xy: float = 0.0475
    #: fitting radius (px) of the PSF photometry (vdrp allstar fi)
    fit_radius: float = 3.0
    #: the background is measured on the pixels farther than this (px) from every detection
    sky_clear: float = 6.0
    #: detections closer than this to the image edge (px) are dropped (0: keep all, as vdrp)
    edge: float = 0.0
    #: magnitude = zero point - 2.5 log10(PSF flux): 25.12 puts hetred's magnitudes on the scale of
    #: vdrp's DAOPHOT ALLSTAR (median difference -0.119 mag over 188 stars of the real shot
    #: 20180611v017 with zero point 25), on which Karl's magnitude cuts are set
    mag_zero_point: float = 25.12
    #: write the QA PNGs
    qa: bool = True

    @property
    def dither_pairs(self) -> tuple[tuple[float, float], ...]:
        d = self.dithers
        return tuple((d[2 * k], d[2 * k + 1]) for k in range(len(d) // 2))

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None, profile: str | None = None) -> AstromSettings:
        """Settings from a ``[stages.astrom]`` table (and a profile name, which wins over the
        table's ``profile`` key); unknown keys, profiles and bad values are one-line errors."""
        table = dict(values or {})
        name = profile or table.pop("profile", None)
        table.pop("profile", None)
        base = cls()
        if name:
            if name not in PROFILES:
                raise HetredError(f"[stages.astrom]: unknown profile {name!r} (known: {', '.join(PROFILES)})")
            base = replace(base, **PROFILES[name])
        out = parse_stage_table(cls, table, "stages.astrom")
        s = replace(base, **out)
        s.check()
        return s

    def check(self) -> None:
        """One-line errors for values that cannot work."""
        if not self.radii or any(r <= 0 for r in self.radii):
            raise HetredError("[stages.astrom]: radii must be positive arcsec, e.g. [17.0, 8.0, 3.0]")
        if len(self.dithers) < 2 or len(self.dithers) % 2:
            raise HetredError("[stages.astrom]: dithers must be pairs dx, dy (e.g. 0, 0, 1.215, -0.7, 1.215, 0.7)")
        if self.pixel_offset and len(self.pixel_offset) != 2:
            raise HetredError("[stages.astrom]: pixel_offset must be [xoff, yoff] or empty")
        if not 0 < self.angle_grid_step <= 0.05:
            raise HetredError("[stages.astrom]: angle_grid_step must be in (0, 0.05] deg")
        if self.smoothing < 0 or self.find_sigma <= 0 or self.fit_radius <= 0 or self.psf_beta <= 1:
            raise HetredError("[stages.astrom]: need smoothing >= 0, find_sigma > 0, fit_radius > 0, psf_beta > 1")
        if len(self.psf_fwhm) > 2 or any(v <= 0 for v in self.psf_fwhm) or self.find_fwhm <= 0 \
                or self.find_separation < 0:
            raise HetredError("[stages.astrom]: psf_fwhm must be [fwhm] or [fwhm_x, fwhm_y] px (> 0) or empty, "
                              "find_fwhm > 0")
        if self.norm_method not in ("fiber", "psf"):
            raise HetredError(f"[stages.astrom]: norm_method must be 'fiber' or 'psf', got {self.norm_method!r}")
        if self.sky_clear < 0:
            raise HetredError("[stages.astrom]: need sky_clear >= 0")

    def finder(self):
        """The star finder's settings (:class:`hetred.astrom.stars.FinderSettings`)."""
        from hetred.astrom.stars import FinderSettings

        return FinderSettings(find_sigma=self.find_sigma, find_fwhm=self.find_fwhm,
                              min_separation=self.find_separation, psf_beta=self.psf_beta,
                              psf_fwhm=tuple(self.psf_fwhm), psf_xy=self.psf_xy, fit_radius=self.fit_radius,
                              sky_clear=self.sky_clear, edge=self.edge,
                              mag_zero_point=self.mag_zero_point)

    def as_dict(self) -> dict[str, Any]:
        """Every value (provenance in the done marker)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: named sets of values; ``vdrp-test`` reproduces vdrp's test of 20180611 v017
PROFILES: dict[str, dict[str, Any]] = {
    "karl": {},
    "vdrp-test": {
        "radii": (11.0, 5.0, 3.0), "angoff": 1.45, "angoff_trials": (1.425, 1.45, 1.475, 1.5, 1.525),
        "apply_optimal_angle": False, "dithers": (0.0, 0.0, 1.27, -0.73, 1.27, 0.73),
        "mktot_magmax": 21.0, "fluxnorm_mag_max": 19.0, "pixel_offset": (-26.2, -26.7), "norm_method": "psf",
        "angle_grid_step": 0.01, "angoff_refine": (),
    },
}
