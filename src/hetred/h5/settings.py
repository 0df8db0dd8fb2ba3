"""Settings of ``hetred h5``: ``[stages.h5]`` in the config file (docs/stages/h5.md)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tables as tb

from hetred.config import parse_stage_table
from hetred.errors import HetredError
from hetred.h5.schema import SCHEMAS

STAGE_SHOT = "h5-shot"
STAGE_SURVEY = "h5-survey"
STAGE_FIBERINDEX = "h5-fiberindex"
STAGE_DETECT = "h5-detect"
STAGE_DETECT_MERGE = "h5-detect-merge"
COMPRESS = ("auto", "zlib", "none")
#: the tables ``compress = "auto"`` leaves unfiltered: noise-dominated float32 rows where zlib
#: saves 14 % (Images) and 22 % (Fibers) at ~0.5 s of CPU per amp each (docs/stages/h5.md)
BIG_TABLES = ("Fibers", "Images")


@dataclass(frozen=True)
class H5Settings:
    """Settings of the HDF5 packaging (every key may be set in ``[stages.h5]``)."""

    #: column names and tables: "0.8.7" (what the newest hetdex_api release reads) or "head"
    schema: str = "0.8.7"
    #: "auto": zlib(1) + shuffle on every table but the shot's Fibers and Images; "zlib": on every
    #: table; "none": no filters (h5tools' layout)
    compress: str = "auto"
    #: the release name in the survey, fiber-index and detect file names (hetdex_api's HDRconfig
    #: looks for survey_hdr2.1.h5, fiber_index_hdr2.1.h5, detect_hdr2.1.h5)
    release: str = "hdr2.1"
    #: the fiber mask's file name (hetdex_api 0.8.7 opens survey/fiber_mask_2.1.3.h5 for hdr2.1)
    mask_file: str = "fiber_mask_2.1.3.h5"
    #: the first detectid of the release (h5tools HDR2.1: 2,100,000,000)
    detectid_base: int = 2_100_000_000
    #: ingestion cuts of create_detect_hdf5.py (HDR2.1): sn > sn_min, linewidth > linewidth_min,
    #: chi2fib < chi2fib_max
    sn_min: float = 4.5
    linewidth_min: float = 1.7
    chi2fib_max: float = 5.0
    #: wavelength (Å) of the survey's flux limit fluxlimit_4540 (flux_limits_all.txt)
    flim_wave: float = 4540.0
    #: aperture (arcsec) and Moffat beta of the PSF-weighted flux limit
    flim_radius: float = 3.5
    flim_beta: float = 3.5
    #: FWHM (arcsec) for the flux limit when the shot has none
    flim_fwhm: float = 1.8
    #: hetred spec2d: cut-outs of spec2d_width CCD columns x spec2d_height rows (get_spec2D -dx -dy)
    spec2d_width: int = 100
    spec2d_height: int = 9

    def __post_init__(self) -> None:
        if self.schema not in SCHEMAS:
            raise HetredError(f"[stages.h5]: schema = {self.schema!r}: choose {' or '.join(SCHEMAS)}")
        if self.compress not in COMPRESS:
            raise HetredError(f"[stages.h5]: compress = {self.compress!r}: choose {', '.join(COMPRESS)}")
        if self.detectid_base < 0:
            raise HetredError("[stages.h5]: detectid_base must be >= 0")
        if not (1 <= self.spec2d_width <= 1032 and 1 <= self.spec2d_height <= 1032):
            raise HetredError("[stages.h5]: spec2d_width and spec2d_height must be 1-1032 pixels")
        if not self.mask_file or "/" in self.mask_file:
            raise HetredError(f"[stages.h5]: mask_file = {self.mask_file!r} must be a plain file name")
        if not self.release or "/" in self.release:
            raise HetredError(f"[stages.h5]: release = {self.release!r} must be a plain name like hdr2.1")

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None, **override: Any) -> H5Settings:
        kw = parse_stage_table(cls, dict(values or {}), "stages.h5")
        kw.update({k: v for k, v in override.items() if v is not None})
        return cls(**kw)

    def filters(self, table: str = "") -> tb.Filters | None:
        """The PyTables filters of a table (``table``: its node name)."""
        if self.compress == "none" or (self.compress == "auto" and table in BIG_TABLES):
            return None
        return tb.Filters(complevel=1, complib="zlib", shuffle=True)
