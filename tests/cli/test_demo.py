"""`hetred demo`: the README's main job runs end to end and every check passes."""
from __future__ import annotations

from click.testing import CliRunner

from hetred.cli import cli


def test_demo_runs_and_passes(tmp_path):
    res = CliRunner().invoke(cli, ["demo", str(tmp_path / "demo")])
    assert res.exit_code == 0, res.output
    for stage in ("simulate", "tarlist", "bias", "bgmodel"):
        assert stage in res.output
    assert "FAIL" not in res.output and "pass" in res.output
    assert (tmp_path / "demo" / "truth").is_dir() and not (tmp_path / "demo" / "raw" / "truth").exists()
