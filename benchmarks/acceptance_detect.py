"""Issue 15's acceptance numbers for ``hetred detect``: a shot simulated at the level of the multi
files (hetred.sim.detect_shot) with 300 faint line emitters in each of 3 IFUs and 2 blank IFUs,
searched and searched negated with each profile; completeness against the ideal matched filter
(per wavelength bin), purity from the negated search, the blank IFUs, and the measurement of the
lines with ideal S/N > 10 (hetred.demo.detect_eval). The slow test
tests/stages/test_detect_acceptance.py asserts them.

Run: ``OMP_NUM_THREADS=1 python benchmarks/acceptance_detect.py [--seed 15] [--beta 3.5] [--noise 5]``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--profiles", default="hdr2.1,fixed")
    ap.add_argument("--beta", type=float, default=None, help="moffat_beta (default Karl's 3.9; the simulator's is 3.5)")
    ap.add_argument("--noise", type=int, default=0,
                    help="also pool the MC pulls over this many noise realisations of the scene (0: do not)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from hetred.demo.detect_eval import pooled_pulls, run_acceptance, simulate_acceptance

    with tempfile.TemporaryDirectory(prefix="acc_detect_") as tmp:
        lay, shot = simulate_acceptance(Path(tmp) / "shot", seed=args.seed)
        print(f"shot {shot.datevobs}: FWHM {shot.scene.fwhm:.2f}\", {len(shot.lines)} lines in IFUs "
              f"{shot.line_slots}, blank {shot.blank_slots}")
        for prof in args.profiles.split(","):
            for sub in ("detect", "markers"):
                shutil.rmtree(lay.red / sub, ignore_errors=True)
            extra = {} if args.beta is None else {"moffat_beta": args.beta}
            print(run_acceptance(lay, shot, prof, extra).report())
            if args.noise:
                p = pooled_pulls(Path(tmp) / f"pulls_{prof}", args.seed, prof, tuple(range(args.noise)), extra)
                print(f"  pooled over {args.noise} noise realisations ({p.n} lines, ideal S/N > 10): "
                      f"(flux - true)/MC error std {p.std:.3f}, robust {p.robust:.3f}; per realisation "
                      + " ".join(f"{v:.3f}" for v in p.per_realisation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
