"""A shot in the layout at the level ``hetred astrom`` reads, without running the earlier stages:
CoFeS images of :func:`hetred.sim.cofes_shot.simulate_cofes_shot`, minimal multi files (primary
header with the pointing, HDU ``ifupos``), the star catalogue and fplane in the raw tree, and the
month's tarlist."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry
from hetred.sim.cofes_shot import CofesShot, simulate_cofes_shot
from hetred.sim.focalplane import slot_entry
from hetred.virus.ifu import amp_positions

NIGHT, OBS = "20180110", 7
AMPS = ("LL", "LU", "RL", "RU")


@dataclass
class LayoutShot:
    layout: Layout
    datevobs: str
    shot: CofesShot


def make_layout_shot(root: Path, slots: tuple[int, ...], seed: int = 1, exposures: int = 3,
                     obs: int = OBS) -> LayoutShot:
    """Shot ``NIGHTv{obs}`` under ``root`` (raw/, red/); a second call with another ``obs`` adds a
    shot to the same tarlist."""
    root = Path(root)
    entries = [slot_entry(s) for s in slots]
    sim = root / f"sim{obs:03d}"
    shot = simulate_cofes_shot(sim, entries, seed=seed, night=NIGHT, obs=obs)
    lay = Layout(root / "raw", root / "red")
    ra_h, dec, pa = (float(v) for v in (sim / "radec.orig").read_text().split())
    lines = []
    for exp in range(1, exposures + 1):
        stamp = shot.stamps[exp - 1]
        for e in entries:
            src = sim / f"exp{exp:02d}" / "virus" / f"CoFeS{stamp}_{e.ifuslot:03d}_sci.fits"
            dst = lay.path("cofes", night=NIGHT, obs=obs, exp=exp, stamp=stamp, ifuslot=e.ifuslot)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
            for amp in AMPS:
                h = fits.Header()
                h["TRAJRA"], h["TRAJDEC"], h["PARANGLE"], h["STRUCTAZ"] = ra_h, dec, pa, 200.0
                m = lay.path("multi", night=NIGHT, obs=obs, exp=exp, specid=e.specid, ifuslot=e.ifuslot,
                             ifuid=e.ifuid, amp=amp)
                fits.HDUList([fits.PrimaryHDU(np.zeros((1, 1), np.float32), h),
                              fits.ImageHDU(amp_positions(amp, e.ifuid).astype(np.float32), name="ifupos")]
                             ).writeto(m, overwrite=True)
                lines.append(TarEntry(NIGHT, obs, exp, stamp, e.ifuslot, amp, "sci").line)
    dvo = f"{NIGHT}v{obs:03d}"
    cat = lay.path("star_catalog", datevobs=dvo)
    cat.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sim / "shout.ifustars", cat)
    fp = lay.path("fplane_archive", night=NIGHT)
    fp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sim / "fplane.txt", fp)
    tl = lay.path("tarlist", month=NIGHT[:6])
    tl.parent.mkdir(parents=True, exist_ok=True)
    old = tl.read_text() if tl.exists() else ""
    tl.write_text(old + "\n".join(lines) + "\n")
    return LayoutShot(lay, dvo, shot)
