"""Settings of the flat stage: ``[stages.flat]`` in the config file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hetred.config import parse_stage_table
from hetred.flat.defects import MaskSettings

STAGE = "flat"


F32 = np.float32


@dataclass(frozen=True)
class FlatSettings:
    """Settings of the flat stage; ``[stages.flat]`` in the config file sets any of them."""

    min_level: float = 0.0       #: drop frames whose median (ADU) is below this (rsetflat: 7000)
    kinds: str = "flt,twi"       #: frame types used
    rcut: float = 3.5            #: px: imar_flt's distance to the nearest trace
    smooth_cols: int = 41        #: columns of the running median of a fiber's spectrum ratio
    trend_cols: int = 101        #: columns of the local quadratic of a lamp-flat fiber's factor
    neighbours: int = 4          #: fibers on each side in the neighbour template
    max_shift: float = 0.5       #: px: larger trace shifts against the unit's first frame recalibrate
    band_mib: float = 64.0       #: memory for one band of all frames in the combine (MiB)
    tmpdir: str | None = None    #: where the ratio stack file goes (None: system temp)
    qa: bool = True              #: write the QA PNG
    mask_nsigma: float = 8.0     #: pixmask threshold in robust sigma ...
    mask_min_dev: float = 0.05   #: ... and at least this deviation
    mask_pad: int = 3            #: px padding of the mask boxes
    row_norm: int = 101          #: columns of the clipped running mean along each row divided out (0: off)
    row_clip: float = 0.05       #: pixels farther than this from the running mean are left out of it

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> "FlatSettings":
        return cls(**parse_stage_table(cls, values, "stages.flat"))

    @property
    def kind_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.kinds.split(",") if k.strip())

    def mask_settings(self) -> MaskSettings:
        return MaskSettings(nsigma=self.mask_nsigma, min_dev=self.mask_min_dev, pad=self.mask_pad)
