"""vred3's text outputs (karlspipe hdr2.1 progs/vred3.f, fullsky/rfft); amp.dat is read back by
:mod:`hetred.io.ampdat` (addsky and the report pages read it too).

* ``amp.dat`` (vred3 ``amp.out``): the header line ``Spc_slt_iid_am Factor N_c Avg Scale W0 W1 Nlo``
  (45 characters, written ``(a45)``) [vred3:119], then one row per amp in
  FORMAT 1201 ``(a14,1x,f6.3,1x,i3,4(1x,f7.2),1x,i4)``: name, Factor, N_c, Avg, Scale, W0, W1 x 1000,
  Nlow [vred3:381-382, 438], 62 characters. Fortran edit descriptors: a number that does not fit
  its width is written as that many ``*``, NaN right-justified as ``NaN``.
* ``sky.dat`` (``sky.out``): the master sky, two numbers a line (list-directed) [vred3:413-420];
  hetdex_api reads it with ``np.loadtxt`` (create_fullskymodel_hdf5).
* ``ds9.reg``: fullsky/rfft's ``header.ds9reg`` (kgebhardt/hetdex back/header.ds9reg) and one
  ``# text(10,y) textangle=90 text={name}`` line per amp, `` color=red`` when flagged, y =
  112 k - 56 (1-based amp k) [vred3:383-392, 439-441]. Two changes so that astropy-regions reads
  it (regions 0.12 skips ``physical`` and fails on the blank after the comma that Karl's
  ``i5`` leaves): the frame is ``image`` (the same as physical for sub.fits, which has no
  LTV/LTM keywords) and the numbers are written without padding.
"""
from __future__ import annotations

import math

import numpy as np

from hetred.io.ampdat import AMP_HEADER

DS9_HEADER = ("# Region file format: DS9 version 4.1\n"
              'global color=green dashlist=8 3 width=1 font="helvetica 8 normal roman" select=1 highlite=1 '
              "dash=0 fixed=0 edit=1 move=1 delete=1 include=1 source=1\n"
              "image\n")


def fortran_f(x: float, width: int, decimals: int) -> str:
    """Fortran ``Fw.d`` output: right-justified, ``*`` x width when it does not fit."""
    if isinstance(x, float) and math.isnan(x):
        return "NaN".rjust(width)
    if isinstance(x, float) and math.isinf(x):
        return ("Inf" if x > 0 else "-Inf").rjust(width) if width >= 4 else "*" * width
    s = f"{x:{width}.{decimals}f}"
    return s if len(s) <= width else "*" * width


def fortran_i(n: int, width: int) -> str:
    """Fortran ``Iw`` output: right-justified, ``*`` x width when it does not fit."""
    s = f"{int(n):{width}d}"
    return s if len(s) <= width else "*" * width


def amp_row(name: str, factor: float, ncont: int, avg: float, scale: float, w0: float, w1: float,
            nlow: int) -> str:
    """One FORMAT 1201 row (``w1`` per Å; written x 1000 as vred3)."""
    return (f"{name[:14]:<14} {fortran_f(float(factor), 6, 3)} {fortran_i(ncont, 3)} {fortran_f(float(avg), 7, 2)} "
            f"{fortran_f(float(scale), 7, 2)} {fortran_f(float(w0), 7, 2)} {fortran_f(float(w1) * 1000.0, 7, 2)} "
            f"{fortran_i(nlow, 4)}")


def format_amp_dat(rows) -> str:
    """amp.dat text from :class:`hetred.fullsky.vred3.AmpResult` rows (in order)."""
    lines = [AMP_HEADER]
    lines += [amp_row(r.name, r.factor, r.ncont, r.avg, r.scale, r.w0, r.w1, r.nlow) for r in rows]
    return "\n".join(lines) + "\n"


def format_sky_dat(wave: np.ndarray, value: np.ndarray) -> str:
    """sky.dat: wavelength and value, two numbers a line."""
    return "".join(f"{float(w):16.6f} {float(v):16.6f}\n" for w, v in zip(wave, value))


def ds9_line(k: int, name: str, red: bool) -> str:
    """The label of the k-th amp (1-based) of sub.fits."""
    return f"# text(10,{112 * k - 56}) textangle=90 text={{{name}}}" + (" color=red" if red else "")


def format_ds9(names: list[str], red: list[bool]) -> str:
    """ds9.reg text: the header and one label per amp (module docstring)."""
    return DS9_HEADER + "".join(ds9_line(k, n, r) + "\n" for k, (n, r) in enumerate(zip(names, red), 1))


def is_red(factor: float, scale: float, w0: float, st) -> bool:
    """vred3's ``ibad`` [vred3:384-390]: Factor < 0.7 or > 1.1, Scale > 20 or < 1, or Scale > 16
    with |W0| > 0.9 (thresholds from the settings)."""
    return bool(factor < st.factor_low or factor > st.factor_high or scale > st.scale_high
                or scale < st.scale_low or (scale > st.scale_w0 and abs(w0) > st.w0_flag))
