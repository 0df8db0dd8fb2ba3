"""The pixel flat's fiber model and its defect boxes on synthetic data (fast; the simulated
flats are in tests/stages/test_pixelflat.py, slow).

* Lamp-flat spectra: the lamp's blue end rises ~1 % a column; a running median of such a
  spectrum does not smooth (it returns the column's own value) and a defect box there pulls it.
  The model must follow the steep spectrum, average out the pixel flat's imprint on the
  extracted flux, and keep a box and a bad column out of the model (so they stay in the flat).
* Defect boxes: a box whose edge covers one or two rows of a fiber's band, or lies next to a
  dead fiber's unmeasured band, must still be covered by its mask box.
"""
from __future__ import annotations

import numpy as np
import pytest

from hetred.flat.defects import find_defect_boxes
from hetred.flat.pixelflat import smooth_spectra
from hetred.io.pixmask import mask_image

NFIB, NCOL = 112, 1032


def _lamp(shift: np.ndarray) -> np.ndarray:
    """(nfib, ncol) lamp-like spectra: steep blue rise, broad maximum, fibers shifted by
    ``shift`` columns (their wavelength offsets)."""
    c = np.arange(NCOL)[None, :] + shift[:, None]
    return np.exp(-0.5 * ((c - 480.0) / 420.0) ** 2) * (0.6 + 0.4 * np.tanh((c - 60.0) / 120.0))


@pytest.fixture(scope="module")
def spectra():
    rng = np.random.default_rng(3)
    shift = rng.uniform(-1.5, 1.5, NFIB)
    thr = rng.normal(1.0, 0.07, NFIB)[:, None] * (1 + 0.03 * np.linspace(-1, 1, NCOL))[None, :]
    true = 2e5 * thr * _lamp(shift)
    imprint = 1 + rng.normal(0, 0.005, true.shape)           # the pixel flat under each fiber-column
    data = true * imprint
    data[40:42, 46:62] *= 0.84                                # a 16-column box on the steep blue end
    data[70, 600:612] *= 0.6                                  # a box in the middle
    data[:, 333] *= 0.1                                       # a bad column through every fiber
    return true, data, smooth_spectra(data, template=False)


def test_lamp_model_follows_the_steep_spectrum(spectra):
    true, _, model = spectra
    err = model / true - 1
    keep = np.ones(NCOL, bool)
    keep[[333]] = False
    print(f"\nmodel / true - 1: rms {err[:, keep].std():.5f}, blue end (columns < 150) "
          f"{err[:, :150].std():.5f}, worst {np.abs(err).max():.4f}")
    assert err[:, keep].std() < 0.0012           # the 0.5 % imprint averaged over ~100 columns
    assert err[:, :150].std() < 0.002


def test_lamp_model_keeps_defects_out(spectra):
    true, data, model = spectra
    ratio = data / model
    print(f"\nbox on the blue end: {ratio[40:42, 46:62].mean():.4f} (true 0.84); middle box "
          f"{ratio[70, 600:612].mean():.4f} (0.6); bad column {ratio[:, 333].mean():.4f} (0.1)")
    assert abs(ratio[40:42, 46:62].mean() - 0.84) < 0.01
    assert abs(ratio[70, 600:612].mean() - 0.6) < 0.01
    assert abs(ratio[:, 333].mean() - 0.1) < 0.01


SHAPE = (330, 240)      #: a corner of an amp is enough (and fast)


def _flat_with_bands(rng, dead: list[int]):
    """A synthetic oriented flat: fiber bands of 7-8 rows (|y - trace| <= 3.5) every 8.7 rows,
    1 % pixel response; 1 between bands and on dead fibers' bands."""
    trace = 20.0 + 8.7 * np.arange(35)
    y = np.arange(SHAPE[0])[:, None]
    d = np.abs(y - trace[None, :])
    nearest = np.argmin(d, axis=1)
    measured = (d.min(axis=1) <= 3.5) & ~np.isin(nearest, dead)
    measured = np.repeat(measured[:, None], SHAPE[1], axis=1)
    truth = (1 + rng.normal(0, 0.01, SHAPE)).astype(np.float32)
    return trace, measured, truth


@pytest.mark.parametrize("case", ["one_row", "two_rows", "dead_neighbour"])
def test_box_edges_inside_a_band_are_masked(case):
    rng = np.random.default_rng({"one_row": 1, "two_rows": 2, "dead_neighbour": 3}[case])
    dead = [30] if case == "dead_neighbour" else []
    trace, measured, truth = _flat_with_bands(rng, dead)
    if case == "dead_neighbour":       # the box's top row is the first row of band 31, above dead 30
        y2 = int(np.ceil(trace[31] - 3.5))
        y1 = y2 - 13
    else:                               # the box's bottom row(s) are the last of band 20
        y1 = int(np.floor(trace[20] + 3.5)) - (0 if case == "one_row" else 1)
        y2 = y1 + 13
    x1, x2 = 100, 113
    truth[y1:y2 + 1, x1:x2 + 1] *= np.float32(0.9)                # a 10 % box (the weakest simulated)
    flat = np.where(measured, truth, np.float32(1.0))
    boxes, info = find_defect_boxes(flat, measured)
    mask = mask_image(boxes, SHAPE)
    inside = mask[y1:y2 + 1, x1:x2 + 1][measured[y1:y2 + 1, x1:x2 + 1]]
    print(f"\n{case}: box rows {y1}-{y2}, boxes {boxes}, {inside.mean():.3f} of its measured pixels masked")
    assert inside.mean() == 1.0
    assert len(boxes) == 1 and boxes[0].area < 30 * 30
