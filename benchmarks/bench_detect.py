"""Benchmark of the line detection (``hetred detect``): one IFU of one shot (3 exposures, 12 multi
files, 1,344 fibers), in one process on one core, and the kernel against its NumPy reference.

The shot is simulated at the level of the multi files (hetred.sim.detect_shot: one IFU with
``--lines`` emitters, log-uniform 1e-17 - 3e-16 erg/s/cm², which gives ~50 candidates for 150
lines; not timed). Timed: the unit as ``hetred detect --shot --ifuslot`` runs it
(hetred.detect.run.run_detect: reading the multi files and the astrometry, the fibers' spectra
and errors, both search passes, the final fits with 100 Monte-Carlo realisations per
detection, writing .mc/.list/.spec), after the imports (reported apart: a Slurm task pays them
once per process). The search kernel (hetred._ext.detkern) and its NumPy reference
(hetred._ext.detect_reference) then search the same ``--ref-positions`` positions of pass 1; the
ratio of their times per position is printed. Peak memory: the growth of the process's peak RSS.

Targets (issue 15): the unit <= 10 s (a 78-IFU shot <= 13 core-min), the kernel >= 20x its
reference, peak memory < 1 GB.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_detect.py [--lines 150] [--profile hdr2.1]``.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

TARGET_S = 10.0
TARGET_RATIO = 20.0
TARGET_MB = 1024.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=150)
    ap.add_argument("--profile", default="hdr2.1")
    ap.add_argument("--ref-positions", type=int, default=60)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

    t0 = time.perf_counter()
    import numpy as np
    from astropy.io import fits  # noqa: F401

    from hetred.detect.run import DetectUnit, run_detect
    from hetred.detect.settings import DetectSettings
    from hetred.layout import Layout
    from hetred.sim.detect_shot import simulate_detect_shot
    t_import = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="bench_detect_") as tmp:
        lay = Layout(Path(tmp) / "raw", Path(tmp) / "red")
        shot = simulate_detect_shot(lay, line_slots=(53,), blank_slots=(), n_lines=args.lines, seed=args.seed)
        settings = DetectSettings.from_config({"fwhm": shot.scene.fwhm}, profile=args.profile)
        rss0 = _rss_mb()
        w0, c0 = time.perf_counter(), time.process_time()
        out = run_detect(lay, DetectUnit(shot.datevobs, 53), settings)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rss1 = _rss_mb()
        c = out.counts
        print(f"unit {shot.datevobs}_053 ({args.profile}): {c['fibers']} fibers, positions {c['positions']}, "
              f"candidates {c['candidates']}, detections {c['detections']}")
        print(f"  wall {wall:.2f} s, cpu {cpu:.2f} s  (steps: {c['timings']}); imports {t_import:.2f} s apart")
        print(f"  78-IFU shot: {78 * cpu / 60:.1f} core-min (target 13)")
        print(f"  peak RSS {rss1:.0f} MB (grew {rss1 - rss0:.0f} MB during the unit; target < {TARGET_MB:.0f})")

        # kernel vs NumPy reference on the same pass-1 positions
        from hetred.detect.linefit import FitState  # noqa: F401
        from hetred.detect.loading import fiber_flags, load_fibers
        from hetred.detect.psf import PsfModel
        from hetred.detect.run import search_data
        from hetred.detect.search import raster, run_kernel

        fs = load_fibers(lay, shot.datevobs, 53, settings)
        data = search_data(fs, PsfModel.make(fs.shot.fwhm, settings))
        flag = fiber_flags(fs, settings.flag_window, settings)[0]
        px, py = raster(fs.x, fs.y, settings.step, settings.nstep)
        sel = np.linspace(0, px.size - 1, args.ref_positions).astype(int)
        tk = min(_time(lambda: run_kernel(data, flag, px[sel], py[sel], settings)) for _ in range(3))
        tr = _time(lambda: run_kernel(data, flag, px[sel], py[sel], settings, reference=True))
        print(f"search of {sel.size} positions: kernel {1e3 * tk / sel.size:.3f} ms/position, NumPy reference "
              f"{1e3 * tr / sel.size:.1f} ms/position: ratio {tr / tk:.0f}x (target >= {TARGET_RATIO:.0f}x)")
        ok = cpu <= TARGET_S and tr / tk >= TARGET_RATIO and rss1 < TARGET_MB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
