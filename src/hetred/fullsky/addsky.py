"""The ``fullsky`` HDU of the calibrated-fiber files (karlspipe hdr2.1 progs/imaddsky.f, run by
fullsky/raddsky and mkscripts/rcal_all after fitradecsp mode 106).

For each IFU's ``DATEvOBS_SSS_III_UUU_cal.fits`` of ``hetred calfib`` (HDUs calib, calibe,
calib_c, calibe_c; (1344, 1036), row = 448 (exposure - 1) + 112 amp + fiber - 1, amps LL LU RL RU)
the rows of the three exposures' ``sub.fits`` are placed by the amp's **name** in ``amp.dat``
(imaddsky took the 448 rows that follow the IFU's first row, which shifts every later amp when one
is missing), converted with the same per-pixel flux factor as calfib, ``calib / calib_c`` (0 where
either is 0) [imaddsky:101-113], and appended as HDU 4 ``fullsky``. The first four HDUs are copied
byte for byte; an older ``fullsky`` HDU is replaced. hetdex_api's append_calfib reads HDUs 0-4 as
calfib, calfibe, calfib_counts, calfibe_counts, calfib_ffsky.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.io.ampdat import parse_amp_dat
from hetred.io.atomic import atomic_path
from hetred.io.fastfits import BLOCK, image_blocks, read_images, scan
from hetred.layout import Layout, parse
from hetred.virus.amp import AMPS

CAL_HDUS = ("calib", "calibe", "calib_c", "calibe_c")
NFIB = 112


def exposure_rows(layout: Layout, night: str, obs: int, exp: int, month: str) -> tuple[dict[str, int], Path]:
    """({amp name: first sub.fits row}, sub.fits path) of one exposure, from its amp.dat."""
    amp_dat = layout.path("fullsky_amp", month=month, night=night, obs3=f"{obs:03d}", exp=exp)
    sub = layout.path("fullsky", month=month, night=night, obs3=f"{obs:03d}", exp=exp)
    rows = {r.name: NFIB * k for k, r in enumerate(parse_amp_dat(amp_dat.read_text()))}
    return rows, sub


def fullsky_rows(cal: dict[str, np.ndarray], subs: dict[int, tuple[dict[str, int], np.ndarray]], ifu: str,
                 nexp: int) -> tuple[np.ndarray, list[str]]:
    """The fullsky HDU (nrow, nwave) of one IFU (``ifu`` = SSS_III_UUU) and the amp-exposures
    without rows (left 0). ``subs``: {exp: (amp.dat rows, sub.fits array)}."""
    calib, calib_c = cal["calib"], cal["calib_c"]
    out = np.zeros(calib.shape, np.float32)
    missing = []
    block = NFIB * len(AMPS)
    for exp in range(1, nexp + 1):
        for k, amp in enumerate(AMPS):
            r0 = block * (exp - 1) + NFIB * k
            if exp not in subs or f"{ifu}_{amp}" not in subs[exp][0] or r0 + NFIB > calib.shape[0]:
                missing.append(f"exp{exp:02d}_{amp}")
                continue
            rows, sub = subs[exp]
            s0 = rows[f"{ifu}_{amp}"]
            val = np.asarray(sub[s0:s0 + NFIB], np.float64)
            c, cc = calib[r0:r0 + NFIB].astype(np.float64), calib_c[r0:r0 + NFIB].astype(np.float64)
            n = min(val.shape[1], c.shape[1])
            ok = (c[:, :n] != 0) & (cc[:, :n] != 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[r0:r0 + NFIB, :n] = np.where(ok, val[:, :n] * c[:, :n] / cc[:, :n], 0.0)
    return out, missing


def append_fullsky(path: Path, data: np.ndarray, cards: list[tuple[str, object, str]]) -> Path:
    """Rewrite ``path`` atomically: its first four HDUs (which must be calib, calibe, calib_c,
    calibe_c) byte for byte, then ``data`` as HDU 4 ``fullsky`` with ``cards``."""
    hdus = scan(path)
    names = [h["name"] for h in hdus[:4]]
    if len(hdus) < 4 or names != list(CAL_HDUS):
        raise HetredError(f"{path}: HDUs {names} are not {', '.join(CAL_HDUS)} (not a hetred calfib file)")
    h3 = hdus[3]
    nbytes = abs(int(h3["bitpix"])) // 8 * int(np.prod(h3["shape"], dtype=np.int64)) if h3["shape"] else 0
    end = h3["offset"] + nbytes + (-nbytes) % BLOCK
    with open(path, "rb") as fh:
        head = fh.read(end)
    if len(head) != end:
        raise HetredError(f"{path}: truncated (expected {end} bytes before HDU 4)")
    blocks = image_blocks(data, [("EXTNAME", "fullsky", "full-field sky subtracted (imaddsky)"), *cards], primary=False)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(head)
        fh.writelines(blocks)
    return path


def addsky_shot(layout: Layout, night: str, obs: int, exps: list[int], month: str) -> dict:
    """Append the fullsky HDU to every ``_cal.fits`` of the shot (module docstring). Returns
    {"written": [paths], "missing": {file: [amp-exposures without rows]}}."""
    datevobs = f"{night}v{obs:03d}"
    subs: dict[int, tuple[dict[str, int], np.ndarray]] = {}
    sources = []
    for exp in exps:
        rows, sub_path = exposure_rows(layout, night, obs, exp, month)
        subs[exp] = (rows, read_images(sub_path, ("primary",))[0]["primary"])
        sources.append(sub_path.name)
    written, missing = [], {}
    for p in layout.glob("calfib", month=month, datevobs=datevobs):
        f = parse("calfib", str(p.relative_to(layout.red)))
        if f is None:
            continue
        ifu = f"{f['specid']:03d}_{f['ifuslot']:03d}_{f['ifuid']}"
        cal, _ = read_images(p, ("calib", "calib_c"))
        nexp = cal["calib"].shape[0] // (NFIB * len(AMPS))
        data, miss = fullsky_rows(cal, subs, ifu, nexp)
        cards: list[tuple[str, object, str]] = [
            ("BUNIT", "1e-17 erg/s/cm2 per 2 A", "sub x calib / calib_c"),
            ("CRVAL1", 3470.0, "Angstrom"), ("CDELT1", 2.0, "Angstrom"), ("CRPIX1", 1.0, ""), ("CTYPE1", "WAVE", ""),
            ("HETRED", __version__, "hetred version"), ("STAGE", "fullsky", "hetred stage"),
            ("FFSOURCE", f"d{night}s{obs:03d}expNNsub.fits", "rows by amp name in amp.dat"),
            ("FFMISS", (" ".join(miss) or "none")[:68], "amp-exposures without rows (0)")]
        append_fullsky(p, data, cards)
        written.append(str(p))
        if miss:
            missing[p.name] = miss
    return {"written": written, "missing": missing, "sources": sources}
