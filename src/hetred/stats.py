"""Robust statistics used across the pipeline.

:func:`biweight` reproduces Karl Gebhardt's Fortran ``biwgt``
(HETDEX/karlspipe hdr2.1/progs/biwt.f) exactly, in float32 like the
Fortran, through the Cython kernel :mod:`hetred._ext.biweight`:

* location: Tukey biweight, c = 6, iterated from the median until the step
  is below 1e-4 MAD (at most 20 steps);
* scale: biweight midvariance form, c = 9: ``n sqrt(sum1/(n-1)) / |sum2|``;
* special cases: no values -> (-666, -2); one -> (x, -1); two -> (mean,
  |x_min - mean|); MAD < 1e-6 max(1, |median|) -> (median, MAD);
* a quirk kept on purpose: when max(2e-5, |median|) < 1e-4 MAD (e.g. a
  median of 0 with a MAD above 0.2) no step is taken and the location is the
  median.

Non-finite values (NaN, +/-inf) are excluded; n counts the finite values.
Both results are in the units of the input.  The scale estimates sigma; it
equals astropy's ``biweight_scale(x, c=9, M=location,
modify_sample_size=False) * sqrt(n / (n - 1))`` to float32 rounding.
"""
from __future__ import annotations

import numpy as np

from hetred._ext.biweight import biweight_columns

__all__ = ["biweight", "biweight_location", "biweight_scale"]


def _columns(a, axis: int | None) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """float32 (n, M) view/copy of ``a`` with the reduced axis first."""
    arr = np.asarray(a, dtype=np.float32)
    if axis is None:
        return arr.reshape(-1, 1), None
    moved = np.moveaxis(arr, axis, 0)          # validates axis (AxisError)
    out_shape = moved.shape[1:]
    size = int(np.prod(out_shape, dtype=np.int64))
    return moved.reshape(moved.shape[0], size), out_shape


def biweight(a, axis: int | None = None
             ) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Biweight location and scale of ``a`` along ``axis`` (Karl's ``biwgt``).

    Parameters
    ----------
    a : array_like
        Data in any units; converted to float32 (big-endian FITS data is
        byte-swapped).  NaN and +/-inf are ignored.
    axis : int or None
        Axis to reduce.  None reduces over all elements.

    Returns
    -------
    location, scale
        float32 arrays of shape ``a.shape`` without ``axis``, in the units
        of ``a``; Python floats when ``axis`` is None.  See the module
        docstring for the special values (-666, -2, -1).

    For ``axis=0`` of a C-contiguous float32 array (an image stack of shape
    (n, ny, nx)) no copy is made.
    """
    cols, out_shape = _columns(a, axis)
    loc, scale = biweight_columns(cols)
    if out_shape is None:
        return float(loc[0]), float(scale[0])
    return loc.reshape(out_shape), scale.reshape(out_shape)


def biweight_location(a, axis: int | None = None) -> np.ndarray | float:
    """Biweight location only; see :func:`biweight`."""
    return biweight(a, axis)[0]


def biweight_scale(a, axis: int | None = None) -> np.ndarray | float:
    """Biweight scale only (Karl's definition); see :func:`biweight`."""
    return biweight(a, axis)[1]
