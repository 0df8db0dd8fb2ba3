"""Benchmark: hetred.stats.biweight vs astropy and the NumPy reference.

Builds a seeded 20 x 1032 x 1032 float32 bias-like stack (1000 + 3 * normal),
then times, in this one process and on the same input, best of 3 each:

* ``hetred.stats.biweight(stack, axis=0)`` (location and scale),
* ``astropy.stats.biweight_location(stack, axis=0)`` (location only),
* ``hetred._ext.reference.biweight_reference(stack, axis=0)`` (NumPy),

and prints the times, the ratio astropy / hetred and the largest relative
difference between hetred and the reference.

Run: ``python benchmarks/bench_biweight.py [--repeat N] [--nx NX]``.
"""
from __future__ import annotations

import argparse

import numpy as np

from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)


def max_rel(a: np.ndarray, b: np.ndarray, floor: float) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a64 - b64) / np.maximum(np.abs(b64), floor)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nx", type=int, default=1032)
    ap.add_argument("--nframes", type=int, default=20)
    args = ap.parse_args()

    from astropy.stats import biweight_location as astropy_biweight_location

    from hetred._ext.reference import biweight_reference
    from hetred.stats import biweight

    rng = np.random.default_rng(20240601)
    shape = (args.nframes, args.nx, args.nx)
    stack = (1000.0 + 3.0 * rng.standard_normal(shape)).astype(np.float32)
    print(f"stack {shape} float32, {stack.nbytes / 2**20:.0f} MiB, best of {args.repeat}")

    t_het, (loc, scale) = best_of(lambda: biweight(stack, axis=0), args.repeat)
    t_ast, loc_ast = best_of(lambda: astropy_biweight_location(stack, axis=0), args.repeat)
    t_ref, (loc_ref, scale_ref) = best_of(lambda: biweight_reference(stack, axis=0),
                                          args.repeat)

    print(f"hetred.stats.biweight (loc+scale)    {t_het:8.3f} s")
    print(f"astropy biweight_location            {t_ast:8.3f} s")
    print(f"NumPy reference (loc+scale)          {t_ref:8.3f} s")
    print(f"ratio astropy / hetred               {t_ast / t_het:8.1f} x")
    print(f"ratio reference / hetred             {t_ref / t_het:8.1f} x")
    print(f"max rel diff location vs reference   {max_rel(loc, loc_ref, 1.0):.3e}")
    print(f"max rel diff scale vs reference      {max_rel(scale, scale_ref, 1e-30):.3e}")
    print(f"location bit-identical to reference  {np.mean(loc == loc_ref):.4%} of pixels")
    print(f"max rel diff location vs astropy     {max_rel(loc, loc_ast, 1.0):.3e}"
          "  (different algorithm: one step from the median)")


if __name__ == "__main__":
    main()
