"""Stars on the reconstructed IFU images: detection and PSF photometry (vdrp's DAOPHOT step).

vdrp runs DAOPHOT II FIND (FWHM 2 px, threshold 2 sigma), PHOT and ALLSTAR with a fixed Moffat
PSF (``use.psf``: MOFFAT25, HWHM 1.635 x 1.817 px, plus a look-up table) on every CoFeS image and
keeps every ALLSTAR star (HETDEX/vdrp src/vdrp/daophot.py; shared/reference/astrom_throughput.md
§1.2). hetred (no DAOPHOT binary):

1. sky level and noise of the image: median and 1.4826 x MAD of its finite (non-zero) pixels;
2. detection with photutils ``DAOStarFinder`` -- DAOPHOT's FIND algorithm: a lowered Gaussian of
   FWHM ``find_fwhm`` px, threshold ``find_sigma`` x noise scaled by the kernel's relative error,
   sharpness 0.2..1 and roundness -1..1 (DAOPHOT's defaults), peaks at least ``min_separation``
   px apart (photutils 3.0's default, 2.5 x the kernel FWHM: the stars of a CoFeS image are ~4.5 px
   wide, closer peaks are one star's noise; with no minimum the finder gives the 95/97/118 stars of
   ALLSTAR on the real shot but more spurious neighbours of real stars);
3. PSF photometry (:func:`fit_psf`, hetred's own, vectorised over all stars of an image): x, y and
   flux of every detection fitted with a fixed Moffat (:class:`Psf`, by default the analytic part
   of vdrp's use.psf; or a circular FWHM fitted per exposure, :func:`fit_psf_fwhm`) on the pixels
   within ``fit_radius`` px of any star, all stars of the image together as ALLSTAR does, after
   subtracting the background (sigma-clipped median of the pixels farther than ``sky_clear`` px
   from every detection; the CoFeS images are sky-subtracted, this removes a residual). photutils' ``PSFPhotometry`` does the same fit (tests compare
   the two) but takes ~10x longer per star;
4. the table of :data:`~hetred.astrom.formats.ALS_DTYPE` (DAOPHOT's ``.als`` columns): x, y 1-based
   (the centre of the first pixel is 1.0, DAOPHOT's convention), mag = ``mag_zero_point`` - 2.5
   log10(flux) (flux = the PSF's total; the zero point 25.12 puts the magnitudes on ALLSTAR's
   scale, measured on the real shot 20180611v017), merr = 1.0857 flux_err / flux, sky, niter,
   chi = sum |residual| / flux within the fitting radius, sharp = the finder's sharpness.
   Fits that end with flux <= 0, off the image or within 1 px of a brighter star are dropped.

On the real shot 20180611v017 the positions agree with ALLSTAR's to 0.025 px (robust rms; median
offsets 0.021, 0.041 px) for the 188 common stars brighter than 20 mag.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from hetred.astrom.formats import ALS_DTYPE
from hetred.errors import HetredError


class BadImage(HetredError):
    """An image without usable pixels (all NaN, all zero, constant)."""


@dataclass(frozen=True)
class FinderSettings:
    """Parameters of :func:`find_stars` (from :class:`~hetred.astrom.settings.AstromSettings`).

    The PSF defaults to the analytic part of vdrp's ``use.psf`` (MOFFAT25, HWHM 1.635 x 1.817 px,
    cross term 0.0475): FWHM (3.27, 3.634) px. An empty ``psf_fwhm`` means: fit a circular FWHM
    per exposure (:func:`fit_psf_fwhm`).
    """

    find_sigma: float = 2.0
    find_fwhm: float = 2.0
    psf_beta: float = 2.5
    psf_fwhm: tuple[float, ...] = (3.27, 3.634)
    psf_xy: float = 0.0475
    fit_radius: float = 3.0
    sky_clear: float = 6.0
    edge: float = 0.0
    mag_zero_point: float = 25.12
    min_separation: float = 5.0

    def psf(self) -> Psf | None:
        """The fixed PSF, or None when it is to be fitted."""
        if not self.psf_fwhm:
            return None
        fx = float(self.psf_fwhm[0])
        fy = float(self.psf_fwhm[1]) if len(self.psf_fwhm) > 1 else fx
        return Psf(fx, fy, self.psf_xy, self.psf_beta)


def sky_level(image: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x MAD) of the finite pixels (of the non-zero ones when at least 100 are:
    a reconstructed image is 0 where no fiber reaches); raises :class:`BadImage` without any."""
    v = np.asarray(image, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise BadImage("no finite pixel (all NaN)")
    if np.count_nonzero(v) >= 100:
        v = v[v != 0]
    med = float(np.median(v))
    sig = 1.4826 * float(np.median(np.abs(v - med)))
    if not sig > 0:
        raise BadImage("no noise (constant image)")
    return med, sig


def detect(image: np.ndarray, sky: float, noise: float, s: FinderSettings):
    """photutils DAOStarFinder on ``image - sky`` (NaN pixels as sky): a table or None."""
    from photutils.detection import DAOStarFinder

    data = np.where(np.isfinite(image), image - sky, 0.0)
    finder = DAOStarFinder(threshold=s.find_sigma * noise, fwhm=s.find_fwhm, exclude_border=False, min_separation=s.min_separation,
                           sharpness_range=(0.2, 1.0), roundness_range=(-1.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return finder(data, mask=~np.isfinite(image))


@dataclass(frozen=True)
class Psf:
    """DAOPHOT's Moffat PSF (``MOFFAT25`` of vdrp's ``use.psf``, without its look-up table):
    I ∝ (1 + c (dx²/hx² + dy²/hy² + xy dx dy))^-beta, c = 2^(1/beta) - 1, normalised to unit flux;
    hx, hy the half widths at half maximum along x (image columns) and y (px); xy DAOPHOT's
    cross term (1/px²)."""

    fwhm_x: float
    fwhm_y: float
    xy: float = 0.0
    beta: float = 2.5

    @property
    def _q(self) -> tuple[float, float, float, float]:
        c = 2.0 ** (1.0 / self.beta) - 1.0
        ax, ay = c / (0.5 * self.fwhm_x) ** 2, c / (0.5 * self.fwhm_y) ** 2
        return c, ax, ay, c * self.xy

    def value(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """The unit-flux PSF at offsets (dx, dy) px from its centre."""
        return self.value_and_gradient(dx, dy)[0]

    def value_and_gradient(self, dx: np.ndarray, dy: np.ndarray):
        """(psf, d psf / d x0, d psf / d y0) at offsets dx = x - x0, dy = y - y0."""
        _, ax, ay, axy = self._q
        det = ax * ay - 0.25 * axy * axy
        norm = (self.beta - 1.0) * np.sqrt(det) / np.pi
        q = 1.0 + ax * dx * dx + ay * dy * dy + axy * dx * dy
        p = norm * q ** -self.beta
        g = self.beta * p / q
        return p, g * (2.0 * ax * dx + axy * dy), g * (2.0 * ay * dy + axy * dx)


def moffat_psf(fwhm: float, beta: float = 2.5) -> Psf:
    """A circular Moffat of FWHM ``fwhm`` px."""
    return Psf(fwhm, fwhm, 0.0, beta)


def background(image: np.ndarray, x: np.ndarray, y: np.ndarray, clear: float) -> float:
    """The image's background away from its stars: the sigma-clipped (3 x 1.4826 MAD, 3 passes)
    median of the finite pixels farther than ``clear`` px from every (x, y) (0-based); 0 with
    fewer than 20 such pixels."""
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    far = np.isfinite(image)
    for a, b in zip(x, y):
        far &= (xx - a) ** 2 + (yy - b) ** 2 > clear * clear
    v = image[far]
    for _ in range(3):
        if v.size < 20:
            return 0.0
        med = np.median(v)
        mad = 1.4826 * np.median(np.abs(v - med))
        keep = np.abs(v - med) <= 3.0 * mad if mad > 0 else np.ones(v.size, bool)
        if keep.all():
            break
        v = v[keep]
    return float(np.median(v)) if v.size >= 20 else 0.0


@dataclass
class PsfFit:
    """Result of :func:`fit_psf`: 0-based x, y; flux, its error; fit residual per flux (qfit);
    iterations; ok (converged inside the image with flux > 0)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    qfit: np.ndarray
    niter: np.ndarray
    ok: np.ndarray
    chi2: np.ndarray            #: sum of squared residuals / noise^2 within the radius


def fit_psf(data: np.ndarray, noise: float, x0: np.ndarray, y0: np.ndarray, psf: Psf,
            radius: float, iterations: int = 25, rounds: int = 3) -> PsfFit:
    """Fit x, y, flux of stars at first guesses (x0, y0) (0-based px) with the fixed ``psf``.

    data: (ny, nx) background-subtracted image (NaN = no data). All stars are fitted together,
    as ALLSTAR does: Gauss-Newton on every star's (flux, x, y) over the finite pixels within
    ``radius`` of any star, centre steps limited to 1 px; stars that end with flux <= 0 or off the
    image are removed and the rest refitted (at most ``rounds`` times). flux_err from the
    covariance with the pixel ``noise``; qfit = sum |residual| / flux and chi2 = sum residual^2 /
    noise^2 over the pixels within ``radius`` of the star.
    """
    ny, nx = data.shape
    n = len(x0)
    x, y = np.asarray(x0, float).copy(), np.asarray(y0, float).copy()
    flux = np.zeros(n)
    flux_err = np.full(n, np.inf)
    niter = np.zeros(n, dtype=int)
    finite = np.isfinite(data)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    active = np.ones(n, dtype=bool)
    r2 = radius * radius
    for _ in range(rounds):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        first = True
        for _it in range(iterations):
            dxa = xx[None] - x[idx, None, None]
            dya = yy[None] - y[idx, None, None]
            use = finite & np.any(dxa * dxa + dya * dya <= r2, axis=0)
            if not np.any(use):
                break
            p, gx, gy = psf.value_and_gradient(dxa[:, use], dya[:, use])      # (m, npix)
            d = data[use]
            if first:          # start from the linear least-squares fluxes at the first guesses
                flux[idx] = np.linalg.lstsq(p.T, d, rcond=None)[0]
                first = False
            res = d - flux[idx] @ p
            jac = np.concatenate([p, flux[idx, None] * gx, flux[idx, None] * gy]).T   # (npix, 3m)
            a = jac.T @ jac
            a[np.diag_indices_from(a)] *= 1.0 + 1e-9
            try:
                step = np.linalg.solve(a, jac.T @ res)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(a, jac.T @ res, rcond=None)[0]
            m = idx.size
            sx, sy = np.clip(step[m:2 * m], -1.0, 1.0), np.clip(step[2 * m:], -1.0, 1.0)
            flux[idx] += step[:m]
            x[idx] += sx
            y[idx] += sy
            niter[idx] += 1
            if np.all(np.hypot(sx, sy) < 1e-4):
                break
        if idx.size:
            try:
                cov = np.linalg.inv(a)
                flux_err[idx] = noise * np.sqrt(np.maximum(np.diag(cov)[:idx.size], 0.0))
            except (np.linalg.LinAlgError, UnboundLocalError):
                pass
        bad = active & ~((flux > 0) & (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)
                         & np.isfinite(x) & np.isfinite(y))
        if not np.any(bad):
            break
        active &= ~bad
    ok = active & (flux > 0) & np.isfinite(flux_err)
    # per-star residual statistics within its own radius, all fitted stars subtracted
    qfit, chi2 = np.full(n, np.inf), np.full(n, np.inf)
    fin = np.nonzero(np.isfinite(x) & np.isfinite(y))[0]
    if fin.size:
        gk = np.nonzero(ok)[0]
        model = (np.einsum("k,kyx->yx", flux[gk], psf.value(xx[None] - x[gk, None, None], yy[None] - y[gk, None, None]))
                 if gk.size else np.zeros((ny, nx)))
        res_img = np.where(finite, data - model, 0.0)
        w = finite[None] & ((xx[None] - x[fin, None, None]) ** 2 + (yy[None] - y[fin, None, None]) ** 2 <= r2)
        chi2[fin] = np.sum(w * res_img[None] ** 2, axis=(1, 2)) / (noise * noise)
        aflux = np.abs(flux[fin])
        qfit[fin] = np.where(aflux > 0, np.sum(w * np.abs(res_img[None]), axis=(1, 2)) / np.where(aflux > 0, aflux, 1.0),
                             np.inf)
    return PsfFit(x, y, flux, flux_err, qfit, niter, ok, chi2)


def model_image(shape: tuple[int, int], fit: PsfFit, psf: Psf) -> np.ndarray:
    """The fitted stars (``fit.ok``) rendered on an image of ``shape`` (0-based pixel centres)."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    out = np.zeros(shape)
    for x, y, f, ok in zip(fit.x, fit.y, fit.flux, fit.ok):
        if ok:
            out += f * psf.value(xx - x, yy - y)
    return out


GAP = 12      #: px of blank between the images of a detection mosaic (> the finder's footprint)


def detect_many(images: dict, s: FinderSettings) -> dict:
    """:func:`detect` of many images in one call of the finder: each image, sky-subtracted and
    divided by its noise, in a row of a mosaic with :data:`GAP` blank pixels between them, the
    threshold ``find_sigma`` (the finder's result does not depend on the neighbours farther than
    its footprint; sharpness and roundness do not depend on the scale). Returns {key: (x, y,
    sharpness) arrays in the image's 0-based pixels} for the usable images; a
    :class:`BadImage` is returned in place of the arrays for the others."""
    from photutils.detection import DAOStarFinder

    out: dict = {}
    parts, keys, offsets = [], [], []
    x = 0
    for key, image in images.items():
        img = np.asarray(image, dtype=np.float64)
        try:
            sky, noise = sky_level(img)
        except BadImage as err:
            out[key] = err
            continue
        parts.append((img - sky) / noise)
        keys.append(key)
        offsets.append(x)
        x += img.shape[1] + GAP
    if not parts:
        return out
    ny = max(p.shape[0] for p in parts)
    mosaic = np.full((ny, x - GAP), np.nan)
    for p, x0 in zip(parts, offsets):
        mosaic[:p.shape[0], x0:x0 + p.shape[1]] = p
    finder = DAOStarFinder(threshold=s.find_sigma, fwhm=s.find_fwhm, exclude_border=False,
                           min_separation=s.min_separation, sharpness_range=(0.2, 1.0), roundness_range=(-1.0, 1.0))
    mask = ~np.isfinite(mosaic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = finder(np.where(mask, 0.0, mosaic), mask=mask)
    xs = np.asarray(found["x_centroid"], float) if found is not None else np.zeros(0)
    ys = np.asarray(found["y_centroid"], float) if found is not None else np.zeros(0)
    sh = np.asarray(found["sharpness"], float) if found is not None else np.zeros(0)
    for key, x0, p in zip(keys, offsets, parts):
        sel = (xs > x0 - 1) & (xs < x0 + p.shape[1])
        out[key] = (xs[sel] - x0, ys[sel], sh[sel])
    return out


def find_stars(image: np.ndarray, s: FinderSettings, psf: Psf | None = None, found=None) -> np.ndarray:
    """The ``.als``-equivalent table of one CoFeS image (module docstring).

    image: (ny, nx) float, numpy ``image[y, x]``; psf: the PSF (default :meth:`FinderSettings.psf`);
    found: the detections (x, y, sharpness) of :func:`detect_many`, else detected here.
    Raises :class:`BadImage` for an image without finite pixels or noise.
    """
    img = np.asarray(image, dtype=np.float64)
    sky, noise = sky_level(img)
    if found is None:
        t = detect(img, sky, noise, s)
        found = ((np.asarray(t["x_centroid"], float), np.asarray(t["y_centroid"], float),
                  np.asarray(t["sharpness"], float)) if t is not None else (np.zeros(0),) * 3)
    x0, y0, sharp0 = (np.asarray(v, float) for v in found)
    if len(x0) == 0:
        return np.zeros(0, dtype=ALS_DTYPE)
    psf = psf or s.psf()
    if psf is None:
        raise ValueError("find_stars needs a PSF (psf_fwhm empty: fit one with fit_psf_fwhm)")
    bkg = background(img - sky, x0, y0, s.sky_clear)
    data = img - sky - bkg
    fit = fit_psf(data, noise, x0, y0, psf, s.fit_radius)
    ny, nx = img.shape
    x, y, flux = fit.x, fit.y, fit.flux
    ok = fit.ok & (x >= -0.5 + s.edge) & (x <= nx - 0.5 - s.edge) & (y >= -0.5 + s.edge) & (y <= ny - 0.5 - s.edge)
    order = np.argsort(-np.where(ok, flux, -np.inf), kind="stable")
    keep: list[int] = []
    for k in order:                       # two detections fitted onto one star: keep the brighter
        if not ok[k]:
            continue
        if any(np.hypot(x[k] - x[j], y[k] - y[j]) < 1.0 for j in keep):
            continue
        keep.append(int(k))
    keep.sort(key=lambda k: (y[k], x[k]))
    out = np.zeros(len(keep), dtype=ALS_DTYPE)
    if not keep:
        return out
    kk = np.array(keep)
    out["id"] = np.arange(1, len(kk) + 1)
    out["x"] = x[kk] + 1.0
    out["y"] = y[kk] + 1.0
    out["mag"] = s.mag_zero_point - 2.5 * np.log10(flux[kk])
    out["merr"] = np.minimum(1.0857 * fit.flux_err[kk] / flux[kk], 9.9999)
    out["sky"] = sky + bkg
    out["niter"] = fit.niter[kk]
    out["chi"] = np.minimum(fit.qfit[kk], 99.99)
    out["sharp"] = sharp0[kk]
    return out


def fit_psf_fwhm(images: dict, s: FinderSettings, max_stars: int = 30, snr_min: float = 20.0) -> Psf | None:
    """A circular Moffat (beta ``s.psf_beta``) fitted to the brightest stars of a set of images
    (e.g. one exposure's IFUs): the FWHM on a 0.1 px grid from 2 to 8 px of least total squared
    residual within ``fit_radius`` + 1 px of each star, refined by a parabola. Stars: detections
    with peak >= ``snr_min`` x noise, the ``max_stars`` brightest. None without such a star."""
    cands = []
    for key, image in images.items():
        img = np.asarray(image, float)
        try:
            sky, noise = sky_level(img)
        except BadImage:
            continue
        found = detect(img, sky, noise, s)
        for r in found if found is not None else ():
            if r["peak"] >= snr_min * noise:
                cands.append((float(r["peak"]), key, float(r["x_centroid"]), float(r["y_centroid"])))
    if not cands:
        return None
    cands = sorted(cands, reverse=True)[:max_stars]
    grid = np.arange(2.0, 8.0001, 0.1)
    radius = s.fit_radius + 1.0
    chi = np.zeros(len(grid))
    for key in {c[1] for c in cands}:
        sel = [c for c in cands if c[1] == key]
        img = np.asarray(images[key], float)
        sky, noise = sky_level(img)
        data = np.where(np.isfinite(img), img - sky, np.nan)
        xs, ys = np.array([c[2] for c in sel]), np.array([c[3] for c in sel])
        for i, fw in enumerate(grid):
            f = fit_psf(data, noise, xs, ys, moffat_psf(fw, s.psf_beta), radius)
            chi[i] += float(np.sum(np.where(f.ok, f.chi2, 0.0)))
    k = int(np.argmin(chi))
    fw = float(grid[k])
    if 0 < k < len(grid) - 1:
        a, b, c = chi[k - 1], chi[k], chi[k + 1]
        if a - 2 * b + c > 0:
            fw += 0.5 * (a - c) / (a - 2 * b + c) * float(grid[1] - grid[0])
    return moffat_psf(fw, s.psf_beta)


def find_exposure(images: dict, s: FinderSettings) -> tuple[dict, Psf | None, dict]:
    """Star tables of one exposure's images ({key: (ny, nx) image}).

    The PSF is ``s.psf()``, or fitted to the exposure's brightest stars when ``s.psf_fwhm`` is
    empty. Returns ({key: table}, psf, {key: reason} of the images that could not be used).
    """
    bad: dict = {}
    psf = s.psf()
    if psf is None:
        psf = fit_psf_fwhm(images, s)
    tables = {}
    found = detect_many(images, s)
    for key, image in images.items():
        f = found.get(key)
        if isinstance(f, BadImage):
            bad[key] = str(f)
        elif psf is None:            # no star bright enough to fit a PSF: nothing to measure
            tables[key] = np.zeros(0, dtype=ALS_DTYPE)
        else:
            tables[key] = find_stars(image, s, psf, found=f)
    return tables, psf, bad
