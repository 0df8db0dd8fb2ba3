"""Settings of ``hetred resmap``: ``[stages.resmap]`` in the config file (docs/stages/resmap.md).

Defaults are Karl's (karlspipe hdr2.1 progs/imcmbext.f, imcmbchi.f; line numbers there) and
hetred's streaming and flag choices.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hetred.config import parse_stage_table
from hetred.errors import HetredError

STAGE = "resmap"


@dataclass(frozen=True)
class ResmapSettings:
    """imcmbext/imcmbchi parameters and hetred's."""

    #: at most this many files per amp, the first in sorted order (imcmbext reads <= 1000 lines) [16]
    max_files: int = 1000
    #: a pixel's res/sres need more than use_fraction x the files (nuse = nint(0.2 n)) [26, 118]
    use_fraction: float = 0.2
    #: rres is normalised by its biweight over these columns and rows (1-based, inclusive) [134-135] ...
    norm_columns: tuple[int, int] = (10, 1021)
    norm_rows: tuple[int, int] = (2, 111)
    #: ... when more than this many of its values differ from 1 [142]
    norm_min: int = 1000
    #: chi2 values that round to this are left out (imcmbchi) [64]
    chi_missing: float = -666.0
    #: hetred: an amp whose ZNORM (the biweight over the pixels of the scatter of sky_subtracted / error1d
    #: over the files) is off 1 by more than this is flagged (header RRESFLAG, the unit's notes): its
    #: errors are wrong
    rres_flag: float = 0.1
    #: hetred: the memory of the pixel stacks (MB): rows are combined in blocks that fit, so the memory
    #: does not grow with the number of files
    memory_mb: float = 256.0
    #: hetred: fewer files than this make no map (the unit is empty; fullsky and detect then use Karl's
    #: fallbacks, res 0 and rres 1.04): a per-pixel biweight of N files has a noise of ~0.1 / sqrt(N) of the
    #: sky (the noise of one pixel of one fiber over the sky), which a map from a handful of files would add
    #: to every spectrum it corrects (Karl's maps: 176-537 shots, 3 files each)
    min_files: int = 30
    #: write the QA PNG of each amp
    qa: bool = True

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> ResmapSettings:
        """Settings from a ``[stages.resmap]`` table; unknown keys and bad values are errors."""
        s = cls(**parse_stage_table(cls, values, "stages.resmap"))
        if (s.max_files < 1 or not 0 <= s.use_fraction < 1 or s.memory_mb <= 0 or s.rres_flag <= 0
                or s.min_files < 3):
            raise HetredError("[stages.resmap]: need max_files >= 1, 0 <= use_fraction < 1, memory_mb > 0, "
                              "rres_flag > 0, min_files >= 3")
        if len(s.norm_columns) != 2 or len(s.norm_rows) != 2:
            raise HetredError("[stages.resmap]: norm_columns and norm_rows take two values")
        return s
