"""``norm.dat`` from star fluxes fitted through the fibers (``norm_method = "fiber"``).

The stars are vdrp's (``getNorm``): those of the exposure registration found in every exposure and
brighter than ``fluxnorm_mag_max`` in each (PSF magnitudes of the images). Their fluxes come from
:mod:`hetred.astrom.fibermodel` instead of the image PSF: per exposure the seeing FWHM is fitted to
the brightest of them, then every star's flux and position. The estimator is vdrp's: per exposure
astropy's ``biweight_location`` of f_k / mean_k(f).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hetred.astrom.fibermodel import Recon, StarModel, fit_seeing, fit_star
from hetred.astrom.register import FrameStars, Registration

WINDOW = 6.0          #: arcsec around a star fitted
SEEING_STARS = 25     #: the brightest stars that set an exposure's seeing


def _seeing_stars(inp, e, fr: FrameStars, settings) -> list[tuple[StarModel, float, float]]:
    """The exposure's :data:`SEEING_STARS` brightest registration stars brighter than
    ``fluxnorm_mag_max`` + 1, as fiber models."""
    order = np.argsort(fr.mag, kind="stable")
    out = []
    for i in order:
        if fr.mag[i] >= settings.fluxnorm_mag_max + 1.0 or len(out) >= SEEING_STARS:
            break
        slot = int(fr.ifuslot[i])
        if slot not in e.images or slot not in inp.fibermaps or slot not in inp.fplane:
            continue
        rc: Recon = e.recon.get(slot, Recon())
        x = rc.x0 + (fr.x[i] - inp.fplane[slot].y_fp - 1.0) * rc.pixel
        y = rc.y0 + (fr.y[i] - inp.fplane[slot].x_fp - 1.0) * rc.pixel
        fibers = np.vstack([np.asarray(v, float) for v in inp.fibermaps[slot].values()])
        m = StarModel(rc, fibers, e.images[slot], x, y, WINDOW)
        if m.data.size >= 5:
            out.append((m, x, y))
    return out


def fiber_norm(inp, frames: list[FrameStars], reg: Registration, settings) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(norm (nframes,) or None without a usable star, info) for a shot (module docstring).

    inp: :class:`hetred.astrom.solve.ShotInput` whose exposures carry ``images`` and ``recon``;
    frames, reg: the registration's stars and matches.
    """
    from astropy.stats import biweight_location, biweight_scale

    nf = len(frames)
    sel = np.nonzero(np.all(reg.index >= 0, axis=1)
                     & np.all(np.nan_to_num(reg.mags, nan=99.0) < settings.fluxnorm_mag_max, axis=1))[0]
    info: dict[str, Any] = {"method": "fiber", "stars": 0, "seeing_arcsec": []}
    if sel.size == 0:
        return None, info
    flux = np.full((sel.size, nf), np.nan)
    for k, e in enumerate(inp.exposures):
        fr = frames[k]
        models = []
        for row, m in enumerate(sel):
            i = reg.index[m, k]
            slot = int(fr.ifuslot[i])
            if slot not in e.images or slot not in inp.fibermaps or slot not in inp.fplane:
                models.append(None)
                continue
            rc: Recon = e.recon.get(slot, Recon())
            px = fr.x[i] - inp.fplane[slot].y_fp            # 1-based pixel x (FrameStars: X + Y_FP)
            py = fr.y[i] - inp.fplane[slot].x_fp
            x, y = rc.x0 + (px - 1.0) * rc.pixel, rc.y0 + (py - 1.0) * rc.pixel
            fibers = np.vstack([np.asarray(v, float) for v in inp.fibermaps[slot].values()])
            models.append((StarModel(rc, fibers, e.images[slot], x, y, WINDOW), x, y))
        usable = [(row, m) for row, m in enumerate(models) if m is not None and m[0].data.size >= 5]
        if not usable:
            return None, info
        seeing = fit_seeing(_seeing_stars(inp, e, fr, settings), settings.norm_beta)
        info["seeing_arcsec"].append(round(seeing, 3))
        for row, (model, x, y) in usable:
            f, _, _, _ = fit_star(model, x, y, seeing, settings.norm_beta)
            flux[row, k] = f
    good = np.all(np.isfinite(flux) & (flux > 0), axis=1)
    info["stars"] = int(good.sum())
    if not np.any(good):
        return None, info
    f = flux[good]
    favg = np.sum(f, axis=1) / nf
    ratios = f / favg[:, None]
    info["ratio_scatter"] = [round(float(biweight_scale(ratios[:, k])), 4) for k in range(nf)]
    return np.array([biweight_location(ratios[:, k]) for k in range(nf)]), info
