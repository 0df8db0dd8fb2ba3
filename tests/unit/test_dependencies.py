"""Every third-party module that hetred's code imports is a declared dependency of the package
(pyproject.toml ``[project] dependencies``), so that ``pip install .`` on a fresh machine gives
a working hetred: the CI of 2026-12-02 failed on an astrometry stage importing photutils, which
the dev environment had and the package did not declare."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "hetred"


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def test_every_imported_third_party_module_is_declared():
    mods = set().union(*(_imports(p) for p in SRC.rglob("*.py")))
    third = sorted(m for m in mods if m not in sys.stdlib_module_names and m not in ("hetred", "__future__"))
    dists = packages_distributions()
    declared = _declared()
    missing = []
    for m in third:
        names = {d.lower().replace("_", "-") for d in dists.get(m, [m])}
        if not names & declared:
            missing.append(f"{m} ({', '.join(sorted(names))})")
    assert not missing, f"imported by src/hetred but not in pyproject dependencies: {missing}"
