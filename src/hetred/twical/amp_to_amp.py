"""Amp-to-amp normalisation from the month's twilights (Karl's getata.f, twical/rgetata + rtara).

Per twilight exposure: every amp's fiber spectra (calwork SPECTRA) are turned into counts per Å,
divided by their fiber-to-fiber and put on one wavelength grid; the amp's spectrum is the
biweight over its live fibers; the field spectrum is the median over every amp of every IFU of
the exposure; an amp's factor is the biweight over 3700-5400 Å of amp / field. Factors of an
amp are combined over the month's exposures with the biweight and normalised to mean 1 over all
amps measured; written into each amp's ``callib`` file (``amp_to_amp`` extension) and the
month's ``amp_to_amp`` table.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred.errors import HetredError
from hetred.fibers.library import amp_to_amp_hdu
from hetred.io.atomic import atomic_path, write_text_atomic
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout, parse
from hetred.twical import fiber_to_fiber as F
from hetred.twical.calwork import read_calwork

RANGE = (3700.0, 5400.0)


def amp_spectrum(spectra: np.ndarray, wave: np.ndarray, ftf: np.ndarray, dead: np.ndarray,
                 grid: np.ndarray) -> np.ndarray:
    """Biweight over live fibers of counts per Å / ftf on ``grid``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dens = F.flux_density(spectra, wave) / np.where(ftf > 0, ftf, np.nan)
    g = F.to_grid(dens, wave, grid)
    return F.nan_biweight(g[~dead], axis=0)[0]


def exposure_factors(spectra_by_amp: dict, grid: np.ndarray | None = None,
                     wrange: tuple[float, float] = RANGE) -> dict:
    """{key: factor} for one exposure: each amp's spectrum over the field median."""
    g = F.wave_grid() if grid is None else grid
    specs = {k: amp_spectrum(*v, g) for k, v in spectra_by_amp.items()}
    with warnings.catch_warnings():    # grid points outside every amp's range stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        field = np.nanmedian(np.stack(list(specs.values())), axis=0)
    sel = (g >= wrange[0]) & (g <= wrange[1])
    out = {}
    for k, s in specs.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (s / field)[sel]
        out[k] = float(F.nan_biweight(r[None, :], axis=1)[0][0])
    return out


def run_a2a(layout: Layout, month: str, ifuslots: list[int] | None = None) -> UnitOutcome:
    """Amp-to-amp of the month over the field; updates the callib files and the table."""
    per_exp: dict[str, dict] = {}
    files = []
    for p in layout.glob("calwork", month=month):
        f = parse("calwork", str(p.relative_to(layout.red)))
        if f is None or (ifuslots and f["ifuslot"] not in ifuslots):
            continue
        d = read_calwork(p)
        key = (f["ifuslot"], f["amp"])
        per_exp.setdefault(f"{f['datevobs']}_exp{f['exp']:02d}", {})[key] = (
            d["spectra"], d["wave"].wavelength.astype(float), d["ftf"].astype(float), d["dead"])
        files.append(str(p))
    if not per_exp:
        raise HetredError(f"no reduced twilights in {month} (run hetred twical {month} --step reduce)")
    factors: dict[tuple, list[float]] = {}
    table_exp = []
    for ek, amps in sorted(per_exp.items()):
        if len(amps) < 2:
            continue
        fac = exposure_factors(amps)
        for k, v in fac.items():
            factors.setdefault(k, []).append(v)
            table_exp.append((ek, k, v))
    if not factors:
        raise HetredError(f"amp-to-amp of {month}: no exposure has two amps or more")
    comb = {}
    for k, v in factors.items():
        arr = np.asarray(v, np.float32)
        loc, scl = F.nan_biweight(arr[None, :], axis=1)
        comb[k] = (float(loc[0]), float(0.0 if not np.isfinite(scl[0]) else scl[0]), len(v))
    norm = float(np.mean([c[0] for c in comb.values()]))
    outputs = []
    lines = ["# ifuslot amp a2a scatter nexp   (month " + month + ", normalised to mean 1)"]
    for (slot, amp), (val, scl, n) in sorted(comb.items()):
        val, scl = val / norm, scl / norm
        lines.append(f"{slot:03d} {amp} {val:.5f} {scl:.5f} {n}")
        for lib in layout.glob("callib", month=month, ifuslot=slot, amp=amp):
            _update_library(lib, val, scl, n)
            outputs.append(str(lib))
    lines.append("# per exposure: exposure ifuslot amp factor (before normalisation)")
    for ek, (slot, amp), v in table_exp:
        lines.append(f"# {ek} {slot:03d} {amp} {v:.5f}")
    table = layout.path("amp_to_amp", month=month)
    write_text_atomic(table, "\n".join(lines) + "\n")
    outputs.append(str(table))
    counts = {"amps": len(comb), "exposures": len(per_exp),
              "a2a": {f"{s:03d}{a}": round(v[0] / norm, 5) for (s, a), v in sorted(comb.items())}}
    # depends: the reduced twilights and the libraries as this unit leaves them, so a library
    # rewritten by twical-combine (or a twilight reduced again) makes the unit stale
    return UnitOutcome(outputs=outputs, inputs=files, counts=counts, depends=files + outputs[:-1])


def _update_library(path: Path, value: float, scatter: float, nexp: int) -> None:
    with fits.open(path) as h:
        hdus = [x.copy() for x in h]
    out = fits.HDUList([x if x.name != "AMP_TO_AMP" else amp_to_amp_hdu(value, scatter, nexp) for x in hdus])
    with atomic_path(path) as tmp:
        out.writeto(tmp, overwrite=True)


def read_table(layout: Layout, month: str) -> dict[tuple[int, str], float]:
    out = {}
    for line in layout.path("amp_to_amp", month=month).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a = line.split()
        out[(int(a[0]), a[1])] = float(a[2])
    return out
