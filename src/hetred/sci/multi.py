"""Karl's multi file: 17 HDUs per amp and exposure (hetdex_formats.md §3.2; vred.f).

| HDU | EXTNAME | shape (numpy) | content |
|---|---|---|---|
| 0 | processed (primary) | (1032, 1032) | oriented image, e- (bias, background removed, flat-divided) |
| 1 | error | (1032, 1032) | 2-D error, e- (0 = masked pixel) |
| 2 | clean_image | (1032, 1032) | image - 2-D sky model (0 = masked pixel) |
| 3 | model2d | (1, 1) or (1032, 1032) | 2-D sky model (the sky spectra through the profiles) |
| 4 | flat | (1, 1) or (1032, 1032) | pixel flat, oriented |
| 5 | flat_orig | (1, 1) or (1032, 1032) | pixel flat, raw orientation |
| 6 | ifupos | (112, 2) | fiber x, y in the IFU (arcsec) |
| 7 | chi2 | (112, 1032) | extraction chi^2 per fiber and column |
| 8 | rms | (112, 1032) | rms of data - model within 4 rows of the trace, e- |
| 9 | (none) | (1, 1) | empty placeholder (Karl's former error_analysis) |
| 10 | spectrum | (112, 1032) | extracted e- per column (0 = masked) |
| 11 | wavelength | (112, 1032) | Å at each column |
| 12 | trace | (112, 1032) | row of the fiber centre, 1-based as vred's (hetred's arrays: trace - 1) |
| 13 | fiber_to_fiber | (112, 1032) | library fiber-to-fiber (1 where outside (0, 2)) |
| 14 | error1d | (112, 1032) | 1-sigma error of spectrum / sky_subtracted, e- (0 = masked) |
| 15 | sky_subtracted | (112, 1032) | spectrum - sky_spectrum, e- (0 = masked) |
| 16 | sky_spectrum | (112, 1032) | sky model per fiber, e- per column |

HDUs 3-5 are (1, 1) with vred's limited output (``iuse = 2``, what Karl's production script
run1s asks for; hetred's default, ``[stages.sci] limited_output``), else full frames.
All float32, EXTNAMEs lower case as vred writes them (FITS readers match names without case:
hetdex_api reads ``error1D``). The primary header is the raw header (structure keywords and
BZERO/BSCALE left out), then ``NAME0`` (the raw file name, hetdex_api takes the amp from
``NAME0[21:23]``), ``EXTNAME``, Karl's counts ``Ncut``, ``Nerr``, ``Nbtrace``, ``Nback``,
``Nbackb``, and hetred's provenance (version, inputs, calibration month, settings).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from astropy.io import fits

from hetred._version import __version__

F32 = np.float32
IMAGE_HDUS = ("processed", "error", "clean_image", "model2d", "flat", "flat_orig")
FIBER_HDUS = ("chi2", "rms")
SPECTRUM_HDUS = ("spectrum", "wavelength", "trace", "fiber_to_fiber", "error1d", "sky_subtracted",
                 "sky_spectrum")
#: EXTNAME of every HDU in order (None: the unnamed placeholder)
HDU_NAMES: tuple[str | None, ...] = (*IMAGE_HDUS, "ifupos", *FIBER_HDUS, None, *SPECTRUM_HDUS)
LIMITED = ("model2d", "flat", "flat_orig")       #: (1, 1) with limited output (vred iuse = 2)
#: raw header cards never copied into the primary header
_SKIP = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE", "EXTNAME",
         "PCOUNT", "GCOUNT", "XTENSION", "CHECKSUM", "DATASUM", "END"}


def primary_header(raw_header: fits.Header, name0: str, counts: Mapping[str, int],
                   provenance: Mapping[str, Any]) -> fits.Header:
    """The raw header without its structure cards, NAME0, EXTNAME, Karl's counts and hetred's
    provenance (``provenance``: key -> value or (value, comment); keys longer than 8 characters
    become HIERARCH cards)."""
    cards = [c for c in raw_header.cards if c.keyword not in _SKIP and not c.keyword.startswith("NAXIS")]
    cards += [_card("NAME0", name0, "Label"), _card("EXTNAME", "processed", "Label")]
    for key, comment in (("Ncut", "Continuum Fibers"), ("Nerr", "N pix removed"),
                         ("Nbtrace", "N bad trace"), ("Nback", "N back pixels"),
                         ("Nbackb", "N back sections")):
        cards.append(_card(key.upper(), int(counts.get(key, 0)), comment))
    cards += [_card("HETRED", __version__, "hetred version"), _card("STAGE", "sci", "hetred stage")]
    for key, value in provenance.items():
        v, c = value if isinstance(value, tuple) else (value, "")
        cards.append(_card(key, v, c))
    return fits.Header(cards)


def _card(key: str, value: Any, comment: str = "") -> fits.Card:
    """A card that fits in 80 characters: string values cut to 68, the comment cut or dropped;
    keys longer than 8 characters become HIERARCH cards."""
    if isinstance(value, str):
        value = value[:68]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    key = key if len(key) <= 8 else f"HIERARCH {key}"
    if not comment:
        return fits.Card(key, value)
    bare = len(fits.Card(key, value).image.rstrip())
    room = 80 - bare - 3
    return fits.Card(key, value, comment[:room]) if room > 0 else fits.Card(key, value)


def _hdu(name: str | None, data: np.ndarray) -> fits.ImageHDU:
    hdu = fits.ImageHDU(np.ascontiguousarray(data, dtype=F32))
    if name is not None:
        hdu.header["EXTNAME"] = (name, "Label")
    return hdu


def multi_hdulist(arrays: Mapping[str, np.ndarray], header: fits.Header,
                  limited: bool = False) -> fits.HDUList:
    """The 17 HDUs from ``arrays`` (name -> array, every named HDU but the placeholder)."""
    missing = [n for n in HDU_NAMES if n is not None and n not in arrays]
    if missing:
        raise ValueError(f"multi file needs {', '.join(missing)}")
    hdus: list = [fits.PrimaryHDU(np.ascontiguousarray(arrays["processed"], dtype=F32), header=header)]
    hdus[0].header["EXTNAME"] = ("processed", "Label")
    for name in HDU_NAMES[1:]:
        if name is None:
            hdus.append(_hdu(None, np.zeros((1, 1), F32)))
        elif limited and name in LIMITED:
            hdus.append(_hdu(name, np.zeros((1, 1), F32)))
        else:
            hdus.append(_hdu(name, arrays[name]))
    return fits.HDUList(hdus)


def _block(cards: list[fits.Card]) -> bytes:
    text = "".join(c.image for c in cards) + "END".ljust(80)
    return (text + " " * ((-len(text)) % 2880)).encode("ascii")


def _data(a: np.ndarray) -> list:
    """The data of an HDU: the big-endian float32 array (written through the buffer protocol,
    no bytes copy) and its zero padding to 2880 bytes."""
    b = np.ascontiguousarray(a, dtype=">f4")
    return [b.reshape(-1).view(np.uint8), b"\0" * ((-b.nbytes) % 2880)]


def multi_bytes(arrays: Mapping[str, np.ndarray], header: fits.Header, limited: bool = False) -> list:
    """The multi file as a list of byte buffers (what :func:`multi_hdulist` would write,
    without astropy's per-HDU header bookkeeping: headers from card images, data big-endian
    float32)."""
    missing = [n for n in HDU_NAMES if n is not None and n not in arrays]
    if missing:
        raise ValueError(f"multi file needs {', '.join(missing)}")
    out = []
    for i, name in enumerate(HDU_NAMES):
        if name is None or (limited and name in LIMITED):
            data = np.zeros((1, 1), F32)
        else:
            data = np.asarray(arrays[name])
        if data.ndim != 2:
            raise ValueError(f"multi HDU {name}: 2-D array expected, got shape {data.shape}")
        ny, nx = data.shape
        if i == 0:
            cards = [fits.Card("SIMPLE", True, "conforms to FITS standard"),
                     fits.Card("BITPIX", -32, "array data type"), fits.Card("NAXIS", 2, "number of array dimensions"),
                     fits.Card("NAXIS1", nx), fits.Card("NAXIS2", ny), fits.Card("EXTEND", True)]
            cards += [c for c in header.cards if c.keyword not in _SKIP and not c.keyword.startswith("NAXIS")]
            cards.append(fits.Card("EXTNAME", "processed", "Label"))
        else:
            cards = [fits.Card("XTENSION", "IMAGE", "Image extension"), fits.Card("BITPIX", -32, "array data type"),
                     fits.Card("NAXIS", 2, "number of array dimensions"), fits.Card("NAXIS1", nx),
                     fits.Card("NAXIS2", ny), fits.Card("PCOUNT", 0, "number of parameters"),
                     fits.Card("GCOUNT", 1, "number of groups")]
            if name is not None:
                cards.append(fits.Card("EXTNAME", name, "Label"))
        out += [_block(cards), *_data(data)]
    return out


def write_multi(path: Path, arrays: Mapping[str, np.ndarray], header: fits.Header,
                limited: bool = False) -> Path:
    """Write the multi file atomically (:func:`multi_bytes`); returns ``path``."""
    from hetred.io.atomic import atomic_path

    blocks = multi_bytes(arrays, header, limited)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.writelines(blocks)
    return path


def read_multi(path: str | Path) -> dict[str, np.ndarray]:
    """Every named HDU of a multi file as float32 arrays (``processed`` for the primary)."""
    out = {}
    with fits.open(path, memmap=False) as h:
        for i, name in enumerate(HDU_NAMES):
            if name is not None:
                out[name] = np.asarray(h[i].data, dtype=F32)
        out["header"] = h[0].header.copy()
    return out
