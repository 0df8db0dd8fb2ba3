"""Karl's model of a star in the VIRUS fibers (karlspipe hdr2.1/progs/fitradecsp.f ``fit2d``,
``getchifib2``, ``adcor``; shared/reference/astrom_throughput.md §3.1).

* PSF: circular Moffat with FWHM F and beta = 3.9, normalised to unit flux,
  ``I(r) = 4 (2^(1/b) - 1)(b - 1) / (pi F^2) [1 + 4 (2^(1/b) - 1)(r/F)^2]^-b``;
* a fiber collects the integral of I over its 0.75"-radius disk (Karl averages a 10 x 10 lattice
  inside the disk; here a Gauss-Legendre x midpoint quadrature, tabulated on a grid of distances
  and FWHMs by the Cython kernel :func:`hetred._ext.psfkern.moffat_fiber_table` and read
  bilinearly -- error < 1e-4 of a centred fiber's light);
* the FWHM scales with wavelength as F(lambda) = F (lambda / 4550)^-0.2;
* differential atmospheric refraction (ADR): the source at wavelength lambda is displaced by an
  offset interpolated linearly in a table at 3500, 4000, 4500, 5000, 5500 Å (constant beyond)
  along a fixed direction on the sky (:class:`AdrModel`): Karl's (-0.74, -0.40, 0.00, +0.08,
  +0.20") or hetdex_api's (-0.08" at 4500 Å; hetred's default, docs/stages/throughput.md).

Shapes: positions and offsets are arcsec on the local tangent plane, x towards east (+RA), y
towards north.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hetred._ext import psfkern

BETA = 3.9                      #: Moffat index of fitradecsp
FIBER_RADIUS = 0.75             #: arcsec
FWHM_REF_WAVE = 4550.0          #: Å, wavelength of the quoted FWHM
FWHM_POWER = -0.2               #: F(lambda) = F (lambda / 4550)^-0.2 (fitradecsp adcor)
#: fitradecsp fit2d: ADR offsets (arcsec) at these wavelengths (Å)
KARL_ADR_WAVE = (3500.0, 4000.0, 4500.0, 5000.0, 5500.0)
KARL_ADR_OFFSET = (-0.74, -0.40, 0.0, 0.08, 0.20)
#: hetdex_api Extract.get_ADR (and Remedy): the same but -0.08" at 4500 Å -- steps that shrink
#: towards the red as the refractive index of air does (Karl's 0.40" then 0.08" do not)
API_ADR_OFFSET = (-0.74, -0.40, -0.08, 0.08, 0.20)

#: table grids: distance 0..8" and FWHM 0.6..4.6" in 0.02" steps
D_STEP, D_MAX = 0.02, 8.0
FWHM0, FWHM_STEP, FWHM_MAX = 0.6, 0.02, 4.6
N_RAD, N_ANG = 12, 24           #: quadrature nodes over the fiber disk


@dataclass(frozen=True)
class FiberTable:
    """Moffat flux fraction of a fiber, ``table[j, i]`` at FWHM ``fwhm0 + j fwhm_step`` and
    fiber-source distance ``i d_step`` (arcsec); 0 beyond ``d_max``."""

    table: np.ndarray
    beta: float
    rfib: float
    d_step: float = D_STEP
    fwhm0: float = FWHM0
    fwhm_step: float = FWHM_STEP

    @property
    def d_max(self) -> float:
        return (self.table.shape[1] - 1) * self.d_step

    def fractions(self, d: np.ndarray, fwhm: np.ndarray | float) -> np.ndarray:
        """Fraction of a unit source in fibers at distances ``d`` (any shape) for FWHM ``fwhm``
        (scalar or the shape of ``d``); FWHM outside the table is clamped to its ends."""
        d, f = np.broadcast_arrays(np.asarray(d, dtype=np.float64), np.asarray(fwhm, dtype=np.float64))
        out = psfkern.fiber_fractions(np.ascontiguousarray(d.ravel()), np.ascontiguousarray(f.ravel()),
                                      self.table, self.d_step, self.fwhm0, self.fwhm_step)
        return out.reshape(d.shape)

    def chi2(self, fx: np.ndarray, fy: np.ndarray, flux: np.ndarray, err: np.ndarray,
             tx: np.ndarray, ty: np.ndarray, tfwhm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(chi2, amplitude) of trials (tx, ty, tfwhm), each (m,): see
        :func:`hetred._ext.psfkern.chi2_trials` (fibers with err <= 0 left out)."""
        c = [np.ascontiguousarray(np.asarray(a, dtype=np.float64).ravel()) for a in
             (fx, fy, flux, err, tx, ty, tfwhm)]
        return psfkern.chi2_trials(*c, self.table, self.d_step, self.fwhm0, self.fwhm_step)


def fiber_table(beta: float = BETA, rfib: float = FIBER_RADIUS) -> FiberTable:
    """The tabulated model (computed once per process and beta, ~0.5 s)."""
    return _fiber_table(float(beta), float(rfib))


@lru_cache(maxsize=4)
def _fiber_table(beta: float, rfib: float) -> FiberTable:
    d = np.arange(0.0, D_MAX + D_STEP / 2, D_STEP)
    fw = np.arange(FWHM0, FWHM_MAX + FWHM_STEP / 2, FWHM_STEP)
    xr, wr = np.polynomial.legendre.leggauss(N_RAD)
    tab = psfkern.moffat_fiber_table(d, fw, float(beta), float(rfib), xr, wr, N_ANG)
    tab.setflags(write=False)
    return FiberTable(tab, float(beta), float(rfib))


def fwhm_at(wave: np.ndarray | float, fwhm: float) -> np.ndarray:
    """FWHM (arcsec) at ``wave`` Å of a PSF whose FWHM at 4550 Å is ``fwhm``."""
    return fwhm * (np.asarray(wave, dtype=np.float64) / FWHM_REF_WAVE) ** FWHM_POWER


@dataclass(frozen=True)
class AdrModel:
    """Where the light of wavelength lambda of a source lands relative to its position.

    ``offset(lambda)`` (arcsec) is interpolated linearly in (wave, offset), constant outside,
    less its value at ``ref_wave`` (the wavelength the source's position refers to);
    the displacement is ``sign * offset(lambda) * (east, north)`` per exposure, ``direction``
    (n_exp, 2) unit vectors. Two conventions (docs/stages/throughput.md):

    * ``parangle`` (default, hetdex_api ``get_ADR``/``build_weights`` and Remedy): along the IFU
      x axis on the sky, i.e. the position angle PA of ``radec2_final.dat``, sign +1;
    * ``structaz`` (Karl's fitradecsp ``adcor``): along (sin az, cos az) of the multi header's
      STRUCTAZ, sign -1 (Karl shifts the fiber by +offset).
    """

    wave: tuple[float, ...] = KARL_ADR_WAVE
    values: tuple[float, ...] = KARL_ADR_OFFSET
    direction: np.ndarray = field(default_factory=lambda: np.zeros((3, 2)))
    sign: float = 1.0
    ref_wave: float | None = None     #: the table minus its value here (None: the table as it is)

    def offset(self, wave: np.ndarray | float) -> np.ndarray:
        """ADR offset (arcsec) at ``wave`` Å (any shape), 0 at ``ref_wave``."""
        o = np.interp(np.asarray(wave, dtype=np.float64), self.wave, self.values)
        return o if self.ref_wave is None else o - np.interp(self.ref_wave, self.wave, self.values)

    def shift(self, wave: np.ndarray, exp_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dx, dy) arcsec of the source's light at ``wave`` (n_w,) for fibers of exposures
        ``exp_index`` (n_fib,) 0-based: arrays (n_fib, n_w)."""
        o = self.sign * self.offset(wave)[None, :]
        dirs = np.asarray(self.direction, dtype=np.float64)[np.asarray(exp_index, dtype=int)]
        return dirs[:, 0:1] * o, dirs[:, 1:2] * o


def direction_from_angle(angle_deg: float) -> tuple[float, float]:
    """Unit vector (east, north) of a position angle measured from north through east."""
    a = np.radians(angle_deg)
    return float(np.sin(a)), float(np.cos(a))
