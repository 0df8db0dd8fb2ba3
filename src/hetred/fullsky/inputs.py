"""What one ``hetred fullsky`` unit reads (vred3's ``getfits`` and ``readcal2``), through the layout.

* The exposure's amps: every IFU slot and amp of the shot in the month's tarlist (the union over
  its exposures, so an IFU or amp missing from one exposure is still listed), named
  ``SSS_III_UUU_AA`` (vred3's cds9: specid, ifuslot, ifuid, amp) and sorted by that name, which
  is the alphabetical order of the multi files fullsky/rfft hands to vred3. SPECID and IFUID come
  from the multi files of the slot (any exposure), else from the night's fplane.
* Per amp: the multi file's ``spectrum`` and ``wavelength`` (HDUs 10 and 11) and its header's
  CALMONTH; the calibration library of that month (``callib``: ``fiber_to_fiber`` and the
  ``amp_to_amp`` HDU's A2A/A2ASTAT); the residual map ``res`` of the shot's month
  (:mod:`hetred.io.resmaps`, 0 without one).

An amp that cannot be used gets the reason in :attr:`hetred.fullsky.vred3.AmpInput.why` (a
missing or unreadable multi file or library, an amp-to-amp factor twical did not measure when
``require_amp_to_amp``): it is flagged in amp.dat and the others go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetred.fullsky.settings import FullskySettings
from hetred.fullsky.vred3 import AmpInput
from hetred.layout import Layout, parse
from hetred.virus.amp import AMPS
from hetred.virus.ids import format_ifuid, month_of


@dataclass(frozen=True)
class AmpId:
    specid: int
    ifuslot: int
    ifuid: str
    amp: str

    @property
    def name(self) -> str:
        return f"{self.specid:03d}_{self.ifuslot:03d}_{self.ifuid}_{self.amp}"

    def keys(self, night: str, obs: int, exp: int) -> dict:
        return {"night": night, "obs": obs, "exp": exp, "specid": self.specid, "ifuslot": self.ifuslot,
                "ifuid": self.ifuid, "amp": self.amp}


@dataclass
class ExposureInputs:
    """The amps of one exposure (amp.dat order) and what was read."""

    amps: list[AmpInput]
    ids: list[AmpId]
    inputs: list[str] = field(default_factory=list)
    resmaps: dict[str, str] = field(default_factory=dict)   #: amp name -> res map used ("none")
    warnings: list[str] = field(default_factory=list)


def shot_slots(entries, night: str, obs: int) -> dict[int, set[str]]:
    """{ifuslot: amps} of a shot's science members (any exposure) in tarlist entries."""
    out: dict[int, set[str]] = {}
    for e in entries:
        if e.kind == "sci" and e.night == night and e.obs == obs:
            out.setdefault(e.ifuslot, set()).add(e.amp)
    return out


def slot_ids(layout: Layout, night: str, obs: int, slots: set[int]) -> dict[int, tuple[int, str]]:
    """{ifuslot: (specid, ifuid)} from the shot's multi files, else from the night's fplane."""
    out: dict[int, tuple[int, str]] = {}
    for p in layout.glob("multi", night=night, obs=obs):
        f = parse("multi", str(p.relative_to(layout.red)))
        if f is not None and f["ifuslot"] in slots and f["ifuslot"] not in out:
            out[f["ifuslot"]] = (int(f["specid"]), str(f["ifuid"]))
    missing = slots - set(out)
    fp = layout.path("fplane", night=night)
    if missing and fp.exists():
        from hetred.virus.fplane import read_fplane

        for s, e in read_fplane(fp).items():
            if s in missing:
                out[s] = (int(e.specid), format_ifuid(e.ifuid))
    return out


def exposure_amps(layout: Layout, night: str, obs: int, entries) -> tuple[list[AmpId], list[str]]:
    """(every amp of the shot in amp.dat order, warnings about slots that cannot be named)."""
    slots = shot_slots(entries, night, obs)
    ids = slot_ids(layout, night, obs, set(slots))
    warn = [f"IFU slot {s:03d}: no multi file and not in the night's fplane: left out" for s in sorted(set(slots) - set(ids))]
    amps = [AmpId(ids[s][0], s, ids[s][1], a) for s in slots if s in ids for a in AMPS if a in slots[s]]
    return sorted(amps, key=lambda a: a.name), warn


def read_multi_fibers(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(spectrum, wavelength, header keys) of a multi file (HDUs 10 and 11, as vred3's getfits)."""
    from hetred.io.fastfits import read_images

    arrays, keys = read_images(path, ("spectrum", "wavelength"), ("SPECID", "IFUSLOT", "IFUID", "CALMONTH", "CALFILE"))
    return arrays["spectrum"], arrays["wavelength"], keys


def read_library(path: Path) -> tuple[np.ndarray, float, str]:
    """(fiber_to_fiber (112, 1032), A2A, A2ASTAT) of a ``callib`` file."""
    from hetred.io.fastfits import read_images, scan

    a2a, status = 1.0, "unset"
    for h in scan(path, ("A2A", "A2ASTAT")):
        if h["name"] == "amp_to_amp":
            a2a = float(h["cards"].get("A2A", 1.0))
            status = str(h["cards"].get("A2ASTAT", "unset")).strip()
    arrays, _ = read_images(path, ("fiber_to_fiber",))
    return arrays["fiber_to_fiber"], a2a, status


def read_exposure(layout: Layout, night: str, obs: int, exp: int, entries, st: FullskySettings) -> ExposureInputs:
    """Every amp of one exposure (module docstring)."""
    from hetred.io.resmaps import read_map

    ids, warn = exposure_amps(layout, night, obs, entries)
    out = ExposureInputs([], ids, warnings=warn)
    month = month_of(night)
    for a in ids:
        mpath = layout.path("multi", **a.keys(night, obs, exp))
        amp = AmpInput(a.name)
        out.amps.append(amp)
        if not mpath.exists():
            amp.why = f"no multi file {mpath.name}"
            continue
        try:
            spec, wave, keys = read_multi_fibers(mpath)
        except (OSError, ValueError, KeyError) as err:
            amp.why = f"unreadable multi file {mpath} ({err})"
            continue
        if spec.shape != (112, 1032) or wave.shape != spec.shape:
            amp.why = f"{mpath.name}: spectrum/wavelength of shape {spec.shape}/{wave.shape}"
            continue
        out.inputs.append(str(mpath))
        cal_month = str(keys.get("CALMONTH") or month)
        lib = layout.path("callib", month=cal_month, specid=a.specid, ifuslot=a.ifuslot, ifuid=a.ifuid, amp=a.amp)
        if not lib.exists():
            amp.why = f"no calibration library {lib.name} of {cal_month} (fiber-to-fiber, amp-to-amp)"
            continue
        try:
            ftf, a2a, status = read_library(lib)
        except (OSError, ValueError, KeyError) as err:
            amp.why = f"unreadable calibration library {lib} ({err})"
            continue
        if st.require_amp_to_amp and status != "measured":
            amp.why = f"amp-to-amp not measured in {lib.name} (run hetred twical {cal_month} --step a2a)"
            continue
        if ftf.shape != spec.shape:
            amp.why = f"{lib.name}: fiber_to_fiber of shape {ftf.shape}"
            continue
        out.inputs.append(str(lib))
        res = None
        if st.use_res_map:
            rmap, rpath = read_map(layout, "res", month, a.specid, a.amp)
            res = rmap if rpath is not None else None
            out.resmaps[a.name] = str(rpath) if rpath is not None else "none"
            if rpath is not None:
                out.inputs.append(str(rpath))
        amp.spectrum, amp.wave, amp.ftf, amp.a2a, amp.res = spec, wave, ftf, a2a, res
    return out
