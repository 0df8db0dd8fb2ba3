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
        key_of = lambda f: f[0]                                    # noqa: E731
    else:
        keys = sorted({f[1][:15] for f in found})
        index = {k: i + 1 for i, k in enumerate(keys)}
        key_of = lambda f: f[1][:15]                               # noqa: E731
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
    for s in sorted(set(int(x) for x in ifuslots)):
        xid, yid = s // 10, s % 10
        out[s] = FplaneEntry(s, (xid - 5.5) * 100.0, (4.5 - yid) * 100.0, 0, 0, "000")
    return out


def layout_fibermaps(slots, fplane: dict[int, FplaneEntry]) -> dict[int, dict[str, np.ndarray]]:
    """Fiber positions from the IFU layout for ``slots`` (IFUID from the fplane: its fiber swaps)."""
    out = {}
    for s in sorted(slots):
        ifuid = fplane[s].ifuid if s in fplane else None
        out[s] = {a: amp_positions(a, ifuid) for a in AMPS}
    return out
