"""The unmodified hetdex_api 0.8.7 from PyPI reads hetred's HDF5 files of a simulated shot
(issue 16's acceptance; marker ``compat``: ``python -m pytest -m compat tests/compat``, run by
.ci/run).

The test installs hetdex_api 0.8.7 into its own venv (shared/reference/hetdex_api_client.md §1:
``pip install --no-deps hetdex_api==0.8.7`` then its readers' dependencies with ``numpy<1.24``,
which brings pandas 2; on Python > 3.11, where numpy 1.23 has no wheels, the newest numpy and the
caller-side ``np.warnings`` shim), cached in ``$HETRED_HETDEX_API_VENV`` (default
``~/.cache/hetred/hetdex_api-0.8.7``; a venv whose marker file is missing is rebuilt). No file of
the installed package is edited. A shot is simulated at the level ``hetred h5`` reads
(:mod:`hetred.sim.h5_shot`: one IFU, a g = 17 star and a 4e-16 erg/s/cm^2 line), packaged by the
h5 units into ``RED/h5/hdr2.1``, and read there by tests/compat/hetdex_api_reader.py with the
venv's interpreter; the numbers it returns are judged here against the simulator's truth.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.compat

HERE = Path(__file__).resolve().parent
VERSION = "0.8.7"
READERS = ["tables", "astropy", "scipy", "matplotlib", "nway", "healpy", "regions", "dustmaps", "extinction",
           "speclite"]


def venv_python() -> Path:
    """The venv's interpreter, built (once) when missing."""
    root = Path(os.environ.get("HETRED_HETDEX_API_VENV", Path.home() / ".cache" / "hetred" / f"hetdex_api-{VERSION}"))
    py = root / "bin" / "python"
    ok = root / ".hetred-ready"
    if py.exists() and ok.exists():
        return py
    base = os.environ.get("HETRED_HETDEX_API_PYTHON", "python3")
    subprocess.run([base, "-m", "venv", "--clear", str(root)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", f"hetdex_api=={VERSION}"], check=True)
    minor = subprocess.run([str(py), "-c", "import sys; print(sys.version_info[1])"], capture_output=True,
                           text=True, check=True).stdout.strip()
    numpy = "numpy<1.24" if int(minor) <= 11 else "numpy<2.3"
    subprocess.run(pip + [numpy, "pandas<3", *READERS], check=True)
    ok.write_text(f"hetdex_api {VERSION}\n")
    return py


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    from hetred.h5 import run
    from hetred.h5.settings import H5Settings
    from hetred.jobs.units import run_unit
    from hetred.layout import Layout
    from hetred.sim.focalplane import slot_entry
    from hetred.sim.h5_shot import simulate_h5_shot

    root = tmp_path_factory.mktemp("compat")
    lay = Layout(root / "raw", root / "red")
    s = simulate_h5_shot(lay, [slot_entry(53)], seed=11)
    st = H5Settings()
    for stage, unit, fn in ((run.STAGE_SHOT, s.datevobs, lambda: run.run_h5_shot(lay, s.datevobs, st)),
                            (run.STAGE_SURVEY, st.release, lambda: run.run_h5_survey(lay, st)),
                            (run.STAGE_FIBERINDEX, st.release, lambda: run.run_h5_fiberindex(lay, st)),
                            (run.STAGE_DETECT, s.month, lambda: run.run_h5_detect(lay, s.month, st)),
                            (run.STAGE_DETECT_MERGE, st.release, lambda: run.run_h5_detect_merge(lay, st))):
        r = run_unit(lay, stage, unit, fn)
        assert r.status == "done", r.message
    truth = {"datevobs": s.datevobs, "star": s.truth["star"], "fwhm": s.truth["fwhm"], "line": s.truth["lines"][0]}
    tpath = root / "truth.json"
    tpath.write_text(json.dumps(truth))
    h5root = lay.path("h5_release", name=st.release).parent
    out = root / "hetdex_api.json"
    p = subprocess.run([str(venv_python()), str(HERE / "hetdex_api_reader.py"), str(h5root), str(tpath), str(out)],
                       capture_output=True, text=True, timeout=900, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(out.read_text())
    assert not got["errors"], "\n".join(f"{k}:\n{v}" for k, v in got["errors"].items())
    return s, lay, got


def _near(lay, s, radius):
    from hetred.h5.readback import fibers_near

    _, rows = fibers_near(lay.path("h5_shot", name="hdr2.1", datevobs=s.datevobs), s.truth["star"]["ra"],
                          s.truth["star"]["dec"], radius)
    return sorted(r.decode() for r in rows["fiber_id"])


def test_open_shot_file_fibers_and_get_fibers_table(packaged):
    s, lay, got = packaged
    assert got["shot_file"] == {"fibers": 1344, "images": 12, "shotid": s.shotid, "datevobs": s.datevobs}
    assert got["fibers"]["n"] == got["fibers"]["finite"] == 1344
    near = _near(lay, s, 3.5)
    assert got["fibers"]["near"] == near and len(near) >= 15
    assert got["fibers_table"]["fiber_id"] == near
    assert got["fibers_table"]["calfib_sum"] > 0 and "spec_fullsky_sub" in got["fibers_table"]["columns"]


def test_extract_gives_the_star_true_flux_within_5_percent(packaged):
    s, _, got = packaged
    e = got["extract"]
    wave, spec = np.array(e["wave"]), np.array(e["spec"])
    assert np.allclose(wave, 3470 + 2 * np.arange(1036))
    worst = 0.0
    for lo in range(4000, 5400, 100):
        sel = (wave >= lo) & (wave < lo + 100)
        worst = max(worst, abs(float(np.mean(spec[sel] / s.star_flam[sel])) - 1.0))
    print(f"hetdex_api Extract / true flux - 1, worst 100-A bin 4000-5400 A: {worst:.4f}")
    assert worst < 0.05
    from hetred.sim.h5_shot import STAR_XY
    assert abs(e["xc"] - STAR_XY[0]) < 0.15 and abs(e["yc"] - STAR_XY[1]) < 0.15   # no mirror, no rotation


def test_get_image2d_cutout_returns_the_right_amp(packaged):
    import tables as tb

    from hetred.h5.readback import _sep

    s, lay, got = packaged
    c = got["cutout"]
    with tb.open_file(str(lay.path("h5_shot", name="hdr2.1", datevobs=s.datevobs))) as f:
        idx = f.root.Data.FiberIndex
        d = _sep(s.truth["star"]["ra"], s.truth["star"]["dec"], idx.cols.ra[:].astype(float),
                 idx.cols.dec[:].astype(float))
        k = int(np.argmin(d))
        assert (c["multiframe"], c["expnum"]) == (idx.cols.multiframe[k].decode(), int(idx.cols.expnum[k]))
        im = f.root.Data.Images.read_where("(multiframe == mf) & (expnum == ex)",
                                           condvars={"mf": c["multiframe"].encode(), "ex": c["expnum"]})
    x, y = c["x"], c["y"]
    assert c["shape"] == [40, 40]
    assert np.array_equal(np.array(c["image"], dtype=np.float32), im["clean_image"][0][x - 20:x + 20, y - 20:y + 20])


def test_survey_lists_the_shot(packaged):
    s, lay, got = packaged
    sv = got["survey"]
    assert sv["shotid"] == [s.shotid] and sv["datevobs"] == [s.datevobs] and sv["n_ifu"] == [1]
    flim = float(lay.path("h5_flux_limits", name="hdr2.1").read_text().split()[2])
    assert sv["fluxlimit_4540"][0] == pytest.approx(flim, rel=1e-5) and sv["fwhm_virus"][0] == pytest.approx(1.7)


def test_fiber_index_query_region_finds_the_star_fibers(packaged):
    s, lay, got = packaged
    found = set(got["fiber_index"]["fiber_id"])
    within = set(_near(lay, s, 3.5))
    assert found <= within
    assert set(_near(lay, s, 2.5)) <= found            # query_disc is not inclusive near the 3.5" edge
    print(f"FiberIndex.query_region: {len(found)} of the {len(within)} fibers within 3.5\"")
    assert len(found) >= 0.9 * len(within)
    assert got["fiber_index"]["flag"] and all(got["fiber_index"]["fiber_flags"])


def test_detections_get_spectrum_gives_the_line_flux_within_5_percent(packaged):
    s, _, got = packaged
    d = got["detections"]
    assert d["n"] == 1 and d["detectid"] == [2_100_000_000] and d["sep"] < 0.5
    assert d["wave"] == pytest.approx(s.truth["lines"][0]["wave"])
    flux = float(np.sum(d["spec1d"]) * 2.0)                 # 1e-17 erg/s/cm^2/Å on a 2-Å grid
    print(f"Detections.get_spectrum line flux / truth: {flux / (s.truth['lines'][0]['flux'] * 1e17):.4f}")
    assert flux == pytest.approx(s.truth["lines"][0]["flux"] * 1e17, rel=0.05)
