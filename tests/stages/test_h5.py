"""``hetred h5`` on a shot simulated at the level it reads (:mod:`hetred.sim.h5_shot`): the shot,
survey, fiber-index and detect files against the simulator's truth and the inputs, bad input,
atomic writes, reruns, the schemas and the compression settings."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tables as tb
from astropy.io import fits

from hetred.h5 import run
from hetred.h5.schema import columns, dtype
from hetred.h5.settings import H5Settings
from hetred.jobs.units import run_unit
from hetred.layout import Layout
from hetred.sim.focalplane import slot_entry
from hetred.sim.h5_shot import simulate_h5_shot

REL = "hdr2.1"


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """One IFU (slot 053), every product, written with the default settings."""
    root = tmp_path_factory.mktemp("h5shot")
    lay = Layout(root / "raw", root / "red")
    s = simulate_h5_shot(lay, [slot_entry(53)], seed=3)
    st = H5Settings()
    outs = {}
    for stage, unit, fn in ((run.STAGE_SHOT, s.datevobs, lambda: run.run_h5_shot(lay, s.datevobs, st)),
                            (run.STAGE_SURVEY, REL, lambda: run.run_h5_survey(lay, st)),
                            (run.STAGE_FIBERINDEX, REL, lambda: run.run_h5_fiberindex(lay, st)),
                            (run.STAGE_DETECT, s.month, lambda: run.run_h5_detect(lay, s.month, st)),
                            (run.STAGE_DETECT_MERGE, REL, lambda: run.run_h5_detect_merge(lay, st))):
        r = run_unit(lay, stage, unit, fn)
        assert r.status == "done", r.message
        outs[stage] = r.outcome
    s.truth["outcomes"] = outs
    return s


def shot_path(s) -> Path:
    return s.layout.path("h5_shot", name=REL, datevobs=s.datevobs)


def test_shot_file_tables_titles_and_row_order(shot):
    with tb.open_file(str(shot_path(shot))) as f:
        fib, idx, img = f.root.Data.Fibers, f.root.Data.FiberIndex, f.root.Data.Images
        assert (f.root.Data._v_title, fib.title, idx.title, img.title, f.root.Shot.title) == (
            "VIRUS Fiber Data and Metadata", "Fiber Info", "Fiber Coord Info", "Image Info", "Shot Info")
        assert f.root.Astrometry._v_title == "Astrometry Info"
        assert f.root.Calibration._v_title == "HETDEX Calibration Info"
        assert fib.nrows == idx.nrows == 3 * 4 * 112 and img.nrows == 12
        assert fib.dtype == dtype(columns("fibers")) and img.dtype == dtype(columns("images"))
        for c in idx.colnames:
            a, b = fib.col(c), idx.col(c)
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), c
        assert fib.cols.ra.is_indexed and fib.cols.multiframe.is_indexed and idx.cols.ra.is_indexed
        assert idx.cols.multiframe.is_indexed and img.cols.multiframe.is_indexed
        assert fib.cols.ra.index.is_csi
        ids = fib.cols.fiber_id[:]
        assert all(len(i) == 38 for i in ids)
        assert ids[0] == b"20180110007_1_multi_320_053_020_LL_001"
        assert fib.cols.multiframe[0] == b"multi_320_053_020_LL"
        r = fib[113]
        assert (r["fibidx"], r["fibnum"], r["expnum"], r["amp"], r["specid"], r["ifuslot"], r["ifuid"]) == (
            1, 2, 1, b"LU", b"320", b"053", b"020")
        assert r["fiber_id"][12:13] == b"1" and r["fiber_id"][35:38] == b"002"
        assert np.all(fib.cols.Throughput[:] == 0)
        assert np.all(np.isfinite(fib.cols.ra[:]))


def test_fibers_hold_the_inputs(shot):
    lay = shot.layout
    slot = shot.slots[0]
    keys = {"night": shot.night, "obs": shot.obs, "exp": 2, "specid": slot.specid, "ifuslot": slot.ifuslot,
            "ifuid": slot.ifuid, "amp": "RL"}
    with fits.open(lay.path("multi", **keys)) as h:
        spec, ifupos, err1d = h["spectrum"].data, h["ifupos"].data, h["error1d"].data
        image = h[0].data
    with fits.open(lay.path("calfib", month=shot.month, datevobs=shot.datevobs, specid=slot.specid,
                            ifuslot=slot.ifuslot, ifuid=slot.ifuid)) as h:
        r0 = 448 + 2 * 112
        cal = [h[k].data[r0:r0 + 112] for k in range(5)]
    dith = {}
    for line in lay.path("dithall", datevobs=shot.datevobs).read_text().splitlines()[1:]:
        p = line.split()
        dith[(p[9], p[7])] = (float(p[0]), float(p[1]), float(p[5]), float(p[6]))
    with tb.open_file(str(shot_path(shot))) as f:
        rows = f.root.Data.Fibers.read_where("(multiframe == b'multi_320_053_020_RL') & (expnum == 2)")
        im = f.root.Data.Images.read_where("(multiframe == b'multi_320_053_020_RL') & (expnum == 2)")
    assert len(rows) == 112
    assert np.array_equal(rows["spectrum"], spec) and np.array_equal(rows["error1Dfib"], err1d)
    assert np.array_equal(rows["ifux"], ifupos[:, 0]) and np.array_equal(rows["ifuy"], ifupos[:, 1])
    for name, a in zip(("calfib", "calfibe", "calfib_counts", "calfibe_counts", "spec_fullsky_sub"), cal):
        assert np.array_equal(rows[name], a), name
    want = np.array([dith[("exp02", f"multi_320_053_020_RL_{k:03d}.ixy")] for k in range(1, 113)])
    assert np.allclose(rows["ra"], want[:, 0].astype(np.float32)) and np.allclose(rows["fpx"], want[:, 2])
    assert np.array_equal(im["image"][0], image)


def test_shot_row_and_attributes(shot):
    with tb.open_file(str(shot_path(shot))) as f:
        s = f.root.Shot.read()[0]
        attrs = f.root.Shot.attrs
        h1 = attrs["header_exp01"]
        flim = attrs["fluxlimit_4540"]
        tp = f.root.Calibration.Throughput.throughput.read()
        nv = f.root.Astrometry.NominalVals.read()
        qa = f.root.Astrometry.QA.read()
        assert f.root.Astrometry.StarCatalog.attrs["catalog"] == "SDSS"
        assert f.root.Astrometry.Dithall.exp02.nrows == 448
        assert f.root.Astrometry.fplane.nrows == 1
    sc = shot.scene
    assert (s["shotid"], s["date"], s["obsid"], s["datevobs"], s["n_ifu"]) == (20180110007, 20180110, 7,
                                                                              b"20180110v007", 1)
    assert s["objid"] == b"DEXsp_h5sim" and s["field"] == b"dex-spring" and s["time"] == b"0411211"
    assert abs(s["trajcra"] - sc.header_ra) < 1e-4 and abs(s["trajcpa"] - sc.header_pa) < 1e-4
    assert (s["ra"], s["dec"]) == pytest.approx((sc.ra0, sc.dec0), abs=2e-6)
    assert s["fwhm_virus"] == pytest.approx(shot.truth["fwhm"], abs=1e-4) and s["nstars_fit_fwhm"] == 7
    assert s["response_4540"] == pytest.approx(float(tp["throughput"][tp["wavelength"] == 4540.0][0]))
    assert np.allclose(s["relflux_virus"], sc.transparency, atol=1e-6)
    assert np.allclose(s["xditherpos"], [0, 1.27, 1.27]) and np.allclose(s["yditherpos"], [0, -0.73, 0.73])
    assert list(s["expnum"]) == [1, 2, 3] and np.allclose(s["exptime"], 360.0)
    assert list(s["nstars_fit"]) == [6, 7, 8] and list(qa["expnum"]) == [1, 2, 3]
    assert isinstance(h1, fits.Header) and h1["OBJECT"] == "DEXsp_h5sim"
    assert list(nv["relflux_virus"]) == pytest.approx(list(sc.transparency), abs=1e-6)
    assert np.isfinite(flim) and 0 < flim < 1e-15


def test_the_star_read_back_from_calfib_has_its_true_flux(shot):
    from hetred.h5.readback import extract

    t = shot.truth["star"]
    ex = extract(shot_path(shot), t["ra"], t["dec"], shot.truth["fwhm"])
    assert ex.n_fibers >= 15
    ratio = ex.flam / shot.star_flam
    for lo in range(4000, 5400, 100):
        sel = (ex.wave >= lo) & (ex.wave < lo + 100)
        assert abs(np.nanmean(ratio[sel]) - 1.0) < 0.05, lo


def test_survey_and_flux_limits(shot):
    lay = shot.layout
    with tb.open_file(str(lay.path("h5_survey", name=REL))) as f:
        sv = f.root.Survey.read()
        assert f.root.Survey.title == ""
    with tb.open_file(str(shot_path(shot))) as f:
        row = f.root.Shot.read()
    assert sv.dtype == row.dtype and len(sv) == 1 and sv["shotid"][0] == 20180110007
    from astropy.table import Table

    flim = Table.read(str(lay.path("h5_flux_limits", name=REL)), format="ascii",
                      names=["datevobs", "col2", "fluxlimit_4540"])
    assert list(flim["datevobs"]) == ["20180110v007"] and flim["col2"][0] == 20180110007
    assert 0 < flim["fluxlimit_4540"][0] < 1e-15


def test_fiber_index_and_mask(shot):
    import healpy as hp

    lay = shot.layout
    with tb.open_file(str(lay.path("h5_fiberindex", name=REL))) as f:
        fi = f.root.FiberIndex.read()
        assert f.root.FiberIndex.title == "Survey Fiber Coord Info"
        assert f.root.FiberIndex.cols.healpix.index.is_csi and f.root.FiberIndex.cols.ra.index.is_csi
    with tb.open_file(str(lay.path("h5_fibermask", name=REL, mask="fiber_mask_2.1.3.h5"))) as f:
        mk = f.root.Flags.read()
    with tb.open_file(str(shot_path(shot))) as f:
        src = f.root.Data.FiberIndex.read()
    assert fi.dtype == dtype(columns("survey_fiberindex")) and len(fi) == len(src) == len(mk)
    assert np.array_equal(fi["fiber_id"], src["fiber_id"]) and np.array_equal(mk["fiber_id"], fi["fiber_id"])
    assert np.array_equal(fi["healpix"], hp.ang2pix(2 ** 15, src["ra"].astype(float), src["dec"].astype(float),
                                                    lonlat=True))
    assert set(fi["specid"]) == {b"320"} and set(fi["amp"]) == {b"LL", b"LU", b"RL", b"RU"}
    assert np.all(fi["shotid"] == 20180110007) and np.all(fi["datevobs"] == b"20180110v007")
    assert mk["flag"].all() and mk["amp_flag"].all()


def test_detect_file_rows_in_step(shot):
    lay = shot.layout
    line = shot.truth["lines"][0]
    with tb.open_file(str(lay.path("h5_detect", name=REL))) as f:
        assert f.title == "HDR2.1 Detections Database"
        det, spec, fib = f.root.Detections.read(), f.root.Spectra.read(), f.root.Fibers.read()
        assert f.root.Detections.cols.detectid.is_indexed and f.root.Spectra.cols.detectid.is_indexed
    assert len(det) == 1 and det["detectid"][0] == 2_100_000_000     # the S/N 3.1 candidate is cut
    assert np.array_equal(spec["detectid"], det["detectid"])
    assert len(fib) == line["fibers"] and set(fib["detectid"]) == {2_100_000_000}
    d = det[0]
    assert d["inputid"] == b"20180110v007_320_053_020_001"
    assert d["fiber_id"].decode() == line["best_fiber_id"]
    assert d["detectname"].startswith(b"HETDEX J100")
    assert d["wave"] == pytest.approx(line["wave"]) and d["sn"] == pytest.approx(14.0)
    s = spec[0]
    assert np.allclose(s["spec1d"], s["spec1d_nc"] / s["apcor"], rtol=1e-5)
    assert np.sum(s["spec1d"]) == pytest.approx(line["flux"] * 1e17, rel=0.01)    # per 2 Å bin
    stat = lay.path("h5_ifustat", name=REL, month=shot.month).read_text().splitlines()
    assert stat == ["ampid ndet ndetsel", "20180110v007_320_053_020 2 1"]


def test_detect_merge_renumbers_months_without_collisions(shot, tmp_path):
    from hetred.h5.detect import merge_detect

    src = shot.layout.path("h5_detect_month", name=REL, month=shot.month)
    files = [src, src, src]
    out = merge_detect(files, tmp_path / "merged.h5")
    with tb.open_file(str(out.path)) as f:
        det, spec, fib = f.root.Detections.read(), f.root.Spectra.read(), f.root.Fibers.read()
    assert list(det["detectid"]) == [2_100_000_000, 2_100_000_001, 2_100_000_002]
    assert np.array_equal(spec["detectid"], det["detectid"])
    assert sorted(set(fib["detectid"])) == list(det["detectid"])


def test_head_schema_and_compression(shot, tmp_path):
    from hetred.h5.shot import write_shot

    lay = shot.layout
    h = write_shot(lay, shot.datevobs, H5Settings(schema="head", compress="none"), out=tmp_path / "head.h5")
    with tb.open_file(str(h.path)) as f:
        names = f.root.Data.Fibers.colnames
        assert "error1D" in names and "calfib_ffsky" in names and "Throughput" not in names
        assert f.root.Astrometry.StarCatalog.title == "StarCatalog"
        for node in f.walk_nodes("/", "Leaf"):
            assert node.filters.complevel == 0, node._v_pathname
    with tb.open_file(str(shot_path(shot))) as f:       # the default: auto
        assert f.root.Data.Fibers.filters.complevel == 0 and f.root.Data.Images.filters.complevel == 0
        assert f.root.Data.FiberIndex.filters.complib == "zlib" and f.root.Data.FiberIndex.filters.shuffle
        assert f.root.Shot.filters.complib == "zlib"


def test_missing_calfib_and_astrometry_give_nan_and_zero_with_warnings(tmp_path):
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    s = simulate_h5_shot(lay, [slot_entry(63)], seed=5, images=False, calfib=False, astrometry=False,
                         throughput=False, detections=False)
    r = run_unit(lay, run.STAGE_SHOT, s.datevobs, lambda: run.run_h5_shot(lay, s.datevobs))
    assert r.status == "done", r.message
    w = " ".join(r.outcome.counts["warnings"])
    assert "calibrated fibers" in w and "fiber coordinates" in w and "shot pointing" in w
    assert r.outcome.notes
    with tb.open_file(str(lay.path("h5_shot", name=REL, datevobs=s.datevobs))) as f:
        fib = f.root.Data.Fibers
        assert np.all(np.isnan(fib.cols.ra[:])) and np.all(np.isnan(fib.cols.fpy[:]))
        assert not np.any(fib.cols.calfib[:]) and not np.any(fib.cols.calfibe[:])
        row = f.root.Shot.read()[0]
        assert np.isnan(row["ra"]) and np.isnan(row["fwhm_virus"]) and np.isnan(row["response_4540"])
        assert np.isnan(f.root.Shot.attrs["fluxlimit_4540"])
        assert "fplane" not in f.root.Astrometry
    # the fiber index of a shot without astrometry: healpix 0, flag false
    r2 = run_unit(lay, run.STAGE_FIBERINDEX, REL, lambda: run.run_h5_fiberindex(lay))
    assert r2.status == "done" and "without RA/Dec" in r2.outcome.counts["warnings"][0]
    with tb.open_file(str(lay.path("h5_fiberindex", name=REL))) as f:
        assert not np.any(f.root.FiberIndex.cols.healpix[:])
    # a rerun skips the done unit; the calibrated fibers appearing make it stale (redone)
    assert run_unit(lay, run.STAGE_SHOT, s.datevobs, lambda: run.run_h5_shot(lay, s.datevobs)).status == "skipped"
    from hetred.sim import h5_shot as sim

    sim._calfib(np.random.default_rng(0), s, s.slots[0], lay, 0.02, True)
    r3 = run_unit(lay, run.STAGE_SHOT, s.datevobs, lambda: run.run_h5_shot(lay, s.datevobs))
    assert r3.status == "done"
    with tb.open_file(str(lay.path("h5_shot", name=REL, datevobs=s.datevobs))) as f:
        assert np.any(f.root.Data.Fibers.cols.calfib[:])


def test_a_failure_mid_write_leaves_no_file(shot, tmp_path, monkeypatch):
    from hetred.errors import HetredError
    from hetred.h5 import inputs
    from hetred.h5 import shot as shotmod

    calls = {"n": 0}
    real = inputs.read_multi

    def flaky(path, images=True):
        calls["n"] += 1
        if calls["n"] == 5:
            raise HetredError(f"multi file {path}: cannot read (truncated)")
        return real(path, images)

    monkeypatch.setattr(shotmod.inputs, "read_multi", flaky)
    dest = tmp_path / "out" / "x.h5"
    with pytest.raises(HetredError, match="truncated"):
        shotmod.write_shot(shot.layout, shot.datevobs, out=dest)
    assert not dest.exists() and not list(dest.parent.glob("*"))


def test_rewrite_while_another_process_reads_the_old_file(shot, tmp_path):
    from hetred.h5.shot import write_shot

    dest = tmp_path / "shot.h5"
    write_shot(shot.layout, shot.datevobs, H5Settings(), out=dest)
    reader = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, tables; f = tables.open_file(sys.argv[1]); print(f.root.Data.Fibers.nrows, flush=True); "
        "time.sleep(6); print(f.root.Data.Fibers.cols.ra[0], flush=True)"), str(dest)],
        stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "1344"
    write_shot(shot.layout, shot.datevobs, H5Settings(compress="none"), out=dest)     # renamed over it
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and out.strip()
    with tb.open_file(str(dest)) as f:
        assert f.root.Data.FiberIndex.filters.complevel == 0


def test_bad_shot_name_and_no_multi_files(tmp_path):
    from hetred.errors import HetredError

    lay = Layout(tmp_path / "raw", tmp_path / "red")
    with pytest.raises(HetredError, match="DATEvOBS"):
        run.run_h5_shot(lay, "2018v1")
    with pytest.raises(HetredError, match="no multi files of 20180110v009"):
        run.run_h5_shot(lay, "20180110v009")


def test_cli_h5_and_spec2d(shot):
    from click.testing import CliRunner

    from hetred.cli import cli

    lay = shot.layout
    base = ["--raw", str(lay.raw), "--red", str(lay.red)]
    r = CliRunner().invoke(cli, base + ["h5", "shot", shot.month], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output or "already done" in r.output
    r = CliRunner().invoke(cli, base + ["h5", "survey", "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0 and "hdr2.1: done (would skip)" in r.output, r.output
    r = CliRunner().invoke(cli, base + ["h5", "detect"])
    assert r.exit_code != 0 and "MONTH or --merge" in str(r.exception)
    r = CliRunner().invoke(cli, base + ["spec2d", "--shot", shot.datevobs], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, base + ["spec2d", "--merge"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    sid = 20180110007
    with tb.open_file(str(lay.path("spec2d", name=REL, shotid=sid))) as f:
        im = f.root.FiberImages.read()
        s1 = f.root.Spec1D.read()
        assert f.root.FiberImages.title == "Fiber Cutout Images" and f.root.PhotImages.nrows == 1
    with tb.open_file(str(lay.path("h5_detect", name=REL))) as f:
        spec = f.root.Spectra.read()
    assert im["im_sum"].shape == (1, 9, 100) and im["im_array"].shape == (1, 4, 9, 100)
    peak = np.unravel_index(np.argmax(im["im_sum"][0]), (9, 100))
    assert peak[0] == 4 and abs(peak[1] - 50) <= 1          # the line at the centre of the cut-out
    assert abs(im["im_wave"][0][50] - shot.truth["lines"][0]["wave"]) <= 2.0
    assert np.allclose(s1["spec1D"][0], spec["spec1d"][0] / 2.0)
    with tb.open_file(str(lay.path("spec2d_merged", name=REL))) as f:
        assert f.root.FiberImages.nrows == 1 and f.root.Spec1D.cols.detectid.is_indexed


def test_markers_record_the_outputs(shot):
    m = json.loads(shot.layout.path("marker_done", stage=run.STAGE_SHOT, unit=shot.datevobs).read_text())
    assert m["outputs"] == [str(shot_path(shot))] and m["counts"]["fibers"] == 1344
    assert any(p.endswith("_cal.fits") for p in m["depends"])
