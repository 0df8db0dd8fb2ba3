"""Truth comparisons of the twilight calibration and the pixel flats (tests and ``hetred demo``).

Reduction code never imports this module (it reads truth files).

Twilight library (``callib``) vs truth:

* trace and wavelength: the library is the biweight of the month's exposures, so it is compared
  with the same biweight of the nights' truths (each night weighted by its twilights);
* fiber-to-fiber is relative (the measured ftf has biweight 1 over the amp's fibers at each
  wavelength): measured / truth is normalised by its median over the live fibers per column, and
  its rms over 3700-5400 Å and all live fibers is the error;
* amp-to-amp: truth = biweight over the live fibers of truth FIBER_TO_FIBER (3700-5400 Å) times
  the header-gain error GAIN_HDR / GAIN_TRU of the amp (electrons are made with the header gain,
  so the factor absorbs that error: hetdex_numbers.md §6), normalised to mean 1 over the amps
  compared, like the measured factors.

Pixel flat vs truth PIXELFLAT: flat / truth - 1 within 3 px of the live traces, away from the
defect boxes and bad columns (whose edges the 41-column smoothing of the method blurs) and off the
charge-trap pixels (which the flat does not measure).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from hetred.layout import Layout
from hetred.twical import fiber_to_fiber as F

AMPS = ("LL", "LU", "RL", "RU")
WRANGE = (3700.0, 5400.0)
EDGE_FIBERS = (0, 1, 2, 3, 108, 109, 110, 111)    #: fiber rows k at the slit edges (issue 11)


def amp_truth(layout: Layout, nights: list[str], ifuslot: int, amp: str,
              weights: list[int] | None = None) -> dict:
    """Truth of one amp's monthly library: trace, wave (biweight over the nights' twilights),
    ftf, dead (112,) bool, gain_err; ``weights``: twilights per night (default 1 each)."""
    w = weights or [1] * len(nights)
    tr, wv, ff = [], [], []
    for n, k in zip(nights, w):
        with fits.open(layout.path("truth_amp", night=n, ifuslot=ifuslot, amp=amp)) as h:
            tr += [h["TRACE"].data.astype(np.float32)] * k
            wv += [h["WAVELENGTH"].data.astype(np.float64)] * k
            ff.append(h["FIBER_TO_FIBER"].data.astype(np.float64))
            dead = np.zeros(112, bool)
            dead[np.asarray(h["DEAD_FIBERS"].data["FIBER"], int) - 1] = True
            gain_err = float(h[0].header["GAIN_HDR"]) / float(h[0].header["GAIN_TRU"])
    tr2, wv2 = np.stack(tr), np.stack(wv)
    wref = np.median(wv2, axis=0)
    trace = F.nan_biweight(tr2, 0)[0] if len(tr) > 1 else tr2[0]
    wave = wref + F.nan_biweight(wv2 - wref, 0)[0] if len(wv) > 1 else wv2[0]
    return dict(trace=trace, wave=wave, ftf=ff[0], dead=dead, gain_err=gain_err)


def library_errors(lib: dict, t: dict) -> dict:
    """Errors of one amp's library (:func:`hetred.fibers.library.read_library`) against
    :func:`amp_truth`: trace_rms px, wave_med / wave_99 / wave_max Å (per-fiber rms over the
    columns, over the live fibers) and wave_fiber_max (its fiber row k), wave_edge Å and
    wave_edge_fiber (the worst live fiber row k of the slit edges, k = 0-3 and 108-111),
    ftf_rms, dead_ok, a2a (measured) and a2a_truth (before normalisation)."""
    live = ~t["dead"]
    trace_rms = float(np.sqrt(np.mean((lib["trace"] - t["trace"])[live] ** 2)))
    wall = np.sqrt(np.mean((lib["wavelength"] - t["wave"]) ** 2, axis=1))
    werr = wall[live]
    edge = np.array([k for k in EDGE_FIBERS if live[k]], int)
    kworst = int(edge[np.argmax(wall[edge])]) if edge.size else -1
    with np.errstate(divide="ignore", invalid="ignore"):
        r = lib["fiber_to_fiber"] / t["ftf"]
    r = r / np.median(r[live], axis=0)[None, :]
    sel = (t["wave"] > WRANGE[0]) & (t["wave"] < WRANGE[1]) & live[:, None]
    ftf_rms = float(np.sqrt(np.mean((r - 1)[sel] ** 2)))
    tlev = F.nan_biweight(np.where(sel, t["ftf"], np.nan)[live].reshape(1, -1), axis=1)[0][0]
    return dict(trace_rms=trace_rms, wave_med=float(np.median(werr)), wave_99=float(np.percentile(werr, 99)),
                wave_max=float(werr.max()), wave_fiber_max=int(np.argmax(np.where(live, wall, -1.0))),
                wave_edge=float(wall[kworst]) if kworst >= 0 else float("nan"),
                wave_edge_fiber=kworst, ftf_rms=ftf_rms, dead_ok=bool(np.array_equal(lib["dead"], t["dead"])),
                n_dead=int(t["dead"].sum()), a2a=float(lib["amp_to_amp"]),
                a2a_truth=float(tlev) * t["gain_err"])


def library_metrics(layout: Layout, month: str, nights: list[str], amps: list[tuple[int, str]],
                    weights: list[int] | None = None) -> dict[tuple[int, str], dict]:
    """{(ifuslot, amp): :func:`library_errors`} with measured and truth amp-to-amp both
    normalised to mean 1 over ``amps``."""
    from hetred.fibers.library import read_library

    res = {}
    for slot, amp in amps:
        path = next(layout.glob("callib", month=month, ifuslot=slot, amp=amp))
        res[(slot, amp)] = library_errors(read_library(path), amp_truth(layout, nights, slot, amp, weights))
    mt = np.mean([v["a2a_truth"] for v in res.values()])
    mm = np.mean([v["a2a"] for v in res.values()])
    for v in res.values():
        v["a2a_truth"] /= mt
        v["a2a"] /= mm
        v["a2a_err"] = v["a2a"] / v["a2a_truth"] - 1.0
    return res


def pixelflat_errors(flat: np.ndarray, truth_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(flat / truth - 1 within 3 px of the live traces away from defects and off the charge
    traps, its 15 x 15 px running mean: the systematic part)."""
    from hetred.flat.pixelflat import trace_distance

    with fits.open(truth_path) as h:
        pf = h["PIXELFLAT"].data.astype(np.float64)
        tr = h["TRACE"].data.astype(np.float64)
        dead = np.asarray(h["DEAD_FIBERS"].data["FIBER"], int) - 1
        boxes = [(r["X1"], r["X2"], r["Y1"], r["Y2"]) for r in h["DEFECT_BOXES"].data]
        cols = [int(r["X"]) for r in h["BAD_COLUMNS"].data]
        traps = [(int(r["X"]), int(r["Y1"]), int(r["Y2"])) for r in h["TRAPS"].data]
    dist, _ = trace_distance(np.delete(tr, dead, axis=0))
    near = dist <= 3.0
    for x, y1, y2 in traps:          # the flat does not measure a trap's pixels (bias unknown)
        near[y1:y2 + 1, x] = False
    for x1, x2, y1, y2 in boxes:
        near[max(0, y1 - 6):y2 + 7, max(0, x1 - 25):x2 + 26] = False
    for c in cols:
        near[:, max(0, c - 25):c + 26] = False
    err = np.where(near, np.asarray(flat, np.float64) / pf - 1.0, np.nan)
    num = ndimage.uniform_filter(np.nan_to_num(err), 15)
    den = ndimage.uniform_filter(near.astype(float), 15)
    smooth = np.where(den > 0.3, num / np.maximum(den, 1e-9), np.nan)
    return err[near], smooth[near & np.isfinite(smooth)]


def defect_boxes(truth_path: Path) -> list[tuple[int, int, int, int]]:
    """The truth defects (x1, x2, y1, y2) 0-based inclusive oriented: boxes and bad columns."""
    with fits.open(truth_path) as h:
        out = [(int(r["X1"]), int(r["X2"]), int(r["Y1"]), int(r["Y2"])) for r in h["DEFECT_BOXES"].data]
        out += [(int(r["X"]), int(r["X"]), int(r["Y1"]), int(r["Y2"])) for r in h["BAD_COLUMNS"].data]
    return out
