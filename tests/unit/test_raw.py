"""Raw reading: from tar members and files, overscan, trim, orientation, clear errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from hetred.errors import RawReadError
from hetred.io import raw as R
from hetred.layout import Layout
from tests.helpers import real_file
from tests.rawfactory import amp_fits_bytes, member, write_tar


def test_real_rl_ru_overscan_levels():
    rl = R.read_raw_file(real_file("raw", "20180522T023753.4_053RL_zro.fits"))
    ru = R.read_raw_file(real_file("raw", "20180522T023753.4_053RU_zro.fits"))
    assert rl.data.dtype == np.uint16 and rl.data.shape == (1032, 1064)
    assert (rl.amp, ru.amp) == ("RL", "RU")
    assert rl.overscan_level() == pytest.approx(2186, abs=2)
    assert ru.overscan_level() == pytest.approx(2072, abs=2)
    assert not rl.is_saturated() and not ru.is_saturated()
    assert rl.specid == 320 and rl.ifuslot == 53 and rl.ifuid == "020" and rl.contid == "0059"


def test_real_ll_lu_are_saturated():
    for amp in ("LL", "LU"):
        f = R.read_raw_file(real_file("raw", f"20180522T023753.4_053{amp}_zro.fits"))
        assert f.is_saturated(), amp
        assert f.saturated_fraction() > 0.75


def test_oriented_frame_is_trimmed_and_flipped():
    path = real_file("raw", "20180522T023753.4_053RL_zro.fits")
    f = R.read_raw_file(path)
    level = f.overscan_level()
    img = f.oriented()
    assert img.shape == (1032, 1032) and img.dtype == np.float32
    # RL rotates 180 deg, AMPNAME LR mirrors columns: net effect flips rows only
    expect = f.data[:, :1032].astype(np.float32)[::-1, :] - np.float32(level)
    np.testing.assert_array_equal(img, expect)


def test_read_from_tar_member_without_extraction(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    name = member(5, 1, "20180522T023753.4", 53, "RU", "zro")
    tar = write_tar(lay, "20180522", 5, {name: amp_fits_bytes(amp="RU", level=2072)})
    f = R.read_raw_member(tar, name)
    assert f.amp == "RU" and f.source == f"{tar}::{name}"
    assert f.overscan_level() == pytest.approx(2072, abs=0.5)
    got = list(R.iter_members(tar, [name, "virus0000005/exp01/virus/missing.fits"]))
    assert isinstance(got[0], R.RawAmp) and isinstance(got[1], RawReadError)
    assert "no such member" in str(got[1]) and str(tar) in str(got[1])
    assert not list((tmp_path / "raw").rglob("*.fits"))  # nothing extracted to disk


@pytest.mark.parametrize("case, reason", [
    ("missing_key", "header lacks CCDHALF"),
    ("truncated", "not a readable FITS file|truncated"),
    ("not_fits", "not a readable FITS file"),
])
def test_bad_members_give_one_line_naming_tar_and_member(tmp_path, case, reason):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    name = member(3, 1, "20180101T010101.1", 53, "LL", "zro")
    good = amp_fits_bytes()
    data = {"missing_key": amp_fits_bytes(drop=("CCDHALF",)), "truncated": good[: len(good) // 2],
            "not_fits": b"hello world" * 100}[case]
    tar = write_tar(lay, "20180101", 3, {name: data})
    with pytest.raises(RawReadError, match=reason) as info:
        R.read_raw_member(tar, name)
    msg = str(info.value)
    assert "\n" not in msg and str(tar) in msg and name in msg


def test_unreadable_tar(tmp_path):
    bad = tmp_path / "virus0000001.tar"
    bad.write_bytes(b"\0" * 10)
    with pytest.raises(RawReadError, match="virus0000001.tar"):
        R.read_raw_member(bad, "x.fits")


def test_untarred_file_and_header_only(tmp_path):
    src = real_file("raw", "20180522T023753.4_053RU_zro.fits")
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    assert R.read_raw_file(dst).amp == "RU"
    with pytest.raises(RawReadError, match="cannot read"):
        R.read_raw_file(tmp_path / "nope.fits")


def test_contid_number():
    assert R.contid_number("S/N 0059") == "0059"
    assert R.contid_number("S/N 59") == "0059"
    assert R.contid_number("") == ""
