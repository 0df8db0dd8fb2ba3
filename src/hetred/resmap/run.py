"""Units of ``hetred resmap`` (karlspipe hdr2.1 steps 14c-14d: pixel_res/mkres0 + imcmbext.f,
pixel_chi/mkchi0 + imcmbchi.f): one camera amp (SPECID x amp) over a month.

:func:`resmap_units` lists the (specid, amp) of the month's science amps; :func:`run_resmap`
streams the amp's multi files of the month (:mod:`hetred.resmap.stream`: blocks of fiber rows
within the memory budget, every file read once per block) through Karl's combinations
(:mod:`hetred.resmap.combine`) and writes ``res``, ``sres``, ``rres``, ``chi{SSS}{AA}.fits`` into
``lib_calib/{month}/reschi/`` (primary (112, 1032) float32, header N = files, NUSE, NORM of rres,
ZNORM (hetred: the biweight of the per-pixel scatter of sky_subtracted / error1d) and RRESFLAG
(|ZNORM - 1| > rres_flag)) and the QA PNG. No multi file: the unit is empty.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred._version import __version__
from hetred.errors import EmptyUnit
from hetred.io.fastfits import write_images
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.resmap import combine as C
from hetred.resmap.settings import STAGE, ResmapSettings
from hetred.resmap.stream import RowReader, month_cameras, month_files, rows_per_block
from hetred.stats import biweight

__all__ = ["STAGE", "ResmapUnit", "resmap_units", "run_resmap"]


@dataclass(frozen=True)
class ResmapUnit:
    month: str
    specid: int
    amp: str

    @property
    def unit(self) -> str:
        return f"{self.month}_{self.specid:03d}{self.amp}"


def resmap_units(layout: Layout, month: str, specids: list[int] | None = None, amps: list[str] | None = None,
                 entries=None) -> list[ResmapUnit]:
    """The camera amps of the month's science exposures (tarlist; made when missing)."""
    from hetred.lists.tarlist import month_entries

    rows = month_entries(layout, month) if entries is None else entries
    cams = month_cameras(layout, rows)
    return [ResmapUnit(month, s, a) for s, a in cams
            if (not specids or s in specids) and (not amps or a in amps)]


def combine_files(paths, st: ResmapSettings) -> dict:
    """The four maps from the files ``paths`` (streamed), with the numbers that go in the headers."""
    reader = RowReader(paths)
    assert reader.shape is not None
    nrow, ncol = reader.shape
    nuse = C.nuse_of(len(paths), st.use_fraction)
    maps = {k: np.zeros((nrow, ncol), np.float32) for k in ("res", "sres", "rres", "chi")}
    zs = np.full((nrow, ncol), np.nan, np.float32)
    step = rows_per_block(len(paths), ncol, len(reader.names), st.memory_mb)
    for r0 in range(0, nrow, step):
        r1 = min(nrow, r0 + step)
        b = reader.block(r0, r1)
        res, sres, rres = C.imcmbext_block(b["sky_subtracted"], b["sky_spectrum"], b["error1d"], nuse)
        maps["res"][r0:r1], maps["sres"][r0:r1], maps["rres"][r0:r1] = res, sres, rres
        maps["chi"][r0:r1] = C.imcmbchi_block(b["chi2"], st.chi_missing)
        zs[r0:r1] = C.zscale_block(b["sky_subtracted"], b["error1d"], nuse)
        del b
    cols, rows = tuple(int(v) for v in st.norm_columns), tuple(int(v) for v in st.norm_rows)
    maps["rres"], norm, nnorm = C.normalise_rres(maps["rres"], cols, rows, st.norm_min)
    box = zs[rows[0] - 1:rows[1], cols[0] - 1:cols[1]]
    box = box[np.isfinite(box)]
    znorm = float(biweight(box)[0]) if box.size else float("nan")
    return {"maps": maps, "nuse": nuse, "norm": norm, "nnorm": nnorm, "znorm": znorm, "rows_per_block": step}


def run_resmap(layout: Layout, u: ResmapUnit, settings: ResmapSettings | None = None, entries=None) -> UnitOutcome:
    """One camera amp over the month (module docstring)."""
    from hetred.lists.tarlist import month_entries

    st = settings or ResmapSettings()
    rows = month_entries(layout, u.month) if entries is None else entries
    paths = month_files(layout, rows, u.specid, u.amp)
    tarlist = str(layout.path("tarlist", month=u.month))
    if not paths:
        raise EmptyUnit(f"{u.unit}: no multi file of camera {u.specid:03d} {u.amp} in {u.month} "
                        f"(run hetred sci {u.month})", depends=[tarlist])
    paths = paths[:st.max_files]
    if len(paths) < st.min_files:
        raise EmptyUnit(f"{u.unit}: {len(paths)} multi file(s) of camera {u.specid:03d} {u.amp} in {u.month}, fewer "
                        f"than min_files = {st.min_files}: no map (res 0, rres 1.04 where used)",
                        depends=[tarlist, *map(str, paths)])
    out = combine_files(paths, st)
    flag = bool(np.isfinite(out["znorm"]) and abs(out["znorm"] - 1.0) > st.rres_flag)
    cards = [("HETRED", __version__, "hetred version"), ("STAGE", STAGE, "hetred stage"),
             ("MONTH", u.month, "month of the science exposures"), ("SPECID", f"{u.specid:03d}", ""),
             ("AMP", u.amp, ""), ("N", len(paths), "Number of files"), ("NUSE", out["nuse"], "res needs more files"),
             ("NORM", round(float(out["norm"]), 5), "Normalization (rres: its biweight before)"),
             ("NNORM", out["nnorm"], "values the normalization is from"),
             ("ZNORM", round(out["znorm"], 5) if np.isfinite(out["znorm"]) else -1.0,
              "biweight of scale(skysub / error1d) per pixel"),
             ("RRESFLAG", bool(flag), f"|ZNORM - 1| > {st.rres_flag}: errors off")]
    written = []
    for kind in ("res", "sres", "rres", "chi"):
        p = layout.path(f"resmap_{kind}", month=u.month, specid=u.specid, amp=u.amp)
        write_images(p, [(out["maps"][kind], [("MAPKIND", kind, "imcmbext/imcmbchi map"), *cards])])
        written.append(str(p))
    if st.qa:
        from hetred.resmap.qa import write_png

        written.append(str(write_png(layout, u, out["maps"], out["norm"], len(paths))))
    counts = {"files": len(paths), "nuse": out["nuse"], "norm": round(float(out["norm"]), 4),
              "znorm": round(float(out["znorm"]), 4), "rres_flag": bool(flag),
              "res_rms": round(float(np.std(out["maps"]["res"][out["maps"]["res"] != 0])) if
                               np.any(out["maps"]["res"] != 0) else 0.0, 5),
              "rows_per_block": out["rows_per_block"]}
    notes = {}
    if flag:
        notes["amps whose errors are off (ZNORM: scatter of sky_subtracted / error1d)"] = [
            f"{u.specid:03d}{u.amp}: ZNORM {out['znorm']:.3f} (rres NORM {out['norm']:.3f})"]
    return UnitOutcome(outputs=written, inputs=[str(p) for p in paths], counts=counts,
                       depends=[tarlist, *map(str, paths)], notes=notes)
