"""Settings and constants of the bgmodel stage (step 5): ``[stages.bgmodel]`` in the config file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hetred.background.scattered import ScatterParams
from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "bgmodel"


F32 = np.float32


XNORM = 25.0                        #: improcn: frames are scaled so that their level is 25


CENTER = (300, 700)                 #: improcn: rows and columns of the level region (1-based)


RAWTYPE = {"sci": "sci", "bri": "sci", "twi": "twi"}


KINDS = tuple(RAWTYPE)


METHODS = ("model", "karl")         #: scattered-light model (default), Karl's imgetgap


@dataclass(frozen=True)
class BgSettings:
    """Settings of the bgmodel stage; ``[stages.bgmodel]`` in the config file sets any of them."""

    sci_lo: float = 0.2      #: rpsci0kg: $4 > 0.2 && $4 < xnorm (3)
    sci_hi: float = 3.0
    bri_lo: float = 2.0      #: rpsci1kg: $4 > xnl (2) && $4 < xnh (15)
    bri_hi: float = 15.0
    twi_lo: float = 100.0    #: rptwi0kg: $4 > 0.2 && $4 > xnorm (100); no upper limit
    band_mib: float = 64.0   #: memory for one band of all frames in the combine (MiB)
    tmpdir: str | None = None
    qa: bool = True
    method: str = "model"    #: "model" (scattered light + dark, hetred.background.scattered) or "karl"
    kernel_core: float = 4.0      #: model: scattered-light kernel 1/(1 + (|d|/core)^power), rows
    kernel_power: float = 1.0
    kernel_extent: float = 400.0  #: model: kernel is 0 beyond this many rows

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise HetredError(f"bgmodel method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.scatter_params().check()

    def scatter_params(self) -> ScatterParams:
        """The scattered-light model's parameters (method ``model``)."""
        return ScatterParams(kernel_core=self.kernel_core, kernel_power=self.kernel_power,
                             kernel_extent=self.kernel_extent)

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> BgSettings:
        """Settings from a ``[stages.bgmodel]`` table; unknown keys and bad values are errors."""
        out = parse_stage_table(cls, values, "stages.bgmodel")
        s = cls(**out)
        for k in KINDS:
            lo, hi = s.cut(k)
            if not lo >= 1.0 / XNORM or (hi is not None and not hi > lo):
                raise HetredError(f"[stages.bgmodel]: need 0.04 <= {k}_lo < {k}_hi, got {lo}, {hi}")
        return s

    def cut(self, kind: str) -> tuple[float, float | None]:
        """(lo, hi) of a kind: a frame is kept when lo < level < hi (hi None: no upper limit)."""
        if kind == "twi":
            return max(0.2, self.twi_lo), None
        return getattr(self, f"{kind}_lo"), getattr(self, f"{kind}_hi")

    def cut_text(self, kind: str) -> str:
        lo, hi = self.cut(kind)
        return f"level > {lo:g}" if hi is None else f"{lo:g} < level < {hi:g}"

    def passes(self, kind: str, level: float) -> bool:
        lo, hi = self.cut(kind)
        return bool(level > lo and (hi is None or level < hi))
