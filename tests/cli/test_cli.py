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
