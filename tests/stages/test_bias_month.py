"""Acceptance of `hetred bias` on a simulated month (issue 4): master vs truth bias structure,
vs Karl's algorithm restated in NumPy, and charge traps vs the injected ones."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hetred.bias.run import run_bias
from hetred.io.raw import read_raw_member
from hetred.layout import Layout
from hetred.lists.tarlist import parse_line
from hetred.sim import simulate_archive
from hetred.stats import biweight_location
from tests.stages.test_bias import karl_masterbias_reference

MONTH = "201801"
SLOT = 53
AMPS = ("LL", "LU", "RL", "RU")


@pytest.fixture(scope="module")
def bias_month(tmp_path_factory):
    """Two nights x 11 zro frames (22 per amp), one IFU; the month's master biases."""
    root = tmp_path_factory.mktemp("biasmonth")
    lay = Layout(root / "raw", root / "red", root / "truth")
    frames = {"zro": 11, "drk": 0, "flt": 0, "hg": 0, "cd": 0, "twi": 0}
    summary = simulate_archive(lay, nights="20180110-20180111", ifuslots=[SLOT], frames=frames, shots=0, seed=11)
    outcomes = {amp: run_bias(lay, MONTH, SLOT, amp) for amp in AMPS}
    return lay, summary, outcomes


def _truth(lay, night, amp):
    return fits.open(lay.path("truth_amp", night=night, ifuslot=SLOT, amp=amp))


def _master(outcome, unsmoothed: bool = False):
    prefix = "/biascmb_" if unsmoothed else "/masterbias_"
    path = next(p for p in outcome.outputs if prefix in p)
    return fits.getdata(path).astype(np.float64)


@pytest.mark.parametrize("amp", AMPS)
def test_master_matches_truth_bias_structure(bias_month, amp):
    lay, summary, outcomes = bias_month
    out = outcomes[amp]
    master = _master(out)
    with _truth(lay, summary.nights[0], amp) as t:
        struct = t["BIAS_STRUCTURE"].data.astype(np.float64)
        traps = {int(c) for c in t["TRAPS"].data["COL_RAW"]}
    # the frame's overscan level (level + structure in Karl's region) is what was subtracted
    over = biweight_location(struct[9:1032, 1033:1060].astype(np.float32), axis=None)
    truth = struct[:, :1032] - over
    good = np.ones_like(master, dtype=bool)
    good[:, sorted(traps)] = False
    resid = (master - truth)[good]
    rms = float(np.sqrt(np.mean((resid - resid.mean()) ** 2)))
    print(f"{amp}: master - truth rms {rms:.3f} ADU, mean {resid.mean():+.3f} ADU")
    assert rms <= 0.45


@pytest.mark.parametrize("amp", AMPS)
def test_traps_found(bias_month, amp):
    lay, summary, outcomes = bias_month
    path = next(p for p in outcomes[amp].outputs if "/traps_" in p)   # the trap list the stage wrote
    rows = [line.split() for line in open(path) if line.strip() and not line.startswith("#")]
    found = {int(r[0]) - 1 for r in rows}                             # 1-based columns, like Karl
    with _truth(lay, summary.nights[0], amp) as t:
        injected = {int(c) for c in t["TRAPS"].data["COL_RAW"]}
    print(f"{amp}: injected traps {sorted(injected)}, found {sorted(found)}")
    assert injected <= found
    assert len(found - injected) <= 1


def test_master_equals_karl_restatement(bias_month):
    """On a band of rows, the stage equals Karl's algorithm in NumPy to 0.01 ADU rms."""
    lay, summary, outcomes = bias_month
    amp = "LU"
    r0, r1 = 200, 330                     # band (0-based), with 3 rows of box context each side
    lines = lay.path("tarlist", month=MONTH).read_text().splitlines()
    stack = []
    for line in lines:
        e = parse_line(line)
        if e is None or e.kind != "zro" or e.amp != amp or e.ifuslot != SLOT:
            continue
        f = read_raw_member(lay.path("raw_tar", night=e.night, obs=e.obs), e.member)
        level = f.overscan_level()
        stack.append(f.data[r0 - 3:r1 + 3, :1032].astype(np.float32) - np.float32(level))
    assert len(stack) == 22
    ref = karl_masterbias_reference(np.array(stack))
    unsmoothed = _master(outcomes[amp], unsmoothed=True)[r0 - 3:r1 + 3]
    assert np.sqrt(np.mean((unsmoothed - ref["unsmoothed"]) ** 2)) < 0.01
    master = _master(outcomes[amp])[r0:r1]
    boxed = ref["boxed"][3:-3]
    live = np.all(master != 0, axis=0)    # trap columns are zeroed in the master
    d = master[:, live] - boxed[:, live]
    rms = float(np.sqrt(np.mean(d ** 2)))
    print(f"stage vs Karl restatement: rms {rms:.2e} ADU")
    assert rms < 0.01
