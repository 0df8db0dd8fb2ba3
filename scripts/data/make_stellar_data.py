"""Build hetred's stellar package data from a checkout of grzeimann/stellarSEDfits (run by hand).

Writes ``src/hetred/data/stellar/``:

* ``sedfit_templates.npz`` -- what the offline SED fit of ``hetred throughput`` needs (step 10 of
  Karl's process, stellarSEDfits ``qfit_gaia``): for the 1024 models of ``stargrid-150501.dat``
  the grid columns qfit_gaia uses (M_g, Zmet, log Teff, log g, M_u, M_g, M_r, M_i, M_z), the
  model names, the prior value at each model (qfit_gaia's ``LinearNDInterpolator`` of the
  ``mgvz_*`` tables evaluated at (M_g, Zmet), as qfit_gaia adds it to ln L), qfit_gaia's "odd
  point" mask, and every MILES spectrum scaled to its M_g as qfit_gaia's ``load_spectra`` does
  (SDSS g response ``sloan_g``, 3631 Jy AB standard, the whole 3540.5-7409.6 Å spectrum) and then
  averaged over the 21 bins of 100 Å centred on 3540, 3640, ..., 5540 Å (flux-conserving mean of
  the 0.9-Å pixels overlapping each bin; the first bin only has the template's 3540-3590 Å).
  Units: erg/s/cm^2/Å at 10 pc.
* ``sim_templates.npz`` -- 64 of those models (log Teff > 3.6, evenly spread in log Teff) at 2-Å
  resolution (flux-conserving means over [3540 + 2k, 3542 + 2k) Å, k < 1080) for the simulator's
  field stars, with their grid rows.

Usage: ``python scripts/data/make_stellar_data.py /path/to/stellarSEDfits [OUTDIR]`` (the
checkout is a git repository: files are read from HEAD). The result is deterministic.
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.interpolate import LinearNDInterpolator

DATA = "stellarSEDfits/data"
BIN_CENTRES = np.arange(3540.0, 5540.0 + 1.0, 100.0)
N_SIM = 64


def git_bytes(repo: Path, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout


def overlap_means(wave: np.ndarray, flux: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of a pixelised spectrum over each [lo, hi) (pixels of width dw centred on ``wave``),
    weighting every pixel by its overlap with the bin (only the covered part counts)."""
    dw = wave[1] - wave[0]
    pl, ph = wave - dw / 2, wave + dw / 2
    out = np.zeros((flux.shape[0], lo.size))
    for k, (a, b) in enumerate(zip(lo, hi)):
        w = np.clip(np.minimum(ph, b) - np.maximum(pl, a), 0, None)
        out[:, k] = flux @ w / w.sum()
    return out


def main(repo: Path, outdir: Path) -> None:
    grid_text = git_bytes(repo, f"{DATA}/stargrid-150501.dat").decode()
    grid = np.loadtxt(io.StringIO(grid_text), usecols=[1, 2, 3, 4, 8, 9, 10, 11, 12], skiprows=1)
    names = np.loadtxt(io.StringIO(grid_text), usecols=[0], skiprows=1, dtype=str)
    with fits.open(io.BytesIO(git_bytes(repo, f"{DATA}/miles_spec/S{names[0]}.fits"))) as h:
        n = h[0].data.size
        wave = h[0].header["CRVAL1"] + np.arange(n) * h[0].header["CDELT1"]
    spec = np.empty((len(names), n))
    for i, name in enumerate(names):
        with fits.open(io.BytesIO(git_bytes(repo, f"{DATA}/miles_spec/S{name}.fits"))) as h:
            spec[i] = h[0].data
    gfilt = np.loadtxt(io.StringIO(git_bytes(repo, f"{DATA}/sloan_g").decode()))
    resp = np.interp(wave, gfilt[:, 0], gfilt[:, 1], left=0.0, right=0.0)
    abstd = 3631.0 / (3.34e4 * wave**2)
    m = -2.5 * np.log10((spec * resp * wave).sum(axis=1) / (abstd * resp * wave).sum())
    spec *= 10.0 ** (-0.4 * (grid[:, 0] - m))[:, None]          # scaled to the model's M_g
    binned = overlap_means(wave, spec, BIN_CENTRES - 50.0, BIN_CENTRES + 50.0)

    xd = np.loadtxt(io.StringIO(git_bytes(repo, f"{DATA}/mgvz_mg_x.dat").decode()))
    yd = np.loadtxt(io.StringIO(git_bytes(repo, f"{DATA}/mgvz_zmet_y.dat").decode()))
    zz = np.loadtxt(io.StringIO(git_bytes(repo, f"{DATA}/mgvz_prior_z.dat").decode()))
    xx, yy = np.meshgrid(xd, yd)
    prior = LinearNDInterpolator(np.column_stack([xx.ravel(), yy.ravel()]), zz.ravel())(grid[:, 0], grid[:, 1])
    odd = (grid[:, 2] > 3.76) & (grid[:, 2] < 3.79) & (grid[:, 3] > 2.5) & (grid[:, 3] < 3.00)

    outdir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(outdir / "sedfit_templates.npz", names=names, grid=grid.astype(np.float32),
                        prior=prior.astype(np.float64), odd=odd, bin_centres=BIN_CENTRES,
                        binned=binned.astype(np.float32))

    hot = np.nonzero(grid[:, 2] > 3.6)[0]
    order = hot[np.argsort(grid[hot, 2], kind="stable")]
    pick = order[np.unique(np.round(np.linspace(0, order.size - 1, N_SIM)).astype(int))]
    lo = 3540.0 + 2.0 * np.arange(1080)
    sim = overlap_means(wave, spec[pick], lo, lo + 2.0)
    np.savez_compressed(outdir / "sim_templates.npz", names=names[pick], rows=pick,
                        grid=grid[pick].astype(np.float32), wave0=np.float64(3541.0), dwave=np.float64(2.0),
                        flux=sim.astype(np.float32))
    print(f"{len(names)} models; prior NaN at {int(np.isnan(prior).sum())}; odd {int(odd.sum())}; "
          f"sim {len(pick)} models, Teff {10**grid[pick, 2].min():.0f}-{10**grid[pick, 2].max():.0f} K")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else
         Path(__file__).resolve().parents[2] / "src/hetred/data/stellar")
