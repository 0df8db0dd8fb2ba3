"""The science kernels (hetred._ext.scikern) against their NumPy references, and the sci helpers
built on them against the twical code they speed up."""
from __future__ import annotations

import numpy as np
import pytest

from hetred._ext import extract as K
from hetred._ext import reference as R
from hetred._ext import scikern as SK
from hetred.fibers.profile import FiberProfile
from hetred.fibers.trace import slot_index

NFIB, NROW, NCOL = 112, 1032, 1032


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(5)
    col = np.arange(NCOL)
    trace = (20.0 + 8.72 * slot_index()[:, None] + 2.0 * ((col - 515.5) / 515.5) ** 2
             + rng.normal(0, 0.1, (NFIB, 1))).astype(np.float32)
    prof = FiberProfile.analytic(sigma=2.4, power=2.3)
    prof.values[:] *= (1 + 0.05 * rng.normal(size=prof.values.shape[:2]))[:, :, None].astype(np.float32)
    spec = rng.uniform(50, 500, (NFIB, NCOL)).astype(np.float32)
    r0, w = prof.weights(trace)
    img = np.ascontiguousarray(K.model_columns(np.ascontiguousarray(r0.T), np.ascontiguousarray(np.moveaxis(w, 1, 0)),
                                               spec, NROW).T)
    img += rng.normal(0, 5, img.shape).astype(np.float32)
    return trace, prof, img


def test_shift_moments_equal_the_reference(frame):
    trace, _, img = frame
    for s, half in ((0.0, 3.5), (0.37, 3.5), (-1.2, 2.0)):
        tot, mom = SK.shift_moments(img, trace, s, half)
        rt, rm = R.shift_moments_reference(img, trace, s, half)
        assert np.allclose(tot, rt, rtol=1e-10, atol=1e-6) and np.allclose(mom, rm, rtol=1e-10, atol=1e-6)


def test_window_rms_equals_the_reference(frame):
    trace, _, img = frame
    edge = trace.copy()
    edge[0] -= 30.0                       # windows partly and fully off the frame
    edge[-1] += 40.0
    for tr in (trace, edge):
        assert np.allclose(SK.window_rms(img, tr, 4), R.window_rms_reference(img, tr, 4), rtol=1e-6, atol=1e-6)


def test_profile_weights_equal_the_twical_kernel_and_the_reference(frame):
    trace, prof, _ = frame
    tr = np.ascontiguousarray(trace, dtype=np.float64) + 0.013
    tr[3] = -4.6                          # windows beyond the frame and the node grid
    tr[-2] = 1035.3
    j, fc = prof.knot_fractions(NCOL)
    vals = np.ascontiguousarray(prof.values, dtype=np.float32)
    a = K.profile_weights(vals, j, fc, float(prof.offsets[0]), prof.step, tr, 7, False)
    b = SK.profile_weights(vals, j, fc, float(prof.offsets[0]), prof.step, tr, 7)
    c = R.profile_weights_reference(vals, prof.columns, float(prof.offsets[0]), prof.step, tr, 7)
    t = SK.profile_weights(vals, j, fc, float(prof.offsets[0]), prof.step, tr, 7, True)
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], atol=1e-6) and np.allclose(c[1], b[1], atol=1e-6)
    assert np.array_equal(t[0], b[0].T) and np.array_equal(t[1], np.moveaxis(b[1], 1, 0))
    with pytest.raises(ValueError):
        SK.profile_weights(vals, j, fc, float(prof.offsets[0]), 0.3, tr, 7)


def test_measure_shift_is_the_calib_iteration(frame):
    from hetred.fibers.trace import measure_trace_shift
    from hetred.sci.reduce import measure_shift

    trace, _, img = frame
    dead = np.zeros(NFIB, bool)
    dead[[5, 60]] = True
    for s in (0.0, 0.21, -0.44):
        moved = (trace - np.float32(s)).astype(np.float32)       # the frame sits s px above these traces
        a = measure_shift(img, moved, exclude=dead)
        b = measure_trace_shift(img, moved, exclude=dead)
        assert a == pytest.approx(b, abs=1e-9) and a == pytest.approx(s, abs=0.01)
