"""Step 4: the master bias library, ``hetred bias MONTH`` (docs/stages/bias.md).

Replaces karlspipe hdr2.1 ``bias/rpbias``, ``rpbias1``, ``rbfits``, ``rbfits0``, ``rimcmb``,
``rtrap0``, ``rtrap`` and the Fortran programs they run: ``improcb`` (per-frame overscan, level
and scale), ``mkbiaslist`` (frames grouped by controller), ``imcmb`` (per-pixel biweight),
``imbox2`` (1 x 7 biweight box) and ``imgetctrap`` (charge traps).

Unit of work: month x IFU slot x amp, e.g. ``202008_053_LL``.  Every zro frame of the unit in the
month's tarlist is read once, straight from its tar; frames whose central biweight scale is
outside (scale_lo, scale_hi) ADU, saturated frames and unreadable members are rejected with a
reason.  The kept frames are grouped by controller (CONTID) and each group gives

* ``masterbias_unsmoothed``: the per-pixel biweight of the frames (imcmb);
* ``masterbias``: that image through the 1 x 7 biweight box without its centre pixel (imbox2
  ``1 7``, radius 0), then with its charge-trap columns zeroed (imgetctrap);
* ``masterbias_traps``: the traps, ``column first_row`` (1-based, like Karl's ``.ctrap``).

plus, per unit, the per-frame table ``bias_frames`` and a QA PNG.  Images stay in the RAW readout
orientation of Karl's library: trimmed to 1032 x 1032, overscan subtracted, not flipped.

The array functions are pure (:mod:`hetred.bias.masterbias`, no files); :mod:`hetred.bias.frames` reads and
:mod:`hetred.bias.products` writes; :func:`run_bias` ties them together for one unit.
"""
from __future__ import annotations

import time

from hetred.bias.frames import FrameRecord, combine_stack, read_frames, zro_entries
from hetred.bias.masterbias import make_master
from hetred.bias.products import write_frames_table, write_products, write_qa
from hetred.bias.settings import BiasSettings
from hetred.errors import EmptyUnit, HetredError
from hetred.io.framestack import FrameStack
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.virus import amp as ampgeom


def unit_id(month: str, ifuslot: int, amp: str) -> str:
    """``202008_053_LL``."""
    return f"{month}_{int(ifuslot):03d}_{amp}"


def run_bias(layout: Layout, month: str, ifuslot: int, amp: str,
             settings: BiasSettings | None = None) -> UnitOutcome:
    """Build the master bias(es) of one month x IFU slot x amp; see the module docstring.

    A unit whose slot and amp have no zro frame in the month's tarlist has nothing to do
    (:class:`EmptyUnit`: an empty marker, not a failure; the stages that need its master bias
    fail and name it). Raises :class:`HetredError` (one line, failed) when none of its zro
    frames is usable.
    """
    s = settings or BiasSettings()
    if amp not in ampgeom.AMPS:
        raise HetredError(f"amp must be one of {', '.join(ampgeom.AMPS)}, got {amp!r}")
    t0 = time.perf_counter()
    entries = zro_entries(layout, month, ifuslot, amp)
    if not entries:
        tarlist = layout.path("tarlist", month=month)
        raise EmptyUnit(f"no zro frames for IFU slot {ifuslot:03d} amp {amp} in the {month} tarlist ({tarlist})",
                        counts={"frames": 0}, depends=[tarlist])
    timings: dict[str, float] = {}
    with FrameStack(s.tmpdir) as stack:
        records = read_frames(layout, entries, stack, s)
        timings["read"] = time.perf_counter() - t0
        used = [r for r in records if r.verdict == "used"]
        frames_path = write_frames_table(layout, month, ifuslot, amp, records, s)
        outputs = [str(frames_path)]
        rejected: dict[str, int] = {}
        for r in records:
            if r.verdict != "used":
                rejected[r.verdict] = rejected.get(r.verdict, 0) + 1
        if not used:
            why = ", ".join(f"{n} {v}" for v, n in sorted(rejected.items()))
            raise HetredError(f"IFU slot {ifuslot:03d} amp {amp}: none of {len(records)} zro frames "
                              f"usable ({why}); see {frames_path}")
        groups: dict[tuple[int, str], list[FrameRecord]] = {}
        for r in used:
            groups.setdefault((r.specid, r.contid), []).append(r)
        products = []
        for key in ("combine", "box_traps", "write"):
            timings[key] = 0.0
        for (specid, contid), recs in sorted(groups.items()):
            t1 = time.perf_counter()
            unsmoothed = combine_stack(stack, [r.index for r in recs], s)
            t2 = time.perf_counter()
            master, tr = make_master(unsmoothed, s)
            t3 = time.perf_counter()
            paths = write_products(layout, month, ifuslot, amp, specid, contid, unsmoothed,
                                      master, tr.traps, recs, len(records) - len(used), s)
            timings["combine"] += t2 - t1
            timings["box_traps"] += t3 - t2
            timings["write"] += time.perf_counter() - t3
            outputs += [str(p) for p in paths]
            products.append({"specid": specid, "contid": contid, "nframes": len(recs),
                             "ntraps": len(tr.traps), "traps": tr.traps, "master": str(paths[0]),
                             "_image": master})
    if s.qa:
        t2 = time.perf_counter()
        outputs.append(str(write_qa(layout, unit_id(month, ifuslot, amp), products)))
        timings["qa"] = time.perf_counter() - t2
    for p in products:
        p.pop("_image")
    counts = {
        "frames": len(records), "used": len(used), "rejected": rejected,
        "rejected_frames": [f"{r.member}: {r.verdict} {r.note}".strip() for r in records
                            if r.verdict != "used"][:50],
        "groups": products, "ntraps": sum(p["ntraps"] for p in products),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    inputs = [r.source for r in records]
    return UnitOutcome(outputs=outputs, inputs=inputs, counts=counts)
