"""A simulated shot at the level of the reconstructed IFU images (what ``hetred sci`` hands to
``hetred astrom``), for the astrometry's tests, demo and benchmark without raw frames.

:func:`simulate_cofes_shot` draws a scene (:func:`hetred.sim.sky.make_shot_scene`: true pointing,
header pointing a few arcsec off, PARANGLE = pa - angoff with angoff 1.4-1.65 deg, stars, seeing,
transparency per exposure), puts its stars into every fiber of every IFU in each dithered
exposure exactly as the raw-frame simulator does (:func:`hetred.sim.sky.fiber_source_flux`,
Moffat PSF through the 1.5" fibers, ADR, the dither of :data:`hetred.virus.coords.DITHERS`),
turns that into each fiber's CoFeS band value -- the sky-subtracted electrons per CCD column of
columns 400-800 (4290-5070 A) after 360 s through the simulator's throughput, times the
exposure's transparency, plus the noise of the sky, dark current and read noise of ~400 columns
-- and reconstructs the images with the reduction's own :func:`hetred.sci.cofes.cofes_image`.

Written into a folder (the layout-free input of ``hetred astrom --images``):
``expNN/virus/CoFeS{stamp}_{slot}_sci.fits``, ``radec.orig`` (header pointing: TRAJRA [h],
TRAJDEC, PARANGLE), ``fplane.txt`` (the real 8-column format) and ``shout.ifustars``; the truth
(scene, fiber RA/Dec per exposure, relative transparency) is returned, never written there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetred.sim import spectra
from hetred.sim.sky import ShotScene, fiber_source_flux, make_shot_scene, write_catalogue
from hetred.virus.coords import DITHERS, fiber_radec
from hetred.virus.fplane import FplaneEntry, write_fplane
from hetred.virus.ifu import amp_positions

AMPS = ("LL", "LU", "RL", "RU")
BAND_COLUMNS = (400, 800)          #: native CCD columns of vrecon's band (1-based)
EXPTIME = 360.0                    #: s
READ_NOISE_E = 3.0                 #: e- per pixel
EXTRACTION_PIXELS = 5              #: pixels summed across a fiber per column
DARK_E = 0.5                       #: e- per column and fiber in 360 s
BIWEIGHT_EFFICIENCY = 1.1          #: noise of the band's biweight / (sigma per column / sqrt(n))


@dataclass
class CofesShot:
    """What :func:`simulate_cofes_shot` made: the folder, the scene and the truth."""

    folder: Path
    scene: ShotScene
    slots: list[FplaneEntry]
    stamps: list[str]
    fiber_ra: dict[int, dict[int, dict[str, np.ndarray]]] = field(default_factory=dict)
    fiber_dec: dict[int, dict[int, dict[str, np.ndarray]]] = field(default_factory=dict)

    @property
    def norm(self) -> np.ndarray:
        """The injected relative transparency (what norm.dat should be)."""
        t = self.scene.transparency
        return t / t.mean()


def _band() -> tuple[np.ndarray, np.ndarray]:
    """Wavelength and dispersion (A) of the band's native columns (simulator's nominal solution)."""
    x = np.arange(BAND_COLUMNS[0] - 1, BAND_COLUMNS[1], dtype=float)
    c0, c1, c2 = spectra.WAVE_POLY
    return c0 + c1 * x + c2 * x * x, c1 + 2 * c2 * x


def band_noise(wave: np.ndarray, dwave: np.ndarray, sky_scale: float = 1.0) -> float:
    """1-sigma noise (e- per column) of a fiber's band value: sky, dark and read noise per column
    (Poisson sky of the fiber area), over the band's columns, through the biweight."""
    sky = spectra.electrons(spectra.on_pixels(spectra.sky_continuum_fine(), wave) * spectra.FIBER_AREA_ARCSEC2,
                            wave, dwave, EXPTIME) * sky_scale
    var = float(np.mean(sky)) + DARK_E + EXTRACTION_PIXELS * READ_NOISE_E ** 2
    return BIWEIGHT_EFFICIENCY * np.sqrt(var / len(wave))


def simulate_cofes_shot(folder: str | Path, slots: list[FplaneEntry], seed: int = 0, night: str = "20180611",
                        obs: int = 17, n_stars_per_ifu: float = 3.0, g_range: tuple[float, float] = (16.5, 21.5),
                        star_half: float = 24.0, ra0: float | None = None, dec0: float | None = None
                        ) -> CofesShot:
    """Simulate one shot's CoFeS images into ``folder`` (module docstring)."""
    from astropy.io import fits

    from hetred.sci.cofes import cofes_header, cofes_image

    rng = np.random.default_rng(seed)
    scene = make_shot_scene(rng, night, obs, slots, n_stars_per_ifu=n_stars_per_ifu, n_lines_per_ifu=0.0,
                            ra0=ra0, dec0=dec0, g_range=g_range, star_half=star_half)
    folder = Path(folder)
    wave, dwave = _band()
    sigma = band_noise(wave, dwave)
    stamps = [f"{night}T{5 + k // 2:02d}{(k * 7) % 60:02d}{(k * 13) % 60:02d}.{k}" for k in range(len(DITHERS))]
    shot = CofesShot(folder, scene, list(slots), stamps)
    for exp in range(1, len(DITHERS) + 1):
        shot.fiber_ra[exp], shot.fiber_dec[exp] = {}, {}
        for slot in (s for s in slots if s.is_ifu):
            xy, fl = [], []
            shot.fiber_ra[exp][slot.ifuslot], shot.fiber_dec[exp][slot.ifuslot] = {}, {}
            for amp in AMPS:
                pos = amp_positions(amp, slot.ifuid)
                flux = fiber_source_flux(scene, slot, amp, exp, np.broadcast_to(wave, (len(pos), len(wave))))
                elec = spectra.electrons(flux * scene.transparency[exp - 1], wave, dwave, EXPTIME)
                band = np.median(elec, axis=1) + rng.normal(0.0, sigma, len(pos))
                xy.append(pos)
                fl.append(band)
                ra, dec = fiber_radec(slot, pos, exp, scene.ra0, scene.dec0, scene.pa)
                shot.fiber_ra[exp][slot.ifuslot][amp] = ra
                shot.fiber_dec[exp][slot.ifuslot][amp] = dec
            image = cofes_image(np.vstack(xy), np.concatenate(fl))
            path = folder / f"exp{exp:02d}" / "virus" / f"CoFeS{stamps[exp - 1]}_{slot.ifuslot:03d}_sci.fits"
            path.parent.mkdir(parents=True, exist_ok=True)
            fits.HDUList([fits.PrimaryHDU(image, cofes_header(ifuslot=slot.ifuslot, ifuid=slot.ifuid,
                                                              specid=slot.specid))]).writeto(path, overwrite=True)
    (folder / "radec.orig").write_text(f"{scene.header_ra / 15.0:.6f} {scene.header_dec:.6f} {scene.header_pa:.6f}\n")
    from hetred.sim.archive import archive_fplane

    write_fplane(folder / "fplane.txt", archive_fplane(list(slots)))
    write_catalogue(scene, folder / "shout.ifustars")
    return shot
