"""What the demo records: one :class:`Check` per table row and the :class:`DemoResult` of a run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hetred.layout import Layout

if TYPE_CHECKING:
    from hetred.sim.archive import SimSummary


@dataclass
class Check:
    """One row of the demo table: a product compared with the truth."""

    stage: str
    name: str
    value: float
    tolerance: str
    passed: bool
    unit: str = ""


@dataclass
class DemoResult:
    """Everything the demo did: the roots, per-stage timings, the checks and the products."""

    root: Path
    layout: Layout
    month: str
    summary: SimSummary | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    products: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    #: what a stage hands to its checks beyond the products (e.g. measures of an in-memory run)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures and all(c.passed for c in self.checks)
