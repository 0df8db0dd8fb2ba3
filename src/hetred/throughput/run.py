"""The unit of ``hetred throughput``: one shot (karlspipe hdr2.1 tpfits/rallcal DATE OBS, then
rfitpoly DATE OBS; docs/stages/throughput.md).

Reads, through the layout: the astrometry's ``dithall.use`` (fiber RA/Dec), ``norm.dat``
(missing: 1 1 1, as rsetstar_w), ``radec2_final.dat`` (the PA of the ADR direction) and the star
catalogue ``shout.ifustars`` it used (else the raw archive's ``catalogs/{datevobs}.ifustars``);
the rectified spectra and multi files of ``hetred sci`` and the amp-to-amp factors of the
libraries (``hetred.io.fiberspec``). Writes the files of :mod:`hetred.throughput.products`.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from hetred.errors import HetredError
from hetred.io import shotfiles
from hetred.io.fiberspec import read_amp_spectra
from hetred.jobs.units import ShotUnit, UnitOutcome, science_shots
from hetred.layout import Layout
from hetred.throughput import products, qa
from hetred.throughput.psf import AdrModel, direction_from_angle, fiber_table
from hetred.throughput.sedfit import SED_WAVE
from hetred.throughput.settings import STAGE, ThroughputSettings
from hetred.throughput.shot import measure_shot
from hetred.virus.ids import parse_datevobs

__all__ = ["STAGE", "ShotUnit", "run_throughput", "throughput_units"]


def throughput_units(layout: Layout, month: str | None = None, shot: str | None = None) -> list[ShotUnit]:
    """The science shots of a month (from its tarlist, made when missing) or the one ``shot``."""
    if shot is not None:
        try:
            parse_datevobs(shot)
        except ValueError as err:
            raise HetredError(str(err)) from None
        return [ShotUnit(shot)]
    from hetred.lists.tarlist import month_entries

    return science_shots(month_entries(layout, month))


def _catalog_path(layout: Layout, datevobs: str):
    p = layout.path("astrom_catalog", datevobs=datevobs)
    if p.exists():
        return p
    raw = layout.path("star_catalog", datevobs=datevobs)
    if raw.exists():
        return raw
    raise HetredError(f"no star catalogue {p} (run hetred astrom --shot {datevobs}) nor {raw}")


def _adr(layout: Layout, u: ShotUnit, fibers: shotfiles.Dithall, pa: float, st: ThroughputSettings,
         nexp: int) -> AdrModel:
    """The ADR model: the PA direction for every exposure, or each exposure's STRUCTAZ."""
    if st.adr_direction == "parangle":
        d = np.array([direction_from_angle(pa)] * nexp)
        return AdrModel(tuple(st.adr_wave), tuple(st.adr_offset), d, +1.0, st.adr_ref_wave)
    from hetred.io.fastfits import scan

    dirs = []
    for e in range(1, nexp + 1):
        k = np.nonzero(fibers.exp == e)[0]
        if k.size == 0:
            dirs.append((0.0, 0.0))
            continue
        i = k[0]
        p = layout.path("multi", night=u.night, obs=u.obs, exp=e, specid=int(fibers.specid[i]),
                        ifuslot=int(fibers.ifuslot[i]), ifuid=str(fibers.ifuid[i]), amp=str(fibers.amp[i]))
        try:
            az = float(scan(p, ("STRUCTAZ",))[0]["cards"]["STRUCTAZ"])
        except (OSError, KeyError, ValueError, IndexError) as err:
            raise HetredError(f"adr_direction = structaz needs STRUCTAZ in {p} ({err})") from None
        dirs.append(direction_from_angle(az))
    return AdrModel(tuple(st.adr_wave), tuple(st.adr_offset), np.array(dirs), -1.0, st.adr_ref_wave)


def run_throughput(layout: Layout, u: ShotUnit, settings: ThroughputSettings | None = None) -> UnitOutcome:
    """Steps 9-13 of one shot (module docstring); returns the outcome for the done marker."""
    st = settings or ThroughputSettings()
    dv, month = u.datevobs, u.month
    dith_path = layout.path("dithall", datevobs=dv)
    if not dith_path.exists():
        raise HetredError(f"no fiber coordinates {dith_path} (run hetred astrom --shot {dv})")
    fibers = shotfiles.read_dithall(dith_path)
    nexp = int(fibers.exp.max())
    norm_path = layout.path("astrom_norm", datevobs=dv)
    norm_note = ""
    if norm_path.exists():
        norm = shotfiles.read_norm(norm_path)
        if norm.size < nexp:
            raise HetredError(f"{norm_path} has {norm.size} values for {nexp} exposures")
    else:
        norm, norm_note = np.ones(nexp), "norm.dat missing: 1 1 1 used (rsetstar_w)"
    radec_path = layout.path("radec_final", datevobs=dv)
    _, _, pa = shotfiles.read_radec(radec_path)
    cat_path = _catalog_path(layout, dv)
    catalog = shotfiles.read_ifustars(cat_path)
    adr = _adr(layout, u, fibers, pa, st, nexp)
    inputs = {str(dith_path), str(radec_path), str(cat_path)} | ({str(norm_path)} if not norm_note else set())

    def load(exp: int, specid: int, ifuslot: int, ifuid: str, amp: str):
        a = read_amp_spectra(layout, night=u.night, obs=u.obs, exp=exp, specid=specid, ifuslot=ifuslot,
                             ifuid=ifuid, amp=amp)
        inputs.add(str(layout.path("rectified", night=u.night, obs=u.obs, exp=exp, specid=specid,
                                   ifuslot=ifuslot, ifuid=ifuid, amp=amp)))
        bad = ~(np.isfinite(a.counts) & np.isfinite(a.error)).all(axis=1)
        c, e = a.calibrated(float(norm[exp - 1]))
        return c, e, bad

    res = measure_shot(catalog, fibers, load, adr, fiber_table(st.beta), st)
    used = [s for s in res.stars if not s.reason]
    if res.fit is not None:
        f = res.fit
        tp = {"wavelength": SED_WAVE, "throughput": f.model, "rat_poly": f.rat_poly, "tp_gband": f.tp_gband,
              "c1": f.c1, "c2": f.c2}
        source = f"stars: {len(used)} of {len(res.stars)} catalogue stars with g < {st.mag_limit}"
    elif st.fallback == "month-median":
        why = "no catalogue star in the IFUs" if not res.stars else \
            f"none of {len(res.stars)} catalogue stars accepted"
        tp, shots = products.month_median_curve(layout, month, dv)
        source = f"fallback: median of {len(shots)} shots of {month} ({why})"
    else:
        raise HetredError(f"{dv}: no star in the response curve and fallback = none")
    tp["response_4540"] = float(np.interp(4540.0, tp["wavelength"], tp["throughput"]))
    outputs = products.write_shot_files(layout, month, dv, res, tp, source, asdict(st))
    if st.qa:
        outputs.append(qa.write_png(layout.path("tp_png", month=month, datevobs=dv), dv, res, tp, source))
    products.rebuild_month_tables(layout, month)
    counts = {"stars": len(res.stars), "used": len(used), "fwhm": round(res.fwhm, 4), "fwhm_n": res.fwhm_n,
              "response_4540": round(tp["response_4540"], 5), "source": source,
              "rejected": {s.id: s.reason for s in res.stars if s.reason}}
    if norm_note:
        counts["note"] = norm_note
    return UnitOutcome(outputs=[str(p) for p in outputs], inputs=sorted(inputs), counts=counts)
