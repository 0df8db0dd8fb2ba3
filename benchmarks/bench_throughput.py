"""Benchmark of ``hetred throughput`` and ``hetred calfib`` (issue 13).

1. Kernels (hetred._ext.psfkern) against their NumPy references on the same inputs, best of N:
   the Moffat fiber table (the full 201 x 401 grid of the stage), the chi^2 of a 9 x 9 raster
   and of the 100-FWHM grid (60 fibers, the size of one star's fit), and the bilinear fractions
   of one star's spectrum (60 fibers x 1036 wavelengths).
2. One shot of 78 IFUs with ~150 stars, from files: a synthetic reduction tree in a temporary
   folder (78 IFUs x 4 amps x 3 exposures of rectified spectra with the stars drawn in by Karl's
   model plus noise, multi files holding wavelength and fiber_to_fiber, dithall.use of 104,832
   fibers, norm.dat, radec2_final.dat, shout.ifustars); ``run_throughput`` on one core, the
   first call (with the table built) and a second one. Target <= 60 s.
3. ``run_calfib`` of one IFU (its 3 exposures): seconds per IFU-exposure. Target <= 0.05 s.

Run: ``python benchmarks/bench_throughput.py [--repeat N] [--keep DIR]``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred._ext import psfkern
from hetred._ext import reference as R
from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)

AMPS = ("LL", "LU", "RL", "RU")
NIGHT, OBS = "20180110", 7
DVO = f"{NIGHT}v{OBS:03d}"


def kernels(repeat: int) -> None:
    from hetred.throughput import psf

    d = np.arange(0.0, psf.D_MAX + psf.D_STEP / 2, psf.D_STEP)
    fw = np.arange(psf.FWHM0, psf.FWHM_MAX + psf.FWHM_STEP / 2, psf.FWHM_STEP)
    xr, wr = np.polynomial.legendre.leggauss(psf.N_RAD)
    t_k, tab = best_of(lambda: psfkern.moffat_fiber_table(d, fw, 3.9, 0.75, xr, wr, psf.N_ANG), max(1, repeat // 5))
    t_r, ref = best_of(lambda: R.moffat_fiber_table_reference(d, fw, 3.9, 0.75, xr, wr, psf.N_ANG), 1)
    print(f"moffat_fiber_table {tab.shape}: Cython {t_k:7.3f} s   NumPy {t_r:7.3f} s   ratio {t_r / t_k:5.1f}x   "
          f"(max difference {np.abs(tab - ref).max():.1e})")
    t = psf.fiber_table()
    rng = np.random.default_rng(1)
    fx, fy = rng.uniform(-4, 4, 60), rng.uniform(-4, 4, 60)
    flux = 300 * t.fractions(np.hypot(fx - 0.2, fy), 1.8) + rng.normal(0, 3, 60)
    err = np.full(60, 3.0)
    k = (np.arange(9) - 4) * 0.2
    gx, gy = np.meshgrid(k, k, indexing="ij")
    for name, tx, ty, tf in (("raster 9x9", gx.ravel(), gy.ravel(), np.full(81, 1.8)),
                             ("FWHM grid 100", np.zeros(100), np.zeros(100), np.linspace(1.2, 3.2, 100))):
        a = [np.ascontiguousarray(v, dtype=np.float64) for v in (fx, fy, flux, err, tx, ty, tf)]
        t_k, out = best_of(lambda a=a: psfkern.chi2_trials(*a, t.table, t.d_step, t.fwhm0, t.fwhm_step), repeat)
        t_r, ref = best_of(lambda a=a: R.chi2_trials_reference(*a, t.table, t.d_step, t.fwhm0, t.fwhm_step),
                           repeat)
        print(f"chi2_trials {name:14s}: Cython {t_k * 1e6:8.1f} us   NumPy {t_r * 1e6:8.1f} us   "
              f"ratio {t_r / t_k:5.1f}x   (max rel. difference {np.max(np.abs(out[0] - ref[0]) / ref[0]):.1e})")
    dd = rng.uniform(0, 5, (60, 1036)).ravel()
    ff = rng.uniform(1.5, 2.0, (60, 1036)).ravel()
    t_k, out = best_of(lambda: psfkern.fiber_fractions(dd, ff, t.table, t.d_step, t.fwhm0, t.fwhm_step), repeat)
    t_r, ref = best_of(lambda: R.table_interp_reference(t.table, dd, ff, t.d_step, t.fwhm0, t.fwhm_step), repeat)
    print(f"fiber_fractions 60 x 1036      : Cython {t_k * 1e3:8.2f} ms   NumPy {t_r * 1e3:8.2f} ms   "
          f"ratio {t_r / t_k:5.1f}x")


def make_tree(root: Path, n_ifus: int = 78, stars_per_ifu: float = 2.0, seed: int = 3):
    """A synthetic reduction tree of one shot (module docstring, part 2)."""
    from hetred.io.atomic import write_text_atomic
    from hetred.layout import Layout
    from hetred.sim.focalplane import choose_slots
    from hetred.throughput.psf import fiber_table, fwhm_at
    from hetred.throughput.response import robin
    from hetred.throughput.sedfit import load_templates
    from hetred.virus.coords import DITHERS, fiber_radec
    from hetred.virus.ifu import amp_positions

    rng = np.random.default_rng(seed)
    L = Layout(root / "raw", root / "red")
    slots = [s for s in choose_slots(n_ifus=n_ifus) if s.is_ifu]
    ra0, dec0, pa = 180.0, 51.0, 40.0
    t = fiber_table(3.9)
    grid = 3470.0 + 2 * np.arange(1036)
    tmpl = load_templates()
    stars = []
    for s in slots:
        for _ in range(rng.poisson(stars_per_ifu)):
            xy = rng.uniform(-19, 19, 2)
            ra, dec = fiber_radec(s, xy[None, :], 1, ra0, dec0, pa)
            m = int(rng.integers(0, 1024))
            g = float(rng.uniform(16, 21))
            mags = tmpl.grid[m, 4:9] - tmpl.grid[m, 5] + g
            sed = np.interp(grid, np.arange(3540, 5541, 100.0), tmpl.binned[m] * 10 ** (-0.4 * (g - tmpl.grid[m, 0])))
            counts = sed * grid / (6.626e-27 * 3e18) * 360 * 5e5 * 2 * 1.4 * robin(grid)
            stars.append((s, xy, ra[0], dec[0], mags, counts))
    rows = []
    wave = 3490.0 + 2.03 * np.arange(1032)
    for exp in (1, 2, 3):
        for s in slots:
            for amp in AMPS:
                xy = amp_positions(amp, s.ifuid)
                ra, dec = fiber_radec(s, xy, exp, ra0, dec0, pa)
                dx, dy = DITHERS[exp - 1]
                rows += [f"{a:.7f} {b:.7f} ifu{s.ifuslot:03d} {x:.3f} {y:.3f} 0 0 "
                         f"multi_{s.specid:03d}_{s.ifuslot:03d}_{s.ifuid}_{amp}_{i + 1:03d}.ixy "
                         f"{NIGHT}T000000.0 exp{exp:02d}" for i, (a, b, x, y) in
                         enumerate(zip(ra, dec, xy[:, 0], xy[:, 1]))]
                counts = rng.normal(0, 10, (112, 1036)).astype(np.float32)
                for st, sxy, *_, spec in stars:
                    if st.ifuslot != s.ifuslot:
                        continue
                    d = np.hypot(xy[:, 0] + dx - sxy[0], xy[:, 1] + dy - sxy[1])
                    near = d < 6
                    counts[near] += (t.fractions(d[near, None], fwhm_at(grid, 1.8)[None, :]) * spec).astype(np.float32)
                keys = dict(night=NIGHT, obs=OBS, exp=exp, specid=s.specid, ifuslot=s.ifuslot, ifuid=s.ifuid, amp=amp)
                p = L.path("rectified", **keys)
                p.parent.mkdir(parents=True, exist_ok=True)
                h = fits.Header()
                h["STRUCTAZ"] = 30.0
                fits.HDUList([fits.PrimaryHDU(header=h), fits.ImageHDU(counts, name="calfib_counts"),
                              fits.ImageHDU(np.full((112, 1036), 10.0, np.float32), name="calfibe_counts")]
                             ).writeto(p, overwrite=True)
                fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.tile(wave, (112, 1)).astype(np.float32),
                                                               name="wavelength"),
                              fits.ImageHDU(np.ones((112, 1032), np.float32), name="fiber_to_fiber")]
                             ).writeto(L.path("multi", **keys), overwrite=True)
    write_text_atomic(L.path("dithall", datevobs=DVO),
                      "ra dec ifuslot XS YS xfplane yfplane multifits timestamp exposure\n" + "\n".join(rows) + "\n")
    write_text_atomic(L.path("astrom_norm", datevobs=DVO), "1.0 1.0 1.0\n")
    write_text_atomic(L.path("radec_final", datevobs=DVO), f"{ra0} {dec0} {pa}\n")
    write_text_atomic(L.path("astrom_catalog", datevobs=DVO), "".join(
        f"000001 {k + 1:019d} {ra:.6f} {dec:.6f} " + " ".join(f"{m:.2f}" for m in mags) + "\n"
        for k, (_, _, ra, dec, mags, _) in enumerate(stars)))
    return L, len(slots), len(stars)


def _cpu(fn) -> float:
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def shot(keep: str | None) -> None:
    import resource

    from hetred.calfib.run import CalfibUnit, run_calfib
    from hetred.sim.focalplane import choose_slots
    from hetred.throughput.run import ShotUnit, run_throughput

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(keep) if keep else Path(tmp)
        t0 = time.perf_counter()
        L, nifu, nstar = make_tree(root)
        print(f"synthetic shot: {nifu} IFUs, {nstar} stars, written in {time.perf_counter() - t0:.0f} s")
        for k in (1, 2):
            t0, c0 = time.perf_counter(), time.process_time()
            out = run_throughput(L, ShotUnit(DVO))
            print(f"run_throughput ({'first call, table built' if k == 1 else 'second call'}): "
                  f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU; "
                  f"{out.counts['used']} of {out.counts['stars']} stars used, FWHM {out.counts['fwhm']:.3f}")
        slot = next(s for s in choose_slots(n_ifus=78) if s.is_ifu).ifuslot
        u = CalfibUnit(DVO, slot)
        run_calfib(L, u)
        t_c, _ = best_of(lambda: run_calfib(L, u), 3)
        c_c = min(_cpu(lambda: run_calfib(L, u)) for _ in range(3))
        print(f"run_calfib, one IFU (3 exposures x 4 amps, read + calibrate + write): {t_c:.3f} s wall, "
              f"{c_c:.3f} s CPU = {t_c / 3:.3f} s wall, {c_c / 3:.3f} s CPU per IFU-exposure")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--keep", help="write the synthetic tree here and keep it")
    args = ap.parse_args()
    kernels(args.repeat)
    shot(args.keep)


if __name__ == "__main__":
    main()
