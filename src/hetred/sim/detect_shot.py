"""A simulated shot at the level of the products ``hetred detect`` reads -- multi files, dithall.use,
norm.dat, radec2_final.dat and the shot's response curve -- with many faint emission-line
sources, blank IFUs and optionally field stars, for the detection's completeness, purity and
measurement tests, demo and benchmark (issue 15).

Per exposure, IFU and amp (112 fibers x 1032 columns, the simulator's optics: wavelength
``WAVE_POLY`` plus a per-fiber offset of up to +-2 Å, dispersion 2.02-1.89 Å/px, Gaussian LSF of
``LSF_FWHM`` (5.5 Å) FWHM), in electrons per column of a 360-s exposure:

* sky: the simulator's dark-sky continuum and lines through the fiber area
  (:func:`hetred.sim.spectra.sky_continuum_fine`, ``sky_line_fluxes``), x the per-shot sky
  factor and the fiber's throughput;
* sources: each emission line (Gaussian, intrinsic sigma convolved with the LSF, integrated over
  every pixel) and each star (its SED) through the simulator's PSF (Moffat beta 3.5,
  :func:`hetred.sim.sky.fiber_fraction`) with the shot's FWHM at 4550 Å scaled as lambda^-0.2, ADR along the IFU x axis
  (:func:`hetred.sim.sky.adr_offset`) and the dither of the exposure, x transparency x
  throughput x collecting area x exposure time x the fiber's throughput;
* noise: Poisson of sky + sources and the read noise of hetred sci's optimal extraction across
  the simulator's fiber profile (3 e- per pixel over 7.7 effective pixels, ~70 e-^2);
  the multi file holds ``sky_subtracted`` = data - the true sky (a perfect sky model),
  ``sky_spectrum`` = the true sky, ``fiber_to_fiber`` = the true fiber throughput, a 2-D
  ``error`` frame of ones (0 on 0.1 % masked pixels, whose ``sky_subtracted`` is 0), ``chi2`` ~ 1,
  ``trace`` and the header's STRUCTAZ = PA + 180 deg (so that Karl's ADR direction and the
  IFU-x convention agree).

``amp_shift`` gives amps a wavelength-calibration error W0/W1 (Karl's convention, as
:mod:`hetred.sim.skyvar`): in such an amp the pixel of calibration wavelength lambda (the multi
file's ``wavelength``) sees *all* the light -- sky, lines and stars -- of lambda' = lambda + W0 + W1
(4500 - lambda); the truth keeps the lines' true wavelengths, and hetred detect recovers them
only with fullsky's amp.dat (the W0/W1 it adds to the fibers' wavelengths).

The astrometry is perfect (dithall.use from the true pointing and PA, norm.dat the relative
transparencies) and the response curve is the true throughput x the mean transparency
(``DATEvOBSsedtp_f.dat`` on the 2-Å grid). The truth returned per line: position, wave, flux,
intrinsic and observed sigma, and ``f1``: the flux of an ideal matched filter at S/N 1, from the
truth noise (sky + read noise, no source) and the truth PSF, over every exposure, fiber and
pixel: f1 = 1 / sqrt(sum m^2 / V), m the electrons per unit flux of the pixel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import erf as _erf

import numpy as np
from scipy.special import erf

from hetred.sim import spectra
from hetred.sim.focalplane import slot_entry
from hetred.sim.sky import LINE_DTYPE, STAR_DTYPE, ShotScene, adr_offset, fiber_fraction, make_shot_scene
from hetred.virus.coords import DITHERS, fiber_radec, radec_to_ifu
from hetred.virus.fplane import FplaneEntry
from hetred.virus.ifu import amp_positions

AMPS = ("LL", "LU", "RL", "RU")
EXPTIME = 360.0
READ_NOISE = 3.0
#: the read noise of hetred sci's optimal extraction across the simulator's fiber profile
#: (exp(-|y/2.5|^2.5 / 2): 1 / sum P^2 = 7.7 pixels), in effective pixels
EXTRACTION_PIXELS = 7.7
LSF_FWHM = 5.5
MASK_FRACTION = 0.001
STAR_SEPARATION = 8.0      #: arcsec, stars of an IFU are at least this far apart (Karl merges within 6.5")
NCOL = 1032
del _erf


@dataclass
class DetectShot:
    """What :func:`simulate_detect_shot` made."""

    datevobs: str
    scene: ShotScene
    slots: list[FplaneEntry]
    line_slots: list[int]
    blank_slots: list[int]
    lines: np.ndarray                  #: structured: LINE_DTYPE fields + sigma_obs, f1
    stars: np.ndarray
    stamps: list[str]
    files: list[str] = field(default_factory=list)


SEEING_NODES = np.arange(3400.0, 5701.0, 100.0)     #: Å, the seeing is tabulated here and interpolated


def fraction(d: np.ndarray, fwhm: float, beta: float, wave: np.ndarray | float) -> np.ndarray:
    """Fiber fraction at distance ``d`` (arcsec) for the seeing at ``wave`` (scalar or the shape of
    ``d``): the simulator's table at the two nearest of :data:`SEEING_NODES`, linear in between
    (the FWHM changes by 0.4 % per 100 Å)."""
    w = np.clip(np.broadcast_to(np.asarray(wave, float), np.shape(d)), SEEING_NODES[0], SEEING_NODES[-1] - 1e-9)
    k = ((w - SEEING_NODES[0]) // 100.0).astype(int)
    t = (w - SEEING_NODES[k]) / 100.0
    out = np.zeros(np.shape(d))
    for kk in np.unique(k):
        sel = k == kk
        f0 = fiber_fraction(np.asarray(d)[sel], seeing(fwhm, SEEING_NODES[kk]), beta)
        f1 = fiber_fraction(np.asarray(d)[sel], seeing(fwhm, SEEING_NODES[kk + 1]), beta)
        out[sel] = f0 * (1.0 - t[sel]) + f1 * t[sel]
    return out


def seeing(fwhm: float, wave: float) -> float:
    """The seeing FWHM at ``wave`` Å of a shot whose FWHM at 4550 Å is ``fwhm`` (Kolmogorov:
    FWHM proportional to lambda^-0.2, as the astrometry, throughput and detection models assume)."""
    return float(fwhm * (wave / 4550.0) ** -0.2)


def _wave_solution(rng: np.random.Generator, n: int = 112) -> np.ndarray:
    """(n, 3) per-fiber quadratic wavelength coefficients: WAVE_POLY + a smooth offset (+-2 Å)."""
    s = np.linspace(-1.0, 1.0, n)
    off = rng.uniform(-1.0, 1.0) + rng.uniform(-1.0, 1.0) * s * s + rng.normal(0.0, 0.05, n)
    c = np.tile(np.array(spectra.WAVE_POLY, float), (n, 1))
    c[:, 0] += off
    return c


def _pixel_gauss(wave_lo: np.ndarray, wave_hi: np.ndarray, mu: float, sig: float) -> np.ndarray:
    return 0.5 * (erf((wave_hi - mu) / (np.sqrt(2.0) * sig)) - erf((wave_lo - mu) / (np.sqrt(2.0) * sig)))


def _lines_table(scene: ShotScene) -> np.ndarray:
    dt = np.dtype(LINE_DTYPE.descr + [("sigma_obs", "f8"), ("f1", "f8")])
    out = np.zeros(len(scene.lines), dtype=dt)
    for k in LINE_DTYPE.names:
        out[k] = scene.lines[k]
    lsf = LSF_FWHM / 2.3548200450309493
    out["sigma_obs"] = np.sqrt(out["sigma"] ** 2 + lsf * lsf)
    return out


def _draw_lines(rng, scene_slots, n_lines, flux_range, wave_range, sigma_range, ra0, dec0, pa):
    rows = []
    for slot in scene_slots:
        xy = rng.uniform(-23.5, 23.5, size=(n_lines, 2))
        ra, dec = fiber_radec(slot, xy, 1, ra0, dec0, pa)
        wave = rng.uniform(*wave_range, size=n_lines)
        flux = 10.0 ** rng.uniform(np.log10(flux_range[0]), np.log10(flux_range[1]), size=n_lines)
        sig = rng.uniform(*sigma_range, size=n_lines)
        for k in range(n_lines):
            rows.append((0, ra[k], dec[k], wave[k], flux[k], sig[k], slot.ifuslot, xy[k, 0], xy[k, 1]))
    arr = np.array(rows, dtype=LINE_DTYPE)
    arr["id"] = np.arange(1, len(arr) + 1)
    return arr


def _draw_stars(rng, scene_slots, n_stars, g_range, ra0, dec0, pa):
    rows = []
    for slot in scene_slots:
        pts: list[np.ndarray] = []
        for _ in range(100 * n_stars):          # at least STAR_SEPARATION apart (no blends)
            if len(pts) == n_stars:
                break
            p = rng.uniform(-20.0, 20.0, size=2)
            if all(np.hypot(*(p - q)) >= STAR_SEPARATION for q in pts):
                pts.append(p)
        xy = np.array(pts).reshape(-1, 2)
        n_stars = len(xy)
        ra, dec = fiber_radec(slot, xy, 1, ra0, dec0, pa)
        g = rng.uniform(*g_range, size=n_stars)
        teff = rng.uniform(4500.0, 8000.0, size=n_stars)
        for k in range(n_stars):
            rows.append((ra[k], dec[k], teff[k], g[k], slot.ifuslot, xy[k, 0], xy[k, 1]))
    arr = np.zeros(len(rows), dtype=STAR_DTYPE)      # other magnitudes 0; model -1: a Planck-based SED
    for k, name in enumerate(("ra", "dec", "teff", "g", "ifuslot", "x_ifu", "y_ifu")):
        arr[name] = [r[k] for r in rows]
    arr["g_cat"] = arr["g"]
    arr["model"] = -1
    arr["id"] = np.arange(1, len(arr) + 1)
    return arr


def simulate_detect_shot(layout, *, night: str = "20180110", obs: int = 7, line_slots=(53,), blank_slots=(63,),
                         n_lines: int = 300, flux_range=(1e-17, 3e-16), wave_range=(3550.0, 5450.0),
                         sigma_range=(1.5, 3.0), n_stars: int = 0, g_range=(17.0, 21.5), star_slots=None,
                         fwhm: float | None = None, seed: int = 0, write_tarlist: bool = True,
                         noise: str = "poisson",
                         amp_shift: dict[tuple[int, int, str], tuple[float, float]] | None = None,
                         noise_seed: int = 0) -> DetectShot:
    """Write the shot into ``layout`` (module docstring) and return its truth. ``amp_shift``:
    (exposure 1-3, IFU slot, amp) -> (W0 Å, W1 per Å), the light of that amp moved (module
    docstring); others unmoved. ``noise_seed`` > 0 draws new noise (photons, read noise, masked
    pixels, chi2) on the same scene: the same sources, pointing, wavelengths and fiber
    throughputs (``seed``), for statistics over noise realisations."""
    from astropy.io import fits

    from hetred.astrom import fibers as AF
    from hetred.astrom.formats import format_norm, format_radec
    from hetred.io.atomic import write_text_atomic
    from hetred.sim.photometry import SED_WAVE, stellar_sed
    from hetred.sim.skyvar import moved

    rng = np.random.default_rng([seed, 15, int(night), obs])
    slots = [slot_entry(s) for s in (*line_slots, *blank_slots)]
    base = make_shot_scene(rng, night, obs, slots, n_stars_per_ifu=0.0, n_lines_per_ifu=0.0)
    if fwhm is not None:
        base.fwhm = float(fwhm)
    ra0, dec0, pa = base.ra0, base.dec0, base.pa
    line_entries = [slot_entry(s) for s in line_slots]
    lines = _draw_lines(rng, line_entries, n_lines, flux_range, wave_range, sigma_range, ra0, dec0, pa)
    sslots = [slot_entry(s) for s in (star_slots if star_slots is not None else line_slots)] if n_stars else []
    stars = _draw_stars(rng, sslots, n_stars, g_range, ra0, dec0, pa) if n_stars else np.zeros(0, STAR_DTYPE)
    scene = ShotScene(night=night, obs=obs, ra0=ra0, dec0=dec0, pa=pa, header_ra=base.header_ra,
                      header_dec=base.header_dec, header_pa=base.header_pa, fwhm=base.fwhm,
                      transparency=base.transparency, stars=stars, lines=lines, angoff=base.angoff)
    truth = _lines_table(scene)
    f1_acc = np.zeros(len(truth))
    datevobs = f"{night}v{obs:03d}"
    stamps = [f"{night}T{3 + k:02d}{10 + 7 * k:02d}00.0" for k in range(3)]
    lsf = LSF_FWHM / 2.3548200450309493
    sky_fine = spectra.sky_continuum_fine()
    sky_lines = spectra.sky_line_fluxes()
    sky_factor = float(rng.uniform(0.9, 1.2))
    files: list[str] = []
    tables = []
    x = np.arange(NCOL, dtype=float)
    for e in range(1, 4):
        trans = float(scene.transparency[e - 1])
        fibermaps = {}
        for slot in slots:
            fibermaps[slot.ifuslot] = {}
            sx_l, sy_l = radec_to_ifu(slot, truth["ra"], truth["dec"], e, ra0, dec0, pa)
            sx_s, sy_s = radec_to_ifu(slot, stars["ra"], stars["dec"], e, ra0, dec0, pa)
            for amp in AMPS:
                fxy = amp_positions(amp, slot.ifuid)
                fibermaps[slot.ifuslot][amp] = fxy
                arng = np.random.default_rng([seed, 16, int(night), obs, e, slot.ifuslot, AMPS.index(amp)]
                                             + ([noise_seed] if noise_seed else []))
                coeffs = _wave_solution(np.random.default_rng([seed, 17, slot.ifuslot, AMPS.index(amp)]))
                cal = spectra.wavelength(coeffs, x)          # the calibration's: the multi file's
                disp = spectra.dispersion(coeffs, x)
                lo, hi = spectra.wavelength(coeffs, x - 0.5), spectra.wavelength(coeffs, x + 0.5)
                ftf = (np.random.default_rng([seed, 18, slot.ifuslot, AMPS.index(amp)]).normal(1.0, 0.05, 112)
                       [:, None] * (1.0 + 0.02 * (cal - 4500.0) / 1000.0))
                w0, w1 = (amp_shift or {}).get((e, slot.ifuslot, amp), (0.0, 0.0))
                wave = cal
                if w0 or w1:                                 # the light each pixel sees (module docstring)
                    wave, lo, hi = moved(cal, w0, w1), moved(lo, w0, w1), moved(hi, w0, w1)
                    disp = disp * (1.0 - w1)
                conv = spectra.AREA_CM2 * EXPTIME / spectra.HC_ERG_A * spectra.throughput(wave) * wave   # e- per (erg/cm²)
                sky = spectra.electrons(spectra.on_pixels(sky_fine, wave) * spectra.FIBER_AREA_ARCSEC2, wave, disp,
                                        EXPTIME)
                for lam, fl in sky_lines:
                    sky = sky + fl * spectra.FIBER_AREA_ARCSEC2 * conv * _pixel_gauss(lo, hi, lam, lsf)
                sky = sky * sky_factor * ftf
                var_bg = sky + EXTRACTION_PIXELS * READ_NOISE ** 2
                src = np.zeros_like(wave)
                reach = 8.0
                for k in np.nonzero((np.abs(sx_l) < 24.3 + reach) & (np.abs(sy_l) < 24.3 + reach))[0]:
                    lam, fl = truth["wave"][k], truth["flux"][k]
                    d_adr = adr_offset(lam)
                    d = np.hypot(fxy[:, 0] - (sx_l[k] + d_adr), fxy[:, 1] - sy_l[k])
                    near = np.nonzero(d < reach)[0]
                    if near.size == 0:
                        continue
                    p = fraction(d[near], scene.fwhm, scene.beta, lam)
                    cols = np.nonzero(np.abs(wave[near].mean(axis=0) - lam) < 6 * truth["sigma_obs"][k] + 5)[0]
                    g = _pixel_gauss(lo[np.ix_(near, cols)], hi[np.ix_(near, cols)], lam, truth["sigma_obs"][k])
                    m = p[:, None] * g * conv[np.ix_(near, cols)] * trans * ftf[np.ix_(near, cols)]   # e- per erg/cm²/s
                    src[np.ix_(near, cols)] += fl * m
                    f1_acc[k] += np.sum(m * m / var_bg[np.ix_(near, cols)])
                for k in np.nonzero((np.abs(sx_s) < 24.3 + reach) & (np.abs(sy_s) < 24.3 + reach))[0]:
                    d = np.hypot(fxy[:, 0:1] - (sx_s[k] + adr_offset(wave)), fxy[:, 1:2] - sy_s[k])
                    near = np.nonzero(d.min(axis=1) < reach)[0]
                    if near.size == 0:
                        continue
                    sed = np.interp(wave[near], SED_WAVE, stellar_sed(stars["teff"][k], stars["g"][k]))
                    p = fraction(d[near], scene.fwhm, scene.beta, wave[near])
                    src[near] += spectra.electrons(p * sed, wave[near], disp[near], EXPTIME) * trans * ftf[near]
                expect = sky + src
                if noise == "poisson":
                    data = arng.poisson(np.clip(expect, 0, None)).astype(float)
                else:                               # Gaussian of the same variance (tests of symmetry)
                    data = expect + arng.normal(0.0, 1.0, expect.shape) * np.sqrt(np.clip(expect, 0, None))
                data = data + arng.normal(0.0, READ_NOISE * np.sqrt(EXTRACTION_PIXELS), expect.shape)
                skysub = data - sky
                err1d = np.sqrt(var_bg + np.clip(src, 0, None))
                err2d = np.ones((NCOL, NCOL), np.uint8)
                trace = 16.0 + 8.73 * np.arange(112)[:, None] + 0.002 * (x[None, :] - 516.0)   # 1-based rows
                masked = arng.uniform(size=wave.shape) < MASK_FRACTION
                skysub[masked] = 0.0
                rows = np.clip(np.floor(trace + 0.5).astype(int) - 1, 0, NCOL - 1)
                err2d[rows[masked], np.nonzero(masked)[1]] = 0
                chi2 = np.abs(arng.normal(1.0, 0.1, wave.shape))
                h = fits.Header()
                for key, val in (("IFUSLOT", slot.ifuslot), ("SPECID", f"{slot.specid:03d}"), ("IFUID", slot.ifuid),
                                 ("AMP", amp), ("EXPTIME", EXPTIME), ("STRUCTAZ", round((pa + 180.0) % 360.0, 6)),
                                 ("PARANGLE", round(scene.header_pa, 6)), ("OBJECT", "DEXsim"),
                                 ("HETRED", "sim.detect_shot")):
                    h[key] = val
                f32 = np.float32
                hdul = fits.HDUList([fits.PrimaryHDU(header=h), fits.ImageHDU(err2d, name="error"),
                                     fits.ImageHDU(fxy.astype(f32), name="ifupos"),
                                     fits.ImageHDU(chi2.astype(f32), name="chi2"),
                                     fits.ImageHDU(data.astype(f32), name="spectrum"),
                                     fits.ImageHDU(cal.astype(f32), name="wavelength"),
                                     fits.ImageHDU(trace.astype(f32), name="trace"),
                                     fits.ImageHDU(ftf.astype(f32), name="fiber_to_fiber"),
                                     fits.ImageHDU(err1d.astype(f32), name="error1d"),
                                     fits.ImageHDU(skysub.astype(f32), name="sky_subtracted"),
                                     fits.ImageHDU(sky.astype(f32), name="sky_spectrum")])
                path = layout.path("multi", night=night, obs=obs, exp=e, specid=slot.specid, ifuslot=slot.ifuslot,
                                   ifuid=slot.ifuid, amp=amp)
                path.parent.mkdir(parents=True, exist_ok=True)
                hdul.writeto(path, overwrite=True)
                files.append(str(path))
        fp = {s.ifuslot: s for s in slots}
        tables.append(AF.fiber_coords(fibermaps, fp, ra0, dec0, pa, DITHERS[e - 1], stamps[e - 1], f"exp{e:02d}"))
    truth["f1"] = np.where(f1_acc > 0, 1.0 / np.sqrt(np.where(f1_acc > 0, f1_acc, 1.0)), np.inf)
    write_text_atomic(layout.path("dithall", datevobs=datevobs), AF.format_dith(tables))
    t = scene.transparency
    write_text_atomic(layout.path("astrom_norm", datevobs=datevobs), format_norm(t / t.mean()))
    write_text_atomic(layout.path("radec_final", datevobs=datevobs), format_radec(ra0, dec0, pa))
    grid = 3470.0 + 2.0 * np.arange(1036)
    tp = spectra.throughput(grid) * t.mean()
    write_text_atomic(layout.path("throughput", month=night[:6], datevobs=datevobs),
                      "".join(f" {w:6.1f} {v:7.4f} {0.0:7.4f} {0.0:7.4f} {1.0:7.4f} {v:7.4f}\n" for w, v in zip(grid, tp)))
    if write_tarlist:
        from hetred.lists.tarlist import TarEntry

        tl = layout.path("tarlist", month=night[:6])
        tl.parent.mkdir(parents=True, exist_ok=True)
        old = tl.read_text() if tl.exists() else ""
        new = [TarEntry(night, obs, e, stamps[e - 1], s.ifuslot, a, "sci").line for e in (1, 2, 3) for s in slots
               for a in AMPS]
        tl.write_text(old + "\n".join(new) + "\n")
    return DetectShot(datevobs, scene, slots, list(line_slots), list(blank_slots), truth, stars, stamps, files)
