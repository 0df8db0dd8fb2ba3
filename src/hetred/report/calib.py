"""The calibration numbers of a night's month, per IFU slot and amp, and the QA plots the
calibration stages wrote, all from their done markers and small text products:

========================  ==============================================================
number                    where it comes from
========================  ==============================================================
bias level, noise (ADU)   ``bias_frames`` (the month's zero frames of the amp): median
                          overscan level and median biweight scale of the frames used
bias frames, traps        the bias unit's marker (``used``, ``ntraps``)
trace scatter (px)        twical-combine marker: median over fibers of the biweight
                          scale of the twilights' traces
wave scatter (Å)          twical-combine marker: the same of the wavelength solutions
wave rms (Å)              twical-reduce markers of the night: median arc-line residual
ftf scatter               twical-combine marker: of the fiber-to-fiber
dead fibers               twical-combine marker
amp-to-amp                ``amp_to_amp`` of the month
pixel-flat sigma          the camera's flat marker (``mask_sigma``)
========================  ==============================================================

QA plots: every ``.png`` a done marker of bias, bgmodel, flat, resmap lists, plus the twical
plots (``qa``, stage twical) of the month.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetred.jobs.units import read_json
from hetred.layout import Layout, parse

AMPS = ("LL", "LU", "RL", "RU")
#: (key, label, unit, range setting) of the numbers, in table order
NUMBERS = (
    ("bias_level", "bias level", "ADU", "bias_level"),
    ("bias_noise", "bias noise", "ADU", "bias_noise"),
    ("bias_frames", "bias frames", "", ""),
    ("traps", "traps", "", ""),
    ("trace_scatter", "trace scatter", "px", "trace_scatter"),
    ("wave_rms", "wave rms", "Å", "wave_rms"),
    ("wave_scatter", "wave scatter", "Å", "wave_scatter"),
    ("ftf_scatter", "ftf scatter", "", "ftf_scatter"),
    ("dead_fibers", "dead fibers", "", "dead_fibers"),
    ("a2a", "amp-to-amp", "", "a2a"),
    ("flat_sigma", "pixel-flat σ", "", "flat_sigma"),
)
_SLOT_AMP = re.compile(r"(?:^|_)(\d{3})_(LL|LU|RL|RU)(?:_|$)")


@dataclass
class CalibData:
    """Numbers per (ifuslot, amp), QA plots per (ifuslot, amp) (label -> path) and per slot."""

    month: str
    numbers: dict[tuple[int, str], dict[str, float]] = field(default_factory=dict)
    plots: dict[tuple[int, str], dict[str, Path]] = field(default_factory=dict)
    slot_plots: dict[int, dict[str, Path]] = field(default_factory=dict)
    ifus: dict[int, tuple[int, str]] = field(default_factory=dict)     #: slot -> (specid, ifuid)
    files: list[Path] = field(default_factory=list)                    #: other products to link

    def put(self, slot: int, amp: str, key: str, value: float | None) -> None:
        if value is not None and np.isfinite(value):
            self.numbers.setdefault((slot, amp), {})[key] = float(value)

    def slots(self) -> list[int]:
        return sorted({k[0] for k in self.numbers} | {k[0] for k in self.plots} | set(self.slot_plots))


def _markers(layout: Layout, stage: str) -> list[tuple[str, dict]]:
    out = []
    for p in layout.glob("marker_done", stage=stage):
        f = parse("marker_done", p.relative_to(layout.red).as_posix())
        if f is None:
            continue
        m = read_json(p)
        if m is not None:
            out.append((f["unit"], m))
    return out


def _slot_amp(uid: str) -> tuple[int, str] | None:
    m = _SLOT_AMP.search(uid)
    return (int(m.group(1)), m.group(2)) if m else None


def _month_amp_markers(layout: Layout, stage: str, month: str) -> list[tuple[str, tuple[int, str], dict]]:
    """(unit, (ifuslot, amp), marker) of the stage's done markers of ``month`` whose unit names an amp."""
    out = []
    for uid, m in _markers(layout, stage):
        sa = _slot_amp(uid)
        if sa is not None and uid.startswith(month):
            out.append((uid, sa, m))
    return out


def _pngs(m: dict) -> list[Path]:
    return [Path(o) for o in m.get("outputs", []) if str(o).endswith(".png")]


def bias_frames_numbers(path: Path) -> tuple[float, float, int] | None:
    """(median overscan level, median scale, frames used) of a ``bias_frames`` file, or None."""
    try:
        text = path.read_text()
    except OSError:
        return None
    over, scale = [], []
    for line in text.splitlines():
        p = line.split()
        if not p or p[0].startswith("#") or len(p) < 7 or p[6] != "used":
            continue
        try:
            over.append(float(p[3]))
            scale.append(float(p[5]))
        except ValueError:
            continue
    if not over:
        return None
    return float(np.median(over)), float(np.median(scale)), len(over)


def read_a2a(path: Path) -> dict[tuple[int, str], float]:
    """``amp_to_amp.txt``: (slot, amp) -> normalisation (lines ``ifuslot amp a2a ...``)."""
    out: dict[tuple[int, str], float] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 3 and not p[0].startswith("#") and p[1] in AMPS:
            try:
                out[(int(p[0]), p[1])] = float(p[2])
            except ValueError:
                continue
    return out


def calib_data(layout: Layout, night: str) -> CalibData:
    """The calibration numbers and QA plots of ``night``'s month (module docstring)."""
    month = night[:6]
    c = CalibData(month)
    for p in layout.glob("callib", month=month):
        f = parse("callib", p.relative_to(layout.red).as_posix())
        if f is not None:
            c.ifus[f["ifuslot"]] = (f["specid"], f["ifuid"])
    for uid, sa, m in _month_amp_markers(layout, "bias", month):
        cnt = m.get("counts", {})
        c.put(*sa, "traps", cnt.get("ntraps"))
        frames = layout.path("bias_frames", month=month, ifuslot=sa[0], amp=sa[1])
        got = bias_frames_numbers(frames)
        if got is not None:
            c.put(*sa, "bias_level", got[0])
            c.put(*sa, "bias_noise", got[1])
            c.put(*sa, "bias_frames", got[2])
        for png in _pngs(m):
            c.plots.setdefault(sa, {})["bias"] = png
    for uid, sa, m in _month_amp_markers(layout, "bgmodel", month):
        for png in _pngs(m):
            c.plots.setdefault(sa, {})[f"bg {uid.rsplit('_', 1)[-1]}"] = png
    for uid, sa, m in _month_amp_markers(layout, "twical-combine", month):
        cnt = m.get("counts", {})
        c.put(*sa, "trace_scatter", cnt.get("trace_scatter_median"))
        c.put(*sa, "wave_scatter", cnt.get("wave_scatter_median"))
        c.put(*sa, "ftf_scatter", cnt.get("ftf_scatter_median"))
        c.put(*sa, "dead_fibers", len(cnt.get("dead_fibers", [])))
    rms: dict[tuple[int, str], list[float]] = {}
    for uid, m in _markers(layout, "twical-reduce"):
        sa = _slot_amp(uid)
        v = m.get("counts", {}).get("wave_rms_median")
        if sa is not None and night in uid and v is not None:
            rms.setdefault(sa, []).append(float(v))
    for sa, vals in rms.items():
        c.put(*sa, "wave_rms", float(np.median(vals)))
    a2a_path = layout.path("amp_to_amp", month=month)
    for sa, v in read_a2a(a2a_path).items():
        c.put(*sa, "a2a", v)
    if a2a_path.exists():
        c.files.append(a2a_path)
    for uid, m in _markers(layout, "flat"):
        cnt = m.get("counts", {})
        amp = uid.rsplit("_", 1)[-1]
        slot = cnt.get("ifuslot")
        if slot is None or amp not in AMPS:
            continue
        c.put(int(slot), amp, "flat_sigma", cnt.get("mask_sigma"))
        for png in _pngs(m):
            c.plots.setdefault((int(slot), amp), {})["flat"] = png
    spec_slot = {sp: slot for slot, (sp, _) in c.ifus.items()}
    for uid, m in _markers(layout, "resmap"):
        mm = re.fullmatch(rf"{month}_(\d{{3}})(LL|LU|RL|RU)", uid)
        if mm and int(mm.group(1)) in spec_slot:
            for png in _pngs(m):
                c.plots.setdefault((spec_slot[int(mm.group(1))], mm.group(2)), {})["resmap"] = png
    for p in layout.glob("qa", stage="twical"):
        mm = re.fullmatch(rf"{month}_(\d{{3}})\.png", p.name)
        if mm:
            c.slot_plots.setdefault(int(mm.group(1)), {})["twical"] = p
    return c
