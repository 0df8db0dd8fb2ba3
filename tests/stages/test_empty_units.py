"""Nothing to do in the data is *empty*, not failed, in every stage (issue 11 point 2;
docs/operations.md "Done, empty, failed, stale"), on the session's simulated night."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hetred.cli import cli
from hetred.layout import Layout

MONTH = "201801"


@pytest.fixture()
def lay(sim_night, tmp_path) -> Layout:
    """The simulated night's raw tree with a reduction tree of our own (its tarlist made)."""
    from hetred.lists.tarlist import run_tarlist

    layout = Layout(sim_night.layout.raw, tmp_path / "red")
    run_tarlist(layout, MONTH)
    return layout


def _cli(lay: Layout, *args: str):
    return CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), *args])


def _specid(lay: Layout, night: str) -> int:
    from hetred.flat.run import find_frames

    return find_frames(lay, [night], kinds=("flt",))[0].specid


def test_flat_without_usable_frames_is_empty(lay, sim_night):
    """A camera whose flats are all too faint, and a camera with no flats at all: empty units,
    exit 0; the reason and what was dropped in the empty marker."""
    specid = _specid(lay, sim_night.night)
    r = _cli(lay, "flat", str(specid), "--night", sim_night.night, "--amp", "LL", "--min-level", "1e9")
    assert r.exit_code == 0, r.output
    m = json.loads(lay.path("marker_empty", stage="flat", unit=f"cam{specid:03d}_LL").read_text())
    assert m["reason"] == f"camera {specid:03d} amp LL: none of 4 frames usable (4 faint)"
    assert m["counts"]["dropped"] == {"faint": 4}
    assert not lay.path("pixelflat", specid=specid, amp="LL").exists()
    r = _cli(lay, "flat", "999", "--night", sim_night.night)
    assert r.exit_code == 0, r.output
    assert "no flt/twi frames of camera 999" in r.output
    assert len(list(lay.glob("marker_empty", stage="flat"))) == 5
    assert not list(lay.glob("marker_failed", stage="flat"))


def test_month_or_slot_without_frames_is_nothing_to_do(lay):
    """twical and sci with nothing to do in the month (here: a slot the month does not have):
    one line, exit 0; a shot the tarlist does not have is an error."""
    r = _cli(lay, "twical", MONTH, "--ifuslot", "099")
    assert r.exit_code == 0 and "no twilight exposures in the 201801 tarlist" in r.output, r.output
    r = _cli(lay, "sci", MONTH, "--ifuslot", "099")
    assert r.exit_code == 0 and "no science exposures for 201801" in r.output, r.output
    r = _cli(lay, "sci", "--shot", "20180110v099")
    assert r.exit_code == 1 and "shot 20180110v099 is not in the 201801 tarlist" in str(r.exception), r.output
    r = _cli(lay, "bias", MONTH, "--ifuslot", "099", "--amp", "LL")
    assert r.exit_code == 0 and "empty" in r.output, r.output
    assert lay.path("marker_empty", stage="bias", unit=f"{MONTH}_099_LL").exists()
