"""No merge-conflict markers are committed (a merge once left two blocks in README.md)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7}|>{7})( |$)", re.MULTILINE)
SUFFIXES = {".py", ".pyx", ".pxd", ".md", ".toml", ".cfg", ".txt", ".yml", ".yaml", ".sh", ".json", ".h"}


def test_no_conflict_markers_in_the_sources() -> None:
    bad = []
    for top in ("src", "tests", "docs", "benchmarks", "scripts", ".ci"):
        for p in (ROOT / top).rglob("*"):
            if p.is_file() and (p.suffix in SUFFIXES or p.name == "run"):
                if MARKER.search(p.read_text(errors="replace")):
                    bad.append(str(p.relative_to(ROOT)))
    for p in ROOT.glob("*.md"):
        if MARKER.search(p.read_text(errors="replace")):
            bad.append(p.name)
    assert not bad, f"merge-conflict markers in {bad}"
