"""Reading raw VIRUS amp frames from their tar member (no extraction to disk) or the untarred tree.

A raw frame is a single-HDU FITS image, 1032 rows x 1064 columns, uint16 (BZERO 32768), whose
header identifies it: SPECID, IFUSLOT, IFUID, CONTID, CCDPOS, CCDHALF, AMPNAME, GAIN, RDNOISE, ...
Every failure raises :class:`hetred.errors.RawReadError` naming the tar and member (or file).
"""
from __future__ import annotations

import io
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
        return int(self.header["IFUSLOT"])

    @property
    def specid(self) -> int:
        return int(self.header["SPECID"])

    @property
    def ifuid(self) -> str:
        from hetred.virus.ids import format_ifuid

        return format_ifuid(self.header.get("IFUID", "000"))

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


def open_tar(tar_path: str | Path) -> tarfile.TarFile:
    """Open a raw tar for reading (one error line if it cannot be opened)."""
    try:
        return tarfile.open(tar_path, "r:")
    except (OSError, tarfile.TarError) as err:
        raise RawReadError(str(tar_path), f"cannot open tar ({err})") from None


def read_member_from(tf: tarfile.TarFile, tar_path: str | Path, member: str) -> RawAmp:
    """Read ``member`` from an open tar."""
    source = f"{tar_path}::{member}"
    try:
        fobj = tf.extractfile(member)
        if fobj is None:
            raise RawReadError(source, "member is not a regular file")
        buf = fobj.read()
    except KeyError:
        raise RawReadError(source, "no such member in the tar") from None
    except (OSError, tarfile.TarError, EOFError) as err:
        raise RawReadError(source, f"member cannot be read ({err})") from None
    return _parse(buf, source)


def read_member_header(tf: tarfile.TarFile, tar_path: str | Path, member: str) -> fits.Header:
    """Only the primary header of a tar member (reads the first FITS blocks)."""
    source = f"{tar_path}::{member}"
    try:
        fobj = tf.extractfile(member)
        if fobj is None:
            raise RawReadError(source, "member is not a regular file")
        return fits.Header.fromfile(fobj)
    except KeyError:
        raise RawReadError(source, "no such member in the tar") from None
    except (OSError, ValueError, tarfile.TarError, EOFError) as err:
        raise RawReadError(source, f"header cannot be read ({err})") from None


def tar_members(tar_path: str | Path) -> list[str]:
    """Names of the regular-file members of a raw tar, in tar order."""
    with open_tar(tar_path) as tf:
        try:
            return [m.name for m in tf.getmembers() if m.isfile()]
        except (OSError, tarfile.TarError, EOFError) as err:
            raise RawReadError(str(tar_path), f"tar is unreadable ({err})") from None


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
