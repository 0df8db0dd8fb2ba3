"""Benchmark of ``hetred sci``: one amp-exposure from its raw tar member to the written multi file.

Needs a reduced demo tree (raw archive + bias, background, twilight and pixel-flat libraries),
e.g. ``hetred demo DIR`` or the steps of docs/stages/sci.md; the products of this benchmark go
to a temporary reduction root whose ``lib_calib`` points at DIR's.

For every science amp-exposure of the month, single core (BLAS threads 1), timed:

* ``read``: the tar opened and the member parsed (:func:`hetred.io.raw.read_member_from`);
* ``reduce`` .. ``write_multi``: the stages of :func:`hetred.sci.run.reduce_amp` (its own
  timings), with the rectified spectra and the CoFeS image switched off (they are separate
  products; their times are printed apart);
* ``total`` = read + calibration lookup + reduce_amp (wall), ``total_cpu`` the process CPU
  time of the same (the two agree on an idle core; on a shared one the CPU time is the better
  measure of the code).

The first amp of each (slot, amp) reads its calibration files (cold), later exposures find them
in the process cache (warm); both medians are printed. Target (issue 6): median total <= 0.3 s.
Then one whole unit (4 amps, all products) runs in a fresh process and its peak memory
(``ru_maxrss``) is printed; target < 500 MB.

First (no DIR needed) the science kernels against their references on one synthetic amp:
``scikern.profile_weights`` vs the twical kernel ``extract.profile_weights`` and the NumPy
reference, ``scikern.shift_moments`` and ``scikern.window_rms`` vs their NumPy references.

Run: ``python benchmarks/bench_sci.py [DIR] [--repeat N]`` (DIR with raw/ and red/).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

TARGET_S = 0.3
TARGET_MB = 500.0


def _layouts(root: Path, tmp: Path):
    from hetred.layout import Layout

    red = tmp / "red"
    red.mkdir(parents=True, exist_ok=True)
    for name in ("lib_calib", "tarlists"):
        (red / name).symlink_to((root / "red" / name).resolve())
    return Layout(root / "raw", red)


def bench_amps(root: Path, repeat: int) -> list[dict]:
    from hetred.io.raw import open_tar, read_member_from
    from hetred.sci.calibration import find_calibration
    from hetred.sci.run import read_pixmask_boxes, reduce_amp, sci_units
    from hetred.sci.settings import SciSettings

    settings = SciSettings(rectified=False, cofes=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sci_") as td:
        lay = _layouts(root, Path(td))
        month = sorted(p.name[:6] for p in (root / "red" / "tarlists").glob("*tarlist"))[0]
        boxes = read_pixmask_boxes(lay)
        seen: set = set()
        for rep in range(repeat):
            for unit in sci_units(lay, month=month):
                tar = lay.path("raw_tar", night=unit.night, obs=unit.obs)
                for e in unit.entries:
                    c0 = time.process_time()
                    t0 = time.perf_counter()
                    with open_tar(tar) as tf:
                        raw = read_member_from(tf, tar, e.member)
                    t1 = time.perf_counter()
                    cal = find_calibration(lay, unit.night, raw.specid, raw.ifuslot, raw.ifuid, raw.amp)
                    t2 = time.perf_counter()
                    res = reduce_amp(lay, unit, raw, cal, settings, boxes.get(f"{raw.ifuslot:03d}{raw.amp}", ()))
                    t3 = time.perf_counter()
                    c3 = time.process_time()
                    key = (raw.ifuslot, raw.amp)
                    rows.append({"amp": f"{unit.unit}_{raw.amp}", "cold": key not in seen and rep == 0,
                                 "read": t1 - t0, "calibration": t2 - t1, **res.counts["timings"],
                                 **{f"{k}_cpu": v for k, v in res.counts["cpu"].items()},
                                 "total": t3 - t0, "total_cpu": c3 - c0})
                    seen.add(key)
    return rows


def unit_memory(root: Path) -> tuple[float, float]:
    """(peak RSS MB, seconds) of one whole unit with every product, in a fresh process."""
    code = f"""
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_sci import _layouts
from hetred.sci.run import run_sci, sci_units
root = Path({str(root)!r})
with tempfile.TemporaryDirectory(prefix="bench_sci_mem_") as td:
    lay = _layouts(root, Path(td))
    month = sorted(p.name[:6] for p in (root / "red" / "tarlists").glob("*tarlist"))[0]
    unit = sci_units(lay, month=month)[0]
    t = time.perf_counter()
    run_sci(lay, unit)
    dt = time.perf_counter() - t
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, dt]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mb, sec = json.loads(out.stdout.strip().splitlines()[-1])
    return mb, sec


def bench_kernels() -> None:
    """Ratios of the science kernels to their references on one synthetic amp (best of 5)."""
    import numpy as np

    from hetred._ext import extract as K
    from hetred._ext import reference as R
    from hetred._ext import scikern as SK
    from hetred.fibers.profile import FiberProfile
    from hetred.fibers.trace import slot_index
    from timing import best_of  # benchmarks/timing.py

    rng = np.random.default_rng(3)
    trace = (20.0 + 8.72 * slot_index()[:, None] + 0.002 * np.arange(1032)[None, :]).astype(np.float32)
    prof = FiberProfile.analytic()
    img = rng.normal(30.0, 6.0, (1032, 1032)).astype(np.float32)
    tr64 = trace.astype(np.float64)
    j, fc = prof.knot_fractions(1032)
    vals = np.ascontiguousarray(prof.values)
    args = (vals, j, fc, float(prof.offsets[0]), prof.step, tr64, 7)
    t_sk, _ = best_of(lambda: SK.profile_weights(*args), 5)
    t_k, _ = best_of(lambda: K.profile_weights(*args, False), 5)
    t_r, _ = best_of(lambda: R.profile_weights_reference(vals, prof.columns, *args[3:]), 2)
    print(f"profile weights (112 x 1032 x 15): scikern {1e3 * t_sk:.1f} ms, twical kernel {1e3 * t_k:.1f} ms "
          f"({t_k / t_sk:.1f}x), NumPy reference {1e3 * t_r:.0f} ms ({t_r / t_sk:.0f}x)")
    t_sk, _ = best_of(lambda: SK.shift_moments(img, trace, 0.1, 3.5), 5)
    t_r, _ = best_of(lambda: R.shift_moments_reference(img, trace, 0.1, 3.5), 2)
    print(f"trace-shift moments (one pass): scikern {1e3 * t_sk:.1f} ms, NumPy reference {1e3 * t_r:.0f} ms "
          f"({t_r / t_sk:.0f}x)")
    t_sk, _ = best_of(lambda: SK.window_rms(img, trace, 4), 5)
    t_r, _ = best_of(lambda: R.window_rms_reference(img, trace, 4), 2)
    print(f"window rms (+-4 rows): scikern {1e3 * t_sk:.1f} ms, NumPy reference {1e3 * t_r:.0f} ms ({t_r / t_sk:.0f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, nargs="?", help="demo tree with raw/ and red/ (libraries made)")
    ap.add_argument("--repeat", type=int, default=1, help="passes over all amp-exposures")
    args = ap.parse_args()
    bench_kernels()
    if args.root is None:
        return
    if not (args.root / "red" / "lib_calib").is_dir():
        sys.exit(f"{args.root}/red/lib_calib missing: make the libraries first (e.g. hetred demo {args.root})")
    rows = bench_amps(args.root, args.repeat)
    stages = [k for k in rows[0] if k not in ("amp", "cold")]
    print(f"hetred sci, one amp-exposure raw member -> multi file, single core ({len(rows)} amp-exposures)")
    print(f"{'stage':>14} {'median s':>9} {'min s':>8} {'max s':>8}")
    for k in stages:
        v = [r[k] for r in rows]
        print(f"{k:>14} {statistics.median(v):9.4f} {min(v):8.4f} {max(v):8.4f}")
    tot = [r["total"] for r in rows]
    warm = [r["total"] for r in rows if not r["cold"]] or tot
    cold = [r["total"] for r in rows if r["cold"]] or tot
    med = statistics.median(tot)
    cpu = statistics.median(r["total_cpu"] for r in rows)
    print(f"median total {med:.3f} s wall, {cpu:.3f} s CPU (wall > CPU when the machine is shared)")
    print(f"median total {med:.3f} s (cold {statistics.median(cold):.3f} s, warm {statistics.median(warm):.3f} s); "
          f"target {TARGET_S} s: ratio {med / TARGET_S:.2f} ({'met' if med <= TARGET_S else 'NOT met'})")
    mb, sec = unit_memory(args.root)
    print(f"one unit (4 amps, all products) in a fresh process: {sec:.2f} s, peak RSS {mb:.0f} MB; "
          f"target {TARGET_MB:.0f} MB: ratio {mb / TARGET_MB:.2f} ({'met' if mb < TARGET_MB else 'NOT met'})")


if __name__ == "__main__":
    main()
