"""Karl's per-shot text files that pass between the stages after the science reductions.

Read here (written by ``hetred astrom``, formats from HETDEX/vdrp; shared/reference/astrom_throughput.md
§1.6, §1.12, §1.13):

* ``dithall.use``: astropy ``ascii.fixed_width`` (delimiter "") with a header line ``ra dec
  ifuslot XS YS xfplane yfplane multifits timestamp exposure``; ``multifits`` =
  ``multi_SSS_III_UUU_AA_FFF.ixy`` (FFF the 1-based fiber of the amp), ``exposure`` ``expNN``.
  Karl's scripts drop the header (``grep -v dec``): both forms are read.
* ``norm.dat``: relative flux of exposures 1..3 (``%10.8f`` each).
* ``radec2_final.dat``: ``ra dec pa`` (deg).
* ``shout.ifustars``: shuffle's star list, ``#`` lines then ``SHOTID ID RA DEC u g r i z``.

Written and read here (``hetred throughput``, formats of karlspipe hdr2.1 combsed.f, fitpoly.f,
mkrsprun.f and hetdex_api h5tools/create_cal_hdf5.py; §3.2, §3.5, §3.6):

* ``DATEvOBSsedtp.dat`` (combsed ``comb.out``): Fortran ``f6.1,4(1x,f6.3)`` -- wave, tp, tp_low,
  tp_high, tp of the flag < 2 stars;
* ``DATEvOBSsedtp_f.dat`` (fitpoly ``out``): ``1x,f6.1,5(1x,f7.4)`` -- wavelength, throughput,
  tp_low, tp_high, rat_poly, tp_gband (21 rows);
* ``fwhm.out`` (mkrsprun, list-directed): ``biweight scale N`` of the stars' FWHMs;
  ``fwhm.all``: ``DATEvOBS fwhm_virus fwhm_virus_err nstars_fit_fwhm`` per shot (hetdex_api reads
  it with ``ascii.no_header``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetred.errors import HetredError

_MULTI_RE = re.compile(r"multi_(\d{3})_(\d{3})_([0-9A-Za-z]{3})_(LL|LU|RL|RU)_(\d{3})")
DITH_COLUMNS = ("ra", "dec", "ifuslot", "XS", "YS", "xfplane", "yfplane", "multifits", "timestamp", "exposure")


def _read_text(path: str | Path, what: str) -> str:
    p = Path(path)
    try:
        return p.read_text()
    except FileNotFoundError:
        raise HetredError(f"{what} {p} does not exist") from None
    except OSError as err:
        raise HetredError(f"{what} {p}: cannot read ({err.strerror})") from None


@dataclass
class Dithall:
    """The fibers of ``dithall.use``: (n,) arrays ``ra``, ``dec`` (deg), ``specid``,
    ``ifuslot``, ``ifuid`` (str), ``amp`` (str), ``fiber`` (1-based multi-file fiber), ``exp``
    (1-based)."""

    ra: np.ndarray
    dec: np.ndarray
    specid: np.ndarray
    ifuslot: np.ndarray
    ifuid: np.ndarray
    amp: np.ndarray
    fiber: np.ndarray
    exp: np.ndarray

    def __len__(self) -> int:
        return len(self.ra)


def read_dithall(path: str | Path) -> Dithall:
    """Fiber RA/Dec of every exposure from a ``dithall.use`` (with or without its header line).

    A line whose multifits or exposure cannot be parsed raises :class:`HetredError` naming the
    file and line.
    """
    text = _read_text(path, "fiber coordinates")
    rows = [line.split() for line in text.splitlines()]
    rows = [(n, r) for n, r in enumerate(rows, 1) if r and r[0] != "ra" and "dec" not in r[:2]]
    if not rows:
        raise HetredError(f"fiber coordinates {path} list no fibers")
    ra, dec, spec, slot, ifuid, amp, fib, exp = ([] for _ in range(8))
    for n, r in rows:
        mf = next((t for t in r if t.startswith("multi_")), "")
        ex = next((t for t in reversed(r) if t.startswith("exp")), "")
        m = _MULTI_RE.fullmatch(mf[:24]) if len(mf) >= 24 else None
        try:
            if m is None or len(r) < 4:
                raise ValueError
            ra.append(float(r[0]))
            dec.append(float(r[1]))
            exp.append(int(ex[3:]))
        except ValueError:
            raise HetredError(f"{path} line {n}: not a dithall.use row (ra dec ifuslot XS YS xfplane "
                              "yfplane multifits timestamp exposure)") from None
        spec.append(mf[6:9])
        slot.append(mf[10:13])
        ifuid.append(mf[14:17])
        amp.append(mf[18:20])
        fib.append(mf[21:24])
    return Dithall(np.array(ra), np.array(dec), np.array(spec).astype(int), np.array(slot).astype(int),
                   np.array(ifuid, dtype="U3"), np.array(amp, dtype="U2"), np.array(fib).astype(int),
                   np.array(exp, dtype=int))


def read_norm(path: str | Path) -> np.ndarray:
    """The relative exposure fluxes of a ``norm.dat`` (n_exp,), all > 0."""
    text = _read_text(path, "exposure normalisation")
    try:
        v = np.array([float(x) for x in text.split()])
    except ValueError:
        raise HetredError(f"exposure normalisation {path}: not a list of numbers") from None
    if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise HetredError(f"exposure normalisation {path}: expected positive numbers, got {text.strip()!r}")
    return v


def read_radec(path: str | Path) -> tuple[float, float, float]:
    """(ra, dec, pa) of a ``radec2_final.dat``."""
    text = _read_text(path, "shot pointing")
    try:
        a, b, c = (float(x) for x in text.split()[:3])
    except ValueError:
        raise HetredError(f"shot pointing {path}: expected 'ra dec pa'") from None
    return a, b, c


STAR_DTYPE = np.dtype([("id", "U24"), ("ra", "f8"), ("dec", "f8"), ("u", "f8"), ("g", "f8"),
                       ("r", "f8"), ("i", "f8"), ("z", "f8")])


def read_ifustars(path: str | Path) -> np.ndarray:
    """Stars of a ``shout.ifustars`` (:data:`STAR_DTYPE`), file order; an empty file or one with
    only ``#`` lines gives no stars. Magnitudes that are not numbers become NaN."""
    text = _read_text(path, "star catalogue")
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 9:
            raise HetredError(f"star catalogue {path} line {n}: expected 9 columns (SHOTID ID RA DEC u g r i z)")
        try:
            ra, dec = float(parts[2]), float(parts[3])
        except ValueError:
            raise HetredError(f"star catalogue {path} line {n}: RA/Dec not numbers") from None
        mags = []
        for v in parts[4:]:
            try:
                mags.append(float(v))
            except ValueError:
                mags.append(float("nan"))
        rows.append((parts[1], ra, dec, *mags))
    return np.array(rows, dtype=STAR_DTYPE)


# ------------------------------------------------------------------------------------------------
# throughput products

SEDTP_F_COLUMNS = ("wavelength", "throughput", "tp_low", "tp_high", "rat_poly", "tp_gband")


def format_sedtp(wave: Sequence[float], tp: Sequence[float], low: Sequence[float], high: Sequence[float],
                 tp2: Sequence[float]) -> str:
    """``DATEvOBSsedtp.dat`` (combsed comb.out, ``f6.1,4(1x,f6.3)``)."""
    return "".join(f"{a:6.1f} {b:6.3f} {c:6.3f} {d:6.3f} {e:6.3f}\n" for a, b, c, d, e in zip(wave, tp, low, high, tp2))


def format_sedtp_f(wave: Sequence[float], tp: Sequence[float], rat: Sequence[float],
                   gband: Sequence[float], low: Sequence[float] | None = None,
                   high: Sequence[float] | None = None) -> str:
    """``DATEvOBSsedtp_f.dat`` (fitpoly out, ``1x,f6.1,5(1x,f7.4)``); tp_low, tp_high are 0 as
    Karl writes them unless given."""
    n = len(wave)
    low = [0.0] * n if low is None else low
    high = [0.0] * n if high is None else high
    return "".join(f" {a:6.1f} {b:7.4f} {c:7.4f} {d:7.4f} {e:7.4f} {f:7.4f}\n"
                   for a, b, c, d, e, f in zip(wave, tp, low, high, rat, gband))


def read_sedtp_f(path: str | Path) -> dict[str, np.ndarray]:
    """The six columns of a ``DATEvOBSsedtp_f.dat`` (``SEDTP_F_COLUMNS``), each (n,) float64."""
    text = _read_text(path, "response curve")
    try:
        a = np.array([[float(v) for v in line.split()] for line in text.splitlines() if line.strip()])
    except ValueError:
        raise HetredError(f"response curve {path}: not a table of numbers") from None
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] != 6:
        raise HetredError(f"response curve {path}: expected rows of 6 columns ({' '.join(SEDTP_F_COLUMNS)})")
    return {k: a[:, i] for i, k in enumerate(SEDTP_F_COLUMNS)}


def format_fwhm_out(fwhm: float, scale: float, n: int) -> str:
    """``fwhm.out``: ``biweight scale N`` (mkrsprun, list-directed)."""
    return f"{fwhm:11.5f} {scale:11.5f} {int(n):6d}\n"


def read_fwhm_out(path: str | Path) -> tuple[float, float, int]:
    parts = _read_text(path, "FWHM file").split()
    try:
        return float(parts[0]), float(parts[1]), int(float(parts[2]))
    except (IndexError, ValueError):
        raise HetredError(f"FWHM file {path}: expected 'fwhm scale nstars'") from None


def format_fwhm_all(rows: Sequence[tuple[str, float, float, int]]) -> str:
    """``fwhm.all``: ``DATEvOBS fwhm_virus fwhm_virus_err nstars_fit_fwhm`` per shot."""
    return "".join(f"{d} {f:.4f} {s:.4f} {int(n)}\n" for d, f, s, n in rows)
