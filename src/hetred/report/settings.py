"""Settings of ``hetred report``: ``[stages.report]`` in the config file (docs/stages/report.md).

The ``*_range`` settings are the usual ranges of the numbers the night and shot pages show: a
number outside its range is marked (red, with the range in its tooltip). They are what the
HETDEX data usually give (reference: ../shared/reference/hetdex_numbers.md), not cuts: nothing
is rejected by them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE_DETECTIONS = "report-detections"
STAGE_MERGE = "report-merge"
STAGE_NIGHT = "report-night"
STAGE_SHOT = "report-shot"
INF = float("inf")


@dataclass(frozen=True)
class ReportSettings:
    """Settings of the reports (every key may be set in ``[stages.report]``)."""

    #: detection reports for the detections with S/N >= min_sn
    min_sn: float = 5.0
    #: also a PDF of each report (about 5x the time of the PNG)
    pdf: bool = False
    #: resolution of the report PNGs (a 12 x 7.2 inch figure: 960 x 576 pixels at 80)
    dpi: int = 80
    #: width (pixels) of the thumbnails the shot pages show
    thumb_width: int = 240
    #: at most this many thumbnails on a shot page (highest S/N first; the others in its table)
    thumbnails_max: int = 300
    #: the HDF5 release whose detect, shot and im2D files the reports read; unset: [stages.h5]
    #: release, else hdr2.1
    release: str | None = None
    #: usual ranges of the numbers on the pages (low, high)
    bias_level_range: tuple = (300.0, 3000.0)         #: overscan level, ADU
    bias_noise_range: tuple = (2.0, 10.0)             #: biweight scale of a bias frame, ADU
    #: between the month's twilights, median, px: the traces move by up to +-0.2 px from night to
    #: night (docs/simulator.md; hetred sci re-centres them per frame): a month gives ~0.1
    trace_scatter_range: tuple = (0.0, 0.2)
    wave_rms_range: tuple = (0.0, 0.3)                #: arc-line residuals, median, Å
    wave_scatter_range: tuple = (0.0, 0.2)            #: between twilights, median, Å
    ftf_scatter_range: tuple = (0.0, 0.02)            #: between twilights, median
    dead_fibers_range: tuple = (0.0, 3.0)             #: per amp
    a2a_range: tuple = (0.8, 1.2)                     #: amp-to-amp normalisation
    flat_sigma_range: tuple = (0.0, 0.03)             #: pixel-flat scatter
    fwhm_range: tuple = (1.0, 2.6)                    #: shot FWHM, arcsec
    response_range: tuple = (0.08, 0.25)              #: response_4540 (THROUGHPUT flag < 0.08)
    astrom_rms_range: tuple = (0.0, 0.5)              #: per exposure, arcsec
    astrom_offset_range: tuple = (0.0, 5.0)           #: fitted - header pointing, arcsec
    astrom_stars_range: tuple = (3.0, INF)            #: matched stars per exposure
    norm_range: tuple = (0.6, 1.4)                    #: norm.dat relative flux
    tp_stars_range: tuple = (3.0, INF)                #: throughput stars used
    factor_range: tuple = (0.7, 1.1)                  #: full-sky Factor (vred3's flag)

    def __post_init__(self) -> None:
        if self.min_sn < 0:
            raise HetredError("[stages.report]: min_sn must be >= 0")
        if not 20 <= self.dpi <= 400:
            raise HetredError("[stages.report]: dpi must be 20-400")
        if not 0 <= self.thumb_width <= 2000 or self.thumbnails_max < 0:
            raise HetredError("[stages.report]: thumb_width must be 0-2000 and thumbnails_max >= 0")
        if self.release is not None and (not self.release or "/" in self.release):
            raise HetredError(f"[stages.report]: release = {self.release!r} must be a plain name like hdr2.1")
        for f in fields(self):
            if f.name.endswith("_range"):
                r = getattr(self, f.name)
                if len(r) != 2 or not r[0] <= r[1]:
                    raise HetredError(f"[stages.report]: {f.name} must be [low, high] with low <= high")

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None, h5: Mapping[str, Any] | None = None,
                    **override: Any) -> ReportSettings:
        """From ``[stages.report]`` (``h5``: ``[stages.h5]``, for its release)."""
        kw = parse_stage_table(cls, dict(values or {}), "stages.report")
        kw.update({k: v for k, v in override.items() if v is not None})
        if kw.get("release") is None:
            kw["release"] = str((h5 or {}).get("release") or "hdr2.1")
        return cls(**kw)

    @property
    def release_name(self) -> str:
        return self.release or "hdr2.1"

    def range(self, name: str) -> tuple[float, float]:
        """The usual range of a number (``name`` without ``_range``)."""
        lo, hi = getattr(self, f"{name}_range")
        return float(lo), float(hi)
