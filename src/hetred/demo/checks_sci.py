"""The science reduction (``hetred sci``) against the simulator's truth: the issue-6 acceptance.

:func:`sci_checks` returns demo table rows (:class:`hetred.demo.checks.Check`); the metric
functions are shared with tests/stages/test_sci.py. Definitions (docs/stages/sci.md):

* **source-free fibers**: live fibers that no source reaches with more than 20 e- (the truth's
  ``injected`` list) and not next to one; their ``sky_subtracted / error1d`` over 3700-5400 Å
  (unmasked columns) has a biweight scale, and ``sum(sky_subtracted) / sum(sky_spectrum)`` is
  the mean residual; at a bright sky line (Hg 4358.34, 5460.75 Å) the same ratio over the
  columns within 3 Å of the line, when at least half of those fiber columns are unmasked (a line
  sitting on a masked detector defect gives no number), summed per amp over the shot's
  exposures (:func:`line_residuals`), in the fibers that are quiet at the line
  (:func:`_quiet_fibers`: no emission line of the truth within 30 Å in the fiber or a neighbour,
  and the sources' continuum below 0.2 % of the sky in the line's columns): with 5 stars per IFU
  only ~25 fibers of an amp are free of every source, and the line residual summed over them and
  three exposures is noise to ~1 % (seed 2: 2.005 % against 2 %, its noise 1.04 %); a star's
  continuum at a sky line does not matter, and the quiet fibers bring the noise to 0.3-0.45 %;
* **emission lines**: per injected line and exposure, the fibers holding at least 5 % of its
  truth electrons whose columns within 4 sigma (line and instrument) of the line are all
  unmasked; recovered = the sum of ``sky_subtracted`` there minus the fiber's local continuum
  (:func:`local_continuum`: a line may sit on a star), truth = the sum of the fibers' truth
  electrons x (1 - HALOFRAC) x GAIN_HDR / GAIN_TRU -- the light a fiber delivers into its
  cross-dispersion profile (the simulator scatters HALOFRAC, 3-4 %, of every fiber's light into
  the halo, which the background model removes as scattered light), counted with the header gain
  (the simulated true gain differs from it by up to 2 %, as a real one does); both factors are
  the flux calibration's business, not the extraction's; the centre: a Gaussian fitted to the
  sum of those fibers' rectified spectra, against where the amps' W0/W1 of the sky variation put
  the line on the calibration's wavelengths (:func:`hetred.sim.skyvar.line_position`, weighted by
  the fibers' truth electrons: the simulator moves all of an amp's light, Karl's convention, and
  sci's wavelengths are the calibration's; detect corrects with fullsky's W0/W1);
* **cosmic rays**: truth deposits (``truth_cosmics``) within 2.5 rows of a live fiber's trace
  are "hits on fiber cores"; a hit is masked when its fiber column has error1d = 0 or the pixel
  has error = 0; a fiber column is "clean" when no cosmic ray, hot pixel, charge trap or bad
  column lies within 5 rows and one column of it and none of its core pixels is masked before
  the extraction (pixel flat <= flat_min, pix_mask.tab boxes) -- the masking of clean columns is
  the cost of the cosmic-ray rejection on good data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits

from hetred.demo.result import Check
from hetred.layout import Layout
from hetred.sim.sky import BRIGHT_FLUX
from hetred.stats import biweight

if TYPE_CHECKING:
    from hetred.demo.result import DemoResult

AMPS = ("LL", "LU", "RL", "RU")
SKY_RANGE = (3700.0, 5400.0)
SKY_LINES = (4358.34, 5460.75)
HDU_NAMES = ("processed", "error", "clean_image", "model2d", "flat", "flat_orig", "ifupos", "chi2", "rms",
             "", "spectrum", "wavelength", "trace", "fiber_to_fiber", "error1d", "sky_subtracted",
             "sky_spectrum")
#: what hetdex_api's h5tools read from a multi file (create_shot_hdf5.py)
API_READS = ("PRIMARY", "error", "clean_image", "spectrum", "wavelength", "fiber_to_fiber", "sky_spectrum",
             "sky_subtracted", "trace", "error1D", "chi2", "rms", "ifupos")


@dataclass
class ShotTruth:
    """The truth of one simulated shot, read once."""

    layout: Layout
    night: str
    datevobs: str
    shot: dict
    cosmics: dict[str, np.ndarray] | None
    amps: dict = field(default_factory=dict)

    @classmethod
    def read(cls, layout: Layout, night: str, datevobs: str) -> "ShotTruth":
        shot = json.loads(layout.path("truth_shot", night=night, datevobs=datevobs).read_text())
        cp = layout.path("truth_cosmics", night=night, datevobs=datevobs)
        cos = None
        if cp.exists():
            with np.load(cp) as z:
                cos = {k: z[k] for k in z.files}
        return cls(layout, night, datevobs, shot, cos)

    def amp(self, ifuslot: int, amp: str) -> dict:
        key = (ifuslot, amp)
        if key not in self.amps:
            with fits.open(self.layout.path("truth_amp", night=self.night, ifuslot=ifuslot, amp=amp)) as t:
                dead = np.zeros(112, bool)
                dead[np.asarray(t["DEAD_FIBERS"].data["FIBER"], int) - 1] = True
                self.amps[key] = {"trace": t["TRACE"].data.astype(np.float64), "dead": dead,
                                  "halo": float(t[0].header["HALOFRAC"]),
                                  "gain_err": float(t[0].header["GAIN_HDR"]) / float(t[0].header["GAIN_TRU"]),
                                  "hot": np.column_stack([np.asarray(t["HOT_PIXELS"].data["Y"], int),
                                                          np.asarray(t["HOT_PIXELS"].data["X"], int)]),
                                  "trap_x": [int(r["X"]) for r in t["TRAPS"].data],
                                  "bad_x": [int(r["X"]) for r in t["BAD_COLUMNS"].data]}
        return self.amps[key]

    def source_electrons(self, exp: int, ifuslot: int, amp: str) -> dict[int, float]:
        """{0-based fiber: source electrons (sum over columns)} of this exposure's amp (> 20 e-)."""
        return {r["fiber"] - 1: float(r["electrons"]) for r in self.shot["injected"]
                if r["exp"] == exp and r["ifuslot"] == ifuslot and r["amp"] == amp}

    def line_fibers(self, exp: int, ifuslot: int, amp: str, wave: float, within: float = 30.0) -> set[int]:
        """0-based fibers of this exposure's amp lit by a truth emission line within ``within`` Å of ``wave``."""
        return {f["fiber"] - 1 for ln in self.shot["lines"] if abs(ln["wave"] - wave) < within
                for f in ln["fibers"].get(str(exp), []) if f["ifuslot"] == ifuslot and f["amp"] == amp}

    def source_fibers(self, exp: int, ifuslot: int, amp: str) -> set[int]:
        """0-based fibers that a source reaches with > 20 e- in this exposure."""
        return {r["fiber"] - 1 for r in self.shot["injected"]
                if r["exp"] == exp and r["ifuslot"] == ifuslot and r["amp"] == amp}


def multi_files(layout: Layout, night: str, obs: int) -> dict[tuple[int, int, str], Path]:
    """{(exp, ifuslot, amp): path} of a shot's multi files."""
    from hetred.layout import parse

    out = {}
    for p in layout.glob("multi", night=night, obs=obs):
        f = parse("multi", p.relative_to(layout.red).as_posix())
        if f is not None:
            out[(int(f["exp"]), int(f["ifuslot"]), f["amp"])] = p
    return out


def format_problems(path: Path) -> list[str]:
    """What is wrong with a multi file's structure (empty: 17 HDUs, Karl's names, order, shapes,
    float32, and every HDU hetdex_api reads)."""
    bad = []
    with fits.open(path) as h:
        if len(h) != 17:
            return [f"{len(h)} HDUs"]
        for i, (hdu, name) in enumerate(zip(h, HDU_NAMES)):
            got = hdu.header.get("EXTNAME", "")
            if got != name:
                bad.append(f"HDU {i} EXTNAME {got!r} != {name!r}")
            if hdu.data is None or hdu.data.dtype != np.dtype(">f4"):
                bad.append(f"HDU {i} not float32")
                continue
            want = ((1032, 1032) if i < 6 else (112, 2) if i == 6 else (1, 1) if i == 9 else (112, 1032))
            if hdu.data.shape != want and not (3 <= i <= 5 and hdu.data.shape == (1, 1)):   # limited output
                bad.append(f"HDU {i} shape {hdu.data.shape} != {want}")
        for name in API_READS:
            if name not in h:
                bad.append(f"no {name}")
        name0 = str(h[0].header.get("NAME0", ""))
        if name0[21:23] not in AMPS:
            bad.append(f"NAME0 {name0!r}")
        for key in ("IFUSLOT", "IFUID", "SPECID", "CONTID", "DATE-OBS", "OBSID", "EXPTIME", "MJD"):
            if key not in h[0].header:
                bad.append(f"no {key}")
    return bad


def sky_metrics(path: Path, truth: ShotTruth, exp: int, ifuslot: int, amp: str) -> dict[str, Any]:
    """Sky residuals of one multi file in its source-free fibers (module docstring)."""
    t = truth.amp(ifuslot, amp)
    with fits.open(path) as h:
        sub, e1, sky, wave = (np.asarray(h[n].data, np.float64) for n in
                              ("sky_subtracted", "error1d", "sky_spectrum", "wavelength"))
    src = truth.source_fibers(exp, ifuslot, amp)
    free = ~t["dead"].copy()
    for f in src:
        free[max(0, f - 1):f + 2] = False
    good = (e1 > 0) & free[:, None]
    inr = (wave > SKY_RANGE[0]) & (wave < SKY_RANGE[1])
    z = (sub[good & inr] / e1[good & inr]).astype(np.float32)
    out: dict[str, Any] = {"scale": float(biweight(z)[1]), "nfibers": int(free.sum()),
                           "mean": float(sub[good & inr].sum() / sky[good & inr].sum()), "lines": {},
                           "line_sums": {}}
    star_e = truth.source_electrons(exp, ifuslot, amp)
    for lam in SKY_LINES:
        window = np.abs(wave - lam) < 3.0
        quiet = _quiet_fibers(t["dead"], star_e, truth.line_fibers(exp, ifuslot, amp, lam), window, sky)
        near = quiet[:, None] & window
        use = near & (e1 > 0)
        if near.sum() == 0 or use.sum() < 0.5 * near.sum():
            out["lines"][lam] = None
            continue
        out["lines"][lam] = float(sub[use].sum() / sky[use].sum())
        out["line_sums"][lam] = (float(sub[use].sum()), float(sky[use].sum()), float((e1[use] ** 2).sum()))
    return out


#: a fiber counts at a bright sky line when the continuum of the sources it and its neighbours see
#: adds less than this fraction to its sky there (their electrons spread evenly over the columns)
LINE_QUIET = 0.002


def _quiet_fibers(dead: np.ndarray, source_e: dict[int, float], line_fibers: set[int], window: np.ndarray,
                  sky: np.ndarray) -> np.ndarray:
    """(112,) bool: the live fibers that measure a bright sky line's residual (module docstring):
    no emission line of the truth near it in the fiber or a neighbour, and sources' continuum
    below LINE_QUIET of the sky in the line's columns (``window`` (112, ncol) bool)."""
    out = ~dead.copy()
    ncol = window.shape[1]
    for f in range(out.size):
        if not out[f]:
            continue
        if any(g in line_fibers for g in (f - 1, f, f + 1)):
            out[f] = False
            continue
        cont = max(source_e.get(g, 0.0) for g in (f - 1, f, f + 1)) / ncol * window[f].sum()
        out[f] = cont < LINE_QUIET * float(sky[f, window[f]].sum())
    return out


def line_residuals(metrics: dict[tuple[int, int, str], dict[str, Any]]
                   ) -> dict[tuple[int, str, float], tuple[float, float]]:
    """{(ifuslot, amp, line Å): (residual, its 1-sigma noise)}: the bright-sky-line residual of
    :func:`sky_metrics` summed per amp over the exposures (``metrics`` keyed (exp, ifuslot, amp)),
    sum(sky_subtracted) / sum(sky_spectrum), noise from error1d."""
    acc: dict[tuple[int, str, float], list[float]] = {}
    for (_, slot, amp), m in metrics.items():
        for lam, (s, k, v) in m["line_sums"].items():
            a = acc.setdefault((slot, amp, lam), [0.0, 0.0, 0.0])
            a[0], a[1], a[2] = a[0] + s, a[1] + k, a[2] + v
    return {key: (s / k, float(np.sqrt(v)) / k) for key, (s, k, v) in acc.items() if k > 0}


def cosmic_metrics(path: Path, truth: ShotTruth, exp: int, ifuslot: int, amp: str, flat_min: float = 0.666,
                   boxes=(), layout: Layout | None = None) -> dict[str, Any]:
    """Cosmic-ray masking of one multi file (module docstring); ``layout``: the reduction tree
    (default the truth's), whose pixel flat stands in for a limited-output file's."""
    t = truth.amp(ifuslot, amp)
    cos = truth.cosmics
    with fits.open(path) as h:
        e1, err, flat = (np.asarray(h[n].data) for n in ("error1d", "error", "flat"))
        specid = int(h[0].header["SPECID"])
    if flat.shape != err.shape:                   # limited output: the pixel flat of the library
        fp = (layout or truth.layout).path("pixelflat", specid=specid, amp=amp)
        flat = np.asarray(fits.getdata(fp), np.float32) if fp.exists() else np.ones(err.shape, np.float32)
    tr, dead = t["trace"], t["dead"]
    nrow, ncol = err.shape
    sel = (cos["exp"] == exp) & (cos["ifuslot"] == ifuslot) & (cos["amp"] == amp) if cos else np.zeros(0, bool)
    cy = cos["y"][sel].astype(int) if cos else np.zeros(0, int)
    cx = cos["x"][sel].astype(int) if cos else np.zeros(0, int)
    masked_col = e1 == 0
    d = cy[:, None] - tr[:, cx].T
    f = np.argmin(np.abs(d), axis=1) if len(cy) else np.zeros(0, int)
    dist = np.abs(d[np.arange(len(cy)), f]) if len(cy) else np.zeros(0)
    core = (dist <= 2.5) & ~dead[f]
    hit_masked = masked_col[f, cx] | (err[cy, cx] == 0)
    dirty = np.zeros((112, ncol), bool)
    marks = [(f[dist <= 5], cx[dist <= 5])]
    if len(t["hot"]):
        hy, hx = t["hot"][:, 0], t["hot"][:, 1]
        dh = hy[:, None] - tr[:, hx].T
        fh = np.argmin(np.abs(dh), axis=1)
        near = np.abs(dh[np.arange(len(hy)), fh]) <= 5
        marks.append((fh[near], hx[near]))
    for ff, xx in marks:
        for k in (-1, 0, 1):
            dirty[ff, np.clip(xx + k, 0, ncol - 1)] = True
    for x in t["trap_x"] + t["bad_x"]:
        dirty[:, max(0, x - 1):x + 2] = True
    inmask = flat <= flat_min
    for b in boxes:
        inmask[b.slices()] = True
    rows = np.rint(tr).astype(int)[:, :, None] + np.arange(-3, 4)
    touch = inmask[np.clip(rows, 0, nrow - 1), np.arange(ncol)[None, :, None]].any(axis=2)
    touch[:, 1:] |= touch[:, :-1].copy()
    touch[:, :-1] |= touch[:, 1:].copy()
    clean = ~dirty & ~dead[:, None] & ~touch
    return {"hits": int(core.sum()), "hits_masked": int((core & hit_masked).sum()),
            "clean": int(clean.sum()), "clean_masked": int((clean & masked_col).sum())}


CONTINUUM_SIDES = (6.0, 25.0)   #: the local continuum: columns 6-25 sigma from the line, both sides


def local_continuum(flux: np.ndarray, err: np.ndarray, wave: np.ndarray, centre: float,
                    sigma: float) -> tuple[float, float]:
    """(continuum per column, its error) of one fiber's sky-subtracted spectrum around a line:
    the biweight of the unmasked columns CONTINUUM_SIDES sigma from ``centre`` (Å) on both
    sides; (0, 0) with fewer than 10 such columns. A line on a star or galaxy sits on its
    continuum, which the line's truth does not hold (demo seed 4: a bright line on a star,
    10-70 e- a column, +8.6 % without this)."""
    d = np.abs(wave - centre)
    side = (d >= CONTINUUM_SIDES[0] * sigma) & (d <= CONTINUUM_SIDES[1] * sigma) & (err > 0)
    if side.sum() < 10:
        return 0.0, 0.0
    loc, scale = biweight(flux[side])
    return float(loc), float(1.25 * scale / np.sqrt(side.sum()))


def line_metrics(layout: Layout, truth: ShotTruth, obs: int, min_share: float = 0.05) -> list[dict]:
    """Per injected emission line and exposure: recovered and truth counts, noise, centre offset
    (from where the sky variation's W0/W1 put the line, module docstring)."""
    from hetred.sci.rectify import RECT_WAVE, read_rectified
    from hetred.sci.sky import fit_gauss_line
    from hetred.sim.skyvar import line_position

    files = multi_files(layout, truth.night, obs)
    cache: dict = {}

    def arrays(exp, slot, amp):
        key = (exp, slot, amp)
        if key not in cache:
            p = files.get(key)
            if p is None:
                cache[key] = None
            else:
                with fits.open(p) as h:
                    a = {n: np.asarray(h[n].data, np.float64) for n in ("sky_subtracted", "error1d", "wavelength")}
                rp = Path(str(p).replace("/multi_", "/rect_"))
                a["rect"] = read_rectified(rp)[0].astype(np.float64) if rp.exists() else None
                cache[key] = a
        return cache[key]

    lines = {r["id"]: r for r in truth.shot["lines"]}
    shifts = {(r["exp"], r["ifuslot"], r["amp"]): (r["w0"], r["w1"])
              for r in (truth.shot.get("sky_variation") or {}).get("amps", [])}
    groups: dict[tuple[int, int], list[dict]] = {}
    for r in truth.shot.get("line_electrons", []):
        groups.setdefault((r["id"], r["exp"]), []).append(r)
    out = []
    for (lid, exp), rows in sorted(groups.items()):
        line = lines[lid]
        total = sum(r["electrons"] for r in rows)
        sig = float(np.hypot(line["sigma"], 5.5 / 2.3548))
        rec = tru = var = 0.0
        stack = np.zeros(len(RECT_WAVE))
        used = skipped = 0
        lam_sum = lam_wt = 0.0
        for r in rows:
            if r["electrons"] < min_share * total:
                continue
            a = arrays(exp, r["ifuslot"], r["amp"])
            if a is None:
                skipped += 1
                continue
            f = r["fiber"] - 1
            lam = line_position(line["wave"], *shifts.get((exp, r["ifuslot"], r["amp"]), (0.0, 0.0)))
            win = np.abs(a["wavelength"][f] - lam) <= 4 * sig
            if (a["error1d"][f][win] == 0).any():
                skipped += 1
                continue
            used += 1
            lam_sum += lam * r["electrons"]
            lam_wt += r["electrons"]
            cont, cont_err = local_continuum(a["sky_subtracted"][f], a["error1d"][f], a["wavelength"][f],
                                             lam, sig)
            rec += a["sky_subtracted"][f][win].sum() - cont * win.sum()
            var += (a["error1d"][f][win] ** 2).sum() + (cont_err * win.sum()) ** 2
            ta = truth.amp(r["ifuslot"], r["amp"])
            tru += r["electrons"] * (1 - ta["halo"]) * ta["gain_err"]
            if a["rect"] is not None:
                stack += a["rect"][f]
        if used == 0 or tru <= 0:
            continue
        centre = None
        lam = lam_sum / lam_wt          # where the line lands on the calibration's wavelengths
        w = np.abs(RECT_WAVE - lam) <= 6 * sig
        if stack[w].any():
            x = RECT_WAVE[w] - lam
            y = stack[w]
            fit = fit_gauss_line(x, y, np.full(x.size, max(np.std(y[np.abs(x) > 3 * sig]), 1.0)
                                                  if (np.abs(x) > 3 * sig).sum() > 3 else 1.0),
                                 (float(y.max()), 0.0, sig, 0.0, 0.0))
            if fit is not None:
                centre = float(fit[0][1])
        out.append({"id": lid, "exp": exp, "wave": line["wave"], "flux": line["flux"], "fibers": used,
                    "skipped": skipped, "truth": tru, "recovered": rec, "sigma": float(np.sqrt(var)),
                    "ratio": rec / tru, "ratio_err": float(np.sqrt(var)) / tru, "centre": centre})
    return out


def sci_checks(layout: Layout, truth_layout: Layout | None = None, night: str | None = None,
               obs: int | None = None, flat_min: float = 0.666) -> list[Check]:
    """The issue-6 acceptance on a reduced shot as demo rows; ``truth_layout``: the layout with the
    truth root (default ``layout``); night/obs: the shot (default: the first shot of the truth)."""
    from hetred.sci.run import read_pixmask_boxes

    tl = truth_layout or layout
    if night is None or obs is None:
        shots = sorted(tl.truth.glob("*/shot_*.json")) if tl.truth else []
        if not shots:
            return [Check("sci", "truth of a science shot", 0, "present", False)]
        dvo = shots[0].stem.removeprefix("shot_")
        night, obs = dvo[:8], int(dvo[9:])
    datevobs = f"{night}v{obs:03d}"
    truth = ShotTruth.read(tl, night, datevobs)
    files = multi_files(layout, night, obs)
    rows: list[Check] = []
    nbad = sum(bool(format_problems(p)) for p in files.values())
    rows.append(Check("sci", f"multi files with Karl's 17 HDUs and what hetdex_api reads ({len(files)} files)",
                      nbad, "0 bad", nbad == 0 and len(files) > 0, "files"))
    boxes = read_pixmask_boxes(layout)
    scales, means, per_file = [], [], {}
    hits = hits_m = clean = clean_m = 0
    for (exp, slot, amp), p in sorted(files.items()):
        m = per_file[(exp, slot, amp)] = sky_metrics(p, truth, exp, slot, amp)
        scales.append(m["scale"])
        means.append(m["mean"])
        c = cosmic_metrics(p, truth, exp, slot, amp, flat_min, boxes.get(f"{slot:03d}{amp}", ()), layout)
        hits, hits_m = hits + c["hits"], hits_m + c["hits_masked"]
        clean, clean_m = clean + c["clean"], clean_m + c["clean_masked"]
    if scales:
        lo, hi = min(scales), max(scales)
        rows.append(Check("sci", "source-free fibers: biweight scale of sky_subtracted/error1d (min..max amp)",
                          hi if abs(hi - 1) > abs(lo - 1) else lo, "0.95-1.10", 0.95 <= lo and hi <= 1.10))
        worst = max(means, key=abs)
        rows.append(Check("sci", "mean sky residual / sky, 3700-5400 A (worst amp)", 100 * worst, "< 0.5 %",
                          abs(worst) < 0.005, "%"))
        lines = line_residuals(per_file)
        if lines:
            wl, wn = max(lines.values(), key=lambda x: abs(x[0]))
            rows.append(Check("sci", f"residual at the bright sky lines, per amp over the exposures (worst of "
                              f"{len(lines)}; its noise {100 * wn:.2f} %)", 100 * wl, "< 2 %", abs(wl) < 0.02, "%"))
    if hits:
        rows.append(Check("sci", f"cosmic-ray hits on fiber cores masked ({hits} hits)", 100 * hits_m / hits,
                          ">= 95 %", hits_m >= 0.95 * hits, "%"))
    if clean:
        rows.append(Check("sci", "clean fiber columns masked", 100 * clean_m / clean, "< 0.5 %",
                          clean_m < 0.005 * clean, "%"))
    lm = line_metrics(layout, truth, obs)
    bright = [x for x in lm if abs(x["flux"] - BRIGHT_FLUX) < 1e-20]
    if bright:       # per source: counts summed over its exposures and the fibers that see it
        sources: dict[int, list[float]] = {}
        for x in bright:
            acc = sources.setdefault(x["id"], [0.0, 0.0])
            acc[0] += x["recovered"]
            acc[1] += x["truth"]
        worst = max((rec / tru - 1 for rec, tru in sources.values()), key=abs)
        rows.append(Check("sci", f"emission-line counts / truth - 1, worst of {len(sources)} bright sources",
                          100 * float(worst), "within 3 %", bool(abs(worst) <= 0.03), "%"))
        cen = [x["centre"] for x in bright if x["centre"] is not None]
        wc = max(cen, key=abs) if cen else float("nan")
        rows.append(Check("sci", "emission-line centres - truth (moved by the amps' W0/W1), worst of "
                                 f"{len(bright)} line exposures",
                          float(wc), "within 0.2 A", bool(len(cen) == len(bright) and abs(wc) <= 0.2), "A"))
    else:
        rows.append(Check("sci", "bright emission lines in the shot (FrameCounts.bright_lines)", 0, ">= 1", False))
    return rows


def _sci_unit(layout: Layout, unit):
    from hetred.jobs.units import run_unit
    from hetred.sci.run import STAGE, run_sci

    return run_unit(layout, STAGE, unit.unit, lambda: run_sci(layout, unit), overwrite=True)


def stage_sci(res: "DemoResult") -> list[str]:
    """The demo's sci stage: every unit of the month (2 worker processes, as ``hetred sci MONTH
    --jobs 2``), then the exposures' focal-plane PNGs; returns the products."""
    from hetred.demo.checks_calib import _collect, _pool_map
    from hetred.sci.run import sci_units, write_exposure_pngs

    units = sci_units(res.layout, month=res.month)
    out = _collect(_pool_map(_sci_unit, [(res.layout, u) for u in units]))
    return out + write_exposure_pngs(res.layout, units)


def check_sci(res: "DemoResult") -> list[Check]:
    """The demo's sci checks (the demo night's one shot)."""
    return sci_checks(res.layout)
