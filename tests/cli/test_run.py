"""hetred run on the session's simulated night (bias + bgmodel; the whole chain is slow), and a
generated .slurm script run by plain bash (its built-in runner: no Slurm needed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hetred.cli import cli
from hetred.layout import Layout

MONTH = "201801"


def hetred(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from hetred.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def red_run(sim_night, tmp_path_factory):
    """bias + bgmodel of the simulated month with 2 workers, into a red root of our own."""
    red = tmp_path_factory.mktemp("run") / "red"
    lay = Layout(sim_night.layout.raw, red)
    r = hetred("--raw", str(lay.raw), "--red", str(red), "run", MONTH, "--stages", "bias,bgmodel", "--jobs", "2")
    return lay, r


def test_run_bias_bgmodel(red_run, sim_night):
    lay, r = red_run
    # one slot: 4 bias units, 12 bgmodel units of which the 4 'bri' are empty (a simulated month
    # has no bright-time frames): nothing failed, exit 0, the others done
    assert r.returncode == 0, r.stderr
    assert not [x for x in r.stderr.splitlines() if x.startswith("hetred: error:")], r.stderr
    assert "bias" in r.stdout and "bgmodel" in r.stdout
    row = next(x for x in r.stdout.splitlines() if x.startswith("│ bgmodel"))
    assert [c.strip() for c in row.split("│")[1:7]] == ["bgmodel", "12", "8", "0", "4", "0"], r.stdout
    assert "_bri: no bri frames with 2 < level < 15" in r.stdout
    done = sorted(p.name for p in lay.glob("marker_done", stage="bias"))
    assert done == [f"{MONTH}_053_{a}.done.json" for a in ("LL", "LU", "RL", "RU")]
    assert len(list(lay.glob("marker_done", stage="bgmodel"))) == 8
    assert sorted(p.name for p in lay.glob("marker_empty", stage="bgmodel")) == [
        f"{MONTH}_053_{a}_bri.empty.json" for a in ("LL", "LU", "RL", "RU")]
    assert not list(lay.glob("marker_failed", stage="bgmodel"))
    for p in lay.glob("marker_done", stage="bgmodel"):
        m = json.loads(p.read_text())
        assert all(Path(o).exists() for o in m["outputs"])
        assert any("masterbias_" in d for d in m["depends"])     # the calibrations it used
    assert len(list(lay.glob("masterbias", month=MONTH))) == 4
    assert not list(lay.red.rglob("*.tmp")) and not list(lay.red.rglob("*.lock"))


def test_run_again_skips_and_dry_run_writes_nothing(red_run):
    lay, _ = red_run
    before = {p: p.stat().st_mtime_ns for p in lay.red.rglob("*") if p.is_file()}
    r = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "run", MONTH, "--stages", "bias",
                                 "--dry-run"])
    assert r.exit_code == 0 and "dry run: nothing run" in r.output
    r = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "run", MONTH, "--stages", "bias"])
    assert r.exit_code == 0, r.output
    after = {p: p.stat().st_mtime_ns for p in lay.red.rglob("*") if p.is_file()}
    assert after == before          # skipped units touch nothing


def test_run_reports_a_failing_and_an_empty_unit(red_run):
    lay, _ = red_run
    # a slot without zro frames in the month: nothing to do (empty), exit 0
    r = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "run", MONTH, "--stages", "bias",
                                 "--ifuslot", "099"])
    assert r.exit_code == 0, r.output
    assert "201801_099_LL: no zro frames for IFU slot 099 amp LL" in r.output
    assert lay.path("marker_empty", stage="bias", unit="201801_099_LL").exists()
    assert not lay.path("marker_failed", stage="bias", unit="201801_099_LL").exists()
    # the libraries of twilights never reduced: failed, exit 1, one line each
    r = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "run", MONTH, "--stages",
                                 "twical-combine"])
    assert r.exit_code == 1
    assert "hetred: error: twical-combine 201801_053_LL: no reduced twilight" in r.output
    assert lay.path("marker_failed", stage="twical-combine", unit="201801_053_LL").exists()


def test_run_waits_for_a_unit_running_elsewhere(red_run):
    """A unit whose lock another process holds (a second hetred run of the month) is left to it;
    when the stage's other units have ended, run waits for it, then runs or skips it."""
    import threading

    from hetred.jobs.units import UnitLock

    lay, _ = red_run
    uid = f"{MONTH}_053_LL"
    lay.path("marker_done", stage="bias", unit=uid).unlink()
    other = UnitLock(lay, "bias", uid)
    assert other.acquire()
    timer = threading.Timer(3.0, other.release)
    timer.start()
    try:
        r = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "run", MONTH, "--stages",
                                     "bias"])
    finally:
        timer.join()
    assert r.exit_code == 0, r.output
    assert "bias: 1 unit(s) were running elsewhere: waited for them" in r.output
    assert lay.path("marker_done", stage="bias", unit=uid).exists()
    assert not lay.path("marker_lock", stage="bias", unit=uid).exists()


def test_generated_script_runs_without_slurm(red_run):
    """The .slurm script's fallback runner: lines run 2 at a time, markers written, exit 0; a job
    whose units are all empty exits 0 (nothing wrong: the chain goes on); a job whose units all
    fail exits 1 (stops an afterok chain); rerun-failed then lists the failed and missing units,
    not the empty ones."""
    lay, _ = red_run
    base = ["--raw", str(lay.raw), "--red", str(lay.red)]
    r = CliRunner().invoke(cli, [*base, "slurm-gen", "bias,twical-combine", MONTH, "--profile", "local",
                                 "--ifuslot", "53", "--ifuslot", "98", "--units-per-job", "2"])
    assert r.exit_code == 0, r.output
    env = dict(os.environ, SLURM_NTASKS="2", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    ok = lay.path("jobfile", stage="bias", name=f"bias_{MONTH}_001.slurm")
    empty = lay.path("jobfile", stage="bias", name=f"bias_{MONTH}_003.slurm")
    bad = lay.path("jobfile", stage="twical-combine", name=f"twical-combine_{MONTH}_001.slurm")
    assert "--ifuslot 053" in ok.with_suffix("").read_text() and "--ifuslot 098" in empty.with_suffix("").read_text()
    for uid in ("201801_053_LL", "201801_053_LU"):      # the bias of 053 LL, LU: redone here
        lay.path("marker_done", stage="bias", unit=uid).unlink()
    p = subprocess.run(["bash", str(ok)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "built-in runner with 2 parallel lines" in p.stdout and "2 of 2 units done, 0 empty" in p.stdout
    p = subprocess.run(["bash", str(empty)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and "0 of 2 units done, 2 empty" in p.stdout, p.stdout + p.stderr
    p = subprocess.run(["bash", str(bad)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 1 and "0 of 2 units done, 0 empty" in p.stdout, p.stdout + p.stderr
    assert p.stdout.count("exit 1 after") == 2
    r = CliRunner().invoke(cli, [*base, "slurm-gen", "bias,twical-combine", MONTH, "--profile", "local",
                                 "--ifuslot", "53", "--ifuslot", "98", "--rerun-failed", "--dry-run"])
    assert r.exit_code == 0
    # bias: 098 LL and LU are empty (not rerun), 098 RL and RU never ran; 053 done
    assert "bias_201801_rerun_001 (2 lines)" in r.output and "bias_201801_rerun_002" not in r.output
    assert "--ifuslot 098 --amp RL" in r.output and "--ifuslot 098 --amp LL" not in r.output
    # twical-combine: the 2 failed and the 2 never run
    assert "twical-combine_201801_rerun_001 (4 lines)" in r.output


@pytest.mark.slow
def test_run_whole_chain(sim_night, tmp_path):
    """bias -> bgmodel -> flat -> twical (-> sci) of the simulated night (2-4 min on 2 cores)."""
    from hetred.jobs.registry import stages
    red = tmp_path / "red"
    r = hetred("--raw", str(sim_night.layout.raw), "--red", str(red), "run", MONTH, "--jobs", "2")
    lay = Layout(sim_night.layout.raw, red)
    assert r.returncode == 0, r.stderr                   # the bri units are empty, not failed
    assert len(list(lay.glob("marker_empty", stage="bgmodel"))) == 4
    expect = [("twical-reduce", 8), ("twical-combine", 4), ("twical-a2a", 1), ("flat", 4)]
    expect += [(s.name, 3) for s in stages() if s.group == "sci" and not s.missing]   # 3 exposures x 1 IFU
    for stage, n in expect:
        assert len(list(lay.glob("marker_done", stage=stage))) == n, (stage, r.stdout)
    assert lay.path("amp_to_amp", month=MONTH).exists() and lay.path("pixmask").exists()
