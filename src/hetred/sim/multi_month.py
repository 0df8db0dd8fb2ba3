"""A month of science multi files at the level of the four HDUs ``hetred resmap`` reads
(``sky_subtracted``, ``sky_spectrum``, ``error1d``, ``chi2``), with a known per-pixel truth, for
the resmap tests, demo and benchmark (100 files per amp without raw frames).

Per camera amp (specid, ifuslot, ifuid, amp) and exposure: the sky of each fiber and column is
the simulator's night sky on the amp's wavelengths (:func:`hetred.sim.skyvar.sky_rate` with the
optics of :func:`hetred.sim.optics.build_optics`, 360 s) times its fiber-to-fiber and a level
uniform in ``sky_range`` per exposure; the sky-subtracted counts are ``pattern x sky`` (the
fixed fractional systematic the residual map must find) plus Gaussian noise of sigma =
sqrt(sky + 5 x 3^2) x ``noise_scale``; ``error1d`` is sigma / ``noise_scale`` x ``error_scale``
(``error_scale`` != 1: errors wrong by that factor; ``noise_scale``: the noise is larger than
the errors say). ``chi2`` = ``chi_pattern`` x chi^2_5 / 5. A fraction ``masked`` of the pixels
are masked as sci masks them (0 in sky_subtracted and error1d, -666 in chi2 at a few).

Files are written where ``hetred sci`` writes multi files (layout key ``multi``, HDU 0 a 1 x 1
``processed``, then the four named HDUs), with the month's tarlist (one sci line per amp file)
and each night's fplane, so that ``hetred resmap MONTH`` finds them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from hetred.io.atomic import write_text_atomic
from hetred.io.fastfits import write_images
from hetred.layout import Layout, format_relative
from hetred.sim import seeds
from hetred.sim.optics import build_optics
from hetred.sim.skyvar import sky_rate
from hetred.virus.fplane import FplaneEntry, write_fplane

CHI_DOF = 5


@dataclass(frozen=True)
class Camera:
    specid: int
    ifuslot: int
    ifuid: str
    amp: str
    error_scale: float = 1.0      #: error1d / the true noise
    noise_scale: float = 1.0      #: the true noise / what the sky and read noise give


@dataclass
class MultiMonth:
    month: str
    files: dict[tuple[int, str], list[str]] = field(default_factory=dict)   #: (specid, amp) -> paths
    pattern: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)
    chi_pattern: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)


def default_pattern(rng: np.random.Generator, amplitude: float, shape=(112, 1032)) -> np.ndarray:
    """A fractional residual of the kind Karl's maps show: a smooth ripple along the columns that
    changes across the slit, a few bad columns, two fibers off (ftf errors); peak |value| =
    ``amplitude``."""
    f = np.linspace(-1, 1, shape[0])[:, None]
    x = np.arange(shape[1])[None, :]
    p = np.sin(2 * np.pi * x / rng.uniform(150, 300) + rng.uniform(0, 6)) * (0.5 + 0.5 * f)
    for c in rng.choice(shape[1] - 20, 4, replace=False) + 10:
        p[:, c:c + 2] -= 1.5
    for r in rng.choice(shape[0], 2, replace=False):
        p[r] += 1.0
    return (amplitude * p / np.max(np.abs(p))).astype(np.float32)


def simulate_multi_month(layout: Layout, month: str, cameras: list[Camera], nshots: int, seed: int = 0,
                         amplitude: float = 0.02, sky_range: tuple[float, float] = (0.8, 1.5),
                         masked: float = 0.003, chi_amplitude: float = 0.3) -> MultiMonth:
    """Write ``nshots`` shots x 3 exposures of every camera amp (module docstring); returns the truth."""
    out = MultiMonth(month)
    nights = [f"{month}{d:02d}" for d in range(1, 29)]
    lines = []
    slots = {}
    models = {}
    for cam in cameras:
        r = seeds.rng(seed, seeds.SKYVAR, ifuslot=cam.ifuslot, amp=cam.amp)
        key = (cam.specid, cam.amp)
        out.pattern[key] = default_pattern(r, amplitude)
        out.chi_pattern[key] = (1.0 + chi_amplitude * default_pattern(r, 1.0)).astype(np.float32)
        o = build_optics(seed, nights[0], cam.ifuslot, cam.amp, pixels=False)
        models[key] = (sky_rate(o) * 360.0 * o.ftf).astype(np.float32)
        slots[cam.ifuslot] = FplaneEntry(cam.ifuslot, 0.0, 0.0, cam.specid, 1, cam.ifuid)
        out.files[key] = []
    start = datetime(int(month[:4]), int(month[4:]), 1, 5, 0, 0)
    for k in range(nshots):
        night = nights[k % len(nights)]
        obs = 1 + k // len(nights)
        for exp in (1, 2, 3):
            rl = seeds.rng(seed, seeds.SKYVAR, night=night, obs=obs, exp=exp)
            level = float(rl.uniform(*sky_range))
            stamp = (start + timedelta(days=k % len(nights), seconds=400 * exp)).strftime("%Y%m%dT%H%M%S") + ".0"
            for cam in cameras:
                key = (cam.specid, cam.amp)
                rn = seeds.rng(seed, seeds.SKYVAR_NOISE, night=night, obs=obs, exp=exp, ifuslot=cam.ifuslot,
                               amp=cam.amp)
                sky = models[key] * level
                sigma = np.sqrt(np.maximum(sky, 0) + CHI_DOF * 9.0)
                skysub = out.pattern[key] * sky + rn.normal(0.0, 1.0, sky.shape) * sigma * cam.noise_scale
                err = sigma * cam.error_scale
                chi = out.chi_pattern[key] * rn.chisquare(CHI_DOF, sky.shape) / CHI_DOF
                bad = rn.random(sky.shape) < masked
                skysub[bad] = 0.0
                err[bad] = 0.0
                chi[bad & (rn.random(sky.shape) < 0.3)] = -666.0
                path = layout.path("multi", night=night, obs=obs, exp=exp, specid=cam.specid, ifuslot=cam.ifuslot,
                                   ifuid=cam.ifuid, amp=cam.amp)
                write_images(path, [(np.zeros((1, 1), np.float32), [("EXTNAME", "processed", "")]),
                                    (skysub.astype(np.float32), [("EXTNAME", "sky_subtracted", "")]),
                                    (sky.astype(np.float32), [("EXTNAME", "sky_spectrum", "")]),
                                    (err.astype(np.float32), [("EXTNAME", "error1d", "")]),
                                    (chi.astype(np.float32), [("EXTNAME", "chi2", "")])])
                out.files[key].append(str(path))
                lines.append(format_relative("tarlist_line", night=night, obs=obs, exp=exp, stamp=stamp,
                                             ifuslot=cam.ifuslot, amp=cam.amp, kind="sci"))
    write_text_atomic(layout.path("tarlist", month=month), "\n".join(lines) + "\n")
    for night in sorted({nights[k % len(nights)] for k in range(nshots)}):
        write_fplane(layout.path("fplane", night=night), list(slots.values()))
    return out
