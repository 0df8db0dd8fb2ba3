"""Families of smooth dependence along the slit for the simulated instrument (docs/simulator.md).

The optics of an amp (:mod:`hetred.sim.optics`) vary from fiber to fiber: the wavelength zero
point, the dispersion (a tilt of the solution along the columns) and its curvature, the trace
curvature and tilt, the fiber profile's width and shape, the line spread. The ``classic`` family
is the simulator's original model (low-order polynomials across the slit, drawn from the optics
stream so that its bytes never change). The other families draw each of those quantities as a
smooth function g(s) of the slit coordinate s in [-1, 1] of one form:

* ``poly``: a Legendre series of degree 4-6 whose high orders are as large as the low ones;
* ``edge``: a gentle low-order trend plus exponential or tanh terms that steepen toward one or
  both slit edges over 2-8 fibers (what off-axis optics do to the outermost fibers);
* ``piecewise``: continuous, piecewise-quadratic with 1-3 kinks (a change of slope) at random
  places along the slit;
* ``sine``: a sinusoid of 0.75-2.5 periods along the slit plus a linear trend.

Every g is scaled to max |g| = 1 over the fibers; the amplitudes are the classic model's, so a
family changes the *form* of the variation, not its size. ``mixed`` picks one of the four per
amp from the seed. The family and its draws are written to the truth (header ``OPTFAM``, the
night JSON).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import legendre

NFIB = 112
FAMILIES = ("classic", "poly", "edge", "piecewise", "sine")
CHOICES = FAMILIES + ("mixed",)
SMOOTH_FAMILIES = FAMILIES[1:]


def check_family(name: str) -> str:
    """The family name, or ValueError naming the choices."""
    key = str(name).strip().lower()
    if key not in CHOICES:
        raise ValueError(f"optics family {name!r}: choose {', '.join(CHOICES)}")
    return key


def resolve(name: str, rng: np.random.Generator) -> str:
    """The family of one amp: ``mixed`` draws one of the smooth families from ``rng``."""
    key = check_family(name)
    return str(rng.choice(SMOOTH_FAMILIES)) if key == "mixed" else key


def _normalise(g: np.ndarray) -> np.ndarray:
    m = np.abs(g).max()
    return g / m if m > 0 else g


def _poly(rng: np.random.Generator, s: np.ndarray) -> tuple[np.ndarray, dict]:
    deg = int(rng.integers(4, 7))
    coef = rng.normal(0.0, 1.0, deg + 1)
    coef[0] *= 0.3
    return legendre.legval(s, coef), {"degree": deg, "coef": np.round(coef, 4).tolist()}


def _edge(rng: np.random.Generator, s: np.ndarray) -> tuple[np.ndarray, dict]:
    base = rng.uniform(-0.5, 0.5) * s + rng.uniform(-0.3, 0.3) * (s ** 2 - 1 / 3)
    sides = ([-1], [1], [-1, 1])[int(rng.integers(0, 3))]
    form = str(rng.choice(["exp", "tanh"]))
    terms = []
    g = base
    for side in sides:
        width = rng.uniform(2.0, 8.0) * 2.0 / (NFIB - 1)      # 2-8 fibers in s units
        amp = rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        d = (1.0 - side * s) / width                           # 0 at that edge, in widths
        if form == "exp":
            g = g + amp * np.exp(-d)
        else:                                                  # tanh step centred 1.5 widths in
            g = g + amp * 0.5 * (1.0 - np.tanh(d - 1.5))
        terms.append({"side": side, "width_fibers": round(float(width * (NFIB - 1) / 2.0), 3),
                      "amp": round(float(amp), 4)})
    return g, {"form": form, "edges": terms}


def _piecewise(rng: np.random.Generator, s: np.ndarray) -> tuple[np.ndarray, dict]:
    nk = int(rng.integers(1, 4))
    knots = np.sort(rng.uniform(-0.8, 0.8, nk))
    slopes = rng.normal(0.0, 1.5, nk)
    a = rng.normal(0.0, 0.5, 3)
    g = a[0] + a[1] * s + a[2] * s ** 2
    for k, b in zip(knots, slopes):
        g = g + b * np.maximum(s - k, 0.0)
    return g, {"knots": np.round(knots, 4).tolist(), "slope_changes": np.round(slopes, 4).tolist()}


def _sine(rng: np.random.Generator, s: np.ndarray) -> tuple[np.ndarray, dict]:
    periods = rng.uniform(0.75, 2.5)
    phase = rng.uniform(0.0, 2 * np.pi)
    trend = rng.uniform(-0.6, 0.6)
    g = np.sin(np.pi * periods * s + phase) + trend * s
    return g, {"periods": round(float(periods), 4), "phase": round(float(phase), 4),
               "trend": round(float(trend), 4)}


_DRAW = {"poly": _poly, "edge": _edge, "piecewise": _piecewise, "sine": _sine}


def slit_function(family: str, rng: np.random.Generator, s: np.ndarray | None = None
                  ) -> tuple[np.ndarray, dict]:
    """(g (nfib,) with max |g| = 1, its draws) of one smooth family along the slit s in [-1, 1]."""
    s = np.linspace(-1.0, 1.0, NFIB) if s is None else np.asarray(s, float)
    g, pars = _DRAW[family](rng, s)
    return _normalise(g), pars


@dataclass
class SlitModel:
    """The fiber-dependent optics of one amp under one family (all (112,) unless noted).

    Wavelength: ``zero`` (A, offset of the solution), ``stretch`` (relative dispersion, 1 +
    a few 1e-3, about the centre column), ``dc2`` (A/px^2 added to the quadratic term, about the
    centre column). Trace: ``curv`` (px, amplitude of x^2 - 1/3), ``tilt`` (px, of x~), ``ydist``
    (px, distortion of the fiber positions along the slit). Fields (112, 1032) in about [-1, 1]:
    ``sigma_field``, ``power_field``, ``fwhm_field`` (profile width, shape and LSF).
    """

    family: str
    zero: np.ndarray
    stretch: np.ndarray
    dc2: np.ndarray
    curv: np.ndarray
    tilt: np.ndarray
    ydist: np.ndarray
    sigma_field: np.ndarray
    power_field: np.ndarray
    fwhm_field: np.ndarray
    params: dict = field(default_factory=dict)


def _field(family: str, rng: np.random.Generator, ncols: int) -> tuple[np.ndarray, dict]:
    """A smooth (112, ncols) field in [-1, 1]: g_a(fiber) + g_b(fiber) x + c x^2, normalised."""
    x = np.linspace(-1.0, 1.0, ncols)[None, :]
    ga, pa = slit_function(family, rng)
    gb, pb = slit_function(family, rng)
    c = rng.normal(0.0, 0.3)
    f = ga[:, None] + 0.5 * gb[:, None] * x + c * (x ** 2 - 1 / 3)
    return f / max(1.0, np.abs(f).max()), {"a": pa, "b": pb, "x2": round(float(c), 4)}


def slit_model(family: str, rng: np.random.Generator, ncols: int = 1032) -> SlitModel:
    """Draw every fiber-dependent optics quantity of one amp from one smooth family."""
    if family not in _DRAW:
        raise ValueError(f"slit_model: {family!r} is not a smooth family ({', '.join(_DRAW)})")
    pars: dict = {}

    def g(name: str) -> np.ndarray:
        v, p = slit_function(family, rng)
        pars[name] = p
        return v

    zero_amp, zero_const = rng.uniform(1.5, 4.5), rng.uniform(-1.5, 1.5)
    str_amp, str_const = rng.uniform(0.001, 0.003), rng.uniform(-0.002, 0.002)
    dc2_amp = rng.uniform(2e-7, 1e-6)
    curv_const, curv_amp = rng.uniform(-3, 3), rng.uniform(0.5, 2.0)
    tilt_const, tilt_amp = rng.uniform(-1, 1), rng.uniform(0.1, 0.5)
    ydist_amp = rng.uniform(0.2, 1.0)
    zero = zero_const + zero_amp * g("zero")
    stretch = 1.0 + str_const + str_amp * g("stretch")
    dc2 = dc2_amp * g("dc2")
    curv = curv_const + curv_amp * g("curv")
    tilt = tilt_const + tilt_amp * g("tilt")
    ydist = ydist_amp * g("ydist")
    sig, pars["sigma"] = _field(family, rng, ncols)
    powf, pars["power"] = _field(family, rng, ncols)
    fw, pars["fwhm"] = _field(family, rng, ncols)
    pars["amplitudes"] = {k: float(v) for k, v in (
        ("zero_A", zero_amp), ("zero_const_A", zero_const), ("stretch", str_amp),
        ("stretch_const", str_const), ("dc2", dc2_amp), ("curv_px", curv_amp),
        ("curv_const_px", curv_const), ("tilt_px", tilt_amp), ("tilt_const_px", tilt_const),
        ("ydist_px", ydist_amp))}
    return SlitModel(family, zero, stretch, dc2, curv, tilt, ydist, sig, powf, fw, pars)
