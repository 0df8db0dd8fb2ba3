"""Benchmark of the extraction kernel (hetred._ext.extract) against its NumPy reference.

One amp (112 fibers x 1032 columns, 1032 rows, 15-row windows): a synthetic frame made with a
perturbed analytic profile, Poisson-like noise and 1 % masked pixels.  Timed, best of N:

1. one pass of the simultaneous weighted fit of all fibers per column (fluxes, errors, core
   chi^2): ``hetred._ext.extract.extract_columns`` (through ``extract_weighted``) vs
   ``hetred._ext.reference.extract_reference`` (the literal reference: a dense design matrix and
   normal equations per column, numpy.linalg) and vs :func:`extract_numpy_vectorised` (all
   columns at once, banded sums, LAPACK banded Cholesky per column: the fair NumPy/SciPy
   baseline); target: Cython >= 10x faster than the reference;
2. the pixel weights of every fiber at every column (``FiberProfile.weights``, Cython) vs
   ``reference.profile_weights_reference``;
3. the whole ``hetred.fibers.extract.extract`` (weights + 3 passes + models) for the record.

Run: ``python benchmarks/bench_extract.py [--quick]`` (``--quick``: the NumPy reference on 129
columns, its time scaled to 1032).
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.linalg import cho_solve_banded, cholesky_banded

from hetred._ext import reference as R
from hetred.fibers import extract as E
from hetred.fibers.profile import FiberProfile
from hetred.fibers.trace import slot_index
from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)

NFIB, NROW, NCOL = 112, 1032, 1032



def extract_numpy_vectorised(img, var, mask, r0, w, trace, core_half: float = 3.0):
    """The same fit written as fast as NumPy + SciPy allow: banded normal matrices of all columns
    at once, then per column SciPy's LAPACK banded Cholesky for the fluxes and the diagonal of
    the inverse (errors) -- the fair baseline for the kernel."""
    nfib, ncol, nwin = w.shape
    nrow = img.shape[0]
    cols = np.arange(ncol)[None, :, None]
    rows = r0[:, :, None] + np.arange(nwin)
    rc = np.clip(rows, 0, nrow - 1)
    ok = (rows >= 0) & (rows < nrow) & ~mask[rc, cols] & (var[rc, cols] > 0)
    iv = np.where(ok, 1.0 / np.where(ok, var[rc, cols], 1.0), 0.0)
    wd = w.astype(np.float64)
    ab = np.zeros((3, nfib, ncol))                               # upper banded storage
    ab[2] = (wd * wd * iv).sum(axis=2)
    b = (wd * img[rc, cols] * iv).sum(axis=2)
    for j in (1, 2):
        delta = r0[j:] - r0[:-j]                                   # (nfib-j, ncol)
        s = np.zeros(delta.shape)
        for k in range(nwin):
            k2 = k - delta
            inside = (k2 >= 0) & (k2 < nwin)
            w2 = np.take_along_axis(wd[j:], np.clip(k2, 0, nwin - 1)[:, :, None], axis=2)[:, :, 0]
            s += np.where(inside, wd[:-j, :, k] * w2 * iv[:-j, :, k], 0.0)
        ab[2 - j, j:] = s
    empty = ab[2] <= 0
    ab[2] = np.where(empty, 1.0, ab[2])
    b = np.where(empty, 0.0, b)
    eye = np.eye(nfib)
    spec = np.empty((nfib, ncol))
    z = np.empty((nfib, ncol))
    for x in range(ncol):                                        # LAPACK banded Cholesky
        c = cholesky_banded(ab[:, :, x])
        spec[:, x] = cho_solve_banded((c, False), b[:, x])
        z[:, x] = np.diag(cho_solve_banded((c, False), eye))
    model = np.zeros((nrow, ncol))
    np.add.at(model, (rc[ok], np.broadcast_to(cols, rows.shape)[ok]), (spec[:, :, None] * wd)[ok])
    core = ok & (np.abs(rows - trace[:, :, None]) <= core_half)
    res2 = (img[rc, cols] - model[rc, cols]) ** 2 * iv
    n = core.sum(axis=2)
    lev = (wd * wd * iv * core).sum(axis=2) * z
    chi = np.where(n - lev > 0.5, (res2 * core).sum(axis=2) / np.maximum(n - lev, 1e-9), 0.0)
    return spec, np.sqrt(z), chi, n


def frame(seed: int = 1):
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, NCOL)[None, :]
    trace = 20.0 + 8.72 * slot_index()[:, None] + 2.0 * (x ** 2 - 1 / 3) + 0.7 * x
    prof = FiberProfile.analytic()
    prof.values = (prof.values * (1 + 0.03 * rng.normal(size=prof.values.shape))).astype(np.float32)
    r0, w = prof.weights(trace)
    flux = 2e4 * rng.uniform(0.6, 1.3, (NFIB, 1)) * (1 + 0.5 * np.sin(np.arange(NCOL) / 37.0))[None, :]
    model = E.model_from_weights(flux.astype(np.float32), r0, w, NROW)
    var = (9.0 + model).astype(np.float32)
    img = (model + rng.normal(size=model.shape) * np.sqrt(var)).astype(np.float32)
    mask = rng.random(img.shape) < 0.01
    return img, var, mask, trace, prof, r0, w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reference on 129 columns, scaled")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    img, var, mask, trace, prof, r0, w = frame()

    t_k, out = best_of(lambda: E.extract_weighted(img, var, mask, r0, w, trace), args.repeat)
    ncol_ref = 129 if args.quick else NCOL
    sl = slice(0, ncol_ref)
    t_r, ref = best_of(lambda: R.extract_reference(img[:, sl], var[:, sl], mask[:, sl], r0[:, sl],
                                                   w[:, sl], trace[:, sl], 3.0), 1)
    t_r *= NCOL / ncol_ref
    rel = np.max(np.abs(out[0][:, sl] - ref[0]) / np.abs(ref[0]))
    print(f"extraction, one pass, one amp: Cython {t_k * 1e3:8.1f} ms   NumPy reference "
          f"{t_r * 1e3:9.1f} ms{' (scaled from 129 columns)' if args.quick else ''}   "
          f"ratio {t_r / t_k:6.0f}x   (max rel. difference {rel:.1e})")

    t_v, vec = best_of(lambda: extract_numpy_vectorised(img, var, mask, r0, w, trace), 2)
    relv = np.max(np.abs(out[0] - vec[0]) / np.abs(vec[0]))
    print(f"extraction, one pass, one amp: Cython {t_k * 1e3:8.1f} ms   vectorised+LAPACK "
          f"{t_v * 1e3:8.1f} ms   ratio {t_v / t_k:6.1f}x   (max rel. difference {relv:.1e})")

    t_wk, _ = best_of(lambda: prof.weights(trace), args.repeat)
    t_wr, _ = best_of(lambda: R.profile_weights_reference(prof.values, prof.columns, prof.offsets[0],
                                                           prof.step, trace, 7), 2)
    print(f"pixel weights, one amp:        Cython {t_wk * 1e3:8.1f} ms   NumPy reference "
          f"{t_wr * 1e3:9.1f} ms   ratio {t_wr / t_wk:6.0f}x")

    t_full, _ = best_of(lambda: E.extract(img, trace, prof, read_noise=3.0, mask=mask), args.repeat)
    print(f"extract() (weights + 3 passes + models): {t_full * 1e3:.1f} ms per amp")


if __name__ == "__main__":
    main()
