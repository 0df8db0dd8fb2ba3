"""hetred slurm-gen: golden job files and scripts, bash -n, dependencies, rerun-failed, timing.

Nothing is simulated: the month is a hand-written tarlist (``--from-list``). Golden files live in
tests/golden/slurm_gen/ with the temporary root written as ``{TMP}``; regenerate them with
``HETRED_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_slurm_gen.py``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hetred.cli import cli
from hetred.errors import EmptyUnit, HetredError
from hetred.jobs import registry, slurm
from hetred.jobs.units import UnitOutcome, run_unit
from hetred.layout import Layout
from tests.helpers import real_file

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "slurm_gen"
MONTH = "201801"


def _tarlist_text() -> str:
    """A month by hand: 2 zro exposures x 4 amps (slot 053), 2 twilights of LL/LU with one Cd arc,
    and a science shot of 3 exposures in slots 053 and 063."""
    lines = []
    def add(night, obs, exp, stamp, slot, amp, kind):
        lines.append(f"{night}/virus/virus{obs:07d}/exp{exp:02d}/virus/{stamp}_{slot:03d}{amp}_{kind}.fits")
    for obs in (1, 2):
        for amp in ("LL", "LU", "RL", "RU"):
            add("20180110", obs, 1, f"20180110T01000{obs}.0", 53, amp, "zro")
    for exp in (1, 2):
        for amp in ("LL", "LU"):
            add("20180110", 3, exp, f"20180110T02000{exp}.0", 53, amp, "twi")
    for amp in ("LL", "LU"):
        add("20180110", 4, 1, "20180110T030000.0", 53, amp, "cmp")
    for exp in (1, 2, 3):
        for slot in (53, 63):
            add("20180110", 7, exp, f"20180110T04000{exp}.0", slot, "LL", "sci")
    return "\n".join(lines) + "\n"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    for var in ("HETRED_ACCOUNT", "TACC_SYSTEM", "HETRED_RAW", "HETRED_RED", "HETRED_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    tl = tmp_path / "201801tarlist"
    tl.write_text(_tarlist_text())
    return tmp_path, tl


def gen(tmp: Path, *args: str, config: Path | None = None):
    head = ["--raw", str(tmp / "raw"), "--red", str(tmp / "red")] + (["--config", str(config)] if config else [])
    return CliRunner().invoke(cli, [*head, "slurm-gen", *args], catch_exceptions=False)


def check_golden(name: str, text: str, tmp: Path) -> None:
    text = text.replace(str(tmp), "{TMP}")
    path = GOLDEN / name
    if os.environ.get("HETRED_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path} (run with HETRED_UPDATE_GOLDEN=1)"
    assert text == path.read_text(), f"{name} differs from its golden file"


def jobdir(tmp: Path, stage: str) -> Path:
    return Layout(tmp / "raw", tmp / "red").path("jobfile", stage=stage, name="x").parent


# ------------------------------------------------------------------------------------------------

def test_golden_stampede3(env):
    tmp, tl = env
    r = gen(tmp, "bias,twical", MONTH, "--from-list", str(tl), "--profile", "stampede3",
            "--account", "HET-TEST", "--units-per-job", "3")
    assert r.exit_code == 0, r.output
    assert "wrote the tarlist" in r.output
    for stage, name in (("bias", "bias_201801_001"), ("bias", "bias_201801_001.slurm"),
                        ("bias", "bias_201801_002"), ("twical-reduce", "twical-reduce_201801_001"),
                        ("twical-reduce", "twical-reduce_201801_002.slurm"),
                        ("twical-combine", "twical-combine_201801_001"),
                        ("twical-a2a", "twical-a2a_201801_001"), ("twical-a2a", "twical-a2a_201801_001.slurm")):
        check_golden(name, (jobdir(tmp, stage) / name).read_text(), tmp)
    names = sorted(p.name for p in jobdir(tmp, "bias").iterdir())
    assert names == ["bias_201801_001", "bias_201801_001.slurm", "bias_201801_002", "bias_201801_002.slurm"]


def test_golden_local_profile_from_config(env):
    tmp, tl = env
    cfg = tmp / "hetred.toml"
    cfg.write_text('[slurm]\nprofile = "local"\nqueue = "debug"\ncores_per_node = 2\n'
                   'setup = ["source /opt/venv/bin/activate"]\n')
    r = gen(tmp, "bgmodel", MONTH, "--from-list", str(tl), "--ifuslot", "53", config=cfg)
    assert r.exit_code == 0, r.output
    check_golden("bgmodel_201801_001.slurm", (jobdir(tmp, "bgmodel") / "bgmodel_201801_001.slurm").read_text(), tmp)
    text = (jobdir(tmp, "bgmodel") / "bgmodel_201801_001").read_text()
    assert f"--config {cfg}" in text.splitlines()[0]
    assert len(text.splitlines()) == 8       # 12 units, 2 tasks x 4 units per task a file


def test_job_files_and_scripts_rules(env):
    """No blank lines, a final newline, bash -n on every script, one unit per line (checked by
    running each line with --dry-run through the stage's own command)."""
    tmp, tl = env
    r = gen(tmp, "all", MONTH, "--from-list", str(tl), "--profile", "frontera", "--units-per-job", "5")
    assert r.exit_code == 0, r.output
    red = tmp / "red"
    scripts = sorted(red.glob("jobs/*/*.slurm"))
    jobfiles = [s.with_suffix("") for s in scripts]
    expected = {"bias", "bgmodel", "twical-reduce", "twical-combine", "twical-a2a"}
    groups = ("sci", "astrom", "throughput", "calfib", "detect", "continuum", "fullsky", "h5", "spec2d", "report")
    sci = [s for s in registry.stages() if s.group in groups and not s.missing]
    assert {s.parent.name for s in scripts} == expected | {s.name for s in sci}   # flat: no raw tars
    for s in scripts:
        p = subprocess.run(["bash", "-n", str(s)], capture_output=True, text=True)
        assert p.returncode == 0, (s, p.stderr)
        text = s.read_text()
        assert "#SBATCH -A" not in text      # no account set anywhere
        assert "module load launcher" in text and "LAUNCHER_SCHED=dynamic" in text
        assert '"$LAUNCHER_DIR/paramrun"' in text and "wait -n" in text
    per_unit = re.compile(r"^(reduce |combine |a2a )?(\d{6}(\S*)?|hdr[0-9.]+)( ->|:)")   # hdr2.1: a release unit
    for jf in jobfiles:
        text = jf.read_text()
        assert text.endswith("\n") and "\n\n" not in text and not text.startswith("\n")
        for line in text.splitlines():
            argv = shlex.split(line)
            assert argv[0] == "hetred"
            res = CliRunner().invoke(cli, [*argv[1:], "--dry-run"], catch_exceptions=False)
            units = [x for x in res.output.splitlines() if per_unit.match(x)]
            assert res.exit_code == 0 and len(units) == 1, (line, res.output)


def test_dry_run_writes_nothing_and_prints_dependencies(env):
    tmp, tl = env
    r = gen(tmp, "bias,bgmodel,twical", MONTH, "--from-list", str(tl), "--profile", "stampede3",
            "--units-per-job", "12", "--dry-run", "--submit", "--after", "4242")
    assert r.exit_code == 0, r.output
    assert not (tmp / "red").exists()
    jobs = str(tmp / "red" / "jobs")
    dep = "--kill-on-invalid-dep=yes"
    expected = [
        f"JOB_bias_001=$(sbatch --parsable --dependency=afterok:4242 {dep} {jobs}/bias/bias_201801_001.slurm)",
        f"JOB_bgmodel_001=$(sbatch --parsable --dependency=afterok:$JOB_bias_001 {dep} {jobs}/bgmodel/bgmodel_201801_001.slurm)",
        f"JOB_bgmodel_002=$(sbatch --parsable --dependency=afterok:$JOB_bias_001 {dep} {jobs}/bgmodel/bgmodel_201801_002.slurm)",
        f"JOB_twical_reduce_001=$(sbatch --parsable --dependency=afterok:$JOB_bgmodel_001:$JOB_bgmodel_002 {dep} "
        f"{jobs}/twical-reduce/twical-reduce_201801_001.slurm)",
        f"JOB_twical_combine_001=$(sbatch --parsable --dependency=afterok:$JOB_twical_reduce_001 {dep} "
        f"{jobs}/twical-combine/twical-combine_201801_001.slurm)",
        f"JOB_twical_a2a_001=$(sbatch --parsable --dependency=afterok:$JOB_twical_combine_001 {dep} "
        f"{jobs}/twical-a2a/twical-a2a_201801_001.slurm)",
    ]
    lines = [x for x in r.output.splitlines() if x.startswith("JOB_")]
    assert lines == expected
    assert "dry run: nothing written" in r.output
    check_golden("dry_run_sbatch.txt", "\n".join(lines) + "\n", tmp)


def test_submit_with_a_fake_sbatch(env, monkeypatch):
    tmp, tl = env
    bindir = tmp / "bin"
    bindir.mkdir()
    fake = bindir / "sbatch"
    fake.write_text('#!/bin/bash\nn=$(cat "$0.count" 2>/dev/null || echo 100)\nn=$((n + 1))\n'
                    'echo $n > "$0.count"\necho "$*" >> "$0.log"\necho "$n;cluster"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HETRED_ACCOUNT", "ENV-ACCT")
    r = gen(tmp, "bias,bgmodel", MONTH, "--from-list", str(tl), "--profile", "lonestar6",
            "--units-per-job", "12", "--submit")
    assert r.exit_code == 0, r.output
    log = (bindir / "sbatch.log").read_text().splitlines()
    assert log[0].startswith("--parsable ") and "--dependency" not in log[0]
    assert log[1].startswith("--parsable --dependency=afterok:101 --kill-on-invalid-dep=yes ")
    assert log[2].startswith("--parsable --dependency=afterok:101 ")
    assert "submitted bias_201801_001: 101" in r.output and "submitted bgmodel_201801_002: 103" in r.output
    rec = json.loads(Layout(tmp / "raw", tmp / "red").path("jobs_submitted", name=MONTH).read_text())
    jobs = rec["submissions"][-1]["jobs"]
    assert [(j["stage"], j["job_id"], j["dependency"]) for j in jobs] == [
        ("bias", "101", []), ("bgmodel", "102", ["101"]), ("bgmodel", "103", ["101"])]
    assert jobs[0]["units"] == ["201801_053_LL", "201801_053_LU", "201801_053_RL", "201801_053_RU"]
    assert "#SBATCH -A ENV-ACCT" in Path(jobs[0]["script"]).read_text()


def _mark(lay: Layout, stage: str, uid: str, ok: bool) -> None:
    def fn():
        if not ok:
            raise HetredError("made to fail")
        return UnitOutcome()
    run_unit(lay, stage, uid, fn)


def test_rerun_failed_selects_failed_and_missing(env):
    tmp, tl = env
    lay = Layout(tmp / "raw", tmp / "red")
    assert gen(tmp, "bias,twical", MONTH, "--from-list", str(tl), "--profile", "local").exit_code == 0
    _mark(lay, "bias", "201801_053_LL", True)
    _mark(lay, "bias", "201801_053_LU", True)
    _mark(lay, "bias", "201801_053_RL", False)          # failed; RU missing
    for uid in ("20180110v003_exp01_053_LL", "20180110v003_exp01_053_LU", "20180110v003_exp02_053_LL"):
        _mark(lay, "twical-reduce", uid, True)           # exp02 LU missing
    for uid in ("201801_053_LL", "201801_053_LU"):
        _mark(lay, "twical-combine", uid, True)
    _mark(lay, "twical-a2a", MONTH, True)
    r = gen(tmp, "bias,twical", MONTH, "--rerun-failed", "--profile", "local")
    assert r.exit_code == 0, r.output
    bias = (jobdir(tmp, "bias") / "bias_201801_rerun_001").read_text().splitlines()
    assert [x.split()[-1] for x in bias] == ["RL", "RU"]
    red = (jobdir(tmp, "twical-reduce") / "twical-reduce_201801_rerun_001").read_text().splitlines()
    assert len(red) == 1 and red[0].endswith("--amp LU --exposure 20180110v003_exp02")
    assert not (jobdir(tmp, "twical-combine") / "twical-combine_201801_rerun_001").exists()
    a2a = (jobdir(tmp, "twical-a2a") / "twical-a2a_201801_rerun_001").read_text()
    assert a2a.rstrip().endswith("--step a2a --overwrite")   # its inputs are being redone
    assert (jobdir(tmp, "bias") / "bias_201801_001").exists()  # the first generation stays
    # once everything is done, nothing is left to rerun and the old rerun files go
    _mark(lay, "bias", "201801_053_RL", True)
    _mark(lay, "bias", "201801_053_RU", True)
    r = gen(tmp, "bias", MONTH, "--rerun-failed", "--profile", "local")
    assert r.exit_code == 0 and not (jobdir(tmp, "bias") / "bias_201801_rerun_001").exists()


def test_rerun_failed_selects_stale_units_and_what_depends_on_reruns(env):
    """--rerun-failed also selects stale units (an input changed), and settled units of later
    stages that depend on a file a rerun rewrites (or may write: a missing master bias while a
    bias unit is rerun), not those depending on what no rerun touches; empty units stay."""
    from hetred.io.atomic import write_text_atomic

    tmp, tl = env
    lay = Layout(tmp / "raw", tmp / "red")
    assert gen(tmp, "bias,twical", MONTH, "--from-list", str(tl), "--profile", "local").exit_code == 0
    mb = {a: lay.path("masterbias", month=MONTH, specid=320, contid="0059", amp=a) for a in ("LL", "LU")}
    flat = lay.path("pixelflat", specid=320, amp="LL")

    def made(stage, uid, out=None, deps=()):
        def fn():
            if out is not None:
                write_text_atomic(out, "x")
            return UnitOutcome(outputs=[str(out)] if out else [], depends=[str(d) for d in deps])
        assert run_unit(lay, stage, uid, fn, overwrite=True).status == "done"

    made("bias", "201801_053_LL", mb["LL"])
    made("bias", "201801_053_LU", mb["LU"])
    run_unit(lay, "bias", "201801_053_RL", lambda: (_ for _ in ()).throw(EmptyUnit("no zro")))
    run_unit(lay, "bias", "201801_053_RU", lambda: (_ for _ in ()).throw(EmptyUnit("no zro")))
    made("twical-reduce", "20180110v003_exp01_053_LL", deps=[mb["LL"], flat])     # flat: None
    made("twical-reduce", "20180110v003_exp02_053_LL", deps=[mb["LL"], flat])
    made("twical-reduce", "20180110v003_exp01_053_LU", deps=[mb["LU"]])
    made("twical-reduce", "20180110v003_exp02_053_LU", deps=[mb["LU"]])
    for uid in ("201801_053_LL", "201801_053_LU"):
        made("twical-combine", uid)
    made("twical-a2a", MONTH)

    def listed(stage):
        f = jobdir(tmp, stage) / f"{stage}_201801_rerun_001"
        return [" ".join(x.split()[-4:]) for x in f.read_text().splitlines()] if f.exists() else []

    r = gen(tmp, "bias,twical", MONTH, "--rerun-failed", "--profile", "local")
    assert r.exit_code == 0 and not listed("bias") and not listed("twical-reduce"), r.output
    # the master bias of LU rewritten: bias LU is not stale (it wrote it), the LU twilights are
    write_text_atomic(mb["LU"], "another master bias")
    r = gen(tmp, "bias,twical", MONTH, "--rerun-failed", "--profile", "local")
    assert r.exit_code == 0, r.output
    assert not listed("bias")
    assert listed("twical-reduce") == ["--amp LU --exposure 20180110v003_exp01",
                                       "--amp LU --exposure 20180110v003_exp02"]
    assert listed("twical-combine") == []
    assert "--overwrite" in (jobdir(tmp, "twical-a2a") / "twical-a2a_201801_rerun_001").read_text()
    for uid in ("20180110v003_exp01_053_LU", "20180110v003_exp02_053_LU"):
        made("twical-reduce", uid, deps=[mb["LU"]])
    # the LL master bias gone: bias LL is stale and rerun; the LL twilights depend on what it
    # rewrites (its last done marker's output); the empty RL, RU units stay empty
    mb["LL"].unlink()
    r = gen(tmp, "bias,twical", MONTH, "--rerun-failed", "--profile", "local")
    assert r.exit_code == 0, r.output
    assert [x.split()[-1] for x in listed("bias")] == ["LL"]
    assert listed("twical-reduce") == ["--amp LL --exposure 20180110v003_exp01",
                                       "--amp LL --exposure 20180110v003_exp02"]
    # a failed bias unit (outputs unknown) may write a master bias a twilight looked for in vain
    write_text_atomic(mb["LL"], "x")
    made("bias", "201801_053_LL", mb["LL"])
    for uid in ("20180110v003_exp01_053_LL", "20180110v003_exp02_053_LL"):
        made("twical-reduce", uid, deps=[mb["LL"], flat])
    mb_rl = lay.path("masterbias", month=MONTH, specid=320, contid="0059", amp="RL")
    made("twical-reduce", "20180110v003_exp01_053_LU", deps=[mb["LU"], mb_rl])
    run_unit(lay, "bias", "201801_053_RL", lambda: (_ for _ in ()).throw(HetredError("broken")), overwrite=True)
    r = gen(tmp, "bias,twical", MONTH, "--rerun-failed", "--profile", "local")
    assert [x.split()[-1] for x in listed("bias")] == ["RL"]
    # the LU twilight that looked for the RL master bias; not the LL ones (their missing pixel
    # flat is not written by any stage rerun here)
    assert listed("twical-reduce") == ["--amp LU --exposure 20180110v003_exp01"]


def test_stale_job_files_are_removed(env):
    tmp, tl = env
    assert gen(tmp, "bias", MONTH, "--from-list", str(tl), "--units-per-job", "1", "--profile", "local").exit_code == 0
    assert len(list(jobdir(tmp, "bias").glob("bias_201801_00?"))) == 4
    assert gen(tmp, "bias", MONTH, "--profile", "local").exit_code == 0
    assert sorted(p.name for p in jobdir(tmp, "bias").iterdir()) == ["bias_201801_001", "bias_201801_001.slurm"]


def test_wall_time_from_markers(env):
    tmp, tl = env
    lay = Layout(tmp / "raw", tmp / "red")
    p = slurm.load_profile("stampede3")
    spec = registry.resolve("bias")[0]
    assert slurm.stage_timing(lay, spec) == slurm.Timing(120.0, 0)
    for i, s in enumerate((10.0, 20.0, 300.0)):
        path = lay.path("marker_done", stage="bias", unit=f"u{i}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seconds": s, "outputs": []}))
    t = slurm.stage_timing(lay, spec)
    assert t == slurm.Timing(20.0, 3) and t.source == "median of 3 done"
    # 96 units on 48 tasks: 2 per task x (20 + 10 s start-up) x 2 = 120 s -> the 10 min floor
    assert slurm.wall_time(96, 48, t, p)[0] == "00:10:00"
    # 2 x (3600 + 10) x 2 = 14440 s -> 241 min
    assert slurm.wall_time(96, 48, slurm.Timing(3600.0, 1), p)[0] == "04:01:00"
    wall, note = slurm.wall_time(96, 48, slurm.Timing(1e5, 1), p)
    assert wall == "48:00:00" and "capped" in note


def test_profiles_are_package_data_without_accounts():
    for name in slurm.PROFILES:
        p = slurm.load_profile(name)
        assert p.name == name and p.account == "" and p.tasks >= 1
        assert slurm.parse_hms(p.min_wall) <= slurm.parse_hms(p.max_wall)
    assert slurm.load_profile("stampede3").queue == "skx"
    assert slurm.load_profile("local").module == ""
    with pytest.raises(HetredError, match="unknown setting"):
        slurm.settings("local", {"acount": "x"})
    assert slurm.default_profile_name({}, {"TACC_SYSTEM": "ls6"}) == "lonestar6"
    assert slurm.default_profile_name({}, {}) == "local"
    assert slurm.settings("local", {"account": "CFG"}, environ={"HETRED_ACCOUNT": "ENV"}).account == "ENV"
    assert slurm.settings("local", {"account": "CFG"}, account="CLI", environ={}).account == "CLI"


def test_bad_arguments_fail_with_one_line(env):
    tmp, tl = env
    r = CliRunner().invoke(cli, ["--red", str(tmp / "red"), "slurm-gen", "bais", MONTH, "--dry-run"])
    assert r.exit_code != 0 and "unknown stage(s) bais" in str(r.exception)
    r = CliRunner().invoke(cli, ["--red", str(tmp / "red"), "slurm-gen", "bias", MONTH, "--night", "20180210"])
    assert r.exit_code != 0 and "disagree" in str(r.exception)


def test_real_201701_plan(tmp_path):
    """The real January 2017 list: 14 IFU slots x 4 amps with zro frames, as issue 7 asks; twical
    and sci units counted too (sci only once hetred.sci is installed)."""
    from hetred.jobs.runner import scope_entries

    path = real_file("tarlists", "201701tarlist")
    r = CliRunner().invoke(cli, ["--raw", str(tmp_path / "raw"), "--red", str(tmp_path / "red"), "slurm-gen",
                                 "all", "201701", "--from-list", str(path), "--dry-run", "--profile", "stampede3"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert re.search(r"│ bias\s+│\s+56 │", r.output)
    assert "201701 --ifuslot 073 --amp LL" in r.output and "dry run: nothing written" in r.output
    assert not (tmp_path / "red").exists()
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    month, entries, _ = scope_entries(lay, "201701", None, None, path, dry_run=True)
    scope = registry.Scope(lay, month, entries)
    counts = {s.name: len(registry.enumerate_units(s, scope)) for s in registry.stages()}
    assert counts["bias"] == 56 and counts["bgmodel"] == 168 and counts["flat"] == 0
    assert counts["twical-reduce"] == 3864 and counts["twical-combine"] == 56 and counts["twical-a2a"] == 1
    assert counts.get("sci", 204 * 14) == 204 * 14          # 204 science exposures x 14 IFU slots
    assert "no nights of 201701" in scope.notes["flat"]
