"""hetred tarlist: inventory from the real 201701 list and from scanned tars."""
from __future__ import annotations

import pytest

from hetred.errors import HetredError
from hetred.jobs.units import is_done, run_unit
from hetred.layout import Layout
from hetred.lists import tarlist as T
from tests.helpers import real_file
from tests.rawfactory import amp_fits_bytes, member, write_tar


@pytest.fixture(scope="module")
def real_inventory(tmp_path_factory):
    path = real_file("tarlists", "201701tarlist")
    lay = Layout(tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("red"))
    outcome = T.run_tarlist(lay, "201701", from_list=path)
    return lay, outcome


def test_real_201701_counts(real_inventory):
    lay, outcome = real_inventory
    c = outcome.counts
    assert c["as_read"] == {"cmp": 2912, "drk": 1288, "flt": 16296, "sci": 11424, "twi": 3865, "zro": 16208}
    assert c["written"]["twi"] == 3864
    assert (c["nights"], c["sci_shots"], c["ifuslots_zro"]) == (30, 77, 14)
    assert c["repeats"] == ["20170107/virus/virus0000001/exp01/virus/20170107T003533.7_083RL_twi.fits"]
    assert c["unparsed"] == 0


def test_real_201701_written_files(real_inventory):
    lay, _ = real_inventory
    lines = lay.path("tarlist", month="201701").read_text().splitlines()
    assert len(lines) == 51992
    assert lines[0] == "20170101/virus/virus0000001/exp01/virus/20170101T012654.3_095LL_cmp.fits"
    assert sum(1 for x in lines if x.endswith("_twi.fits")) == 3864
    rep = lay.path("tarlist_repeats", month="201701").read_text()
    assert "20170107T003533.7_083RL_twi.fits" in rep
    sci = lay.path("scilist", month="201701").read_text().splitlines()
    assert sci[0].split()[2:] == list(T.SCI_KEYS)
    assert len(sci) - 1 == 204  # science exposures
    cal = lay.path("callist", month="201701").read_text().splitlines()
    assert cal[1].split() == ["20170101", "cmp", "073", "8", "2"]


def test_repeats_keep_the_first():
    lines = ["20170101/virus/virus0000001/exp01/virus/20170101T010000.0_053LL_zro.fits",
             "20170101/virus/virus0000002/exp01/virus/20170101T010000.0_053LL_zro.fits",
             "20170101/virus/virus0000001/exp01/virus/20170101T010000.0_053LU_zro.fits",
             "20170101/gc1/foo.fits", ""]
    inv = T.build_inventory("201701", lines)
    assert [e.obs for e in inv.kept] == [1, 1] and [e.obs for e in inv.repeats] == [2]
    assert inv.unparsed == ["20170101/gc1/foo.fits"]


def _make_month(lay):
    stamp_z, stamp_s = "20180101T010000.0", "20180101T050000.0"
    write_tar(lay, "20180101", 1, {member(1, e, f"20180101T01000{e}.0", 53, a, "zro"): b"x"
                                   for e in (1, 2) for a in ("LL", "LU")})
    sci = {member(2, e, f"20180101T05000{e}.0", s, "LL", "sci"): amp_fits_bytes(
        ifuslot=s, kind="sci", extra={"OBJECT": "DEXfl_1 x", "EXPTIME": 360.0, "TRAJCRA": 1.5,
                                      "PARANGLE": 12.5, "MJD": 58119.2}) for e in (1, 2, 3) for s in (53, 54)}
    write_tar(lay, "20180101", 2, sci)
    write_tar(lay, "20180102", 1, {member(1, 1, "20180102T010000.0", 53, "RU", "twi"): b"x"})
    write_tar(lay, "20180201", 1, {member(1, 1, "20180201T010000.0", 53, "RU", "twi"): b"x"})
    return stamp_z, stamp_s


def test_scan_month_from_tars(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    _make_month(lay)
    out = T.run_tarlist(lay, "201801")
    c = out.counts
    assert c["written"]["zro"] == 4 and c["written"]["sci"] == 6 and c["written"]["twi"] == 1
    assert (c["nights"], c["sci_shots"], c["sci_exposures"]) == (2, 1, 3)
    sci = lay.path("scilist", month="201801").read_text().splitlines()[1:]
    assert len(sci) == 3
    first = sci[0].split()
    assert first[0].endswith("_053LL_sci.fits")          # lowest IFU slot's LL file
    assert first[1:4] == ["DEXfl_1_x", "360.0", "-"]        # OBJECT, EXPTIME, DARKTIME missing
    assert first[4] == "58119.2" and first[7] == "12.5"


def test_errors_are_one_line(tmp_path):
    lay = Layout(tmp_path / "nowhere", tmp_path / "red")
    with pytest.raises(HetredError, match="does not exist"):
        T.run_tarlist(lay, "201801")
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(HetredError, match="no raw data for month 201801"):
        T.run_tarlist(lay, "201801")


def test_unit_is_idempotent_with_markers(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    _make_month(lay)
    r1 = run_unit(lay, "tarlist", "201801", lambda: T.run_tarlist(lay, "201801"))
    assert r1.status == "done" and is_done(lay, "tarlist", "201801")
    r2 = run_unit(lay, "tarlist", "201801", lambda: T.run_tarlist(lay, "201801"))
    assert r2.status == "skipped"
    lay.path("tarlist", month="201801").unlink()     # a product went missing: redo
    r3 = run_unit(lay, "tarlist", "201801", lambda: T.run_tarlist(lay, "201801"))
    assert r3.status == "done"
    bad = run_unit(lay, "tarlist", "201803", lambda: T.run_tarlist(lay, "201803"))
    assert bad.status == "failed" and "no raw data" in bad.message
    assert lay.path("marker_failed", stage="tarlist", unit="201803").exists()


def test_a_broken_tar_does_not_block_the_month(tmp_path):
    """A tar that cannot be opened at all and a truncated one: the month's tarlist lists what is
    readable and {month}broken says what is not."""
    import os

    lay = Layout(tmp_path / "raw", tmp_path / "red")
    _make_month(lay)
    zro = lay.path("raw_tar", night="20180101", obs=1)
    os.truncate(zro, 512 + 512 + 100)           # inside the first member's... second header
    lay.path("raw_tar", night="20180102", obs=1).write_bytes(b"not a tar" * 100)
    out = T.run_tarlist(lay, "201801")
    assert out.counts["written"]["zro"] == 1 and out.counts["written"]["sci"] == 6
    assert out.counts["written"].get("twi", 0) == 0
    broken = {b["tar"]: b for b in out.counts["broken_tars"]}
    assert set(broken) == {str(zro), str(lay.path("raw_tar", night="20180102", obs=1))}
    assert broken[str(zro)]["listed"] == 1 and "truncated" in broken[str(zro)]["damage"]
    text = lay.path("tarlist_broken", month="201801").read_text()
    assert f"{zro}: 1 members listed; truncated" in text and "cannot open tar" in text
    assert str(lay.path("tarlist_broken", month="201801")) in out.outputs
