"""The astronomical scene of a simulated HETDEX shot: pointing, seeing, sources, fiber fluxes.

A :class:`ShotScene` holds the true and header pointing, the Moffat seeing, per-exposure
transparency, field stars (models of the real stellar template library, :mod:`hetred.sim.stars`,
with SDSS u g r i z AB magnitudes and catalogue values with errors) and pure emission-line
sources. :func:`fiber_source_flux` turns it into the source flux density that
enters every fiber of one amp in one dithered exposure, above the atmosphere.

Conventions (see docs/simulator_sky.md):

* Fiber and source positions use the HETDEX tangent plane of :mod:`hetred.virus.coords` with
  the TRUE pointing and angoff 0; fibers are :func:`hetred.virus.ifu.amp_positions` (multi-file
  order, fiber swaps of the IFUID applied).
* PSF: Moffat I(r) ∝ (1 + (r/α)²)^-β, β = 3.5, FWHM = 2α sqrt(2^(1/β) - 1), unit total flux,
  integrated over the 1.5" diameter fiber (tabulated vs. fiber-source distance and FWHM); the
  FWHM scales with wavelength as (λ/4550 Å)^-0.2 (Kolmogorov seeing), ``scene.fwhm`` is the
  FWHM at 4550 Å.
* ADR (hetdex_api ``get_ADR``): a cubic through -0.74, -0.40, -0.08, +0.08, +0.20" at 3500,
  4000, 4500, 5000, 5500 Å; the source at wavelength λ sits at its catalogue IFU position plus
  ADR(λ)·(cos θ, sin θ) in IFU (x, y) arcsec, θ = ``scene.adr_angle`` (0: along IFU x).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

import hetred.moffat as moffat
from hetred.sim import stars as star_lib
from hetred.sim.photometry import BANDS, SED_WAVE, stellar_sed
from hetred.virus.coords import DITHERS, fiber_radec, radec_to_ifu
from hetred.virus.fplane import FplaneEntry
from hetred.virus.ids import multiframe
from hetred.virus.ifu import FIBER_DIAMETER, ROW_PITCH, X_PITCH, amp_positions, ifu_positions

MOFFAT_BETA = 3.5
FWHM_REF_WAVE = 4550.0     #: Å, wavelength of scene.fwhm; FWHM(λ) = fwhm (λ / 4550)^-0.2
FWHM_POWER = -0.2
FIBER_RADIUS = FIBER_DIAMETER / 2.0                            #: arcsec
FILL_FACTOR = np.pi * FIBER_RADIUS**2 / (X_PITCH * ROW_PITCH)  #: 0.3155, fiber area / IFU area
ADR_WAVE = np.array([3500.0, 4000.0, 4500.0, 5000.0, 5500.0])  #: Å
ADR_OFFSET = np.array([-0.74, -0.40, -0.08, 0.08, 0.20])       #: arcsec
ADR_POLY = np.polyfit(ADR_WAVE, ADR_OFFSET, 3)
STAR_REF_WAVE = 4700.0     #: Å, wavelength of the truth fiber fractions of stars
MAX_RADIUS = 8.0           #: arcsec, fibers farther than this from a source get nothing
IFU_HALF = 24.3            #: arcsec, half size of the fiber-covered IFU area (x and y)
AMPS = ("LU", "LL", "RL", "RU")

STAR_DTYPE = np.dtype([("id", "i4"), ("ra", "f8"), ("dec", "f8"), ("teff", "f8"),
                       ("u", "f8"), ("g", "f8"), ("r", "f8"), ("i", "f8"), ("z", "f8"),
                       ("ifuslot", "i4"), ("x_ifu", "f8"), ("y_ifu", "f8"), ("model", "i4"),
                       ("u_cat", "f8"), ("g_cat", "f8"), ("r_cat", "f8"), ("i_cat", "f8"),
                       ("z_cat", "f8")])
LINE_DTYPE = np.dtype([("id", "i4"), ("ra", "f8"), ("dec", "f8"), ("wave", "f8"),
                       ("flux", "f8"), ("sigma", "f8"), ("ifuslot", "i4"),
                       ("x_ifu", "f8"), ("y_ifu", "f8")])


@dataclass
class ShotScene:
    """The sky of one shot.

    ``stars`` (:data:`STAR_DTYPE`): ra, dec deg; teff K; u g r i z true AB mag; ifuslot and
    (x_ifu, y_ifu) arcsec where it was placed (exposure 1 frame); ``model`` the row of the
    template in the 1024-model grid (-1: a Planck-based SED); ``*_cat`` the catalogue
    magnitudes (true + catalogue errors). ``lines`` (:data:`LINE_DTYPE`):
    ra, dec; wave Å; flux erg/s/cm²; sigma Å (intrinsic Gaussian, no continuum).
    ``sed_flam`` (n_stars, len(sed_wave)) erg/s/cm²/Å is filled from teff and g when omitted.
    ``ebv``: E(B-V) of the shot's Galactic foreground (in the stars' SEDs and magnitudes).
    """

    night: str
    obs: int
    ra0: float                 #: true shot centre, deg
    dec0: float
    pa: float                  #: true parallactic angle, deg
    header_ra: float           #: what the raw headers say, deg
    header_dec: float
    header_pa: float
    fwhm: float                #: Moffat FWHM, arcsec
    transparency: np.ndarray   #: (3,) per exposure
    stars: np.ndarray
    lines: np.ndarray
    beta: float = MOFFAT_BETA
    adr_angle: float = 0.0     #: deg, ADR direction in the IFU (x, y) frame
    angoff: float = 0.0        #: deg, pa - header_pa: the rotation the astrometry fits (vdrp angoff)
    sed_wave: np.ndarray = field(default_factory=lambda: SED_WAVE.copy())
    sed_flam: np.ndarray | None = None
    ebv: float = 0.0

    def __post_init__(self) -> None:
        self.transparency = np.asarray(self.transparency, dtype=float)
        self.stars = np.asarray(self.stars, dtype=STAR_DTYPE)
        self.lines = np.asarray(self.lines, dtype=LINE_DTYPE)
        if self.sed_flam is None:
            self.sed_flam = np.array([stellar_sed(t, g, self.sed_wave)
                                      for t, g in zip(self.stars["teff"], self.stars["g"])])
            self.sed_flam = self.sed_flam.reshape(len(self.stars), len(self.sed_wave))


def moffat_alpha(fwhm: float, beta: float = MOFFAT_BETA) -> float:
    """Moffat core radius α (arcsec) for a FWHM (arcsec) (:func:`hetred.moffat.alpha`)."""
    return moffat.alpha(fwhm, beta)


def moffat_profile(r: np.ndarray, fwhm: float, beta: float = MOFFAT_BETA) -> np.ndarray:
    """Moffat surface density (1/arcsec²) at radius ``r`` arcsec; integrates to 1 (:func:`hetred.moffat.profile`)."""
    return moffat.profile(r, fwhm, beta)


def moffat_enclosed(radius: np.ndarray, fwhm: float, beta: float = MOFFAT_BETA) -> np.ndarray:
    """Fraction of a Moffat's flux within ``radius`` arcsec of its centre (:func:`hetred.moffat.enclosed`)."""
    return moffat.enclosed(radius, fwhm, beta)


_TAB_D, _TAB_F0, _TAB_DF, _TAB_FMAX = 0.01, 0.4, 0.02, 5.0


@lru_cache(maxsize=4)
def _fiber_table(beta: float) -> np.ndarray:
    """(n_fwhm, n_d) Moffat flux in a fiber at distance d = 0..MAX_RADIUS+1 arcsec (0.01" steps)
    from the source for FWHM 0.4..5.0" (0.02" steps): Gauss-Legendre (12 radial) x midpoint (24
    angular) quadrature over the fiber disk, converged to < 1e-9 (shared kernel
    :func:`hetred._ext.psfkern.moffat_fiber_table`)."""
    from hetred._ext.psfkern import moffat_fiber_table

    d = np.arange(0.0, MAX_RADIUS + 1.0 + _TAB_D / 2, _TAB_D)
    fw = np.arange(_TAB_F0, _TAB_FMAX + _TAB_DF / 2, _TAB_DF)
    xr, wr = np.polynomial.legendre.leggauss(12)
    return moffat_fiber_table(d, fw, float(beta), FIBER_RADIUS, xr, wr, 24)


def fwhm_at(wave: np.ndarray | float, fwhm: float) -> np.ndarray:
    """Seeing FWHM (arcsec) at ``wave`` Å for a FWHM ``fwhm`` at 4550 Å."""
    return fwhm * (np.asarray(wave, dtype=float) / FWHM_REF_WAVE) ** FWHM_POWER


def fiber_fraction(d: np.ndarray, fwhm: np.ndarray | float, beta: float = MOFFAT_BETA) -> np.ndarray:
    """Fraction of a point source's flux entering a 1.5" fiber whose centre is ``d`` arcsec
    from the source (any shape), for FWHM ``fwhm`` (scalar or broadcastable to ``d``; bilinear
    in the table, < 1e-4 of a centred fiber's light); 0 beyond :data:`MAX_RADIUS`."""
    from hetred._ext.psfkern import fiber_fractions

    d, f = np.broadcast_arrays(np.asarray(d, dtype=float), np.asarray(fwhm, dtype=float))
    out = fiber_fractions(np.ascontiguousarray(d.ravel()), np.ascontiguousarray(f.ravel()),
                          _fiber_table(float(beta)), _TAB_D, _TAB_F0, _TAB_DF).reshape(d.shape)
    return np.where(d <= MAX_RADIUS, out, 0.0)


@lru_cache(maxsize=512)
def _amp_xy(amp: str, ifuid: str | None) -> np.ndarray:
    """Cached (112, 2) read-only fiber positions (arcsec) of ``amp`` in multi-file order."""
    xy = amp_positions(amp, ifuid, positions=_ifu_xy())
    xy.setflags(write=False)
    return xy


@lru_cache(maxsize=1)
def _ifu_xy() -> np.ndarray:
    return ifu_positions()


def adr_offset(wave: np.ndarray) -> np.ndarray:
    """ADR offset (arcsec) at ``wave`` Å (any shape), hetdex_api/Remedy cubic."""
    return np.polyval(ADR_POLY, wave)


def gaussian_line(wave: np.ndarray, centre: float, flux: float, sigma: float) -> np.ndarray:
    """f_lambda (erg/s/cm²/Å) of a Gaussian line of total ``flux`` erg/s/cm² at ``wave`` Å."""
    return flux / (sigma * np.sqrt(2.0 * np.pi)) * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)


def _sample_g(rng: np.random.Generator, n: int, lo: float = 15.0, hi: float = 22.0,
              slope: float = 0.2) -> np.ndarray:
    """g magnitudes with dN/dg ∝ 10^(slope g) on [lo, hi] (more faint stars)."""
    u = rng.uniform(size=n)
    a, b = 10.0 ** (slope * lo), 10.0 ** (slope * hi)
    return np.log10(a + u * (b - a)) / slope


#: (IFU x, IFU y arcsec, wavelength Å, sigma Å) of the bright lines of ``bright_lines``
BRIGHT_LINES = ((-10.2, 8.8, 3950.0, 2.0), (12.7, -6.6, 4250.0, 2.5), (2.5, 15.4, 4720.0, 3.0),
                (-14.0, -11.0, 5080.0, 2.2))
BRIGHT_FLUX = 1.5e-14        #: erg/s/cm^2 (~2-4e4 electrons in the fibers of one exposure)


def make_shot_scene(rng: np.random.Generator, night: str, obs: int, slots: list[FplaneEntry],
                    n_stars_per_ifu: float = 2.0, n_lines_per_ifu: float = 3.0,
                    ra0: float | None = None, dec0: float | None = None,
                    bright_lines: int = 0, g_range: tuple[float, float] = (15.0, 22.0),
                    star_half: float = 19.0) -> ShotScene:
    """Draw a random shot scene whose sources fall inside the IFUs of ``slots``.

    Stars are models of :mod:`hetred.sim.stars` (the real template library) at their g, seen
    through a Galactic E(B-V) uniform 0.01-0.03 per shot; their catalogue magnitudes carry
    SDSS-like errors (printed with 2 decimals, as shuffle's catalogue).

    Per IFU slot (non-IFU entries are skipped): Poisson(n_stars_per_ifu) stars uniform in
    |x|, |y| < ``star_half`` (19" by default: away from the IFU edge at ±24") and
    Poisson(n_lines_per_ifu) line sources uniform in |x|, |y| < 23.5"; positions converted to
    RA/Dec with the true pointing (exposure 1 frame). Star g has dN/dg ∝ 10^(0.2 g) on
    ``g_range`` (15-22), one of 64 templates (3985-8052 K) with equal probability; lines have wave 3500-5500 Å, flux log-uniform
    3e-17..1e-15 erg/s/cm², sigma 1.5-4 Å. Pointing defaults to a random spring-field centre; pa
    (the angle of the tangent plane, rotation 360 - (pa + 90)) uniform 0-360 deg; header pointing
    off by 1-3" in a random direction; the header's PARANGLE is pa - angoff with angoff uniform
    1.4-1.65 deg (the rotation vdrp's astrometry fits: pa - PARANGLE of the real survey shots is
    1.37-1.69 deg, shared/reference/astrom_throughput.md §1.9); FWHM 1.3-2.5" at 4550 Å; transparency
    uniform 0.9-1.1 per exposure. ``bright_lines`` (0-4): the first of :data:`BRIGHT_LINES`
    are added to every IFU at :data:`BRIGHT_FLUX` after the random sources (no random draw
    changes).
    """
    ra0 = float(rng.uniform(160.0, 230.0)) if ra0 is None else float(ra0)
    dec0 = float(rng.uniform(46.0, 56.0)) if dec0 is None else float(dec0)
    pa = float(rng.uniform(0.0, 360.0))
    off, ang = rng.uniform(1.0, 3.0), rng.uniform(0.0, 2.0 * np.pi)
    header_ra = ra0 + off * np.sin(ang) / 3600.0 / np.cos(np.radians(dec0))
    header_dec = dec0 + off * np.cos(ang) / 3600.0
    angoff = float(rng.uniform(1.4, 1.65))
    header_pa = (pa - angoff) % 360.0
    fwhm = float(rng.uniform(1.3, 2.5))
    transparency = rng.uniform(0.9, 1.1, size=3)

    stars, lines = [], []
    for slot in (s for s in slots if s.is_ifu):
        ns, nl = rng.poisson(n_stars_per_ifu), rng.poisson(n_lines_per_ifu)
        sxy = rng.uniform(-star_half, star_half, size=(ns, 2))
        lxy = rng.uniform(-23.5, 23.5, size=(nl, 2))
        teff = rng.uniform(4000.0, 9000.0, size=ns)
        gmag = _sample_g(rng, ns, *g_range)
        lwave = rng.uniform(3500.0, 5500.0, size=nl)
        lflux = 10.0 ** rng.uniform(np.log10(3e-17), np.log10(1e-15), size=nl)
        lsig = rng.uniform(1.5, 4.0, size=nl)
        sra, sdec = fiber_radec(slot, sxy, 1, ra0, dec0, pa)
        lra, ldec = fiber_radec(slot, lxy, 1, ra0, dec0, pa)
        for k in range(ns):         # the Teff deviate picks a template (equal weights)
            stars.append((0, sra[k], sdec[k], 0.0, 0, gmag[k], 0, 0, 0, slot.ifuslot,
                          sxy[k, 0], sxy[k, 1], int(star_lib.model_index((teff[k] - 4000.0) / 5000.0)),
                          0, 0, 0, 0, 0))
        for k in range(nl):
            lines.append((0, lra[k], ldec[k], lwave[k], lflux[k], lsig[k], slot.ifuslot,
                          lxy[k, 0], lxy[k, 1]))
    for slot in (s for s in slots if s.is_ifu) if bright_lines > 0 else ():
        chosen = BRIGHT_LINES[:bright_lines]
        xy = np.array([[b[0], b[1]] for b in chosen])
        bra, bdec = fiber_radec(slot, xy, 1, ra0, dec0, pa)
        for k, b in enumerate(chosen):
            lines.append((0, bra[k], bdec[k], b[2], BRIGHT_FLUX, b[3], slot.ifuslot, b[0], b[1]))
    star_arr = np.array(stars, dtype=STAR_DTYPE)
    line_arr = np.array(lines, dtype=LINE_DTYPE)
    star_arr["id"] = np.arange(1, len(star_arr) + 1)
    line_arr["id"] = np.arange(1, len(line_arr) + 1)
    # drawn after every earlier draw, so that pointing, sources and lines stay as before
    ebv = float(rng.uniform(0.01, 0.03))
    lib = star_lib.templates()
    sed = np.zeros((len(star_arr), lib.wave.size))
    for k, st in enumerate(star_arr):
        m = int(st["model"])
        sed[k] = star_lib.star_sed(m, float(st["g"]), ebv)
        true = star_lib.true_mags(m, float(st["g"]), ebv)
        cat = true + rng.normal(size=5) * star_lib.catalogue_error(true)
        for j, b in enumerate(BANDS):
            star_arr[b][k] = true[j]
            star_arr[b + "_cat"][k] = round(float(cat[j]), 2)
        star_arr["teff"][k] = float(lib.teff[m])
        star_arr["model"][k] = int(lib.rows[m])
    return ShotScene(night=str(night), obs=int(obs), ra0=ra0, dec0=dec0, pa=pa,
                     header_ra=float(header_ra), header_dec=float(header_dec),
                     header_pa=float(header_pa), fwhm=fwhm, transparency=transparency,
                     stars=star_arr, lines=line_arr, angoff=angoff, sed_wave=lib.wave.copy(), sed_flam=sed,
                     ebv=ebv)


def _sources_near_ifu(scene: ShotScene, slot: FplaneEntry, exp: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IFU (x, y) arcsec in exposure ``exp`` of the stars and lines that can reach the IFU:
    (star index, star xy (n, 2), line index, line xy (m, 2))."""
    lim = IFU_HALF + MAX_RADIUS + 1.0
    out = []
    for cat in (scene.stars, scene.lines):
        if len(cat) == 0:
            out += [np.zeros(0, int), np.zeros((0, 2))]
            continue
        x, y = radec_to_ifu(slot, cat["ra"], cat["dec"], exp, scene.ra0, scene.dec0, scene.pa)
        idx = np.nonzero((np.abs(x) < lim) & (np.abs(y) < lim))[0]
        out += [idx, np.column_stack([x[idx], y[idx]])]
    return out[0], out[1], out[2], out[3]


def _weights(scene: ShotScene, fxy: np.ndarray, sxy: np.ndarray, adr: np.ndarray, fwhm: np.ndarray
             ) -> np.ndarray:
    """Fiber fraction (n_fib, n_wave) of a source at IFU ``sxy`` (2,) for fibers at ``fxy``
    (n_fib, 2), given the ADR offset ``adr`` and the seeing FWHM ``fwhm`` (n_fib, n_wave) at
    their sampled wavelengths."""
    t = np.radians(scene.adr_angle)
    dx = fxy[:, 0:1] - (sxy[0] + adr * np.cos(t))
    dy = fxy[:, 1:2] - (sxy[1] + adr * np.sin(t))
    return fiber_fraction(np.hypot(dx, dy), fwhm, scene.beta)


def fiber_source_flux(scene: ShotScene, slot: FplaneEntry, amp: str, exp: int,
                      wave: np.ndarray, ifuid: str | None = None) -> np.ndarray:
    """Source flux density entering each fiber of one amp in exposure ``exp`` (1..3).

    wave: (112, 1032) Å, the wavelength of each oriented pixel column of each fiber (multi-file
    fiber order). ``ifuid`` selects the fiber swaps (default ``slot.ifuid``). Returns (112, 1032)
    float64 erg/s/cm²/Å above the atmosphere (transparency NOT applied), integrated over each
    1.5" fiber for the scene's Moffat PSF with ADR and the exposure's dither. Stars contribute
    their SED, line sources Gaussian lines; sources farther than 8" (+ADR) give nothing.
    The spectra are intrinsic: no instrumental line-spread function is applied.
    """
    wave = np.asarray(wave, dtype=float)
    fxy = _amp_xy(amp, slot.ifuid if ifuid is None else ifuid)
    out = np.zeros(wave.shape, dtype=float)
    istar, sxy, iline, lxy = _sources_near_ifu(scene, slot, exp)
    reach = MAX_RADIUS + float(np.max(np.abs(ADR_OFFSET))) + 0.1
    if len(istar) + len(iline) == 0:
        return out
    adr, fw = adr_offset(wave), fwhm_at(wave, scene.fwhm)     # once per amp, not per source
    for k, xy in zip(istar, sxy):
        near = np.nonzero(np.hypot(*(fxy - xy).T) < reach)[0]
        if near.size:
            w = wave[near]
            out[near] += _weights(scene, fxy[near], xy, adr[near], fw[near]) * np.interp(
                w, scene.sed_wave, scene.sed_flam[k])
    for k, xy in zip(iline, lxy):
        near = np.nonzero(np.hypot(*(fxy - xy).T) < reach)[0]
        if near.size:
            src = scene.lines[k]
            w = wave[near]
            out[near] += _weights(scene, fxy[near], xy, adr[near], fw[near]) * gaussian_line(
                w, src["wave"], src["flux"], src["sigma"])
    return out


def line_source_fluxes(scene: ShotScene, slot: FplaneEntry, amp: str, exp: int, wave: np.ndarray,
                       ifuid: str | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The emission-line sources of :func:`fiber_source_flux` one by one (for the truth files).

    wave: (112, n) Å as in :func:`fiber_source_flux`. Returns a list of (line index into
    ``scene.lines``, fibers (m,) 0-based multi-file rows, flux (m, n) erg/s/cm²/Å above the
    atmosphere), the same numbers :func:`fiber_source_flux` adds for that line. No random draws.
    """
    wave = np.asarray(wave, dtype=float)
    fxy = _amp_xy(amp, slot.ifuid if ifuid is None else ifuid)
    _, _, iline, lxy = _sources_near_ifu(scene, slot, exp)
    reach = MAX_RADIUS + float(np.max(np.abs(ADR_OFFSET))) + 0.1
    if len(iline) == 0:
        return []
    adr, fw = adr_offset(wave), fwhm_at(wave, scene.fwhm)
    out = []
    for k, xy in zip(iline, lxy):
        near = np.nonzero(np.hypot(*(fxy - xy).T) < reach)[0]
        if near.size:
            src = scene.lines[k]
            w = wave[near]
            out.append((int(k), near, _weights(scene, fxy[near], xy, adr[near], fw[near])
                        * gaussian_line(w, src["wave"], src["flux"], src["sigma"])))
    return out


def format_catalogue(scene: ShotScene) -> str:
    """Text of :func:`write_catalogue`: shuffle's ``shout.ifustars`` (the real format, read by
    :func:`hetred.astrom.formats.read_ifustars`)."""
    from datetime import datetime, timezone

    from hetred.astrom.formats import format_ifustars

    s = scene.stars
    mags = np.column_stack([s[b + "_cat"] for b in BANDS]) if len(s) else np.zeros((0, 5))
    stamp = datetime.strptime(scene.night, "%Y%m%d").replace(tzinfo=timezone.utc)   # deterministic
    return format_ifustars(s["ra"], s["dec"], mags, ids=[f"{int(i):019d}" for i in s["id"]], stamp=stamp)


def write_catalogue(scene: ShotScene, path: str | Path) -> None:
    """Write the star catalogue that the astrometry and throughput stages read.

    Format: shuffle's ``shout.ifustars`` as in the real shot 20180611v017 (HETDEX/vdrp test data):
    10 ``#`` lines (date, ``#col  1: SHOTID`` .. ``#col  9: z``), then one star per line
    ``000001 ID RA DEC u g r i z`` -- ID the star's id as 19 digits, RA and Dec in degrees
    (``%11.6f``), the SDSS u g r i z AB magnitudes (``%7.2f``): the catalogue values (true +
    errors, ``STAR_DTYPE`` ``*_cat``). Written atomically.
    """
    from hetred.io.atomic import write_text_atomic

    write_text_atomic(Path(path), format_catalogue(scene))


def read_catalogue(path: str | Path) -> np.ndarray:
    """Read a :func:`write_catalogue` file: structured array with ra dec u g r i z (float64)."""
    from hetred.astrom.formats import read_ifustars

    cat = read_ifustars(path)
    dt = np.dtype([(n, "f8") for n in ("ra", "dec", *BANDS)])
    out = np.zeros(len(cat), dtype=dt)
    for n in dt.names:
        out[n] = cat[n]
    return out


def _fibers_seeing(scene: ShotScene, slots: list[FplaneEntry], ra: np.ndarray, dec: np.ndarray,
                   ref_wave: np.ndarray, exp: int, min_fraction: float = 0.01) -> list[list[dict]]:
    """For each source (ra, dec deg; ref_wave Å; shape (n,)), the fibers of all IFUs of
    ``slots`` with > ``min_fraction`` of its light at ``ref_wave`` in exposure ``exp``,
    brightest first."""
    out: list[list[dict]] = [[] for _ in range(len(ra))]
    if len(ra) == 0:
        return out
    t = np.radians(scene.adr_angle)
    adr = adr_offset(np.asarray(ref_wave, dtype=float))
    for slot in (s for s in slots if s.is_ifu):
        x, y = radec_to_ifu(slot, ra, dec, exp, scene.ra0, scene.dec0, scene.pa)
        sx, sy = x + adr * np.cos(t), y + adr * np.sin(t)
        cand = np.nonzero((np.abs(sx) < IFU_HALF + MAX_RADIUS)
                          & (np.abs(sy) < IFU_HALF + MAX_RADIUS))[0]
        if cand.size == 0:
            continue
        for amp in AMPS:
            fxy = _amp_xy(amp, slot.ifuid)
            frac = fiber_fraction(np.hypot(fxy[None, :, 0] - sx[cand, None],
                                           fxy[None, :, 1] - sy[cand, None]),
                                  fwhm_at(ref_wave[cand, None], scene.fwhm), scene.beta)
            mf = multiframe(slot.specid, slot.ifuslot, slot.ifuid, amp)
            for k, i in zip(*np.nonzero(frac > min_fraction)):
                out[cand[k]].append({"ifuslot": int(slot.ifuslot), "ifuid": slot.ifuid,
                                     "specid": int(slot.specid), "amp": amp,
                                     "fiber": int(i + 1), "multiframe": mf,
                                     "fraction": float(frac[k, i])})
    for lst in out:
        lst.sort(key=lambda f: -f["fraction"])
    return out


def scene_truth(scene: ShotScene, slots: list[FplaneEntry]) -> dict:
    """JSON-able truth of the scene.

    Keys: night, obs, pointing {true, header: {ra, dec, pa}}, fwhm, beta, transparency (3),
    dithers (3 x [dx, dy] arcsec), adr {wave, offset, angle}, fill_factor, stars and lines.
    Each source lists its catalogue values and ``fibers``: {"1": [...], "2": [...], "3": [...]}
    per exposure, each fiber {"ifuslot" (int), "ifuid", "specid", "amp", "fiber" (1..112
    multi-file order), "multiframe", "fraction"} for fibers with > 1% of its light at the
    reference wavelength ``ref_wave`` (line centre; 4700 Å for stars), brightest first.
    """
    def table(cat: np.ndarray, ref: np.ndarray) -> list[dict]:
        per_exp = [_fibers_seeing(scene, slots, cat["ra"], cat["dec"], ref, e)
                   for e in range(1, len(DITHERS) + 1)]
        rows = []
        for k, s in enumerate(cat):
            d = {n: (int(s[n]) if n in ("id", "ifuslot", "model") else float(s[n]))
                 for n in cat.dtype.names}
            d["ref_wave"] = float(ref[k])
            d["fibers"] = {str(e + 1): per_exp[e][k] for e in range(len(DITHERS))}
            rows.append(d)
        return rows

    stars = table(scene.stars, np.full(len(scene.stars), STAR_REF_WAVE))
    lines = table(scene.lines, scene.lines["wave"].astype(float))
    truth = {
        "night": scene.night, "obs": scene.obs,
        "pointing": {"true": {"ra": scene.ra0, "dec": scene.dec0, "pa": scene.pa},
                     "header": {"ra": scene.header_ra, "dec": scene.header_dec,
                                "pa": scene.header_pa},
                     "angoff": scene.angoff},
        "fwhm": scene.fwhm, "fwhm_ref_wave": FWHM_REF_WAVE, "fwhm_power": FWHM_POWER, "beta": scene.beta,
        "ebv": scene.ebv,
        "transparency": [float(t) for t in scene.transparency],
        "dithers": [list(d) for d in DITHERS],
        "adr": {"wave": ADR_WAVE.tolist(), "offset": ADR_OFFSET.tolist(),
                "angle": scene.adr_angle},
        "fill_factor": float(FILL_FACTOR),
        "stars": stars, "lines": lines,
    }
    json.dumps(truth)  # fail here, not in the caller, if something is not JSON-able
    return truth
