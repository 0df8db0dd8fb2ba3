"""``--mode inject``: point-source emission lines added to the fibers before the search, for
completeness runs (fitradecsp modes 110/111 ``addem``, ``getfluxsim``; detect_fullsky.md §1.10).

A sources file has one line per source: ``ra dec wave flux [sigma]`` (deg, deg, Å, erg/s/cm²,
Å; sigma default 2.3 Å, Karl's ``wsig``: the observed Gaussian width). Each fiber receives
``flux x p(d) x N(lambda; wave, sigma) x 2 Å`` per grid pixel, p the PSF model of the search
(Moffat through the fiber, FWHM(lambda), ADR), in flux and in counts (through the fiber's own
counts-to-flux ratio). Errors of pixels where the source exceeds 3 sigma grow by the source's
Poisson noise (Karl); with ``rng = numpy`` (the fixed profile) that Poisson noise is also added
to the data (Karl's injections are noiseless).

Differences from Karl's getfluxsim: the fiber fraction is the integral of the PSF over each
fiber of every exposure (Karl spread a 50 x 50 grid over the fibers of all exposures, each point
to the first fiber containing it, which puts a source's light into one exposure's fibers only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred.detect.loading import FiberSet
from hetred.detect.psf import PsfModel, node_interp, tangent
from hetred.errors import HetredError

DEFAULT_SIGMA = 2.3
GRID = 3470.0 + 2.0 * np.arange(1036)


def read_sources(path: str | Path) -> np.ndarray:
    """(n, 5) ra, dec, wave, flux (erg/s/cm²), sigma from a sources file; a bad line fails naming it."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise HetredError(f"sources file {p}: cannot read ({err.strerror or err})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        t = line.split()
        if not t or t[0].startswith("#"):
            continue
        try:
            v = [float(a) for a in t[:5]]
        except ValueError:
            raise HetredError(f"{p} line {n}: expected ra dec wave flux [sigma]") from None
        if len(v) < 4 or v[3] <= 0 or v[3] > 1e-10:
            raise HetredError(f"{p} line {n}: expected ra dec wave flux [sigma] with flux in erg/s/cm^2 (0 < flux < 1e-10)")
        rows.append(v + [DEFAULT_SIGMA] * (5 - len(v)))
    if not rows:
        raise HetredError(f"sources file {p} lists no source")
    return np.array(rows, dtype=float)


def inject(fs: FiberSet, sources: np.ndarray, psf: PsfModel, rng: np.random.Generator | None) -> int:
    """Add the sources to ``fs`` in place; returns how many fall within 10" of a loaded fiber."""
    x, y = tangent(sources[:, 0], sources[:, 1], fs.ra0, fs.dec0)
    n_in = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        c_per_f = np.where(fs.flux != 0, fs.counts / fs.flux, 0.0)      # counts per flux unit
        ce_per_fe = np.where(fs.flux_err > 0, fs.counts_err / fs.flux_err, 0.0)
    ratio = np.where(c_per_f > 0, c_per_f, ce_per_fe)
    for (ra, dec, wave, flux, sig), sx, sy in zip(sources, x, y):
        d = np.hypot(fs.x - sx, fs.y - sy)
        near = np.nonzero(d < 10.0)[0]
        if near.size == 0:
            continue
        n_in += 1
        _, fadc, _ = psf.weights(fs.x[near] - sx, fs.y[near] - sy, fs.ux[near], fs.uy[near])
        frac = node_interp(fadc)                                          # (m, 1036) with ADR and seeing(lambda)
        line = np.exp(-0.5 * ((GRID - wave) / sig) ** 2) / np.sqrt(2 * np.pi * sig * sig) * 2.0
        add_f = flux * 1e17 * frac * line[None, :]                        # 1e-17 erg/s/cm² per 2 Å
        r = ratio[near]
        add_c = add_f * r
        live = fs.flux_err[near] > 0
        if rng is not None:
            noisy = rng.poisson(np.clip(add_c, 0, None))
            with np.errstate(divide="ignore", invalid="ignore"):
                add_f = np.where(r > 0, noisy / np.where(r > 0, r, 1.0), add_f)
            add_c = noisy.astype(float)
        fs.flux[near] += np.where(live, add_f, 0.0).astype(np.float32)
        fs.counts[near] += np.where(live, add_c, 0.0).astype(np.float32)
        bright = live & (fs.flux[near] > 3.0 * fs.flux_err[near]) & (r > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            src_var_c = np.clip(add_c, 0, None)
            ne_c = np.sqrt(fs.counts_err[near] ** 2 + src_var_c)
            ne_f = np.sqrt(fs.flux_err[near] ** 2 + src_var_c / np.where(r > 0, r, 1.0) ** 2)
        fs.counts_err[near] = np.where(bright, ne_c, fs.counts_err[near]).astype(np.float32)
        fs.flux_err[near] = np.where(bright, ne_f, fs.flux_err[near]).astype(np.float32)
    return n_in
