"""Settings and constants of the bias stage (step 4): ``[stages.bias]`` in the config file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "bias"


#: improcb.f: the central region whose biweight gives a frame's level and scale (1-based, inclusive)
CENTER_COLS = (300, 700)


CENTER_ROWS = (300, 700)


#: per-frame verdicts, in the order they are tested
VERDICTS = ("used", "unreadable", "saturated", "too_quiet", "too_noisy")


@dataclass(frozen=True)
class BiasSettings:
    """Settings of the bias stage; ``[stages.bias]`` in the config file sets any of them."""

    scale_lo: float = 2.0        #: rpbias1 scale_lo: keep a frame if scale > scale_lo (ADU)
    scale_hi: float = 10.0       #: rpbias1 scale_hi: ... and scale < scale_hi (ADU)
    box_cols: int = 1            #: imbox2 box size x (columns), odd
    box_rows: int = 7            #: imbox2 box size y (rows), odd
    box_radius: float = 0.0      #: imbox2 inner radius left out (0: only the centre pixel)
    trap_sigma: float = 10.0     #: imgetctrap tcut: a hit is > trap_sigma biweight sigma high
    trap_half: int = 9           #: imgetctrap ihalf: +-9 columns around the pixel
    trap_min_hits: int = 50      #: imgetctrap ntrap: a column with more hits is a trap
    trap_margin: int = 10        #: masked from the lowest hit row minus this ...
    trap_floor_row: int = 100    #: ... or from row 1 when that is below this row
    trap_edge: int = 10          #: imgetctrap istart/jstart: rows and columns from 10 (1-based)
    trap_screen: float = 2.0     #: skip the iteration below median + trap_screen * MAD (0: never)
    band_mib: float = 64.0       #: memory for one band of all frames in the combine (MiB)
    tmpdir: str | None = None    #: where the per-unit frame stack file goes (None: system temp)
    qa: bool = True              #: write the QA PNG

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> BiasSettings:
        """Settings from a ``[stages.bias]`` table; unknown keys and bad values are errors."""
        out = parse_stage_table(cls, values, "stages.bias")
        s = cls(**out)
        if not 0 <= s.scale_lo < s.scale_hi:
            raise HetredError(f"[stages.bias]: need 0 <= scale_lo < scale_hi, "
                              f"got {s.scale_lo}, {s.scale_hi}")
        if s.box_rows < 1 or s.box_cols < 1 or s.box_rows % 2 == 0 or s.box_cols % 2 == 0:
            raise HetredError("[stages.bias]: box_rows and box_cols must be odd and >= 1")
        return s
