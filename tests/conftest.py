"""Shared fixtures.

``sim_night`` (session scope): ONE tiny simulated night, made once per test session with
:func:`hetred.sim.simulate_archive` (1 IFU slot, 3 zro, 1 drk, 2 flt, 1 hg, 1 cd, 2 twi, one
science shot of 3 dithers; about 10 s). Later stages' tests reuse it: ``.layout`` (raw, red and
truth roots), ``.night``, ``.ifuslot``, ``.summary``, and ``.members(kind)``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

SIM_NIGHT = "20180110"
SIM_SLOT = 53
SIM_SEED = 1


@dataclass
class SimNight:
    layout: object          #: hetred.layout.Layout with raw, red and truth roots
    night: str
    ifuslot: int
    seed: int
    summary: object         #: hetred.sim.SimSummary

    @property
    def truth_night(self) -> dict:
        """The night's truth JSON (exposures, per-amp gains and bias levels)."""
        return json.loads(self.layout.path("truth_night", night=self.night).read_text())

    def members(self, kind: str, obj: str | None = None) -> list[tuple[Path, str, dict]]:
        """(tar path, member name, exposure record) of every amp frame of one type, in time order."""
        from hetred.layout import format_relative

        out = []
        for e in self.truth_night["exposures"]:
            if e["kind"] != kind or (obj is not None and e["object"] != obj):
                continue
            tar = self.layout.path("raw_tar", night=self.night, obs=e["obs"])
            for amp in ("LL", "LU", "RL", "RU"):
                out.append((tar, format_relative("raw_member", obs=e["obs"], exp=e["exp"], stamp=e["stamp"],
                                                 ifuslot=self.ifuslot, amp=amp, kind=kind), e))
        return out

    def truth_amp(self, amp: str) -> Path:
        return self.layout.path("truth_amp", night=self.night, ifuslot=self.ifuslot, amp=amp)


@pytest.fixture(scope="session")
def sim_night(tmp_path_factory) -> SimNight:
    from hetred.layout import Layout
    from hetred.sim import FrameCounts, simulate_archive

    root = tmp_path_factory.mktemp("sim_night")
    layout = Layout(root / "raw", root / "red", root / "truth")
    summary = simulate_archive(layout, nights=SIM_NIGHT, ifuslots=[SIM_SLOT],
                               frames=FrameCounts(zro=3, drk=1, flt=2, hg=1, cd=1, twi=2, shots=1),
                               seed=SIM_SEED)
    return SimNight(layout, SIM_NIGHT, SIM_SLOT, SIM_SEED, summary)
