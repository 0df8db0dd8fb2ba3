"""Steps 9-13 for one shot, on arrays: the catalogue stars in the fibers, their FWHM, spectra,
SEDs, throughput curves and the shot's response curve (karlspipe hdr2.1 tpfits/rallcal =
rsetstar_w + rgettp0 + rgettp0b, then rfitpoly; docs/stages/throughput.md).

:func:`measure_shot` takes the catalogue, the fibers' coordinates (``dithall.use``), the
exposure normalisation and a loader of calibrated amp spectra; it never touches files, so tests
can feed it arrays. Every star gets a ``reason`` when it is not used.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import hetred.moffat as moffat
from hetred.io.shotfiles import Dithall
from hetred.stats import biweight
from hetred.throughput import response as R
from hetred.throughput import starfit as S
from hetred.throughput.psf import AdrModel, FiberTable
from hetred.throughput.sedfit import SED_WAVE, fit_seds
from hetred.throughput.settings import ThroughputSettings

#: (exp, specid, ifuslot, ifuid, amp) -> (counts, error, bad): calibrated counts per 2 Å and
#: errors (112, 1036), ``bad`` (112,) True where a fiber had non-finite values
AmpLoader = Callable[[int, int, int, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class StarResult:
    """One catalogue star. Positions: ``dx``, ``dy`` arcsec (east, north) of the fitted position
    from the catalogue one; ``ra_fit``, ``dec_fit`` deg. ``c100``, ``e100``, ``sed``, ``tp``:
    (21,) on :data:`SED_WAVE` (tp NaN where the star has no counts). ``reason``: why it is not in
    the response curve ('' if it is)."""

    id: str
    ra: float
    dec: float
    mags: np.ndarray
    reason: str = ""
    nfib: int = 0
    dx: float = 0.0
    dy: float = 0.0
    ra_fit: float = 0.0
    dec_fit: float = 0.0
    fwhm: float = 0.0
    chi2: float = 0.0
    amp: float = 0.0
    snr: float = 0.0
    pos_err: float = float("nan")   #: arcsec, 1-sigma of the fitted position (both axes)
    fwhm_used: bool = False
    spectrum: S.Spectrum | None = None
    c100: np.ndarray = field(default_factory=lambda: np.zeros(SED_WAVE.size))
    e100: np.ndarray = field(default_factory=lambda: np.zeros(SED_WAVE.size))
    sed: np.ndarray = field(default_factory=lambda: np.zeros(SED_WAVE.size))
    sed_chi2: float = 0.0
    nmodels: int = 0
    tp: np.ndarray = field(default_factory=lambda: np.full(SED_WAVE.size, np.nan))
    tp_g: float = 0.0
    flag: int = -1
    offset: float = 0.0
    scale: float = 0.0
    rms: float = 0.0
    data: S.StarData | None = None


@dataclass
class ShotResult:
    """The shot: ``stars``; FWHM ``fwhm``, ``fwhm_scale``, ``fwhm_n`` (fwhm.out; -666, -2, 0 without
    stars, and ``fwhm_used`` the value extractions used); the combination (``combined``, None
    without stars), ``tp_g`` (n, biweight, scale) of the g-band throughputs, and the fit."""

    stars: list[StarResult]
    fwhm: float
    fwhm_scale: float
    fwhm_n: int
    fwhm_used: float
    combined: R.Combined | None
    tp_g: tuple[int, float, float]
    fit: R.PolyFit | None


def local_xy(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (arcsec, east and north) of (ra, dec) from (ra0, dec0) on the local tangent plane."""
    dra = (np.asarray(ra, dtype=np.float64) - ra0 + 180.0) % 360.0 - 180.0
    return dra * np.cos(np.radians(dec0)) * 3600.0, (np.asarray(dec, dtype=np.float64) - dec0) * 3600.0


def _radec(ra0: float, dec0: float, dx: float, dy: float) -> tuple[float, float]:
    return ra0 + dx / 3600.0 / np.cos(np.radians(dec0)), dec0 + dy / 3600.0


def gather(stars: list[StarResult], fibers: Dithall, load: AmpLoader, radius: float) -> None:
    """Attach each star's fibers (within ``radius``) and their spectra; stars without fibers or
    with non-finite fiber values get a reason. Every amp is loaded once."""
    need: dict[tuple, list[tuple[StarResult, np.ndarray, np.ndarray, np.ndarray]]] = {}
    dec_tol = radius / 3600.0 + 1e-6
    for s in stars:
        if s.reason:
            continue
        cand = np.nonzero(np.abs(fibers.dec - s.dec) < dec_tol)[0]
        x, y = local_xy(fibers.ra[cand], fibers.dec[cand], s.ra, s.dec)
        near = np.hypot(x, y) < radius
        idx = cand[near]
        if idx.size == 0:
            s.reason = f"no fibers within {radius:.1f}\" (outside the IFUs)"
            continue
        s.data = S.StarData(x[near], y[near], fibers.exp[idx] - 1, np.zeros((idx.size, S.WAVE.size), np.float32),
                            np.zeros((idx.size, S.WAVE.size), np.float32),
                            np.array([f"multi_{fibers.specid[i]:03d}_{fibers.ifuslot[i]:03d}_{fibers.ifuid[i]}_"
                                      f"{fibers.amp[i]}/{fibers.fiber[i]:03d}/exp{fibers.exp[i]:02d}" for i in idx]))
        for k, i in enumerate(idx):
            key = (int(fibers.exp[i]), int(fibers.specid[i]), int(fibers.ifuslot[i]), str(fibers.ifuid[i]),
                   str(fibers.amp[i]))
            need.setdefault(key, []).append((s, k, i))
    bad: dict[int, int] = {}
    for key, rows in need.items():
        counts, error, badfib = load(*key)
        for s, k, i in rows:
            row = int(fibers.fiber[i]) - 1
            if not 0 <= row < counts.shape[0]:
                continue
            if badfib[row]:
                bad[id(s)] = bad.get(id(s), 0) + 1
            s.data.spec[k] = counts[row]
            s.data.err[k] = error[row]
    for s in stars:
        if id(s) in bad and not s.reason:
            s.reason = f"non-finite values in {bad[id(s)]} of its fibers"


def flag_blends(stars: list[StarResult], catalog: np.ndarray, fwhm: float, radius: float,
                max_light: float, beta: float) -> None:
    """A star whose catalogue neighbours put more than ``max_light`` of its own g-band light
    into the disc of ``radius`` arcsec around it (the fibers of its position and FWHM fits) gets
    a reason (hetred's; Karl keeps such stars): a neighbour adds its flux ratio
    10^(-0.4 (g_n - g)) times the fraction of its Moffat (``fwhm``, ``beta``) light inside that
    disc (:func:`hetred.moffat.disc_fraction`), against the star's own fraction there. A neighbour 5"
    away puts far more light into a 4" disc than its surface density at the star's centre says:
    the fibers at the disc's edge next to it see its core."""
    if max_light <= 0 or len(catalog) < 2:
        return
    g = np.asarray(catalog["g"], dtype=np.float64)
    own = float(moffat.disc_fraction(np.zeros(1), radius, fwhm, beta)[0])
    reach = radius + 6.0 * fwhm          # beyond it a neighbour adds < 1e-4 of its light
    for s in stars:
        x, y = local_xy(catalog["ra"], catalog["dec"], s.ra, s.dec)
        r = np.hypot(x, y)
        other = (r > 1e-3) & (r < reach) & np.isfinite(g)
        if not other.any():
            continue
        light = 10.0 ** (-0.4 * (g[other] - s.mags[1])) * moffat.disc_fraction(r[other], radius, fwhm, beta) / own
        if light.sum() > max_light:
            k = np.nonzero(other)[0][np.argmax(light)]
            s.reason = (f"blended: neighbours add {light.sum():.1%} of its light within {radius:.0f}\" "
                        f"(most: {catalog['id'][k]}, {r[k]:.1f}\" away, g {g[k]:.2f} vs {s.mags[1]:.2f})")


def fit_star(s: StarResult, table: FiberTable, adr: AdrModel, st: ThroughputSettings,
             fwhm: float | None = None, centre: tuple[float, float] | None = None) -> None:
    """Position rasters (and the FWHM grid when ``fwhm`` is None) of one star (module docs of
    :mod:`hetred.throughput.starfit`)."""
    d = s.data
    flux, err = S.band_flux(d.spec, d.err, band=(st.band[0], st.band[1]))
    sx, sy = adr.shift(np.array([(st.band[0] + st.band[1]) / 2.0]), d.exp)     # relative to adr.ref_wave
    x, y = d.x - sx[:, 0], d.y - sy[:, 0]        # the source's light at the band: ADR removed
    cx, cy = centre if centre is not None else (0.0, 0.0)
    f0 = st.fwhm_start if fwhm is None else fwhm
    steps = st.raster_steps if centre is None else st.raster_steps[-1:]
    for step in steps:
        e = np.where(np.hypot(x - cx, y - cy) < st.fit_radius, err, 0.0)
        r = S.fit_position(table, x, y, flux, e, f0, cx, cy, step, st.raster_n)
        cx, cy = r.x, r.y
    if st.raster_refine:
        cx, cy, s.pos_err = S.refine_position(r, steps[-1], dof=max(1, r.nfib - 3))
    s.nfib = r.nfib
    if fwhm is None:
        g = np.linspace(st.fwhm_grid[0], st.fwhm_grid[1], int(st.fwhm_grid[2]))
        rf = S.fit_fwhm(table, x, y, flux, e, cx, cy, g)
        s.fwhm, s.chi2, s.amp = rf.fwhm, rf.chi2, rf.amp
        f0 = rf.fwhm
    else:
        s.chi2, s.amp = r.chi2, r.amp
    p = table.fractions(np.hypot(x - cx, y - cy), f0)
    w = np.where(e > 0, 1.0 / np.where(e > 0, e, 1.0) ** 2, 0.0)
    spp = float(np.sum(p * p * w))
    s.snr = s.amp * np.sqrt(spp) if spp > 0 else 0.0
    s.dx, s.dy = cx, cy
    s.ra_fit, s.dec_fit = _radec(s.ra, s.dec, cx, cy)


def measure_shot(catalog: np.ndarray, fibers: Dithall, load: AmpLoader, adr: AdrModel,
                 table: FiberTable, st: ThroughputSettings) -> ShotResult:
    """Steps 9-13 for one shot (module docstring). ``catalog``: rows with id, ra, dec, u g r i z
    (:data:`hetred.io.shotfiles.STAR_DTYPE`)."""
    stars = []
    for c in catalog:
        mags = np.array([c[b] for b in ("u", "g", "r", "i", "z")], dtype=np.float64)
        if not np.isfinite(mags[1]) or mags[1] >= st.mag_limit:
            continue                                # rsetstar_w: g < 22.5 only
        stars.append(StarResult(str(c["id"]), float(c["ra"]), float(c["dec"]), mags))
    flag_blends(stars, catalog, st.fwhm_start, st.fit_radius, st.blend_max_light, st.beta)
    gather(stars, fibers, load, st.fit_radius + 1.5)
    for s in stars:
        if s.reason:
            continue
        nd = int(np.sum((s.data.err > 0).any(axis=1)))
        if nd <= st.min_fibers:
            s.reason = f"only {nd} fibers with data (needs > {st.min_fibers})"
            continue
        fit_star(s, table, adr, st)
    # the shot's FWHM (mkrsprun): biweight over the stars with a measured FWHM
    fw = [s for s in stars if not s.reason and s.amp > st.fwhm_min_amp and s.snr >= st.fwhm_min_snr]
    for s in fw:
        s.fwhm_used = True
    if fw:
        b, sc = biweight(np.array([s.fwhm for s in fw]))
        fwhm, fscale, fn = float(b), float(sc), len(fw)
    else:
        fwhm, fscale, fn = -666.0, -2.0, 0
    use_fwhm = fwhm if fn else st.fwhm_default
    if use_fwhm > st.fwhm_start:      # the blends again at the shot's seeing (demo seed 2: 2.2")
        flag_blends([s for s in stars if not s.reason], catalog, use_fwhm, st.fit_radius, st.blend_max_light,
                    st.beta)
    for s in stars:
        if s.reason:
            continue
        fit_star(s, table, adr, st, fwhm=use_fwhm, centre=(s.dx, s.dy))
        if s.amp <= 0 or s.snr < 3.0:
            s.reason = f"no detection (amplitude {s.amp:.1f}, S/N {s.snr:.1f})"
            continue
        s.spectrum = S.extract(table, s.data, s.dx, s.dy, use_fwhm, adr, st.extract_radius)
        s.c100, s.e100, _ = S.bin100(s.spectrum.counts, s.spectrum.error)
    live = [s for s in stars if not s.reason]
    if live:
        fit = fit_seds(np.array([s.mags for s in live]), ebv=st.ebv, g_convention=st.g_convention)
        for k, s in enumerate(live):
            s.sed, s.sed_chi2, s.nmodels = fit.sed[k], float(fit.chi2[k]), int(fit.nmodels[k])
            if not fit.ok[k]:
                s.reason = fit.reason[k]
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                exp = R.expected_counts(s.sed, SED_WAVE)
                s.tp = np.where((s.c100 != 0) & (exp > 0), s.c100 / exp, np.nan)
            s.tp_g = R.getsdssg(SED_WAVE, s.c100) / float(R.g_expected_counts(s.mags[1]))
    live = [s for s in stars if not s.reason]
    combined, fitres, tpg = None, None, (0, 0.0, 0.0)
    if live:
        combined = R.combsed(np.array([s.tp for s in live]), R.robin(SED_WAVE), st.sigcut, st.rmscut)
        for k, s in enumerate(live):
            s.flag = int(combined.flag[k])
            s.offset, s.scale, s.rms = float(combined.offset[k]), float(combined.scale[k]), float(combined.rms[k])
            if s.flag != 0:
                s.reason = (f"combsed flag {s.flag}: scale {s.scale:.3f} (cut {st.sigcut}), rms {s.rms:.4f} "
                            f"(cut {st.rmscut})")
        good_g = [s.tp_g for s in live if s.nfib > R.MIN_FIBERS_G and R.TP_G_RANGE[0] < s.tp_g < R.TP_G_RANGE[1]]
        if good_g:
            b, sc = biweight(np.array(good_g))
            tpg = (len(good_g), float(b), float(sc))
        if combined.n > 0:
            fitres = R.fitpoly(SED_WAVE, combined.tp, tpg[1] if tpg[0] else None)
    return ShotResult(stars, fwhm, fscale, fn, use_fwhm, combined, tpg, fitres)
