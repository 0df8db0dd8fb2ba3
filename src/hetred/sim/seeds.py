"""Deterministic random streams keyed by what they describe.

Every random number of the simulator comes from a generator built by :func:`rng` from a
:class:`numpy.random.SeedSequence` whose entropy is the user's seed and whose spawn key is
``(purpose, night, obs, exp, ifuslot, amp)``. The same seed therefore gives the same frame
whatever else is simulated, in whatever order (one amp, one night, or a whole month).

Fields that do not apply are 0: a detector property that persists from night to night is keyed
by ``(purpose, 0, 0, 0, ifuslot, amp)``; a per-night property by ``(purpose, night, 0, 0, ifuslot,
amp)``; one frame's noise by ``(purpose, night, obs, exp, ifuslot, amp)``.
"""
from __future__ import annotations

import numpy as np

_AMP_CODE = {"": 0, "LL": 1, "LU": 2, "RL": 3, "RU": 4}

#: purposes (the first element of the spawn key); never renumber them, it changes every frame
DETECTOR = 1        #: persistent detector properties (gain, bias structure, traps, pixel flat)
NIGHT_AMP = 2       #: per-night properties of an amp (bias offset, trace shift)
OPTICS = 3          #: persistent optics of an IFU (traces, profile, wavelength, throughput)
FRAME = 4           #: noise of one frame (Poisson, read noise, cosmic rays)
EXPOSURE = 5        #: exposure-wide values (bias jitter, lamp and twilight levels)
SCENE = 6           #: the sky scene of a shot
NIGHT = 7           #: night-wide values (weather, pointings)
FOCALPLANE = 8      #: synthetic focal-plane values of unknown slots
FAMILY = 9          #: the optics family's draws of an amp (hetred.sim.families), persistent
SKYVAR = 10         #: the sky's per-amp differences of a science exposure (hetred.sim.skyvar)
SKYVAR_NOISE = 11   #: noise of the fiber-level exposures (hetred.sim.fullsky_exposure)


def key(purpose: int, night: str | int = 0, obs: int = 0, exp: int = 0, ifuslot: int = 0,
        amp: str = "") -> tuple[int, ...]:
    """The spawn key of a stream."""
    return (int(purpose), int(night), int(obs), int(exp), int(ifuslot), _AMP_CODE[amp])


def rng(seed: int, purpose: int, night: str | int = 0, obs: int = 0, exp: int = 0,
        ifuslot: int = 0, amp: str = "") -> np.random.Generator:
    """A generator for one (purpose, night, obs, exp, ifuslot, amp); independent of call order."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=key(purpose, night, obs, exp, ifuslot, amp))
    return np.random.Generator(np.random.PCG64(ss))
