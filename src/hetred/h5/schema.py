"""The tables of hetdex_api's HDF5 files, column by column (facts of h5tools' ``IsDescription``
classes; shared/reference/hetdex_formats.md §4, hetdex_api_client.md §4).

Two schemas:

* ``"0.8.7"`` (the default): the classes at hetdex_api commit d35b01a (2021-09-20, the
  ``version="0.8.7"`` bump), whose readers the newest PyPI release ships;
* ``"head"``: the classes at HEAD (b8caea2): ``/Data/Fibers`` names ``error1D`` and
  ``calfib_ffsky`` and has no ``Throughput``; ``/Detections`` drops ``detectname`` and adds
  ``apcor, sn_cen, flux_noise_1sigma, sn_3fib, sn_3fib_cen, mc_file, mc_file_idx``; ``/Spectra``
  adds ``spec1d_ffsky``; the star catalogue is a table of its own class; the fiber mask file is a
  ``/FiberIndex`` with flags (``VIRUSFiberIndexWithFlags``).

A column is ``(name, code, shape, pos)`` with code ``S<n>`` (fixed bytes), ``i4``, ``i8``, ``f4``,
``f8`` or ``b1``; ``pos`` None when the class gives none. PyTables orders the columns of a table
by ``pos`` first, then by name (upper case first): :func:`description` hands them to PyTables as
the classes do, so the on-disk order is the same. ``tests/unit/test_h5_schema.py`` compares every
table with the classes (tests/data/h5tools_schema.json, extracted from the hetdex_api sources by
scripts/h5tools_schema.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tables as tb

from hetred.errors import HetredError

SCHEMAS = ("0.8.7", "head")
Column = tuple[str, str, tuple[int, ...], "int | None"]

N_NATIVE = 1032      #: CCD columns of the native fiber arrays
N_RECT = 1036        #: pixels of the rectified grid 3470 + 2 i Å
IMG = (1032, 1032)


def _c(name: str, code: str, shape: tuple[int, ...] = (), pos: int | None = None) -> Column:
    return (name, code, shape, pos)


_V = (N_NATIVE,)
_R = (N_RECT,)

SHOT: tuple[Column, ...] = (
    _c("shotid", "i8", pos=0), _c("date", "i4", pos=3), _c("obsid", "i4", pos=4), _c("objid", "S18", pos=2),
    _c("field", "S12", pos=1), _c("ra", "f8", pos=5), _c("dec", "f8", pos=6), _c("pa", "f8", pos=7),
    _c("n_ifu", "i4", pos=8), _c("datevobs", "S12"), _c("trajcra", "f4"), _c("trajcdec", "f4"),
    _c("trajcpa", "f4"), _c("structaz", "f4"), _c("time", "S7"), _c("ambtemp", "f4"), _c("humidity", "f4"),
    _c("dewpoint", "f4"), _c("pressure", "f4"), _c("expnum", "i4", (3,)), _c("exptime", "f4", (3,)),
    _c("darktime", "f4", (3,)), _c("mjd", "f4", (3,)), _c("fwhm_virus", "f4", pos=9),
    _c("fwhm_virus_err", "f4", pos=10), _c("nstars_fit_fwhm", "i4"), _c("relflux_virus", "f4", (3,), pos=14),
    _c("response_4540", "f4", pos=11), _c("xditherpos", "f4", (3,)), _c("yditherpos", "f4", (3,)),
    _c("xoffset", "f4", (3,)), _c("yoffset", "f4", (3,)), _c("xrms", "f4", (3,)), _c("yrms", "f4", (3,)),
    _c("nstars_fit", "i4", (3,)), _c("obsind", "i4"),
)

_FIBER_IDS = (
    _c("obsind", "i4"), _c("multiframe", "S20", pos=0), _c("fiber_id", "S38", pos=4), _c("fibidx", "i4"),
    _c("fibnum", "i4"), _c("ifux", "f4"), _c("ifuy", "f4"), _c("fpx", "f4"), _c("fpy", "f4"),
    _c("ra", "f4", pos=1), _c("dec", "f4", pos=2),
)
_AMP_IDS = (_c("ifuslot", "S3"), _c("ifuid", "S3"), _c("specid", "S3"), _c("contid", "S8"), _c("amp", "S2"),
            _c("expnum", "i4"))

FIBERS_087: tuple[Column, ...] = _FIBER_IDS + (
    _c("spectrum", "f4", _V), _c("wavelength", "f4", _V), _c("fiber_to_fiber", "f4", _V), _c("chi2", "f4", _V),
    _c("rms", "f4", _V), _c("calfib_counts", "f4", _R), _c("calfibe_counts", "f4", _R), _c("trace", "f4", _V),
    _c("sky_subtracted", "f4", _V), _c("sky_spectrum", "f4", _V), _c("error1Dfib", "f4", _V),
    _c("calfib", "f4", _R), _c("calfibe", "f4", _R), _c("spec_fullsky_sub", "f4", _R),
    _c("Throughput", "f4", _R),
) + _AMP_IDS

FIBERS_HEAD: tuple[Column, ...] = tuple(
    ("error1D",) + c[1:] if c[0] == "error1Dfib" else ("calfib_ffsky",) + c[1:] if c[0] == "spec_fullsky_sub" else c
    for c in FIBERS_087 if c[0] != "Throughput")

IMAGES: tuple[Column, ...] = (
    _c("obsind", "i4"), _c("multiframe", "S20", pos=0), _c("image", "f4", IMG), _c("error", "f4", IMG),
    _c("clean_image", "f4", IMG),
) + _AMP_IDS

SHOT_FIBERINDEX: tuple[Column, ...] = (
    _c("multiframe", "S20", pos=0), _c("fiber_id", "S38", pos=4), _c("fibidx", "i4"), _c("fibnum", "i4"),
    _c("ifux", "f4"), _c("ifuy", "f4"), _c("fpx", "f4"), _c("fpy", "f4"), _c("ra", "f4", pos=1),
    _c("dec", "f4", pos=2), _c("expnum", "i4"),
)

QA: tuple[Column, ...] = (
    _c("expnum", "i4", pos=0), _c("xoffset", "f4", pos=1), _c("yoffset", "f4", pos=2), _c("xrms", "f4", pos=3),
    _c("yrms", "f4", pos=4), _c("nstars", "f4", pos=5),
)
NOMINAL: tuple[Column, ...] = (
    _c("expnum", "i4", pos=0), _c("ra", "f4", pos=1), _c("dec", "f4", pos=2), _c("parangle", "f4", pos=3),
    _c("x_dither_pos", "f4", pos=4), _c("y_dither_pos", "f4", pos=5), _c("relflux_virus", "f4", pos=6),
    _c("als_filename", "S23"),
)
DITHALL: tuple[Column, ...] = (
    _c("ra", "f4", pos=0), _c("dec", "f4", pos=1), _c("ifuslot", "S3"), _c("XS", "f4"), _c("YS", "f4"),
    _c("xfplane", "f4"), _c("yfplane", "f4"), _c("multifits", "S28"), _c("timestamp", "S17"), _c("exposure", "S5"),
)
STARCATALOG_HEAD: tuple[Column, ...] = (
    _c("ignore", "i8", pos=0), _c("star_ID", "S28", pos=1), _c("ra_cat", "f8", pos=2), _c("dec_cat", "f8", pos=3),
    _c("u", "f8", pos=4), _c("g", "f8", pos=5), _c("r", "f8", pos=6), _c("i", "f8", pos=7), _c("z", "f8", pos=8),
)

SURVEY_FIBERINDEX: tuple[Column, ...] = (
    _c("multiframe", "S20", pos=0), _c("fiber_id", "S38", pos=4), _c("shotid", "i8"), _c("datevobs", "S12"),
    _c("date", "i8"), _c("healpix", "i8", pos=5), _c("ifuslot", "S3"), _c("ifuid", "S3"), _c("specid", "S3"),
    _c("amp", "S2"), _c("fibidx", "i4"), _c("fibnum", "i4"), _c("ifux", "f4"), _c("ifuy", "f4"), _c("fpx", "f4"),
    _c("fpy", "f4"), _c("ra", "f4", pos=1), _c("dec", "f4", pos=2), _c("expnum", "i4"),
)
#: 0.8.7's fiber mask ``/Flags`` (no writer class in h5tools at d35b01a; the columns FiberIndex
#: reads, in the order of hetdex_api_client.md §4.3); True = good
FLAGS_087: tuple[Column, ...] = (
    _c("fiber_id", "S38", pos=0), _c("flag", "b1", pos=1), _c("amp_flag", "b1", pos=2), _c("gal_flag", "b1", pos=3),
    _c("meteor_flag", "b1", pos=4),
)
#: HEAD's VIRUSFiberIndexWithFlags (the mask file's ``/FiberIndex``); 1 = good
FLAGS_HEAD: tuple[Column, ...] = (
    _c("multiframe", "S20", pos=0), _c("ra", "f4", pos=1), _c("dec", "f4", pos=2), _c("fiber_id", "S38", pos=3),
    _c("healpix", "i8", pos=4), _c("amp", "S2", pos=5), _c("date", "i8", pos=6), _c("datevobs", "S12", pos=7),
    _c("expnum", "i4", pos=8), _c("fibidx", "i4", pos=9), _c("fibnum", "i4", pos=10), _c("fpx", "f4", pos=11),
    _c("fpy", "f4", pos=12), _c("ifuslot", "S3", pos=13), _c("ifuid", "S3", pos=14), _c("ifux", "f4", pos=15),
    _c("ifuy", "f4", pos=16), _c("shotid", "i8", pos=17), _c("specid", "S3", pos=18), _c("flag", "i4", pos=19),
    _c("flag_badamp", "i1", pos=20), _c("flag_badfib", "i1", pos=21), _c("flag_meteor", "i1", pos=22),
    _c("flag_satellite", "i1", pos=23), _c("flag_largegal", "i1", pos=24), _c("flag_shot", "i1", pos=25),
    _c("flag_throughput", "i1", pos=26),
)

DETECTIONS_087: tuple[Column, ...] = (
    _c("shotid", "i8", pos=2), _c("date", "i4", pos=5), _c("obsid", "i4", pos=6), _c("detectid", "i8", pos=0),
    _c("fiber_id", "S38"), _c("detectname", "S40"), _c("ra", "f4", pos=3), _c("dec", "f4", pos=4),
    _c("wave", "f4", pos=7), _c("wave_err", "f4", pos=8), _c("flux", "f4", pos=9), _c("flux_err", "f4", pos=10),
    _c("linewidth", "f4", pos=11), _c("linewidth_err", "f4", pos=12), _c("continuum", "f4", pos=13),
    _c("continuum_err", "f4", pos=14), _c("sn", "f4", pos=15), _c("sn_err", "f4", pos=16), _c("chi2", "f4", pos=17),
    _c("chi2_err", "f4", pos=18), _c("noise_ratio", "f4"), _c("inputid", "S40"), _c("x_raw", "i4", pos=21),
    _c("y_raw", "i4", pos=22), _c("x_ifu", "f4"), _c("y_ifu", "f4"), _c("weight", "f4"), _c("fibnum", "i4", pos=20),
    _c("multiframe", "S20", pos=19), _c("specid", "S3"), _c("ifuslot", "S3"), _c("ifuid", "S3"), _c("amp", "S2"),
    _c("expnum", "i4"), _c("chi2fib", "f4"),
)
DETECTIONS_HEAD: tuple[Column, ...] = tuple(c for c in DETECTIONS_087 if c[0] != "detectname") + (
    _c("apcor", "f4"), _c("sn_cen", "f4"), _c("flux_noise_1sigma", "f4"), _c("sn_3fib", "f4"),
    _c("sn_3fib_cen", "f4"), _c("mc_file", "S32"), _c("mc_file_idx", "i4"),
)
SPECTRA_087: tuple[Column, ...] = (
    _c("detectid", "i8", pos=0), _c("wave1d", "f4", _R, 1), _c("spec1d", "f4", _R, 2), _c("spec1d_err", "f4", _R, 3),
    _c("counts1d", "f4", _R, 4), _c("counts1d_err", "f4", _R, 5), _c("apsum_counts", "f4", _R, 6),
    _c("apsum_counts_err", "f4", _R, 7), _c("spec1d_nc", "f4", _R), _c("spec1d_nc_err", "f4", _R),
    _c("apcor", "f4", _R), _c("flag_pix", "f4", _R),
)
SPECTRA_HEAD: tuple[Column, ...] = SPECTRA_087 + (_c("spec1d_ffsky", "f4", _R),)
DET_FIBERS: tuple[Column, ...] = (
    _c("detectid", "i8", pos=0), _c("ra", "f4", pos=1), _c("dec", "f4", pos=2), _c("x_ifu", "f4", pos=5),
    _c("y_ifu", "f4", pos=6), _c("multiframe", "S20", pos=3), _c("fibnum", "i4"), _c("fiber_id", "S38", pos=4),
    _c("expnum", "i4", pos=9), _c("distance", "f4", pos=10), _c("wavein", "f4", pos=12),
    _c("timestamp", "S17", pos=11), _c("date", "i4", pos=7), _c("obsid", "i4", pos=8), _c("flag", "i4", pos=13),
    _c("weight", "f4", pos=14), _c("ADC", "f4", (5,), 15), _c("specid", "S3"), _c("ifuslot", "S3"),
    _c("ifuid", "S3"), _c("amp", "S2"), _c("x_raw", "i4"), _c("y_raw", "i4"),
)

#: get_spec2D's tables (the cut-out sizes are its -dx/-dy options)
PHOT_IMAGE: tuple[Column, ...] = (_c("detectid", "i8", pos=0), _c("im_phot", "f4", (60, 60), 4),
                                  _c("im_phot_hdr", "S2880"))
SPEC1D: tuple[Column, ...] = (_c("detectid", "i8", pos=0), _c("spec1D", "f4", _R), _c("spec1D_err", "f4", _R))


def fiber_image_2d(width: int, height: int) -> tuple[Column, ...]:
    """get_spec2D's FiberImage2D for cut-outs of ``width`` columns (wavelength) x ``height`` rows."""
    return (_c("detectid", "i8", pos=0), _c("im_wave", "f4", (width,), 1), _c("im_sum", "f4", (height, width), 2),
            _c("im_array", "f4", (4, height, width), 3))


#: table key -> schema -> columns; the table keys are hetred's names
TABLES: dict[str, dict[str, tuple[Column, ...]]] = {
    "shot": {"0.8.7": SHOT, "head": SHOT},
    "fibers": {"0.8.7": FIBERS_087, "head": FIBERS_HEAD},
    "images": {"0.8.7": IMAGES, "head": IMAGES},
    "shot_fiberindex": {"0.8.7": SHOT_FIBERINDEX, "head": SHOT_FIBERINDEX},
    "qa": {"0.8.7": QA, "head": QA},
    "nominal": {"0.8.7": NOMINAL, "head": NOMINAL},
    "dithall": {"0.8.7": DITHALL, "head": DITHALL},
    "survey_fiberindex": {"0.8.7": SURVEY_FIBERINDEX, "head": SURVEY_FIBERINDEX},
    "mask": {"0.8.7": FLAGS_087, "head": FLAGS_HEAD},
    "detections": {"0.8.7": DETECTIONS_087, "head": DETECTIONS_HEAD},
    "spectra": {"0.8.7": SPECTRA_087, "head": SPECTRA_HEAD},
    "det_fibers": {"0.8.7": DET_FIBERS, "head": DET_FIBERS},
    "phot_image": {"0.8.7": PHOT_IMAGE, "head": PHOT_IMAGE},
    "spec1d": {"0.8.7": SPEC1D, "head": SPEC1D},
}

#: table key -> (node name, title) as h5tools creates them
TITLES: dict[str, tuple[str, str]] = {
    "shot": ("Shot", "Shot Info"),
    "fibers": ("Fibers", "Fiber Info"),
    "images": ("Images", "Image Info"),
    "shot_fiberindex": ("FiberIndex", "Fiber Coord Info"),
    "qa": ("QA", "Quality Assessment"),
    "nominal": ("NominalVals", "Nominal Values"),
    "survey_fiberindex": ("FiberIndex", "Survey Fiber Coord Info"),
    "detections": ("Detections", "HETDEX Line Detection Catalog"),
    "spectra": ("Spectra", "1D Spectra for each Line Detection"),
    "det_fibers": ("Fibers", "Fiber info for each detection"),
    "fiber_images": ("FiberImages", "Fiber Cutout Images"),
    "phot_image": ("PhotImages", "Photometric Images"),
    "spec1d": ("Spec1D", "Aperture Summed Spectrum"),
}

#: hetred's name of a Fibers column -> its name in each schema (None: not in that schema)
FIBER_NAMES: dict[str, dict[str, str | None]] = {
    "error1d": {"0.8.7": "error1Dfib", "head": "error1D"},
    "ffsky": {"0.8.7": "spec_fullsky_sub", "head": "calfib_ffsky"},
    "throughput": {"0.8.7": "Throughput", "head": None},
}


def check_schema(schema: str) -> str:
    if schema not in SCHEMAS:
        raise HetredError(f"unknown schema {schema!r}: choose {' or '.join(SCHEMAS)}")
    return schema


def columns(table: str, schema: str = "0.8.7") -> tuple[Column, ...]:
    """The columns of ``table`` (a key of :data:`TABLES`) in ``schema``."""
    return TABLES[table][check_schema(schema)]


def _col(code: str, shape: tuple[int, ...], pos: int | None) -> Any:
    if code.startswith("S"):
        return tb.StringCol(int(code[1:]), shape=shape, pos=pos)
    kind = {"i1": "int8", "i4": "int32", "i8": "int64", "f4": "float32", "f8": "float64", "b1": "bool"}[code]
    return tb.Col.from_type(kind, shape=shape, pos=pos)


def description(cols: tuple[Column, ...]) -> dict[str, Any]:
    """A PyTables description (name -> Col) of ``cols``."""
    return {name: _col(code, shape, pos) for name, code, shape, pos in cols}


def dtype(cols: tuple[Column, ...]) -> np.dtype:
    """The numpy record dtype PyTables gives a table of ``cols`` (its on-disk column order)."""
    return tb.Description(description(cols))._v_dtype


def fiber_column(name: str, schema: str) -> str | None:
    """The Fibers column that holds hetred's ``name`` in ``schema`` (None: absent)."""
    if name in FIBER_NAMES:
        return FIBER_NAMES[name][check_schema(schema)]
    return name


def zero_rows(cols: tuple[Column, ...], n: int) -> np.ndarray:
    """``n`` rows of zeros (empty strings) with the dtype of ``cols``."""
    return np.zeros(n, dtype=dtype(cols))
