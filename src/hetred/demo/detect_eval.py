"""Line detections against the simulator's truth: matching, completeness, purity, measurement
(issue 15's acceptance; used by the demo, the tests and benchmarks/bench_detect.py).

* **match**: detections by descending S/N, each to the nearest unmatched true line within 3.5"
  and 5 Å;
* **completeness**: the fraction detected as a function of the ideal S/N (true flux / ``f1``, the
  flux an ideal matched filter measures at S/N 1 from the truth noise and PSF,
  :mod:`hetred.sim.detect_shot`), fitted by C = erfc((s50 - s) / (sqrt2 w)) / 2 (maximum
  likelihood); ``f50 / f_ideal(S/N 5) = s50 / 5``, per wavelength bin with the global width;
* **purity** (ORIGIN-style): 1 - N_negated(S/N >= t) / N_search(S/N >= t) on the same IFUs;
* **measurement** of the matched lines with ideal S/N above a cut (selection on the truth, free
  of the Eddington bias of a cut on the measured S/N): median flux ratio - 1, the scatter of
  (flux - true) / MC error (std and robust), |dlambda|, position offset, sigma / true observed sigma.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erfc

from hetred.detect.formats import MC_NAMES_27, MC_NAMES_33


def read_mc(paths) -> dict[str, np.ndarray]:
    """The rows of ``.mc`` files (27 or 33 columns) as columns (numbers float, names str)."""
    rows: list[list[str]] = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if line.strip():
                rows.append(line.split())
    names = MC_NAMES_33 if rows and len(rows[0]) == 33 else MC_NAMES_27
    out: dict[str, np.ndarray] = {}
    for k, n in enumerate(names):
        col = [r[k] for r in rows]
        try:
            out[n] = np.array(col, dtype=float)
        except ValueError:
            out[n] = np.array(col, dtype=str)
    if not rows:
        out = {n: np.zeros(0) for n in names}
    return out


def match(det: dict[str, np.ndarray], truth: np.ndarray, radius: float = 3.5, dwave: float = 5.0) -> np.ndarray:
    """(n_truth,) index of the detection matched to each true line, -1 if none."""
    idx = np.full(len(truth), -1)
    if len(det["sn"]) == 0:
        return idx
    cosd = np.cos(np.radians(np.mean(truth["dec"])))
    for i in np.argsort(-det["sn"], kind="stable"):
        d = 3600.0 * np.hypot((det["ra"][i] - truth["ra"]) * cosd, det["dec"][i] - truth["dec"])
        ok = np.nonzero((d < radius) & (np.abs(det["wave"][i] - truth["wave"]) < dwave) & (idx < 0))[0]
        if ok.size:
            idx[ok[np.argmin(d[ok])]] = i
    return idx


def fit_s50(s: np.ndarray, found: np.ndarray, width: float | None = None) -> tuple[float, float]:
    """Maximum-likelihood (s50, width) of C(s) = erfc((s50 - s)/(sqrt2 w))/2 on a grid."""
    best = (-np.inf, np.nan, np.nan)
    widths = [width] if width is not None else np.arange(0.2, 3.0, 0.05)
    for w in widths:
        for s50 in np.arange(1.0, 15.0, 0.02):
            c = np.clip(0.5 * erfc((s50 - s) / (np.sqrt(2.0) * w)), 1e-9, 1 - 1e-9)
            ll = float(np.sum(np.where(found, np.log(c), np.log(1 - c))))
            if ll > best[0]:
                best = (ll, s50, w)
    return float(best[1]), float(best[2])


@dataclass
class Completeness:
    s50: float                    #: ideal S/N at 50 % completeness
    width: float
    bins: list[tuple[float, float, int, float, float]]   #: (lo, hi, n, f50/f_ideal5, median f_ideal5)

    @property
    def ratio(self) -> float:
        """f50 / (ideal matched-filter flux at S/N 5)."""
        return self.s50 / 5.0


def completeness(truth: np.ndarray, idx: np.ndarray, wave_bins=((3500, 4000), (4000, 4500), (4500, 5000),
                                                                  (5000, 5500))) -> Completeness:
    s = truth["flux"] / truth["f1"]
    found = idx >= 0
    s50, w = fit_s50(s, found)
    bins = []
    for lo, hi in wave_bins:
        sel = (truth["wave"] >= lo) & (truth["wave"] < hi)
        if sel.sum() < 5:
            continue
        b50, _ = fit_s50(s[sel], found[sel], w)
        bins.append((lo, hi, int(sel.sum()), b50 / 5.0, float(5.0 * np.median(truth["f1"][sel]))))
    return Completeness(s50, w, bins)


def purity_curve(sn_search: np.ndarray, sn_negated: np.ndarray, thresholds=np.arange(4.5, 8.01, 0.1)
                 ) -> list[tuple[float, int, int, float]]:
    """[(threshold, N search, N negated, purity)]."""
    out = []
    for t in thresholds:
        n, m = int(np.sum(sn_search >= t)), int(np.sum(sn_negated >= t))
        out.append((round(float(t), 2), n, m, 1.0 - m / n if n else 1.0))
    return out


def purity_threshold(curve, level: float = 0.95) -> float:
    """The lowest threshold from which the purity stays >= ``level``."""
    for k, (t, _, _, p) in enumerate(curve):
        if all(q >= level for _, _, _, q in curve[k:]):
            return t
    return float("nan")


@dataclass
class Measurement:
    n: int
    flux_bias: float              #: median flux / true - 1
    pull_std: float               #: std of (flux - true) / MC error
    pull_robust: float            #: 1.4826 MAD of the same
    dwave_median: float
    dwave_p90: float
    pos_median: float             #: arcsec
    pos_p90: float
    sigma_ratio: float            #: median sigma / true observed sigma


def measurement(det: dict[str, np.ndarray], truth: np.ndarray, idx: np.ndarray, min_sn: float = 10.0) -> Measurement:
    """Stats of the matched lines with ideal S/N > ``min_sn`` (module docstring)."""
    s = truth["flux"] / truth["f1"]
    m = (idx >= 0) & (s > min_sn)
    i = idx[m]
    if i.size == 0:
        return Measurement(0, *(float("nan"),) * 8)
    fl, fe, tr = det["flux"][i] * 1e-17, det["flux_err"][i] * 1e-17, truth["flux"][m]
    pull = (fl - tr) / np.where(fe > 0, fe, np.nan)
    pull = pull[np.isfinite(pull)]
    dw = np.abs(det["wave"][i] - truth["wave"][m])
    cosd = np.cos(np.radians(np.mean(truth["dec"])))
    d = 3600.0 * np.hypot((det["ra"][i] - truth["ra"][m]) * cosd, det["dec"][i] - truth["dec"][m])
    return Measurement(int(i.size), float(np.median(fl / tr) - 1.0), float(np.std(pull)),
                       float(1.4826 * np.median(np.abs(pull - np.median(pull)))), float(np.median(dw)),
                       float(np.percentile(dw, 90)), float(np.median(d)), float(np.percentile(d, 90)),
                       float(np.median(det["linewidth"][i] / truth["sigma_obs"][m])))


def mc_files(red: Path, run: str, slots=None) -> list[Path]:
    """The ``.mc`` files of a run under a reduction root (optionally of some IFU slots)."""
    out = []
    for p in sorted(Path(red).glob(f"detect/*/*/{run}/*.mc")):
        if slots is None or int(p.stem.split("_")[2]) in set(slots):
            out.append(p)
    return out
