"""The .mc/.list/.spec writers: Karl's Fortran formats to the column, read back exactly as
hetdex_api's h5tools/create_detect_hdf5.py reads them (its hdr2.1 branch: 27 .mc names, .spec and
.list through ``ascii.no_header``; its master: 33 .mc names, .spec through ``np.loadtxt`` with 11
names), and the ``.list`` col16 / ``.spec`` src_index selections (detect_fullsky.md §2)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import ascii
from astropy.table import Table

from hetred.detect.formats import (
    MC_NAMES_27,
    MC_NAMES_33,
    SPEC_NAMES,
    Clamps,
    ListRow,
    McRow,
    fmt_f,
    format_list,
    format_mc,
    format_res,
    format_spec,
)

#: hetdex_api create_detect_hdf5.py, branch hdr2.1 (the 27 names) and master (33)
API_MC_NAMES_HDR21 = ['wave', 'wave_err', 'flux', 'flux_err', 'linewidth', 'linewidth_err', 'continuum',
                      'continuum_err', 'sn', 'sn_err', 'chi2', 'chi2_err', 'ra', 'dec', 'datevshot', 'noise_ratio',
                      'linewidth_fix', 'chi2_fix', 'chi2fib', 'src_index', 'multiname', 'exp', 'xifu', 'yifu',
                      'xraw', 'yraw', 'weight']
API_MC_NAMES_MASTER = API_MC_NAMES_HDR21 + ['apcor', 'sn_cen', 'flux_noise_1sigma', 'sn_3fib', 'sn_3fib_cen',
                                            'dummy']
API_SPEC_NAMES = ["wave1d", "spec1d_nc", "spec1d_nc_err", "counts1d", "counts1d_err", "apsum_counts",
                  "apsum_counts_err", "dummy", "apcor", "flag_pix", "src_index"]


def _mc(src: int, extra=()) -> McRow:
    return McRow([4458.59, 16.03, 3.14, 0.47, 8.19, 0.99], [0.34, 1.44, 0.32, 0.08, 1.02, 0.22], 36.486694, 0.402999,
                 "20180915v023", 1.44, 2.71, 1.05, 1.34, src, "multi_038_096_014_RU_021", "exp02", 21.61, 22.03,
                 488, 201, 0.273, extra)


def _list(src: int, k: int) -> ListRow:
    return ListRow(211.52325, 51.71597, 6.36, -13.22, f"multi_025_076_032_LU_{k:03d}.ixy", "exp01", 3.477, 4306.8,
                   "20190207T091036.6", "20190207", "023", 415, 40, 0.0046, k % 2, src)


def test_mc_line_matches_the_reconstructed_hdr21_line():
    # detect_fullsky.md §2.1, detectid 2102591413, with cols 17-18 filled
    expect = ("  4458.59     0.34    16.03     1.44     3.14     0.32     0.47     0.08     8.19     1.02     0.99"
              "     0.22  36.486694   0.402999 20180915v023   1.44   2.71   1.05  1.34     3 multi_038_096_014_RU_021"
              " exp02  21.61  22.03  488  201 0.273\n")
    assert format_mc(_mc(3)) == expect
    line33 = format_mc(_mc(3, (0.93, 8.5, 1.234, 5.1, 6.2, 7.0)), columns=33)
    assert line33.startswith(expect[:-1]) and line33.endswith(" 0.930   8.50   1.234   5.10   6.20     7.00\n")


def test_list_line_matches_the_reconstructed_line():
    expect = ("211.5232500  51.7159700     6.360  -13.220 multi_025_076_032_LU_003.ixy exp01  3.477 4306.8 "
              "20190207T091036.6    20190207 023  415   40  0.0046 1     7\n")
    assert format_list(_list(7, 3)) == expect


def test_spec_block_and_clamping():
    w = 3470.0 + 2.0 * np.arange(1036)
    cols = [w] + [np.linspace(-5, 5, 1036) * (k + 1) for k in range(8)]
    cols[1][10] = 1e12                      # would print '*' in Fortran
    c = Clamps()
    text = format_spec(cols, 2.5, 12, c)
    lines = text.splitlines()
    assert len(lines) == 1036 and c.n == 1
    assert lines[0] == " 3470.00" + "".join(f" {v:11.3f}" for v in (-5, -10, -15, -20, -25, -30, -35, -40)) + \
        "       2.500    12"
    assert "*" not in text and lines[10].split()[1] == "9999999.999"
    assert fmt_f(float("nan"), 8, 2) == "-9999.99" and fmt_f(123456.0, 8, 2) == "99999.99"
    assert format_res(150.1, 2.2, 4000.0, 5.5, 1.1, 123.4, 3.0, 1.5) == \
        " 150.100000   2.200000 4000.00    5.50    1.10     123.4    3.00       1.50\n"


def _write(tmp: Path, stem: str, columns: int) -> tuple[Path, Path, Path]:
    mc = tmp / f"{stem}.mc"
    lst = tmp / f"{stem}.list"
    spec = tmp / f"{stem}.spec"
    extra = (0.93, 8.5, 1.234, 5.1, 6.2, 7.0) if columns == 33 else ()
    mc.write_text(format_mc(_mc(1, extra), columns=columns) + format_mc(_mc(2, extra), columns=columns))
    lst.write_text("".join(format_list(_list(s, k)) for s in (1, 2) for k in range(1, 4 + s)))
    w = 3470.0 + 2.0 * np.arange(1036)
    spec.write_text("".join(format_spec([w] + [w * 0 + s + k for k in range(8)], 3.1, s) for s in (1, 2)))
    return mc, lst, spec


def test_read_as_create_detect_hdf5_hdr21(tmp_path):
    mc, lst, spec = _write(tmp_path, "20190207v023_025_076_032", 27)
    catfile = str(mc)
    amp_i = catfile[-27:-3]
    assert amp_i == "20190207v023_025_076_032"
    detectcatall = Table.read(catfile, format="ascii.no_header", names=API_MC_NAMES_HDR21)
    assert list(detectcatall["src_index"]) == [1, 2] and detectcatall["multiname"][0] == "multi_038_096_014_RU_021"
    assert detectcatall["datevshot"][0] == "20180915v023" and abs(detectcatall["weight"][0] - 0.273) < 1e-9
    spectable = Table.read(str(spec), format="ascii.no_header")
    fibertable = Table.read(str(lst), format="ascii.no_header")
    for row in detectcatall:
        dataspec = spectable[spectable["col11"] == row["src_index"]]
        assert len(dataspec) == 1036
        assert np.allclose(dataspec["col2"] / dataspec["col9"], (row["src_index"] + 0) / (row["src_index"] + 7))
        datafiber = fibertable[fibertable["col16"] == row["src_index"]]
        assert len(datafiber) == 3 + row["src_index"]
        multiname = datafiber["col5"][0]
        assert multiname[0:20] == "multi_025_076_032_LU" and int(multiname[21:24]) == 1
        # the API's slices: exposure "exp01"[3:5]; obsid "023", which astropy reads as the integer 23
        assert str(datafiber["col6"][0])[3:5] == "01" and int(datafiber["col11"][0]) == 23
        assert datafiber["col14"].dtype.kind == "f" and set(datafiber["col15"]) <= {0, 1}
    assert tuple(API_MC_NAMES_HDR21) == MC_NAMES_27


def test_read_as_create_detect_hdf5_master(tmp_path):
    mc, lst, spec = _write(tmp_path, "20190207v023_025_076_032", 33)
    detectcatall = Table.read(str(mc), format="ascii.no_header", names=API_MC_NAMES_MASTER)
    assert abs(detectcatall["apcor"][1] - 0.93) < 1e-9 and abs(detectcatall["flux_noise_1sigma"][0] - 1.234) < 1e-9
    with open(spec) as f:
        assert len(f.readline().split()) == 11
    spec_table = Table(np.loadtxt(spec), names=API_SPEC_NAMES)
    assert np.sum(spec_table["src_index"] == 2) == 1036
    fibertable = ascii.read(str(lst), format="no_header")
    assert np.sum(fibertable["col16"] == 1) == 4
    assert tuple(API_MC_NAMES_MASTER) == MC_NAMES_33 and tuple(API_SPEC_NAMES) == SPEC_NAMES
