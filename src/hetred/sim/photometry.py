"""SDSS filter curves, crude stellar SEDs and AB synthetic photometry for the simulator.

Everything here is in f_lambda (erg/s/cm^2/Å) on wavelength grids in Å (air/vacuum is
irrelevant at this precision). Part of the instrument simulator: reduction code never imports it.

Filters
    u g r i z are the SDSS 2.5 m reference responses through 1.3 airmass (Doi et al. 2010,
    AJ 139, 1628, Table 4: filter x atmosphere columns), peak-normalised and reduced to a few
    tabulated knots (linear interpolation, zero outside). The knots reproduce the full tables to
    < 0.001 mag for blackbodies of 3500-12000 K. The g knots also agree with Karl Gebhardt's
    ``sdssg.dat`` (the g curve of the throughput stage) to < 0.02 mag for the simulator's stars
    (tested when the file is present).

SEDs
    A blackbody of Teff (4000-9000 K) times a Balmer jump (hot stars) or a 4000 Å break (cool
    stars) and Gaussian absorption lines (Hα, Hβ, Hγ, Hδ, Hε/H8, Ca II H&K, G band, Mg b, Na D)
    whose equivalent widths follow Teff. Enough to look stellar; not a stellar library.

AB magnitudes
    m = -2.5 log10( ∫ F_ν S dν/ν / ∫ 3631 Jy S dν/ν ), evaluated in wavelength as
    ∫ F_λ λ S dλ / c  over  3631e-23 ∫ S dλ/λ.
"""
from __future__ import annotations

import numpy as np

C_AA = 2.99792458e18          #: speed of light, Å/s
HC_K = 1.438777e8             #: h c / k_B, Å K
AB_ZERO_FNU = 3631e-23        #: erg/s/cm^2/Hz
BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z")

#: SED grid of the simulator: 2900-11200 Å in 2 Å steps (covers u to z)
SED_WAVE = np.arange(2900.0, 11200.0 + 1.0, 2.0)

# (wavelength Å, relative response) knots, Doi et al. (2010) Table 4 at airmass 1.3.
_KNOTS: dict[str, str] = {
    "u": "2939 0 3080 0.01 3140 0.063 3360 0.555 3500 0.793 3680 0.995 3720 1 3780 0.899 "
         "3820 0.741 3880 0.364 3920 0.179 3960 0.074 3980 0.035 4020 0.011 4160 0.001 4180 0",
    "g": "3619 0 3800 0.01 3860 0.056 3940 0.201 4020 0.411 4120 0.584 4180 0.651 4320 0.749 "
         "4640 0.899 5120 1 5220 0.976 5260 0.915 5280 0.846 5300 0.727 5360 0.297 5380 0.191 "
         "5400 0.125 5440 0.057 5480 0.029 5621 0",
    "r": "5379 0 5440 0.018 5480 0.077 5500 0.129 5580 0.441 5640 0.64 5680 0.745 5720 0.804 "
         "5840 0.887 5960 0.926 6380 1 6580 0.996 6640 0.954 6680 0.862 6700 0.779 6720 0.679 "
         "6780 0.318 6800 0.224 6840 0.1 6860 0.065 6920 0.023 7041 0",
    "i": "6599 0 6720 0.017 6780 0.076 6820 0.173 6880 0.375 6940 0.65 6980 0.804 7040 0.929 "
         "7140 1 7180 0.921 7220 0.955 7300 0.935 7340 0.958 7560 0.885 7580 0.861 7600 0.522 "
         "7620 0.58 7640 0.546 7680 0.831 7820 0.767 8100 0.693 8120 0.663 8160 0.555 8180 0.478 "
         "8240 0.175 8260 0.116 8300 0.043 8381 0",
    "z": "7719 0 7980 0.017 8080 0.085 8120 0.14 8180 0.265 8360 0.768 8420 0.875 8480 0.938 "
         "8560 0.985 8660 1 8780 0.948 8900 0.843 8980 0.67 9060 0.64 9260 0.511 9340 0.323 "
         "9360 0.304 9420 0.318 9460 0.283 9540 0.266 9700 0.288 9980 0.152 10360 0.036 11141 0",
}


def filter_curve(band: str) -> tuple[np.ndarray, np.ndarray]:
    """Knots of an SDSS band: (wavelength Å, relative response), each shape (n,)."""
    if band not in _KNOTS:
        raise ValueError(f"unknown band {band!r}; expected one of {BANDS}")
    k = np.array(_KNOTS[band].split(), dtype=float).reshape(-1, 2)
    return k[:, 0], k[:, 1]


def filter_response(band: str, wave: np.ndarray) -> np.ndarray:
    """Response of ``band`` at ``wave`` (Å, any shape); linear between knots, 0 outside."""
    w, s = filter_curve(band)
    return np.interp(wave, w, s, left=0.0, right=0.0)


def ab_mag_curve(wave: np.ndarray, flam: np.ndarray, fwave: np.ndarray,
                 fresp: np.ndarray) -> np.ndarray:
    """AB magnitude(s) of f_lambda spectra through a response curve.

    wave: (n,) Å, increasing; flam: (n,) or (m, n) erg/s/cm^2/Å; (fwave, fresp) the curve
    (linear interpolation, zero outside). Returns a float or (m,) array; NaN for no flux.
    """
    wave = np.asarray(wave, dtype=float)
    s = np.interp(wave, fwave, fresp, left=0.0, right=0.0)
    num = np.trapezoid(np.asarray(flam, dtype=float) * wave * s, wave, axis=-1) / C_AA
    den = AB_ZERO_FNU * np.trapezoid(s / wave, wave)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(num / den)


def ab_mag(wave: np.ndarray, flam: np.ndarray, band: str) -> np.ndarray:
    """AB magnitude(s) in SDSS ``band`` of f_lambda spectra (see :func:`ab_mag_curve`)."""
    fw, fs = filter_curve(band)
    return ab_mag_curve(wave, flam, fw, fs)


def blackbody_flam(wave: np.ndarray, teff: float) -> np.ndarray:
    """Planck B_lambda shape (arbitrary scale) at ``wave`` Å for ``teff`` K."""
    w = np.asarray(wave, dtype=float)
    return (w / 5000.0) ** -5 / np.expm1(HC_K / (w * teff))


def _ramp(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


# (centre Å, sigma Å, kind) of the absorption features
_LINES: tuple[tuple[float, float, str], ...] = (
    (6562.8, 6.0, "balmer"), (4861.3, 6.0, "balmer"), (4340.5, 6.0, "balmer"),
    (4101.7, 6.0, "balmer"), (3970.1, 5.0, "balmer"), (3889.1, 5.0, "balmer"),
    (3933.7, 5.0, "cahk"), (3968.5, 5.0, "cahk"),
    (4304.0, 6.0, "metal"), (5175.0, 4.0, "metal"), (5892.9, 3.0, "metal"),
)


def _line_ew(kind: str, teff: float) -> float:
    """Equivalent width (Å) of a feature kind at ``teff`` K (crude Teff trends)."""
    if kind == "balmer":       # strongest in A stars
        return 2.0 + 12.0 * np.exp(-(((teff - 9000.0) / 2200.0) ** 2))
    if kind == "cahk":         # strong in G/K stars
        return 0.5 + 9.0 * float(_ramp((7000.0 - teff) / 3000.0))
    return 0.3 + 4.0 * float(_ramp((6500.0 - teff) / 2500.0))


def stellar_sed_shape(wave: np.ndarray, teff: float) -> np.ndarray:
    """Unnormalised stellar-like f_lambda at ``wave`` Å (shape of ``wave``) for ``teff`` K.

    Blackbody x break x absorption lines. The break is a Balmer jump at 3646 Å of depth
    0.5 * ramp((Teff-6000)/3000) (hot stars) and a 4000 Å break of depth
    0.55 * ramp((6500-Teff)/2500) (cool stars), both smoothed by a logistic of ~40 Å.
    """
    w = np.asarray(wave, dtype=float)
    f = blackbody_flam(w, teff)
    d_balmer = 0.5 * float(_ramp((teff - 6000.0) / 3000.0))
    d_4000 = 0.55 * float(_ramp((6500.0 - teff) / 2500.0))
    f = f * (1.0 - d_balmer / (1.0 + np.exp((w - 3660.0) / 25.0)))
    f = f * (1.0 - d_4000 / (1.0 + np.exp((w - 3960.0) / 40.0)))
    absorb = np.ones_like(w)
    for centre, sigma, kind in _LINES:
        depth = min(_line_ew(kind, teff) / (sigma * np.sqrt(2.0 * np.pi)), 0.9)
        absorb *= 1.0 - depth * np.exp(-0.5 * ((w - centre) / sigma) ** 2)
    return f * absorb


def stellar_sed(teff: float, gmag: float, wave: np.ndarray = SED_WAVE) -> np.ndarray:
    """Stellar-like f_lambda (erg/s/cm^2/Å) at ``wave`` Å, scaled to AB magnitude ``gmag`` in g.

    ``wave`` must cover the g band (3620-5620 Å) for the normalisation.
    """
    shape = stellar_sed_shape(wave, teff)
    g0 = float(ab_mag(wave, shape, "g"))
    return shape * 10.0 ** (-0.4 * (gmag - g0))


def synthetic_mags(wave: np.ndarray, flam: np.ndarray) -> dict[str, np.ndarray]:
    """{band: AB mag} for u g r i z of spectra flam ((n,) or (m, n)) on ``wave`` Å."""
    return {b: ab_mag(wave, flam, b) for b in BANDS}
