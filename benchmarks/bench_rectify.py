"""Benchmark of the rectification kernel (hetred._ext.rebin) against its NumPy reference.

One amp: 112 fibers x 1032 columns with VIRUS-like wavelengths (3466-5545 A, a few A shift per
fiber), 1 % masked pixels, rebinned onto the 1036 bins of 3470 + 2 i A. Timed in one process on
the same inputs, best of N:

1. the kernel alone: ``rebin_fibers`` vs ``reference.rebin_reference`` (vectorised NumPy per
   fiber: searchsorted + cumulative sums, the fair NumPy baseline);
2. ``hetred.sci.rectify.rectify`` (masking, float64 copies and the kernel) for the record.

Run: ``python benchmarks/bench_rectify.py [--repeat N]``.
"""
from __future__ import annotations

import argparse

import numpy as np

from hetred._ext import reference as R
from hetred._ext.rebin import rebin_fibers
from hetred.sci import rectify as RC
from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)

NFIB, NPIX = 112, 1032


def inputs(seed: int = 1):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, NPIX)[None, :]
    wave = 3466.0 + rng.uniform(-4, 4, (NFIB, 1)) + (2075.0 + rng.uniform(-6, 6, (NFIB, 1))) * t \
        + 6.0 * (t ** 2 - t)
    spec = rng.normal(200.0, 40.0, (NFIB, NPIX))
    err = np.sqrt(np.abs(spec) + 9.0)
    mask = rng.random((NFIB, NPIX)) < 0.01
    return spec, err, wave, mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    spec, err, wave, mask = inputs()
    c = np.ascontiguousarray(np.where(mask, 0.0, spec))
    v = np.ascontiguousarray(np.where(mask, 0.0, err * err))
    b = np.ascontiguousarray(mask, dtype=np.uint8)
    w = np.ascontiguousarray(wave)

    t_k, out = best_of(lambda: rebin_fibers(c, v, b, w, RC.RECT_EDGES, RC.EPS), args.repeat)
    t_r, ref = best_of(lambda: R.rebin_reference(c, v, mask, w, RC.RECT_EDGES, RC.EPS),
                       max(3, args.repeat // 4))
    diff = np.max(np.abs(out[0] - ref[0])) / np.abs(ref[0]).max()
    print(f"rebin, one amp (112 x 1032 -> 1036): Cython {t_k * 1e3:7.2f} ms   NumPy reference "
          f"{t_r * 1e3:7.2f} ms   ratio {t_r / t_k:5.1f}x   (max rel. difference {diff:.1e})")
    t_w, _ = best_of(lambda: RC.rectify(spec, err, wave, mask), args.repeat)
    print(f"rectify() incl. masking and copies: {t_w * 1e3:.2f} ms per amp")


if __name__ == "__main__":
    main()
