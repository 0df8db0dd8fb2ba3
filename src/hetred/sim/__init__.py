"""The raw-data simulator: realistic raw VIRUS nights with a separate truth tree.

``hetred simulate`` (and :func:`simulate_archive` for ``hetred demo`` and test fixtures) writes,
through the layout table, a raw archive in the real TACC layout (one tar per observation,
``RAW/YYYYMMDD/virus/virus{obs:07d}.tar`` holding ``virus{obs:07d}/exp{NN}/virus/{stamp}_{slot}{amp}_{type}.fits``
for types zro, drk, flt, cmp (``hg`` and ``cd-a``), twi and sci) and, in a SEPARATE root, the
truth every stage can be checked against.

Modules (docs/simulator.md documents every physics and truth item with its source):

* :mod:`~hetred.sim.seeds`: random streams keyed by (seed, night, obs, exp, ifuslot, amp);
* :mod:`~hetred.sim.almanac`, :mod:`~hetred.sim.plan`: realistic times, the night's observations;
* :mod:`~hetred.sim.focalplane`: up to 78 IFU slots with SPECID/IFUID/CONTID;
* :mod:`~hetred.sim.detector`: bias, gain, noise, dark, defects, cosmic rays, digitisation;
* :mod:`~hetred.sim.optics`: traces, fiber profile, halo, wavelength, throughput;
* :mod:`~hetred.sim.spectra`: lamps, Sun, night sky, throughput curve, photon conversion;
* :mod:`~hetred.sim.sky`, :mod:`~hetred.sim.photometry`: the astronomical scene of a shot;
* :mod:`~hetred.sim.skyvar`: the sky differing between amps (level, wavelength, continuum fibers);
  :mod:`~hetred.sim.fullsky_exposure`: one exposure at the level of the extracted fibers;
* :mod:`~hetred.sim.frame`: one amp frame; :mod:`~hetred.sim.header`: the real header template;
* :mod:`~hetred.sim.archive`, :mod:`~hetred.sim.truth`, :mod:`~hetred.sim.presets`: planning,
  streaming tar writing, truth files, and the demo/month/full presets.

The reduction never imports this package.
"""
from __future__ import annotations

from hetred.sim.archive import ArchivePlan, SimSummary, check_roots, plan_archive, simulate_archive
from hetred.sim.plan import FrameCounts
from hetred.sim.skyvar import SkyVariation

__all__ = ["ArchivePlan", "FrameCounts", "SimSummary", "SkyVariation", "check_roots", "plan_archive",
           "simulate_archive"]
