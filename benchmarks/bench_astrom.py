"""Benchmark of the astrometry (``hetred astrom``): one shot of 78 IFUs x 3 exposures, from the
CoFeS images to dithall.use, in one process on one core.

The shot is simulated at the level of the reconstructed images (hetred.sim.cofes_shot: all 78
slots, ~3 stars per IFU, g 16.5-21.5; not timed), then the stage's steps run as ``hetred astrom
--images`` runs them (hetred.astrom.run): reading the 234 images and finding and measuring their
stars, the solution (registration, fiber-model norm.dat, offsets at Karl's 13 trial rotations x 3
radii x 3 exposures, the optimum, the shot centre, 104,832 fiber coordinates) and writing every
file (with and without the QA PNGs). Wall and CPU time per step; the peak memory as the growth of
the process's peak RSS (``resource.getrusage``) and the tracemalloc peak of the timed part.
Target (issue 12): <= 30 s for the shot on one core, peak memory < 1 GB. Imports (photutils,
scipy, matplotlib) are done before timing and reported apart.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_astrom.py [--ifus N]``.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

TARGET_S = 30.0
TARGET_MB = 1024.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Steps:
    """Wall and CPU time of consecutive steps."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self._w, self._c = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.rows.append((name, w - self._w, c - self._c))
        self._w, self._c = w, c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ifus", type=int, default=78, help="IFUs in the shot (default all 78)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

    t0 = time.perf_counter()
    import matplotlib  # noqa: F401  (the QA PNGs)
    import photutils.detection  # noqa: F401
    import scipy.interpolate
    import scipy.optimize
    import scipy.spatial  # noqa: F401

    from hetred.astrom import fibermodel, normfit, qa, stars  # noqa: F401
    from hetred.astrom import formats as F
    from hetred.astrom.inputs import folder_exposures, layout_fibermaps, load_fplane
    from hetred.astrom.run import measure, write_products
    from hetred.astrom.settings import AstromSettings
    from hetred.astrom.solve import ShotInput, solve
    from hetred.layout import path_under
    from hetred.sim.cofes_shot import simulate_cofes_shot
    from hetred.sim.focalplane import default_order, slot_entry
    from hetred.virus.coords import DITHERS
    t_import = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="bench_astrom_") as tmp:
        root = Path(tmp)
        slots = [slot_entry(s) for s in sorted(default_order()[:args.ifus])]
        t0 = time.perf_counter()
        shot = simulate_cofes_shot(root / "in", slots, seed=args.seed)
        t_sim = time.perf_counter() - t0
        settings = AstromSettings.from_config({"dithers": [v for d in DITHERS for v in d]})
        rss0 = _rss_mb()
        tracemalloc.start()
        st = Steps()
        warnings_: list[str] = []
        exposures = folder_exposures(root / "in")
        fplane = load_fplane(root / "in" / "fplane.txt")
        cat = F.read_ifustars(root / "in" / "shout.ifustars")
        active = sorted(set.intersection(*(set(e.files) for e in exposures)))
        inp = ShotInput("bench", [], fplane, cat, F.read_radec(root / "in" / "radec.orig"), (-26.15, -26.24),
                        layout_fibermaps(active, fplane), warnings_)
        st.lap("inputs (file lists, fplane, catalogue, fiber positions)")
        inp.exposures, _, _ = measure(exposures, settings, warnings_)
        st.lap(f"stars: read {sum(len(e.files) for e in exposures)} images, find, PSF photometry")
        sol = solve(inp, settings)
        st.lap("solve (all steps below)")
        nqa = settings.__class__(**{**settings.as_dict(), "qa": False})
        out = root / "out"
        write_products(sol, lambda key, **f: path_under(out, key, "astrom_dir", datevobs="bench", **f), nqa)
        st.lap("write every file (no PNG)")
        for k, e in enumerate(sol.input.exposures):
            qa.match_png(sol, k, out / f"match_exp{e.index:02d}.png")
        qa.angoff_png(sol, out / "ang_off.png")
        st.lap("QA PNGs (4)")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = _rss_mb() - rss0

    total_w = sum(r[1] for r in st.rows)
    total_c = sum(r[2] for r in st.rows)
    nfib = sum(len(t) for t in sol.fibers)
    print(f"hetred astrom benchmark: {args.ifus} IFUs x {len(sol.input.exposures)} exposures, "
          f"{sum(len(p) for p in sol.placed)} detections, {len(cat)} catalogue stars, {nfib} fibers "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.1f})")
    print(f"  imports (once per process, not timed below): {t_import:.1f} s; simulation (not timed): {t_sim:.1f} s")
    print(f"  {'step':62s} {'wall s':>8s} {'cpu s':>8s}")
    for name, w, c in st.rows:
        print(f"  {name:62s} {w:8.2f} {c:8.2f}")
        if name.startswith("solve"):
            for k, v in sol.timings.items():
                print(f"    {k:60s} {v:8.2f}")
    print(f"  {'total':62s} {total_w:8.2f} {total_c:8.2f}")
    print(f"  target <= {TARGET_S:.0f} s on one core: CPU total / target = {total_c / TARGET_S:.2f} "
          f"({'met' if total_c <= TARGET_S else 'NOT met'})")
    print(f"  peak memory: RSS growth {rss:.0f} MB, tracemalloc peak {peak / 2**20:.0f} MB; target < {TARGET_MB:.0f} MB "
          f"({'met' if max(rss, peak / 2**20) < TARGET_MB else 'NOT met'})")
    print(f"  result: pairs {[f.last.n for f in sol.fits]}, PA - truth {sol.final[2] - shot.scene.pa:+.4f} deg, "
          f"norm {[round(float(v), 4) for v in sol.norm]} (injected {[round(float(v), 4) for v in shot.norm]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
