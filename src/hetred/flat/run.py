"""Pixel flats, ``hetred flat SPECID`` (docs/stages/flat.md).

Replaces karlspipe hdr2.1 ``twiflat/rmkflat0``, ``rmkflat``, ``rflat``, ``run2`` (and HDR3's
``rsetflat``), the Fortran ``progs/imar_flt.f`` (frame / fiber model within 3.5 px of a trace,
1 elsewhere) and ``progs/imcmb.f`` (per-pixel biweight of the frames).

Unit of work: camera (SPECID) x amp, id ``cam320_LL``.  Every lamp flat (``flt``) and twilight
(``twi``) frame of the selected nights whose header SPECID is the camera's is

1. reduced: overscan (Karl's region), the month's master bias when one exists for the frame's
   controller (else overscan only), orientation, header gain -> electrons; frames whose median
   (ADU, overscan-subtracted) is below ``min_level`` are dropped (rsetflat's 7000); a frame
   without a positive GAIN or RDNOISE fails the unit with one line naming the file and the key;
   the master bias's zeros (charge-trap columns) are not measured (1 in the ratio);
2. calibrated: traces, empirical profile and extraction (:func:`hetred.fibers.profile.calibrate_frame`);
3. modelled: the extracted spectra are made smooth at the pixel scale (see :func:`smooth_spectra`)
   and projected back through the profiles (:func:`hetred.fibers.extract.model_image`);
4. divided: ``ratio = frame / model`` within ``rcut`` (3.5) px of the nearest trace, 1 elsewhere
   (imar_flt); the ratio images go to a temporary float32 stack file;
5. combined: per-pixel biweight over the frames (imcmb), in row bands of ``band_mib`` MiB, so
   memory does not grow with the number of frames.

The product ``pixelflat`` (oriented, float32) carries NFRAMES, the inputs and the hetred version
in its header, and the bad-pixel boxes found on it (:mod:`hetred.flat.defects`) in a MASKBOXES
table extension; the CLI gathers those into ``pix_mask.tab`` after the units.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from astropy.io import fits

from hetred._version import __version__
from hetred.errors import EmptyUnit, HetredError, RawReadError
from hetred.flat import defects
from hetred.flat.pixelflat import RatioStack, flat_ratio, remove_row_trend
from hetred.flat.settings import F32, STAGE, FlatSettings
from hetred.io import pixmask
from hetred.io.atomic import atomic_path, write_fits_atomic, write_text_atomic
from hetred.io.raw import RawAmp, header_value, iter_members, open_tar, read_member_header, tar_members
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout, parse
from hetred.virus import amp as ampgeom


@dataclass(frozen=True)
class FlatFrame:
    """One candidate frame: where it is and what it is."""

    night: str
    tar: Path
    member: str
    ifuslot: int
    amp: str
    kind: str
    specid: int


#: reasons a frame is dropped by selection (not a broken input): a unit whose frames were all
#: dropped for these has no flat in the data (empty); unreadable frames or frames without traces fail it
SELECTION = {"faint", "saturated"}


def unit_id(specid: int, amp: str) -> str:
    return f"cam{int(specid):03d}_{amp}"


def find_frames(layout: Layout, nights: Sequence[str], specid: int | None = None,
                ifuslots: Sequence[int] | None = None, kinds: Sequence[str] = ("flt", "twi")
                ) -> list[FlatFrame]:
    """Every ``kinds`` amp frame of ``nights`` in the raw tars (SPECID from one header per
    night and IFU slot), optionally only of camera ``specid`` and ``ifuslots``."""
    out: list[FlatFrame] = []
    specids: dict[tuple[str, int], int] = {}
    for night in nights:
        for tar in layout.glob("raw_tar", night=night):
            try:
                members = tar_members(tar)
            except RawReadError:
                continue
            cand = []
            for m in members:
                f = parse("raw_member", m)
                if f is None or f["kind"] not in kinds:
                    continue
                if ifuslots and f["ifuslot"] not in ifuslots:
                    continue
                cand.append((m, f))
            if not cand:
                continue
            with open_tar(tar) as tf:
                for m, f in cand:
                    key = (night, f["ifuslot"])
                    if key not in specids:
                        try:
                            specids[key] = int(read_member_header(tf, tar, m)["SPECID"])
                        except (RawReadError, KeyError, ValueError):
                            continue
                    sp = specids[key]
                    if specid is not None and sp != specid:
                        continue
                    out.append(FlatFrame(night, tar, m, f["ifuslot"], f["amp"], f["kind"], sp))
    return out


def bias_path(layout: Layout, raw: RawAmp) -> Path:
    """The master bias a flat frame is reduced with when it exists: its month's, of its SPECID,
    controller and amp."""
    stamp = raw.source.rsplit("/", 1)[-1][:6]
    return layout.path("masterbias", month=stamp, specid=raw.specid, contid=raw.contid or "0666", amp=raw.amp)


def reduce_frame(raw: RawAmp, layout: Layout | None = None) -> tuple[np.ndarray, float, str, np.ndarray]:
    """Oriented electrons of a raw frame: (image, median ADU, bias used, unknown).

    Overscan, the master bias of the frame's month, SPECID, controller and amp when it exists
    (raw orientation, oriented here), else overscan only; header gain (a frame without a
    positive GAIN fails: :class:`~hetred.errors.RawReadError` naming the file and the key).
    ``unknown`` (bool, oriented): pixels whose bias is not known, the master bias's zeros (the
    charge-trap columns imgetctrap zeroes from their first row up): the trap's excess (30-300
    ADU on the simulator) stays in those pixels, so they are not measured (up to +3 % in a
    flat's column otherwise)."""
    gain = F32(header_value(raw, "GAIN"))
    img = raw.oriented()
    level = float(np.median(img))
    used = "overscan only"
    unknown = np.zeros(img.shape, dtype=bool)
    if layout is not None:
        p = bias_path(layout, raw)
        if p.exists():
            with fits.open(p, memmap=False) as h:
                bias = np.ascontiguousarray(ampgeom.orient(np.asarray(h[0].data, dtype=F32), raw.amp,
                                                           raw.ampname))
            img = img - bias
            unknown = bias == 0
            used = str(p)
    return (img * gain).astype(F32), level, used, unknown


def run_pixelflat(layout: Layout, specid: int, amp: str, frames: Sequence[FlatFrame],
                  settings: FlatSettings | None = None) -> UnitOutcome:
    """Build ``pixelflat_cam{specid}_{amp}`` from ``frames`` (those of this amp are used)."""
    s = settings or FlatSettings()
    mine = [f for f in frames if f.amp == amp and f.specid == specid]
    if not mine:
        raise EmptyUnit(f"no {'/'.join(s.kind_list)} frames of camera {specid:03d} amp {amp}", counts={"used": 0})
    biases: set[str] = set()
    timings = {"read": 0.0, "calibrate": 0.0, "combine": 0.0, "mask": 0.0, "write": 0.0}
    used: list[str] = []
    dropped: dict[str, int] = {}
    ifuslots: dict[int, int] = {}
    reference = None
    by_tar: dict[Path, list[FlatFrame]] = {}
    for f in mine:
        by_tar.setdefault(f.tar, []).append(f)
    with RatioStack(s.tmpdir) as stack:
        for tar, fr in by_tar.items():
            t0 = time.perf_counter()
            for f, raw in zip(fr, iter_members(tar, [f.member for f in fr])):
                if isinstance(raw, RawReadError):
                    dropped["unreadable"] = dropped.get("unreadable", 0) + 1
                    continue
                if raw.is_saturated():
                    dropped["saturated"] = dropped.get("saturated", 0) + 1
                    continue
                biases.add(str(bias_path(layout, raw)))
                img, level, _bias, unknown = reduce_frame(raw, layout)   # fails the unit without GAIN
                read_noise = header_value(raw, "RDNOISE")
                if level < s.min_level:
                    dropped["faint"] = dropped.get("faint", 0) + 1
                    continue
                t1 = time.perf_counter()
                timings["read"] += t1 - t0
                try:
                    ratio, info = flat_ratio(img, read_noise, s, reference,
                                             kind=f.kind)
                    reference = info["calibration"]
                    ratio[unknown] = F32(1.0)              # not measured: the trap's charge is in them
                except (ValueError, np.linalg.LinAlgError, HetredError):
                    dropped["no_traces"] = dropped.get("no_traces", 0) + 1
                    t0 = time.perf_counter()
                    continue
                stack.add(ratio)
                used.append(f"{tar}::{f.member}")
                ifuslots[f.ifuslot] = ifuslots.get(f.ifuslot, 0) + 1
                t0 = time.perf_counter()
                timings["calibrate"] += t0 - t1
        if stack.n == 0:
            why = ", ".join(f"{n} {k}" for k, n in sorted(dropped.items()))
            text = f"camera {specid:03d} amp {amp}: none of {len(mine)} frames usable ({why})"
            if set(dropped) <= SELECTION:      # too faint or saturated: no flat in the data
                raise EmptyUnit(text, counts={"used": 0, "dropped": dropped}, depends=sorted(biases))
            raise HetredError(text)
        t0 = time.perf_counter()
        flat = stack.combine(s.band_mib)
    near = flat != 1.0
    if s.row_norm > 0:
        flat = remove_row_trend(flat, near, s.row_norm, s.row_clip)
    timings["combine"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    boxes, info = defects.find_defect_boxes(flat, near, s.mask_settings())
    timings["mask"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ifuslot = max(ifuslots, key=ifuslots.get)
    path = write_pixelflat(layout, specid, amp, ifuslot, flat, used, dropped, boxes, info, s)
    outputs = [str(path)]
    if s.qa:
        outputs.append(str(write_qa(layout, specid, amp, ifuslot, flat, boxes)))
    timings["write"] = time.perf_counter() - t0
    return UnitOutcome(outputs=outputs, inputs=used, depends=sorted(biases), counts={
        "used": len(used), "dropped": dropped, "ifuslot": ifuslot, "nboxes": len(boxes),
        "boxes": [[b.x1, b.x2, b.y1, b.y2] for b in boxes], "mask_sigma": info["sigma"],
        "timings": {k: round(v, 3) for k, v in timings.items()}})


def write_pixelflat(layout: Layout, specid: int, amp: str, ifuslot: int, flat: np.ndarray,
                    used: Sequence[str], dropped: Mapping[str, int], boxes: Sequence[pixmask.Box],
                    info: Mapping[str, Any], s: FlatSettings) -> Path:
    path = layout.path("pixelflat", specid=specid, amp=amp)
    h = fits.Header()
    h["SPECID"] = (int(specid), "camera")
    h["AMP"] = (amp, "CCDPOS + CCDHALF")
    h["IFUSLOT"] = (int(ifuslot), "IFU slot of most input frames")
    h["ORIENT"] = ("oriented", "x wavelength up, y fibers")
    h["NFRAMES"] = (len(used), "frames combined (per-pixel biweight)")
    h["KINDS"] = (s.kinds, "frame types used")
    h["MINLEVEL"] = (s.min_level, "ADU: fainter frames dropped")
    h["NDROP"] = (int(sum(dropped.values())), "frames dropped")
    h["RCUT"] = (s.rcut, "px: 1 beyond this distance from a trace")
    h["NBOXES"] = (len(boxes), "bad-pixel boxes (MASKBOXES)")
    h["HETRED"] = (__version__, "hetred version")
    for u in used:
        h.add_history(u)
    tb = fits.BinTableHDU.from_columns([
        fits.Column(name=n, format="J", array=np.array([getattr(b, n.lower()) for b in boxes], dtype=np.int32))
        for n in ("X1", "X2", "Y1", "Y2")], name="MASKBOXES")
    tb.header["COMMENT"] = "1-based inclusive oriented bounds: x = column, y = row"
    tb.header["SIGMA"] = (float(info["sigma"]), "robust rms of flat - smooth")
    tb.header["THRESH"] = (float(info["threshold"]), "flag threshold")
    write_fits_atomic(path, fits.HDUList([fits.PrimaryHDU(np.asarray(flat, dtype=F32), h), tb]))
    return path


def read_boxes(path: str | Path) -> tuple[int, str, list[pixmask.Box]]:
    """(ifuslot, amp, boxes) of a pixel flat written by :func:`write_pixelflat`."""
    with fits.open(path, memmap=False) as h:
        d = h["MASKBOXES"].data
        boxes = [pixmask.Box(int(r["X1"]), int(r["X2"]), int(r["Y1"]), int(r["Y2"])) for r in d]
        return int(h[0].header["IFUSLOT"]), str(h[0].header["AMP"]), boxes


def write_pixmask_table(layout: Layout) -> tuple[Path, int]:
    """Gather MASKBOXES of every pixel flat of the library into ``pix_mask.tab``.

    Flat units running side by side (a Slurm job file) each rebuild the table after writing
    their flat; the rebuild (read every flat, write the table) holds an exclusive lock on the
    layout's ``pixmask_lock`` file, so the last unit to take it reads every flat written before
    and no unit's boxes are lost."""
    import fcntl


    lock = layout.path("pixmask_lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            rows = []
            for p in layout.glob("pixelflat"):
                try:
                    slot, amp, boxes = read_boxes(p)
                except (OSError, KeyError, ValueError):
                    continue
                rows += [(f"{slot:03d}{amp}", b) for b in boxes]
            path = layout.path("pixmask")
            text = pixmask.format_pixmask(rows, [
                f"hetred {__version__} bad-pixel boxes from the pixel flats in {path.parent}",
                "x = column, y = row of the ORIENTED frame, 1-based, inclusive (docs/stages/flat.md)"])
            try:
                same = path.read_text() == text
            except OSError:
                same = False
            if not same:     # an unchanged table keeps its mtime: the sci units that read it stay done
                write_text_atomic(path, text)
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return path, len(rows)


def write_qa(layout: Layout, specid: int, amp: str, ifuslot: int, flat: np.ndarray,
             boxes: Sequence[pixmask.Box]) -> Path:
    """QA PNG: the flat (oriented) with the mask boxes drawn."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    path = layout.path("qa", stage=STAGE, name=f"{unit_id(specid, amp)}.png")
    fig = Figure(figsize=(6.0, 6.2), dpi=90)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(flat, origin="lower", cmap="gray", vmin=0.97, vmax=1.03, interpolation="nearest",
              extent=(0.5, flat.shape[1] + 0.5, 0.5, flat.shape[0] + 0.5))
    for b in boxes:
        ax.add_patch(Rectangle((b.x1 - 0.5, b.y1 - 0.5), b.x2 - b.x1 + 1, b.y2 - b.y1 + 1,
                               fill=False, edgecolor="red", lw=1.0))
    ax.set_title(f"pixelflat cam{specid:03d} {amp} (IFU slot {ifuslot:03d}): {len(boxes)} mask boxes\n"
                 "grey 0.97-1.03", fontsize=8)
    ax.set_xlabel("x (oriented column, 1-based)", fontsize=7)
    ax.set_ylabel("y (oriented row, 1-based)", fontsize=7)
    ax.tick_params(labelsize=6)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
