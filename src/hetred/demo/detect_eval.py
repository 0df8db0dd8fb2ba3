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
  of the Eddington bias of a cut on the measured S/N) that are not blends (:func:`isolated`: no
  other true line of >= 0.3 x the flux within 3.5" and 15 Å, whose light enters the same fit --
  such a pair is found and measured as one line; 1-7 % of the lines of the 300-per-IFU scenes):
  median flux ratio - 1, the scatter of (flux - true) / MC error (std and robust), |dlambda|,
  position offset, sigma / true observed sigma.
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


def isolated(truth: np.ndarray, radius: float = 3.5, dwave: float = 15.0, frac: float = 0.3) -> np.ndarray:
    """(n_truth,) True for the lines without another true line of at least ``frac`` x their flux within
    ``radius`` arcsec (the fit radius: its light enters the line's weighted spectrum) and ``dwave`` Å
    (the two overlap in the fit: the search and the free-sigma fit take them as one line)."""
    cosd = np.cos(np.radians(np.mean(truth["dec"]))) if len(truth) else 1.0
    out = np.ones(len(truth), bool)
    for k in range(len(truth)):
        d = 3600.0 * np.hypot((truth["ra"] - truth["ra"][k]) * cosd, truth["dec"] - truth["dec"][k])
        near = ((d < radius) & (np.abs(truth["wave"] - truth["wave"][k]) < dwave)
                & (truth["flux"] >= frac * truth["flux"][k]))
        near[k] = False
        out[k] = not near.any()
    return out


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


THRESHOLDS = np.arange(4.5, 8.01, 0.1)


def purity_curve(sn_search: np.ndarray, sn_negated: np.ndarray, thresholds=None
                 ) -> list[tuple[float, int, int, float]]:
    """[(threshold, N search, N negated, purity)] at ``thresholds`` (4.5-8 by 0.1)."""
    thresholds = THRESHOLDS if thresholds is None else thresholds
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


def measured(truth: np.ndarray, idx: np.ndarray, min_sn: float = 10.0) -> np.ndarray:
    """(n_truth,) the lines a measurement judges: matched, isolated, ideal S/N > ``min_sn``."""
    return (idx >= 0) & (truth["flux"] / truth["f1"] > min_sn) & isolated(truth)


def pulls(det: dict[str, np.ndarray], truth: np.ndarray, idx: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(flux - true) / MC error of the lines ``m`` (those with an error > 0)."""
    fe = det["flux_err"][idx[m]] * 1e-17
    p = (det["flux"][idx[m]] * 1e-17 - truth["flux"][m]) / np.where(fe > 0, fe, np.nan)
    return p[np.isfinite(p)]


def measurement(det: dict[str, np.ndarray], truth: np.ndarray, idx: np.ndarray, min_sn: float = 10.0) -> Measurement:
    """Stats of the matched, isolated lines with ideal S/N > ``min_sn`` (module docstring)."""
    m = measured(truth, idx, min_sn)
    i = idx[m]
    if i.size == 0:
        return Measurement(0, *(float("nan"),) * 8)
    fl, tr = det["flux"][i] * 1e-17, truth["flux"][m]
    pull = pulls(det, truth, idx, m)
    dw = np.abs(det["wave"][i] - truth["wave"][m])
    cosd = np.cos(np.radians(np.mean(truth["dec"])))
    d = 3600.0 * np.hypot((det["ra"][i] - truth["ra"][m]) * cosd, det["dec"][i] - truth["dec"][m])
    return Measurement(int(i.size), float(np.median(fl / tr) - 1.0), float(np.std(pull)),
                       float(1.4826 * np.median(np.abs(pull - np.median(pull)))), float(np.median(dw)),
                       float(np.percentile(dw, 90)), float(np.median(d)), float(np.percentile(d, 90)),
                       float(np.median(det["linewidth"][i] / truth["sigma_obs"][m])))


def median_flux_bias_sd(det: dict[str, np.ndarray], truth: np.ndarray, idx: np.ndarray, min_sn: float = 10.0,
                        n_boot: int = 1000, seed: int = 1) -> float:
    """Bootstrap 1-sigma of :class:`Measurement`'s median flux bias (the lines resampled)."""
    m = measured(truth, idx, min_sn)
    if m.sum() < 2:
        return float("nan")
    r = det["flux"][idx[m]] * 1e-17 / truth["flux"][m]
    rng = np.random.default_rng(seed)
    return float(np.std(np.median(r[rng.integers(0, r.size, (n_boot, r.size))], axis=1)))


def mc_files(red: Path, run: str, slots=None) -> list[Path]:
    """The ``.mc`` files of a run under a reduction root (optionally of some IFU slots)."""
    out = []
    for p in sorted(Path(red).glob(f"detect/*/*/{run}/*.mc")):
        if slots is None or int(p.stem.split("_")[2]) in set(slots):
            out.append(p)
    return out


# ------------------------------------------------------------------------------------------------
# the acceptance run (tests/stages/test_detect_acceptance.py, benchmarks/acceptance_detect.py)

LINE_SLOTS = (53, 63, 73)
BLANK_SLOTS = (82, 86)


def simulate_acceptance(root: Path, seed: int = 15, n_lines: int = 300):
    """The acceptance shot under ``root``: 300 faint emitters (1e-17 - 3e-16 erg/s/cm², 3550-5450 Å,
    sigma 1.5-3 Å) in each of ``LINE_SLOTS``, ``BLANK_SLOTS`` blank; returns (layout, shot)."""
    from hetred.layout import Layout
    from hetred.sim.detect_shot import simulate_detect_shot

    lay = Layout(Path(root) / "raw", Path(root) / "red")
    shot = simulate_detect_shot(lay, line_slots=LINE_SLOTS, blank_slots=BLANK_SLOTS, n_lines=n_lines, seed=seed)
    return lay, shot


@dataclass
class Acceptance:
    """Every number of issue 15's acceptance for one profile."""

    profile: str
    completeness: Completeness
    purity: list[tuple[float, int, int, float]]
    purity_95: float
    blank: tuple[int, int]              #: S/N >= 5 in the blank IFUs: search, negated
    measurement: Measurement
    seconds: float

    @property
    def blank_sigma(self) -> float:
        n, m = self.blank
        return abs(n - m) / np.sqrt(max(n + m, 1))

    def report(self) -> str:
        c, m = self.completeness, self.measurement
        p5 = next(p for t, _, _, p in self.purity if t == 5.0)
        lines = [f"profile {self.profile} ({self.seconds:.0f} s of detection)",
                 f"  completeness: f50 / ideal matched-filter flux at S/N 5 = {c.ratio:.3f} (ideal S/N at 50 %: "
                 f"{c.s50:.2f}, width {c.width:.2f})"]
        lines += [f"    {lo}-{hi} Å: {n} lines, f50/f_ideal5 = {r:.3f}, median f_ideal5 = {f:.3g} erg/s/cm2"
                  for lo, hi, n, r, f in c.bins]
        lines.append(f"  purity at S/N >= 5: {p5:.3f}; 95 % from S/N {self.purity_95}")
        shown = [f"{t}:{n}/{mm}/{p:.3f}" for t, n, mm, p in self.purity if t in (4.5, 4.8, 5.0, 5.5, 6.0, 7.0)]
        lines.append("    threshold:search/negated/purity " + "  ".join(shown))
        lines.append(f"  blank IFUs, S/N >= 5: search {self.blank[0]}, negated {self.blank[1]} "
                     f"({self.blank_sigma:.2f} Poisson sigma)")
        lines.append(f"  ideal S/N > 10 ({m.n} lines): flux bias {m.flux_bias:+.4f}; (flux - true)/MC error std "
                     f"{m.pull_std:.3f}, robust {m.pull_robust:.3f}; |dlambda| median {m.dwave_median:.3f} "
                     f"(90 % {m.dwave_p90:.3f}) A; position median {m.pos_median:.3f} (90 % {m.pos_p90:.3f}) arcsec; "
                     f"linewidth ratio {m.sigma_ratio:.3f}")
        return "\n".join(lines)


def run_acceptance(lay, shot, profile: str, extra: dict | None = None) -> Acceptance:
    """Search and negated search of every IFU with ``profile`` (and settings ``extra``) into
    ``lay``'s reduction tree (run folders search/negate), then the numbers."""
    import time

    from hetred.detect.run import DetectUnit, run_detect
    from hetred.detect.settings import DetectSettings

    settings = DetectSettings.from_config({"fwhm": shot.scene.fwhm, **(extra or {})}, profile=profile)
    t0 = time.perf_counter()
    for slot in LINE_SLOTS + BLANK_SLOTS:
        for mode in ("search", "negate"):
            run_detect(lay, DetectUnit(shot.datevobs, slot, mode), settings)
    seconds = time.perf_counter() - t0
    red = lay.red
    det = read_mc(mc_files(red, "search", LINE_SLOTS))
    neg = read_mc(mc_files(red, "negate", LINE_SLOTS))
    idx = match(det, shot.lines)
    curve = purity_curve(det["sn"], neg["sn"])
    bs = read_mc(mc_files(red, "search", BLANK_SLOTS))
    bn = read_mc(mc_files(red, "negate", BLANK_SLOTS))
    return Acceptance(profile, completeness(shot.lines, idx), curve, purity_threshold(curve),
                      (int(np.sum(bs["sn"] >= 5)), int(np.sum(bn["sn"] >= 5))), measurement(det, shot.lines, idx),
                      seconds)


@dataclass
class PooledPulls:
    """(flux - true) / MC error of the isolated lines with ideal S/N > ``min_sn`` pooled over noise
    realisations."""

    n: int
    std: float
    robust: float                       #: 1.4826 MAD
    per_realisation: list[float]        #: the std of each realisation alone


def pooled_pulls(root: Path, seed: int = 15, profile: str = "fixed", noise_seeds=(0, 1, 2, 3, 4),
                 extra: dict | None = None, min_sn: float = 10.0) -> PooledPulls:
    """The acceptance shot's line IFUs (:func:`simulate_acceptance`'s scene, seed ``seed``) with each
    of ``noise_seeds`` (0: the acceptance shot's own noise), searched with ``profile``; the pulls of
    every realisation's matched lines pooled. One realisation has ~170 such lines, whose std is
    known to ~0.06; five pin it to ~0.03."""
    from hetred.detect.run import DetectUnit, run_detect
    from hetred.detect.settings import DetectSettings
    from hetred.layout import Layout
    from hetred.sim.detect_shot import simulate_detect_shot

    every, per = [], []
    for ns in noise_seeds:
        lay = Layout(Path(root) / f"noise{ns}" / "raw", Path(root) / f"noise{ns}" / "red")
        shot = simulate_detect_shot(lay, line_slots=LINE_SLOTS, blank_slots=BLANK_SLOTS, n_lines=300, seed=seed,
                                    noise_seed=ns)
        settings = DetectSettings.from_config({"fwhm": shot.scene.fwhm, **(extra or {})}, profile=profile)
        for slot in LINE_SLOTS:
            run_detect(lay, DetectUnit(shot.datevobs, slot, "search"), settings)
        det = read_mc(mc_files(lay.red, "search", LINE_SLOTS))
        idx = match(det, shot.lines)
        p = pulls(det, shot.lines, idx, measured(shot.lines, idx, min_sn))
        every.append(p)
        per.append(float(np.std(p)))
    allp = np.concatenate(every)
    return PooledPulls(int(allp.size), float(np.std(allp)),
                       float(1.4826 * np.median(np.abs(allp - np.median(allp)))), per)


def continuum_acceptance(root: Path, profile: str = "hdr2.1", seed: int = 21, extra: dict | None = None,
                         g_range=(17.0, 21.5), n_stars: int = 10, slots=(53, 63)) -> list[tuple[float, int, float]]:
    """Stars (``n_stars`` per IFU, g uniform in ``g_range``, >= 8" apart) in a shot simulated at the
    level of the multi files, ``hetred continuum`` on it: per star (g, times found within 2", offset
    of the nearest source in arcsec)."""
    from hetred.detect.continuum import ContinuumUnit, run_continuum
    from hetred.detect.settings import DetectSettings
    from hetred.layout import Layout
    from hetred.sim.detect_shot import simulate_detect_shot

    lay = Layout(Path(root) / "raw", Path(root) / "red")
    if not (Path(root) / "stars.npy").exists():
        shot = simulate_detect_shot(lay, line_slots=(), blank_slots=slots, n_lines=0, n_stars=n_stars,
                                    star_slots=slots, g_range=g_range, seed=seed)
        np.save(Path(root) / "stars.npy", shot.stars)
        (Path(root) / "meta.txt").write_text(f"{shot.datevobs} {shot.scene.fwhm}\n")
    stars = np.load(Path(root) / "stars.npy")
    datevobs, fwhm = (Path(root) / "meta.txt").read_text().split()
    settings = DetectSettings.from_config({"fwhm": float(fwhm), **(extra or {})}, profile=profile)
    run_continuum(lay, ContinuumUnit(datevobs), settings)
    rcs = lay.path("continuum_rcs", month=datevobs[:6], datevobs=datevobs).read_text().splitlines()
    found = np.array([[float(ln.split()[1]), float(ln.split()[2])] for ln in rcs if ln.strip()]).reshape(-1, 2)
    cosd = np.cos(np.radians(np.mean(stars["dec"])))
    out = []
    for s in stars:
        d = 3600 * np.hypot((found[:, 0] - s["ra"]) * cosd, found[:, 1] - s["dec"]) if len(found) else np.zeros(0)
        out.append((float(s["g"]), int(np.sum(d < 2.0)), float(d.min()) if d.size else np.inf))
    return out


def ideal_snr_calfib(layout, month: str, datevobs: str, lines: np.ndarray, fwhm: float, beta: float = 3.5,
                     radius: float = 4.0) -> np.ndarray:
    """Ideal matched-filter S/N of true lines (``ra``, ``dec``, ``wave``, ``flux`` erg/s/cm²,
    ``sigma_obs`` Å; (n,)) in a shot reduced from raw: sqrt(sum over the fibers within ``radius``
    arcsec and the 2-Å bins of (F p_i g_j / calibe_ij)^2), p_i the fiber's fraction of a Moffat
    (``fwhm``, ``beta``), g_j the line's Gaussian fraction in bin j, calibe the calibrated fibers'
    errors (their scale in blank fibers is a demo row). The S/N a perfect search would reach: the
    yardstick of the noise of each line's flux, wavelength and position; (n,), 0 off the IFUs."""
    from hetred.calfib.calibrate import GRID
    from hetred.demo.checks_tp import cal_rows, calfib_tables
    from hetred.io.shotfiles import read_dithall
    from hetred.throughput.psf import fiber_table
    from hetred.throughput.shot import local_xy

    cal = calfib_tables(layout, month, datevobs)
    dith = read_dithall(layout.path("dithall", datevobs=datevobs))
    row = cal_rows(dith)
    table = fiber_table(beta)
    out = np.zeros(len(lines))
    for k, ln in enumerate(lines):
        x, y = local_xy(dith.ra, dith.dec, float(ln["ra"]), float(ln["dec"]))
        near = np.nonzero((np.hypot(x, y) < radius) & np.isin(dith.ifuslot, list(cal)))[0]
        if near.size == 0:
            continue
        p = table.fractions(np.hypot(x[near], y[near]), fwhm)
        z = (GRID - float(ln["wave"])) / float(ln["sigma_obs"])
        g = 2.0 * np.exp(-0.5 * z**2) / (np.sqrt(2.0 * np.pi) * float(ln["sigma_obs"]))
        e = np.array([cal[int(dith.ifuslot[i])][1][row[i]] for i in near])
        s = (float(ln["flux"]) * 1e17 * p[:, None] * g[None, :]) ** 2 / np.where(e > 0, e, np.inf) ** 2
        out[k] = float(np.sqrt(s.sum()))
    return out
