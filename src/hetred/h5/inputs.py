"""What ``hetred h5 shot`` reads of the earlier stages, through the layout.

Every product but the multi files is optional, as h5tools makes it (a missing one leaves its
columns NaN or zero and the unit reports a warning): the fiber RA/Dec (``dithall.use``), the shot
pointing and the astrometry files (``hetred astrom``), the FWHM and response curve (``hetred
throughput``), the calibrated fibers ``_cal.fits`` (``hetred calfib``; HDU 4 ``fullsky`` from the
full-field sky). :func:`optional` asks the layout for a product and gives None when the layout
has no such key (a stage not installed yet) or the file is absent.

The text readers follow the writers' formats (hetdex_formats.md §5.4, §5.6; astrom_throughput.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hetred.errors import HetredError
from hetred.io import fastfits
from hetred.layout import Layout, LayoutError, parse

AMPS = ("LL", "LU", "RL", "RU")
NFIB = 112
N_EXP = 3
#: the rectified grid of calfib (Å)
WAVE_RECT = 3470.0 + 2.0 * np.arange(1036)


def optional(layout: Layout, key: str, seen: list[str] | None = None, **fields: Any) -> Path | None:
    """The path of ``key`` if the layout knows the key with these fields and the file exists;
    ``seen`` collects every path looked for (present or not: the unit's depends)."""
    try:
        p = layout.path(key, **fields)
    except LayoutError:
        return None
    if seen is not None:
        seen.append(str(p))
    return p if p.exists() else None


def glob_optional(layout: Layout, key: str, **fields: Any) -> list[Path]:
    """Existing paths of ``key`` (none when the layout has no such key)."""
    try:
        return list(layout.glob(key, **fields))
    except LayoutError:
        return []


@dataclass(frozen=True)
class AmpFile:
    """One multi file of the shot."""

    exp: int
    specid: int
    ifuslot: int
    ifuid: str
    amp: str
    path: Path

    @property
    def multiframe(self) -> str:
        return f"multi_{self.specid:03d}_{self.ifuslot:03d}_{self.ifuid}_{self.amp}"

    @property
    def ifu(self) -> tuple[int, int, str]:
        return (self.specid, self.ifuslot, self.ifuid)


def amp_files(layout: Layout, night: str, obs: int, n_exp: int = N_EXP) -> list[AmpFile]:
    """The shot's multi files, ordered exposure, IFU slot, amp (LL LU RL RU)."""
    out = []
    for exp in range(1, n_exp + 1):
        for p in layout.glob("multi", night=night, obs=obs, exp=exp):
            f = parse("multi", str(p.relative_to(layout.red)))
            if f is None:
                continue
            out.append(AmpFile(exp, int(f["specid"]), int(f["ifuslot"]), str(f["ifuid"]), str(f["amp"]), p))
    return sorted(out, key=lambda a: (a.exp, a.ifuslot, AMPS.index(a.amp)))


#: the multi-file HDUs the shot file takes (lower-case EXTNAMEs; "primary" is the image)
MULTI_HDUS = ("primary", "error", "clean_image", "ifupos", "chi2", "rms", "spectrum", "wavelength", "trace",
              "fiber_to_fiber", "error1d", "sky_subtracted", "sky_spectrum")


def read_multi(path: Path, images: bool = True) -> tuple[Any, dict[str, np.ndarray]]:
    """(primary header values, {EXTNAME lower case: array}) of a multi file; the primary image is
    ``image``. ``images`` False leaves the three 1032 x 1032 frames out. With hetred's fast FITS
    reader (:mod:`hetred.io.fastfits`) the header is a dict of CONTID only; astropy's when the file
    is not a plain image file."""
    skip = set() if images else {"primary", "error", "clean_image"}
    want = [n for n in MULTI_HDUS if n not in skip]
    try:
        hdus = fastfits.scan(path)
        first = hdus[0]["name"] if hdus else "primary"       # HDU 0 may carry an EXTNAME (vred's "processed")
        names = {h["name"] for h in hdus[1:]}
        pick = ([first] if "primary" in want else []) + [n for n in want if n != "primary" and n in names]
        arrays, cards = fastfits.read_images(path, pick, ["CONTID"])
        return cards, {("image" if k == first and "primary" in want else k): v for k, v in arrays.items()}
    except (ValueError, KeyError):
        pass                                     # not a plain image file: astropy below
    except OSError as err:
        raise HetredError(f"multi file {path}: cannot read ({err})") from None
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as h:
            header = h[0].header.copy()
            out = {}
            for k, hdu in enumerate(h):
                name = "primary" if k == 0 else (hdu.name or "").lower()
                if name in want:
                    out["image" if name == "primary" else name] = np.asarray(hdu.data, dtype=np.float32)
    except (OSError, ValueError) as err:
        raise HetredError(f"multi file {path}: cannot read ({err})") from None
    return header, out


@dataclass
class FiberCoords:
    """Fiber RA/Dec and focal-plane positions of a shot (``dithall.use``), per exposure and amp:
    ``get(exp, multiframe)`` -> (ra, dec, fpx, fpy), each (112,) with NaN for fibers not listed."""

    rows: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)

    def get(self, exp: int, multiframe: str, n: int = NFIB) -> np.ndarray | None:
        a = self.rows.get((exp, multiframe))
        return None if a is None else a[:, :n]


def read_dithall(path: Path) -> FiberCoords:
    """``dithall.use`` (vdrp mk_dithall: ``ra dec ifuslot XS YS xfplane yfplane multifits
    timestamp exposure``, a header line or not) -> :class:`FiberCoords`."""
    try:
        text = path.read_text()
    except OSError as err:
        raise HetredError(f"fiber coordinates {path}: cannot read ({err.strerror})") from None
    out = FiberCoords()
    for n, line in enumerate(text.splitlines(), 1):
        r = line.split()
        if len(r) < 10 or r[0] == "ra":
            continue
        mf, ex = r[7], r[9]
        try:
            exp, fib = int(ex[3:]), int(mf[21:24])
            vals = (float(r[0]), float(r[1]), float(r[5]), float(r[6]))
        except ValueError:
            raise HetredError(f"{path} line {n}: not a dithall.use row (ra dec ifuslot XS YS xfplane "
                              "yfplane multifits timestamp exposure)") from None
        a = out.rows.get((exp, mf[:20]))
        if a is None:
            a = out.rows[(exp, mf[:20])] = np.full((4, NFIB), np.nan)
        if 1 <= fib <= NFIB:
            a[:, fib - 1] = vals
    return out


def read_numbers(path: Path, what: str, n: int | None = None) -> list[float]:
    """The numbers of a small text file (norm.dat, radec*.dat, fwhm.out, getoff2_expNN.out)."""
    try:
        vals = [float(v) for v in path.read_text().split()]
    except OSError as err:
        raise HetredError(f"{what} {path}: cannot read ({err.strerror})") from None
    except ValueError:
        raise HetredError(f"{what} {path}: not a list of numbers") from None
    if n is not None and len(vals) < n:
        raise HetredError(f"{what} {path}: expected {n} numbers, got {len(vals)}")
    return vals


def read_fwhm_all(path: Path, datevobs: str) -> tuple[float, float, int] | None:
    """The shot's line of ``fwhm.all`` (``DATEvOBS fwhm_virus fwhm_virus_err nstars``), or None."""
    for line in path.read_text().splitlines():
        r = line.split()
        if len(r) >= 4 and r[0] == datevobs:
            try:
                return float(r[1]), float(r[2]), int(float(r[3]))
            except ValueError:
                raise HetredError(f"{path}: bad line for {datevobs}: {line!r}") from None
    return None


def read_mch(path: Path) -> list[tuple[str, float, float]]:
    """(name, dx, dy) per exposure of an ``all.mch`` (``'name' dx dy 1 0 0 1 dmag sigma``)."""
    out = []
    for line in path.read_text().splitlines():
        if "'" in line:
            name, rest = line.split("'")[1].strip(), line.split("'")[2].split()
            try:
                out.append((name, float(rest[0]), float(rest[1])))
            except (IndexError, ValueError):
                raise HetredError(f"{path}: not an all.mch line: {line!r}") from None
    return out


def ascii_table(path: Path, names: list[str] | None = None, first: int | None = None) -> np.ndarray:
    """A text table read as h5tools reads it (astropy ``ascii.read``), as a record array with
    fixed-width byte strings (PyTables stores numpy ``U`` strings as UTF-32 garbage).
    ``first``: only the first columns of each row (hetred's fplane has a ninth, CONTID)."""
    from astropy.io import ascii

    try:
        src: Any = str(path)
        if first is not None:
            src = [" ".join(r.split()[:first]) for r in path.read_text().splitlines()
                   if r.strip() and not r.lstrip().startswith("#")]
        t = ascii.read(src, names=names, format="no_header" if first else None) if names else ascii.read(src)
    except Exception as err:  # noqa: BLE001 -- astropy raises many kinds on a malformed table
        raise HetredError(f"{path}: not a readable table ({err.__class__.__name__}: {err})") from None
    t.convert_unicode_to_bytestring()
    return np.asarray(t.as_array())


@dataclass
class CalFibers:
    """The calibrated fibers of one IFU (``_cal.fits``): arrays (1344, 1036) by hetred name
    (calfib, calfibe, calfib_counts, calfibe_counts, ffsky); rows 448 (exp - 1) + 112 amp + fiber."""

    arrays: dict[str, np.ndarray]
    path: Path

    def rows(self, name: str, exp: int, amp: str, n: int = NFIB) -> np.ndarray | None:
        a = self.arrays.get(name)
        if a is None:
            return None
        r0 = 4 * NFIB * (exp - 1) + NFIB * AMPS.index(amp)
        if r0 + n > a.shape[0]:
            return None
        return a[r0:r0 + n]


#: HDU order of fitradecsp mode 106 + imaddsky, and the names h5tools gives them
CAL_HDUS = ("calfib", "calfibe", "calfib_counts", "calfibe_counts", "ffsky")


def read_calfib(path: Path) -> CalFibers:
    """A ``DATEvOBS_SSS_III_UUU_cal.fits`` (HDUs 0-3, and 4 when the full-field sky is in)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as h:
            arrays = {name: np.asarray(hdu.data, dtype=np.float32) for name, hdu in zip(CAL_HDUS, h)
                      if hdu.data is not None and hdu.data.ndim == 2 and hdu.data.shape[1] == len(WAVE_RECT)}
    except (OSError, ValueError) as err:
        raise HetredError(f"calibrated fibers {path}: cannot read ({err})") from None
    if "calfib" not in arrays:
        raise HetredError(f"calibrated fibers {path}: no (n, 1036) calib HDU")
    return CalFibers(arrays, path)


def image_png(path: Path) -> np.ndarray:
    """A PNG as the float array matplotlib's imread gives (what h5tools stores)."""
    from matplotlib.image import imread

    try:
        return np.asarray(imread(str(path)))
    except (OSError, ValueError, SyntaxError) as err:
        raise HetredError(f"{path}: not a readable PNG ({err})") from None
