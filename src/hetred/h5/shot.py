"""The shot file ``DATEvOBS.h5`` that hetdex_api reads (h5tools create_shot_hdf5.py --tar,
append_calfib.py, create_astrometry_hdf5.py --append, create_cal_hdf5.py --append in one pass;
hetdex_formats.md §4.1, hetdex_api_client.md §4.1 and §5).

``/Data/Fibers`` has one row per fiber of every exposure, ordered exposure, IFU slot, amp (LL LU
RL RU), fiber (fibidx 0..111), with the multi file's fiber arrays (spectrum, wavelength,
fiber_to_fiber, chi2, rms, trace, sky_subtracted, sky_spectrum, error1d as ``error1Dfib``), the
calibrated fibers of ``_cal.fits`` (calfib, calfibe: 1e-17 erg s^-1 cm^-2 per 2 Å; calfib_counts,
calfibe_counts; HDU 4 as ``spec_fullsky_sub``), ``ifux, ifuy`` (the multi file's ``ifupos``:
undithered IFU positions), ``fpx, fpy, ra, dec`` (``dithall.use``: dithered) and the ids
(``fiber_id = SHOTID_E_multi_SSS_III_UUU_AA_FFF``). ``Throughput`` is 0 (Karl's multi files have
no such HDU). ``/Data/FiberIndex`` repeats the ids and positions in the same row order;
``/Data/Images`` holds image, error and clean_image per amp and exposure. Missing inputs leave
their columns as h5tools does (ra, dec, fpx, fpy NaN; calfib columns 0) with a warning.

The file is written amp by amp (one multi file and 112 rows of the calibrated fibers in memory at
a time; the calibrated fibers of an IFU are read once per exposure), into a temporary name that
is renamed when complete (:func:`hetred.io.atomic.atomic_path`), with write-behind
(:class:`hetred.io.writebehind.WriteBehind`: the written pages go to disk as they come and leave
the page cache, instead of 18.5 GB of it).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import tables as tb

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.h5 import inputs
from hetred.h5.astrometry import Notes, write_astrometry, write_calibration
from hetred.h5.fluxlimit import flux_limit, line_noise
from hetred.h5.indexing import create_csindex
from hetred.h5.schema import columns, description, dtype, fiber_column
from hetred.h5.settings import H5Settings
from hetred.h5.shotmeta import shot_row
from hetred.io.atomic import atomic_path
from hetred.io.writebehind import WriteBehind
from hetred.layout import Layout
from hetred.virus.ids import month_of, parse_datevobs, shotid

_MULTI_ARRAYS = ("spectrum", "wavelength", "fiber_to_fiber", "chi2", "rms", "trace", "sky_subtracted",
                 "sky_spectrum")
_CAL = ("calfib", "calfibe", "calfib_counts", "calfibe_counts", "ffsky")
_IMAGES = (("image", "image"), ("error", "error"), ("clean_image", "clean_image"))


@dataclass
class ShotResult:
    """What :func:`write_shot` did."""

    path: Path
    counts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)   #: every product looked for, present or not
    notes: dict[str, list[str]] = field(default_factory=dict)


def _ifu_groups(amps: list[inputs.AmpFile]) -> Iterator[tuple[tuple[int, int], list[inputs.AmpFile]]]:
    for key, grp in groupby(amps, key=lambda a: (a.exp, a.ifuslot)):
        yield key, list(grp)


class _CalCache:
    """The calibrated fibers of one IFU and exposure (448 rows per array)."""

    def __init__(self, layout: Layout, month: str, datevobs: str, seen: list[str]) -> None:
        self.layout, self.month, self.datevobs, self.seen = layout, month, datevobs, seen
        self.missing: set[str] = set()
        self.no_ffsky: set[str] = set()
        self.used: set[str] = set()

    def rows(self, a: inputs.AmpFile) -> dict[str, np.ndarray] | None:
        """{name: (448, 1036)} of the IFU of ``a`` in its exposure, or None when absent."""
        from astropy.io import fits

        ifu = f"{a.specid:03d}_{a.ifuslot:03d}_{a.ifuid}"
        p = inputs.optional(self.layout, "calfib", self.seen, month=self.month, datevobs=self.datevobs, specid=a.specid,
                            ifuslot=a.ifuslot, ifuid=a.ifuid)
        if p is None:
            self.missing.add(ifu)
            return None
        r0, n = 4 * inputs.NFIB * (a.exp - 1), 4 * inputs.NFIB
        out = {}
        try:
            with fits.open(p, memmap=True) as h:
                for name, hdu in zip(_CAL, h):
                    if hdu.data is not None and hdu.data.ndim == 2 and hdu.data.shape[1] == 1036 \
                            and hdu.data.shape[0] >= r0 + n:
                        out[name] = np.array(hdu.section[r0:r0 + n], dtype=np.float32)
        except (OSError, ValueError) as err:
            raise HetredError(f"calibrated fibers {p}: cannot read ({err})") from None
        if "calfib" not in out:
            raise HetredError(f"calibrated fibers {p}: no calib HDU of {n} rows for exposure {a.exp}")
        if "ffsky" not in out:
            self.no_ffsky.add(ifu)
        self.used.add(str(p))
        return out


def _fiber_rows(a: inputs.AmpFile, header: Any, hdus: dict[str, np.ndarray], cal: dict[str, np.ndarray] | None,
                coords: inputs.FiberCoords | None, sid: int, fib_dtype: np.dtype, schema: str) -> np.ndarray:
    n = hdus["spectrum"].shape[0]
    out = np.zeros(n, dtype=fib_dtype)
    mf = a.multiframe
    out["obsind"] = 1
    out["multiframe"] = mf.encode()
    fibnum = np.arange(1, n + 1)
    out["fibidx"], out["fibnum"], out["expnum"] = fibnum - 1, fibnum, a.exp
    out["fiber_id"] = [f"{sid}_{a.exp}_{mf}_{k:03d}".encode() for k in fibnum]
    pos = hdus.get("ifupos")
    if pos is not None and pos.shape[0] >= n:
        out["ifux"], out["ifuy"] = pos[:n, 0], pos[:n, 1]
    xy = coords.get(a.exp, mf, n) if coords is not None else None
    if xy is None:
        for c in ("ra", "dec", "fpx", "fpy"):
            out[c] = np.nan
    else:
        out["ra"], out["dec"], out["fpx"], out["fpy"] = xy
    for name in _MULTI_ARRAYS:
        if name in hdus and hdus[name].shape[0] >= n:
            out[name] = hdus[name][:n]
    if "error1d" in hdus:
        out[fiber_column("error1d", schema)] = hdus["error1d"][:n]
    if cal is not None:
        r0 = inputs.NFIB * inputs.AMPS.index(a.amp)
        for name in _CAL:
            col = fiber_column(name, schema)
            if name in cal and col is not None:
                out[col] = cal[name][r0:r0 + n]
    out["ifuslot"], out["ifuid"], out["specid"] = (f"{a.ifuslot:03d}".encode(), a.ifuid.encode(),
                                                    f"{a.specid:03d}".encode())
    out["contid"] = str(header.get("CONTID", "")).strip().encode("ascii", "replace")[:8]
    out["amp"] = a.amp.encode()
    return out


def _image_row(a: inputs.AmpFile, header: Any, hdus: dict[str, np.ndarray], img_dtype: np.dtype,
               bad: list[str]) -> np.ndarray:
    row = np.zeros(1, dtype=img_dtype)
    row["obsind"], row["multiframe"], row["expnum"] = 1, a.multiframe.encode(), a.exp
    for col, name in _IMAGES:
        im = hdus.get(name)
        if im is not None and im.shape == (1032, 1032):
            row[col][0] = im
        else:
            bad.append(f"{a.path.name} exp{a.exp:02d}: {name}")
    row["ifuslot"], row["ifuid"], row["specid"] = (f"{a.ifuslot:03d}".encode(), a.ifuid.encode(),
                                                    f"{a.specid:03d}".encode())
    row["contid"] = str(header.get("CONTID", "")).strip().encode("ascii", "replace")[:8]
    row["amp"] = a.amp.encode()
    return row


def _headers(amps: list[inputs.AmpFile]) -> dict[int, Any]:
    from astropy.io import fits

    out = {}
    for a in amps:
        if a.exp not in out:
            try:
                out[a.exp] = fits.getheader(a.path, 0)
            except (OSError, ValueError) as err:
                raise HetredError(f"multi file {a.path}: cannot read its header ({err})") from None
    return out


def write_shot(layout: Layout, datevobs: str, settings: H5Settings | None = None,
               out: Path | None = None) -> ShotResult:
    """Write the shot file of ``datevobs`` (module docstring); ``out`` overrides the layout path."""
    st = settings or H5Settings()
    try:
        night, obs = parse_datevobs(datevobs)
    except ValueError as err:
        raise HetredError(str(err)) from None
    amps = inputs.amp_files(layout, night, obs)
    if not amps:
        raise HetredError(f"no multi files of {datevobs} under {layout.red / 'reductions' / night} "
                          f"(run hetred sci --shot {datevobs})")
    t0 = time.perf_counter()
    dest = Path(out) if out is not None else layout.path("h5_shot", datevobs=datevobs)
    notes = Notes()
    sid = shotid(night, obs)
    dith = inputs.optional(layout, "dithall", notes.seen, datevobs=datevobs)
    coords = inputs.read_dithall(dith) if dith is not None else None
    if coords is None:
        notes.append("no fiber coordinates (dithall.use of hetred astrom): ra, dec, fpx, fpy are NaN")
    headers = _headers(amps)
    cal = _CalCache(layout, month_of(night), datevobs, notes.seen)
    fib_cols, img_cols = columns("fibers", st.schema), columns("images", st.schema)
    idx_cols = columns("shot_fiberindex", st.schema)
    fib_dtype, img_dtype, idx_dtype = dtype(fib_cols), dtype(img_cols), dtype(idx_cols)
    res = ShotResult(dest)
    noise: list[np.ndarray] = []
    ras: list[np.ndarray] = []
    mfs: list[np.ndarray] = []
    img_mfs: list[bytes] = []
    ifu_xy: dict[str, np.ndarray] = {}
    bad_images: list[str] = []
    with atomic_path(dest) as tmp:
        f = tb.open_file(str(tmp), "w", title=f"hetred {__version__} shot {datevobs}")
        try:
            behind = WriteBehind(f.fileno())
            data = f.create_group(f.root, "Data", "VIRUS Fiber Data and Metadata")
            fib_t = f.create_table(data, "Fibers", description(fib_cols), "Fiber Info",
                                   filters=st.filters("Fibers"), expectedrows=len(amps) * inputs.NFIB)
            shot_t = f.create_table(f.root, "Shot", description(columns("shot", st.schema)), "Shot Info",
                                    filters=st.filters("Shot"))
            img_t = f.create_table(data, "Images", description(img_cols), "Image Info",
                                   filters=st.filters("Images"), expectedrows=len(amps))
            idx_t = f.create_table(data, "FiberIndex", description(idx_cols), "Fiber Coord Info",
                                   filters=st.filters("FiberIndex"), expectedrows=len(amps) * inputs.NFIB)
            for _, group in _ifu_groups(amps):
                rows = cal.rows(group[0])
                for a in group:
                    header, hdus = inputs.read_multi(a.path)
                    fib = _fiber_rows(a, header, hdus, rows, coords, sid, fib_dtype, st.schema)
                    fib_t.append(fib)
                    idx = np.zeros(len(fib), dtype=idx_dtype)
                    for name in idx_dtype.names:
                        idx[name] = fib[name]
                    idx_t.append(idx)
                    img_t.append(_image_row(a, header, hdus, img_dtype, bad_images))
                    ras.append(fib["ra"].copy())
                    mfs.append(fib["multiframe"].copy())
                    img_mfs.append(a.multiframe.encode())
                    fib_t.flush()
                    idx_t.flush()
                    img_t.flush()
                    behind.advance()
                    if rows is not None:
                        noise.append(line_noise(fib["calfibe"] if "calfibe" in fib.dtype.names else
                                                np.zeros((0, 1036)), st.flim_wave))
                    if a.exp == 1 and len(ifu_xy) < 4 and "ifupos" in hdus:
                        ifu_xy.setdefault(a.amp, hdus["ifupos"])
                    del hdus, fib, idx
            products = write_astrometry(f, layout, datevobs, st, notes)
            products.update(write_calibration(f, layout, datevobs, st, notes))
            rp = inputs.optional(layout, "radec_final", notes.seen, datevobs=datevobs)
            if rp is None:
                notes.append("no shot pointing (radec2_final.dat of hetred astrom): Shot ra, dec, pa are NaN")
            else:
                products["ra"], products["dec"], products["pa"] = inputs.read_numbers(rp, "shot pointing", 3)[:3]
            n_ifu = len({a.ifuslot for a in amps if a.exp == min(headers)})
            row, missing = shot_row(datevobs, headers, n_ifu, st.schema, products)
            if missing:
                notes.append("header keywords missing (NaN in /Shot): " + ", ".join(missing))
            shot_t.append(row)
            for exp, h in sorted(headers.items()):
                shot_t.attrs[f"header_exp{exp:02d}"] = h
            flim = float("nan")
            if noise and ifu_xy:
                fwhm = float(row["fwhm_virus"][0]) if np.isfinite(row["fwhm_virus"][0]) else st.flim_fwhm
                xy = np.concatenate([ifu_xy[k] for k in sorted(ifu_xy)])
                flim = flux_limit(np.concatenate(noise), xy, fwhm, st.flim_beta, st.flim_radius)
            shot_t.attrs["fluxlimit_4540"] = flim
            shot_t.attrs["hetred_version"] = __version__
            shot_t.attrs["schema"] = st.schema
            shot_t.flush()
            ra, mf = np.concatenate(ras), np.concatenate(mfs)
            create_csindex(fib_t, "ra", ra)
            create_csindex(idx_t, "ra", ra)
            create_csindex(img_t, "multiframe", np.array(img_mfs))
            create_csindex(idx_t, "multiframe", mf)
            create_csindex(fib_t, "multiframe", mf)
            n_rows = fib_t.nrows
            for t in (fib_t, idx_t, img_t, shot_t):
                t.flush()
                t.close()
        finally:
            f.close()
    if cal.missing:
        res.notes["no calibrated fibers (_cal.fits): calfib columns 0"] = [datevobs]
        notes.append(f"no calibrated fibers (_cal.fits of hetred calfib) for {len(cal.missing)} IFU(s) "
                     f"({', '.join(sorted(cal.missing)[:4])}{' ...' if len(cal.missing) > 4 else ''}): "
                     "calfib, calfibe, calfib_counts, calfibe_counts and the full-sky column are 0")
    if cal.no_ffsky:
        res.notes["no full-field-sky HDU in _cal.fits: full-sky column 0"] = [datevobs]
        notes.append(f"no full-field-sky HDU in the calibrated fibers of {len(cal.no_ffsky)} IFU(s): "
                     f"{fiber_column('ffsky', st.schema)} is 0")
    if bad_images:
        notes.append(f"{len(bad_images)} image(s) not 1032 x 1032 stored as 0, first: {bad_images[0]}")
    if coords is None:
        res.notes["no fiber RA/Dec (dithall.use): ra, dec NaN"] = [datevobs]
    res.warnings = list(notes)
    res.depends = [str(a.path) for a in amps] + sorted(set(notes.seen))
    res.inputs = [str(a.path) for a in amps] + sorted(cal.used) + ([str(dith)] if dith else [])
    res.counts = {"fibers": int(n_rows), "amps": len(amps), "ifus": n_ifu, "exposures": len(headers),
                  "fluxlimit_4540": flim, "schema": st.schema, "compress": st.compress,
                  "seconds_write": round(time.perf_counter() - t0, 2), "bytes": dest.stat().st_size}
    return res
