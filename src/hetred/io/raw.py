"""Reading raw VIRUS amp frames from their tar member (no extraction to disk) or the untarred tree.

A raw frame is a single-HDU FITS image, 1032 rows x 1064 columns, uint16 (BZERO 32768), whose
header identifies it: SPECID, IFUSLOT, IFUID, CONTID, CCDPOS, CCDHALF, AMPNAME, GAIN, RDNOISE, ...
Every failure raises :class:`hetred.errors.RawReadError` naming the tar and member (or file).
"""
from __future__ import annotations

import io
import os
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from astropy.io import fits

from hetred.errors import RawReadError
from hetred.virus import amp as ampgeom

REQUIRED_KEYS = ("SPECID", "IFUSLOT", "CCDPOS", "CCDHALF")
#: required keys whose value must be a whole number (checked when a frame is read)
INTEGER_KEYS = ("SPECID", "IFUSLOT")
SATURATED_ADU = 65535
#: a frame with more than this fraction of its data pixels at 65535 is called saturated
SATURATED_FRACTION = 0.5


@dataclass
class RawAmp:
    """One raw amplifier frame.

    data: (1032, 1064) uint16 ADU in readout orientation (overscan included).
    source: ``tar::member`` or the file path, for messages.
    """

    data: np.ndarray
    header: fits.Header
    source: str

    @property
    def amp(self) -> str:
        return ampgeom.amp_from_header(self.header)

    @property
    def ampname(self) -> str:
        return ampgeom.ampname_from_header(self.header)

    @property
    def ifuslot(self) -> int:
        return self.whole_number("IFUSLOT")

    @property
    def specid(self) -> int:
        return self.whole_number("SPECID")

    def whole_number(self, key: str) -> int:
        """A whole-number header value (SPECID, IFUSLOT); RawReadError naming the file and key."""
        value = self.header.get(key)
        number = _whole_number(value)
        if number is None:
            raise RawReadError(self.source, f"header {key} = {value!r} is not a whole number"
                               if key in self.header else f"header has no {key}")
        return number

    @property
    def ifuid(self) -> str:
        """IFUID as the files write it ('020'); a frame without one cannot be named or mapped
        to its fibers: RawReadError naming the file (never a default)."""
        from hetred.virus.ids import format_ifuid

        value = str(self.header.get("IFUID", "")).strip()
        if not value:
            raise RawReadError(self.source, "header has no IFUID")
        return format_ifuid(value)

    @property
    def contid(self) -> str:
        """Controller number, e.g. '0059' from CONTID 'S/N 0059'."""
        return contid_number(self.header.get("CONTID", ""))

    def overscan_level(self) -> float:
        """Karl's overscan level (ADU): biweight of columns 1034-1060, rows 10-1032."""
        return ampgeom.overscan_level(self.data)

    def saturated_fraction(self) -> float:
        """Fraction of data-section pixels at 65535 ADU."""
        return float(np.count_nonzero(ampgeom.trim(self.data) == SATURATED_ADU)) / (
            ampgeom.NROWS * ampgeom.NCOLS)

    def is_saturated(self) -> bool:
        return self.saturated_fraction() > SATURATED_FRACTION

    def oriented(self, overscan: float | None = None) -> np.ndarray:
        """Overscan-subtracted, trimmed, oriented (1032, 1032) float32 ADU frame."""
        level = self.overscan_level() if overscan is None else overscan
        img = ampgeom.trim(self.data).astype(np.float32) - np.float32(level)
        return np.ascontiguousarray(ampgeom.orient(img, self.amp, self.ampname))


def header_value(raw: RawAmp, key: str) -> float:
    """A positive number the reduction needs from the raw header (GAIN e-/ADU, RDNOISE e-).

    Raises :class:`RawReadError` naming the file and the key when it is missing or unparsable
    (a frame reduced with a default gain would be wrong by the gain error, silently)."""
    if key not in raw.header:
        raise RawReadError(raw.source, f"header has no {key}")
    value = raw.header[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RawReadError(raw.source, f"header {key} = {value!r} is not a number") from None
    if not np.isfinite(number) or number <= 0:
        raise RawReadError(raw.source, f"header {key} = {value!r} is not a positive number")
    return number


def _whole_number(value: object) -> int | None:
    """``value`` as an int when it is one (53, '053', 53.0), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if np.isfinite(number) and number == int(number) else None


def contid_number(value: object) -> str:
    """'S/N 0059' -> '0059' (the digits of CONTID, 4 wide); '' stays ''."""
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return f"{int(digits):04d}" if digits else ""


def _parse(buf: bytes, source: str) -> RawAmp:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(buf), memmap=False) as hdul:
                hdu = hdul[0]
                header = hdu.header.copy()
                data = hdu.data
                if data is None:
                    raise RawReadError(source, "FITS file has no image data")
                data = np.array(data)
    except RawReadError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise RawReadError(source, f"not a readable FITS file ({err.__class__.__name__}: {err})") from None
    missing = [k for k in REQUIRED_KEYS if k not in header]
    if missing:
        raise RawReadError(source, f"header lacks {', '.join(missing)}")
    for key in INTEGER_KEYS:
        if _whole_number(header[key]) is None:
            raise RawReadError(source, f"header {key} = {header[key]!r} is not a whole number")
    if data.shape != (ampgeom.NROWS, ampgeom.NCOLS_RAW):
        raise RawReadError(source, f"image shape {data.shape}, expected (1032, 1064) (truncated?)")
    try:
        ampgeom.amp_from_header(header)
    except ValueError as err:
        raise RawReadError(source, str(err)) from None
    return RawAmp(data=data, header=header, source=source)


def read_raw_file(path: str | Path) -> RawAmp:
    """Read one raw amp file from the untarred tree (or anywhere on disk)."""
    p = Path(path)
    try:
        buf = p.read_bytes()
    except OSError as err:
        raise RawReadError(str(p), f"cannot read ({err.strerror or err})") from None
    return _parse(buf, str(p))


def read_raw_member(tar_path: str | Path, member: str) -> RawAmp:
    """Read one raw amp frame straight from its tar member."""
    with open_tar(tar_path) as tf:
        return read_member_from(tf, tar_path, member)


class RawTar:
    """A raw tar opened for reading its members, tolerant of a truncated or damaged end.

    Opening reads every member header once (as ``tar tvf``) and stops at the first damage
    instead of failing: ``names`` are the regular-file members whose data the file holds in
    full (tar order), ``lost`` the members whose data the file cuts short, ``damage`` one line
    saying where and how the tar is broken (``""`` for an intact tar). A truncated tar is
    detected whether it ends inside a member's data, inside a header, or at a member boundary
    (no end-of-archive block). The intact members read as from any tar; reading a lost (or
    absent) member of a damaged tar raises :class:`RawReadError` naming the tar and the damage.
    """

    def __init__(self, tar_path: str | Path) -> None:
        self.path = Path(tar_path)
        try:
            self._tf = tarfile.open(self.path, "r:")
            size = os.fstat(self._tf.fileobj.fileno()).st_size
        except (OSError, tarfile.TarError, EOFError) as err:
            raise RawReadError(str(tar_path), f"cannot open tar ({err})") from None
        self.size = size
        self.index: dict[str, tarfile.TarInfo] = {}
        self.lost: list[str] = []
        self.damage = ""
        broken = ""
        while True:
            try:
                info = self._tf.next()
            except (OSError, tarfile.TarError, EOFError) as err:
                broken = str(err) or err.__class__.__name__
                break
            if info is None:
                break
            if not info.isfile():
                continue
            if info.offset_data + info.size > size:
                self.lost.append(info.name)
            else:
                self.index[info.name] = info
        end = self._tf.offset
        if self.lost:
            self.damage = (f"truncated: the file ends at byte {size} inside member {self.lost[0]} "
                           "(it and any members after it are lost)")
        elif broken:
            self.damage = f"damaged after byte {end} of {size} ({broken}): any members after it are lost"
        elif self.index and end + tarfile.BLOCKSIZE > size:
            self.damage = (f"truncated: the file ends at byte {size} after member {list(self.index)[-1]} "
                           "without the end-of-archive block (any members after it are lost)")

    @property
    def names(self) -> list[str]:
        """The regular-file members readable in full, in tar order."""
        return list(self.index)

    def __enter__(self) -> RawTar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._tf.close()

    def read(self, member: str, header_only: bool = False) -> bytes | fits.Header:
        """The bytes of ``member`` (or only its primary FITS header); RawReadError otherwise."""
        source = f"{self.path}::{member}"
        info = self.index.get(member)
        if info is None:
            if member in self.lost:
                raise RawReadError(source, f"lost: the tar is {self.damage}")
            if self.damage:
                raise RawReadError(source, f"not in the tar, which is {self.damage}")
            raise RawReadError(source, "no such member in the tar")
        try:
            fobj = self._tf.extractfile(info)
            if fobj is None:
                raise RawReadError(source, "member is not a regular file")
            return fits.Header.fromfile(fobj) if header_only else fobj.read()
        except RawReadError:
            raise
        except (OSError, ValueError, tarfile.TarError, EOFError) as err:
            what = "header" if header_only else "member"
            raise RawReadError(source, f"{what} cannot be read ({err})") from None


def open_tar(tar_path: str | Path) -> RawTar:
    """Open a raw tar for reading (one error line if it cannot be opened at all)."""
    return RawTar(tar_path)


def read_member_from(tf: RawTar, tar_path: str | Path, member: str) -> RawAmp:
    """Read ``member`` from an open tar."""
    buf = tf.read(member)
    assert isinstance(buf, bytes)
    return _parse(buf, f"{tar_path}::{member}")


def read_member_header(tf: RawTar, tar_path: str | Path, member: str) -> fits.Header:
    """Only the primary header of a tar member (reads the first FITS blocks)."""
    hdr = tf.read(member, header_only=True)
    assert isinstance(hdr, fits.Header)
    return hdr


def tar_members(tar_path: str | Path) -> list[str]:
    """Names of the regular-file members of a raw tar readable in full, in tar order (a
    truncated tar gives its intact members: :class:`RawTar` says what is lost)."""
    with open_tar(tar_path) as tf:
        return tf.names


def iter_members(tar_path: str | Path, members: Iterable[str]) -> Iterator[RawAmp | RawReadError]:
    """Read several members from one tar opened once; failures are yielded, not raised."""
    try:
        tf = open_tar(tar_path)
    except RawReadError as err:
        for m in members:
            yield RawReadError(f"{tar_path}::{m}", err.reason)
        return
    with tf:
        for m in members:
            try:
                yield read_member_from(tf, tar_path, m)
            except RawReadError as err:
                yield err
