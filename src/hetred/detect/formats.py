"""Karl's detection files, byte for byte as fitradecsp's Fortran formats write them
(karlspipe hdr2.1/progs/fitradecsp.f FORMAT 1104, 1203, 1302, 1101; detect_fullsky.md §2).

* ``.mc`` (1104): ``12(1x,f8.2), 2(1x,f10.6), 1x,a12, 3(1x,f6.2), 1x,f5.2, 1x,i5, 1x,a24, 1x,a5,
  2(1x,f6.2), 1x,i4, 1x,i4, 1x,f5.3``; 27 columns (wave, err, flux, err, sigma, err, con, err,
  S/N, err, chi2, err, ra, dec, DATEvOBS, noise ratio, sigma and chi2 of fit B, max fiber chi2,
  src_index, multi name, exposure, IFU x, y of the highest-weight fiber, its CCD column and
  row, its weight), or 33 with Karl's later columns ``f6.3, f6.2, f7.3, 2f6.2, f8.2`` (apcor,
  sn_cen, flux_noise_1sigma, sn_3fib, sn_3fib_cen, dummy);
* ``.list`` (1203): ``2(f11.7,1x), 2(1x,f8.3), 1x,a28, 1x,a5, 1x,f6.3, 1x,f6.1, 1x,a20, 1x,a8, 1x,a3,
  2(1x,i4), 1x,f7.4, 1x,i1, 1x,i5``: one row per fiber within 3.5" of a detection;
* ``.spec`` (1302): ``1x,f7.2, 9(1x,f11.3), 1x,i5``: 1036 rows per detection;
* ``.res`` (1101): ``2(1x,f10.6), 3(1x,f7.2), 1x,f9.1, 1x,f7.2, 1x,f10.2``.

A value that would not fit its field (Fortran prints ``*``, which no reader accepts) is clamped
to the largest that fits; :func:`fmt_f` counts the clamps.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MC_NAMES_27 = ("wave", "wave_err", "flux", "flux_err", "linewidth", "linewidth_err", "continuum",
               "continuum_err", "sn", "sn_err", "chi2", "chi2_err", "ra", "dec", "datevshot", "noise_ratio",
               "linewidth_fix", "chi2_fix", "chi2fib", "src_index", "multiname", "exp", "xifu", "yifu",
               "xraw", "yraw", "weight")
MC_NAMES_33 = MC_NAMES_27 + ("apcor", "sn_cen", "flux_noise_1sigma", "sn_3fib", "sn_3fib_cen", "dummy")
SPEC_NAMES = ("wave1d", "spec1d_nc", "spec1d_nc_err", "counts1d", "counts1d_err", "apsum_counts",
              "apsum_counts_err", "dummy", "apcor", "flag_pix", "src_index")


class Clamps:
    """Counter of values clamped to their field."""

    def __init__(self) -> None:
        self.n = 0


def fmt_f(v: float, w: int, d: int, clamps: Clamps | None = None) -> str:
    """Fortran ``fw.d`` (right-justified, rounded); values that would overflow are clamped, NaN
    becomes the most negative value that fits."""
    v = float(v)
    big = 10.0 ** (w - d - 1) - 10.0 ** (-d)          # largest positive: w-d-1 integer digits
    small = -(10.0 ** (w - d - 2) - 10.0 ** (-d))     # one column for the sign
    if not np.isfinite(v) or v > big or v < small:
        if clamps is not None:
            clamps.n += 1
        v = big if (np.isfinite(v) and v > big) else small
    s = f"{v:{w}.{d}f}"
    if len(s) > w:                                    # rounding up past the field (e.g. 999.995)
        if clamps is not None:
            clamps.n += 1
        s = f"{(big if v > 0 else small):{w}.{d}f}"
    return s


def fmt_i(v: int, w: int, clamps: Clamps | None = None) -> str:
    v = int(v)
    hi, lo = 10 ** w - 1, -(10 ** (w - 1) - 1)
    if v > hi or v < lo:
        if clamps is not None:
            clamps.n += 1
        v = min(max(v, lo), hi)
    return f"{v:{w}d}"


def fmt_a(s: str, w: int) -> str:
    """Fortran ``aw`` on output: left-justified, blank-padded or cut to w."""
    return f"{s[:w]:<{w}s}"


@dataclass
class McRow:
    """One ``.mc`` line."""

    values: Sequence[float]          #: 6 realisation-1 values: wave, flux, sigma, con, S/N, chi2
    errors: Sequence[float]          #: their Monte-Carlo errors
    ra: float
    dec: float
    datevobs: str
    noise_ratio: float
    sigma_fix: float
    chi2_fix: float
    chi2fib: float
    src_index: int
    multiname: str                   #: multi_SSS_III_UUU_AA_FFF
    exp: str
    xifu: float
    yifu: float
    xraw: int
    yraw: int
    weight: float
    extra: Sequence[float] = ()      #: columns 28-33 (apcor, sn_cen, noise, sn_3fib, sn_3fib_cen, dummy)


def format_mc(row: McRow, clamps: Clamps | None = None, columns: int = 27) -> str:
    """One line of FORMAT 1104 (with the 6 later columns when ``columns`` is 33)."""
    parts = []
    for v, e in zip(row.values, row.errors):
        parts += [" " + fmt_f(v, 8, 2, clamps), " " + fmt_f(e, 8, 2, clamps)]
    parts += [" " + fmt_f(row.ra, 10, 6, clamps), " " + fmt_f(row.dec, 10, 6, clamps), " " + fmt_a(row.datevobs, 12)]
    parts += [" " + fmt_f(v, 6, 2, clamps) for v in (row.noise_ratio, row.sigma_fix, row.chi2_fix)]
    parts += [" " + fmt_f(row.chi2fib, 5, 2, clamps), " " + fmt_i(row.src_index, 5, clamps),
              " " + fmt_a(row.multiname, 24), " " + fmt_a(row.exp, 5),
              " " + fmt_f(row.xifu, 6, 2, clamps), " " + fmt_f(row.yifu, 6, 2, clamps),
              " " + fmt_i(row.xraw, 4, clamps), " " + fmt_i(row.yraw, 4, clamps),
              " " + fmt_f(row.weight, 5, 3, clamps)]
    if columns == 33:
        spec = ((6, 3), (6, 2), (7, 3), (6, 2), (6, 2), (8, 2))
        extra = list(row.extra) + [0.0] * (6 - len(row.extra))
        parts += [" " + fmt_f(v, w, d, clamps) for v, (w, d) in zip(extra, spec)]
    return "".join(parts) + "\n"


@dataclass
class ListRow:
    """One ``.list`` line: a fiber of a detection."""

    ra: float
    dec: float
    xifu: float
    yifu: float
    multifits: str                   #: multi_SSS_III_UUU_AA_FFF.ixy
    exp: str
    distance: float
    wavein: float
    timestamp: str
    date: str
    shot: str
    xraw: int
    yraw: int
    weight: float
    flag: int
    src_index: int


def format_list(r: ListRow, clamps: Clamps | None = None) -> str:
    """One line of FORMAT 1203 (no leading blank: an RA >= 100 starts in column 1)."""
    return (fmt_f(r.ra, 11, 7, clamps) + " " + fmt_f(r.dec, 11, 7, clamps) + " "
            + " " + fmt_f(r.xifu, 8, 3, clamps) + " " + fmt_f(r.yifu, 8, 3, clamps)
            + " " + fmt_a(r.multifits, 28) + " " + fmt_a(r.exp, 5) + " " + fmt_f(r.distance, 6, 3, clamps)
            + " " + fmt_f(r.wavein, 6, 1, clamps) + " " + fmt_a(r.timestamp, 20) + " " + fmt_a(r.date, 8)
            + " " + fmt_a(r.shot, 3) + " " + fmt_i(r.xraw, 4, clamps) + " " + fmt_i(r.yraw, 4, clamps)
            + " " + fmt_f(r.weight, 7, 4, clamps) + " " + fmt_i(r.flag, 1, clamps)
            + " " + fmt_i(r.src_index, 5, clamps) + "\n")


def _clamp(a: np.ndarray, w: int, d: int, clamps: Clamps | None) -> np.ndarray:
    """Values of ``a`` limited to what Fortran ``fw.d`` can print (NaN: the most negative)."""
    big = 10.0 ** (w - d - 1) - 10.0 ** (-d)
    small = -(10.0 ** (w - d - 2) - 10.0 ** (-d))
    a = np.asarray(a, dtype=float)
    bad = ~np.isfinite(a) | (a > big) | (a < small)
    if clamps is not None:
        clamps.n += int(np.count_nonzero(bad))
    return np.where(np.isfinite(a), np.clip(a, small, big), small)


def format_spec(columns: Sequence[np.ndarray], ratzero: float, src_index: int, clamps: Clamps | None = None) -> str:
    """A ``.spec`` block (FORMAT 1302): 9 columns (wave, spec3, spec5, spec2, spec4, spec6, spec7,
    spec8, spec9) of equal length, then ratzero and src_index on every line."""
    cols = [_clamp(columns[0], 7, 2, clamps)] + [_clamp(c, 11, 3, clamps) for c in columns[1:]]
    tail = " " + fmt_f(ratzero, 11, 3, clamps) + " " + fmt_i(src_index, 5, clamps) + "\n"
    line = " %7.2f" + " %11.3f" * (len(cols) - 1)
    return "".join(line % row + tail for row in zip(*(c.tolist() for c in cols)))


def format_res(ra: float, dec: float, wave: float, sn: float, chi: float, amp: float, sig: float, con: float,
               clamps: Clamps | None = None) -> str:
    """One ``.res`` line (FORMAT 1101): ra dec wave sn chi amp sig con."""
    return (" " + fmt_f(ra, 10, 6, clamps) + " " + fmt_f(dec, 10, 6, clamps) + " " + fmt_f(wave, 7, 2, clamps)
            + " " + fmt_f(sn, 7, 2, clamps) + " " + fmt_f(chi, 7, 2, clamps) + " " + fmt_f(amp, 9, 1, clamps)
            + " " + fmt_f(sig, 7, 2, clamps) + " " + fmt_f(con, 10, 2, clamps) + "\n")
