"""Benchmark of ``hetred fullsky`` and ``hetred resmap`` (issue 14), one process on one core.

1. Kernels against their NumPy references (ratios): ``master_runs`` (the exposure master of
   36M samples in runs of 1001, and an amp master in runs of 22), ``sort_by_wave`` (vred3's sort2 of
   4M and of 36M samples against NumPy's stable argsort), ``grid_chi2`` (one amp's 25 x 11
   W0/W1 grid), ``segment_biweights`` (getback's 3 x 112 neighbour biweights).
2. One exposure of 78 IFUs (312 amps) simulated at the level of the extracted fibers
   (hetred.sim.fullsky_exposure; not timed) written as multi files and libraries, then one
   ``hetred fullsky`` unit on it (run_fullsky: reading, vred3, writing amp.dat, sky.dat, sub.fits,
   ds9.reg; the QA PNG apart): wall and CPU time, peak RSS. Target: <= 60 s.
3. resmap of 100 multi files per amp (hetred.sim.multi_month; not timed): one unit, wall and CPU,
   and the peak RSS of units of 36, 51, 102 and 201 files, each in a fresh process after the
   simulation's own (the memory must not grow with the files). Target: <= 20 s per amp, < 1 GB.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_fullsky.py [--ifus N] [--skip-kernels]``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import best_of


def _rss_mb() -> float:
    """Peak RSS of this process image in MB: VmHWM (Linux; reset by exec, unlike ru_maxrss, which a
    child started by subprocess inherits from its parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def kernels() -> None:
    import numpy as np

    from hetred._ext import reference_fullsky as R
    from hetred._ext.fullsky import grid_chi2, master_runs, segment_biweights, sort_by_wave

    rng = np.random.default_rng(1)
    print("kernel                                   Cython (s)   NumPy (s)   ratio")
    for label, n, ns in (("master_runs: 2M samples, runs of 1001", 2_000_000, 1000),
                         ("master_runs: an amp's 115k, runs of 22", 115_584, 21)):
        w = np.sort(rng.uniform(3500, 5500, n)).astype(np.float32)
        v = (100 + rng.normal(0, 10, n)).astype(np.float32)
        tk, a = best_of(lambda w=w, v=v, ns=ns: master_runs(w, v, ns), 3)
        tr, b = best_of(lambda w=w, v=v, ns=ns: R.master_runs_reference(w, v, ns), 1)
        assert np.array_equal(a[1], b[1])
        print(f"{label:40s} {tk:10.4f} {tr:11.4f} {tr / tk:7.1f}")
    for n in (4_000_000, 36_000_000):
        w = rng.uniform(3500, 5500, n).astype(np.float32)
        v = rng.normal(100, 10, n).astype(np.float32)
        tk, a = best_of(lambda w=w, v=v: sort_by_wave(w, v), 3)
        tr, b = best_of(lambda w=w, v=v: R.sort_by_wave_reference(w, v), 1)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        label = f"sort_by_wave: {n / 1e6:.0f}M samples" + (" (312 amps)" if n > 10_000_000 else "")
        print(f"{label:40s} {tk:10.4f} {tr:11.4f} {tr / tk:7.1f}")
        del w, v, a, b
    wm = np.linspace(3480, 5530, 36000)
    xm = (100 + 80 * np.exp(-0.5 * ((wm - 5460.7) / 2.3) ** 2)).astype(np.float32)
    x2 = np.sort(rng.uniform(3500, 5500, 5500))
    y2 = np.interp(x2 + 0.2, wm, xm).astype(np.float32)
    w0s, w1s = np.linspace(-1, 1, 25), np.linspace(-0.4e-3, 0.4e-3, 11)
    args = (x2, y2, wm, xm, 1.0, w0s, w1s, 4500.0, 5455.0, 5472.0, 5.0)
    tk, a = best_of(lambda: grid_chi2(*args), 5)
    tr, b = best_of(lambda: R.grid_chi2_reference(*args), 1)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    print(f"{'grid_chi2: 5500 points x 25 x 11':40s} {tk:10.4f} {tr:11.4f} {tr / tk:7.1f}")
    x = rng.normal(0, 10, (112, 1032)).astype(np.float32)
    segs = [x[:, 99:400], x[:, 399:700], x[:, 699:1000]]
    srt = np.stack([np.sort(s, axis=1) for s in segs])
    use = np.ones(112, np.uint8)
    tk, _ = best_of(lambda: segment_biweights(srt, np.array([301] * 3, np.int64), use, 3), 3)
    tr, _ = best_of(lambda: R.segment_biweights_reference(segs, use.astype(bool), 3), 1)
    print(f"{'segment_biweights: one amp':40s} {tk:10.4f} {tr:11.4f} {tr / tk:7.1f}")


def exposure(n_ifus: int, root: Path) -> None:
    from hetred.fullsky.run import FullskyUnit, run_fullsky
    from hetred.fullsky.settings import FullskySettings
    from hetred.layout import Layout
    from hetred.sim.focalplane import choose_slots
    from hetred.sim.fullsky_exposure import simulate_fiber_exposure, write_exposure, write_tarlist

    lay = Layout(root / "raw", root / "red")
    t0 = time.perf_counter()
    ex = simulate_fiber_exposure(choose_slots(None, n_ifus), seed=11, night="20180110", obs=7, exp=1)
    write_exposure(lay, ex)
    write_tarlist(lay, [ex])
    print(f"\nexposure of {n_ifus} IFUs ({len(ex.amps)} amps): simulated and written in {time.perf_counter() - t0:.0f} s "
          "(not timed)")
    del ex
    from hetred.lists.tarlist import month_entries
    entries = month_entries(lay, "201801")
    u = FullskyUnit("20180110", 7, 1)
    rss0 = _rss_mb()
    for label, st in (("hetred (2 passes, inside, smooth, Newton)", FullskySettings(qa=False)),
                      ("profile karl (vred3 exactly)", FullskySettings.from_config({"profile": "karl", "qa": False}))):
        w, c = time.perf_counter(), time.process_time()
        out = run_fullsky(lay, u, st, entries=entries)
        w, c = time.perf_counter() - w, time.process_time() - c
        print(f"  run_fullsky, {label:36s} wall {w:6.1f} s  CPU {c:6.1f} s  (target <= 60 s: ratio {c / 60:.2f}); "
              f"{out.counts['reduced']} amps reduced")
    print(f"  peak RSS {_rss_mb():.0f} MB (before the units {rss0:.0f} MB)")


def _resmap_sim(root: str, nshots: int) -> None:
    """In a fresh process: simulate the month's multi files of one camera amp (not timed)."""
    from hetred.layout import Layout
    from hetred.sim.multi_month import Camera, simulate_multi_month

    lay = Layout(Path(root) / "raw", Path(root) / "red")
    simulate_multi_month(lay, "201801", [Camera(320, 53, "020", "LL")], nshots, seed=2)


def _resmap_child(root: str) -> None:
    """In another fresh process (its peak RSS is resmap's alone): one resmap unit; prints JSON."""
    from hetred.layout import Layout
    from hetred.resmap.run import ResmapUnit, run_resmap
    from hetred.resmap.settings import ResmapSettings

    lay = Layout(Path(root) / "raw", Path(root) / "red")
    rss0 = _rss_mb()
    w, c = time.perf_counter(), time.process_time()
    out = run_resmap(lay, ResmapUnit("201801", 320, "LL"), ResmapSettings(qa=False))
    print(json.dumps({"files": out.counts["files"], "wall": time.perf_counter() - w, "cpu": time.process_time() - c,
                      "rss_before": rss0, "rss": _rss_mb()}))


def resmap(root: Path) -> None:
    print("\nresmap, one camera amp (fresh process each; files simulated first, not timed)")
    env = {**os.environ, "PYTHONPATH": SRC}
    for nshots in (12, 17, 34, 67):     # 3 files per shot; at least min_files = 30
        d = root / f"resmap{nshots}"
        r = subprocess.run([sys.executable, __file__, "--resmap-sim", str(d), str(nshots)], capture_output=True,
                           text=True, check=False, env=env)
        if not r.returncode:
            r = subprocess.run([sys.executable, __file__, "--resmap-child", str(d)], capture_output=True,
                               text=True, check=False, env=env)
        if r.returncode:
            print(r.stderr[-2000:])
            continue
        j = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"  {j['files']:4d} files: wall {j['wall']:5.1f} s  CPU {j['cpu']:5.1f} s (target <= 20 s at 100: "
              f"ratio {j['cpu'] / 20:.2f});  peak RSS {j['rss']:.0f} MB (after the imports {j['rss_before']:.0f} MB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ifus", type=int, default=78)
    ap.add_argument("--skip-kernels", action="store_true")
    ap.add_argument("--skip-exposure", action="store_true")
    ap.add_argument("--skip-resmap", action="store_true")
    ap.add_argument("--resmap-sim", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--resmap-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.resmap_sim:
        _resmap_sim(args.resmap_sim[0], int(args.resmap_sim[1]))
        return 0
    if args.resmap_child:
        _resmap_child(args.resmap_child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_fullsky_") as tmp:
        if not args.skip_kernels:
            kernels()
        if not args.skip_exposure:
            exposure(args.ifus, Path(tmp) / "exposure")
        if not args.skip_resmap:
            resmap(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
