"""Rule 1: reduction code never imports hetred.sim and never reads the truth tree."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "hetred"
#: the only modules allowed to touch the simulator: the simulator itself and the commands that run it
ALLOWED = {"sim", "simulate.py", "demo.py", "demo"}


def reduction_modules():
    for py in SRC.rglob("*.py"):
        rel = py.relative_to(SRC)
        if rel.parts[0] in ALLOWED or rel.name in ALLOWED or (len(rel.parts) > 1 and rel.parts[1] in ALLOWED):
            continue
        yield py


def test_reduction_code_never_imports_sim():
    offenders = []
    for py in reduction_modules():
        for node in ast.walk(ast.parse(py.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if node.level and node.module.startswith("sim"):
                    names.append("hetred.sim")
            if any(n == "hetred.sim" or n.startswith("hetred.sim.") for n in names):
                offenders.append(f"{py.relative_to(SRC)}:{node.lineno}")
    assert not offenders, f"reduction code imports hetred.sim: {offenders}"


def test_reduction_code_never_names_truth_paths():
    offenders = []
    for py in reduction_modules():
        if py.name == "layout.py":
            continue
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("truth_"):
                offenders.append(f"{py.relative_to(SRC)}:{node.lineno}")
    assert not offenders, f"reduction code reads truth: {offenders}"


def test_the_scan_sees_the_package():
    assert len(list(reduction_modules())) > 10
