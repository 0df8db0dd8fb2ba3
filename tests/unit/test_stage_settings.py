"""Every stage's ``[stages.X]`` table goes through one parser (hetred.config.parse_stage_table)."""
from __future__ import annotations

import pytest

from hetred.background.settings import BgSettings
from hetred.bias.settings import BiasSettings
from hetred.errors import HetredError
from hetred.flat.settings import FlatSettings
from hetred.sci.settings import SciSettings


@pytest.mark.parametrize("cls,table", [(BiasSettings, "stages.bias"), (BgSettings, "stages.bgmodel"),
                                       (FlatSettings, "stages.flat"), (SciSettings, "stages.sci")])
def test_unknown_and_bad_values_are_one_line_errors(cls, table):
    with pytest.raises(HetredError, match=rf"\[{table}\]: unknown setting\(s\) nope \(known: "):
        cls.from_config({"nope": 1})
    with pytest.raises(HetredError, match=rf"\[{table}\]: qa = 1 is not a valid bool") if hasattr(cls, "qa") \
            else pytest.raises(HetredError):
        cls.from_config({"qa": 1} if hasattr(cls, "qa") else {"flat_min": "x"})
    assert cls.from_config(None) == cls()


def test_types_follow_the_defaults():
    f = FlatSettings.from_config({"kinds": "flt", "row_norm": 0, "min_level": 7000, "tmpdir": ""})
    assert (f.kinds, f.row_norm, f.min_level, f.tmpdir) == ("flt", 0, 7000.0, None)
    with pytest.raises(HetredError, match="row_norm = 1.5 is not a valid int"):
        FlatSettings.from_config({"row_norm": 1.5})
    assert BiasSettings.from_config({"box_rows": 5, "scale_lo": 1}).scale_lo == 1.0
