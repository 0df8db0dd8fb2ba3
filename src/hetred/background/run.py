"""Step 5: background models, ``hetred bgmodel MONTH`` (docs/stages/bgmodel.md).

Replaces karlspipe hdr2.1 ``back/rpsci0kg`` (kind ``sci``), ``rpsci1kg`` (``bri``), ``rptwi0kg``
(``twi``), ``rgfits``/``rgfits0`` and the Fortran they run: ``improcn`` (overscan and master bias
removed, level = central biweight / 25, frame scaled to level 25), ``imcmb`` (per-pixel biweight)
and ``imgetgap`` (the background between and around the fiber blocks).

Unit: month x IFU slot x amp x kind, e.g. ``201801_053_LL_sci``. The unit's frames (sci frames
for sci and bri, twi frames for twi) are read once each from their tars; a frame is kept when its
level passes the kind's cut; the kept frames, scaled to level 25, are combined per pixel
(``bgcombined``) and the combination is turned into the model (``bgmodel``) by one of two methods:
``model`` (default, :mod:`hetred.background.scattered`: dark + a fitted amplitude times the fiber light
convolved with a 1/distance kernel) or ``karl`` (:mod:`hetred.background.imgetgap`, Karl's imgetgap
ported exactly). Both images are 1032 x 1032 float32 in the RAW readout orientation, like Karl's.

Rows and columns below are Karl's 1-based numbers unless a name ends in ``0``.
"""
from __future__ import annotations

import time
from collections import Counter

import numpy as np

from hetred.background.frames import combine_frames, month_index, read_frames
from hetred.background.model import build_model
from hetred.background.products import write_products, write_qa
from hetred.background.settings import KINDS, RAWTYPE, STAGE, BgSettings
from hetred.errors import EmptyUnit, HetredError
from hetred.io.framestack import FrameStack
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.virus import amp as ampgeom


def unit_id(month: str, ifuslot: int, amp: str, kind: str) -> str:
    """``201801_053_LL_sci``."""
    return f"{month}_{int(ifuslot):03d}_{amp}_{kind}"


def run_bgmodel(layout: Layout, month: str, ifuslot: int, amp: str, kind: str,
                settings: BgSettings | None = None) -> UnitOutcome:
    """Build the background model of one month x IFU slot x amp x kind (module docstring).

    Nothing to do in the data (:class:`EmptyUnit`, an *empty* unit, not a failure): the month's
    tarlist has no frame of the kind's type for the amp, or every frame read is outside the
    kind's level cut (a dark month has no ``bri`` frames); the empty marker records the levels
    seen and depends on the tarlist and master biases, so a rerun re-evaluates it when they
    change. Raises :class:`HetredError` (one line, failed) when frames could not be used for
    another reason (unreadable, no master bias, another SPECID) and none is left.
    """

    s = settings or BgSettings()
    if kind not in KINDS or amp not in ampgeom.AMPS:
        raise HetredError(f"kind must be one of {', '.join(KINDS)} and amp one of "
                          f"{', '.join(ampgeom.AMPS)}, got {kind!r}, {amp!r}")
    slot, uid, t0 = f"{int(ifuslot):03d}{amp}", unit_id(month, ifuslot, amp, kind), time.perf_counter()
    entries = month_index(layout, month).get((int(ifuslot), amp, RAWTYPE[kind]), [])
    tarlist = layout.path("tarlist", month=month)
    if not entries:
        raise EmptyUnit(f"no {RAWTYPE[kind]} frames for {slot} in the {month} tarlist",
                        counts={"kind": kind, "cut": s.cut_text(kind), "read": 0, "used": 0}, depends=[tarlist])
    timings = {}
    with FrameStack(s.tmpdir) as stack:
        records, biases = read_frames(layout, month, amp, kind, entries, stack, s)
        used = [r for r in records if r.verdict == "used"]
        specid = Counter(r.specid for r in used).most_common(1)[0][0] if used else -1
        for r in used:
            if r.specid != specid:
                r.verdict, r.note = "other_specid", f"SPECID {r.specid:03d}, the unit's {specid:03d}"
        used = [r for r in used if r.verdict == "used"]
        bias_files = [layout.path("masterbias", month=month, specid=sp, contid=ct, amp=amp) for sp, ct in biases]
        if not used:
            levels = [r.level for r in records if np.isfinite(r.central)]
            if records and all(r.verdict == "outside_cut" for r in records):
                raise EmptyUnit(
                    f"no {kind} frames with {s.cut_text(kind)} for {slot} in {month} ({len(records)} read, "
                    f"levels {min(levels):.3g}-{max(levels):.3g})",
                    counts={"kind": kind, "cut": s.cut_text(kind), "read": len(records), "used": 0,
                            "levels": [round(min(levels), 4), round(max(levels), 4)],
                            "frames": [{"member": r.member, "level": round(r.level, 5)} for r in records]},
                    depends=[tarlist, *bias_files])
            why = [f"{len(records)} read"] + ([f"levels {min(levels):.3g}-{max(levels):.3g}"] if levels else [])
            why += [f"{n} {v}" for v, n in sorted(Counter(r.verdict for r in records).items())
                    if v != "outside_cut"]
            missing = sorted({f"masterbias_{r.specid:03d}_{r.contid}_{amp}" for r in records
                              if r.verdict == "no_masterbias"})
            hint = f"; no {', '.join(missing)} (run hetred bias {month})" if missing else ""
            bad = [r for r in records if r.verdict == "unreadable"]
            if bad:     # name the first unreadable file (its RawReadError text names the member)
                hint += f"; unreadable: {bad[0].note}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
            raise HetredError(f"no {kind} frames with {s.cut_text(kind)} for {slot} in {month} "
                              f"({', '.join(why)}){hint}")
        timings["read"], t1 = time.perf_counter() - t0, time.perf_counter()
        combined = combine_frames(stack, used, biases, s)
    timings["combine"], t1 = time.perf_counter() - t1, time.perf_counter()
    model, info = build_model(combined, s)
    timings["model"], t1 = time.perf_counter() - t1, time.perf_counter()
    f = dict(month=month, bgkind=kind, specid=specid, ifuslot=int(ifuslot), amp=amp)
    outputs = [str(p) for p in write_products(layout, f, kind, used, len(records), combined, model, info, s)]
    timings["write"], t1 = time.perf_counter() - t1, time.perf_counter()
    if s.qa:
        outputs.append(str(write_qa(layout.path("qa", stage=STAGE, name=f"{uid}.png"), uid, combined,
                                    model, info, f"{len(used)} {RAWTYPE[kind]} frames, {s.cut_text(kind)}, "
                                    f"method {info.method}")))
        timings["qa"] = time.perf_counter() - t1
    levels = [r.level for r in used]
    counts = {
        "kind": kind, "cut": s.cut_text(kind), "read": len(records), "used": len(used), "specid": specid,
        "levels": [round(min(levels), 4), round(max(levels), 4)],
        "rejected": dict(Counter(r.verdict for r in records if r.verdict != "used")),
        "frames": [{"member": r.member, "level": round(r.level, 5) if np.isfinite(r.central) else None,
                    "overscan": round(r.overscan, 3) if np.isfinite(r.overscan) else None,
                    "verdict": r.verdict, "note": r.note} for r in records],
        "method": info.method, **info.counts,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    return UnitOutcome(outputs=outputs, inputs=[r.source for r in records], counts=counts,
                       depends=[str(p) for p in bias_files])
