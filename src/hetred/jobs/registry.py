"""The stage registry: which stages exist, in the order of the process, and their units.

One :class:`StageSpec` per schedulable stage. A spec knows how to enumerate its units for a
:class:`Scope` (a month, optionally narrowed to a night, a shot or IFU slots) exactly as the
stage's own CLI does, and how to select exactly one unit on the command line: every
:class:`Unit` carries the ``hetred`` arguments (subcommand and options, without the global
``--raw/--red/--config``) that run it and nothing else. ``hetred slurm-gen`` writes those
arguments as job-file lines; ``hetred run`` executes them in worker processes.

Adding a stage is one entry in :data:`REGISTRY` (or :func:`_optional_stages` for a stage whose
module may not exist yet): a name (its marker stage, ``markers/{name}/``), the group the user
names (``twical`` stands for its three steps), an enumerator, a default time per unit
(seconds, used by ``slurm-gen -t`` until done markers give measured ones), the stages whose
products it reads (``needs``) and its settings parser (``settings``).

**The order of the process is declared once, here, by ``needs``**: :func:`stages` sorts the
registry so that every stage comes after the stages it needs (the declared order breaks ties),
and ``hetred run`` (stage by stage), ``hetred slurm-gen`` (each stage's jobs wait, ``afterok``,
for the jobs of the stages it needs) and ``hetred demo`` (its stages by group) all take it from
there. The pixel flat, for example, must exist before the twilights are reduced, so
``twical-reduce`` needs ``flat``.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from hetred.errors import HetredError
from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry
from hetred.virus.amp import AMPS


@dataclass(frozen=True)
class Unit:
    """One unit of work: its marker (stage, uid) and the ``hetred`` arguments that run it alone."""

    stage: str                  #: marker stage, e.g. ``twical-reduce``
    uid: str                    #: marker name, e.g. ``20180110v001_exp01_053_LL``
    args: tuple[str, ...]       #: subcommand and options, e.g. ``("bias", "201801", "--ifuslot", "053", ...)``


@dataclass
class Scope:
    """What to enumerate: a month's tarlist entries, optionally narrowed.

    ``night`` (YYYYMMDD) and ``shot`` (DATEvOBS) narrow the per-exposure stages (twical reduce,
    sci); monthly stages (bias, bgmodel, twical combine/a2a) always cover the month, their unit
    being monthly. ``ifuslots`` narrows every stage, as ``--ifuslot`` does on the stage CLIs.
    """

    layout: Layout
    month: str
    entries: Sequence[TarEntry]
    night: str | None = None
    shot: str | None = None
    ifuslots: tuple[int, ...] = ()
    stage_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)   #: stage -> why it has no units

    @property
    def label(self) -> str:
        """The tag in job-file names: the shot, else the night, else the month."""
        return self.shot or self.night or self.month

    def in_scope(self, e: TarEntry) -> bool:
        """Whether a per-exposure entry belongs to the night / shot asked for."""
        return self.in_scope_shot(f"{e.night}v{e.obs:03d}")

    def in_scope_shot(self, datevobs: str) -> bool:
        """Whether a shot (DATEvOBS) belongs to the night / shot asked for."""
        if self.shot is not None and datevobs != self.shot:
            return False
        return self.night is None or datevobs.startswith(self.night)

    def slots(self, found: Sequence[int]) -> list[int]:
        """The IFU slots asked for (as the CLIs: given slots are used as given), else ``found``."""
        return sorted(set(self.ifuslots)) if self.ifuslots else sorted(set(found))

    def slot_args(self) -> tuple[str, ...]:
        return tuple(a for s in sorted(set(self.ifuslots)) for a in ("--ifuslot", f"{s:03d}"))


Enumerator = Callable[[Scope], list[Unit]]


@dataclass(frozen=True)
class StageSpec:
    """A schedulable stage."""

    name: str                   #: marker stage and jobs/ folder
    group: str                  #: the name users give (``twical`` = its three steps)
    enumerate: Enumerator
    default_seconds: float      #: per unit, until done markers give a measured median
    #: a unit that combines the group's earlier units: redone (--overwrite) when any of them reruns
    aggregate: bool = False
    description: str = ""
    #: why its units cannot run yet (e.g. its command is not installed): counted, never written
    missing: str = ""
    #: run once after the stage by ``hetred run`` when a unit was done (a month-wide table)
    finalize: Callable[[Layout], None] | None = None
    #: the stages (names) whose products its units read: they run first
    needs: tuple[str, ...] = ()
    #: parses the stage's ``[stages.X]`` table (raises HetredError on a bad value), or None
    settings: Callable[[dict[str, Any] | None], Any] | None = None
    #: the config table of its settings (``[stages.{table}]``)
    table: str = ""
    #: the layout keys of the products its units write (what a later stage may depend on)
    writes: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------------
# enumerators (the same selection as each stage's CLI)

def _bias(scope: Scope) -> list[Unit]:
    from hetred.bias.frames import index_zro
    from hetred.bias.run import unit_id
    from hetred.bias.settings import STAGE

    index = index_zro(scope.entries)
    slots = scope.slots([k[0] for k in index])
    return [Unit(STAGE, unit_id(scope.month, s, a), ("bias", scope.month, "--ifuslot", f"{s:03d}", "--amp", a))
            for s in slots for a in AMPS]


def _bgmodel(scope: Scope) -> list[Unit]:
    from hetred.background.frames import index_frames
    from hetred.background.run import unit_id
    from hetred.background.settings import KINDS, STAGE

    index = index_frames(scope.entries)
    slots = scope.slots([k[0] for k in index])
    return [Unit(STAGE, unit_id(scope.month, s, a, k),
                 ("bgmodel", scope.month, "--ifuslot", f"{s:03d}", "--amp", a, "--kind", k))
            for s in slots for a in AMPS for k in KINDS]


def _twilights(scope: Scope) -> list[Any]:
    from hetred.twical.run import Exposure

    cmp: dict[tuple[str, int, str], list[TarEntry]] = {}
    twi = []
    for e in scope.entries:
        if e.kind == "twi" and (not scope.ifuslots or e.ifuslot in scope.ifuslots):
            twi.append(e)
        elif e.kind == "cmp":
            cmp.setdefault((e.night, e.ifuslot, e.amp), []).append(e)
    return [Exposure(t, tuple(cmp.get((t.night, t.ifuslot, t.amp), ()))) for t in twi]


def _twical_reduce(scope: Scope) -> list[Unit]:
    from hetred.twical.run import STAGE_REDUCE

    out = []
    for x in _twilights(scope):
        if not scope.in_scope(x.twi):
            continue
        out.append(Unit(STAGE_REDUCE, x.unit,
                        ("twical", scope.month, "--step", "reduce", "--ifuslot", f"{x.twi.ifuslot:03d}",
                         "--amp", x.twi.amp, "--exposure", f"{x.datevobs}_exp{x.twi.exp:02d}")))
    return out


def _twical_combine(scope: Scope) -> list[Unit]:
    from hetred.twical.run import STAGE_COMBINE, unit_combine

    amps = sorted({(x.twi.ifuslot, x.twi.amp) for x in _twilights(scope)})
    return [Unit(STAGE_COMBINE, unit_combine(scope.month, s, a),
                 ("twical", scope.month, "--step", "combine", "--ifuslot", f"{s:03d}", "--amp", a))
            for s, a in amps]


def _twical_a2a(scope: Scope) -> list[Unit]:
    from hetred.twical.run import STAGE_A2A

    if not _twilights(scope):
        return []
    slots = sorted(set(scope.ifuslots))
    uid = scope.month if not slots else f"{scope.month}_" + "_".join(f"{s:03d}" for s in slots)
    return [Unit(STAGE_A2A, uid, ("twical", scope.month, "--step", "a2a", *scope.slot_args()))]


def _flat(scope: Scope) -> list[Unit]:
    from hetred.flat import run as flat_run
    from hetred.flat import settings as flat_settings

    settings = flat_settings.FlatSettings.from_config(scope.stage_settings.get(flat_settings.STAGE))
    nights = [scope.night] if scope.night else scope.layout.nights_of_month(scope.month)
    if not nights:
        scope.notes[flat_settings.STAGE] = f"cameras come from the raw headers: no nights of {scope.month} under {scope.layout.raw}"
        return []
    frames = flat_run.find_frames(scope.layout, nights, None, list(scope.ifuslots) or None, settings.kind_list)
    where = ("--night", scope.night) if scope.night else ("--month", scope.month)
    return [Unit(flat_settings.STAGE, flat_run.unit_id(sp, a), ("flat", f"{sp:03d}", *where, *scope.slot_args(), "--amp", a))
            for sp in sorted({f.specid for f in frames}) for a in AMPS]


def _pixmask_table(layout: Layout) -> None:
    """Rebuild pix_mask.tab from every pixel flat: each flat unit rebuilds it, and two units
    ending together can each write a table without the other's boxes."""
    from hetred.flat.run import write_pixmask_table

    write_pixmask_table(layout)


def _sci(scope: Scope) -> list[Unit]:
    """Science units, shot x exposure x IFU: ``hetred.sci.run.sci_units`` on the month's tarlist;
    when that is not written yet (a dry run planned from a list), the same grouping of the
    scope's entries (night, obs, exp, IFU slot, stamp)."""
    mod = importlib.import_module("hetred.sci.run")
    stage = getattr(mod, "STAGE", "sci")
    if scope.layout.path("tarlist", month=scope.month).exists():
        items = mod.sci_units(scope.layout, month=scope.month, shot=scope.shot, exp=None,
                              ifuslots=list(scope.ifuslots) or None)
    else:
        groups: dict[tuple, list[TarEntry]] = {}
        for e in scope.entries:
            if e.kind == "sci" and (not scope.ifuslots or e.ifuslot in scope.ifuslots):
                groups.setdefault((e.night, e.obs, e.exp, e.ifuslot, e.stamp), []).append(e)
        items = [mod.SciUnit(*k, tuple(v)) for k, v in sorted(groups.items())]
    out = []
    for it in items:
        datevobs = str(_attr(it, "datevobs"))
        if not scope.in_scope_shot(datevobs):
            continue
        exp, slot = int(_attr(it, "exp")), int(_attr(it, "ifuslot"))
        out.append(Unit(stage, str(_attr(it, "unit")),
                        ("sci", "--shot", datevobs, "--exp", str(exp), "--ifuslot", f"{slot:03d}")))
    return out


def _astrom(scope: Scope) -> list[Unit]:
    """Astrometry units, one per science shot of the month's tarlist (or of the scope's entries
    when the tarlist is not written yet)."""
    from hetred.astrom.run import STAGE

    shots = sorted({(e.night, e.obs) for e in scope.entries if e.kind == "sci"})
    out = []
    for night, obs in shots:
        datevobs = f"{night}v{obs:03d}"
        if scope.in_scope_shot(datevobs):
            out.append(Unit(STAGE, datevobs, ("astrom", "--shot", datevobs)))
    return out


def _throughput(scope: Scope) -> list[Unit]:
    """One unit per science shot (``hetred throughput --shot``)."""
    from hetred.throughput.run import STAGE

    shots = sorted({f"{e.night}v{e.obs:03d}" for e in scope.entries if e.kind == "sci"})
    return [Unit(STAGE, s, ("throughput", "--shot", s)) for s in shots if scope.in_scope_shot(s)]


def _calfib(scope: Scope) -> list[Unit]:
    """One unit per science shot and IFU slot (``hetred calfib --shot --ifuslot``)."""
    from hetred.calfib.run import STAGE, CalfibUnit

    keys = sorted({(f"{e.night}v{e.obs:03d}", e.ifuslot) for e in scope.entries if e.kind == "sci"
                   and (not scope.ifuslots or e.ifuslot in scope.ifuslots)})
    return [Unit(STAGE, CalfibUnit(s, k).unit, ("calfib", "--shot", s, "--ifuslot", f"{k:03d}"))
            for s, k in keys if scope.in_scope_shot(s)]


def _tp_tables(layout: Layout) -> None:
    """Rebuild every month's fwhm.all and response_4540.all (each unit rebuilds its own)."""
    from hetred.throughput.products import rebuild_month_tables

    for d in layout.glob("tp_month"):
        if d.is_dir():
            rebuild_month_tables(layout, d.name)
def _detect(scope: Scope) -> list[Unit]:
    """Line detection, one unit per science shot and IFU slot (``hetred detect --shot --ifuslot``)."""
    from hetred.detect.run import STAGE, DetectUnit

    keys = sorted({(f"{e.night}v{e.obs:03d}", e.ifuslot) for e in scope.entries if e.kind == "sci"
                   and (not scope.ifuslots or e.ifuslot in scope.ifuslots)})
    return [Unit(STAGE, DetectUnit(s, k).unit, ("detect", "--shot", s, "--ifuslot", f"{k:03d}"))
            for s, k in keys if scope.in_scope_shot(s)]


def _continuum(scope: Scope) -> list[Unit]:
    """Continuum sources, one unit per science shot (``hetred continuum --shot``)."""
    from hetred.detect.settings import STAGE_CONTINUUM

    shots = sorted({f"{e.night}v{e.obs:03d}" for e in scope.entries if e.kind == "sci"})
    return [Unit(STAGE_CONTINUUM, s, ("continuum", "--shot", s)) for s in shots if scope.in_scope_shot(s)]
def _resmap(scope: Scope) -> list[Unit]:
    """Residual-map units, one per camera amp (SPECID x amp) of the month's science exposures
    (SPECID from the nights' fplanes, else the multi files); monthly, narrowed by IFU slots only."""
    from hetred.resmap.run import STAGE, resmap_units

    rows = [e for e in scope.entries if e.kind == "sci" and (not scope.ifuslots or e.ifuslot in scope.ifuslots)]
    return [Unit(STAGE, u.unit, ("resmap", scope.month, "--specid", f"{u.specid:03d}", "--amp", u.amp))
            for u in resmap_units(scope.layout, scope.month, entries=rows)]


def _fullsky(scope: Scope) -> list[Unit]:
    """Full-field sky units, one per science exposure (all IFUs)."""
    from hetred.fullsky.run import STAGE, fullsky_units

    return [Unit(STAGE, u.unit, ("fullsky", "--shot", u.datevobs, "--exp", str(u.exp), "--step", "sky"))
            for u in fullsky_units(scope.layout, month=scope.month, entries=scope.entries)
            if scope.in_scope_shot(u.datevobs)]


def _fullsky_addsky(scope: Scope) -> list[Unit]:
    """The fullsky HDU of the calibrated-fiber files, one unit per science shot."""
    from hetred.fullsky.run import STAGE_ADDSKY, addsky_units

    return [Unit(STAGE_ADDSKY, u.unit, ("fullsky", "--shot", u.datevobs, "--step", "addsky"))
            for u in addsky_units(scope.layout, month=scope.month, entries=scope.entries)
            if scope.in_scope_shot(u.datevobs)]


def _science_shots(scope: Scope) -> list[str]:
    return [d for d in sorted({f"{e.night}v{e.obs:03d}" for e in scope.entries if e.kind == "sci"})
            if scope.in_scope_shot(d)]


def _release(scope: Scope) -> str:
    from hetred.h5.settings import H5Settings

    return H5Settings.from_config(scope.stage_settings.get("h5")).release


def _h5_shot(scope: Scope) -> list[Unit]:
    """One shot file per science shot (``hetred h5 shot --shot``)."""
    from hetred.h5.settings import STAGE_SHOT

    return [Unit(STAGE_SHOT, d, ("h5", "shot", "--shot", d)) for d in _science_shots(scope)]


def _h5_release(stage: str, args: tuple[str, ...]) -> Enumerator:
    """One unit per release (survey, fiber index, detect merge, spec2d merge), when the scope
    has science shots."""
    def enumerate_(scope: Scope) -> list[Unit]:
        return [Unit(stage, _release(scope), args)] if _science_shots(scope) else []
    return enumerate_


def _h5_detect(scope: Scope) -> list[Unit]:
    """One detect file per month (``hetred h5 detect MONTH``), when the month has science shots."""
    from hetred.h5.settings import STAGE_DETECT

    return [Unit(STAGE_DETECT, scope.month, ("h5", "detect", scope.month))] if _science_shots(scope) else []


def _spec2d(scope: Scope) -> list[Unit]:
    """One im2D file per science shot (``hetred spec2d --shot``)."""
    return [Unit("spec2d", d, ("spec2d", "--shot", d)) for d in _science_shots(scope)]


def _report_detections(scope: Scope) -> list[Unit]:
    """A report per detection of each science shot (``hetred report detections --shot``)."""
    return [Unit("report-detections", d, ("report", "detections", "--shot", d)) for d in _science_shots(scope)]


def _report_merge(scope: Scope) -> list[Unit]:
    """The month's report databases in one (``hetred report merge MONTH``)."""
    return [Unit("report-merge", scope.month, ("report", "merge", scope.month))] if _science_shots(scope) else []


def _report_night(scope: Scope) -> list[Unit]:
    """The static HTML of every night with raw frames (``hetred report night NIGHT``)."""
    nights = sorted({e.night for e in scope.entries if scope.night is None or e.night == scope.night})
    if scope.shot is not None:
        nights = [n for n in nights if scope.shot.startswith(n)]
    return [Unit("report-night", n, ("report", "night", n)) for n in nights]


def _attr(obj: Any, *names: str) -> Any:
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            v = getattr(obj, n)
            return v() if callable(v) else v
    raise HetredError(f"sci unit {obj!r} has none of {', '.join(names)}")


# ------------------------------------------------------------------------------------------------
# settings parsers (imported when called)

def _settings(module: str, cls: str) -> Callable[[dict[str, Any] | None], Any]:
    def parse(values: dict[str, Any] | None) -> Any:
        return getattr(importlib.import_module(module), cls).from_config(values)
    return parse


# ------------------------------------------------------------------------------------------------
# the registry

REGISTRY: tuple[StageSpec, ...] = (
    StageSpec("bias", "bias", _bias, 120.0, description="master bias per IFU slot and amp",
              settings=_settings("hetred.bias.settings", "BiasSettings"), table="bias",
              writes=("masterbias", "masterbias_unsmoothed", "masterbias_traps", "bias_frames")),
    StageSpec("bgmodel", "bgmodel", _bgmodel, 60.0, needs=("bias",),
              description="background model per IFU slot, amp and kind",
              settings=_settings("hetred.background.settings", "BgSettings"), table="bgmodel",
              writes=("bgmodel", "bgcombined")),
    StageSpec("flat", "flat", _flat, 600.0, needs=("bias",), description="pixel flat per camera and amp",
              finalize=_pixmask_table, settings=_settings("hetred.flat.settings", "FlatSettings"),
              table="flat", writes=("pixelflat", "pixmask")),
    StageSpec("twical-reduce", "twical", _twical_reduce, 60.0, needs=("bias", "bgmodel", "flat"),
              description="one twilight exposure and amp: trace, profile, wavelength, fiber-to-fiber",
              writes=("calwork",)),
    StageSpec("twical-combine", "twical", _twical_combine, 60.0, needs=("twical-reduce",),
              description="monthly calibration library per IFU slot and amp", writes=("callib",)),
    StageSpec("twical-a2a", "twical", _twical_a2a, 600.0, aggregate=True, needs=("twical-combine",),
              description="amp-to-amp normalisation of the month, QA", writes=("callib", "amp_to_amp")),
)


def _optional_stages() -> tuple[StageSpec, ...]:
    """Stages whose code may not exist yet: registered only when importable."""
    out = []
    try:
        mod = importlib.import_module("hetred.sci.run")
    except ImportError:
        mod = None
    if mod is not None and hasattr(mod, "sci_units"):
        missing = "" if importlib.util.find_spec("hetred.cli.sci") else "the hetred sci command is not installed yet"
        out.append(StageSpec(getattr(mod, "STAGE", "sci"), "sci", _sci, 120.0, missing=missing,
                             needs=("bias", "bgmodel", "flat", "twical-a2a"),
                             description="one shot, exposure and IFU: multi files, rectified spectra",
                             settings=_settings("hetred.sci.settings", "SciSettings"), table="sci",
                             writes=("multi", "rectified", "cofes", "sci_fplane_png")))
    if importlib.util.find_spec("hetred.astrom.run") is not None:
        missing = "" if importlib.util.find_spec("hetred.cli.astrom") else "the hetred astrom command is not installed yet"
        out.append(StageSpec("astrom", "astrom", _astrom, 300.0, missing=missing, needs=("sci",),
                             description="one shot: stars, offsets, rotation, norm.dat, fiber RA/Dec",
                             settings=_settings("hetred.astrom.settings", "AstromSettings"), table="astrom",
                             writes=("astrom_dir", "radec_final", "dithall")))
    out.append(StageSpec("throughput", "throughput", _throughput, 120.0, finalize=_tp_tables, needs=("sci", "astrom"),
                         description="one shot: stars, FWHM, SED fits, response curve",
                         settings=_settings("hetred.throughput.settings", "ThroughputSettings"), table="throughput",
                         writes=("tp_dir", "tp_fwhm", "tp_stars", "tp_starspec", "tp_summary", "tp_png", "tp_sedtp",
                                 "throughput", "tp_fwhm_all", "tp_response_all")))
    out.append(StageSpec("calfib", "calfib", _calfib, 30.0, needs=("sci", "astrom", "throughput"),
                         description="one shot and IFU: calibrated fibers (_cal.fits)",
                         settings=_settings("hetred.calfib.settings", "CalfibSettings"), table="calfib",
                         writes=("calfib",)))
    out.append(StageSpec("resmap", "resmap", _resmap, 60.0, needs=("sci",),
                         description="one camera amp over the month: res, sres, rres, chi maps",
                         settings=_settings("hetred.resmap.settings", "ResmapSettings"), table="resmap",
                         writes=("resmap_res", "resmap_sres", "resmap_rres", "resmap_chi", "resmap_png")))
    out.append(StageSpec("fullsky", "fullsky", _fullsky, 120.0, needs=("sci", "twical-a2a", "resmap"),
                         description="one science exposure (all IFUs): vred3, amp.dat, sky.dat, sub.fits",
                         settings=_settings("hetred.fullsky.settings", "FullskySettings"), table="fullsky",
                         writes=("fullsky", "fullsky_amp", "fullsky_sky", "fullsky_ds9", "fullsky_png")))
    out.append(StageSpec("fullsky-addsky", "fullsky", _fullsky_addsky, 60.0, needs=("fullsky", "calfib"),
                         description="one shot: the fullsky HDU of each _cal.fits (imaddsky)",
                         writes=("calfib",)))
    # detect and continuum load the fibers as Karl's fitradecsp does: the residual and error-ratio
    # maps of resmap and the amp's W0/W1 of fullsky's amp.dat (its wavelength-calibration error,
    # added to every fiber's wavelengths: detect/inputs.py) -- so after both (Karl: "full-sky
    # (step 20) must run before detection")
    out.append(StageSpec("detect", "detect", _detect, 30.0,
                         needs=("sci", "astrom", "throughput", "resmap", "fullsky"),
                         description="one shot and IFU: line search, Monte-Carlo errors, .mc .list .spec",
                         settings=_settings("hetred.detect.settings", "DetectSettings"), table="detect",
                         writes=("detect_mc", "detect_list", "detect_spec", "detect_res")))
    out.append(StageSpec("continuum", "continuum", _continuum, 60.0,
                         needs=("sci", "astrom", "throughput", "resmap", "fullsky"),
                         description="one shot: continuum sources (.cs .rcs, spectra)",
                         settings=_settings("hetred.detect.settings", "DetectSettings"), table="detect",
                         writes=("continuum_cs", "continuum_res", "continuum_rcs", "continuum_spec",
                                 "continuum_list")))
    if importlib.util.find_spec("hetred.h5.run") is not None:     # keep last: its needs are the stages above
        have = {s.name for s in REGISTRY} | {s.name for s in out}
        h5 = {"settings": _settings("hetred.h5.settings", "H5Settings"), "table": "h5"}
        out += [
            StageSpec("h5-shot", "h5", _h5_shot, 120.0,
                      needs=tuple(n for n in ("sci", "astrom", "throughput", "calfib", "fullsky", "fullsky-addsky")
                                  if n in have),
                      description="one shot: the shot file DATEvOBS.h5 hetdex_api reads", writes=("h5_shot",), **h5),
            StageSpec("h5-survey", "h5", _h5_release("h5-survey", ("h5", "survey")), 60.0, aggregate=True,
                      needs=("h5-shot",), description="the survey file and flux_limits_all.txt of every shot file",
                      writes=("h5_survey", "h5_flux_limits"), **h5),
            StageSpec("h5-fiberindex", "h5", _h5_release("h5-fiberindex", ("h5", "fiberindex")), 600.0,
                      aggregate=True, needs=("h5-shot",), description="the fiber index (healpix) and fiber mask",
                      writes=("h5_fiberindex", "h5_fibermask"), **h5),
            StageSpec("h5-detect", "h5", _h5_detect, 300.0, needs=tuple(n for n in ("detect",) if n in have),
                      description="the month's detections from the .mc/.list/.spec files",
                      writes=("h5_detect_month", "h5_ifustat"), **h5),
            StageSpec("h5-detect-merge", "h5", _h5_release("h5-detect-merge", ("h5", "detect", "--merge")), 300.0,
                      aggregate=True, needs=("h5-detect",), description="every month's detections, renumbered",
                      writes=("h5_detect",), **h5),
            StageSpec("spec2d", "spec2d", _spec2d, 120.0, needs=("h5-shot", "h5-detect-merge"),
                      description="one shot: 2-D cut-outs and spectra of its detections (im2D_SHOTID.h5)",
                      writes=("spec2d",), **h5),
            StageSpec("spec2d-merge", "spec2d", _h5_release("spec2d-merge", ("spec2d", "--merge")), 120.0,
                      aggregate=True, needs=("spec2d",), description="every shot's im2D file, merged",
                      writes=("spec2d_merged",), **h5),
        ]
    if importlib.util.find_spec("hetred.report.run") is not None:   # last: the night page reads every stage
        rep = {"settings": _settings("hetred.report.settings", "ReportSettings"), "table": "report"}
        have = {s.name for s in REGISTRY} | {s.name for s in out}
        out += [
            StageSpec("report-detections", "report", _report_detections, 120.0,
                      needs=tuple(n for n in ("h5-shot", "h5-detect-merge", "spec2d") if n in have),
                      description="one shot: a report (PNG) per detection above min_sn, reports_DATEvOBS.db",
                      writes=("report_png", "report_pdf", "report_thumb", "report_db"), **rep),
            StageSpec("report-merge", "report", _report_merge, 60.0, aggregate=True, needs=("report-detections",),
                      description="the month's report databases, merged", writes=("report_db_month",), **rep),
            StageSpec("report-night", "report", _report_night, 60.0, aggregate=True,
                      needs=tuple(sorted(have)) + ("report-detections", "report-merge"),
                      description="one night: static HTML of every stage's units, calibration QA, the shots",
                      writes=("web_dir", "web_page", "web_img", "web_file"), **rep),
        ]
    return tuple(out)


def stages() -> tuple[StageSpec, ...]:
    """Every implemented stage, in the order of the process (each after the stages it needs)."""
    return process_order(REGISTRY + _optional_stages())


def process_order(specs: Sequence[StageSpec]) -> tuple[StageSpec, ...]:
    """``specs`` sorted so that each comes after every stage it ``needs`` (declared order breaks
    ties). A need that is not among ``specs`` is ignored; a circle raises HetredError."""
    left = list(specs)
    names = {s.name for s in left}
    out: list[StageSpec] = []
    placed: set[str] = set()
    while left:
        ready = next((s for s in left if all(n in placed or n not in names for n in s.needs)), None)
        if ready is None:
            raise HetredError("stage needs form a circle: " + ", ".join(s.name for s in left))
        out.append(ready)
        placed.add(ready.name)
        left.remove(ready)
    return tuple(out)


def requires(spec: StageSpec, available: Sequence[StageSpec] | None = None) -> list[str]:
    """Every stage ``spec`` needs, directly or through others, in process order."""
    avail = {s.name: s for s in (available if available is not None else stages())}
    seen: set[str] = set()
    todo = list(spec.needs)
    while todo:
        n = todo.pop()
        if n in seen or n not in avail:
            continue
        seen.add(n)
        todo.extend(avail[n].needs)
    return [s.name for s in process_order(list(avail.values())) if s.name in seen]


def group_order() -> list[str]:
    """The groups (``bias``, ``bgmodel``, ``flat``, ``twical``, ``sci``) in the order of the process."""
    return list(dict.fromkeys(s.group for s in stages()))


def check_settings(specs: Sequence[StageSpec], tables: dict[str, dict[str, Any]]) -> None:
    """Parse the ``[stages.X]`` settings of every stage in ``specs`` (before any unit runs or any
    job is written): the first bad key or value raises HetredError naming the table."""
    for spec in specs:
        if spec.settings is not None:
            spec.settings(tables.get(spec.table))


def resolve(text: str) -> list[StageSpec]:
    """``all``, one name or a comma list of stage or group names -> specs in process order."""
    available = stages()
    names = {s.name for s in available} | {s.group for s in available}
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    if not wanted:
        raise HetredError("no stage given (use all or one of: " + ", ".join(sorted(names)) + ")")
    if "all" in wanted:
        return list(available)
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise HetredError(f"unknown stage(s) {', '.join(unknown)}; implemented: all, "
                          + ", ".join(dict.fromkeys(s.group for s in available))
                          + " (twical = " + ", ".join(s.name for s in available if s.group == "twical") + ")")
    return [s for s in available if s.name in wanted or s.group in wanted]


def enumerate_units(spec: StageSpec, scope: Scope) -> list[Unit]:
    """The units of one stage (a HetredError from the stage's own code is passed on)."""
    return spec.enumerate(scope)


def night_plan(layout: Layout, night: str, stage_settings: dict[str, dict[str, Any]] | None = None
               ) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """For a night's page (``hetred report night``): the stage order, the units each stage should
    have for the night (as ``hetred run --night`` would enumerate them; none without the month's
    tarlist), and the night's science shots."""
    from hetred.lists.tarlist import month_entries

    month = night[:6]
    entries = month_entries(layout, month) if layout.path("tarlist", month=month).exists() else []
    scope = Scope(layout, month, entries, night=night, stage_settings=dict(stage_settings or {}))
    order, expected = [], {}
    for spec in stages():
        order.append(spec.name)
        # flat enumerates its cameras from the raw frames' headers (minutes for 78 IFUs): its
        # page rows come from its markers alone
        if spec.group in ("report", "flat") or not entries or spec.missing:
            continue
        try:
            expected[spec.name] = [u.uid for u in spec.enumerate(scope)]
        except (HetredError, OSError):       # the page shows what the markers say
            continue
    shots = sorted({f"{e.night}v{e.obs:03d}" for e in entries if e.kind == "sci" and e.night == night})
    return order, expected, shots
