"""Finding a shot's inputs: CoFeS images or ``.als`` tables, the catalogue, the fplane, the pointing.

Two ways in (docs/stages/astrom.md):

* inside the layout (:func:`layout_inputs`): the shot's CoFeS images (layout key ``cofes``), its
  multi files (pointing TRAJRA [h], TRAJDEC, PARANGLE of the first LL multi file, as vdrp
  ``get_ra_dec_orig``; fiber positions from HDU ``ifupos``), the night's fplane (``fplane`` in the
  reduction tree, else ``fplane_archive`` in the raw tree, else the nominal slot grid with a
  warning) and the star catalogue ``star_catalog`` (raw tree);
* outside it (:func:`folder_exposures`, :func:`als_exposures`): a folder searched recursively for
  ``CoFeS{stamp}_{slot}_sci.fits`` (exposures told apart by an ``expNN`` folder, else by time
  stamp) or for DAOPHOT ``{stamp}_{slot}.als`` files (exposures by stamp), with the pointing in a
  ``radec.orig`` file and fiber positions from the IFU layout (:func:`hetred.virus.ifu.amp_positions`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetred.errors import HetredError
from hetred.virus.fplane import FplaneEntry
from hetred.virus.ifu import amp_positions

COFES_RE = re.compile(r"^CoFeS(\d{8}T\d{6}(?:\.\d)?)_(\d{3})_sci\.fits$")
ALS_RE = re.compile(r"^(\d{8}T\d{6})_(\d{3})\.als$")
EXP_RE = re.compile(r"^exp(\d{2,3})$")
AMPS = ("LL", "LU", "RL", "RU")


@dataclass
class ExposureFiles:
    """One exposure's per-IFU files: {ifuslot: path}, its number and time stamp."""

    index: int
    stamp: str
    files: dict[int, Path] = field(default_factory=dict)


def folder_exposures(root: str | Path) -> list[ExposureFiles]:
    """CoFeS images under ``root`` (recursive), grouped into exposures.

    An image in a folder ``expNN`` (at any depth) belongs to exposure NN; otherwise exposures are
    numbered 1, 2, ... in time-stamp order. Raises HetredError when there is no image or an IFU
    slot appears twice in one exposure.
    """
    root = Path(root)
    if not root.is_dir():
        raise HetredError(f"image folder {root} does not exist")
    found = []
    for p in sorted(root.rglob("CoFeS*_sci.fits")):
        m = COFES_RE.match(p.name)
        if m is None:
            continue
        exp = next((int(EXP_RE.match(q.name).group(1)) for q in p.parents  # type: ignore[union-attr]
                    if EXP_RE.match(q.name)), None)
        found.append((exp, m.group(1), int(m.group(2)), p))
    if not found:
        raise HetredError(f"no CoFeS*_sci.fits image under {root}")
    return _group(found, root)


def als_exposures(root: str | Path) -> list[ExposureFiles]:
    """DAOPHOT ``{stamp}_{slot}.als`` files under ``root`` (recursive), exposures by stamp order."""
    root = Path(root)
    if not root.is_dir():
        raise HetredError(f".als folder {root} does not exist")
    found = [(None, m.group(1), int(m.group(2)), p) for p in sorted(root.rglob("*.als"))
             if (m := ALS_RE.match(p.name)) is not None]
    if not found:
        raise HetredError(f"no STAMP_SLOT.als file (e.g. 20180611T054545_015.als) under {root}")
    return _group(found, root)


def _group(found: list[tuple[int | None, str, int, Path]], root: Path) -> list[ExposureFiles]:
    if all(f[0] is not None for f in found):
        keys = sorted({f[0] for f in found})                       # type: ignore[type-var]
        index = {k: int(k) for k in keys}                          # type: ignore[arg-type]
        key_of = lambda f: f[0]
    else:
        keys = sorted({f[1][:15] for f in found})
        index = {k: i + 1 for i, k in enumerate(keys)}
        key_of = lambda f: f[1][:15]
    out: dict[object, ExposureFiles] = {}
    for f in found:
        k = key_of(f)
        e = out.setdefault(k, ExposureFiles(index[k], f[1]))
        if f[2] in e.files:
            raise HetredError(f"IFU slot {f[2]:03d} twice in exposure {e.index} under {root}: "
                              f"{e.files[f[2]]} and {f[3]}")
        e.files[f[2]] = f[3]
    return [out[k] for k in sorted(out, key=lambda k: index[k])]


def nominal_fplane(ifuslots) -> dict[int, FplaneEntry]:
    """Slots at their nominal focal-plane positions (X_FP = (xid - 5.5) x 100", Y_FP = (4.5 - yid) x
    100" for slot = 10 xid + yid; hetdex_formats.md §2.4), SPECID 0 and IFUID '000' unknown."""
    out = {}
    for s in sorted({int(x) for x in ifuslots}):
        xid, yid = s // 10, s % 10
        out[s] = FplaneEntry(s, (xid - 5.5) * 100.0, (4.5 - yid) * 100.0, 0, 0, "000")
    return out


def layout_fibermaps(slots, fplane: dict[int, FplaneEntry]) -> dict[int, dict[str, np.ndarray]]:
    """Fiber positions from the IFU layout for ``slots`` (IFUID from the fplane: its fiber swaps)."""
    from hetred.virus.ifu import ifu_positions

    pos = ifu_positions()
    out = {}
    for s in sorted(slots):
        ifuid = fplane[s].ifuid if s in fplane else None
        out[s] = {a: amp_positions(a, ifuid, pos) for a in AMPS}
    return out


# ------------------------------------------------------------------------------------------------
# pointing, pixel offset, fplane, catalogue

#: hetred's and Panacea's 51 x 51 CoFeS grid: pixel 1 at IFU (-25.15, -25.24)"
DEFAULT_PIXEL_OFFSET = (-26.15, -26.24)


def pixel_offset_of(header) -> tuple[float, float] | None:
    """(xoff, yoff) that turn 1-based pixel x, y of a CoFeS image into IFU arcsec: the IFU
    position of pixel 1 minus 1 (hetred's ``IFUX0/IFUY0``, else the real files' ``CRPIX1/CRPIX2``,
    which hold that position, not a FITS reference pixel; shared/reference/astrom_throughput.md
    §1.3), for 1" pixels; None when the header has neither."""
    for kx, ky in (("IFUX0", "IFUY0"), ("CRPIX1", "CRPIX2")):
        if kx in header and ky in header:
            x0, y0 = float(header[kx]), float(header[ky])
            if kx == "CRPIX1" and not (x0 < 0 and y0 < 0):
                continue            # a real reference pixel: not the CoFeS convention
            scale = float(header.get("PIXSCALE", 1.0))
            if scale != 1.0:
                return None
            return x0 - 1.0, y0 - 1.0
    return None


def read_pointing(multi: str | Path) -> tuple[float, float, float, float | None]:
    """(TRAJRA [h], TRAJDEC, PARANGLE, STRUCTAZ) of a multi file's primary header (vdrp
    ``get_ra_dec_orig``, ``get_track``). Raises HetredError naming a missing or unset value."""
    from astropy.io import fits

    h = fits.getheader(multi, 0)
    vals = []
    for key in ("TRAJRA", "TRAJDEC", "PARANGLE"):
        if key not in h:
            raise HetredError(f"{multi}: no {key} in the header (the header pointing of the shot)")
        v = float(h[key])
        if v < -999990.0:
            raise HetredError(f"{multi}: {key} is unset ({v:g})")
        vals.append(v)
    az = h.get("STRUCTAZ")
    return vals[0], vals[1], vals[2], (float(az) if az is not None else None)


def load_fplane(path: str | Path) -> dict[int, FplaneEntry]:
    """An fplane file, or a one-line HetredError naming it."""
    from hetred.virus.fplane import read_fplane

    p = Path(path)
    if not p.is_file():
        raise HetredError(f"fplane {p} does not exist")
    try:
        fp = read_fplane(p)
    except ValueError as err:
        raise HetredError(f"fplane {p}: {err}") from None
    if not any(e.is_ifu for e in fp.values()):
        raise HetredError(f"fplane {p} has no IFU slot")
    return fp


def night_fplane(layout, night: str, slots, given: str | Path | None = None
                 ) -> tuple[dict[int, FplaneEntry], str, list[str]]:
    """The focal plane of a night: ``given``, else the reduction tree's ``fplane``, else the raw
    tree's ``fplane_archive``, else the nominal slot grid (with a warning). Returns (entries,
    source, warnings)."""
    if given is not None:
        return load_fplane(given), str(given), []
    for key in ("fplane", "fplane_archive"):
        p = layout.path(key, night=night)
        if p.is_file():
            return load_fplane(p), str(p), []
    why = (f"no fplane for {night} ({layout.path('fplane', night=night)}, "
           f"{layout.path('fplane_archive', night=night)}): nominal slot positions used, SPECID/IFUID unknown")
    return nominal_fplane(slots), "nominal", [why]


def ifupos_fibermaps(multis: dict[tuple[int, str], Path]) -> dict[int, dict[str, np.ndarray]]:
    """Fiber positions (HDU ``ifupos``, (112, 2) arcsec) of multi files {(ifuslot, amp): path}
    (vdrp ``mk_fibermap_files`` reads those of exposure 1)."""
    from astropy.io import fits

    out: dict[int, dict[str, np.ndarray]] = {}
    for (slot, amp), p in sorted(multis.items()):
        try:
            with fits.open(p, memmap=True, lazy_load_hdus=True) as h:
                xy = np.array(h["ifupos"].data, dtype=float)
        except (OSError, KeyError) as err:
            raise HetredError(f"{p}: no fiber positions (HDU ifupos): {err}") from None
        out.setdefault(slot, {})[amp] = xy
    return out
