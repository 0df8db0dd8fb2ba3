"""A small FITS reader and writer for hetred's own image files (multi, rectified, _cal.fits),
without astropy's per-HDU bookkeeping (which costs a few ms per HDU, more than the data).

Reading walks the 2880-byte header blocks, takes BITPIX, NAXISn, EXTNAME (the primary HDU is
``"primary"`` unless it has an EXTNAME) and any other keyword asked for, and reads the data of
the HDUs asked for straight from the file (big-endian to native). Only plain images (no BSCALE,
BZERO, groups or tables among the HDUs read) are supported; anything else raises ValueError so
that the caller can fall back to astropy. Writing assembles card images (astropy ``Card``) and
big-endian data into 2880-byte blocks, atomically.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 2880
_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _value(text: str) -> Any:
    """A FITS card value (the part after '= ', comment removed)."""
    t = text.strip()
    if t.startswith("'"):
        end = t.find("'", 1)
        while end != -1 and t[end + 1:end + 2] == "'":      # '' inside a string
            end = t.find("'", end + 2)
        return t[1:end].replace("''", "'").rstrip() if end != -1 else t[1:].rstrip()
    t = t.split("/", 1)[0].strip()
    if t in ("T", "F"):
        return t == "T"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t.replace("D", "E"))
    except ValueError:
        return t


def scan(path: str | Path, keys: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every HDU's structure: dicts with ``name`` (lower case), ``bitpix``, ``shape`` (numpy
    order), ``offset`` (bytes to the data), ``cards`` {keyword: value} for ``keys`` and the
    structural ones."""
    want = {k.upper() for k in keys} | {"BITPIX", "NAXIS", "EXTNAME", "BSCALE", "BZERO", "GCOUNT", "PCOUNT",
                                        "XTENSION"}
    out = []
    with open(path, "rb") as fh:
        pos = 0
        while True:
            cards: dict[str, Any] = {}
            naxes: dict[int, int] = {}
            end = False
            while not end:
                block = fh.read(BLOCK)
                if len(block) < BLOCK:
                    return out
                pos += BLOCK
                text = block.decode("ascii", errors="replace")
                for i in range(0, BLOCK, 80):
                    card = text[i:i + 80]
                    kw = card[:8].rstrip()
                    if kw == "END":
                        end = True
                        break
                    if card[8:10] != "= ":
                        continue
                    if kw.startswith("NAXIS") and kw[5:].isdigit():
                        naxes[int(kw[5:])] = int(_value(card[10:]))
                    elif kw in want:
                        cards[kw] = _value(card[10:])
            bitpix = int(cards.get("BITPIX", 8))
            shape = tuple(naxes[k] for k in sorted(naxes, reverse=True) if k <= int(cards.get("NAXIS", 0)))
            size = int(np.prod(shape, dtype=np.int64)) if shape else 0
            nbytes = abs(bitpix) // 8 * int(cards.get("GCOUNT", 1) or 1) * (int(cards.get("PCOUNT", 0) or 0) + size)
            name = str(cards.get("EXTNAME", "primary" if not out else "")).strip().lower()
            out.append({"name": name, "bitpix": bitpix, "shape": shape, "offset": pos, "cards": cards})
            skip = nbytes + (-nbytes) % BLOCK
            fh.seek(skip, 1)
            pos += skip


def read_images(path: str | Path, names: Sequence[str], keys: Iterable[str] = ()
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """({name: array} for ``names`` (lower-case EXTNAMEs; ``"primary"`` for HDU 0), {key: value}
    of the primary header for ``keys``). A missing name raises KeyError; an HDU that is not a
    plain image raises ValueError."""
    hdus = scan(path, keys)
    if not hdus:
        raise ValueError(f"{path}: not a FITS file")
    by_name = {h["name"]: h for h in reversed(hdus)}
    arrays = {}
    with open(path, "rb") as fh:
        for n in names:
            h = by_name[n.lower()]
            c = h["cards"]
            if h["bitpix"] not in _DTYPES or c.get("BSCALE", 1) != 1 or c.get("BZERO", 0) != 0:
                raise ValueError(f"{path} HDU {n}: not a plain image")
            fh.seek(h["offset"])
            count = int(np.prod(h["shape"], dtype=np.int64))
            a = np.fromfile(fh, dtype=_DTYPES[h["bitpix"]], count=count).reshape(h["shape"])
            arrays[n] = a.astype(a.dtype.newbyteorder("="), copy=False)
    return arrays, {k: v for k, v in hdus[0]["cards"].items() if k in {x.upper() for x in keys}}


def image_blocks(data: np.ndarray, cards: Sequence[tuple[str, Any, str]], primary: bool) -> list:
    """The byte buffers of one image HDU (float32 data written as big-endian)."""
    from astropy.io import fits

    a = np.ascontiguousarray(data, dtype=">f4")
    head = ([fits.Card("SIMPLE", True, "conforms to FITS standard")] if primary else
            [fits.Card("XTENSION", "IMAGE", "Image extension")])
    head += [fits.Card("BITPIX", -32, "array data type"), fits.Card("NAXIS", a.ndim, "number of array dimensions")]
    head += [fits.Card(f"NAXIS{i + 1}", n) for i, n in enumerate(reversed(a.shape))]
    head += ([fits.Card("EXTEND", True)] if primary else
             [fits.Card("PCOUNT", 0, "number of parameters"), fits.Card("GCOUNT", 1, "number of groups")])
    head += [fits.Card(k, v, c) for k, v, c in cards]
    text = "".join(c.image for c in head) + "END".ljust(80)
    return [(text + " " * ((-len(text)) % BLOCK)).encode("ascii"), a.reshape(-1).view(np.uint8),
            b"\0" * ((-a.nbytes) % BLOCK)]


def write_images(path: str | Path, hdus: Sequence[tuple[np.ndarray, Sequence[tuple[str, Any, str]]]]) -> Path:
    """Write images (float32) with their extra cards, the first as the primary HDU, atomically."""
    from hetred.io.atomic import atomic_path

    blocks = []
    for k, (data, cards) in enumerate(hdus):
        blocks += image_blocks(data, cards, primary=k == 0)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.writelines(blocks)
    return Path(path)
