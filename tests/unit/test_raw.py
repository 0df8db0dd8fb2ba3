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


def _tar_of(lay: Layout, n: int = 4, size: int = 3000) -> tuple:
    """A tar of ``n`` members of ``size`` bytes; (path, names, bytes per member in the tar)."""
    names = [member(5, e, f"20180522T0237{e:02d}.0", 53, "LL", "zro") for e in range(1, n + 1)]
    tar = write_tar(lay, "20180522", 5, {m: bytes([e]) * size for e, m in enumerate(names)})
    return tar, names, 512 + -(-size // 512) * 512


@pytest.mark.parametrize("where, listed, lost", [
    ("data", 2, 1),         # the file ends inside the third member's data
    ("header", 2, 0),       # inside the third member's header
    ("boundary", 2, 0),     # right after the second member (no end-of-archive block)
])
def test_truncated_tar_gives_its_intact_members(tmp_path, where, listed, lost):
    import os

    tar, names, step = _tar_of(Layout(tmp_path / "raw", tmp_path / "red"))
    cut = {"data": 2 * step + 700, "header": 2 * step + 300, "boundary": 2 * step}[where]
    os.truncate(tar, cut)
    with R.open_tar(tar) as tf:
        assert tf.names == names[:listed] and tf.lost == names[listed:listed + lost]
        assert tf.damage.startswith("truncated") and str(cut) in tf.damage
        assert tf.read(names[1]) == bytes([1]) * 3000
    assert R.tar_members(tar) == names[:listed]
    with pytest.raises(RawReadError, match="lost: the tar is truncated" if lost else "not in the tar, which is truncated"):
        R.read_raw_member(tar, names[2])


def test_intact_tar_has_no_damage(tmp_path):
    tar, names, _ = _tar_of(Layout(tmp_path / "raw", tmp_path / "red"))
    with R.open_tar(tar) as tf:
        assert tf.names == names and tf.lost == [] and tf.damage == ""
    with pytest.raises(RawReadError, match="no such member in the tar$"):
        R.read_raw_member(tar, "virus0000005/exp09/virus/x.fits")


@pytest.mark.parametrize("key, value, why", [
    ("IFUSLOT", "abc", "header IFUSLOT = 'abc' is not a whole number"),
    ("SPECID", "3.5", "header SPECID = '3.5' is not a whole number"),
])
def test_garbage_identity_keys_fail_the_read_naming_file_and_key(tmp_path, key, value, why):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    name = member(5, 1, "20180522T023753.4", 53, "RU", "zro")
    tar = write_tar(lay, "20180522", 5, {name: amp_fits_bytes(amp="RU", extra={key: value})})
    with pytest.raises(RawReadError, match=why) as info:
        R.read_raw_member(tar, name)
    assert str(info.value).startswith(f"{tar}::{name}: ")


@pytest.mark.parametrize("drop, extra, why", [
    (("GAIN",), None, "header has no GAIN"),
    ((), {"GAIN": "n/a"}, "header GAIN = 'n/a' is not a number"),
    ((), {"GAIN": 0.0}, "header GAIN = 0.0 is not a positive number"),
])
def test_header_value_names_file_and_key(tmp_path, drop, extra, why):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    name = member(5, 1, "20180522T023753.4", 53, "RU", "zro")
    tar = write_tar(lay, "20180522", 5, {name: amp_fits_bytes(amp="RU", extra=extra, drop=drop)})
    raw = R.read_raw_member(tar, name)
    with pytest.raises(RawReadError, match=why):
        R.header_value(raw, "GAIN")
    assert R.header_value(raw, "RDNOISE") == 3.0
    raw.header.remove("IFUID")
    with pytest.raises(RawReadError, match="header has no IFUID"):
        _ = raw.ifuid
