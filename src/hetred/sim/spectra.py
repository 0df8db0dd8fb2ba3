"""Spectra and the spectral format: wavelength solutions, line spread, lamps, Sun, night sky,
throughput, and the conversion of a flux into electrons per pixel.

Sources of the numbers (see docs/simulator.md):

* wavelength: lambda(x) = 3492 + 2.025 x - 6.46e-5 x^2 A (x = oriented column 0..1031), a quadratic
  fit to old Panacea's line/pixel list (hetdex_numbers.md §3), plus per-fiber offsets of a few A;
* LSF: Gaussian, FWHM 5-6 A (R ~ 800; Remedy's 5.6-A detection kernel);
* arc lines: Remedy Lines_list/virus_lines.dat and old Panacea (Hg 3650/3654, 4077.8); the
  lamp assignment of each line is standard lamp physics;
* throughput: knots of Remedy CALS/throughput.txt (end-to-end, 0.025 at 3470 A, 0.161 at 4640 A,
  0.128 at 5540 A); collecting area 5e5 cm^2 (vdrp photometry.py);
* night sky: dark-time continuum of ~5.2e-18 erg/s/cm^2/A/arcsec^2 at 4540 A (B ~ 22.7 mag/arcsec^2),
  which gives ~120 electrons per fiber per column in 360 s (hetdex_numbers.md §13), with
  light-pollution Hg lines and [N I] 5198/5200;
* Sun (twilight): a 5800-K black body with the strong Fraunhofer lines as Gaussian absorptions, or
  a two-column file (e.g. Karl's sun_use.dat).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.special import erf

NCOLS = 1032
XCEN = 515.5
WAVE_POLY = (3492.0, 2.025, -6.46e-5)      #: lambda(x) = c0 + c1 x + c2 x^2 (A)
AREA_CM2 = 5.0e5                            #: collecting area (vdrp get_g_band_throughput)
HC_ERG_A = 6.62607015e-27 * 2.99792458e18   #: h c in erg * A
FIBER_AREA_ARCSEC2 = np.pi * 0.75 ** 2      #: 1.5-arcsec fiber core
LSF_FWHM = 5.5                              #: nominal line spread FWHM (A)
FINE = np.arange(3300.0, 5750.0, 0.2)       #: fine grid for continuum spectra (A)

#: knots of Remedy CALS/throughput.txt (end-to-end incl. atmosphere, telescope, VIRUS)
THROUGHPUT_KNOTS: tuple[tuple[float, float], ...] = (
    (3470, 0.02458), (3500, 0.03132), (3600, 0.05380), (3700, 0.07538), (3800, 0.09500),
    (3900, 0.11211), (4000, 0.12656), (4100, 0.13817), (4200, 0.14709), (4300, 0.15352),
    (4400, 0.15769), (4500, 0.16000), (4640, 0.16100), (4800, 0.15954), (5000, 0.15572),
    (5200, 0.14939), (5400, 0.13740), (5540, 0.12767),
)

#: arc lamp lines: wavelength (A, air), relative detected strength (brightest = 1)
ARC_LINES: dict[str, tuple[tuple[float, float], ...]] = {
    "hg": ((3650.153, 0.16), (3654.836, 0.05), (4046.565, 0.55), (4077.837, 0.05),
           (4358.335, 0.70), (4916.068, 0.04), (5460.750, 1.00)),
    "cd-a": ((3610.508, 0.25), (4662.352, 0.04), (4678.149, 0.60), (4799.912, 0.75),
             (5085.822, 1.00), (5154.660, 0.03)),
}

#: Fraunhofer lines for the default solar spectrum: (centre A, depth, Gaussian sigma A)
FRAUNHOFER: tuple[tuple[float, float, float], ...] = (
    (3933.66, 0.85, 6.0), (3968.47, 0.80, 5.5), (4101.74, 0.45, 3.0), (4307.90, 0.35, 4.0),
    (4340.47, 0.45, 3.0), (4383.55, 0.35, 1.5), (4861.33, 0.45, 3.0), (5167.32, 0.40, 1.2),
    (5172.68, 0.45, 1.2), (5183.60, 0.45, 1.2), (5269.54, 0.35, 1.2),
)

SKY_CONT_4540 = 5.2e-18     #: erg/s/cm^2/A/arcsec^2 at 4540 A, dark time
#: night-sky emission lines: (A, equivalent width against the continuum in A)
SKY_LINES: tuple[tuple[float, float], ...] = (
    (4046.56, 2.0), (4358.34, 6.0), (5197.90, 1.2), (5200.26, 0.8), (5460.75, 8.0),
)


@lru_cache(maxsize=1)
def _throughput_interp() -> PchipInterpolator:
    k = np.array(THROUGHPUT_KNOTS, dtype=float)
    return PchipInterpolator(k[:, 0], k[:, 1], extrapolate=True)


def throughput(wave: np.ndarray) -> np.ndarray:
    """End-to-end throughput at ``wave`` (A); held flat outside 3470-5540 A."""
    w = np.clip(np.asarray(wave, dtype=float), 3470.0, 5540.0)
    return _throughput_interp()(w)


def wavelength(coeffs: np.ndarray, x: np.ndarray | float) -> np.ndarray:
    """lambda = c0 + c1 x + c2 x^2 for coefficient rows (n, 3) at columns x."""
    c = np.asarray(coeffs)
    x = np.asarray(x, dtype=float)
    return c[..., 0:1] + c[..., 1:2] * x + c[..., 2:3] * x * x


def dispersion(coeffs: np.ndarray, x: np.ndarray | float) -> np.ndarray:
    """d lambda / dx (A per pixel)."""
    c = np.asarray(coeffs)
    return c[..., 1:2] + 2.0 * c[..., 2:3] * np.asarray(x, dtype=float)


def column_of(coeffs: np.ndarray, lam: float) -> np.ndarray:
    """Column x where each fiber's solution reaches ``lam`` (solves the quadratic)."""
    c = np.asarray(coeffs, dtype=float)
    a, b, c0 = c[:, 2], c[:, 1], c[:, 0] - lam
    disc = np.sqrt(b * b - 4 * a * c0)
    return -2.0 * c0 / (b + disc)      # the root near x = 0 (stable for any sign of a)


def lines_per_pixel(coeffs: np.ndarray, fwhm: np.ndarray, lines, halfwidth: int = 12) -> np.ndarray:
    """Fraction of each line's light falling in each pixel, summed over lines with weights.

    coeffs: (n, 3) wavelength solutions; fwhm: (n, ncols) LSF FWHM (A); lines: iterable of
    (wavelength, weight). Returns (n, ncols): sum_L weight_L * integral of a unit Gaussian over
    the pixel's wavelength span [lambda(x-1/2), lambda(x+1/2)] (exact pixel integration).
    """
    n = coeffs.shape[0]
    out = np.zeros((n, NCOLS))
    rows = np.arange(n)[:, None]
    for lam, weight in lines:
        xc = column_of(coeffs, lam)
        if np.all((xc < -halfwidth) | (xc > NCOLS + halfwidth)):
            continue
        cols = np.floor(xc)[:, None].astype(int) + np.arange(-halfwidth, halfwidth + 1)[None, :]
        ok = (cols >= 0) & (cols < NCOLS)
        xcen = np.clip(np.round(xc), 0, NCOLS - 1).astype(int)
        sig = (fwhm[np.arange(n), xcen] / 2.3548200450309493)[:, None]   # the line's own width
        lo = wavelength(coeffs, cols - 0.5)
        hi = wavelength(coeffs, cols + 0.5)
        frac = 0.5 * (erf((hi - lam) / (np.sqrt(2) * sig)) - erf((lo - lam) / (np.sqrt(2) * sig)))
        np.add.at(out, (np.broadcast_to(rows, cols.shape)[ok], cols[ok]), weight * frac[ok])
    return out


def _convolve_fine(flux: np.ndarray, fwhm: float = LSF_FWHM) -> np.ndarray:
    step = FINE[1] - FINE[0]
    sig = fwhm / 2.3548200450309493 / step
    k = np.arange(-int(5 * sig) - 1, int(5 * sig) + 2)
    kern = np.exp(-0.5 * (k / sig) ** 2)
    kern /= kern.sum()
    pad = len(k) // 2
    padded = np.concatenate([np.full(pad, flux[0]), flux, np.full(pad, flux[-1])])
    return np.convolve(padded, kern, mode="valid")


def blackbody(wave: np.ndarray, temp: float) -> np.ndarray:
    """Planck B_lambda (arbitrary units) at ``wave`` A."""
    w = np.asarray(wave, dtype=float) * 1e-8
    return 1.0 / (w ** 5 * np.expm1(1.4387769 / (w * temp)))


@lru_cache(maxsize=4)
def solar_fine(path: str | None = None) -> np.ndarray:
    """Solar spectrum on :data:`FINE`, convolved to the nominal LSF, normalised to 1 at 4540 A.

    ``path``: a two-column text file (wavelength A, flux), e.g. Karl's sun_use.dat; otherwise a
    5800-K black body with the :data:`FRAUNHOFER` lines.
    """
    if path is not None:
        data = np.loadtxt(path, usecols=(0, 1))
        data = data[np.argsort(data[:, 0])]
        flux = np.interp(FINE, data[:, 0], data[:, 1])
    else:
        flux = blackbody(FINE, 5800.0)
        absorb = np.ones_like(FINE)
        for lam, depth, sig in FRAUNHOFER:
            absorb *= 1.0 - depth * np.exp(-0.5 * ((FINE - lam) / sig) ** 2)
        flux = flux * absorb
    conv = _convolve_fine(flux)
    return conv / np.interp(4540.0, FINE, conv)


@lru_cache(maxsize=1)
def sky_continuum_fine() -> np.ndarray:
    """Dark-sky continuum (erg/s/cm^2/A/arcsec^2) on :data:`FINE`: half a smooth power law, half
    a solar-like (zodiacal, scattered) spectrum, normalised to :data:`SKY_CONT_4540` at 4540 A."""
    shape = 0.5 * (FINE / 4540.0) ** 0.5 + 0.5 * solar_fine(None)
    return SKY_CONT_4540 * shape / np.interp(4540.0, FINE, shape)


def sky_line_fluxes() -> list[tuple[float, float]]:
    """Night-sky emission lines as (A, erg/s/cm^2/arcsec^2)."""
    cont = sky_continuum_fine()
    return [(lam, ew * float(np.interp(lam, FINE, cont))) for lam, ew in SKY_LINES]


@lru_cache(maxsize=1)
def lamp_flat_fine() -> np.ndarray:
    """Relative lamp-flat (LDLS through the FCU) spectrum as detected, peak 1: a smooth, broad
    continuum that falls to ~0.25 at 3500 A and ~0.6 at 5540 A."""
    shape = np.exp(-0.5 * ((FINE - 4450.0) / 850.0) ** 2) * (0.6 + 0.4 * np.tanh((FINE - 3600.0) / 250.0))
    return shape / shape.max()


def on_pixels(fine: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """A spectrum on :data:`FINE` evaluated at pixel wavelengths (any shape)."""
    return np.interp(wave, FINE, fine)


def electrons(flux: np.ndarray, wave: np.ndarray, dwave: np.ndarray, exptime: float) -> np.ndarray:
    """Electrons per pixel from a flux density (erg/s/cm^2/A) arriving above the atmosphere:
    flux * area * t * throughput(lambda) * (d lambda / dx) / (h c / lambda)."""
    return flux * (AREA_CM2 * exptime / HC_ERG_A) * throughput(wave) * dwave * wave
