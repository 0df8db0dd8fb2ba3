"""Render one raw amp frame: light in the oriented frame, then the detector in readout orientation.

Per exposure kind, the electrons per fiber and column entering the spectrograph are:

* ``zro``: none (bias: read noise, bias level and structure, traps, hot pixels, cosmic rays and
  the mean dark current of the ~27-s dark time);
* ``drk``: dark current only (Poisson);
* ``flt``: the lamp-flat continuum x fiber throughput x the lamp illumination of the amp, scaled
  so that the nominal fiber's peak pixel gets 0.8-1.2e4 electrons;
* ``cmp``: the lamp's lines (``hg`` or ``cd-a``) with the fiber's LSF, integrated over pixels,
  brightest line peaking at 1-3e4 electrons per pixel (unsaturated);
* ``twi``: the solar spectrum x end-to-end throughput x fiber throughput, peak 4.5e3-1.5e4
  electrons per pixel (level 120-460 in Karl's improcn units: every twilight passes his
  twilight-background cut, level > 100);
* ``sci``: night sky (continuum + emission lines, ~120 electrons per fiber per column at
  4540 A in 360 s) plus the sources of the shot's scene (:mod:`hetred.sim.sky`) x transparency,
  through throughput, area, exposure time and the LSF. With a sky variation
  (:mod:`hetred.sim.skyvar`) the amp's W0/W1 move *all* its light: the pixel of calibration
  wavelength lambda sees the sky and every source at lambda' = lambda + W0 + W1 (4500 - lambda)
  (Karl's convention: the amp's wavelength-calibration error, which detect corrects).

The electrons are spread over rows with the fiber profiles and halo (:mod:`hetred.sim.optics`),
multiplied by the pixel flat, dark current added, Poisson-sampled, turned to readout orientation
(:func:`hetred.virus.amp.deorient`), hot pixels and cosmic rays added, and digitised
(:func:`hetred.sim.detector.digitise`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from scipy.ndimage import gaussian_filter1d

from hetred.sim import detector as det_mod
from hetred.sim import header as hdr
from hetred.sim import optics as opt_mod
from hetred.sim import seeds, spectra
from hetred.sim.focalplane import detector_id
from hetred.sim.plan import Exposure, Observation
from hetred.virus import amp as ampgeom
from hetred.virus.fplane import FplaneEntry

FLAT_PEAK = (2.5e4, 3.5e4)      #: e- in the peak pixel of a nominal fiber (medians 11-15 kADU: above rsetflat's 7000)
ARC_PEAK = (1.0e4, 3.0e4)
TWI_PEAK = (4.5e3, 1.5e4)      #: e-; level = central biweight / 25 ADU = peak / (32-38)
SKY_SCALE = (0.8, 1.5)          #: dark-time sky brightness factor per shot
SUBSAMPLE = 3                   #: wavelength samples per pixel for the source flux


@dataclass
class ExposureContext:
    """What is common to every amp of one exposure."""

    exposure: Exposure
    observation: Observation
    header_values: dict
    level: float = 0.0              #: flt/cmp/twi peak electrons; sci sky factor
    scene: object | None = None     #: sky.ShotScene for science exposures
    solar: np.ndarray | None = None  #: solar spectrum on spectra.FINE (twilight)
    skyvar: object | None = None    #: skyvar.SkyVariation: the sky differs between amps (sci)


def exposure_context(seed: int, e: Exposure, o: Observation, scene=None,
                     solar: np.ndarray | None = None, skyvar=None) -> ExposureContext:
    r = seeds.rng(seed, seeds.EXPOSURE, night=e.night, obs=e.obs, exp=e.exp, ifuslot=999)
    level = {"flt": lambda: r.uniform(*FLAT_PEAK), "cmp": lambda: r.uniform(*ARC_PEAK),
             "twi": lambda: r.uniform(*TWI_PEAK)}.get(e.kind, lambda: 0.0)()
    if e.kind == "sci":
        rs = seeds.rng(seed, seeds.EXPOSURE, night=e.night, obs=e.obs, ifuslot=998)
        level = rs.uniform(*SKY_SCALE) * r.normal(1.0, 0.03)
    pointing = None
    if scene is not None:
        pointing = (scene.header_ra, scene.header_dec, scene.header_pa)
    values = hdr.exposure_values(seed, e, o, pointing)
    return ExposureContext(e, o, values, float(level), scene, solar, skyvar if e.kind == "sci" else None)


@dataclass
class Rendered:
    data: np.ndarray          #: (1032, 1064) uint16, readout orientation
    bias_level: float         #: true bias level (ADU)
    injected: np.ndarray | None = None   #: (112,) source electrons per fiber (sci)
    #: cosmic-ray deposits (raw rows, raw cols, electrons) in the data section (sci only)
    cosmics: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: per emission-line source: (line index, fibers (m,), electrons per fiber (m,)) (sci only)
    lines: list[tuple[int, np.ndarray, np.ndarray]] | None = None


@dataclass
class AmpModel:
    """One amp on one night: detector + optics + the amp's header values."""

    seed: int
    night: str
    slot: FplaneEntry
    amp: str
    night_start: datetime
    family: str = "classic"     #: optics family (hetred.sim.families)
    detector: det_mod.Detector = field(init=False)
    optics: opt_mod.Optics = field(init=False)

    def __post_init__(self) -> None:
        s, n, i, a = self.seed, self.night, self.slot.ifuslot, self.amp
        self.ampname = det_mod.ampname_of(a)
        self.detector = det_mod.build_detector(s, n, i, a)
        self.optics = opt_mod.build_optics(s, n, i, a, self.family)
        self.pixelflat = np.ascontiguousarray(ampgeom.orient(self.detector.pixelflat_raw, a, self.ampname))
        r = seeds.rng(s, seeds.OPTICS, ifuslot=i, amp=a, exp=1)
        # FCU lamp illumination: smooth over the focal plane (a few %) and 1 % per amp
        self.lamp_illum = float((1 + 0.03 * np.tanh((self.slot.x_fp + 0.5 * self.slot.y_fp) / 400.0))
                                * r.normal(1.0, 0.01))
        self.amp_header = hdr.amp_values(self.slot, a, self.detector.gain_header,
                                          self.detector.rdnoise_header, self.detector.biasset,
                                          detector_id(self.slot.specid, a[0]), self.ampname)
        self.sky_pixels = None      # cached night-sky electrons per second (sci)

    # ------------------------------------------------------------------ light
    def _nominal_scale(self, peak: float) -> float:
        """Electrons per column that put ``peak`` electrons in a nominal fiber's peak pixel."""
        return peak / self.optics.peak_frac

    def fiber_spectra(self, ctx: ExposureContext) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(electrons per fiber and column (112, 1032), source electrons or None)."""
        e, o = ctx.exposure, self.optics
        if e.kind in ("zro", "drk"):
            return None, None
        if e.kind == "flt":
            shape = spectra.on_pixels(spectra.lamp_flat_fine(), o.wave) * (o.dwave / 2.0)
            return self._nominal_scale(ctx.level) * shape * o.ftf * self.lamp_illum, None
        if e.kind == "cmp":
            lines = spectra.ARC_LINES[e.object]
            frac = spectra.lines_per_pixel(o.coeffs, o.fwhm, lines)
            peak_frac_line = _central_pixel_fraction()
            return (ctx.level / (o.peak_frac * peak_frac_line)) * frac * o.ftf * self.lamp_illum, None
        if e.kind == "twi":
            solar = ctx.solar if ctx.solar is not None else spectra.solar_fine(None)
            shape = (spectra.on_pixels(solar, o.wave) * spectra.throughput(o.wave)
                     / spectra.throughput(4600.0) * (o.dwave / 2.0))
            return self._nominal_scale(ctx.level) * shape * o.ftf, None
        if e.kind == "sci":
            extra = None
            if ctx.skyvar is not None:      # this amp's sky level, wavelength and continuum fibers
                from hetred.sim import skyvar

                a = self.amp_sky(ctx)
                sky = skyvar.sky_rate(o, a.w0, a.w1) * (a.factor * ctx.level * e.exptime)
                tr = float(ctx.scene.transparency[e.exp - 1]) if ctx.scene is not None else 1.0
                extra = skyvar.continuum_electrons(o, a, e.exptime, tr)
            else:
                sky = self._sky_rate() * (ctx.level * e.exptime)
            src = self._sources(ctx)
            if extra is not None:
                src = extra if src is None else src + extra
            total = sky * o.ftf
            if src is not None:
                src = src * o.ftf
                total = total + src
            return total, src
        raise ValueError(f"unknown exposure kind {e.kind!r}")

    def amp_sky(self, ctx: ExposureContext):
        """This amp's draw of the exposure's sky variation (``skyvar.AmpSky``), or None."""
        if ctx.skyvar is None:
            return None
        from hetred.sim import skyvar

        e = ctx.exposure
        return skyvar.draw(self.seed, ctx.skyvar, e.night, e.obs, e.exp, self.slot.ifuslot, self.amp,
                           self.optics.dead)

    def _sky_rate(self) -> np.ndarray:
        """Night-sky electrons per second per fiber and column (before fiber throughput)."""
        if self.sky_pixels is None:
            o = self.optics
            cont = spectra.on_pixels(spectra.sky_continuum_fine(), o.wave) * spectra.FIBER_AREA_ARCSEC2
            rate = spectra.electrons(cont, o.wave, o.dwave, 1.0)
            for lam, flux in spectra.sky_line_fluxes():
                frac = spectra.lines_per_pixel(o.coeffs, o.fwhm, [(lam, 1.0)])
                rate += frac * (flux * spectra.FIBER_AREA_ARCSEC2 * spectra.AREA_CM2 / spectra.HC_ERG_A
                                * lam * float(spectra.throughput(lam)))
            self.sky_pixels = rate
        return self.sky_pixels

    def light_waves(self, ctx: ExposureContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the light of the sources comes from: (subsampled wavelengths (112, 1032 *
        SUBSAMPLE), pixel wavelengths (112, 1032), pixel widths (112, 1032)), Å, of the *light*
        each pixel receives: the calibration's (``optics.wave``, ``dwave``) moved by the amp's
        W0/W1 of the sky variation (:func:`hetred.sim.skyvar.moved`; unchanged without one)."""
        o = self.optics
        sub = (np.arange(SUBSAMPLE) + 0.5) / SUBSAMPLE - 0.5
        xs = (np.arange(opt_mod.NCOLS)[:, None] + sub[None, :]).ravel()
        wave_sub = spectra.wavelength(o.coeffs, xs)
        a = self.amp_sky(ctx)
        if a is None:
            return wave_sub, o.wave, o.dwave
        from hetred.sim.skyvar import moved

        return moved(wave_sub, a.w0, a.w1), moved(o.wave, a.w0, a.w1), o.dwave * (1.0 - a.w1)

    def _sources(self, ctx: ExposureContext) -> np.ndarray | None:
        """Source electrons per fiber and column (LSF applied), or None without a scene; the
        sources seen at the amp's moved wavelengths (:meth:`light_waves`)."""
        if ctx.scene is None:
            return None
        from hetred.sim import sky

        o, e = self.optics, ctx.exposure
        wave_sub, wave, dwave = self.light_waves(ctx)
        flux = sky.fiber_source_flux(ctx.scene, self.slot, self.amp, e.exp, wave_sub, ifuid=self.slot.ifuid)
        flux = flux.reshape(opt_mod.NFIB, opt_mod.NCOLS, SUBSAMPLE).mean(axis=2)
        hit = np.nonzero(flux.any(axis=1))[0]
        if hit.size == 0:
            return None
        flux *= float(ctx.scene.transparency[e.exp - 1])
        elec = spectra.electrons(flux, wave, dwave, e.exptime)
        mid = opt_mod.NCOLS // 2
        for f in hit:     # LSF: Gaussian in pixels with the fiber's width at mid-column
            sig = o.fwhm[f, mid] / 2.3548200450309493 / o.dwave[f, mid]
            elec[f] = gaussian_filter1d(elec[f], sig, mode="constant", truncate=5.0)
        return elec

    def line_electrons(self, ctx: ExposureContext) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Per emission-line source of the scene: (line index, fibers (m,) 0-based, electrons
        per fiber summed over columns (m,)), computed exactly as :meth:`_sources` does for the
        sum of all sources (transparency, throughput, LSF, fiber-to-fiber). No random draws."""
        if ctx.scene is None or len(ctx.scene.lines) == 0:
            return []
        from hetred.sim import sky

        o, e = self.optics, ctx.exposure
        wave_sub, wave, dwave = self.light_waves(ctx)
        mid = opt_mod.NCOLS // 2
        out = []
        for k, near, flux in sky.line_source_fluxes(ctx.scene, self.slot, self.amp, e.exp, wave_sub,
                                                    ifuid=self.slot.ifuid):
            flux = flux.reshape(len(near), opt_mod.NCOLS, SUBSAMPLE).mean(axis=2)
            flux *= float(ctx.scene.transparency[e.exp - 1])
            elec = spectra.electrons(flux, wave[near], dwave[near], e.exptime)
            for j, f in enumerate(near):
                sig = o.fwhm[f, mid] / 2.3548200450309493 / o.dwave[f, mid]
                elec[j] = gaussian_filter1d(elec[j], sig, mode="constant", truncate=5.0)
            elec *= o.ftf[near]
            out.append((k, near, elec.sum(axis=1)))
        return out

    # ------------------------------------------------------------------ frame
    def render(self, ctx: ExposureContext) -> Rendered:
        e = ctx.exposure
        d = self.detector
        r = seeds.rng(self.seed, seeds.FRAME, night=e.night, obs=e.obs, exp=e.exp,
                      ifuslot=self.slot.ifuslot, amp=self.amp)
        rj = seeds.rng(self.seed, seeds.EXPOSURE, night=e.night, obs=e.obs, exp=e.exp,
                       ifuslot=self.slot.ifuslot, amp=self.amp)
        level = d.bias_level(e.start, self.night_start, e.seq, float(rj.normal(0.0, 0.6)))
        spec, src = self.fiber_spectra(ctx)
        dark_mean = d.dark_rate * e.darktime
        extra_adu = 0.0
        if spec is None and e.kind == "zro":
            dense = None
            extra_adu = dark_mean / d.gain_true          # 0.04 e-: below any noise, kept as a mean
        else:
            img = self.optics.spread(spec) if spec is not None else np.zeros((opt_mod.NROWS, opt_mod.NCOLS))
            img *= self.pixelflat
            img += dark_mean
            np.maximum(img, 0.0, out=img)
            dense = ampgeom.deorient(det_mod.poisson(r, img), self.amp, self.ampname)
        hot_e = r.poisson(d.hot[:, 2] * e.darktime).astype(float)
        cr_r, cr_c, cr_e = det_mod.cosmic_rays(r, e.darktime)
        sparse = (np.concatenate([d.hot[:, 0].astype(int), cr_r]),
                  np.concatenate([d.hot[:, 1].astype(int), cr_c]),
                  np.concatenate([hot_e, cr_e]))
        data = det_mod.digitise(dense, d, level, r, sparse=sparse, extra_adu=extra_adu)
        injected = src.sum(axis=1) if src is not None else None
        if e.kind != "sci":
            return Rendered(data=data, bias_level=level, injected=injected)
        return Rendered(data=data, bias_level=level, injected=injected, cosmics=(cr_r, cr_c, cr_e),
                        lines=self.line_electrons(ctx))

    def fits(self, ctx: ExposureContext) -> tuple[bytes, Rendered]:
        """The complete FITS file of this amp in this exposure."""
        out = self.render(ctx)
        values = dict(ctx.header_values)
        values.update(self.amp_header)
        values["DETTEMP"] = -110.0 + 0.02 * np.sin(ctx.exposure.mjd * 500.0 + self.slot.ifuslot)
        return hdr.fits_bytes(hdr.build_header(values), out.data), out


_CPF: list[float] = []


def _central_pixel_fraction() -> float:
    """Fraction of a nominal arc line (FWHM 5.5 A, 1.97 A/px) in its central pixel."""
    if not _CPF:
        from scipy.special import erf

        s = spectra.LSF_FWHM / 2.3548200450309493 / 1.97
        _CPF.append(float(erf(0.5 / (np.sqrt(2) * s))))
    return _CPF[0]


# ---------------------------------------------------------------------------------- truth helpers

def background_adu(model: AmpModel, ctx: ExposureContext) -> np.ndarray:
    """The noiseless smooth background of one amp in one exposure, for checking background models.

    It is what :meth:`AmpModel.render` adds to the fiber light before noise: the halo (scattered
    light, ``optics.halo_light(spectra)``) times the pixel flat, plus the mean dark current
    (``dark_rate * darktime``), divided by the true gain. Fiber-profile light, hot pixels, cosmic
    rays, bias and noise are left out. Returns (1032, 1032) float32 ADU in the RAW (readout)
    orientation of the trimmed frame. Does not change the model's random streams.
    """
    d, o = model.detector, model.optics
    spec, _ = model.fiber_spectra(ctx)
    img = np.zeros((opt_mod.NROWS, opt_mod.NCOLS), dtype=np.float32)
    if spec is not None and o.halo_frac > 0:
        img += o.halo_light(spec)
    img *= model.pixelflat
    img += np.float32(d.dark_rate * ctx.exposure.darktime)
    np.maximum(img, 0.0, out=img)
    img /= np.float32(d.gain_true)
    return np.ascontiguousarray(ampgeom.deorient(img, model.amp, model.ampname), dtype=np.float32)


def shot_scenes(seed: int, night_plan, slots) -> dict:
    """{obs: ShotScene} of a planned night's science shots (their seeded draws, the plan's
    pointing, bright lines, stars per IFU and g range): one place for simulate_archive and
    :func:`night_contexts`."""
    from hetred.sim import sky

    return {o.obs: sky.make_shot_scene(seeds.rng(seed, seeds.SCENE, night=night_plan.night, obs=o.obs),
                                       night_plan.night, o.obs, slots, ra0=o.ra0, dec0=o.dec0,
                                       bright_lines=o.bright_lines, n_stars_per_ifu=o.stars_per_ifu,
                                       g_range=o.star_g)
            for o in night_plan.shots}


def night_contexts(seed: int, night_plan, slots, solar: np.ndarray | None = None,
                   skyvar=None) -> list[ExposureContext]:
    """The exposure contexts of a planned night exactly as :func:`hetred.sim.simulate_archive`
    builds them (science scenes and the sky variation included), in plan order; for truth checks
    in tests."""
    scenes = shot_scenes(seed, night_plan, slots)
    return [exposure_context(seed, e, o, scenes.get(o.obs), solar, skyvar)
            for o in night_plan.observations for e in o.exposures]
