"""The single table of every path hetred reads or writes.

Nothing else in hetred joins paths: stages ask :class:`Layout` for a path by *key* and fields,
e.g. ``layout.path("masterbias", month="202008", specid=320, contid="0059", amp="LL")``.

Two roots:

* ``raw``: the raw archive as TACC holds it (never modified by hetred), one tar per observation,
  ``RAW/YYYYMMDD/virus/virus{obs:07d}.tar`` with members
  ``virus{obs:07d}/exp{NN}/virus/{stamp}_{ifuslot:03d}{amp}_{type}.fits``; or the same tree untarred.
* ``red``: the reduction tree, every product of the process (tarlists, calibration libraries,
  science reductions, astrometry, throughput, detections, HDF5, full-field sky, jobs, markers).
* ``truth``: the simulator's truth tree, kept apart from the raw root; reduction code never reads it.

The table :data:`TABLE` is also rendered into docs/layout.md (a test keeps both in step).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

#: field name -> regular expression a value of that field matches (used to parse paths)
FIELD_PATTERNS: dict[str, str] = {
    "night": r"\d{8}",
    "month": r"\d{6}",
    "obs": r"\d{7}",
    "obs3": r"\d{3}",
    "exp": r"\d{2,3}",
    "stamp": r"\d{8}T\d{6}(?:\.\d)?",
    "ifuslot": r"\d{3}",
    "specid": r"\d{3}",
    "ifuid": r"[0-9A-Za-z]{3}",
    "contid": r"\d{4}",
    "amp": r"LL|LU|RL|RU",
    "kind": r"[a-z]{3}",
    "bgkind": r"sci|bri|twi",
    "datevobs": r"\d{8}v\d{3}",
    "shotid": r"\d{11}",
    "stage": r"[a-z0-9_-]+",
    "unit": r"[^/]+",
    "name": r"[^/]+",
    "angle": r"\d{2}\.\d{3}",
    "run": r"search|negate|inject",
    "detectid": r"\d+",
}


@dataclass(frozen=True)
class Entry:
    """One row of the layout table.

    root: ``raw``, ``red`` or ``member`` (a path inside a raw tar, relative to nothing).
    template: :py:meth:`str.format` template, with the fields of :data:`FIELD_PATTERNS`.
    """

    key: str
    root: str
    template: str
    description: str


_RAW_MEMBER = "virus{obs:07d}/exp{exp:02d}/virus/{stamp}_{ifuslot:03d}{amp}_{kind}.fits"
_LIB = "lib_calib"
_RED_SCI = "reductions/{night}/virus/virus{obs:07d}/exp{exp:02d}/virus"

TABLE: tuple[Entry, ...] = (
    # --- raw archive ------------------------------------------------------------------------
    Entry("raw_tar", "raw", "{night}/virus/virus{obs:07d}.tar", "one tar per observation"),
    Entry("raw_member", "member", _RAW_MEMBER, "an amplifier frame inside its tar"),
    Entry("raw_untarred", "raw", "{night}/virus/" + _RAW_MEMBER, "the same frame, untarred"),
    Entry("tarlist_line", "member", "{night}/virus/" + _RAW_MEMBER,
          "one line of a tarlist (Karl's dbase/rstep1 format)"),
    Entry("star_catalog", "raw", "catalogs/{datevobs}.ifustars",
          "stars in the shot's IFUs, shuffle's shout.ifustars format (SHOTID ID RA DEC u g r i z)"),
    Entry("fplane_archive", "raw", "fplane/fplane_{night}.txt",
          "the night's focal plane as the fplane server gives it (IFUSLOT X_FP Y_FP SPECID SPECSLOT "
          "IFUID IFUROT PLATESC)"),
    # --- step 1-2: lists --------------------------------------------------------------------
    Entry("tarlist", "red", "tarlists/{month}tarlist", "every raw amp file of a month, repeats removed"),
    Entry("tarlist_repeats", "red", "tarlists/{month}repeats", "repeated files dropped from the tarlist"),
    Entry("tarlist_broken", "red", "tarlists/{month}broken",
          "raw tars read only in part (truncated or damaged) and the members lost"),
    Entry("scilist", "red", "tarlists/{month}sci", "one line per science exposure with header values"),
    Entry("callist", "red", "tarlists/{month}cal", "calibration inventory per night, type and IFU slot"),
    Entry("fplane", "red", "fplane/fp{night}.txt", "the night's focal plane, from the raw headers"),
    # --- step 4: bias library ---------------------------------------------------------------
    Entry("masterbias", "red", _LIB + "/lib_mbias/{month}/masterbias_{specid:03d}_{contid}_{amp}.fits",
          "master bias (raw orientation), 1x7 biweight box smoothed, traps zeroed"),
    Entry("masterbias_unsmoothed", "red",
          _LIB + "/lib_mbias/{month}/biascmb_{specid:03d}_{contid}_{amp}.fits",
          "per-pixel biweight of the bias frames, before the box filter"),
    Entry("masterbias_traps", "red", _LIB + "/lib_mbias/{month}/traps_{specid:03d}_{contid}_{amp}.txt",
          "charge-trap list: column, first row"),
    Entry("bias_frames", "red", _LIB + "/lib_mbias/{month}/frames_{ifuslot:03d}_{amp}.txt",
          "per-frame overscan, level, scale, verdict (Karl's norm*.dat)"),
    # --- step 5: background models ----------------------------------------------------------
    Entry("bgmodel", "red", _LIB + "/lib_back/{month}/{bgkind}/back_{specid:03d}_{ifuslot:03d}_{amp}.fits",
          "background model per amp and kind (sci, bri, twi)"),
    Entry("bgcombined", "red", _LIB + "/lib_back/{month}/{bgkind}/cmb_{specid:03d}_{ifuslot:03d}_{amp}.fits",
          "biweight combination of the frames the model is made from"),
    # --- step 6 / 14b: twilight calibration and pixel flats ---------------------------------
    Entry("calwork", "red", "cal/cal{month}/{datevobs}/exp{exp:02d}/cal_{specid:03d}_{ifuslot:03d}_{ifuid}_{amp}.fits",
          "per-exposure twilight/arc reduction (rstep1)"),
    Entry("callib", "red", _LIB + "/{month}/cal_{specid:03d}_{ifuslot:03d}_{ifuid}_{amp}.fits",
          "monthly calibration: trace, wavelength, fiber_to_fiber, amp_to_amp, profile"),
    Entry("amp_to_amp", "red", _LIB + "/{month}/amp_to_amp.txt", "amp-to-amp normalisation of the month"),
    Entry("pixelflat", "red", _LIB + "/lib_pflat/pixelflat_cam{specid:03d}_{amp}.fits",
          "pixel flat per camera and amp"),
    Entry("pixmask", "red", _LIB + "/lib_pflat/pix_mask.tab", "bad-pixel boxes: amp x1 x2 y1 y2"),
    Entry("pixmask_lock", "red", _LIB + "/lib_pflat/.pix_mask.tab.lock",
          "lock file: one flat unit at a time rebuilds pix_mask.tab"),
    # --- step 7: science reductions ---------------------------------------------------------
    Entry("multi", "red", _RED_SCI + "/multi_{specid:03d}_{ifuslot:03d}_{ifuid}_{amp}.fits",
          "Karl's 17-HDU multi file per amp and exposure"),
    Entry("rectified", "red", _RED_SCI + "/rect_{specid:03d}_{ifuslot:03d}_{ifuid}_{amp}.fits",
          "sky-subtracted fiber spectra on 3470+2i A"),
    Entry("cofes", "red", _RED_SCI + "/CoFeS{stamp}_{ifuslot:03d}_sci.fits",
          "reconstructed 51x51 IFU image read by the astrometry"),
    Entry("sci_fplane_png", "red", _RED_SCI + "/d{night}s{obs3}exp{exp:02d}1de.png",
          "all IFUs' reconstructed images on the focal plane (Karl's 1de.png)"),
    # --- steps 8-13: astrometry, throughput -------------------------------------------------
    Entry("astrom_dir", "red", "astrometry/{datevobs}", "astrometry folder of a shot (vdrp's DATEvOBS folder)"),
    Entry("astrom_radec_orig", "red", "astrometry/{datevobs}/radec.orig", "header pointing: TRAJRA (h), TRAJDEC, PARANGLE"),
    Entry("astrom_fplane", "red", "astrometry/{datevobs}/fplane.txt", "the focal plane the astrometry used"),
    Entry("astrom_catalog", "red", "astrometry/{datevobs}/shout.ifustars", "the star catalogue the astrometry used"),
    Entry("astrom_als", "red", "astrometry/{datevobs}/{stamp}_{ifuslot:03d}.als",
          "stars found on one CoFeS image (DAOPHOT ALLSTAR format, 1-based pixels)"),
    Entry("astrom_tot", "red", "astrometry/{datevobs}/{stamp}tot.als", "an exposure's registration stars on the focal plane"),
    Entry("astrom_mch", "red", "astrometry/{datevobs}/all.mch", "exposure registration: shifts, magnitude offsets"),
    Entry("astrom_raw", "red", "astrometry/{datevobs}/all.raw", "stars matched between the exposures, magnitude per exposure"),
    Entry("astrom_norm", "red", "astrometry/{datevobs}/norm.dat", "relative flux of exposures 1..3"),
    Entry("astrom_radec_exp", "red", "astrometry/{datevobs}/radec_exp{exp:02d}.dat", "an exposure's start pointing: ra dec pa"),
    Entry("astrom_radec2_exp", "red", "astrometry/{datevobs}/radec2_exp{exp:02d}.dat", "an exposure's fitted pointing: ra dec pa"),
    Entry("radec_final", "red", "astrometry/{datevobs}/radec2_final.dat", "fitted shot centre: ra dec pa"),
    Entry("astrom_getoff", "red", "astrometry/{datevobs}/getoff_exp{exp:02d}.out", "detection-catalogue pairs of the last radius"),
    Entry("astrom_getoff2", "red", "astrometry/{datevobs}/getoff2_exp{exp:02d}.out", "last offset increments, rms, pairs"),
    Entry("astrom_tmp", "red", "astrometry/{datevobs}/tmp_exp{exp:02d}.csv", "detections with RA/Dec and focal-plane position"),
    Entry("astrom_xy", "red", "astrometry/{datevobs}/xy_exp{exp:02d}.dat", "matched pairs in IFU x, y"),
    Entry("astrom_trial_getoff", "red", "astrometry/{datevobs}/add_radec_angoff_trial/getoff_exp{exp:02d}_{angle}Deg.out", "pairs at a trial rotation"),
    Entry("astrom_trial_getoff2", "red", "astrometry/{datevobs}/add_radec_angoff_trial/getoff2_exp{exp:02d}_{angle}Deg.out", "fit at a trial rotation"),
    Entry("astrom_trial_radec", "red", "astrometry/{datevobs}/add_radec_angoff_trial/radec_exp{exp:02d}_{angle}Deg.dat", "start pointing at a trial rotation"),
    Entry("astrom_trial_radec2", "red", "astrometry/{datevobs}/add_radec_angoff_trial/radec2_exp{exp:02d}_{angle}Deg.dat", "fitted pointing at a trial rotation"),
    Entry("astrom_dith", "red", "astrometry/{datevobs}/dith_exp{exp:02d}.all", "fiber RA/Dec of one exposure"),
    Entry("dithall", "red", "astrometry/{datevobs}/dithall.use", "fiber RA/Dec of every exposure"),
    Entry("astrom_match_png", "red", "astrometry/{datevobs}/match_exp{exp:02d}.png",
          "QA: detected and catalogue stars on the focal plane, offsets"),
    Entry("astrom_angoff_png", "red", "astrometry/{datevobs}/ang_off.png", "QA: pair rms against the trial rotation"),
    Entry("tp_month", "red", "throughput/{month}", "throughput folder of a month (Karl's detect/)"),
    Entry("tp_dir", "red", "throughput/{month}/{datevobs}", "throughput work folder of a shot (Karl's detect/DATEvOBS)"),
    Entry("tp_fwhm", "red", "throughput/{month}/{datevobs}/fwhm.out",
          "the shot's star FWHM: biweight, biweight scale, number of stars (mkrsprun)"),
    Entry("tp_stars", "red", "throughput/{month}/{datevobs}/stars.dat",
          "every catalogue star: fitted position, FWHM, S/N, SED fit, g-band throughput, combsed flag, why rejected"),
    Entry("tp_starspec", "red", "throughput/{month}/{datevobs}/stars.fits",
          "the stars' spectra (counts per 2 A), 100-A counts, SEDs and throughput curves"),
    Entry("tp_summary", "red", "throughput/{month}/{datevobs}/summary.json",
          "the shot's results: FWHM, response_4540, fit c1 c2, stars used, source (stars or fallback)"),
    Entry("tp_png", "red", "throughput/{month}/{datevobs}/res/{datevobs}sedtpa.png",
          "QA: the stars' throughput curves, the combined curve, the fit and the rejected stars"),
    Entry("tp_sedtp", "red", "throughput/{month}/tp/{datevobs}sedtp.dat",
          "combined throughput of the accepted stars (combsed comb.out)"),
    Entry("throughput", "red", "throughput/{month}/tp/{datevobs}sedtp_f.dat",
          "response curve of a shot, 21 rows (fitpoly: wavelength throughput tp_low tp_high rat_poly tp_gband)"),
    Entry("tp_fwhm_all", "red", "throughput/{month}/fwhm.all", "one line per shot: DATEvOBS fwhm_virus fwhm_virus_err nstars"),
    Entry("tp_response_all", "red", "throughput/{month}/response_4540.all",
          "one line per shot: DATEvOBS response_4540 nstars source"),
    Entry("tp_lock", "red", "throughput/{month}/.tables.lock", "lock file: one unit at a time rebuilds the month's tables"),
    # --- steps 14-16, 20: detections, calibrated fibers, full-field sky ---------------------
    Entry("detect_dir", "red", "detect/{month}/{datevobs}", "detection outputs (.mc .list .spec)"),
    Entry("detect_mc", "red", "detect/{month}/{datevobs}/{run}/{datevobs}_{specid:03d}_{ifuslot:03d}_{ifuid}.mc",
          "line detections of an IFU with Monte-Carlo errors (fitradecsp mc2.out, FORMAT 1104); run = search, "
          "negate (the negated data) or inject"),
    Entry("detect_list", "red", "detect/{month}/{datevobs}/{run}/{datevobs}_{specid:03d}_{ifuslot:03d}_{ifuid}.list",
          "the fibers of every detection (fitradecsp l2, FORMAT 1203)"),
    Entry("detect_spec", "red", "detect/{month}/{datevobs}/{run}/{datevobs}_{specid:03d}_{ifuslot:03d}_{ifuid}.spec",
          "the weighted spectrum of every detection, 1036 rows each (fitradecsp spec.out, FORMAT 1302)"),
    Entry("detect_res", "red", "detect/{month}/{datevobs}/{run}/{datevobs}_{specid:03d}_{ifuslot:03d}_{ifuid}.res",
          "every pass-2 maximum: ra dec wave sn chi amp sig con (fitradecsp outbest, FORMAT 1101; optional)"),
    Entry("detect_sources", "red", "detect/{month}/{datevobs}/inject/sources_{ifuslot:03d}.in",
          "point-source lines to inject (ra dec wave flux [sigma]; fitradecsp sources.in)"),
    Entry("continuum_cs", "red", "continuum/{month}/{datevobs}/{datevobs}.cs",
          "bright fibers of exp01 merged within 6.5\" (matchradec2 radec.out + DATEvOBS)"),
    Entry("continuum_res", "red", "continuum/{month}/{datevobs}/fitres/{datevobs}_{name}.res",
          "a continuum source's PSF-fitted position: ra dec chi amp obnum DATEvOBS (rspcs)"),
    Entry("continuum_rcs", "red", "continuum/{month}/{datevobs}/{datevobs}.rcs",
          "the continuum sources after de-duplication, one rf1 line each (rext1; col2 ra, col3 dec, col7 "
          "obnum, col8 DATEvOBS)"),
    Entry("continuum_spec", "red", "continuum/{month}/{datevobs}/spec/{datevobs}_{name}.spec",
          "a continuum source's weighted spectrum (FORMAT 1302, src_index 1)"),
    Entry("continuum_list", "red", "continuum/{month}/{datevobs}/spec/{datevobs}_{name}.list",
          "a continuum source's fibers (FORMAT 1203)"),
    Entry("calfib", "red", "calfib/{month}/{datevobs}_{specid:03d}_{ifuslot:03d}_{ifuid}_cal.fits",
          "calibrated fibers of an IFU (fitradecsp mode 106): calib, calibe, calib_c, calibe_c, rows exposure, amp, fiber"),
    Entry("resmap_res", "red", _LIB + "/{month}/reschi/res{specid:03d}{amp}.fits",
          "per-pixel biweight of sky_subtracted / sky over the month's science exposures (imcmbext imcmb)"),
    Entry("resmap_sres", "red", _LIB + "/{month}/reschi/sres{specid:03d}{amp}.fits",
          "its biweight scale (imcmbext imcmbs)"),
    Entry("resmap_rres", "red", _LIB + "/{month}/reschi/rres{specid:03d}{amp}.fits",
          "measured / expected noise, normalised (imcmbext imcmb1, key NORM)"),
    Entry("resmap_chi", "red", _LIB + "/{month}/reschi/chi{specid:03d}{amp}.fits",
          "per-pixel biweight of the extraction chi^2 (imcmbchi)"),
    Entry("resmap_png", "red", _LIB + "/{month}/reschi/reschi{specid:03d}{amp}.png", "QA: the four maps of an amp"),
    Entry("fullsky", "red", "fullsky/{month}/d{night}s{obs3}exp{exp:02d}sub.fits",
          "full-field-sky-subtracted fibers of an exposure, 112 rows per amp.dat row, on 3470+2i A (vred3 out.fits)"),
    Entry("fullsky_amp", "red", "fullsky/{month}/d{night}s{obs3}exp{exp:02d}amp.dat",
          "per amp: Factor N_c Avg Scale W0 W1 Nlo (vred3 amp.out, format 1201)"),
    Entry("fullsky_sky", "red", "fullsky/{month}/d{night}s{obs3}exp{exp:02d}sky.dat",
          "the exposure's master sky: wavelength, value (vred3 sky.out)"),
    Entry("fullsky_ds9", "red", "fullsky/{month}/d{night}s{obs3}exp{exp:02d}ds9.reg",
          "ds9 labels of the amps on sub.fits, red when flagged (header.ds9reg + ds9reg.dat)"),
    Entry("fullsky_png", "red", "fullsky/{month}/d{night}s{obs3}exp{exp:02d}fullsky.png",
          "QA: the master sky and the amps' Factor, Scale, W0 across the focal plane"),
    # --- steps 17, 19: HDF5 -----------------------------------------------------------------
    Entry("h5_release", "red", "h5/{name}", "the release folder: hetdex_api's HDRconfig tree (cd h5 and use survey=NAME)"),
    Entry("h5_shot", "red", "h5/{name}/reduction/data/{datevobs}.h5",
          "shot file: /Shot, /Data/{Fibers,FiberIndex,Images}, /Astrometry, /Calibration (h5tools)"),
    Entry("h5_survey", "red", "h5/{name}/survey/survey_{name}.h5", "survey file: /Survey, every shot's /Shot row"),
    Entry("h5_flux_limits", "red", "h5/{name}/survey/flux_limits_all.txt",
          "one line per shot: DATEvOBS SHOTID fluxlimit_4540 (erg/s/cm2), read by hetdex_api's Survey"),
    Entry("h5_fiberindex", "red", "h5/{name}/survey/fiber_index_{name}.h5",
          "every fiber of the survey with its healpix (Nside 2^15, RING)"),
    Entry("h5_fibermask", "red", "h5/{name}/survey/{mask}",
          "fiber flags in the fiber index's row order (0.8.7: /Flags in fiber_mask_2.1.3.h5)"),
    Entry("h5_detect_month", "red", "h5/{name}/detect/months/detect_{month}.h5", "the line detections of a month"),
    Entry("h5_ifustat", "red", "h5/{name}/detect/months/ifustat_{month}.tab",
          "per IFU of the month: candidates and detections kept (ampid ndet ndetsel)"),
    Entry("h5_detect", "red", "h5/{name}/detect/detect_{name}.h5", "the release's detections, merged from the months"),
    Entry("spec2d", "red", "h5/{name}/spec2d/im2D_{shotid}.h5",
          "get_spec2D's products of a shot's detections: FiberImages, PhotImages, Spec1D"),
    Entry("spec2d_merged", "red", "h5/{name}/spec2d/merged_im2D.h5", "every shot's im2D file, merged"),
    # --- step 18 and the QA pages: hetred report ---------------------------------------------
    Entry("report_png", "red", "reports/{month}/{datevobs}/{detectid}.png",
          "the report of a detection (PNG; its tEXt chunk hetred-key names the detection it shows)"),
    Entry("report_pdf", "red", "reports/{month}/{datevobs}/{detectid}.pdf", "the same report as PDF (--pdf)"),
    Entry("report_thumb", "red", "reports/{month}/{datevobs}/thumbs/{detectid}.jpg",
          "a thumbnail of the report, JPEG (what the shot page shows)"),
    Entry("report_db", "red", "reports/{month}/{datevobs}/reports_{datevobs}.db",
          "sqlite: the shot's reports keyed by detectid (ELiXer's report table, + report_pdf, detections, meta)"),
    Entry("report_db_month", "red", "reports/{month}/reports_{month}.db", "sqlite: the month's shot databases merged"),
    Entry("web_dir", "red", "web/{night}", "the night's static HTML folder (opens from disk, no server)"),
    Entry("web_page", "red", "web/{night}/{name}",
          "a page: index.html (the night), calib.html (calibration QA), DATEvOBS.html (a shot)"),
    Entry("web_img", "red", "web/{night}/img/{name}", "a plot made for the pages (PNG)"),
    Entry("web_file", "red", "web/{night}/files/{stage}/{name}",
          "a product a page shows or links (QA plots, detection reports), hard-linked (else copied) into the folder"),
    # --- operations -------------------------------------------------------------------------
    Entry("jobfile", "red", "jobs/{stage}/{name}", "launcher job files and Slurm scripts"),
    Entry("jobs_submitted", "red", "jobs/submitted_{name}.json",
          "job ids of slurm-gen --submit per stage and job file, one entry per submission"),
    Entry("marker_done", "red", "markers/{stage}/{unit}.done.json", "a finished unit: inputs, timings"),
    Entry("marker_failed", "red", "markers/{stage}/{unit}.failed.json", "a failed unit: the one-line reason"),
    Entry("marker_empty", "red", "markers/{stage}/{unit}.empty.json",
          "a unit with nothing to do in the data: the reason and what it saw (not a failure)"),
    Entry("marker_lock", "red", "markers/{stage}/{unit}.lock",
          "lock of a running unit (fcntl) and journal of its temporary files; gone when it ends"),
    Entry("qa", "red", "qa/{stage}/{name}", "QA plots (PNG)"),
    # --- simulator truth (a separate root; reduction code never reads it) -------------------
    Entry("truth_fplane", "truth", "fplane.txt", "the simulated focal plane (with CONTID)"),
    Entry("truth_night", "truth", "{night}/night.json", "per-night truth: exposures, bias levels, gains"),
    Entry("truth_amp", "truth", "{night}/amp_{ifuslot:03d}{amp}.fits",
          "per-amp truth in the oriented frame: trace, wavelength, fiber_to_fiber, pixel flat, ..."),
    Entry("truth_shot", "truth", "{night}/shot_{datevobs}.json",
          "per-shot truth: pointing, dithers, PSF, transparency, sources and the fibers that see them"),
    Entry("truth_cosmics", "truth", "{night}/cosmics_{datevobs}.npz",
          "per-shot cosmic-ray pixels of every science exposure and amp (oriented y, x; electrons)"),
)

_BY_KEY = {e.key: e for e in TABLE}
_FIELD_RE = re.compile(r"\{(\w+)(?::[^}]*)?\}")


class LayoutError(KeyError):
    """Unknown layout key or missing field."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def entry(key: str) -> Entry:
    """The table row for ``key``."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise LayoutError(f"unknown layout key {key!r}") from None


def fields(key: str) -> list[str]:
    """Field names a key's template needs, in order."""
    return _FIELD_RE.findall(entry(key).template)


def _pattern(template: str) -> re.Pattern[str]:
    out, pos, seen = [], 0, set()
    for m in _FIELD_RE.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        name = m.group(1)
        if name in seen:
            out.append(f"(?P={name})")
        else:
            out.append(f"(?P<{name}>{FIELD_PATTERNS.get(name, '[^/]+')})")
            seen.add(name)
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


_PATTERNS = {e.key: _pattern(e.template) for e in TABLE}
_INT_FIELDS = {"obs", "exp", "ifuslot", "specid", "detectid"}


def format_relative(key: str, **values: Any) -> str:
    """The path of ``key`` relative to its root, as text (for tar members and tarlist lines)."""
    e = entry(key)
    try:
        return e.template.format(**values)
    except KeyError as err:
        raise LayoutError(f"layout key {key!r} needs field {err.args[0]!r}") from None
    except ValueError as err:
        raise LayoutError(f"layout key {key!r}: bad field value ({err})") from None


def parse(key: str, text: str) -> dict[str, Any] | None:
    """Invert :func:`format_relative`: the fields of ``text`` (a relative path), or None.

    ``text`` must match the whole template; integer fields come back as int.
    """
    m = _PATTERNS[entry(key).key].search(text)
    if m is None or m.end() != len(text):
        return None
    out: dict[str, Any] = dict(m.groupdict())
    for name in _INT_FIELDS & out.keys():
        out[name] = int(out[name])
    return out


@dataclass(frozen=True)
class Layout:
    """Path factory for one raw archive root and one reduction root."""

    raw: Path
    red: Path
    truth: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw", Path(self.raw))
        object.__setattr__(self, "red", Path(self.red))
        if self.truth is not None:
            object.__setattr__(self, "truth", Path(self.truth))

    def _root(self, e: Entry) -> Path:
        if e.root == "raw":
            return self.raw
        if e.root == "red":
            return self.red
        if e.root == "truth":
            if self.truth is None:
                raise LayoutError(f"layout key {e.key!r} needs a truth root (simulator only)")
            return self.truth
        raise LayoutError(f"layout key {e.key!r} is a tar member, not a file path")

    def path(self, key: str, **values: Any) -> Path:
        """The absolute path of ``key`` with ``values`` filled in."""
        e = entry(key)
        return self._root(e) / format_relative(key, **values)

    def glob(self, key: str, **values: Any) -> Iterator[Path]:
        """Existing paths of ``key`` with the given fields fixed and the others free."""
        e = entry(key)
        root = self._root(e)
        pattern = _FIELD_RE.sub(lambda m: str(_fmt_one(m, values)), e.template)
        return iter(sorted(root.glob(pattern)))

    def nights_of_month(self, month: str) -> list[str]:
        """Nights YYYYMM01..YYYYMM31 that exist in the raw archive, sorted."""
        if not self.raw.is_dir():
            return []
        return sorted(p.name for p in self.raw.glob(f"{month}[0-3][0-9]") if p.is_dir())


def _fmt_one(m: re.Match[str], values: dict[str, Any]) -> str:
    name = m.group(1)
    if name in values:
        return ("{" + m.group(0)[1:-1].replace(name, "0", 1) + "}").format(values[name])
    return "*"


def path_under(base: str | Path, key: str, within: str, **values: Any) -> Path:
    """The path of ``key`` with the folder of key ``within`` replaced by ``base``: a stage run
    outside the tree (``hetred astrom --out DIR``) keeps the file names of the table.

    ``key``'s template must lie inside ``within``'s (e.g. ``radec_final`` in ``astrom_dir``).
    """
    rel, prefix = format_relative(key, **values), format_relative(within, **values)
    if not rel.startswith(prefix + "/"):
        raise LayoutError(f"layout key {key!r} does not lie inside {within!r}")
    return Path(base) / rel[len(prefix) + 1:]


def render_markdown() -> str:
    """The layout table as Markdown (the body of docs/layout.md between the markers)."""
    lines = ["| key | root | path | what |", "|---|---|---|---|"]
    for e in TABLE:
        lines.append(f"| `{e.key}` | {e.root} | `{e.template}` | {e.description} |")
    return "\n".join(lines) + "\n"
