"""Benchmark of the raw-data simulator: per-frame time by type, amp-model time, the demo preset.

Run:  /work/venv/bin/python benchmarks/bench_simulate.py [--repeat N] [--no-demo]

Prints the mean time to render and encode one amp frame (FITS bytes, as written into the tar)
for each raw type, the time to build one amp's night constants (detector + optics), and the
wall time and peak traced memory of ``--scale demo`` written to a temporary directory.
Targets (issue "hetred simulate"): < 0.3 s per frame, bias frames much less; demo < 90 s.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from hetred.layout import Layout
from hetred.sim import almanac, seeds, sky
from hetred.sim.archive import simulate_archive
from hetred.sim.focalplane import slot_entry
from hetred.sim.frame import AmpModel, exposure_context
from hetred.sim.plan import FrameCounts, plan_night

NIGHT = "20180110"


def per_frame(repeat: int) -> None:
    plan = plan_night(NIGHT, FrameCounts(zro=1, drk=1, flt=1, hg=1, cd=1, twi=1, shots=1))
    slot = slot_entry(53)
    t = time.perf_counter()
    models = [AmpModel(0, NIGHT, slot, amp, almanac.night_start(NIGHT)) for amp in ("LL", "LU", "RL", "RU")]
    print(f"amp model (detector + optics, first includes the profile table): "
          f"{(time.perf_counter() - t) / 4:.3f} s per amp")
    t = time.perf_counter()
    AmpModel(0, NIGHT, slot_entry(63), "LL", almanac.night_start(NIGHT))
    print(f"amp model (warm): {time.perf_counter() - t:.3f} s")
    shot = plan.shots[0]
    scene = sky.make_shot_scene(seeds.rng(0, seeds.SCENE, night=NIGHT, obs=shot.obs), NIGHT, shot.obs,
                                [slot], ra0=shot.ra0, dec0=shot.dec0)
    print(f"{'type':10s} {'s/frame':>8s} {'min':>8s}")
    for o in plan.observations:
        e = o.exposures[0]
        ctx = exposure_context(0, e, o, scene if o.kind == "sci" else None)
        times = []
        for i in range(repeat):
            m = models[i % 4]
            m.sky_pixels = None if i < 4 else m.sky_pixels
            t = time.perf_counter()
            m.fits(ctx)
            times.append(time.perf_counter() - t)
        label = f"{e.kind}:{e.object}" if e.kind == "cmp" else e.kind
        print(f"{label:10s} {statistics.mean(times):8.3f} {min(times):8.3f}")


def source_flux() -> None:
    """The fibers' source light of one amp and exposure (4 IFUs, 6 stars and 10 lines per IFU):
    best of 3 after warming the PSF table (was a wall-clock test, < 0.05 s)."""
    slots = [slot_entry(s) for s in (15, 22, 23, 24)]
    scene = sky.make_shot_scene(np.random.default_rng(8), "20190105", 3, slots,
                                n_stars_per_ifu=6.0, n_lines_per_ifu=10.0)
    wave = np.tile(np.linspace(3470.0, 5540.0, 1032, dtype=np.float32), (112, 1))
    sky.fiber_source_flux(scene, slots[1], "LL", 1, wave)
    best = min(_seconds(lambda: sky.fiber_source_flux(scene, slots[1], "LL", 2, wave)) for _ in range(3))
    print(f"fiber_source_flux (one amp, one exposure): {best:.4f} s")


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lay = Layout(Path(tmp) / "raw", Path(tmp) / "red", Path(tmp) / "truth")
        tracemalloc.start()
        t = time.perf_counter()
        s = simulate_archive(lay, scale="demo")
        wall = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"demo preset: {s.n_members} frames, {s.bytes_written / 2**20:.0f} MB in {wall:.1f} s "
              f"(amp models {s.model_seconds:.1f} s); peak traced memory {peak / 2**20:.0f} MB")
        for k, v in s.mean_frame_seconds().items():
            print(f"  {k}: {v:.3f} s/frame (incl. tar write)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--no-demo", action="store_true")
    args = ap.parse_args()
    per_frame(args.repeat)
    source_flux()
    if not args.no_demo:
        demo()


if __name__ == "__main__":
    main()
