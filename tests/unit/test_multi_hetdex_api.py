"""hetred's multi files are readable by hetdex_api's shot-file builder, read for read.

What hetdex_api reads from a multi file is written down below as data, from
HETDEX/hetdex_api h5tools/create_shot_hdf5.py (commit b8caea2, 2026-06, ``hdr_survey = "hdr4"``):

* ``append_fibers_to_table`` (every multi file): ``F["spectrum"].data.shape`` -> (n, d); the
  image attributes ``["image", "error", "clean_image"]``, "image" read as ``F["PRIMARY"].data``,
  stored in ``Float32Col((1032, 1032))``; ``F["ifupos"].data[i, 0/1]`` for i < n; for every
  fiber attribute of the hdr2+ list ``spectrum, wavelength, fiber_to_fiber, sky_spectrum,
  sky_subtracted, trace, error1D, calfib, calfibe, Amp2Amp, chi2, rms``: ``if att in F:
  fib[att] = F[att].data[i, :]`` into ``Float32Col((1032,))`` (calfib/calfibe are (1036,) and
  Amp2Amp is not a column: Karl's HDR2+ multi files have none of the three, they come from the
  _cal.fits files later). An HDU that is absent is skipped *silently*, so this test insists that
  every one of the nine 1032-long HDUs is there. Header: ``int(F[0].header["IFUSLOT"])``,
  ``int(...["IFUID"])``, ``int(...["SPECID"])``, ``...["CONTID"]`` (StringCol(8)), ``["amp"][:2]``
  or else ``NAME0[21:23]``; without ``--tar`` the multiframe is ``fn[idx:idx + 20]`` from the
  file name and the exposure is ``basename(dirname(dirname(fn)))`` (``fn.find("multi")`` takes
  the first "multi" of the whole path: a reduction root whose path contains "multi" breaks it).
* ``append_shot_to_table`` (the exp01 file): ``DATE-OBS`` (split on '-'), ``OBSID`` (int),
  ``OBJECT``, ``UT`` (split on ':,.', first 7 characters), ``TRAJCRA`` (x 15), ``TRAJCDEC``,
  ``PARANGLE``, ``STRUCTAZ``, ``AMBTEMP``, ``HUMIDITY``, ``DEWPOINT``, ``BAROMPRE``, ``DARKTIME``,
  ``EXPTIME``, ``MJD``; and the whole primary header is stored as a table attribute.

The multi file is made with SCI-CORE's writer (:mod:`hetred.sci.multi`: ``primary_header`` and
``write_multi``) from a raw header of the simulator's template; the test skips with the reason
when that module or those functions are not importable.
"""
from __future__ import annotations

import os.path as op
import re

import numpy as np
import pytest
from astropy.io import fits

from hetred.layout import Layout

#: (HDU name as hetdex_api writes it, shape of one row it stores) for the per-fiber arrays
HETDEX_API_FIBER_HDUS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("spectrum", (1032,)), ("wavelength", (1032,)), ("fiber_to_fiber", (1032,)),
    ("sky_spectrum", (1032,)), ("sky_subtracted", (1032,)), ("trace", (1032,)),
    ("error1D", (1032,)), ("chi2", (1032,)), ("rms", (1032,)),
)
#: read only when present (not in Karl's HDR2+ multi files)
HETDEX_API_OPTIONAL_HDUS: tuple[str, ...] = ("calfib", "calfibe", "Amp2Amp")
#: (HDU name, full shape) of the images of /Data/Images
HETDEX_API_IMAGE_HDUS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("PRIMARY", (1032, 1032)), ("error", (1032, 1032)), ("clean_image", (1032, 1032)),
)
HETDEX_API_IFUPOS = ("ifupos", (112, 2))
#: primary-header cards read from every multi file (and how)
HETDEX_API_HEADER_EVERY = ("IFUSLOT", "IFUID", "SPECID", "CONTID", "NAME0")
#: primary-header cards read from the exp01 multi file
HETDEX_API_HEADER_SHOT = ("DATE-OBS", "OBSID", "OBJECT", "UT", "TRAJCRA", "TRAJCDEC", "PARANGLE",
                          "STRUCTAZ", "AMBTEMP", "HUMIDITY", "DEWPOINT", "BAROMPRE", "DARKTIME",
                          "EXPTIME", "MJD")

NIGHT, OBS, EXP, SPECID, IFUSLOT, IFUID, AMP = "20180611", 17, 1, 301, 15, "038", "RU"
STAMP = "20180611T054545.2"


def hetdex_api_reads(path: str) -> dict:
    """Do what create_shot_hdf5.py does with one multi file (untarred mode); return the values."""
    out: dict = {}
    with fits.open(path) as F:
        n, d = F["spectrum"].data.shape
        out["n"], out["d"] = n, d
        for att, shape in HETDEX_API_IMAGE_HDUS:
            img = F[att].data * 1.0
            assert img.shape == shape, f"{att}: {img.shape} != {shape}"
            np.asarray(img, dtype=np.float32)                  # Float32Col((1032, 1032))
        name, shape = HETDEX_API_IFUPOS
        assert F[name].data.shape == shape
        out["ifux"] = np.array([F[name].data[i, 0] for i in range(n)], dtype=np.float32)
        for att, row in HETDEX_API_FIBER_HDUS:
            assert att in F, f"hetdex_api would silently skip the missing HDU {att!r}"
            for i in (0, n - 1):
                assert F[att].data[i, :].shape == row, f"{att} row shape"
        for att in HETDEX_API_OPTIONAL_HDUS:
            assert att not in F or F[att].data.shape[0] == n
        h = F[0].header
        out["ifuslot"] = "%03d" % int(h["IFUSLOT"])
        out["ifuid"] = "%03d" % int(h["IFUID"])
        out["specid"] = "%03d" % int(h["SPECID"])
        out["contid"] = h["CONTID"]
        try:
            out["amp"] = "%s" % h["amp"][:2]
        except Exception:
            out["amp"] = "%s" % h["NAME0"][21:23]
        idx = path.find("multi")
        out["multiframe"] = path[idx:idx + 20]
        out["expn"] = op.basename(op.dirname(op.dirname(path)))
        # append_shot_to_table (exp01)
        out["date"] = int("".join(h["DATE-OBS"].split("-")))
        out["obsid"] = int(h["OBSID"])
        out["time"] = "".join(re.split("[:,.]", h["UT"]))[:7]
        out["trajcra"] = h["TRAJCRA"] * 15.0
        for key in HETDEX_API_HEADER_SHOT:
            out[key] = h[key]
        out["nhdu"] = len(F)
        out["dtypes"] = {hdu.data.dtype.str for hdu in F if hdu.data is not None}
    return out


def _raw_header() -> fits.Header:
    from hetred.sim.header import build_header

    return build_header({
        "DATE-OBS": "2018-06-11", "OBJECT": "DEXsp_7_9_W", "UT": "05:45:45.201", "OBSID": OBS,
        "TRAJCRA": 14.25, "TRAJCDEC": 51.3, "EXPTIME": 360.0, "DARKTIME": 361.2, "MJD": 58280.24,
        "CONTID": "S/N 0059", "SPECID": SPECID, "IFUID": IFUID, "IFUSLOT": IFUSLOT,
        "CCDPOS": AMP[0], "CCDHALF": AMP[1],
    })


@pytest.fixture(scope="module")
def multi_file(tmp_path_factory) -> str:
    multi = pytest.importorskip("hetred.sci.multi", reason="hetred.sci.multi (SCI-CORE) not importable yet")
    for fn in ("primary_header", "write_multi", "HDU_NAMES"):
        if not hasattr(multi, fn):
            pytest.skip(f"hetred.sci.multi has no {fn} yet (SCI-CORE's writer)")
    root = tmp_path_factory.mktemp("api_check")   # no "multi" in the folders: see below
    lay = Layout(root / "raw", root / "red")
    path = lay.path("multi", night=NIGHT, obs=OBS, exp=EXP, specid=SPECID, ifuslot=IFUSLOT,
                    ifuid=IFUID, amp=AMP)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for name in multi.HDU_NAMES:
        if name is None:
            continue
        shape = (1032, 1032) if name in ("processed", "error", "clean_image", "model2d", "flat",
                                         "flat_orig") else (112, 2) if name == "ifupos" else (112, 1032)
        arrays[name] = rng.normal(size=shape).astype(np.float32)
    name0 = f"{STAMP}_{IFUSLOT:03d}{AMP}_sci.fits"
    header = multi.primary_header(_raw_header(), name0, {"Ncut": 3}, {"CALMONTH": "201806"})
    multi.write_multi(path, arrays, header)
    return str(path)


def test_multi_has_the_17_hdus(multi_file):
    with fits.open(multi_file) as F:
        assert len(F) == 17
        assert all(h.data.dtype.kind == "f" and h.data.dtype.itemsize == 4 for h in F)
        assert F[9].data.shape == (1, 1) and F[6].data.shape == (112, 2)


def test_hetdex_api_finds_everything_it_reads(multi_file):
    got = hetdex_api_reads(multi_file)
    assert (got["n"], got["d"]) == (112, 1032)
    assert got["ifuslot"] == f"{IFUSLOT:03d}" and got["ifuid"] == IFUID and got["specid"] == f"{SPECID:03d}"
    assert got["amp"] == AMP
    assert len(got["contid"]) <= 8                          # StringCol(8)
    assert got["multiframe"] == f"multi_{SPECID:03d}_{IFUSLOT:03d}_{IFUID}_{AMP}"
    assert got["expn"] == f"exp{EXP:02d}"
    assert got["date"] == int(NIGHT) and got["obsid"] == OBS and got["time"] == "0545452"
    assert got["trajcra"] == pytest.approx(14.25 * 15.0)
    assert got["dtypes"] <= {">f4"}
    for key in HETDEX_API_HEADER_EVERY + HETDEX_API_HEADER_SHOT:
        with fits.open(multi_file) as F:
            assert key in F[0].header, f"primary header lacks {key}"
