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
    # one slot: 4 bias units, 12 bgmodel units of which the 4 'bri' fail (a one-night month has
    # no bright-time frames): exit 1, one error line each, the others done
    assert r.returncode == 1, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("hetred: error:")]
    assert len(errors) == 4 and all("_bri: no bri frames" in x for x in errors), r.stderr
    assert "bias" in r.stdout and "bgmodel" in r.stdout
    done = sorted(p.name for p in lay.glob("marker_done", stage="bias"))
    assert done == [f"{MONTH}_053_{a}.done.json" for a in ("LL", "LU", "RL", "RU")]
    assert len(list(lay.glob("marker_done", stage="bgmodel"))) == 8
    for p in lay.glob("marker_done", stage="bgmodel"):
        assert all(Path(o).exists() for o in json.loads(p.read_text())["outputs"])
    assert len(list(lay.glob("masterbias", month=MONTH))) == 4
    assert not list(lay.red.rglob("*.tmp"))


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


def test_run_reports_a_failing_unit(red_run):
    lay, _ = red_run
    r = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "run", MONTH, "--stages", "bias",
                                 "--ifuslot", "099"])
    assert r.exit_code == 1
    assert "hetred: error: bias 201801_099_LL:" in r.output
    assert lay.path("marker_failed", stage="bias", unit="201801_099_LL").exists()


def test_generated_script_runs_without_slurm(red_run):
    """The .slurm script's fallback runner: lines run 2 at a time, markers written, exit 0; a job
    whose units all fail exits 1 (stops an afterok chain); rerun-failed then lists them."""
    lay, _ = red_run
    base = ["--raw", str(lay.raw), "--red", str(lay.red)]
    r = CliRunner().invoke(cli, [*base, "slurm-gen", "bias", MONTH, "--profile", "local", "--ifuslot", "53",
                                 "--ifuslot", "98", "--units-per-job", "2"])
    assert r.exit_code == 0, r.output
    env = dict(os.environ, SLURM_NTASKS="2", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    ok = lay.path("jobfile", stage="bias", name=f"bias_{MONTH}_001.slurm")
    bad = lay.path("jobfile", stage="bias", name=f"bias_{MONTH}_003.slurm")
    assert "--ifuslot 053" in ok.with_suffix("").read_text() and "--ifuslot 098" in bad.with_suffix("").read_text()
    p = subprocess.run(["bash", str(ok)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "built-in runner with 2 parallel lines" in p.stdout and "2 of 2 units done" in p.stdout
    p = subprocess.run(["bash", str(bad)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 1 and "0 of 2 units done" in p.stdout
    assert p.stdout.count("exit 1 after") == 2
    r = CliRunner().invoke(cli, [*base, "slurm-gen", "bias", MONTH, "--profile", "local", "--ifuslot", "53",
                                 "--ifuslot", "98", "--rerun-failed", "--dry-run"])
    assert r.exit_code == 0
    # 098 LL and LU failed, RL and RU never ran: all four in the rerun job files
    assert "bias_201801_rerun_001 (4 lines)" in r.output and "rerun_002" not in r.output
    assert "--ifuslot 098 --amp LL" in r.output and "--ifuslot 053" not in r.output


@pytest.mark.slow
def test_run_whole_chain(sim_night, tmp_path):
    """bias -> bgmodel -> twical -> flat (-> sci) of the simulated night (2-4 min on 2 cores)."""
    from hetred.jobs.registry import stages
    red = tmp_path / "red"
    r = hetred("--raw", str(sim_night.layout.raw), "--red", str(red), "run", MONTH, "--jobs", "2")
    lay = Layout(sim_night.layout.raw, red)
    errors = [x for x in r.stderr.splitlines() if x.startswith("hetred: error:")]
    assert all("_bri: no bri frames" in x for x in errors), r.stderr
    expect = [("twical-reduce", 8), ("twical-combine", 4), ("twical-a2a", 1), ("flat", 4)]
    expect += [(s.name, 3) for s in stages() if s.group == "sci" and not s.missing]   # 3 exposures x 1 IFU
    for stage, n in expect:
        assert len(list(lay.glob("marker_done", stage=stage))) == n, (stage, r.stdout)
    assert lay.path("amp_to_amp", month=MONTH).exists() and lay.path("pixmask").exists()
