"""The blend flag of hetred throughput: a neighbour's light inside the star's fit disc."""
from __future__ import annotations

import numpy as np

from hetred.moffat import disc_fraction as moffat_disc_fraction
from hetred.throughput.shot import StarResult, flag_blends

FWHM, BETA, R = 1.8, 3.9, 4.0


def _moffat_a2() -> float:
    return (FWHM / (2.0 * np.sqrt(2.0 ** (1.0 / BETA) - 1.0))) ** 2


def test_disc_fraction_centred_is_the_enclosed_light():
    exact = 1.0 - (1.0 + R**2 / _moffat_a2()) ** (1.0 - BETA)
    assert abs(moffat_disc_fraction(np.zeros(1), R, FWHM, BETA)[0] - exact) < 1e-3


def test_disc_fraction_off_centre_matches_a_brute_force_sum():
    a2 = _moffat_a2()
    step = 0.02
    g = np.arange(-R, R + step / 2, step)
    x, y = np.meshgrid(g, g)
    inside = np.hypot(x, y) <= R
    for d in (2.0, 3.85, 5.26, 8.0):
        dens = (BETA - 1.0) / (np.pi * a2) * (1.0 + ((x - d) ** 2 + y**2) / a2) ** -BETA
        brute = float(dens[inside].sum() * step**2)
        got = float(moffat_disc_fraction(np.array([d]), R, FWHM, BETA)[0])
        assert abs(got - brute) < 2e-3 + 0.01 * brute, (d, got, brute)


def _catalog(rows):
    cat = np.zeros(len(rows), dtype=[("id", "U19"), ("ra", "f8"), ("dec", "f8"), ("g", "f8")])
    for k, (sid, dx, g) in enumerate(rows):
        cat[k] = (sid, 150.0 + dx / 3600.0, 2.0, g)
    return cat


def test_a_brighter_neighbour_5_arcsec_away_flags_the_faint_star():
    # demo seed 1: a g 20.4 star with a g 18.9 neighbour 5.3" away was fitted 0.28" off and its
    # calibrated flux 6 % high; the neighbour's surface density at the star's centre says 1.6 %
    # of its light, the fibers of its 4" disc see 33 %
    cat = _catalog([("faint", 0.0, 20.4), ("bright", 5.26, 18.87)])
    stars = [StarResult(str(c["id"]), float(c["ra"]), float(c["dec"]), np.array([np.nan, c["g"], np.nan, np.nan,
                                                                                 np.nan])) for c in cat]
    flag_blends(stars, cat, FWHM, R, 0.02, BETA)
    assert stars[0].reason.startswith("blended") and "bright" in stars[0].reason
    assert not stars[1].reason                   # the faint one adds < 2 % to the bright one


def test_an_isolated_star_is_kept():
    cat = _catalog([("a", 0.0, 19.0), ("b", 30.0, 17.0)])
    stars = [StarResult(str(c["id"]), float(c["ra"]), float(c["dec"]), np.array([np.nan, c["g"], np.nan, np.nan,
                                                                                 np.nan])) for c in cat]
    flag_blends(stars, cat, FWHM, R, 0.02, BETA)
    assert not stars[0].reason and not stars[1].reason
