"""The extraction kernels (hetred._ext.extract) against their NumPy references, and the
extraction on synthetic frames whose truth is known exactly.

* ``extract_columns`` (simultaneous weighted fit of all fibers per column: fluxes, errors, core
  chi^2) equals ``reference.extract_reference`` to 1e-5 relative, with masked pixels, fibers
  with no pixels and windows running off the frame;
* ``model_columns`` and ``profile_weights`` equal their references;
* a noiseless frame is extracted to its injected fluxes: exactly (1e-5) with the profile it was
  made with, and to < 0.5 % with a profile MEASURED from it (made with the simulator's exact
  pixel-integrated exp(-1/2 |y/sigma|^p) profile, sigma and p varying over the amp);
* on a noisy frame the errors are right (pulls have unit scatter) and the core chi^2 is ~1.
"""
from __future__ import annotations

import numpy as np
import pytest

from hetred._ext import extract as K
from hetred._ext import reference as R
from hetred.fibers import extract as E
from hetred.fibers.profile import NWIN, FiberProfile, analytic_start, measure_profile, window_start

F32 = np.float32
NFIB, NROW = 112, 1032


def _traces(rng, ncol: int) -> np.ndarray:
    """Realistic traces: blocks 37/38/37 with one-fiber gaps, a tilt and a curvature."""
    from hetred.fibers.trace import slot_index

    x = np.linspace(-1, 1, ncol)[None, :]
    y0 = 20.0 + 8.72 * slot_index() + rng.normal(0, 0.15, NFIB)
    return (y0[:, None] + 2.0 * (x ** 2 - 1 / 3) + 0.7 * x).astype(np.float64)


def _profile(rng, perturb: float = 0.0) -> FiberProfile:
    p = FiberProfile.analytic(2.45, 2.4)
    if perturb:
        p.values = (p.values * (1 + perturb * rng.normal(size=p.values.shape))).astype(F32)
    return p


def _sim_weights(trace: np.ndarray, ncol: int):
    """Exact pixel integrals of exp(-1/2 |y/sigma|^p), sigma 2.4-2.6 and p 2.35-2.65 varying
    smoothly over fibers and columns (the simulator's profile, no halo)."""
    from hetred.sim.optics import profile_cdf_exact

    f = np.linspace(-1, 1, NFIB)[:, None]
    x = np.linspace(-1, 1, ncol)[None, :]
    sigma = (2.5 + 0.08 * f + 0.05 * x * f - 0.04 * x ** 2)[:, :, None]
    power = (2.5 - 0.12 * f ** 2 + 0.1 * x)[:, :, None]
    r0 = window_start(trace)
    e = r0[:, :, None] + np.arange(NWIN) - trace[:, :, None]
    w = profile_cdf_exact(e + 0.5, sigma, power) - profile_cdf_exact(e - 0.5, sigma, power)
    return r0, w / w.sum(axis=2, keepdims=True)


def _fluxes(rng, ncol: int) -> np.ndarray:
    cont = 1.0 + 0.5 * np.sin(np.arange(ncol) / 37.0)
    return (2.0e4 * rng.uniform(0.6, 1.3, NFIB)[:, None] * cont[None, :]).astype(np.float64)


def test_kernel_equals_reference():
    rng = np.random.default_rng(5)
    ncol = 48
    tr = _traces(rng, ncol)
    tr[0] -= 14.0                                   # first fiber's window runs off the frame
    prof = _profile(rng, 0.05)
    r0, w = prof.weights(tr)
    flux = _fluxes(rng, ncol)
    img = R.model_reference(r0, w, flux, NROW).astype(np.float64)
    var = 9.0 + np.maximum(img, 0)
    img = (img + rng.normal(size=img.shape) * np.sqrt(var)).astype(F32)
    mask = rng.random(img.shape) < 0.02
    fib = int(np.round(tr[60, 5]))
    mask[fib - 8:fib + 9, 5] = True                 # fiber 60 has no pixel in column 5
    mask[:, 7] = True                               # nor anything in column 7
    var = var.astype(F32)
    got = E.extract_weighted(img, var, mask, r0, w, tr, 3.0)
    ref = R.extract_reference(img, var, mask, r0, w, tr, 3.0)
    for name, a, b in zip(("spectra", "error", "chi2"), got[:3], ref[:3]):
        scale = np.maximum(np.abs(b), 1e-3 * np.abs(b).max())
        assert np.max(np.abs(a - b) / scale) < 1e-5, name
    assert np.array_equal(got[3], ref[3])
    assert got[0][60, 5] == 0 and got[3][60, 5] == 0 and not got[0][:, 7].any()


def test_model_and_weights_kernels_equal_references():
    rng = np.random.default_rng(6)
    ncol = 64
    tr = _traces(rng, ncol)
    prof = _profile(rng, 0.05)
    r0, w, dw = prof.weights(tr, derivative=True)
    rr, wr, dwr = R.profile_weights_reference(prof.values, prof.columns, prof.offsets[0], prof.step,
                                              tr, 7, True)
    assert np.array_equal(r0, rr)
    np.testing.assert_allclose(w, wr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(dw, dwr, rtol=0, atol=1e-5)
    flux = _fluxes(rng, ncol)
    got = E.model_from_weights(flux.astype(F32), r0, w, NROW)
    ref = R.model_reference(r0, w, flux, NROW)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-2)
    # dw is the derivative of w with the trace (numerically)
    eps = 1e-3
    r0b, wb = prof.weights(tr + eps)
    same = r0b == r0
    num = (wb.astype(float) - w) / eps
    assert np.max(np.abs(num - dw)[same]) < 2e-3


def test_noiseless_frame_gives_the_injected_fluxes():
    rng = np.random.default_rng(7)
    ncol = 1032
    tr = _traces(rng, ncol)
    flux = _fluxes(rng, ncol)
    # (a) made with the profile used to extract: exact
    prof = _profile(rng, 0.03)
    r0, w = prof.weights(tr)
    img = E.model_from_weights(flux.astype(F32), r0, w, NROW)
    ext = E.extract(img, tr, prof, read_noise=3.0)
    assert np.max(np.abs(ext.spectra / flux - 1)) < 1e-5
    # (b) made with the exact non-Gaussian pixel integrals; profile measured from the frame
    r0s, ws = _sim_weights(tr, ncol)
    img = R.model_reference(r0s, ws, flux, NROW)
    prof = FiberProfile.analytic()
    for i in range(3):                              # as calibrate_frame does
        ext = E.extract(img, tr, prof, read_noise=3.0, reject_sigma=None)
        prof = measure_profile(img, tr, ext.spectra, prof)
        if i == 0:
            prof = analytic_start(prof)
    ext = E.extract(img, tr, prof, read_noise=3.0, reject_sigma=None)
    rel = ext.spectra / flux - 1
    print(f"\nnoiseless frame, measured profile: flux error max {np.abs(rel).max():.2e} rms {rel.std():.2e}")
    assert np.abs(rel).max() < 0.005
    model = E.model_image(ext.spectra, tr, prof)
    res = (model - img) / img.max()
    print(f"model residual: max {np.abs(res).max():.2e}, rms {res.std():.2e} of the peak pixel")
    assert np.abs(res).max() < 0.01 and res.std() < 1e-3


def test_errors_and_chi2_on_a_noisy_frame():
    rng = np.random.default_rng(8)
    ncol = 1032
    tr = _traces(rng, ncol)
    flux = _fluxes(rng, ncol) * 0.1
    prof = _profile(rng, 0.03)
    r0, w = prof.weights(tr)
    model = E.model_from_weights(flux.astype(F32), r0, w, NROW)
    img = model + rng.normal(size=model.shape).astype(F32) * np.sqrt(9.0 + model)
    ext = E.extract(img, tr, prof, read_noise=3.0)
    pull = (ext.spectra - flux) / ext.error
    chi = float(ext.chi2.mean())
    print(f"\nnoisy frame: pull std {pull.std():.3f}, mean core chi2 {chi:.3f}")
    assert abs(pull.std() - 1) < 0.03 and abs(pull.mean()) < 0.02
    assert 0.97 < chi < 1.03
    assert set(np.unique(ext.ncore)) <= {6, 7}


def test_kernel_rejects_bad_shapes():
    z = np.zeros((4, 10), F32)
    with pytest.raises(ValueError):
        K.extract_columns(z, np.zeros((4, 9), F32), np.zeros((4, 10), np.uint8),
                          np.zeros((4, 2), np.int32), np.zeros((4, 2, 3), F32), np.zeros((4, 2), F32), 3.0)
