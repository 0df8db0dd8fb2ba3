"""The HTML pieces of ``hetred report``: marked numbers, the link check (missing, outside the
folder, external), the page weight, relative links, and the sqlite databases' merge rules."""
from __future__ import annotations

import sqlite3

import pytest

from hetred.errors import HetredError
from hetred.report import db as rdb
from hetred.report import html as H


def test_numbers_outside_their_range_are_marked():
    assert H.num(3.5, (2.0, 10.0)).cls == ""
    c = H.num(14.0, (2.0, 10.0), ".1f")
    assert (c.text, c.cls, c.title) == ("14.0", "bad", "usual range 2–10")
    assert H.num(2, (3.0, float("inf")), "d").title == "usual range ≥ 3"
    assert H.num(None, (0.0, 1.0)).text == "–" and H.num(float("nan"), (0.0, 1.0)).cls == ""
    assert H.fmt(7.6, "d") == "8"


def test_broken_links_and_page_weight(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a b.png").write_bytes(b"x" * 100)
    (tmp_path / "outside.png").write_bytes(b"y")
    page = tmp_path / "web" / "index.html"
    page.parent.mkdir()
    good = H.href(tmp_path / "img" / "a b.png", page.parent)
    assert good == "../img/a%20b.png"
    page.write_text(f'<html><body><img src="{good}"><a href="#top">t</a></body></html>')
    assert H.broken_links(page.parent) == ["index.html: img.src ../img/a%20b.png is outside the folder"]
    page.write_text('<img src="i.png"><a href="other.html">o</a><link href="https://cdn.example/x.css">'
                    '<img src="//cdn/y.png">')
    (page.parent / "i.png").write_bytes(b"z" * 50)
    for fast in (False, True):
        bad = H.broken_links(page.parent, fast=fast)
        assert bad == ["index.html: a.href other.html does not exist",
                       "index.html: external link.href https://cdn.example/x.css",
                       "index.html: external img.src //cdn/y.png"], fast
    assert H.page_weight(page) == page.stat().st_size + 50


def _db(path, ids):
    png = path.parent / "r.png"
    png.write_bytes(b"\x89PNG fake")
    entries = [rdb.Entry((i, 1, "20180110v007", f"in{i}", 4500.0, 10.0, 6.0, 2.0, 1.0, 150.0, 52.0), png) for i in ids]
    return rdb.write_db(path, entries, {"datevobs": "20180110v007"})


def test_databases_write_merge_and_read(tmp_path):
    a, b, m = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "m.db"
    assert _db(a, [1, 2]) == 2 and _db(b, [3]) == 1
    assert rdb.merge_dbs([a, b], m, {"month": "201801"}) == 3
    assert rdb.detectids(m) == [1, 2, 3] and rdb.read_report(m, 3) == b"\x89PNG fake"
    assert rdb.read_report(m, 9) is None
    con = sqlite3.connect(m)
    assert dict(con.execute("SELECT key, value FROM meta"))["shots"] == "2"
    con.close()
    with pytest.raises(HetredError, match="detectid 1 is in both"):
        rdb.merge_dbs([a, a], tmp_path / "x.db", {})
    assert not (tmp_path / "x.db").exists()
    with pytest.raises(HetredError, match="no shot report databases"):
        rdb.merge_dbs([], tmp_path / "y.db", {})
