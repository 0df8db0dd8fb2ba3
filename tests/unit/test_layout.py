"""The layout table: paths, parsing, and docs/layout.md kept in step."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hetred import layout as L
from hetred.layout import Layout, LayoutError

ROOT = Path(__file__).resolve().parents[2]


def test_raw_paths_follow_the_real_archive():
    lay = Layout("/raw", "/red")
    assert lay.path("raw_tar", night="20170101", obs=1) == Path("/raw/20170101/virus/virus0000001.tar")
    member = L.format_relative("raw_member", obs=1, exp=1, stamp="20170101T012654.3", ifuslot=95,
                               amp="LL", kind="cmp")
    assert member == "virus0000001/exp01/virus/20170101T012654.3_095LL_cmp.fits"
    assert lay.path("raw_untarred", night="20170101", obs=1, exp=1, stamp="20170101T012654.3",
                    ifuslot=95, amp="LL", kind="cmp") == Path("/raw/20170101/virus/" + member)


def test_products():
    lay = Layout("/raw", "/red")
    assert lay.path("masterbias", month="202008", specid=320, contid="0059", amp="LL").as_posix() == \
        "/red/lib_calib/lib_mbias/202008/masterbias_320_0059_LL.fits"
    assert lay.path("multi", night="20180124", obs=10, exp=2, specid=8, ifuslot=93, ifuid="054",
                    amp="LU").as_posix().endswith(
        "20180124/virus/virus0000010/exp02/virus/multi_008_093_054_LU.fits")
    assert lay.path("tarlist", month="201701").name == "201701tarlist"
    assert lay.path("pixelflat", specid=409, amp="RU").name == "pixelflat_cam409_RU.fits"


def test_parse_inverts_format():
    line = "20170101/virus/virus0000001/exp01/virus/20170101T012654.3_095LL_cmp.fits"
    f = L.parse("tarlist_line", line)
    assert f == {"night": "20170101", "obs": 1, "exp": 1, "stamp": "20170101T012654.3",
                 "ifuslot": 95, "amp": "LL", "kind": "cmp"}
    assert L.format_relative("tarlist_line", **f) == line
    assert L.parse("tarlist_line", "20170101/gc1/foo.fits") is None
    assert L.parse("tarlist_line", line + "x") is None


def test_errors_are_clear():
    with pytest.raises(LayoutError, match="unknown layout key"):
        Layout("a", "b").path("nope")
    with pytest.raises(LayoutError, match="needs field 'amp'"):
        Layout("a", "b").path("masterbias", month="202008", specid=1, contid="0001")
    with pytest.raises(LayoutError, match="truth root"):
        Layout("a", "b").path("truth_fplane")


def test_glob_and_nights(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    for night, obs in (("20170101", 1), ("20170101", 2), ("20170215", 1)):
        p = lay.path("raw_tar", night=night, obs=obs)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    assert lay.nights_of_month("201701") == ["20170101"]
    assert [p.name for p in lay.glob("raw_tar", night="20170101")] == ["virus0000001.tar", "virus0000002.tar"]


def test_docs_layout_matches_table():
    text = (ROOT / "docs" / "layout.md").read_text()
    begin, end = "<!-- layout-table:begin -->\n", "<!-- layout-table:end -->"
    body = text.split(begin, 1)[1].split(end, 1)[0]
    assert body == L.render_markdown(), "docs/layout.md is out of step: regenerate with " \
        "python -c 'from hetred.layout import render_markdown; print(render_markdown())'"


def test_no_other_module_joins_paths():
    """Rule 3: only hetred.layout builds product paths (no os.path.join / string '/' joins of roots)."""
    offenders = []
    for py in (ROOT / "src" / "hetred").rglob("*.py"):
        if py.name == "layout.py" or "sim" in py.parts:
            continue
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "join" and \
                    isinstance(node.value, ast.Attribute) and node.value.attr == "path":
                offenders.append(f"{py.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
