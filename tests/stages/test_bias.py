"""``hetred bias``: frame verdicts, real frames, end to end through tars and the CLI.

:func:`karl_masterbias_reference` restates Karl's chain (imcmb -> imbox2 "1 7" -> imgetctrap) in
NumPy for any stack of overscan-subtracted, trimmed frames; the simulated-month acceptance test
calls it.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from hetred._ext import reference as R
from hetred.bias import frames as bias_io
from hetred.bias.masterbias import FrameStats, frame_stats, frame_verdict, trap_rules
from hetred.bias.run import run_bias, unit_id
from hetred.bias.settings import BiasSettings
from hetred.cli import cli
from hetred.io import framestack as bias_io_framestack
from hetred.io import raw as rawio
from hetred.jobs.units import run_unit
from hetred.layout import Layout
from hetred.lists.tarlist import run_tarlist
from tests.helpers import real_file
from tests.rawfactory import amp_fits_bytes, member, write_tar

F32 = np.float32
MONTH = "201805"
NIGHT = "20180522"


# ------------------------------------------------------------------------------------------
# Karl's algorithm in NumPy (for this file and the simulated-month acceptance test)

def karl_masterbias_reference(frames, min_hits: int = 50, margin: int = 10, floor_row: int = 100):
    """Karl's master bias from a stack of frames, restated with the NumPy references.

    frames: (n, nrow, ncol) overscan-subtracted, trimmed frames (raw orientation), e.g. improcb's
    ``float32(raw[:, :1032]) - overscan``.  Steps: per-pixel biweight, values with
    nint(v) = -666 left out (imcmb), biweight over the
    1 x 7 box without its centre, zeros skipped (imbox2 "1 7", radius 0), then imgetctrap:
    a hit is > 10 biweight sigma above the +-9 row neighbours (rows 10..nrow, columns
    10..ncol-10, 1-based); a column with more than ``min_hits`` hits is zeroed from its lowest hit
    row - ``margin`` (row 1 when below ``floor_row``).  Returns a dict with ``unsmoothed``,
    ``boxed``, ``hits``, ``traps`` [(column, first_row), 1-based] and ``master``.
    """
    stack = np.array(frames, dtype=F32)
    stack[(stack > -666.5) & (stack <= -665.5)] = np.nan          # imcmb: nint(v) == -666 left out
    unsmoothed, _ = R.stack_biweight_reference(stack)
    boxed = R.box_filter_reference(unsmoothed, 7, 1, 0.0)
    hits = R.trap_hits_reference(boxed)
    counts = hits.sum(axis=0)
    traps = []
    for col in np.nonzero(counts > min_hits)[0]:
        jmin = max(1, int(np.nonzero(hits[:, col])[0].min()) + 1 - margin)
        traps.append((int(col) + 1, 1 if jmin < floor_row else jmin))
    master = boxed.copy()
    for col, row in traps:
        master[row - 1:, col - 1] = 0.0
    return {"unsmoothed": unsmoothed, "boxed": boxed, "hits": hits, "traps": traps, "master": master}


# ------------------------------------------------------------------------------------------
# helpers

def _fits_bytes(data: np.ndarray, header: fits.Header) -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(np.clip(np.rint(data), 0, 65535).astype(np.uint16), header).writeto(buf)
    return buf.getvalue()


def _noisy_copies(n: int, sigma: float = 2.0, seed: int = 0):
    """n copies of the real RL zro frame with extra read noise: (raw arrays, header)."""
    path = real_file("raw", "20180522T023753.4_053RL_zro.fits")
    with fits.open(path) as hdul:
        base = hdul[0].data.astype(np.float32)
        header = hdul[0].header.copy()
    rng = np.random.default_rng(seed)
    return [base + rng.normal(0, sigma, base.shape).astype(np.float32) for _ in range(n)], header


def _stamp(k: int) -> str:
    return f"{NIGHT}T{k:02d}0000.0"


# ------------------------------------------------------------------------------------------
# verdicts and real frames

def test_frame_verdicts_synthetic():
    s = BiasSettings()
    rng = np.random.default_rng(0)
    for sigma, verdict in ((3.0, "used"), (14.0, "too_noisy"), (0.8, "too_quiet")):
        raw = np.clip(np.round(1500 + sigma * rng.standard_normal((1032, 1064))), 0, 65535).astype(np.uint16)
        st = frame_stats(raw)
        assert st.overscan == pytest.approx(1500, abs=0.5)
        assert st.scale == pytest.approx(sigma, rel=0.1)
        assert frame_verdict(st, False, s)[0] == verdict
    assert frame_verdict(FrameStats(1500, 0, 3.0), True, s)[0] == "saturated"
    # rpbias1's test is strict on both sides
    assert frame_verdict(FrameStats(0, 0, 2.0), False, s)[0] == "too_quiet"
    assert frame_verdict(FrameStats(0, 0, 10.0), False, s)[0] == "too_noisy"


def test_frame_stats_overscan_equals_rawamp():
    f = rawio.read_raw_file(real_file("raw", "20180522T023753.4_053RU_zro.fits"))
    st = frame_stats(f.data)
    assert st.overscan == pytest.approx(f.overscan_level(), abs=1e-4)
    centre = f.data[299:700, 299:700].astype(F32) - F32(st.overscan)
    loc, scale = R.biweight_reference(centre)
    assert (st.level, st.scale) == (pytest.approx(loc, abs=1e-5), pytest.approx(scale, rel=1e-5))


def test_real_frames_verdicts():
    s = BiasSettings()
    got = {}
    for amp in ("LL", "LU", "RL", "RU"):
        f = rawio.read_raw_file(real_file("raw", f"20180522T023753.4_053{amp}_zro.fits"))
        st = frame_stats(f.data)
        got[amp] = (st, frame_verdict(st, f.is_saturated(), s)[0])
    assert got["RL"][1] == "used" and got["RL"][0].overscan == pytest.approx(2186, abs=2)
    assert got["RU"][1] == "used" and got["RU"][0].overscan == pytest.approx(2072, abs=2)
    assert 2 < got["RL"][0].scale < 10 and 2 < got["RU"][0].scale < 10
    assert got["LL"][1] == "saturated" and got["LU"][1] == "saturated"


# ------------------------------------------------------------------------------------------
# end to end

@pytest.fixture
def month_archive(tmp_path):
    """A month with 8 noisy RL copies, 1 too noisy, 1 corrupt RL member, 1 saturated LL, and the
    real RU frame on another controller number (so RU has one group)."""
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    frames, header = _noisy_copies(9)
    frames[8] = frames[8] + np.random.default_rng(9).normal(0, 15, frames[8].shape).astype(F32)
    members = {}
    for k, data in enumerate(frames):
        members[member(1, k + 1, _stamp(k), 53, "RL", "zro")] = _fits_bytes(data, header)
    good = members[member(1, 1, _stamp(0), 53, "RL", "zro")]
    bad_name = member(1, 20, _stamp(20), 53, "RL", "zro")
    members[bad_name] = good[: len(good) // 3]                          # truncated member
    ll = fits.getdata(real_file("raw", "20180522T023753.4_053LL_zro.fits"))
    llh = fits.getheader(real_file("raw", "20180522T023753.4_053LL_zro.fits"))
    members[member(1, 1, _stamp(0), 53, "LL", "zro")] = _fits_bytes(ll.astype(F32), llh)
    tar = write_tar(lay, NIGHT, 1, members)
    return {"layout": lay, "frames": frames[:8], "tar": tar, "bad": bad_name, "header": header}


def _invoke(lay, *args):
    return CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "bias", MONTH, *args])


def test_end_to_end_through_tars_and_cli(month_archive):
    lay = month_archive["layout"]
    res = _invoke(lay, "--ifuslot", "053", "--amp", "RL")
    assert res.exit_code == 0, res.output
    assert "201805_053_RL" in res.output and "done" in res.output
    f = dict(month=MONTH, specid=320, contid="0059", amp="RL")
    master_p, unsm_p, traps_p = (lay.path(k, **f) for k in ("masterbias", "masterbias_unsmoothed",
                                                             "masterbias_traps"))
    frames_p = lay.path("bias_frames", month=MONTH, ifuslot=53, amp="RL")
    qa_p = lay.path("qa", stage="bias", name="201805_053_RL.png")
    for p in (master_p, unsm_p, traps_p, frames_p, qa_p):
        assert p.exists(), p
    assert qa_p.read_bytes()[:4] == b"\x89PNG"

    with fits.open(master_p) as hdul:
        h, master = hdul[0].header, hdul[0].data
        assert master.dtype == np.dtype(">f4") and master.shape == (1032, 1032)
        assert h["NFRAMES"] == 8 and h["NREJECT"] == 2 and h["ORIENT"] == "RAW"
        assert h["HETREDV"] and len(h["INPHASH"]) == 40 and h["CONTID"] == "S/N 0059"
        assert sum("input " in str(c) for c in h["HISTORY"]) >= 8
    unsm = fits.getdata(unsm_p)

    table = frames_p.read_text().splitlines()
    rows = [line for line in table if not line.startswith("#")]
    assert len(rows) == 10
    assert sum(" used " in r for r in rows) == 8
    assert sum(" too_noisy " in r for r in rows) == 1
    bad = [r for r in rows if " unreadable " in r]
    assert len(bad) == 1 and str(month_archive["tar"]) in bad[0] and month_archive["bad"] in bad[0]

    # Karl's algorithm in NumPy, on a band of rows (every step is local in rows)
    frames = month_archive["frames"]
    stack = []
    for raw in frames:
        r16 = np.clip(np.rint(raw), 0, 65535).astype(np.uint16)
        stack.append(r16[:72, :1032].astype(F32) - F32(frame_stats(r16).overscan))
    ref = karl_masterbias_reference(np.asarray(stack))
    np.testing.assert_allclose(unsm[:72], ref["unsmoothed"], rtol=0, atol=1e-5)
    boxed = fits.getdata(master_p).astype(F32)
    traps = [tuple(map(int, line.split())) for line in traps_p.read_text().splitlines()
             if not line.startswith("#")]
    keep = np.ones(1032, bool)
    keep[[c - 1 for c, _ in traps]] = False
    np.testing.assert_allclose(boxed[:64, keep], ref["boxed"][:64, keep], rtol=0, atol=1e-5)
    for c, r in traps:
        assert (boxed[r - 1:, c - 1] == 0).all()
    done = json.loads(lay.path("marker_done", stage="bias", unit="201805_053_RL").read_text())
    assert done["counts"]["used"] == 8 and done["counts"]["rejected"] == {"too_noisy": 1, "unreadable": 1}


def test_rerun_skips_and_failures_are_reported(month_archive):
    lay = month_archive["layout"]
    res = _invoke(lay, "--ifuslot", "53", "--amp", "RL", "--amp", "LL", "--amp", "RU")
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.startswith("hetred: error:")]
    assert len(lines) == 1                                   # LL: all saturated (failed)
    assert "201805_053_LL" in lines[0] and "saturated" in lines[0]
    assert lay.path("marker_failed", stage="bias", unit="201805_053_LL").exists()
    # RU has no zro frames in the month: nothing to do (empty), not a failure
    assert "201805_053_RU empty: no zro frames" in res.output
    assert lay.path("marker_empty", stage="bias", unit="201805_053_RU").exists()
    assert not lay.path("marker_failed", stage="bias", unit="201805_053_RU").exists()
    master = lay.path("masterbias", month=MONTH, specid=320, contid="0059", amp="RL")
    mtime = master.stat().st_mtime_ns
    res2 = _invoke(lay, "--ifuslot", "53", "--amp", "RL")
    assert res2.exit_code == 0 and "already done" in res2.output and "skipped" in res2.output
    assert master.stat().st_mtime_ns == mtime
    res3 = _invoke(lay, "--ifuslot", "53", "--amp", "RL", "--overwrite")
    assert res3.exit_code == 0 and master.stat().st_mtime_ns != mtime


def test_dry_run_writes_nothing(month_archive):
    lay = month_archive["layout"]
    res = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "bias", MONTH,
                                   "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "201805_053_RL" in res.output and "masterbias_320_0059_RL.fits" in res.output
    assert not lay.red.exists() or not any(p.is_file() for p in lay.red.rglob("*"))


def test_interrupted_write_leaves_no_partial_product(month_archive, monkeypatch):
    lay = month_archive["layout"]
    real_writeto = fits.HDUList.writeto

    def writeto_then_die(self, fileobj, *a, **k):
        real_writeto(self, fileobj, *a, **k)          # the temporary file is complete ...
        raise KeyboardInterrupt                         # ... and then the job is killed

    monkeypatch.setattr(fits.HDUList, "writeto", writeto_then_die)
    settings = BiasSettings(qa=False)
    with pytest.raises(KeyboardInterrupt):
        run_unit(lay, "bias", unit_id(MONTH, 53, "RL"),
                 lambda: run_bias(lay, MONTH, 53, "RL", settings))
    lib = lay.red / "lib_calib" / "lib_mbias" / MONTH
    assert not list(lib.glob("*.fits")) and not list(lib.glob(".*tmp"))
    assert not lay.path("marker_done", stage="bias", unit="201805_053_RL").exists()


def test_two_controllers_give_two_masters(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    members = {}
    for k in range(6):
        contid = "S/N 0059" if k < 3 else "S/N 0112"
        members[member(2, k + 1, _stamp(k), 74, "LU", "zro")] = amp_fits_bytes(
            ifuslot=74, amp="LU", level=1500 + 100 * (k >= 3), seed=k, extra={"CONTID": contid})
    write_tar(lay, NIGHT, 2, members)
    run_tarlist(lay, MONTH)
    out = run_bias(lay, MONTH, 74, "LU", BiasSettings(qa=False))
    groups = {g["contid"]: g["nframes"] for g in out.counts["groups"]}
    assert groups == {"0059": 3, "0112": 3}
    for contid in ("0059", "0112"):
        p = lay.path("masterbias", month=MONTH, specid=320, contid=contid, amp="LU")
        with fits.open(p) as hdul:
            assert hdul[0].header["NFRAMES"] == 3
            assert abs(float(np.median(hdul[0].data))) < 0.5     # overscan removed


def test_tarlist_is_made_when_missing_and_banding_does_not_matter(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    members = {member(3, k + 1, _stamp(k), 53, "RU", "zro"): amp_fits_bytes(amp="RU", seed=k)
               for k in range(5)}
    write_tar(lay, NIGHT, 3, members)
    assert not lay.path("tarlist", month=MONTH).exists()
    run_bias(lay, MONTH, 53, "RU", BiasSettings(qa=False))
    assert lay.path("tarlist", month=MONTH).exists()
    entries = bias_io.zro_entries(lay, MONTH, 53, "RU")
    with bias_io_framestack.FrameStack() as st:
        recs = bias_io.read_frames(lay, entries, st, BiasSettings())
        idx = [r.index for r in recs]
        a = bias_io.combine_stack(st, idx, BiasSettings(band_mib=0.05))    # 8-row bands
        b = bias_io.combine_stack(st, idx, BiasSettings(band_mib=512))     # one band
        top = st.band(idx, 0, 40)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[:40], R.stack_biweight_reference(top)[0], rtol=0, atol=1e-5)
    assert bias_io_framestack.band_rows(100, 64) == 162 and bias_io_framestack.band_rows(5000, 1) == 8


def test_config_settings_reach_the_stage(month_archive, tmp_path):
    lay = month_archive["layout"]
    cfg = tmp_path / "h.toml"
    cfg.write_text("[stages.bias]\nscale_hi = 3.0\nqa = false\n")
    res = CliRunner().invoke(cli, ["--config", str(cfg), "--raw", str(lay.raw), "--red", str(lay.red),
                                   "bias", MONTH, "--ifuslot", "53", "--amp", "RL"])
    assert res.exit_code == 1 and "too_noisy" in res.output
    assert not lay.path("qa", stage="bias", name="201805_053_RL.png").exists()


def test_trap_rules_match_reference_restatement():
    rng = np.random.default_rng(1)
    hits = (rng.random((300, 50)) < 0.2).astype(np.uint8)
    ref_traps = []
    for col in np.nonzero(hits.sum(0) > 50)[0]:
        jmin = max(1, int(np.nonzero(hits[:, col])[0].min()) + 1 - 10)
        ref_traps.append((int(col) + 1, 1 if jmin < 100 else jmin))
    assert trap_rules(hits) == ref_traps
