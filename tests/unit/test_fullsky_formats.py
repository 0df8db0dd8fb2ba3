"""vred3's text outputs (hetred.fullsky.formats): amp.dat in FORMAT 1201, sky.dat, ds9.reg."""
from __future__ import annotations

import numpy as np
import pytest

from hetred.fullsky import formats as F
from hetred.fullsky.settings import FullskySettings
from hetred.fullsky.vred3 import AmpResult
from hetred.io.ampdat import parse_amp_dat
from hetred.virus.ids import multiframe

# A FORMAT 1201 row written by hand, column by column: (a14,1x,f6.3,1x,i3,4(1x,f7.2),1x,i4)
KARL = "008_093_054_LL  1.000   1    0.02   16.04   -0.12    0.08    0"


def test_amp_row_is_format_1201():
    row = F.amp_row("008_093_054_LL", 1.0, 1, 0.02, 16.04, -0.12, 0.08e-3, 0)
    assert row == KARL and len(row) == 62
    assert F.amp_row("008_093_054_LU", 1.001, 2, -0.06, 16.13, 0.12, -0.35e-3, 3)[15:] == \
        " 1.001   2   -0.06   16.13    0.12   -0.35    3"
    # Fortran: a number too wide for its field is asterisks; the clamped extremes still fit
    assert F.amp_row("x", 123.4, 1234, -999.0, 999.0, 0.0, 0.0, 12345).split() == \
        ["x", "******", "***", "-999.00", "999.00", "0.00", "0.00", "****"]


def test_header_is_vred3s_a45():
    assert F.AMP_HEADER == "Spc_slt_iid_am Factor N_c Avg Scale W0 W1 Nlo" and len(F.AMP_HEADER) == 45
    text = F.format_amp_dat([AmpResult("320_053_020_LL", 0.98, 3, 0.1, 12.3, 0.25, 0.1e-3, 1)])
    assert text.splitlines()[0] == F.AMP_HEADER


def test_parse_back_and_flagged_rows():
    rows = [AmpResult("320_053_020_LL", 0.987, 3, -0.04, 12.31, 0.25, 0.12e-3, 1),
            AmpResult("320_053_020_LU", why="no multi file")]
    got = parse_amp_dat(F.format_amp_dat(rows))
    assert [r.name for r in got] == ["320_053_020_LL", "320_053_020_LU"]
    assert got[0].factor == 0.987 and got[0].ncont == 3 and got[0].w1 == 0.12 and got[0].nlow == 1
    assert got[1].factor == 0.0 and got[1].scale == 0.0 and got[1].nlow == -1
    assert got[0].ifu == "320_053_020" and got[0].amp == "LL"


def test_a_line_read_as_hetdex_api_amp_stats_does(tmp_path):
    """hetdex_api h5tools/amp_stats.py (stats_save_as, oldstyle) keys an amp by ``multiframe[6:]``
    and carries Karl's columns Factor N_c Avg Scale W0 W1 n_lo in this order after it; astropy's
    ascii reader takes the header line for the names."""
    from astropy.table import Table

    mf = multiframe(320, 53, "020", "RU")
    row = F.amp_row(mf[6:], 1.012, 4, 0.03, 14.21, -0.08, 0.16e-3, 2)
    dvse = "d20180110s007exp01"
    fields = f"{dvse}\t{row.split()[0]}\t" + "\t".join(row.split()[1:])       # amp_stats' old-style line
    name = fields.split("\t")[1]
    vals = dict(zip(["Factor", "N_c", "Avg", "Scale", "W0", "W1", "n_lo"], fields.split("\t")[2:]))
    assert "multi_" + name == mf
    assert float(vals["Factor"]) == 1.012 and int(vals["N_c"]) == 4 and float(vals["W1"]) == 0.16
    assert int(vals["n_lo"]) == 2
    p = tmp_path / "d20180110s007exp01amp.dat"
    p.write_text(F.AMP_HEADER + "\n" + row + "\n")
    t = Table.read(p, format="ascii")
    assert t.colnames == ["Spc_slt_iid_am", "Factor", "N_c", "Avg", "Scale", "W0", "W1", "Nlo"]
    assert t["Spc_slt_iid_am"][0] == mf[6:] and t["Scale"][0] == pytest.approx(14.21)


def test_sky_dat_reads_with_loadtxt(tmp_path):
    w = 3470.0 + np.arange(5) * 0.37
    v = np.array([101.5, 99.25, 1e-3, -2.0, 1234.5678])
    p = tmp_path / "sky.dat"
    p.write_text(F.format_sky_dat(w, v))
    back = np.loadtxt(p)                         # hetdex_api create_fullskymodel_hdf5
    np.testing.assert_allclose(back[:, 0], w, atol=1e-6)
    np.testing.assert_allclose(back[:, 1], v, atol=1e-6)


def test_ds9_region_file_reads_with_astropy_regions(tmp_path):
    regions = pytest.importorskip("regions")
    p = tmp_path / "ds9.reg"
    p.write_text(F.format_ds9(["320_053_020_LL", "320_053_020_LU"], [False, True]))
    got = regions.Regions.read(p, format="ds9")
    assert len(got) == 2
    assert [r.text for r in got] == ["320_053_020_LL", "320_053_020_LU"]
    assert (got[0].center.x, got[0].center.y) == (9.0, 55.0)        # ds9 (10, 56), 1-based
    assert got[1].center.y == 167.0 and got[1].visual["color"] == "red"


def test_red_rules():
    st = FullskySettings()
    assert not F.is_red(1.0, 15.0, 0.5, st)
    assert F.is_red(0.69, 15.0, 0.0, st) and F.is_red(1.11, 15.0, 0.0, st)
    assert F.is_red(1.0, 21.0, 0.0, st) and F.is_red(1.0, 0.5, 0.0, st)
    assert F.is_red(1.0, 17.0, -0.95, st) and not F.is_red(1.0, 15.0, -0.95, st)
