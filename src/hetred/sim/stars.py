"""Field stars of the simulator from the real stellar template library (the 1024 MILES models of
grzeimann/stellarSEDfits, the grid the throughput stage's SED fits use), with SDSS catalogue
magnitudes and their errors.

* Models: the 64 of package data ``hetred/data/stellar/sim_templates.npz`` (log Teff > 3.6,
  3985-8052 K, evenly spread in log Teff; made by scripts/data/make_stellar_data.py), each
  averaged to 2-Å bins on 3541 + 2 k Å (3540-5700 Å) and scaled to its absolute magnitude M_g
  at 10 pc (erg/s/cm^2/Å) as stellarSEDfits does. Below 3540 Å (the library's first pixel) the
  spectrum continues as the power law fitted to 3540-3640 Å (documented extension: the
  calfib grid starts at 3470 Å).
* A star of catalogue g (true, with Galactic extinction): distance modulus
  DM = g - M_g - 3.771 E(B-V); SED = template x 10^(-0.4 DM) x 10^(-0.4 E(B-V) k(lambda)),
  k the Cardelli, Clayton & Mathis (1989) curve (R_V = 3.1); u r i z = M_x - M_g + g +
  (c_x - c_g) E(B-V) with the grid's absolute magnitudes and qfit_gaia's coefficients
  c = (4.892, 3.771, 2.723, 2.090, 1.500).
* Catalogue magnitudes: true + N(0, sigma(m)), sigma(m) = sqrt(0.015^2 + (0.2 x 10^(0.4 (m -
  m5)))^2) with the SDSS 5-sigma depths m5 = (22.0, 22.2, 22.2, 21.3, 20.5) in u g r i z (0.2 mag
  at m5, 0.02 mag 2.5 mag brighter, a 0.015-mag calibration floor).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

EXT_UGRIZ = np.array([4.892, 3.771, 2.723, 2.090, 1.500])   #: A_band / E(B-V) (stellarSEDfits)
DEPTH_5SIGMA = np.array([22.0, 22.2, 22.2, 21.3, 20.5])     #: SDSS u g r i z 5-sigma depths
ERR_FLOOR = 0.015
SED_WAVE = np.arange(3400.0, 5700.0 + 1.0, 2.0)             #: the scene's SED grid, Å


@dataclass(frozen=True)
class SimTemplates:
    """``flux`` (64, n) erg/s/cm^2/Å at 10 pc on ``wave`` (n,) Å; ``grid`` (64, 9) rows of the
    model grid (M_g, Zmet, log Teff, log g, M_u, M_g, M_r, M_i, M_z); ``rows`` (64,) indices in
    the 1024-model grid; ``names``."""

    wave: np.ndarray
    flux: np.ndarray
    grid: np.ndarray
    rows: np.ndarray
    names: np.ndarray

    @property
    def teff(self) -> np.ndarray:
        return 10.0 ** self.grid[:, 2]


@lru_cache(maxsize=1)
def templates() -> SimTemplates:
    """The simulator's 64 templates, extended below 3540 Å (module docstring)."""
    ref = resources.files("hetred") / "data" / "stellar" / "sim_templates.npz"
    with resources.as_file(ref) as p, np.load(p) as d:
        w = float(d["wave0"]) + float(d["dwave"]) * np.arange(d["flux"].shape[1])
        flux = d["flux"].astype(np.float64)
        grid, rows, names = d["grid"].astype(np.float64), d["rows"].astype(int), d["names"].astype(str)
    blue = SED_WAVE[SED_WAVE < w[0]]
    fit = w < w[0] + 100.0
    ext = np.empty((flux.shape[0], blue.size))
    for k in range(flux.shape[0]):
        slope, icpt = np.polyfit(np.log(w[fit]), np.log(np.maximum(flux[k, fit], 1e-300)), 1)
        ext[k] = np.exp(icpt + slope * np.log(blue))
    full = np.concatenate([ext, np.array([np.interp(SED_WAVE[SED_WAVE >= w[0]], w, f) for f in flux])], axis=1)
    return SimTemplates(SED_WAVE.copy(), full, grid, rows, names)


def cardelli(wave: np.ndarray, rv: float = 3.1) -> np.ndarray:
    """A(lambda)/E(B-V), Cardelli, Clayton & Mathis (1989) optical branch (``wave`` Å)."""
    y = 1e4 / np.asarray(wave, dtype=np.float64) - 1.82
    a = 1 + y * (0.17699 + y * (-0.50447 + y * (-0.02427 + y * (0.72085 + y * (0.01979 + y * (-0.77530 + y * 0.32999))))))
    b = y * (1.41338 + y * (2.28305 + y * (1.07233 + y * (-5.38434 + y * (-0.62251 + y * (5.30260 - y * 2.09002))))))
    return rv * a + b


def model_index(u: np.ndarray) -> np.ndarray:
    """Template (0..63) for uniform deviates ``u`` in [0, 1) (equal probability each)."""
    n = templates().flux.shape[0]
    return np.clip((np.asarray(u, dtype=np.float64) * n).astype(int), 0, n - 1)


def star_sed(model: int, g: float, ebv: float) -> np.ndarray:
    """f_lambda (erg/s/cm^2/Å) on :data:`SED_WAVE` of template ``model`` at true g (module docs)."""
    t = templates()
    dm = g - t.grid[model, 0] - EXT_UGRIZ[1] * ebv
    return t.flux[model] * 10.0 ** (-0.4 * dm) * 10.0 ** (-0.4 * ebv * cardelli(SED_WAVE))


def true_mags(model: int, g: float, ebv: float) -> np.ndarray:
    """True u g r i z (AB, with extinction) of template ``model`` at true g."""
    t = templates()
    return t.grid[model, 4:9] - t.grid[model, 5] + g + (EXT_UGRIZ - EXT_UGRIZ[1]) * ebv


def catalogue_error(mags: np.ndarray) -> np.ndarray:
    """1-sigma SDSS-like errors of u g r i z magnitudes (..., 5)."""
    m = np.asarray(mags, dtype=np.float64)
    return np.sqrt(ERR_FLOOR**2 + (0.2 * 10.0 ** (0.4 * (m - DEPTH_5SIGMA))) ** 2)
