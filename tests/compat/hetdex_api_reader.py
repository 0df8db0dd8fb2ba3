"""Read hetred's HDF5 files with the unmodified hetdex_api 0.8.7 (run with the interpreter of its
own venv by tests/compat/test_hetdex_api.py; it imports nothing of hetred).

    python hetdex_api_reader.py H5ROOT TRUTH.json OUT.json

H5ROOT holds ``hdr2.1/{reduction/data,survey,detect}`` as hetdex_api's HDRconfig builds them off
TACC (``host_dir = cwd``): the reader changes into it and calls the API with ``survey="hdr2.1"``
(hetdex_api_client.md §3.1). The modules are imported from a scratch folder first (nwaylib
writes ./cache there at import, dustmaps its config to DUSTMAPS_CONFIG_FNAME). ``Extract`` skips
HDR2.1's E(B-V)=0.02 extinction fix, which is for real HDR2.1 data only and lives on TACC
(``E.survey = "hdr2"`` after ``load_shot``, §3.2); ``Detections.get_spectrum`` likewise with
``apply_extinction_fix=False``. Every result goes to OUT.json; the test judges them.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback


def main(root: str, truth_path: str, out_path: str) -> None:
    with open(truth_path) as fh:
        truth = json.load(fh)
    scratch = tempfile.mkdtemp(prefix="hapi_")
    os.environ["DUSTMAPS_CONFIG_FNAME"] = os.path.join(scratch, "dustmapsrc")
    os.chdir(scratch)
    import warnings

    warnings.simplefilter("ignore")
    import numpy as np

    if not hasattr(np, "warnings"):      # numpy >= 1.24: hetdex_api.detections calls np.warnings at import
        np.warnings = warnings           # (a caller-side shim, hetdex_api_client.md §1.2; no file edited)
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from hetdex_api.detections import Detections
    from hetdex_api.extract import Extract
    from hetdex_api.shot import Fibers, get_fibers_table, get_image2D_cutout, open_shot_file
    from hetdex_api.survey import FiberIndex, Survey

    os.chdir(root)
    out: dict = {"errors": {}}
    dv = truth["datevobs"]
    star = SkyCoord(truth["star"]["ra"] * u.deg, truth["star"]["dec"] * u.deg)

    def step(name, fn):
        try:
            out[name] = fn()
        except Exception:  # noqa: BLE001 -- every failure is reported to the test
            out["errors"][name] = traceback.format_exc()

    def shot_file():
        f = open_shot_file(dv, survey="hdr2.1")
        try:
            return {"fibers": int(f.root.Data.Fibers.nrows), "images": int(f.root.Data.Images.nrows),
                    "shotid": int(f.root.Shot.cols.shotid[0]), "datevobs": f.root.Shot.cols.datevobs[0].decode()}
        finally:
            f.close()

    def fibers():
        fib = Fibers(dv, survey="hdr2.1")
        try:
            idx = fib.query_region_idx(star, radius=3.5)
            return {"n": len(fib.ra), "near": sorted(fib.fiber_id[idx].tolist()),
                    "finite": int(np.sum(np.isfinite(fib.ra)))}
        finally:
            fib.close()

    def fibers_table():
        t = get_fibers_table(dv, coords=star, radius=3.5 * u.arcsec, survey="hdr2.1")
        return {"n": len(t), "fiber_id": sorted(str(x) for x in t["fiber_id"].astype(str)),
                "calfib_sum": float(np.sum(t["calfib"][:, 300:900])), "columns": list(t.colnames)}

    def extract():
        E = Extract()
        E.load_shot(dv, survey="hdr2.1")
        E.survey = "hdr2"
        try:
            info = E.get_fiberinfo_for_coord(star, radius=3.5, ffsky=False)
            ifux, ifuy, xc, yc, _, _, data, error, mask = info
            psf = E.moffat_psf(truth["fwhm"], 10.5, 0.25)
            weights = E.build_weights(xc, yc, ifux, ifuy, psf)
            spec, _ = E.get_spectrum(data, error, mask, weights)
            return {"wave": E.get_wave().tolist(), "spec": np.nan_to_num(spec).tolist(), "n_fibers": len(ifux),
                    "xc": float(xc), "yc": float(yc)}
        finally:
            E.close()

    def cutout():
        fib = Fibers(dv, survey="hdr2.1")
        try:
            idx = int(fib.get_closest_fiber(star))
            mf = fib.table.cols.multiframe[idx].decode()
            expnum = int(fib.table.cols.expnum[idx])
            x, y = fib.get_image_xy(idx, 4500.0)
        finally:
            fib.close()
        im = get_image2D_cutout(dv, star, 4500.0, width=40, height=40, imtype="clean_image", survey="hdr2.1")
        return {"multiframe": mf, "expnum": expnum, "x": int(x), "y": int(y), "shape": list(im.shape),
                "image": np.asarray(im, dtype=float).tolist()}

    def survey():
        S = Survey("hdr2.1")
        try:
            return {"shotid": [int(s) for s in S.shotid], "datevobs": list(S.datevobs),
                    "fluxlimit_4540": [float(v) for v in S.fluxlimit_4540], "fwhm_virus": [float(v) for v in S.fwhm_virus],
                    "n_ifu": [int(v) for v in S.n_ifu]}
        finally:
            S.close()

    def fiber_index():
        F = FiberIndex("hdr2.1")
        try:
            t = F.query_region(star, radius=3.5 * u.arcsec)
            flags = F.get_fiber_flags(star)
            return {"fiber_id": sorted(str(x) for x in np.asarray(t["fiber_id"]).astype(str)),
                    "flag": bool(np.all(t["flag"])), "fiber_flags": [bool(v) for v in flags]}
        finally:
            F.close()

    def detections():
        D = Detections("hdr2.1", loadtable=False)
        try:
            out_d = {"n": len(D.detectid), "detectid": [int(d) for d in D.detectid]}
            c = SkyCoord(truth["line"]["ra"] * u.deg, truth["line"]["dec"] * u.deg)
            sep = c.separation(D.coords).arcsec
            k = int(np.argmin(sep))
            det = int(D.detectid[k])
            spec = D.get_spectrum(det, apply_extinction_fix=False)
            out_d.update(detectid_line=det, sep=float(sep[k]), wave=float(D.wave[k]),
                         spec_wave=np.asarray(spec["wave1d"], dtype=float).tolist(),
                         spec1d=np.asarray(spec["spec1d"], dtype=float).tolist())
            return out_d
        finally:
            D.close()

    for name, fn in (("shot_file", shot_file), ("fibers", fibers), ("fibers_table", fibers_table),
                     ("extract", extract), ("cutout", cutout), ("survey", survey), ("fiber_index", fiber_index),
                     ("detections", detections)):
        step(name, fn)
    with open(out_path, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main(*sys.argv[1:4])
