"""Pixel flats, ``hetred flat SPECID`` (docs/stages/flat.md).

Replaces karlspipe hdr2.1 ``twiflat/rmkflat0``, ``rmkflat``, ``rflat``, ``run2`` (and HDR3's
``rsetflat``), the Fortran ``progs/imar_flt.f`` (frame / fiber model within 3.5 px of a trace,
1 elsewhere) and ``progs/imcmb.f`` (per-pixel biweight of the frames).

Unit of work: camera (SPECID) x amp, id ``cam320_LL``.  Every lamp flat (``flt``) and twilight
(``twi``) frame of the selected nights whose header SPECID is the camera's is

1. reduced: overscan (Karl's region), the month's master bias when one exists for the frame's
   controller (else overscan only), orientation, header gain -> electrons; frames whose median
   (ADU, overscan-subtracted) is below ``min_level`` are dropped (rsetflat's 7000);
2. calibrated: traces, empirical profile and extraction (:func:`hetred.calib.profile.calibrate_frame`);
3. modelled: the extracted spectra are made smooth at the pixel scale (see :func:`smooth_spectra`)
   and projected back through the profiles (:func:`hetred.calib.extract.model_image`);
4. divided: ``ratio = frame / model`` within ``rcut`` (3.5) px of the nearest trace, 1 elsewhere
   (imar_flt); the ratio images go to a temporary float32 stack file;
5. combined: per-pixel biweight over the frames (imcmb), in row bands of ``band_mib`` MiB, so
   memory does not grow with the number of frames.

The product ``pixelflat`` (oriented, float32) carries NFRAMES, the inputs and the hetred version
in its header, and the bad-pixel boxes found on it (:mod:`hetred.calib.pixmask`) in a MASKBOXES
table extension; the CLI gathers those into ``pix_mask.tab`` after the units.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from astropy.io import fits
from scipy import ndimage

from hetred._version import __version__
from hetred.calib import pixmask
from hetred.config import parse_stage_table
from hetred.errors import HetredError, RawReadError
from hetred.io.atomic import atomic_path, write_fits_atomic
from hetred.io.raw import RawAmp, iter_members, open_tar, read_member_header, tar_members
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout, parse
from hetred.stats import biweight
from hetred.virus import amp as ampgeom

STAGE = "flat"
F32 = np.float32


@dataclass(frozen=True)
class FlatSettings:
    """Settings of the flat stage; ``[stages.flat]`` in the config file sets any of them."""

    min_level: float = 0.0       #: drop frames whose median (ADU) is below this (rsetflat: 7000)
    kinds: str = "flt,twi"       #: frame types used
    rcut: float = 3.5            #: px: imar_flt's distance to the nearest trace
    smooth_cols: int = 41        #: columns of the running median of a fiber's spectrum ratio
    neighbours: int = 4          #: fibers on each side in the neighbour template
    max_shift: float = 0.5       #: px: larger trace shifts against the unit's first frame recalibrate
    band_mib: float = 64.0       #: memory for one band of all frames in the combine (MiB)
    tmpdir: str | None = None    #: where the ratio stack file goes (None: system temp)
    qa: bool = True              #: write the QA PNG
    mask_nsigma: float = 8.0     #: pixmask threshold in robust sigma ...
    mask_min_dev: float = 0.05   #: ... and at least this deviation
    mask_pad: int = 3            #: px padding of the mask boxes
    row_norm: int = 101          #: columns of the clipped running mean along each row divided out (0: off)
    row_clip: float = 0.05       #: pixels farther than this from the running mean are left out of it

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> "FlatSettings":
        return cls(**parse_stage_table(cls, values, "stages.flat"))

    @property
    def kind_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.kinds.split(",") if k.strip())

    def mask_settings(self) -> pixmask.MaskSettings:
        return pixmask.MaskSettings(nsigma=self.mask_nsigma, min_dev=self.mask_min_dev, pad=self.mask_pad)


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


def unit_id(specid: int, amp: str) -> str:
    return f"cam{int(specid):03d}_{amp}"


# --------------------------------------------------------------------------------------------
# finding the frames

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


# --------------------------------------------------------------------------------------------
# one frame

def reduce_frame(raw: RawAmp, layout: Layout | None = None) -> tuple[np.ndarray, float, str]:
    """Oriented electrons of a raw frame: (image, median ADU, bias used).

    Overscan, the master bias of the frame's month, SPECID, controller and amp when it exists
    (raw orientation, oriented here), else overscan only; header gain."""
    img = raw.oriented()
    level = float(np.median(img))
    used = "overscan only"
    if layout is not None:
        stamp = raw.source.rsplit("/", 1)[-1][:6]
        p = layout.path("masterbias", month=stamp, specid=raw.specid,
                        contid=raw.contid or "0666", amp=raw.amp)
        if p.exists():
            with fits.open(p, memmap=False) as h:
                bias = np.asarray(h[0].data, dtype=F32)
            img = img - np.ascontiguousarray(ampgeom.orient(bias, raw.amp, raw.ampname))
            used = str(p)
    gain = F32(raw.header.get("GAIN", 1.0))
    return (img * gain).astype(F32), level, used


def smooth_spectra(spectra: np.ndarray, neighbours: int = 4, smooth_cols: int = 41,
                   template: bool = True) -> np.ndarray:
    """Spectra without pixel-scale structure along the columns.

    Karl divides the frame by the model of the spectra as extracted; a defect wider than a
    fiber's profile (a low box, a bad column) then lowers the extracted flux itself and
    cancels in the ratio.  Here each fiber's spectrum is written as (its ratio to the median
    shape of its ``neighbours`` fibers on each side) x (that shape), and the ratio is replaced
    by its running median over ``smooth_cols`` columns.  The shape keeps every real spectral
    feature shared by neighbouring fibers (solar lines of a twilight); the running median
    removes what belongs to one or two fibers over fewer than ~smooth_cols/2 columns.

    A bad column dims every fiber at that column, like a spectral line, so with the template it
    stays in the spectra and cancels in the ratio.  Lamp flats have no such lines: with
    ``template=False`` (used for ``flt``) the spectrum itself is replaced by its running median,
    which keeps bad columns in the flat.
    """
    s = np.asarray(spectra, dtype=np.float64)
    nfib = s.shape[0]
    med = np.median(s, axis=1, keepdims=True)
    ok = (med[:, 0] > 0) & np.isfinite(med[:, 0])
    t = np.where(ok[:, None], s / np.where(med > 0, med, 1.0), np.nan)
    out = s.copy()
    for f in range(nfib):
        if not ok[f]:
            continue
        nb = [g for g in range(max(0, f - neighbours), min(nfib, f + neighbours + 1)) if g != f and ok[g]]
        if template and len(nb) < 2:
            continue
        shape = np.nanmedian(t[nb], axis=0) if template else np.ones(s.shape[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(shape > 0, s[f] / shape, np.nan)
        good = np.isfinite(r)
        if good.sum() < smooth_cols:
            continue
        rf = np.interp(np.arange(len(r)), np.nonzero(good)[0], r[good])
        rs = ndimage.median_filter(rf, size=smooth_cols, mode="nearest")
        out[f] = np.where(shape > 0, rs * shape, s[f])
    return out


def trace_distance(trace: np.ndarray, nrow: int = ampgeom.NROWS) -> tuple[np.ndarray, np.ndarray]:
    """(nrow, ncol) distance (px) of every pixel centre from the nearest trace, and the index
    of that trace (int16; traces increase with fiber index)."""
    tr = np.asarray(trace, dtype=np.float64)
    ncol = tr.shape[1]
    rows = np.arange(nrow, dtype=np.float64)
    out = np.empty((nrow, ncol), dtype=F32)
    idx = np.empty((nrow, ncol), dtype=np.int16)
    for c in range(ncol):
        t = tr[:, c]
        i = np.clip(np.searchsorted(t, rows), 1, len(t) - 1)
        lo, hi = np.abs(rows - t[i - 1]), np.abs(rows - t[i])
        out[:, c] = np.minimum(lo, hi)
        idx[:, c] = np.where(lo <= hi, i - 1, i)
    return out, idx


def flat_ratio(image: np.ndarray, read_noise: float = 3.0, settings: FlatSettings | None = None,
               reference=None, kind: str = "flt") -> tuple[np.ndarray, dict]:
    """imar_flt on one reduced frame: frame / fiber model within rcut px of a trace, else 1.

    image: (1032, 1032) oriented e-; kind: ``flt`` or ``twi`` (see :func:`smooth_spectra`).
    Pixels whose nearest trace is a dead fiber are set to 1 (too faint to measure).  reference: the ``calibration`` of an earlier frame of
    the unit, or None.  With a reference the frame's traces are the reference's moved by the
    frame's measured cross-dispersion shift and the reference's profile is reused (one
    extraction, ~1 s); without one, or when the shift exceeds ``max_shift`` px, the full
    :func:`~hetred.calib.profile.calibrate_frame` runs (~7-10 s).  Returns (ratio float32,
    info) with ``calibration`` (the full one, or the reference), ``trace``, ``shift``,
    ``distance`` and ``model``."""
    from hetred.calib import trace as T
    from hetred.calib.extract import extract, model_image
    from hetred.calib.profile import calibrate_frame

    s = settings or FlatSettings()
    shift = 0.0
    if reference is not None:
        live = ~reference.trace.dead
        shift = T.measure_trace_shift(image, reference.trace.trace, exclude=~live)
    if reference is None or not abs(shift) <= s.max_shift:
        cal = calibrate_frame(image, None, read_noise=read_noise)
        trace, prof, spectra, shift = cal.trace.trace, cal.profile, cal.extraction.spectra, 0.0
    else:
        cal = reference
        trace = np.asarray(reference.trace.trace, dtype=F32) + F32(shift)
        prof = reference.profile
        spectra = extract(image, trace, prof, read_noise=read_noise).spectra
    spec = smooth_spectra(spectra, s.neighbours, s.smooth_cols, template=(kind != "flt"))
    model = model_image(spec, trace, prof, image.shape[0])
    dist, nearest = trace_distance(trace, image.shape[0])
    live = ~np.asarray(cal.trace.dead, dtype=bool)[nearest]
    # a fiber-column without a flux (masked core: spectra 0) leaves only the neighbours' wings in
    # the model there: pixels whose model is below 2 % of the column's brightest are not measured
    lit = model > F32(0.02) * np.max(model, axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((dist <= s.rcut) & live & lit & (model > 0), image / model, F32(1.0)).astype(F32)
    ratio[~np.isfinite(ratio)] = 1.0
    return ratio, {"calibration": cal, "trace": trace, "shift": shift, "distance": dist, "model": model}


# --------------------------------------------------------------------------------------------
# the combine

class RatioStack:
    """float32 (1032, 1032) images in an unlinked temporary file; combined in row bands."""

    def __init__(self, tmpdir: str | None = None, shape=(ampgeom.NROWS, ampgeom.NCOLS)) -> None:
        self._f = tempfile.TemporaryFile(prefix="hetred-flat-", dir=tmpdir)
        self.shape = tuple(shape)
        self.n = 0

    def __enter__(self) -> "RatioStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def add(self, image: np.ndarray) -> None:
        self._f.write(np.ascontiguousarray(image, dtype=F32).tobytes())
        self.n += 1

    def combine(self, band_mib: float = 64.0) -> np.ndarray:
        """Per-pixel biweight location (Karl's biwgt, imcmb) over the images."""
        self._f.flush()
        nrow, ncol = self.shape
        fb = nrow * ncol * 4
        step = max(1, min(nrow, int(band_mib * 2**20 // max(1, self.n * ncol * 4))))
        out = np.empty((nrow, ncol), dtype=F32)
        fd = self._f.fileno()
        for r0 in range(0, nrow, step):
            r1 = min(nrow, r0 + step)
            nb = (r1 - r0) * ncol * 4
            band = np.empty((self.n, r1 - r0, ncol), dtype=F32)
            for k in range(self.n):
                buf = os.pread(fd, nb, k * fb + r0 * ncol * 4)
                band[k] = np.frombuffer(buf, dtype=F32).reshape(r1 - r0, ncol)
            out[r0:r1] = biweight(band, axis=0)[0]
        return out


def remove_row_trend(flat: np.ndarray, near: np.ndarray, width: int = 101, clip: float = 0.05) -> np.ndarray:
    """Divide every row of the combined ratio by its clipped running mean along the columns.

    flat: (1032, 1032) combined ratio (1 beyond ``rcut`` of a trace); near: bool, the pixels
    within ``rcut``. A row runs along a fiber at a nearly constant offset from its trace, so an
    error of the fiber profile at that offset (a few % in the wings when the profile of the
    unit's reference frame is not exact there) is a smooth factor along the row; the pixel
    flat is the pixel-to-pixel response, and structure wider than ``width`` columns is left to
    the fiber-to-fiber (smoothed over 50 Å, ~25 columns). Two passes: the running mean of the
    near pixels, then again without the pixels more than ``clip`` from it (defects). Rows
    with fewer than ``width // 4`` near pixels in the window are left alone. Returns float32.
    """
    from scipy.ndimage import uniform_filter1d

    f = np.asarray(flat, dtype=np.float64)
    use = np.asarray(near, bool).copy()
    mean = np.ones_like(f)
    for _ in range(2):
        num = uniform_filter1d(np.where(use, f, 0.0), width, axis=1, mode="nearest")
        den = uniform_filter1d(use.astype(np.float64), width, axis=1, mode="nearest")
        ok = den * width >= width // 4
        mean = np.where(ok, num / np.maximum(den, 1e-12), 1.0)
        use = near & (np.abs(f - mean) <= clip)
    return np.where(near, f / mean, 1.0).astype(F32)


# --------------------------------------------------------------------------------------------
# one unit

def run_pixelflat(layout: Layout, specid: int, amp: str, frames: Sequence[FlatFrame],
                  settings: FlatSettings | None = None) -> UnitOutcome:
    """Build ``pixelflat_cam{specid}_{amp}`` from ``frames`` (those of this amp are used)."""
    s = settings or FlatSettings()
    mine = [f for f in frames if f.amp == amp and f.specid == specid]
    if not mine:
        raise HetredError(f"no {'/'.join(s.kind_list)} frames of camera {specid:03d} amp {amp}")
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
                img, level, _bias = reduce_frame(raw, layout)
                if level < s.min_level:
                    dropped["faint"] = dropped.get("faint", 0) + 1
                    continue
                t1 = time.perf_counter()
                timings["read"] += t1 - t0
                try:
                    ratio, info = flat_ratio(img, float(raw.header.get("RDNOISE", 3.0)), s, reference,
                                             kind=f.kind)
                    reference = info["calibration"]
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
            raise HetredError(f"camera {specid:03d} amp {amp}: none of {len(mine)} frames usable ({why})")
        t0 = time.perf_counter()
        flat = stack.combine(s.band_mib)
    near = flat != 1.0
    if s.row_norm > 0:
        flat = remove_row_trend(flat, near, s.row_norm, s.row_clip)
    timings["combine"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    boxes, info = pixmask.find_defect_boxes(flat, near, s.mask_settings())
    timings["mask"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ifuslot = max(ifuslots, key=ifuslots.get)
    path = write_pixelflat(layout, specid, amp, ifuslot, flat, used, dropped, boxes, info, s)
    outputs = [str(path)]
    if s.qa:
        outputs.append(str(write_qa(layout, specid, amp, ifuslot, flat, boxes)))
    timings["write"] = time.perf_counter() - t0
    return UnitOutcome(outputs=outputs, inputs=used, counts={
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

    from hetred.io.atomic import write_text_atomic

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
            write_text_atomic(path, pixmask.format_pixmask(rows, [
                f"hetred {__version__} bad-pixel boxes from the pixel flats in {path.parent}",
                "x = column, y = row of the ORIENTED frame, 1-based, inclusive (docs/stages/flat.md)"]))
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
