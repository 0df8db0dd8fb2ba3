"""The README quick start: exactly two commands, and .ci/run runs the README's test command."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_two_commands_demo_then_tests():
    cmds = quick_start_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds)
    assert cmds[0].endswith("hetred demo")
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    test_cmd = quick_start_commands()[1].split("&& ", 2)[-1]  # after the venv activation
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()
    assert "-eq 5" in ci  # exit code 5 (no tests) is a failure
