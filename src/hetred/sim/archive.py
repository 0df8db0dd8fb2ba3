"""Plan and write a simulated raw archive (one tar per observation) with its truth tree.

Streaming: for each night every tar of the night is open at once (under a temporary name) and
the frames are made amp by amp: the amp's constants (detector, optics, ~40 MB) are built once,
then each exposure of the night is rendered and appended to its observation's tar. At most one
amp's constants and one frame are in memory, whatever the number of IFUs. Tar members of an
observation are therefore grouped by amp; the real archive's member order is arbitrary too
(karlspipe tarlists). A tar appears under its real name only when complete.

Every path comes from :class:`hetred.layout.Layout`; the truth root must not lie inside the raw
root (the raw tree must look exactly like TACC's).
"""
from __future__ import annotations

import contextlib
import io
import tarfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hetred.errors import HetredError
from hetred.io.atomic import atomic_path, write_json_atomic
from hetred.layout import Layout, format_relative
from hetred.sim import almanac, families, presets
from hetred.sim import truth as truth_mod
from hetred.sim.focalplane import choose_slots
from hetred.sim.frame import AmpModel, exposure_context, shot_scenes
from hetred.sim.plan import FrameCounts, NightPlan, describe, parse_nights, plan_night
from hetred.sim.skyvar import SkyVariation
from hetred.virus.amp import AMPS
from hetred.virus.coords import DITHERS
from hetred.virus.fplane import FplaneEntry, write_fplane

Progress = Callable[[int, int, str], None]


@dataclass
class ArchivePlan:
    """Everything ``simulate`` will write, before any pixel is made."""

    nights: list[NightPlan]
    slots: list[FplaneEntry]
    counts: FrameCounts
    seed: int
    scale: str
    solar: Path | None = None
    optics_family: str = "classic"   #: hetred.sim.families: how the optics vary along the slit
    sky_variation: SkyVariation | None = None   #: hetred.sim.skyvar: the sky differs between amps

    @property
    def n_amps(self) -> int:
        return 4 * len(self.slots)

    @property
    def n_exposures(self) -> int:
        return sum(len(n.exposures) for n in self.nights)

    @property
    def n_members(self) -> int:
        return self.n_exposures * self.n_amps

    @property
    def n_tars(self) -> int:
        return sum(len(n.observations) for n in self.nights)

    def members_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for n in self.nights:
            for e in n.exposures:
                out[e.kind] += self.n_amps
        return dict(out)

    def describe(self) -> list[str]:
        slots = ",".join(f"{s.ifuslot:03d}" for s in self.slots)
        fam = "" if self.optics_family == "classic" else f", optics family {self.optics_family}"
        lines = [f"scale {self.scale}, seed {self.seed}{fam}: {len(self.nights)} night(s), "
                 f"{len(self.slots)} IFU(s) [{slots}], {self.n_amps} amps; {self.n_tars} tars, "
                 f"{self.n_exposures} exposures, {self.n_members} members "
                 f"(~{self.n_members * 2.21 / 1024:.2f} GB)"]
        for n in self.nights:
            lines += describe(n, self.n_amps)
        kinds = self.members_by_kind()
        lines.append("members by type: " + ", ".join(f"{k} {kinds[k]}" for k in sorted(kinds)))
        return lines


@dataclass
class SimSummary:
    """What :func:`simulate_archive` wrote."""

    raw: Path
    truth: Path
    nights: list[str]
    ifuslots: list[int]
    seed: int
    scale: str
    n_tars: int = 0
    n_members: int = 0
    members_by_kind: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0
    frame_seconds: dict[str, float] = field(default_factory=dict)   #: total render+write time by kind
    model_seconds: float = 0.0
    shots: list[str] = field(default_factory=list)                  #: datevobs of science shots
    tars: list[Path] = field(default_factory=list)

    def mean_frame_seconds(self) -> dict[str, float]:
        return {k: self.frame_seconds[k] / max(1, self.members_by_kind.get(k, 0)) for k in self.frame_seconds}

    def as_dict(self) -> dict:
        return {"raw": str(self.raw), "truth": str(self.truth), "nights": self.nights,
                "ifuslots": self.ifuslots, "seed": self.seed, "scale": self.scale,
                "n_tars": self.n_tars, "n_members": self.n_members,
                "members_by_kind": self.members_by_kind, "bytes_written": self.bytes_written,
                "seconds": round(self.seconds, 3), "model_seconds": round(self.model_seconds, 3),
                "mean_frame_seconds": {k: round(v, 4) for k, v in self.mean_frame_seconds().items()},
                "shots": self.shots}


def plan_archive(nights: str | list[str] | None = None, ifuslots: list[int] | None = None,
                 n_ifus: int | None = None, frames: FrameCounts | dict | None = None,
                 shots: int | None = None, seed: int = 0, scale: str = "demo",
                 solar: str | Path | None = None, optics_family: str = "classic",
                 sky_variation: SkyVariation | None = None) -> ArchivePlan:
    """The plan of a simulation; explicit arguments override the ``scale`` preset.
    ``optics_family``: :data:`hetred.sim.families.CHOICES` (how the optics vary along the slit);
    ``sky_variation``: per-amp sky level, wavelength and continuum fibers of the science
    exposures (:mod:`hetred.sim.skyvar`; None: the same sky in every amp)."""
    pre = presets.get(scale)
    try:
        family = families.check_family(optics_family)
        night_list = parse_nights(nights if nights else pre.nights)
        slots = choose_slots(ifuslots, n_ifus if (n_ifus or ifuslots) else pre.n_ifus)
        counts = pre.counts
        if isinstance(frames, FrameCounts):
            counts = frames
        elif frames:
            counts = counts.replace(**frames)
        if shots is not None:
            counts = counts.replace(shots=shots)
        plans = [plan_night(n, counts) for n in night_list]
    except ValueError as err:
        raise HetredError(str(err)) from None
    if solar is not None and not Path(solar).is_file():
        raise HetredError(f"solar spectrum {solar} does not exist")
    return ArchivePlan(plans, slots, counts, int(seed), scale, Path(solar) if solar else None, family,
                       sky_variation)


def archive_fplane(slots: list[FplaneEntry]) -> list[FplaneEntry]:
    """The night's fplane as the fplane server gives it (HETDEX/vdrp utest/testdata/config/fplane.txt):
    the centre placeholder 000 (SPECID 900) and the IFUs, 8 columns (no CONTID)."""
    from dataclasses import replace

    centre = FplaneEntry(0, 0.0, 0.0, 900, 900, "900", 0.0, 1.0)
    return [centre] + [replace(e, contid=None) for e in slots if e.ifuslot != 0]


def check_roots(layout: Layout) -> None:
    """Refuse a truth root that is the raw root or lies inside it."""
    if layout.truth is None:
        raise HetredError("the simulator needs a truth root (--truth DIR), apart from the raw root")
    raw, truth = Path(layout.raw).resolve(), Path(layout.truth).resolve()
    if truth == raw or raw in truth.parents:
        raise HetredError(f"truth root {layout.truth} lies inside the raw root {layout.raw}: "
                          "the raw archive must hold only what TACC holds")


def simulate_archive(layout: Layout, nights: str | list[str] | None = None,
                     ifuslots: list[int] | None = None, n_ifus: int | None = None,
                     frames: FrameCounts | dict | None = None, shots: int | None = None,
                     seed: int = 0, scale: str = "demo", solar: str | Path | None = None,
                     progress: Progress | None = None, overwrite: bool = False,
                     plan: ArchivePlan | None = None, optics_family: str = "classic",
                     sky_variation: SkyVariation | None = None) -> SimSummary:
    """Simulate raw nights into ``layout.raw`` and their truth into ``layout.truth``
    (``sky_variation``: :mod:`hetred.sim.skyvar`, recorded in each shot's truth).

    Returns a :class:`SimSummary`. Raises :class:`HetredError` on a bad request, a truth root
    inside the raw root, or an existing tar (unless ``overwrite``).
    """
    check_roots(layout)
    plan = plan or plan_archive(nights, ifuslots, n_ifus, frames, shots, seed, scale, solar, optics_family,
                                sky_variation)
    if not overwrite:
        for n in plan.nights:
            for o in n.observations:
                p = layout.path("raw_tar", night=n.night, obs=o.obs)
                if p.exists():
                    raise HetredError(f"{p} exists (use overwrite / --overwrite to replace it)")
    t0 = time.perf_counter()
    summary = SimSummary(Path(layout.raw), Path(layout.truth), [n.night for n in plan.nights],
                         [s.ifuslot for s in plan.slots], plan.seed, plan.scale)
    write_fplane(layout.path("truth_fplane"), plan.slots)
    for n in plan.nights:            # what the fplane server gives for the night: the real 8 columns
        write_fplane(layout.path("fplane_archive", night=n.night), archive_fplane(plan.slots))
    solar_arr = None
    if plan.solar is not None:
        from hetred.sim import spectra

        solar_arr = spectra.solar_fine(str(plan.solar))
    done = [0]
    total = plan.n_members
    for night in plan.nights:
        _simulate_night(layout, plan, night, summary, solar_arr, progress, done, total)
    summary.seconds = time.perf_counter() - t0
    return summary


def _simulate_night(layout: Layout, plan: ArchivePlan, night: NightPlan, summary: SimSummary,
                    solar_arr, progress: Progress | None, done: list[int], total: int) -> None:
    seed, slots = plan.seed, plan.slots
    scenes = shot_scenes(seed, night, slots)
    contexts = [exposure_context(seed, e, o, scenes.get(o.obs), solar_arr, plan.sky_variation)
                for o in night.observations for e in o.exposures]
    t_night = almanac.night_start(night.night)
    injected: dict[int, list[dict]] = defaultdict(list)
    line_truth: dict[int, list[dict]] = defaultdict(list)
    cosmics: dict[int, list[tuple]] = defaultdict(list)
    skyvar_truth: dict[int, list[dict]] = defaultdict(list)
    amps_json = {}
    with contextlib.ExitStack() as stack:
        tars = {}
        for o in night.observations:
            dest = layout.path("raw_tar", night=night.night, obs=o.obs)
            tmp = stack.enter_context(atomic_path(dest))
            tars[o.obs] = stack.enter_context(tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT))
            summary.tars.append(dest)
        for slot in slots:
            for amp in AMPS:
                tm = time.perf_counter()
                model = AmpModel(seed, night.night, slot, amp, t_night, plan.optics_family)
                summary.model_seconds += time.perf_counter() - tm
                records = []
                for ctx in contexts:
                    e = ctx.exposure
                    tf = time.perf_counter()
                    buf, out = model.fits(ctx)
                    member = format_relative("raw_member", obs=e.obs, exp=e.exp, stamp=e.stamp,
                                             ifuslot=slot.ifuslot, amp=amp, kind=e.kind)
                    info = tarfile.TarInfo(member)
                    info.size = len(buf)
                    info.mtime = int(e.end.timestamp() + 20)     # file written after readout
                    info.mode = 0o644
                    info.uname = info.gname = "hetdex"
                    tars[e.obs].addfile(info, io.BytesIO(buf))
                    summary.frame_seconds[e.kind] = summary.frame_seconds.get(e.kind, 0.0) + time.perf_counter() - tf
                    summary.n_members += 1
                    summary.members_by_kind[e.kind] = summary.members_by_kind.get(e.kind, 0) + 1
                    summary.bytes_written += len(buf)
                    records.append({"stamp": e.stamp, "obs": e.obs, "exp": e.exp, "kind": e.kind,
                                    "object": e.object, "bias_level": out.bias_level})
                    if out.injected is not None:
                        for f in (out.injected > 20.0).nonzero()[0]:
                            injected[e.obs].append({"ifuslot": slot.ifuslot, "amp": amp, "exp": e.exp,
                                                    "fiber": int(f) + 1,
                                                    "electrons": round(float(out.injected[f]), 1)})
                    if out.cosmics is not None:
                        cosmics[e.obs].append((e.exp, slot.ifuslot, amp, *out.cosmics))
                    if ctx.skyvar is not None:
                        from hetred.sim.skyvar import truth_record

                        skyvar_truth[e.obs].append(truth_record(model.amp_sky(ctx), e.exp, slot, amp))
                    for k, fibers, elec in out.lines or ():
                        for f, el in zip(fibers, elec):
                            if el > 0.5:
                                line_truth[e.obs].append({"id": int(ctx.scene.lines[k]["id"]), "exp": e.exp,
                                                          "ifuslot": slot.ifuslot, "amp": amp,
                                                          "fiber": int(f) + 1, "electrons": round(float(el), 2)})
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], total, f"{night.night} {slot.ifuslot:03d}{amp}")
                truth_mod.write_amp_truth(layout.path("truth_amp", night=night.night, ifuslot=slot.ifuslot,
                                                      amp=amp), model, records)
                amps_json[f"{slot.ifuslot:03d}{amp}"] = truth_mod.amp_summary(model, records)
                del model
        for tf in tars.values():
            tf.close()
    summary.n_tars += len(night.observations)
    _write_night_truth(layout, plan, night, contexts, amps_json)
    for o in night.shots:
        _write_shot_truth(layout, plan, night, o, scenes[o.obs], contexts, injected[o.obs], line_truth[o.obs],
                          skyvar_truth[o.obs])
        truth_mod.write_cosmics(layout.path("truth_cosmics", night=night.night, datevobs=o.datevobs),
                                cosmics[o.obs])
        summary.shots.append(o.datevobs)


def _write_night_truth(layout: Layout, plan: ArchivePlan, night: NightPlan, contexts, amps_json) -> None:
    exposures = []
    for ctx in contexts:
        e = ctx.exposure
        exposures.append({"obs": e.obs, "exp": e.exp, "kind": e.kind, "object": e.object,
                          "stamp": e.stamp, "mjd": e.mjd, "exptime": e.exptime, "darktime": e.darktime,
                          "members": plan.n_amps, "level": ctx.level,
                          "tar": str(layout.path("raw_tar", night=night.night, obs=e.obs).relative_to(layout.raw))})
    data = {
        "night": night.night, "seed": plan.seed, "scale": plan.scale, "optics_family": plan.optics_family,
        "almanac": {k: v.isoformat() for k, v in night.almanac.items()},
        "ifuslots": [s.ifuslot for s in plan.slots],
        "counts": plan.counts.__dict__,
        "level_meaning": {"flt": "peak e- per pixel of a nominal fiber", "cmp": "brightest line peak e-",
                          "twi": "peak e- per pixel", "sci": "night-sky brightness factor"},
        "exposures": exposures, "amps": amps_json,
        "shots": [o.datevobs for o in night.shots],
    }
    write_json_atomic(layout.path("truth_night", night=night.night), data)


def _write_shot_truth(layout: Layout, plan: ArchivePlan, night: NightPlan, o, scene, contexts,
                      injected: list[dict], line_truth: list[dict] | None = None,
                      skyvar_truth: list[dict] | None = None) -> None:
    from hetred.sim import sky

    dvo = o.datevobs
    sky.write_catalogue(scene, layout.path("star_catalog", datevobs=dvo))
    data = sky.scene_truth(scene, plan.slots)
    exps = [c for c in contexts if c.exposure.obs == o.obs]
    data.update({
        "datevobs": dvo, "object": o.object, "planned_pointing": {"ra": o.ra0, "dec": o.dec0},
        "dithers": [list(d) for d in DITHERS],
        "exposures": [{"exp": c.exposure.exp, "stamp": c.exposure.stamp, "exptime": c.exposure.exptime,
                       "transparency": float(scene.transparency[c.exposure.exp - 1]),
                       "sky_scale": c.level} for c in exps],
        "injected": sorted(injected, key=lambda r: -r["electrons"]),
        "injected_meaning": "source electrons per fiber (sum over columns, before noise), > 20 e-",
        "line_electrons": line_truth or [],
        "line_electrons_meaning": "per emission-line source (id of 'lines'), exposure and fiber: the "
                                  "line's electrons summed over columns (before noise), > 0.5 e-",
    })
    if plan.sky_variation is not None:
        from hetred.sim.skyvar import TRUTH_MEANING

        data["sky_variation"] = {"settings": plan.sky_variation.as_dict(), "meaning": TRUTH_MEANING,
                                 "amps": sorted(skyvar_truth or [], key=lambda r: (r["exp"], r["multiframe"]))}
    write_json_atomic(layout.path("truth_shot", night=night.night, datevobs=dvo), data)
