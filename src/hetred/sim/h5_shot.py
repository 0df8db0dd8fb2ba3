"""A shot at the level ``hetred h5`` and ``hetred spec2d`` read, written from a known scene
without running the earlier stages (for the h5 tests, the hetdex_api compatibility test and the
benchmark).

One star and one emission-line source (plus a faint line candidate below the S/N cut) are placed
in the first IFU of ``slots``; the scene (:mod:`hetred.sim.sky`: Moffat beta 3.5 seeing,
hetdex_api's ADR along IFU x, HETDEX dithers (1.27, -/+0.73)") gives every fiber's flux. Written
through the layout, in the formats of the stages that own them:

* multi files (``hetred sci``, 17 HDUs): fiber arrays with the source counts, a sky, traces and
  wavelengths; the three images draw every fiber along its trace (profile sigma 1.2 px) with noise;
* ``dithall.use``, ``dith_expNN.all``, ``radec2_final.dat``, ``radec2_expNN.dat``, ``norm.dat``,
  ``all.mch``, ``getoff_expNN.out``, ``getoff2_expNN.out``, ``fplane.txt``, ``shout.ifustars``
  (``hetred astrom``; perfect astrometry: the true pointing);
* ``fwhm.all``, ``DATEvOBSsedtp_f.dat`` (``hetred throughput``);
* ``DATEvOBS_SSS_III_UUU_cal.fits`` (``hetred calfib`` + the full-field sky): calfib = the true
  fiber flux, 1e-17 erg s^-1 cm^-2 per 2 Å, plus Gaussian noise of ``noise``; calfibe = ``noise``;
* ``.mc``, ``.list``, ``.spec`` of the IFU (``hetred detect``): the line source as a detection
  (spec1d_nc = apcor x its true spectrum per 2 Å) and the faint candidate;
* the month's tarlist.

The truth (the star's f_lambda on the rectified grid, the line's flux and position) is returned,
never written where a stage could read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetred.layout import Layout
from hetred.sim.sky import LINE_DTYPE, STAR_DTYPE, ShotScene, fiber_fraction, fiber_source_flux
from hetred.virus.coords import DITHERS, fiber_radec
from hetred.virus.fplane import FplaneEntry, format_fplane
from hetred.virus.ids import datevobs as make_datevobs
from hetred.virus.ids import shotid as make_shotid
from hetred.virus.ifu import amp_positions

GRID = 3470.0 + 2.0 * np.arange(1036)
AMPS = ("LL", "LU", "RL", "RU")
K_COUNTS = 25.0          #: electrons per 1e-17 erg/s/cm^2 per 2 Å
SKY = 40.0               #: electrons per column
STAR_XY = (3.1, -2.4)    #: IFU arcsec of the star (exposure 1 frame)
LINE_XY = (-8.3, 7.9)
FAINT_XY = (9.5, 10.2)


@dataclass
class H5Shot:
    """What :func:`simulate_h5_shot` made and its truth."""

    layout: Layout
    datevobs: str
    night: str
    obs: int
    slots: list[FplaneEntry]
    scene: ShotScene
    star_flam: np.ndarray                     #: (1036,) 1e-17 erg/s/cm^2/Å on GRID
    truth: dict = field(default_factory=dict)

    @property
    def month(self) -> str:
        return self.night[:6]

    @property
    def shotid(self) -> int:
        return make_shotid(self.night, self.obs)


def _scene(rng: np.random.Generator, night: str, obs: int, slot: FplaneEntry, ra0: float, dec0: float,
           fwhm: float, star_g: float, line_flux: float, line_wave: float) -> ShotScene:
    pa = float(rng.uniform(0, 360))
    xy = np.array([STAR_XY, LINE_XY, FAINT_XY])
    ra, dec = fiber_radec(slot, xy, 1, ra0, dec0, pa)
    stars = np.zeros(1, dtype=STAR_DTYPE)
    values = {"id": 1, "ra": ra[0], "dec": dec[0], "teff": 6200.0, "g": star_g, "g_cat": star_g,
              "ifuslot": slot.ifuslot, "x_ifu": xy[0, 0], "y_ifu": xy[0, 1], "model": -1}
    for name, value in values.items():
        stars[name][0] = value                   # by name: the other magnitudes stay 0; model -1: Planck SED
    lines = np.zeros(2, dtype=LINE_DTYPE)
    lines[0] = (1, ra[1], dec[1], line_wave, line_flux, 2.5, slot.ifuslot, xy[1, 0], xy[1, 1])
    lines[1] = (2, ra[2], dec[2], 5120.0, line_flux * 0.08, 2.5, slot.ifuslot, xy[2, 0], xy[2, 1])
    return ShotScene(night=night, obs=obs, ra0=ra0, dec0=dec0, pa=pa, header_ra=ra0, header_dec=dec0,
                     header_pa=pa - 1.5, fwhm=fwhm, transparency=rng.uniform(0.92, 1.08, 3), stars=stars,
                     lines=lines, angoff=1.5)


def _header(s: H5Shot, slot: FplaneEntry, amp: str, exp: int, stamp: str):
    from astropy.io import fits

    sc = s.scene
    h = fits.Header()
    h["DATE-OBS"] = f"{s.night[:4]}-{s.night[4:6]}-{s.night[6:]}"
    h["UT"] = f"0{3 + exp}:1{exp}:2{exp}.{100 * exp:03d}"
    h["OBJECT"] = "DEXsp_h5sim"
    h["OBSID"] = s.obs
    h["EXPTIME"], h["DARKTIME"], h["MJD"] = 360.0, 366.5, 58128.1 + 0.005 * exp
    h["TRAJCRA"], h["TRAJCDEC"], h["PARANGLE"] = sc.header_ra / 15.0, sc.header_dec, sc.header_pa
    h["STRUCTAZ"], h["AMBTEMP"], h["HUMIDITY"], h["DEWPOINT"], h["BAROMPRE"] = 210.5, 12.3, 35.2, -2.1, 793.4
    h["SPECID"], h["IFUSLOT"], h["IFUID"] = slot.specid, slot.ifuslot, slot.ifuid
    h["CONTID"] = slot.contid or "0059"
    h["NAME0"] = f"{stamp}_{slot.ifuslot:03d}{amp}_sci.fits"
    return h


def _amp_arrays(rng, s: H5Shot, slot: FplaneEntry, amp: str, exp: int, images: bool) -> dict[str, np.ndarray]:
    n, ncol = 112, 1032
    cols = np.arange(ncol)
    k = np.arange(n)[:, None]
    wave = (3468.0 + 2.0 * cols[None, :] + 0.02 * k).astype(np.float64)
    trace = 5.0 + 9.18 * k + 2e-6 * (cols[None, :] - 516.0) ** 2          # 1-based rows, as vred writes
    t = float(s.scene.transparency[exp - 1])
    flux = fiber_source_flux(s.scene, slot, amp, exp, wave)                 # erg/s/cm^2/Å
    counts = 2e17 * flux * K_COUNTS * t
    sky = np.full((n, ncol), SKY) * (1.0 + 0.3 * np.exp(-0.5 * ((wave - 5461.0) / 2.5) ** 2))
    spectrum = counts + sky + rng.normal(0, 1.0, (n, ncol))
    out = {"ifupos": amp_positions(amp, slot.ifuid), "wavelength": wave, "trace": trace,
           "spectrum": spectrum, "sky_spectrum": sky, "sky_subtracted": spectrum - sky,
           "fiber_to_fiber": 1.0 + 0.02 * np.sin(k + 0 * cols[None, :]), "error1d": np.sqrt(spectrum + 9.0),
           "chi2": np.ones((n, ncol)), "rms": np.full((n, ncol), 0.5)}
    if images:
        img = np.zeros((1032, 1032))
        model = np.zeros((1032, 1032))
        for dy in range(-3, 4):
            rows = np.rint(trace - 1).astype(int) + dy
            ok = (rows >= 0) & (rows < 1032)
            prof = np.exp(-0.5 * ((rows - (trace - 1)) / 1.2) ** 2) / (1.2 * np.sqrt(2 * np.pi))
            cc = np.broadcast_to(cols, rows.shape)
            np.add.at(img, (rows[ok], cc[ok]), (spectrum * prof)[ok])
            np.add.at(model, (rows[ok], cc[ok]), (sky * prof)[ok])
        img += rng.normal(0, 2.0, img.shape)
        out.update(processed=img, error=np.sqrt(np.abs(img) + 9.0), clean_image=img - model)
    else:
        z = np.zeros((1032, 1032))
        out.update(processed=z, error=z, clean_image=z)
    out.update(model2d=np.zeros((1, 1)), flat=np.zeros((1, 1)), flat_orig=np.zeros((1, 1)))
    return out


def _dith_rows(s: H5Shot, exp: int, stamp: str) -> list[str]:
    sc, out = s.scene, []
    dx, dy = DITHERS[exp - 1]
    for slot in s.slots:
        for amp in AMPS:
            pos = amp_positions(amp, slot.ifuid)
            ra, dec = fiber_radec(slot, pos, exp, sc.ra0, sc.dec0, sc.pa)
            for f in range(112):
                mf = f"multi_{slot.specid:03d}_{slot.ifuslot:03d}_{slot.ifuid}_{amp}_{f + 1:03d}.ixy"
                out.append(f" {ra[f]:10.7f} {dec[f]:10.7f} ifu{slot.ifuslot:03d} {pos[f, 0]:8.3f} {pos[f, 1]:8.3f} "
                           f"{pos[f, 0] + slot.y_fp + dx:8.3f} {pos[f, 1] + slot.x_fp + dy:8.3f} {mf:>28s} "
                           f"{stamp:>17s} exp{exp:02d}")
    return out


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _astrometry(s: H5Shot, stamps: list[str], lay: Layout) -> None:
    sc, dv = s.scene, s.datevobs
    head = " ra dec ifuslot XS YS xfplane yfplane multifits timestamp exposure"
    rows = []
    for exp in (1, 2, 3):
        r = _dith_rows(s, exp, stamps[exp - 1])
        _write(lay.path("astrom_dith", datevobs=dv, exp=exp), "\n".join([head] + r) + "\n")
        rows += r
        _write(lay.path("astrom_radec2_exp", datevobs=dv, exp=exp), f"{sc.ra0:.6f} {sc.dec0:.6f} {sc.pa:.6f}\n")
        _write(lay.path("astrom_getoff2", datevobs=dv, exp=exp), f"  0.00001 -0.00002  0.21000  0.19000    {5 + exp:d}\n")
        _write(lay.path("astrom_getoff", datevobs=dv, exp=exp),
               "".join(f"   0.10000{i}  -0.05000{i} {sc.ra0:10.6f} {sc.dec0:10.6f} {sc.ra0:10.6f} {sc.dec0:10.6f} "
                       f"{s.slots[0].ifuslot:4d}\n" for i in range(3)))
    _write(lay.path("dithall", datevobs=dv), "\n".join([head] + rows) + "\n")
    _write(lay.path("radec_final", datevobs=dv), f"{sc.ra0:.6f} {sc.dec0:.6f} {sc.pa:.6f}\n")
    _write(lay.path("astrom_norm", datevobs=dv), " ".join(f"{t:10.8f}" for t in sc.transparency) + "\n")
    _write(lay.path("astrom_mch", datevobs=dv),
           "".join(f" '{st + 'tot.als':30s}'{dx:10.3f}{dy:10.3f}   1.00000   0.00000   0.00000   1.00000"
                   f"{0.0:10.3f}{0.0:10.4f}\n" for st, (dx, dy) in zip(stamps, DITHERS)))
    _write(lay.path("astrom_fplane", datevobs=dv), format_fplane(s.slots))
    st = sc.stars[0]
    _write(lay.path("astrom_catalog", datevobs=dv),
           f"# shout.ifustars\n{s.shotid} 1237650000000001 {st['ra']:.6f} {st['dec']:.6f} {st['g'] + 1.2:.2f} "
           f"{st['g']:.2f} {st['g'] - 0.4:.2f} {st['g'] - 0.5:.2f} {st['g'] - 0.55:.2f}\n")


def _throughput(s: H5Shot, lay: Layout) -> None:
    w = np.arange(3540.0, 5541.0, 100.0)
    tp = 0.16 * np.exp(-0.5 * ((w - 4600.0) / 900.0) ** 2)
    _write(lay.path("throughput", month=s.month, datevobs=s.datevobs),
           "".join(f" {a:6.1f} {b:7.4f} {0:7.4f} {0:7.4f} {1:7.4f} {b:7.4f}\n" for a, b in zip(w, tp)))
    _write(lay.path("tp_fwhm_all", month=s.month), f"{s.datevobs} {s.scene.fwhm:.4f} 0.1000 7\n")


def _calfib(rng, s: H5Shot, slot: FplaneEntry, lay: Layout, noise: float, fullsky: bool) -> None:
    from astropy.io import fits

    arrays = [np.zeros((1344, 1036), np.float32) for _ in range(5)]
    for exp in (1, 2, 3):
        for a, amp in enumerate(AMPS):
            f = 2e17 * fiber_source_flux(s.scene, slot, amp, exp, np.broadcast_to(GRID, (112, 1036)))
            r0 = 448 * (exp - 1) + 112 * a
            val = f + rng.normal(0, noise, f.shape)
            arrays[0][r0:r0 + 112] = val
            arrays[1][r0:r0 + 112] = noise
            arrays[2][r0:r0 + 112] = val * K_COUNTS
            arrays[3][r0:r0 + 112] = noise * K_COUNTS
            arrays[4][r0:r0 + 112] = val + 0.01
    names = ("calib", "calibe", "calib_c", "calibe_c", "fullsky")[:5 if fullsky else 4]
    hdus = [fits.PrimaryHDU(arrays[0])] + [fits.ImageHDU(a) for a in arrays[1:len(names)]]
    for h, nm in zip(hdus, names):
        h.header["EXTNAME"] = nm
    p = lay.path("calfib", month=s.month, datevobs=s.datevobs, specid=slot.specid, ifuslot=slot.ifuslot,
                 ifuid=slot.ifuid)
    p.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(p, overwrite=True)


def _detections(s: H5Shot, slot: FplaneEntry, lay: Layout, stamps: list[str]) -> list[dict]:
    """.mc/.list/.spec of the slot: each line source of the scene, PSF-weighted over its fibers."""
    sc, out = s.scene, []
    mc, lst, spec = [], [], []
    apcor = 0.93
    for src, line in enumerate(sc.lines, 1):
        fibers = []
        for exp in (1, 2, 3):
            for amp in AMPS:
                pos = amp_positions(amp, slot.ifuid)
                dx, dy = DITHERS[exp - 1]
                x0, y0 = line["x_ifu"] - dx, line["y_ifu"] - dy
                d = np.hypot(pos[:, 0] - x0, pos[:, 1] - y0)
                ra, dec = fiber_radec(slot, pos, exp, sc.ra0, sc.dec0, sc.pa)
                for f in np.nonzero(d < 3.5)[0]:
                    w = float(fiber_fraction(np.array([d[f]]), sc.fwhm, sc.beta)[0])
                    fibers.append((exp, amp, f + 1, d[f], w, ra[f], dec[f], pos[f]))
        fibers.sort(key=lambda x: -x[4])
        flux17 = line["flux"] * 1e17
        sn = 14.0 if src == 1 else 3.1
        best = fibers[0]
        multiname = f"multi_{slot.specid:03d}_{slot.ifuslot:03d}_{slot.ifuid}_{best[1]}_{best[2]:03d}"
        xraw = round((line["wave"] - 3468.0) / 2.0)
        mc.append(f" {line['wave']:8.2f} {0.3:8.2f} {flux17:8.2f} {flux17 / sn:8.2f} {line['sigma']:8.2f} "
                  f"{0.2:8.2f} {0.0:8.2f} {0.05:8.2f} {sn:8.2f} {1.0:8.2f} {1.05:8.2f} {0.1:8.2f} "
                  f"{line['ra']:10.6f} {line['dec']:10.6f} {s.datevobs:12s} {1.0:6.2f} {line['sigma']:6.2f} "
                  f"{1.1:6.2f} {1.2:5.2f} {src:5d} {multiname:24s} exp{best[0]:02d} {best[7][0]:6.2f} "
                  f"{best[7][1]:6.2f} {xraw:4d} {int(5 + 9.18 * (best[2] - 1)):4d} {best[4]:5.3f}")
        for exp, amp, fib, dist, w, ra, dec, pos in fibers:
            mname = f"multi_{slot.specid:03d}_{slot.ifuslot:03d}_{slot.ifuid}_{amp}_{fib:03d}.ixy"
            lst.append(f"{ra:11.7f} {dec:11.7f}  {pos[0]:8.3f} {pos[1]:8.3f} {mname:28s} exp{exp:02d} {dist:6.3f} "
                       f"{line['wave']:6.1f} {stamps[exp - 1]:20s} {s.night:8s} {s.obs:03d} {xraw:4d} "
                       f"{int(5 + 9.18 * (fib - 1)):4d} {w:7.4f} 0 {src:5d}")
        prof = 2e17 * line["flux"] / (line["sigma"] * np.sqrt(2 * np.pi)) * np.exp(
            -0.5 * ((GRID - line["wave"]) / line["sigma"]) ** 2)
        for j, wv in enumerate(GRID):
            spec.append(f" {wv:7.2f} {apcor * prof[j]:11.3f} {0.5:11.3f} {apcor * prof[j] * K_COUNTS:11.3f} "
                        f"{0.5 * K_COUNTS:11.3f} {prof[j] * K_COUNTS:11.3f} {K_COUNTS:11.3f} {1.0:11.3f} "
                        f"{apcor:11.3f} {1.0:11.3f} {src:5d}")
        out.append({"src_index": src, "ra": float(line["ra"]), "dec": float(line["dec"]),
                    "wave": float(line["wave"]), "flux": float(line["flux"]), "sn": sn,
                    "fibers": len(fibers), "best_fiber_id": f"{s.shotid}_{best[0]}_{multiname[:20]}_{best[2]:03d}"})
    keys = {"month": s.month, "datevobs": s.datevobs, "run": "search", "specid": slot.specid,
            "ifuslot": slot.ifuslot, "ifuid": slot.ifuid}
    _write(lay.path("detect_mc", **keys), "\n".join(mc) + "\n")
    _write(lay.path("detect_list", **keys), "\n".join(lst) + "\n")
    _write(lay.path("detect_spec", **keys), "\n".join(spec) + "\n")
    return out


def simulate_h5_shot(layout: Layout, slots: list[FplaneEntry], seed: int = 1, night: str = "20180110",
                     obs: int = 7, *, images: bool = True, calfib: bool = True, fullsky: bool = True,
                     astrometry: bool = True, throughput: bool = True, detections: bool = True,
                     noise: float = 0.02, star_g: float = 17.0, line_flux: float = 4e-16,
                     line_wave: float = 4480.0, ra0: float = 150.1, dec0: float = 52.3, fwhm: float = 1.7,
                     link_from: H5Shot | None = None) -> H5Shot:
    """Write the shot (module docstring) and return its truth.

    ``link_from``: instead of writing multi and _cal.fits files, symlink those of an earlier
    simulated shot with the same IFU (for the 78-IFU benchmark: every slot shows the first one's
    data under its own name).
    """
    from hetred.lists.tarlist import TarEntry
    from hetred.sci.multi import write_multi

    rng = np.random.default_rng(seed)
    scene = _scene(rng, night, obs, slots[0], ra0, dec0, fwhm, star_g, line_flux, line_wave)
    dv = make_datevobs(night, obs)
    s = H5Shot(layout, dv, night, obs, list(slots), scene,
               np.interp(GRID, scene.sed_wave, scene.sed_flam[0]) * 1e17)
    stamps = [f"{night}T0{3 + e}1{e}2{e}.{e}" for e in (1, 2, 3)]
    lines = []
    for exp in (1, 2, 3):
        for slot in slots:
            for amp in AMPS:
                keys = {"night": night, "obs": obs, "exp": exp, "specid": slot.specid, "ifuslot": slot.ifuslot,
                        "ifuid": slot.ifuid, "amp": amp}
                dest = layout.path("multi", **keys)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if link_from is not None:
                    src_slot = link_from.slots[0]
                    src = layout.path("multi", **{**keys, "specid": src_slot.specid, "ifuslot": src_slot.ifuslot,
                                                  "ifuid": src_slot.ifuid})
                    if dest != src and not dest.exists():
                        dest.symlink_to(src)
                else:
                    arrays = _amp_arrays(rng, s, slot, amp, exp, images)
                    write_multi(dest, arrays, _header(s, slot, amp, exp, stamps[exp - 1]))
                lines.append(TarEntry(night, obs, exp, stamps[exp - 1], slot.ifuslot, amp, "sci").line)
    tl = layout.path("tarlist", month=night[:6])
    tl.parent.mkdir(parents=True, exist_ok=True)
    old = tl.read_text().splitlines() if tl.exists() else []
    tl.write_text("\n".join(dict.fromkeys(old + lines)) + "\n")
    if astrometry:
        _astrometry(s, stamps, layout)
    if throughput:
        _throughput(s, layout)
    if calfib:
        for slot in slots:
            if link_from is not None:
                src_slot = link_from.slots[0]
                src = layout.path("calfib", month=s.month, datevobs=dv, specid=src_slot.specid,
                                  ifuslot=src_slot.ifuslot, ifuid=src_slot.ifuid)
                dest = layout.path("calfib", month=s.month, datevobs=dv, specid=slot.specid, ifuslot=slot.ifuslot,
                                   ifuid=slot.ifuid)
                if dest != src and not dest.exists():
                    dest.symlink_to(src)
            else:
                _calfib(rng, s, slot, layout, noise, fullsky)
    if detections:
        s.truth["lines"] = _detections(s, slots[0], layout, stamps)
    st = scene.stars[0]
    s.truth.update(star={"ra": float(st["ra"]), "dec": float(st["dec"]), "g": float(st["g"]),
                         "ifuslot": slots[0].ifuslot}, fwhm=fwhm, stamps=stamps,
                   pointing={"ra": scene.ra0, "dec": scene.dec0, "pa": scene.pa},
                   transparency=scene.transparency.tolist())
    return s
