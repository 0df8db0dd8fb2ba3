"""The simulator's truth files (a separate root; reduction code never reads them).

* ``truth_amp`` (per night and amp) FITS: primary header with the amp's scalars (true and header
  gain, read noise, dark rate, amp-to-amp factor, lamp illumination, halo, night shifts, and
  ``HIERARCH BIAS <stamp>`` = true bias level of every exposure), image extensions in the
  ORIENTED frame (TRACE, WAVELENGTH, FIBER_TO_FIBER, PROFILE_SIGMA, PROFILE_POWER, LSF_FWHM,
  WAVE_COEFFS, PIXELFLAT), BIAS_STRUCTURE in the RAW orientation, and tables DEAD_FIBERS,
  TRAPS, HOT_PIXELS, BAD_COLUMNS, DEFECT_BOXES, EXPOSURES;
* ``truth_night`` JSON: the plan (every exposure with stamp and type), per amp gains, read noise
  and bias levels by stamp, the lamp/twilight/sky levels;
* ``truth_shot`` JSON: :func:`hetred.sim.sky.scene_truth` plus per-exposure stamps,
  transparency, sky level, and the source electrons injected into each fiber;
* ``truth_cosmics`` NPZ per shot: the cosmic-ray pixels of every science frame (oriented);
* ``truth_fplane``: the simulated focal plane with the CONTID column.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred.io.atomic import write_fits_atomic
from hetred.sim import detector as det_mod
from hetred.sim.frame import AmpModel

ORIENTED = "oriented: x = column (wavelength up), y = row (cross-dispersion), 0-based centres"
RAW = "raw readout orientation (1032 rows x 1064 cols incl. overscan), 0-based"


def _image(name: str, data: np.ndarray, orient: str, unit: str, doc: str) -> fits.ImageHDU:
    hdu = fits.ImageHDU(np.asarray(data, dtype=np.float32), name=name)
    hdu.header["ORIENT"] = orient[:68]
    hdu.header["BUNIT"] = unit
    hdu.header["COMMENT"] = doc
    return hdu


def _table(name: str, cols: dict[str, tuple[str, list]], doc: str) -> fits.BinTableHDU:
    columns = [fits.Column(name=k, format=fmt, array=np.asarray(vals)) for k, (fmt, vals) in cols.items()]
    hdu = fits.BinTableHDU.from_columns(columns, name=name)
    hdu.header["COMMENT"] = doc
    return hdu


def _column_span(rows: list[int], cols: list[int], amp: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Oriented (x, y1, y2) of raw columns ``cols`` from raw row ``rows`` to the last raw row."""
    c = np.array(cols, int)
    y, x = det_mod.raw_to_oriented(np.array(rows, int), c, amp)
    yend, _ = det_mod.raw_to_oriented(np.full(len(rows), det_mod.NROWS - 1), c, amp)
    return x, np.minimum(y, yend), np.maximum(y, yend)


def amp_truth_hdul(m: AmpModel, exposures: list[dict]) -> fits.HDUList:
    """The truth FITS of one amp on one night. ``exposures``: dicts with stamp, obs, exp, kind,
    object, bias_level."""
    d, o, amp = m.detector, m.optics, m.amp
    ph = fits.PrimaryHDU()
    h = ph.header
    for key, val, com in (
        ("NIGHT", m.night, "night YYYYMMDD (UT date)"), ("IFUSLOT", m.slot.ifuslot, ""),
        ("AMP", amp, "CCDPOS + CCDHALF"), ("AMPNAME", m.ampname, "header AMPNAME"),
        ("SPECID", m.slot.specid, ""), ("IFUID", m.slot.ifuid, ""), ("CONTID", m.slot.contid, ""),
        ("SEED", m.seed, "simulator seed"),
        ("GAIN_HDR", d.gain_header, "e-/ADU written in the raw header"),
        ("GAIN_TRU", d.gain_true, "e-/ADU used to digitise"),
        ("RDN_HDR", d.rdnoise_header, "e- read noise in the raw header"),
        ("RDN_TRU", d.rdnoise_true, "e- read noise used"),
        ("BIASBASE", d.bias_base, "ADU amp bias level before night offset/drift"),
        ("BIASNOFF", d.night_offset, "ADU night offset of the bias level"),
        ("DARKRATE", d.dark_rate, "e-/s mean dark current"),
        ("AMP2AMP", o.amp2amp, "amp throughput factor (included in FIBER_TO_FIBER)"),
        ("LAMPILL", m.lamp_illum, "FCU lamp illumination factor (flt, cmp only)"),
        ("HALOFRAC", o.halo_frac, "fraction of fiber light in the 1/(|d|+d0) halo"),
        ("HALOD0", 4.0, "px halo kernel softening d0"), ("HALODMAX", 400, "px halo kernel extent"),
        ("TRSHIFT", o.night_shift_y, "px this night's trace shift (included in TRACE)"),
        ("WVSHIFT", o.night_shift_wave, "A this night's wavelength shift (in WAVELENGTH)"),
        ("PEAKFRAC", o.peak_frac, "nominal fiber light fraction in the peak pixel"),
        ("OPTFAM", o.family, "optics family along the slit (sim.families)"),
    ):
        h[key] = (val, com[:46])
    h["COMMENT"] = "Profile: exp(-0.5*|dy/PROFILE_SIGMA|**PROFILE_POWER), unit integral, times (1-HALOFRAC)."
    h["COMMENT"] = "Wavelength: WAVE_COEFFS c0 + c1*x + c2*x**2 (A, air) at oriented column x."
    h["COMMENT"] = "Fiber row i of the (112, 1032) arrays is multi-file fiber i+1 (increasing y)."
    for e in exposures:
        h[f"HIERARCH BIAS {e['stamp']}"] = (round(float(e["bias_level"]), 4), f"ADU {e['kind']}")
    hdus = [ph,
            _image("TRACE", o.trace, ORIENTED, "pixel", "fiber centre row y at each column"),
            _image("WAVELENGTH", o.wave, ORIENTED, "Angstrom", "wavelength at each pixel centre"),
            _image("FIBER_TO_FIBER", o.ftf, ORIENTED, "",
                   "relative throughput (fiber x slit trend x AMP2AMP x dead fiber factor)"),
            _image("PROFILE_SIGMA", o.sigma, ORIENTED, "pixel", "profile sigma"),
            _image("PROFILE_POWER", o.power, ORIENTED, "", "profile exponent p"),
            _image("LSF_FWHM", o.fwhm, ORIENTED, "Angstrom", "Gaussian line-spread FWHM"),
            _image("PIXELFLAT", m.pixelflat, ORIENTED, "",
                   "pixel sensitivity incl. defect boxes and bad columns"),
            _image("BIAS_STRUCTURE", d.bias_structure, RAW, "adu",
                   "fixed bias structure, zero mean over Karl's overscan region")]
    coeffs = fits.ImageHDU(o.coeffs.astype(np.float64), name="WAVE_COEFFS")
    coeffs.header["ORIENT"] = ORIENTED[:68]
    hdus.append(coeffs)
    hdus.append(_table("DEAD_FIBERS", {"FIBER": ("J", o.dead), "THROUGHPUT": ("E", o.dead_throughput)},
                       "dead fibers (1-based multi-file fiber) and their throughput factor"))
    tc = [t[0] for t in d.traps]
    tr = [t[1] for t in d.traps]
    tx, ty1, ty2 = _column_span(tr, tc, amp)
    hdus.append(_table("TRAPS", {
        "COL_RAW": ("J", tc), "ROW_RAW": ("J", tr), "EXCESS": ("E", [t[2] for t in d.traps]),
        "X": ("J", tx), "Y1": ("J", ty1), "Y2": ("J", ty2)},
        "charge traps: raw column COL_RAW gets EXCESS ADU from raw row ROW_RAW to the last row "
        "(every frame); X, Y1..Y2 the same pixels oriented"))
    hr, hc = d.hot[:, 0].astype(int), d.hot[:, 1].astype(int)
    hy, hx = det_mod.raw_to_oriented(hr, hc, amp)
    hdus.append(_table("HOT_PIXELS", {"ROW_RAW": ("J", hr), "COL_RAW": ("J", hc), "Y": ("J", hy),
                                      "X": ("J", hx), "RATE": ("E", d.hot[:, 2])},
                       "hot pixels: dark current RATE e-/s (times DARKTIME)"))
    bc = [b[0] for b in d.bad_columns]
    br = [b[1] for b in d.bad_columns]
    bx, by1, by2 = _column_span(br, bc, amp)
    hdus.append(_table("BAD_COLUMNS", {
        "COL_RAW": ("J", bc), "ROW_RAW": ("J", br), "RESPONSE": ("E", [b[2] for b in d.bad_columns]),
        "X": ("J", bx), "Y1": ("J", by1), "Y2": ("J", by2)},
        "bad columns: response RESPONSE (in PIXELFLAT) from ROW_RAW to the last raw row"))
    r1 = np.array([b[0] for b in d.boxes], int)
    r2 = np.array([b[1] for b in d.boxes], int)
    c1 = np.array([b[2] for b in d.boxes], int)
    c2 = np.array([b[3] for b in d.boxes], int)
    ya, xa = det_mod.raw_to_oriented(r1, c1, amp)
    yb, xb = det_mod.raw_to_oriented(r2, c2, amp)
    hdus.append(_table("DEFECT_BOXES", {
        "ROW1_RAW": ("J", r1), "ROW2_RAW": ("J", r2), "COL1_RAW": ("J", c1), "COL2_RAW": ("J", c2),
        "Y1": ("J", np.minimum(ya, yb)), "Y2": ("J", np.maximum(ya, yb)),
        "X1": ("J", np.minimum(xa, xb)), "X2": ("J", np.maximum(xa, xb)),
        "RESPONSE": ("E", [b[4] for b in d.boxes])},
        "low-response boxes (inclusive bounds), multiplied into PIXELFLAT"))
    hdus.append(_table("EXPOSURES", {
        "STAMP": ("17A", [e["stamp"] for e in exposures]), "OBS": ("J", [e["obs"] for e in exposures]),
        "EXP": ("J", [e["exp"] for e in exposures]), "KIND": ("3A", [e["kind"] for e in exposures]),
        "OBJECT": ("16A", [e["object"] for e in exposures]),
        "BIAS_LEVEL": ("D", [e["bias_level"] for e in exposures])},
        "true bias level (ADU, = overscan level) of every exposure of the night"))
    return fits.HDUList(hdus)


def write_amp_truth(path: str | Path, m: AmpModel, exposures: list[dict]) -> None:
    write_fits_atomic(path, amp_truth_hdul(m, exposures))


def write_cosmics(path: str | Path, records: list[tuple]) -> None:
    """The ``truth_cosmics`` NPZ of one shot: one row per cosmic-ray pixel of every science
    exposure and amp, deposits on the same pixel summed. Arrays (n,): ``exp`` int16, ``ifuslot``
    int16, ``amp`` '<U2', ``y``, ``x`` int16 (ORIENTED 0-based row and column), ``electrons``
    float32. ``records``: (exp, ifuslot, amp, raw rows, raw cols, electrons) per frame."""
    from hetred.io.atomic import atomic_path

    cols: dict[str, list] = {k: [] for k in ("exp", "ifuslot", "amp", "y", "x", "electrons")}
    for exp, slot, amp, rows, cc, el in records:
        if len(rows) == 0:
            continue
        key = np.asarray(rows, np.int64) * det_mod.NCOLS + np.asarray(cc, np.int64)
        uk, inv = np.unique(key, return_inverse=True)
        tot = np.bincount(inv, weights=np.asarray(el, float))
        y, x = det_mod.raw_to_oriented(uk // det_mod.NCOLS, uk % det_mod.NCOLS, amp)
        n = len(uk)
        cols["exp"].append(np.full(n, exp, np.int16))
        cols["ifuslot"].append(np.full(n, slot, np.int16))
        cols["amp"].append(np.full(n, amp, "<U2"))
        cols["y"].append(np.asarray(y, np.int16))
        cols["x"].append(np.asarray(x, np.int16))
        cols["electrons"].append(tot.astype(np.float32))
    dtypes = {"exp": np.int16, "ifuslot": np.int16, "amp": "<U2", "y": np.int16, "x": np.int16,
              "electrons": np.float32}
    arrays = {k: (np.concatenate(v) if v else np.zeros(0, dtypes[k])) for k, v in cols.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_cosmics(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a :func:`write_cosmics` file."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def amp_summary(m: AmpModel, exposures: list[dict]) -> dict:
    """The amp's entry of the night JSON."""
    d, o = m.detector, m.optics
    return {
        "ifuslot": m.slot.ifuslot, "amp": m.amp, "specid": m.slot.specid, "ifuid": m.slot.ifuid,
        "contid": m.slot.contid, "ampname": m.ampname,
        "gain_header": d.gain_header, "gain_true": d.gain_true,
        "rdnoise_header": d.rdnoise_header, "rdnoise_true": d.rdnoise_true,
        "dark_rate": d.dark_rate, "amp2amp": o.amp2amp, "dead_fibers": o.dead,
        "optics_family": o.family, "optics_family_params": o.family_params,
        "traps": [{"col_raw": c, "row_raw": r, "excess_adu": x} for c, r, x in d.traps],
        "bias_levels": {e["stamp"]: round(float(e["bias_level"]), 4) for e in exposures},
    }
