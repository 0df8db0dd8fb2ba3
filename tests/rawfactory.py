"""Small synthetic raw files for tests that need real-format frames without the simulator."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred.layout import Layout, format_relative


def amp_fits_bytes(ifuslot: int = 53, amp: str = "LL", kind: str = "zro", level: float = 1500.0,
                   seed: int = 0, extra: dict | None = None, drop: tuple[str, ...] = ()) -> bytes:
    """A 1032x1064 uint16 FITS frame (BZERO 32768) with the identity keywords of a raw amp."""
    rng = np.random.default_rng(seed)
    data = np.clip(np.round(level + 3.0 * rng.standard_normal((1032, 1064))), 0, 65535).astype(np.uint16)
    hdu = fits.PrimaryHDU(data)
    h = hdu.header
    values = {"IMAGETYP": kind, "OBJECT": "", "EXPTIME": 0.0, "SPECID": 320, "IFUID": "020",
              "IFUSLOT": ifuslot, "CONTID": "S/N 0059", "CCDPOS": amp[0], "CCDHALF": amp[1],
              "AMPNAME": "LR" if amp[1] == "L" else "UL", "GAIN": 0.88, "RDNOISE": 3.0,
              "BIASSEC": "[1033:1064,1:1032]", "TRIMSEC": "[1:1032,1:1032]"}
    values.update(extra or {})
    for k, v in values.items():
        if k not in drop:
            h[k] = v
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def write_tar(layout: Layout, night: str, obs: int, members: dict[str, bytes]) -> Path:
    """Write RAW/night/virus/virus{obs}.tar with the given member name -> bytes."""
    path = layout.path("raw_tar", night=night, obs=obs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def member(obs: int, exp: int, stamp: str, ifuslot: int, amp: str, kind: str) -> str:
    return format_relative("raw_member", obs=obs, exp=exp, stamp=stamp, ifuslot=ifuslot, amp=amp, kind=kind)
