"""The CCD amplifier: bias, gain, read noise, dark current and defects, cosmic rays, digitisation.

Numbers (hetdex_numbers.md §2, §11, §13; hetdex_formats.md §1.3, and the real 20180522 zro frames):

* raw frame 1032 rows x 1064 columns (32 overscan columns on the right), uint16, BZERO 32768;
* bias level 1000-2200 ADU per amp (real RL/RU: 2186 / 2072), a per-night offset (3 ADU rms), a
  slow drift through the night (1-4 ADU, period 3-8 h), a decaying excess at the start of each
  exposure sequence (0-3 ADU) and a per-exposure jitter (0.6 ADU rms);
* fixed bias structure well below the read noise (~0.5 ADU rms): a smooth low-order surface, a
  column pattern, and the readout-start ramp of the first rows (-5..-9 ADU in row 1, decaying over
  ~3 rows, seen in data and overscan of the real frames, which is why Karl's overscan region
  starts at row 10); the structure is zero-mean over Karl's overscan region, so the overscan level
  equals the truth bias level;
* header GAIN 0.85-0.90 e-/ADU (real: .867-.888), true gain within 2 % of it; RDNOISE 2.9-3.3 e-
  (real 2.93-3.22), true read noise within 3 %;
* dark current 0.5 e- per 360 s (Remedy README), scaling with DARKTIME; hot pixels (~80 per amp,
  0.03-3 e-/s); charge traps: 0-2 columns per amp with +30..+300 ADU from a row to the end of
  the readout, in every frame (karlspipe rtrap; the real RL zro has one); 0-2 bad (dead) columns;
* pixel-to-pixel sensitivity (pixel flat) 1 % rms with 0-2 low-response boxes of 8-18 px (HDR3
  badpix.list sizes);
* cosmic rays ~50 per amp per 360 s of dark time (about 100 per CCD), tracks 1-10 px, a few
  thousand electrons;
* saturation: values are clipped to 0..65535.

Coordinates: the bias structure and traps live in the RAW (readout) orientation; the pixel flat,
hot pixels, bad columns and defect boxes are generated in the raw orientation too and handed to
the truth in both orientations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from hetred.sim import seeds
from hetred.virus import amp as ampgeom

NROWS, NCOLS, NRAW = ampgeom.NROWS, ampgeom.NCOLS, ampgeom.NCOLS_RAW
DARK_PER_360S = 0.5          #: e- per pixel per 360 s
CR_PER_360S = 50.0           #: cosmic rays per amp per 360 s of dark time
AMPNAMES = {"L": "LR", "U": "UL"}   #: AMPNAME by CCDHALF, as in the real 2018 frames


def ampname_of(amp: str) -> str:
    return AMPNAMES[amp[1]]


def raw_to_oriented(row: np.ndarray, col: np.ndarray, amp: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) in the raw data section -> (y, x) in the oriented frame (same flips as
    :func:`hetred.virus.amp.orient`; the flips are involutions, so this is also the inverse)."""
    y, x = np.asarray(row), np.asarray(col)
    if amp in ampgeom.ROTATED_AMPS:
        y, x = NROWS - 1 - y, NCOLS - 1 - x
    if ampname_of(amp) in ampgeom.MIRRORED_AMPNAMES:
        x = NCOLS - 1 - x
    return y, x


@dataclass
class Detector:
    """Persistent properties of one amplifier plus its night offset."""

    gain_header: float
    gain_true: float
    rdnoise_header: float
    rdnoise_true: float
    bias_base: float
    biasset: int
    night_offset: float
    drift_amp: float
    drift_period_h: float
    drift_phase: float
    seq_excess: float
    dark_rate: float                     #: e-/s
    bias_structure: np.ndarray = field(repr=False)   #: (1032, 1064) ADU, raw orientation
    pixelflat_raw: np.ndarray = field(repr=False)    #: (1032, 1032) raw orientation
    hot: np.ndarray = field(repr=False)              #: (n, 3) raw row, raw col, e-/s
    traps: list[tuple[int, int, float]] = field(default_factory=list)      #: raw col, first row, ADU
    bad_columns: list[tuple[int, int, float]] = field(default_factory=list)  #: raw col, first row, response
    boxes: list[tuple[int, int, int, int, float]] = field(default_factory=list)  #: raw r1 r2 c1 c2 resp

    def bias_level(self, t: datetime, t0: datetime, seq: int, jitter: float) -> float:
        """True bias level (ADU) of an exposure starting at ``t`` (``t0``: start of the night)."""
        hours = (t - t0).total_seconds() / 3600.0
        drift = self.drift_amp * math.sin(2 * math.pi * hours / self.drift_period_h + self.drift_phase)
        return self.bias_base + self.night_offset + drift + self.seq_excess * math.exp(-seq / 1.5) + jitter


def build_detector(seed: int, night: str, ifuslot: int, amp: str) -> Detector:
    r = seeds.rng(seed, seeds.DETECTOR, ifuslot=ifuslot, amp=amp)
    rn = seeds.rng(seed, seeds.NIGHT_AMP, night=night, ifuslot=ifuslot, amp=amp)
    gain_h = round(float(r.uniform(0.85, 0.90)), 3)
    gain_t = gain_h * (1.0 + float(r.uniform(-0.02, 0.02)))
    rdn_h = round(float(r.uniform(2.9, 3.3)), 2)
    rdn_t = rdn_h * (1.0 + float(r.uniform(-0.03, 0.03)))
    base = float(r.uniform(1000.0, 2200.0))
    structure = _bias_structure(r)
    # traps (raw orientation): column, first row, excess ADU
    traps = []
    for _ in range(int(r.choice([0, 1, 1, 2]))):
        traps.append((int(r.integers(5, NCOLS - 5)), int(r.integers(0, 1000)), float(r.uniform(30, 300))))
    # bad columns: raw column, first row, response
    bad = []
    for _ in range(int(r.choice([0, 0, 1, 2]))):
        first = 0 if r.random() < 0.5 else int(r.integers(50, 900))
        bad.append((int(r.integers(5, NCOLS - 5)), first, float(r.uniform(0.0, 0.3))))
    pflat = (1.0 + r.normal(0.0, 0.01, (NROWS, NCOLS))).astype(np.float32)
    boxes = []
    for _ in range(int(r.choice([0, 1, 1, 2]))):
        h, w = int(r.integers(8, 19)), int(r.integers(8, 19))
        r1, c1 = int(r.integers(20, NROWS - 40)), int(r.integers(20, NCOLS - 40))
        resp = float(r.uniform(0.5, 0.9))
        pflat[r1:r1 + h, c1:c1 + w] *= np.float32(resp)
        boxes.append((r1, r1 + h - 1, c1, c1 + w - 1, resp))
    for col, first, resp in bad:
        pflat[first:, col] = np.float32(resp) * pflat[first:, col]
    nhot = int(r.poisson(80))
    hot = np.column_stack([r.integers(0, NROWS, nhot), r.integers(0, NCOLS, nhot),
                           10 ** r.uniform(-1.5, 0.5, nhot)])
    return Detector(
        gain_header=gain_h, gain_true=gain_t, rdnoise_header=rdn_h, rdnoise_true=rdn_t,
        bias_base=base, biasset=int(round(base - r.uniform(50, 300))),
        night_offset=float(rn.normal(0, 3.0)), drift_amp=float(rn.uniform(1, 4)),
        drift_period_h=float(rn.uniform(3, 8)), drift_phase=float(rn.uniform(0, 2 * math.pi)),
        seq_excess=float(rn.uniform(0, 3)), dark_rate=DARK_PER_360S / 360.0 * float(r.uniform(0.7, 1.3)),
        bias_structure=structure, pixelflat_raw=pflat, hot=hot, traps=traps, bad_columns=bad, boxes=boxes)


def _bias_structure(r: np.random.Generator) -> np.ndarray:
    """(1032, 1064) float32 ADU: smooth surface + column pattern + readout-start ramp."""
    yy = np.linspace(-1, 1, NROWS)[:, None]
    xx = np.linspace(-1, 1, NRAW)[None, :]
    smooth = (r.normal(0, 0.25) * xx + r.normal(0, 0.2) * yy + r.normal(0, 0.2) * (xx ** 2 - 1 / 3)
              + r.normal(0, 0.15) * xx * yy + r.normal(0, 0.15) * (yy ** 2 - 1 / 3))
    cols = r.normal(0, 0.3, NRAW)
    cols[NCOLS:] *= 0.2                       # the overscan is virtual: little column pattern
    ramp = -r.uniform(5, 9) * np.exp(-np.arange(NROWS) / r.uniform(1.5, 3.0))
    s = smooth + cols[None, :] + ramp[:, None]
    r0, r1 = ampgeom.OVERSCAN_ROWS
    c0, c1 = ampgeom.OVERSCAN_COLS
    s -= s[r0 - 1:r1, c0 - 1:c1].mean()
    return s.astype(np.float32)


POISSON_EXACT_BELOW = 10.0   #: below this mean, numpy's exact Poisson sampler is used


def poisson(r: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    """Poisson samples of ``lam`` (float32 out).

    Exact (numpy) below :data:`POISSON_EXACT_BELOW` electrons; above it the Cornish-Fisher
    expansion round(lam + sqrt(lam) z + (z^2 - 1)/6), z ~ N(0, 1), which has the Poisson mean,
    variance and skewness (error in the 4th cumulant only) and is 3-5x faster than numpy's
    sampler; the Gaussian's width is reduced by the variance the correction and rounding add."""
    lam = np.ascontiguousarray(lam, dtype=np.float32)
    out = np.empty(lam.shape, dtype=np.float32)
    big = lam >= POISSON_EXACT_BELOW
    nb = int(np.count_nonzero(big))
    if nb:
        lb = lam[big]
        z = r.standard_normal(nb, dtype=np.float32)
        # sqrt(lam - 5/36): the (z^2-1)/6 term (2/36) and rounding (1/12) add 5/36 to the variance
        out[big] = np.maximum(np.floor(lb + np.sqrt(lb - np.float32(5 / 36)) * z + (z * z - 1.0) / 6.0 + 0.5), 0)
    if nb < lam.size:
        small = ~big
        out[small] = r.poisson(lam[small])
    return out


def cosmic_rays(r: np.random.Generator, darktime: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, electrons) of cosmic-ray deposits in the data section (raw orientation)."""
    n = int(r.poisson(CR_PER_360S * darktime / 360.0))
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    length = r.uniform(1.0, 10.0, n)
    angle = r.uniform(0, np.pi, n)
    energy = r.lognormal(np.log(3000.0), 0.6, n)
    r0 = r.uniform(0, NROWS, n)
    c0 = r.uniform(0, NCOLS, n)
    rows, cols, es = [], [], []
    for i in range(n):
        npts = max(1, int(length[i] * 2))
        t = np.linspace(0, length[i], npts)
        rr = np.round(r0[i] + t * np.sin(angle[i])).astype(int)
        cc = np.round(c0[i] + t * np.cos(angle[i])).astype(int)
        w = r.uniform(0.5, 1.5, npts)
        rows.append(rr)
        cols.append(cc)
        es.append(energy[i] * w / w.sum())
    rows_a, cols_a, es_a = np.concatenate(rows), np.concatenate(cols), np.concatenate(es)
    ok = (rows_a >= 0) & (rows_a < NROWS) & (cols_a >= 0) & (cols_a < NCOLS)
    return rows_a[ok], cols_a[ok], es_a[ok]


def digitise(electrons_raw: np.ndarray | None, det: Detector, level: float, r: np.random.Generator,
             sparse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
             extra_adu: float = 0.0) -> np.ndarray:
    """Electrons (raw orientation (1032, 1032), or None) -> (1032, 1064) uint16 ADU.

    ADU = electrons / true gain + level + structure + traps + read noise (+ ``extra_adu``), with
    ``sparse`` = (rows, cols, electrons) deposits (hot pixels, cosmic rays) added first; the sum
    is rounded to the nearest integer and clipped to 0..65535.
    """
    out = r.standard_normal((NROWS, NRAW), dtype=np.float32)
    out *= np.float32(det.rdnoise_true / det.gain_true)
    out += det.bias_structure
    out += np.float32(level + extra_adu)
    data = out[:, :NCOLS]
    if electrons_raw is not None:
        data += electrons_raw * np.float32(1.0 / det.gain_true)
    if sparse is not None and len(sparse[0]):
        np.add.at(data, (sparse[0], sparse[1]), (sparse[2] / det.gain_true).astype(np.float32))
    for col, first, excess in det.traps:
        out[first:, col] += np.float32(excess)
    np.rint(out, out=out)
    np.clip(out, 0, 65535, out=out)
    return out.astype(np.uint16)
