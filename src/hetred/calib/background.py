"""Step 5: background models, ``hetred bgmodel MONTH`` (docs/stages/bgmodel.md).

Replaces karlspipe hdr2.1 ``back/rpsci0kg`` (kind ``sci``), ``rpsci1kg`` (``bri``), ``rptwi0kg``
(``twi``), ``rgfits``/``rgfits0`` and the Fortran they run: ``improcn`` (overscan and master bias
removed, level = central biweight / 25, frame scaled to level 25), ``imcmb`` (per-pixel biweight)
and ``imgetgap`` (the background between and around the fiber blocks).

Unit: month x IFU slot x amp x kind, e.g. ``201801_053_LL_sci``. The unit's frames (sci frames
for sci and bri, twi frames for twi) are read once each from their tars; a frame is kept when its
level passes the kind's cut; the kept frames, scaled to level 25, are combined per pixel
(``bgcombined``) and the combination is turned into the model (``bgmodel``) by one of two methods:
``model`` (default, :mod:`hetred.calib.scattered`: dark + a fitted amplitude times the fiber light
convolved with a 1/distance kernel) or ``karl`` (:mod:`hetred.calib.imgetgap`, Karl's imgetgap
ported exactly). Both images are 1032 x 1032 float32 in the RAW readout orientation, like Karl's.

Rows and columns below are Karl's 1-based numbers unless a name ends in ``0``.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from astropy.io import fits

from hetred._ext import boxfilter as K
from hetred._version import __version__
from hetred.calib.imgetgap import ISMOOTH, GapResult, background_model
from hetred.calib.scattered import ScatterParams, ScatterResult, scattered_light_model
from hetred.config import parse_stage_table
from hetred.errors import HetredError, RawReadError
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry, month_entries
from hetred.stats import biweight
from hetred.virus import amp as ampgeom

STAGE = "bgmodel"
F32 = np.float32
XNORM = 25.0                        #: improcn: frames are scaled so that their level is 25
CENTER = (300, 700)                 #: improcn: rows and columns of the level region (1-based)
RAWTYPE = {"sci": "sci", "bri": "sci", "twi": "twi"}
KINDS = tuple(RAWTYPE)
METHODS = ("model", "karl")         #: scattered-light model (default), Karl's imgetgap


@dataclass(frozen=True)
class BgSettings:
    """Settings of the bgmodel stage; ``[stages.bgmodel]`` in the config file sets any of them."""

    sci_lo: float = 0.2      #: rpsci0kg: $4 > 0.2 && $4 < xnorm (3)
    sci_hi: float = 3.0
    bri_lo: float = 2.0      #: rpsci1kg: $4 > xnl (2) && $4 < xnh (15)
    bri_hi: float = 15.0
    twi_lo: float = 100.0    #: rptwi0kg: $4 > 0.2 && $4 > xnorm (100); no upper limit
    band_mib: float = 64.0   #: memory for one band of all frames in the combine (MiB)
    tmpdir: str | None = None
    qa: bool = True
    method: str = "model"    #: "model" (scattered light + dark, hetred.calib.scattered) or "karl"
    kernel_core: float = 4.0      #: model: scattered-light kernel 1/(1 + (|d|/core)^power), rows
    kernel_power: float = 1.0
    kernel_extent: float = 400.0  #: model: kernel is 0 beyond this many rows

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise HetredError(f"bgmodel method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.scatter_params().check()

    def scatter_params(self) -> ScatterParams:
        """The scattered-light model's parameters (method ``model``)."""
        return ScatterParams(kernel_core=self.kernel_core, kernel_power=self.kernel_power,
                             kernel_extent=self.kernel_extent)

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> BgSettings:
        """Settings from a ``[stages.bgmodel]`` table; unknown keys and bad values are errors."""
        out = parse_stage_table(cls, values, "stages.bgmodel")
        s = cls(**out)
        for k in KINDS:
            lo, hi = s.cut(k)
            if not lo >= 1.0 / XNORM or (hi is not None and not hi > lo):
                raise HetredError(f"[stages.bgmodel]: need 0.04 <= {k}_lo < {k}_hi, got {lo}, {hi}")
        return s

    def cut(self, kind: str) -> tuple[float, float | None]:
        """(lo, hi) of a kind: a frame is kept when lo < level < hi (hi None: no upper limit)."""
        if kind == "twi":
            return max(0.2, self.twi_lo), None
        return getattr(self, f"{kind}_lo"), getattr(self, f"{kind}_hi")

    def cut_text(self, kind: str) -> str:
        lo, hi = self.cut(kind)
        return f"level > {lo:g}" if hi is None else f"{lo:g} < level < {hi:g}"

    def passes(self, kind: str, level: float) -> bool:
        lo, hi = self.cut(kind)
        return bool(level > lo and (hi is None or level < hi))


# ------------------------------------------------------------------------------------------
# per frame (improcn)

def frame_level(raw: np.ndarray, bias: np.ndarray) -> tuple[float, float]:
    """(overscan, central biweight) in ADU of a raw (1032, 1064) uint16 frame (improcn).

    The overscan is Karl's biweight of columns 1034-1060, rows 10-1032; the central biweight is
    that of ``float32(raw) - overscan - bias`` over rows and columns 300-700 of the trimmed
    frame; the frame's *level* is this / 25.
    """
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        raw = np.clip(np.rint(raw), 0, 65535).astype(np.uint16)
    ov = F32(K.biweight_uint16(ampgeom.overscan_region(raw), 0.0)[0])
    s = slice(CENTER[0] - 1, CENTER[1])
    centre = (raw[s, s].astype(F32) - ov) - np.asarray(bias, F32)[s, s]
    return float(ov), float(biweight(centre)[0])


def normalise(trimmed: np.ndarray, central: float) -> np.ndarray:
    """improcn's scaling of an overscan- and bias-subtracted frame: divided by central/25 when
    the central biweight is above 1 ADU, else all zeros."""
    if central > 1.0:
        return trimmed / (F32(central) / F32(XNORM))
    return np.zeros_like(trimmed, dtype=F32)


# ------------------------------------------------------------------------------------------
# the unit's frames

def index_frames(entries: Iterable[TarEntry]) -> dict[tuple[int, str, str], list[TarEntry]]:
    """The sci and twi entries by (IFU slot, amp, type), in tarlist order."""
    out: dict[tuple[int, str, str], list[TarEntry]] = {}
    for e in entries:
        if e.kind in ("sci", "twi"):
            out.setdefault((e.ifuslot, e.amp, e.kind), []).append(e)
    return out


def month_index(layout: Layout, month: str) -> dict[tuple[int, str, str], list[TarEntry]]:
    """:func:`index_frames` of the month's tarlist (made first when missing)."""
    return index_frames(month_entries(layout, month))


def unit_id(month: str, ifuslot: int, amp: str, kind: str) -> str:
    """``201801_053_LL_sci``."""
    return f"{month}_{int(ifuslot):03d}_{amp}_{kind}"


@dataclass
class FrameRecord:
    """One frame of a unit and improcn's numbers for it (ADU; level = central / 25)."""

    order: int
    member: str
    source: str
    contid: str = ""
    specid: int = -1
    overscan: float = float("nan")
    central: float = float("nan")
    verdict: str = "unreadable"    #: used, outside_cut, no_masterbias, other_specid, unreadable
    note: str = ""
    index: int = -1                #: position in the frame stack (kept frames)

    @property
    def level(self) -> float:
        return self.central / XNORM


def _iter_raw(layout: Layout, entries: Sequence):
    """(order, entry, source, RawAmp or RawReadError) for every entry, each tar opened once;
    the untarred file where the tar is absent (rgfits0)."""
    from hetred.io.raw import iter_members, read_raw_file

    by_tar: dict[Path, list] = {}
    for k, e in enumerate(entries):
        by_tar.setdefault(layout.path("raw_tar", night=e.night, obs=e.obs), []).append((k, e))
    for tar, items in by_tar.items():
        if tar.exists():
            for (k, e), got in zip(items, iter_members(tar, [e.member for _, e in items])):
                yield k, e, f"{tar}::{e.member}", got
            continue
        for k, e in items:
            path = layout.path("raw_untarred", **e.__dict__)
            try:
                if not path.exists():
                    raise RawReadError(f"{tar}::{e.member}", "neither the tar nor the untarred file exists")
                yield k, e, str(path), read_raw_file(path)
            except RawReadError as err:
                yield k, e, str(path), err


def read_masterbias(layout: Layout, month: str, specid: int, contid: str, amp: str) -> np.ndarray | None:
    """The month's master bias of a controller (None when there is none), float32 (1032, 1032)."""
    p = layout.path("masterbias", month=month, specid=specid, contid=contid, amp=amp)
    if not p.exists():
        return None
    try:
        data = fits.getdata(p)
    except (OSError, ValueError, TypeError) as err:
        raise HetredError(f"master bias {p} is unreadable ({err})") from None
    if data is None or data.shape != (ampgeom.NROWS, ampgeom.NCOLS):
        raise HetredError(f"master bias {p} is not a 1032 x 1032 image")
    return np.asarray(data, F32)


def read_frames(layout: Layout, month: str, amp: str, kind: str, entries: Sequence, stack,
                settings: BgSettings) -> tuple[list[FrameRecord], dict[tuple[int, str], np.ndarray | None]]:
    """Read and measure every entry once; stack the frames that pass the kind's cut.

    Returns the records (tarlist order) and the master biases by (specid, contid) (None: missing).
    """
    from hetred.calib.bias_io import NO_CONTID

    biases: dict[tuple[int, str], np.ndarray | None] = {}
    records = []
    for k, e, src, got in _iter_raw(layout, entries):
        rec = FrameRecord(order=k, member=e.line, source=src)
        records.append(rec)
        if isinstance(got, RawReadError):
            rec.note = str(got).replace("\n", " ")
            continue
        if got.amp != e.amp or got.ifuslot != e.ifuslot:
            rec.note = f"header says {got.ifuslot:03d}{got.amp}, the file name {e.ifuslot:03d}{e.amp}"
            continue
        rec.contid, rec.specid = got.contid or NO_CONTID, got.specid
        key = (rec.specid, rec.contid)
        if key not in biases:
            biases[key] = read_masterbias(layout, month, rec.specid, rec.contid, amp)
        if biases[key] is None:
            rec.verdict, rec.note = "no_masterbias", f"masterbias_{rec.specid:03d}_{rec.contid}_{amp} missing"
            continue
        rec.overscan, rec.central = frame_level(got.data, biases[key])
        if settings.passes(kind, rec.level):
            rec.verdict, rec.index = "used", stack.add(got.data, rec.overscan)
        else:
            rec.verdict, rec.note = "outside_cut", f"level {rec.level:.3f}"
    records.sort(key=lambda r: r.order)
    return records, biases


def combine_frames(stack, recs: Sequence[FrameRecord], biases: Mapping, settings: BgSettings) -> np.ndarray:
    """imcmb of improcn's frames: per pixel, Karl's biweight of (raw - overscan - bias) / (central
    / 25) over the kept frames, read from the stack in row bands."""
    from hetred.calib.bias_io import band_rows

    n = len(recs)
    nrow, ncol = stack.shape
    out = np.empty((nrow, ncol), F32)
    step = band_rows(n, settings.band_mib, ncol)
    buf = np.empty((n, step, ncol), F32)
    for r0 in range(0, nrow, step):
        r1 = min(nrow, r0 + step)
        band = stack.band([r.index for r in recs], r0, r1, out=buf[:, :r1 - r0])
        for k, r in enumerate(recs):
            band[k] -= biases[(r.specid, r.contid)][r0:r1]
            band[k] = normalise(band[k], r.central)
        out[r0:r1] = K.biweight_stack(band.reshape(n, -1))[0].reshape(r1 - r0, ncol)
    return out


# ------------------------------------------------------------------------------------------
# the model

@dataclass
class ModelInfo:
    """What a method reports: header cards of ``bgmodel``, rows marked on the QA plot (1-based,
    (k, ncol)), the done marker's counts, and the method's own result."""

    method: str
    cards: list[tuple]
    marks: np.ndarray
    marks_text: str
    counts: dict
    result: GapResult | ScatterResult


def build_model(combined: np.ndarray, s: BgSettings) -> tuple[np.ndarray, ModelInfo]:
    """The background model of a combined frame with the settings' method."""
    if s.method == "karl":
        model, g = background_model(combined)
        rows = {"first": g.ixl, "gap1": g.ixm1, "gap2": g.ixm2, "last": g.ixu}
        cards = [("BGMETHOD", "karl", "Karl's imgetgap, ported exactly"),
                 ("ISINGLE", g.isingle, "bottom rows modelled one by one"),
                 ("ROWFIRST", int(np.median(g.ixl)), "median last row below fiber 1"),
                 ("ROWGAP1", int(np.median(g.ixm1)), "median lower gap row"),
                 ("ROWGAP2", int(np.median(g.ixm2)), "median upper gap row"),
                 ("ROWLAST", int(np.median(g.ixu)), "median first row above the last fiber"),
                 ("ISMOOTH", ISMOOTH, "columns per node-smoothing bin")]
        counts = {"gaps": {"isingle": g.isingle, **{k: int(np.median(v)) for k, v in rows.items()}},
                  "node_medians": [round(float(np.median(x)), 4) for x in g.xnodes]}
        return model, ModelInfo("karl", cards, np.stack(list(rows.values())),
                                "dotted: fiber edges and gaps", counts, g)
    p = s.scatter_params()
    model, r = scattered_light_model(combined, p)
    rows = {k: 1.0 + r.per_column(getattr(r, k)) for k in ("first", "gap1", "gap2", "last")}
    a, d = float(np.median(r.amp)), float(np.median(r.dark))
    cards = [("BGMETHOD", "model", "dark + scattered light (hetred.calib.scattered)"),
             ("BGFIT", r.mode, "bins: a per column bin; amp: one a; constant"),
             ("KCORE", p.kernel_core, "kernel 1/(1 + (|d|/KCORE)**KPOWER), rows"),
             ("KPOWER", p.kernel_power, "kernel power"),
             ("KEXTENT", r.kernel[2], "kernel is 0 beyond KEXTENT rows"),
             ("NBINCOL", p.bin_cols, "columns per fit bin"),
             ("SLAMP", round(a, 6), "median amplitude a of the scattered light"),
             ("SLDARK", round(d, 5), "median constant d (dark), ADU"),
             ("ROWFIRST", round(float(np.median(rows["first"])), 2), "median first fiber centre row"),
             ("ROWGAP1", round(float(np.median(rows["gap1"])), 2), "median lower gap centre row"),
             ("ROWGAP2", round(float(np.median(rows["gap2"])), 2), "median upper gap centre row"),
             ("ROWLAST", round(float(np.median(rows["last"])), 2), "median last fiber centre row")]
    counts = {"gaps": {k: round(float(np.median(v)), 2) for k, v in rows.items()},
              "scatter": {"mode": r.mode, "amp_median": round(a, 6), "dark_median": round(d, 5),
                          "bin_snr_median": round(float(np.nan_to_num(np.median(r.bin_snr))), 2),
                          "amp_snr": round(float(np.nan_to_num(r.amp_snr)), 2),
                          "kernel": list(r.kernel), "rows_fitted": np.median(r.nfit, axis=0).tolist()}}
    return model, ModelInfo("model", cards, np.stack(list(rows.values())),
                            "dotted: first fiber, gaps, last fiber", counts, r)


# ------------------------------------------------------------------------------------------
# products

def write_products(layout: Layout, f: dict, kind: str, used: Sequence[FrameRecord], nread: int,
                   combined: np.ndarray, model: np.ndarray, info: ModelInfo, s: BgSettings) -> list[Path]:
    """Write ``bgmodel`` and ``bgcombined`` (float32, headers with the inputs); their paths."""
    from hetred.io.atomic import write_fits_atomic

    lo, hi = s.cut(kind)
    members = sorted(r.member for r in used)
    common = [
        ("BUNIT", "adu", "ADU of frames scaled to level 25 (improcn)"),
        ("MONTH", f["month"], ""), ("IFUSLOT", f"{f['ifuslot']:03d}", ""),
        ("SPECID", f"{f['specid']:03d}", ""), ("AMP", f["amp"], "CCDPOS + CCDHALF"),
        ("BGKIND", kind, "sci, bri or twi"), ("RAWTYPE", RAWTYPE[kind], "raw frame type combined"),
        ("LEVLO", lo, "keep if LEVLO < level"), ("LEVHI", "none" if hi is None else hi, "... < LEVHI"),
        ("XNORM", XNORM, "level = central biweight / XNORM"),
        ("ORIENT", "RAW", "readout orientation, not flipped (as Karl)"),
        ("TRIMSEC", ampgeom.TRIMSEC, "overscan and master bias removed"),
        ("NFRAMES", len(used), "frames combined"), ("NREAD", nread, "frames of the unit read"),
        ("COMBINE", "biweight", "per-pixel Karl biwgt (imcmb)"),
        ("INPHASH", hashlib.sha1("\n".join(members).encode()).hexdigest(), "sha1 of sorted inputs"),
        ("HETREDV", __version__, "hetred version")]
    paths = []
    for key, image, extra in (("bgmodel", model, info.cards), ("bgcombined", combined, [])):
        h = fits.Header()
        for card in [("OBJECT", key, "hetred bgmodel product")] + common + extra:
            h[card[0]] = card[1:]
        for c in sorted({(r.specid, r.contid) for r in used}):
            h.add_history(f"masterbias masterbias_{c[0]:03d}_{c[1]}_{f['amp']}.fits")
        for m in members:
            h.add_history(f"input {m}")
        paths.append(layout.path(key, **f))
        write_fits_atomic(paths[-1], fits.HDUList([fits.PrimaryHDU(np.asarray(image, F32), h)]))
    return paths


def write_qa(path: Path, unit: str, combined: np.ndarray, model: np.ndarray, info: ModelInfo,
             title: str) -> Path:
    """QA PNG: the model's profile across rows over the combined frame's, at three columns."""
    from matplotlib.figure import Figure

    from hetred.io.atomic import atomic_path

    fig = Figure(figsize=(11, 3.6), dpi=80)
    rows = np.arange(1, combined.shape[0] + 1)
    for k, c in enumerate((200, combined.shape[1] // 2, combined.shape[1] - 200)):
        ax = fig.add_subplot(1, 3, k + 1)
        m = model[:, c - 1]
        span = float(m.max() - m.min()) + 0.05 * abs(float(m.max())) + 1e-3
        ax.plot(rows, combined[:, c - 1], color="0.6", lw=0.5, label="combined")
        ax.plot(rows, m, color="red", lw=1.2, label=f"model ({info.method})")
        for r in info.marks[:, c - 1]:
            ax.axvline(r, color="tab:blue", lw=0.6, ls=":")
        top = max(float(np.percentile(combined[:, c - 1], 99.5)), float(m.max()) + 4 * span)
        ax.set_yscale("symlog", linthresh=max(2.0 * float(np.abs(m).max()), 1e-3), linscale=2.0)
        ax.set_ylim(float(m.min()) - 1.5 * span, top)
        ax.set_title(f"column {c} (raw); {info.marks_text}", fontsize=8)
        ax.set_xlabel("row (raw)", fontsize=7)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.set_ylabel("ADU at level 25", fontsize=7)
            ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{unit}: {title}", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.85, wspace=0.25)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# ------------------------------------------------------------------------------------------
# one unit

def run_bgmodel(layout: Layout, month: str, ifuslot: int, amp: str, kind: str,
                settings: BgSettings | None = None) -> UnitOutcome:
    """Build the background model of one month x IFU slot x amp x kind (module docstring).

    Raises :class:`HetredError` (one line) when no frame of the unit passes the kind's cut.
    """
    from hetred.calib.bias_io import FrameStack

    s = settings or BgSettings()
    if kind not in KINDS or amp not in ampgeom.AMPS:
        raise HetredError(f"kind must be one of {', '.join(KINDS)} and amp one of "
                          f"{', '.join(ampgeom.AMPS)}, got {kind!r}, {amp!r}")
    slot, uid, t0 = f"{int(ifuslot):03d}{amp}", unit_id(month, ifuslot, amp, kind), time.perf_counter()
    entries = month_index(layout, month).get((int(ifuslot), amp, RAWTYPE[kind]), [])
    if not entries:
        raise HetredError(f"no {RAWTYPE[kind]} frames for {slot} in the {month} tarlist")
    timings = {}
    with FrameStack(s.tmpdir) as stack:
        records, biases = read_frames(layout, month, amp, kind, entries, stack, s)
        used = [r for r in records if r.verdict == "used"]
        specid = Counter(r.specid for r in used).most_common(1)[0][0] if used else -1
        for r in used:
            if r.specid != specid:
                r.verdict, r.note = "other_specid", f"SPECID {r.specid:03d}, the unit's {specid:03d}"
        used = [r for r in used if r.verdict == "used"]
        if not used:
            levels = [r.level for r in records if np.isfinite(r.central)]
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
    return UnitOutcome(outputs=outputs, inputs=[r.source for r in records], counts=counts)
