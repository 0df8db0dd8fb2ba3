"""``hetred spec2d``: get_spec2D's products for the detections of a shot (hetdex_api
hetdex_tools/get_spec2D.py ``--h5file``; hetdex_formats.md §4.5; docs/stages/spec2d.md).

For each detection of the shot in the release's detect file (the merged one, else the month's):

* ``FiberImages`` (title "Fiber Cutout Images"): ``im_wave`` (width,) the wavelength of the
  highest-weight fiber across the cut-out columns; ``im_sum`` (height, width) the cut-outs of all
  its fibers weighted by their ``weight`` / sum of weights; ``im_array`` (4, height, width) the
  cut-outs of the four highest-weight fibers. A cut-out is ``height`` CCD rows x ``width``
  columns of the amp's ``clean_image`` (``/Data/Images`` of the shot file), centred on the fiber's
  trace at the column where its wavelength reaches the detection's ``wavein``, zero where it runs
  off the CCD (Fibers.get_fib_image2D). The trace of the multi files is 1-based (vred): the
  cut-out's centre row is ``trace - 1``. (hetdex_api indexes the image with the trace as it is,
  one row off the fiber centre.)
* ``PhotImages``: ``detectid``, ``im_phot`` (60, 60) and ``im_phot_hdr``: get_spec2D fills them
  from Elixer's imaging catalogues, which hetred does not have: zeros and an empty header, as
  get_spec2D leaves them for a source without imaging.
* ``Spec1D`` (title "Aperture Summed Spectrum"): ``spec1D``, ``spec1D_err`` = the detection's
  ``spec1d``, ``spec1d_err`` / 2 (1e-17 erg s^-1 cm^-2 Å^-1, what Detections.get_spectrum
  returns without the HDR2.1 extinction fix).

``merge_spec2d`` stacks every shot's ``im2D_SHOTID.h5`` into ``merged_im2D.h5`` with csindexes
on ``detectid`` (get_spec2D ``--merge``).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tables as tb

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.h5.schema import columns, description, dtype, fiber_image_2d
from hetred.h5.settings import H5Settings
from hetred.io.atomic import atomic_path

STAGE = "spec2d"
STAGE_MERGE = "spec2d-merge"
_NAMES = {"fiber_images": ("FiberImages", "Fiber Cutout Images"), "phot_image": ("PhotImages", "Photometric Images"),
          "spec1d": ("Spec1D", "Aperture Summed Spectrum")}


@dataclass
class Spec2dResult:
    path: Path
    detections: int = 0
    warnings: list[str] = field(default_factory=list)


def cutout(image: np.ndarray, row: float, col: float, width: int, height: int) -> np.ndarray:
    """``height`` x ``width`` pixels of ``image`` around (row, col) (0-based, rounded), zero
    outside the image (Fibers.get_fib_image2D's padding)."""
    height, width = min(height, image.shape[0]), min(width, image.shape[1])
    x, y = int(np.round(row)), int(np.round(col))
    out = np.zeros((height, width), dtype=np.float32)
    x1, x2 = x - height // 2, x + height // 2 + height % 2
    y1, y2 = y - width // 2, y + width // 2 + width % 2
    sx1, sy1 = max(0, x1), max(0, y1)
    sx2, sy2 = min(image.shape[0], x2), min(image.shape[1], y2)
    if sx2 > sx1 and sy2 > sy1:
        out[sx1 - x1:sx2 - x1, sy1 - y1:sy2 - y1] = image[sx1:sx2, sy1:sy2]
    return out


def fiber_position(wave: np.ndarray, trace: np.ndarray, wave_obj: float) -> tuple[float, float]:
    """(row 0-based, column) of a fiber at ``wave_obj`` Å: the column where its wavelength
    reaches ``wave_obj`` (rounded) and the trace there (1-based in the multi files)."""
    col = float(np.round(np.interp(wave_obj, wave, np.arange(len(wave)))))
    row = float(np.interp(col, np.arange(len(trace)), trace)) - 1.0
    return row, col


class _ShotFile:
    """The fibers and images of a shot file that the cut-outs need (images cached, a few amps)."""

    def __init__(self, path: Path) -> None:
        self.f = tb.open_file(str(path), "r")
        idx = self.f.root.Data.FiberIndex
        self.key = {(m, int(e), int(i)): k for k, (m, e, i) in
                    enumerate(zip(idx.cols.multiframe[:], idx.cols.expnum[:], idx.cols.fibidx[:]))}
        self.images: OrderedDict = OrderedDict()

    def fiber(self, multiframe: bytes, expnum: int, fibnum: int) -> tuple[np.ndarray, np.ndarray]:
        k = self.key.get((multiframe, int(expnum), int(fibnum) - 1))
        if k is None:
            raise HetredError(f"{self.f.filename}: no fiber {multiframe.decode()} exp{expnum} {fibnum}")
        row = self.f.root.Data.Fibers.read(k, k + 1)
        return row["wavelength"][0], row["trace"][0]

    def image(self, multiframe: bytes, expnum: int) -> np.ndarray:
        key = (multiframe, int(expnum))
        if key not in self.images:
            t = self.f.root.Data.Images
            rows = t.read_where("(multiframe == mf) & (expnum == ex)", condvars={"mf": multiframe, "ex": int(expnum)},
                                field="clean_image")
            if len(rows) == 0:
                raise HetredError(f"{self.f.filename}: no image of {multiframe.decode()} exp{expnum}")
            self.images[key] = rows[0]
            if len(self.images) > 8:
                self.images.popitem(last=False)
        return self.images[key]

    def close(self) -> None:
        self.f.close()


def write_spec2d(shot_path: Path, detect_path: Path, shotid: int, out: Path, width: int = 100, height: int = 9,
                 settings: H5Settings | None = None) -> Spec2dResult:
    """Cut-outs and spectra of the detections of ``shotid`` (module docstring)."""
    st = settings or H5Settings()
    res = Spec2dResult(Path(out))
    try:
        fd = tb.open_file(str(detect_path), "r")
    except (OSError, tb.HDF5ExtError) as err:
        raise HetredError(f"detect file {detect_path}: cannot open ({err.__class__.__name__})") from None
    try:
        dets = fd.root.Detections.read_where("shotid == sid", condvars={"sid": np.int64(shotid)})
        shot = _ShotFile(shot_path) if len(dets) else None
        fcols = fiber_image_2d(width, height)
        with atomic_path(res.path) as tmp, tb.open_file(str(tmp), "w") as f:
            tabs = {k: f.create_table(f.root, _NAMES[k][0], description(c), _NAMES[k][1],
                                      filters=st.filters(_NAMES[k][0]))
                    for k, c in (("fiber_images", fcols), ("phot_image", columns("phot_image", st.schema)),
                                 ("spec1d", columns("spec1d", st.schema)))}
            for d in dets:
                did = int(d["detectid"])
                fib = fd.root.Fibers.read_where("detectid == did", condvars={"did": np.int64(did)})
                fib = fib[np.argsort(-fib["weight"], kind="stable")]
                row = np.zeros(1, dtype=dtype(fcols))
                row["detectid"] = did
                wsum = float(np.sum(fib["weight"]))
                for i, fr in enumerate(fib):
                    wave, trace = shot.fiber(fr["multiframe"], fr["expnum"], fr["fibnum"])
                    r, c = fiber_position(wave, trace, float(fr["wavein"]))
                    im = cutout(shot.image(fr["multiframe"], fr["expnum"]), r, c, width, height)
                    if wsum > 0:
                        row["im_sum"][0] += fr["weight"] / wsum * im
                    if i < 4:
                        row["im_array"][0, i] = im
                    if i == 0:
                        row["im_wave"][0] = cutout(wave[None, :], 0, c, width, 1)[0]
                tabs["fiber_images"].append(row)
                ph = np.zeros(1, dtype=tabs["phot_image"].dtype)
                ph["detectid"] = did
                tabs["phot_image"].append(ph)
                sp = fd.root.Spectra.read_where("detectid == did", condvars={"did": np.int64(did)})
                s1 = np.zeros(1, dtype=tabs["spec1d"].dtype)
                s1["detectid"] = did
                if len(sp):
                    s1["spec1D"], s1["spec1D_err"] = sp["spec1d"][0] / 2.0, sp["spec1d_err"][0] / 2.0
                tabs["spec1d"].append(s1)
                res.detections += 1
            for t in tabs.values():
                t.attrs["hetred_version"] = __version__
                t.flush()
                t.close()
        if shot is not None:
            shot.close()
    finally:
        fd.close()
    if not len(dets):
        res.warnings.append(f"no detections of shot {shotid} in {detect_path}")
    return res


def merge_spec2d(files: list[Path], out: Path, settings: H5Settings | None = None) -> Spec2dResult:
    """Stack im2D files (in the order given) into one, with csindexes on detectid."""
    st = settings or H5Settings()
    if not files:
        raise HetredError("no im2D files to merge (run hetred spec2d first)")
    res = Spec2dResult(Path(out))
    with atomic_path(res.path) as tmp, tb.open_file(str(tmp), "w") as f:
        tabs: dict[str, tb.Table] = {}
        for p in files:
            with tb.open_file(str(p), "r") as fi:
                for node, title in _NAMES.values():
                    src = getattr(fi.root, node)
                    if node not in tabs:
                        tabs[node] = f.create_table(f.root, node, src.description, title,
                                                    filters=st.filters(node), expectedrows=1000)
                    elif tabs[node].dtype != src.dtype:
                        raise HetredError(f"{p}: its {node} table differs from {files[0]} (other cut-out size?)")
                    tabs[node].append(src.read())
                res.detections += int(fi.root.FiberImages.nrows)
        for t in tabs.values():
            t.flush()
            t.cols.detectid.create_csindex()
            t.flush()
            t.close()
    return res
