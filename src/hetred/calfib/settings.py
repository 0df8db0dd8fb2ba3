"""Settings of ``hetred calfib``: ``[stages.calfib]`` in the config file (docs/stages/calfib.md)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "calfib"


@dataclass(frozen=True)
class CalfibSettings:
    """Parameters of the calibrated fibers."""

    #: "propagated" (the rectified spectra's 1-sigma, hetred's default) or "karl" (fitradecsp's
    #: ad-hoc model from the sky and the local counts, calibrate.karl_error)
    error_model: str = "propagated"
    n_exposures: int = 3             #: row blocks of the file (Karl: 3 x 448 = 1344 rows)
    read_noise: float = 3.0          #: e-, the "karl" model's read noise (Karl's 3)
    error_frac: float = 0.03         #: the "karl" model's fraction of the sky + source counts

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> CalfibSettings:
        """Settings from a ``[stages.calfib]`` table; unknown keys and bad values are errors."""
        s = cls(**parse_stage_table(cls, values, "stages.calfib"))
        if s.error_model not in ("propagated", "karl") or s.n_exposures < 1:
            raise HetredError("[stages.calfib]: error_model must be propagated or karl, n_exposures >= 1")
        return s
