"""The hetred command: help with examples, version, config precedence, one-line failures."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hetred import __version__
from hetred.cli import cli
from hetred.config import load_config
from hetred.errors import HetredError


def run(*args, env=None):
    """Run the real console entry point in a subprocess (exit codes and stderr as a user sees)."""
    return subprocess.run([sys.executable, "-c", "from hetred.cli import main; main()", *args],
                          capture_output=True, text=True, env=env)


def test_version():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


@pytest.mark.parametrize("args", [["--help"], ["tarlist", "--help"]])
def test_help_has_examples(args):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0
    assert "Examples:" in r.output and "hetred tarlist" in r.output


def test_every_subcommand_has_examples():
    for name, cmd in cli.commands.items():
        r = CliRunner().invoke(cli, [name, "--help"])
        assert "Examples:" in r.output, name
        assert f"hetred {name}" in r.output or name in r.output


def test_every_subcommand_names_its_code_and_docs():
    """Two hops from `hetred --help` to a stage's code: the subcommand's help names its package."""
    root = Path(__file__).resolve().parents[2]
    for name in cli.commands:
        r = CliRunner().invoke(cli, [name, "--help"])
        code = [ln for ln in r.output.splitlines() if ln.strip().startswith("Code:")]
        docs = [ln for ln in r.output.splitlines() if ln.strip().startswith("Docs:")]
        assert code and docs, name
        first = code[0].split("Code:", 1)[1].split()[0]
        assert (root / first).exists(), (name, first)
        assert (root / docs[0].split("Docs:", 1)[1].strip()).exists(), name


def test_missing_root_fails_with_one_line(tmp_path):
    r = run("--raw", str(tmp_path / "nope"), "--red", str(tmp_path / "red"), "tarlist", "201701")
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("hetred: error:") and "does not exist" in lines[0]


def test_month_without_data_fails_with_one_line(tmp_path):
    (tmp_path / "raw").mkdir()
    r = run("--raw", str(tmp_path / "raw"), "--red", str(tmp_path / "red"), "tarlist", "201702")
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "no raw data for month 201702" in lines[0]


def test_bad_month_and_bad_option(tmp_path):
    r = run("--red", str(tmp_path), "tarlist", "2017")
    assert r.returncode != 0 and "YYYYMM" in r.stderr
    r = run("tarlist", "--no-such-option")
    assert r.returncode == 2 and "No such option" in r.stderr


def test_dry_run_writes_nothing(tmp_path):
    r = CliRunner().invoke(cli, ["--red", str(tmp_path / "red"), "tarlist", "201701", "--dry-run"])
    assert r.exit_code == 0 and "would write" in r.output
    assert not (tmp_path / "red").exists()


def test_config_precedence(tmp_path):
    cfg = tmp_path / "h.toml"
    cfg.write_text('[paths]\nraw = "/from/file/raw"\nred = "/from/file/red"\n[stages.bias]\nscale_lo = 2.5\n')
    c = load_config(cfg, environ={})
    assert str(c.raw) == "/from/file/raw" and c.stage("bias") == {"scale_lo": 2.5}
    c = load_config(cfg, environ={"HETRED_RAW": "/env/raw"})
    assert str(c.raw) == "/env/raw" and str(c.red) == "/from/file/red"
    c = load_config(cfg, raw="/flag/raw", environ={"HETRED_RAW": "/env/raw"})
    assert str(c.raw) == "/flag/raw"
    with pytest.raises(HetredError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[paths\n")
    with pytest.raises(HetredError, match="not valid TOML"):
        load_config(bad, environ={})


def test_env_overrides_reach_the_command(tmp_path):
    import os
    env = dict(os.environ, HETRED_RAW=str(tmp_path / "envraw"), HETRED_RED=str(tmp_path / "red"))
    r = run("tarlist", "201701", env=env)
    assert r.returncode != 0 and "envraw" in r.stderr


def test_tarlist_from_list_cli(tmp_path):
    lst = tmp_path / "l"
    lst.write_text("20170101/virus/virus0000001/exp01/virus/20170101T010000.0_053LL_zro.fits\n")
    r = CliRunner().invoke(cli, ["--red", str(tmp_path / "red"), "tarlist", "201701", "--from-list", str(lst)])
    assert r.exit_code == 0, r.output
    assert "zro" in r.output and (tmp_path / "red" / "tarlists" / "201701tarlist").exists()
    r = CliRunner().invoke(cli, ["--red", str(tmp_path / "red"), "tarlist", "201701", "--from-list", str(lst)])
    assert r.exit_code == 0


# --- issue 11 point 5.6: bad input rejected with one line -------------------------------------

def main_here(capsys, *args: str) -> tuple[int, list[str]]:
    """The console entry point in this process: (exit code, the non-blank stderr lines)."""
    from hetred.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, [x for x in capsys.readouterr().err.splitlines() if x.strip()]


@pytest.mark.parametrize("text, key, hint", [
    ('[path]\nraw = "/r"\n', "[path]", "did you mean '[paths]'?"),
    ('[stage.bias]\nscale_lo = 2.0\n', "[stage]", "did you mean '[stages]'?"),
    ('[stages.bgmdel]\nsci_lo = 0.2\n', "[stages.bgmdel]", "did you mean '[stages.bgmodel]'?"),
    ('[paths]\nrwa = "/r"\n', "rwa", "did you mean 'raw'?"),
    ('[paths]\nreduction = "/r"\n', "reduction", "(known: raw, red)"),
    ('[slrum]\nprofile = "local"\n', "[slrum]", "did you mean '[slurm]'?"),
])
def test_misspelt_config_tables_and_path_keys_are_errors(tmp_path, capsys, text, key, hint):
    cfg = tmp_path / "hetred.toml"
    cfg.write_text(text)
    with pytest.raises(HetredError) as err:
        load_config(cfg, environ={})
    msg = str(err.value)
    assert str(cfg) in msg and repr(key) in msg and hint in msg, msg
    code, lines = main_here(capsys, "--config", str(cfg), "--red", str(tmp_path / "red"), "tarlist", "201801",
                            "--dry-run")
    assert code == 1 and len(lines) == 1 and lines[0].startswith("hetred: error: config file"), lines


def test_config_stage_tables_are_the_registry_s():
    from hetred.config import STAGE_TABLES
    from hetred.jobs.registry import stages

    assert set(STAGE_TABLES) == {s.table for s in stages() if s.table}


def test_run_and_slurm_gen_check_stage_settings_first(tmp_path, capsys):
    """A bad [stages.X] value fails run and slurm-gen --dry-run at once, naming the file and the
    table, before any unit or job file (it used to fail every unit at run time)."""
    cfg = tmp_path / "hetred.toml"
    cfg.write_text('[stages.flat]\nmin_level = "high"\n')
    base = ["--config", str(cfg), "--raw", str(tmp_path / "raw"), "--red", str(tmp_path / "red")]
    for args in (["run", "201801", "--dry-run"], ["run", "201801"], ["slurm-gen", "all", "201801", "--dry-run"]):
        code, lines = main_here(capsys, *base, *args)
        assert code == 1 and len(lines) == 1, (args, lines)
        assert str(cfg) in lines[0] and "[stages.flat]: min_level = 'high'" in lines[0], lines[0]
    assert not (tmp_path / "red").exists()
    # only the selected stages' settings are checked
    code, lines = main_here(capsys, *base, "run", "201801", "--stages", "bias", "--dry-run")
    assert not any("min_level" in x for x in lines)


@pytest.mark.parametrize("args, text", [
    (["tarlist", "201813"], "MONTH must be YYYYMM with a month 01-12, got '201813'"),
    (["bias", "201800"], "MONTH must be YYYYMM with a month 01-12, got '201800'"),
    (["run", "201813", "--dry-run"], "MONTH must be YYYYMM with a month 01-12"),
    (["slurm-gen", "all", "201800", "--dry-run"], "MONTH must be YYYYMM with a month 01-12"),
    (["run", "--night", "20180230", "--dry-run"], "--night must be a date YYYYMMDD, got '20180230'"),
    (["flat", "320", "--month", "201813"], "--month must be YYYYMM with a month 01-12"),
    (["run", "201801", "--jobs", "0"], "0 is not in the range x>=1"),
    (["twical", "201801", "--jobs", "0"], "0 is not in the range x>=1"),
    (["sci", "201801", "--jobs", "0"], "0 is not in the range x>=1"),
])
def test_bad_months_and_jobs_are_rejected_with_one_line(tmp_path, capsys, args, text):
    code, lines = main_here(capsys, "--raw", str(tmp_path / "raw"), "--red", str(tmp_path / "red"), *args)
    assert code != 0 and len(lines) == 1 and text in lines[0], lines
    assert lines[0].startswith("hetred: error:")
