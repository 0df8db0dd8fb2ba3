"""Test helpers: where the shared real data lives (tests skip cleanly when it is absent)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def real_file(*parts: str) -> Path:
    """Path of a file under ../shared/data/real, or skip the test when it is absent."""
    p = SHARED_REAL.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real reference data not available: {p}")
    return p
