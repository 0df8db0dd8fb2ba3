"""Step 10: spectral energy distributions of the field stars from their u g r i z, offline
(stellarSEDfits ``qfit_gaia``, grzeimann/stellarSEDfits 7bf8040; shared/reference/astrom_throughput.md §3.3).

For every star and every model of the 1024-model MILES grid (package data
``hetred/data/stellar/sedfit_templates.npz``, made by scripts/data/make_stellar_data.py):

* model magnitudes reddened by E(B-V) x (4.892, 3.771, 2.723, 2.090, 1.500) (u g r i z);
* ln L = -1/2 sum_c [d_c^2 + ln(2 pi e_c^2)] over the colours u-g, g-r, r-i, i-z, with
  d_c = (observed - model colour) / e_c and e = sqrt(0.05^2 + 0.02^2 + 0.0008) (u-g),
  sqrt(0.02^2 + 0.02^2 + 0.0008) (others); ln p = ln L + prior, the prior being qfit_gaia's
  ``mgvz`` table interpolated at the model's (M_g, Zmet) and added to ln L as it is (its values,
  0.002-0.22, are probabilities, so it barely matters -- kept as qfit_gaia has it);
  chi2 = (sum d_c^2) / 5 + 1 (qfit_gaia without a Gaia parallax); the grid's "odd point"
  (3.76 < log Teff < 3.79, 2.5 < log g < 3) is left out;
* the models within 2.5 in ln p of the THIRD best are kept; each, binned in 100 Å
  (3540..5540 Å, 21 bins), is scaled to the observed g and reddened with Cardelli, Clayton &
  Mathis (1989, R_V = 3.1); SED = their biweight (more than 2 models; spread = (max - min) / 2)
  or mean (spread 20 %).

Differences from qfit_gaia (docs/stages/throughput.md): no Gaia query (offline, as qfit_gaia
without a match); templates averaged over each 100-Å bin (flux-conserving mean, consistent
with the measured counts summed over the bin) instead of the biweight of their pixels (which
skips absorption-line cores: +10-30 % in the Ca H & K bin of cool stars); and the scaling to g:
qfit_gaia scales the UNreddened model to the observed g and then reddens it, so its SEDs are
A_g = 3.771 E(B-V) (0.075 mag, 7 %) too faint; here the reddened model matches the observed g
(``g_convention = "observed"``; ``"stellarsedfits"`` reproduces qfit_gaia).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from hetred.errors import HetredError
from hetred.stats import biweight_location

#: extinction A_band / E(B-V) of u g r i z (qfit_gaia ext_vector)
EXT_UGRIZ = np.array([4.892, 3.771, 2.723, 2.090, 1.500])
#: colour errors of qfit_gaia: u-g, g-r, r-i, i-z
_MOD = 0.02**2 + 0.02**2
COLOUR_ERR = np.sqrt(np.array([0.05**2, 0.02**2, 0.02**2, 0.02**2]) + 0.02**2 + _MOD)
LNP_WINDOW = 2.5           #: models within this of the third best are kept
SED_WAVE = np.arange(3540.0, 5540.0 + 1.0, 100.0)   #: bin centres, Å


@dataclass(frozen=True)
class Templates:
    """The model grid: ``grid`` (n, 9) M_g, Zmet, log Teff, log g, M_u, M_g, M_r, M_i, M_z;
    ``binned`` (n, 21) erg/s/cm^2/Å at 10 pc in the bins of :data:`SED_WAVE`; ``prior`` (n,);
    ``names`` (n,); ``use`` (n,) bool (False: qfit_gaia's odd point)."""

    names: np.ndarray
    grid: np.ndarray
    binned: np.ndarray
    prior: np.ndarray
    use: np.ndarray


@lru_cache(maxsize=1)
def load_templates() -> Templates:
    """The packaged grid (hetred/data/stellar/README.md says where it comes from)."""
    ref = resources.files("hetred") / "data" / "stellar" / "sedfit_templates.npz"
    try:
        with resources.as_file(ref) as p, np.load(p) as d:
            return Templates(d["names"].astype(str), d["grid"].astype(np.float64),
                             d["binned"].astype(np.float64), d["prior"].astype(np.float64),
                             ~d["odd"].astype(bool))
    except OSError as err:
        raise HetredError(f"stellar templates {ref} are missing from the installation ({err})") from None


def cardelli(wave: np.ndarray, rv: float = 3.1) -> np.ndarray:
    """A(lambda) / E(B-V) of Cardelli, Clayton & Mathis (1989), optical/near-IR branch
    (1.1 <= x <= 3.3 per micron, i.e. 3030-9090 Å; ``wave`` in Å)."""
    x = 1e4 / np.asarray(wave, dtype=np.float64)
    y = x - 1.82
    a = np.polyval([0.32999, -0.77530, 0.01979, 0.72085, -0.02427, -0.50447, 0.17699, 1.0], y)
    b = np.polyval([-2.09002, 5.30260, -0.62251, -5.38434, 1.07233, 2.28305, 1.41338, 0.0], y)
    return rv * (a + b / rv)


@dataclass
class SedFit:
    """Fit of n stars: ``sed`` (n, 21) erg/s/cm^2/Å on :data:`SED_WAVE` (0 where the star could
    not be fitted), ``spread`` (n, 21), ``chi2`` (n,), ``nmodels`` (n,), ``best`` (n,) index of
    the third-best model (qfit_gaia's reference), ``ok`` (n,) bool, ``reason`` (n,) str."""

    sed: np.ndarray
    spread: np.ndarray
    chi2: np.ndarray
    nmodels: np.ndarray
    best: np.ndarray
    ok: np.ndarray
    reason: list[str]


def fit_seds(mags: np.ndarray, ebv: float = 0.02, g_convention: str = "observed",
             templates: Templates | None = None) -> SedFit:
    """SEDs of stars with u g r i z ``mags`` (n, 5) AB. Stars with a non-finite magnitude (or
    one outside 0-40) get ok = False and a reason; the others always get an SED."""
    if g_convention not in ("observed", "stellarsedfits"):
        raise HetredError(f"g_convention must be 'observed' or 'stellarsedfits', got {g_convention!r}")
    t = templates or load_templates()
    mags = np.atleast_2d(np.asarray(mags, dtype=np.float64))
    n = mags.shape[0]
    grid = t.grid[t.use]
    binned = t.binned[t.use]
    prior = t.prior[t.use]
    model = grid[:, 4:9] + EXT_UGRIZ * ebv                                   # reddened M_u..M_z
    good = np.all(np.isfinite(mags), axis=1) & np.all((mags > 0) & (mags < 40), axis=1)
    obs_col = mags[:, :4] - mags[:, 1:]
    mod_col = model[:, :4] - model[:, 1:]
    d = (np.where(good[:, None], obs_col, 0.0)[:, None, :] - mod_col[None, :, :]) / COLOUR_ERR
    lnp = -0.5 * (d**2 + np.log(2 * np.pi * COLOUR_ERR**2)).sum(axis=2) + prior[None, :]
    chi2 = (d**2).sum(axis=2) / (len(COLOUR_ERR) + 1) + 1.0
    redden = 10.0 ** (-0.4 * ebv * cardelli(SED_WAVE))
    out = SedFit(np.zeros((n, SED_WAVE.size)), np.zeros((n, SED_WAVE.size)), np.zeros(n),
                 np.zeros(n, int), np.full(n, -1), good.copy(), [""] * n)
    index = np.nonzero(t.use)[0]
    for k in range(n):
        if not good[k]:
            out.reason[k] = "catalogue magnitudes not finite"
            continue
        order = np.argsort(lnp[k])
        bv = order[-3] if order.size >= 3 else order[0]
        keep = np.nonzero(lnp[k, bv] - lnp[k] < LNP_WINDOW)[0]
        mg = grid[keep, 0] + (EXT_UGRIZ[1] * ebv if g_convention == "observed" else 0.0)
        fac = 10.0 ** (-0.4 * (mags[k, 1] - mg))
        spec = fac[:, None] * binned[keep] * redden[None, :]
        if keep.size > 2:
            unit = spec.mean(axis=0)            # Karl's biweight is not scale-free (MAD floor)
            out.sed[k] = unit * np.asarray(biweight_location(spec / unit, axis=0), dtype=np.float64)
            out.spread[k] = (spec.max(axis=0) - spec.min(axis=0)) / 2.0
        else:
            out.sed[k] = spec.mean(axis=0)
            out.spread[k] = 0.2 * out.sed[k]
        out.chi2[k] = chi2[k, bv]
        out.nmodels[k] = keep.size
        out.best[k] = index[bv]
    return out
