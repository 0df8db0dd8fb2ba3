"""Launcher job files and Slurm scripts (``hetred slurm-gen``), their submission and timing.

A *job file* is what TACC's launcher runs: one shell command per line, each a ``hetred``
command that runs exactly one unit (``hetred --raw R --red D bias 201801 --ifuslot 053 --amp
LL``), no blank lines, a final newline. The launcher ignores exit codes; each line records its
own outcome in the unit's done/failed marker (:func:`hetred.jobs.units.run_unit`).

Beside it, a ``.slurm`` script in the style of Karl's rjob/rslurm scripts: ``#SBATCH -J -N -n -p
-t -A -o -e``, ``module load launcher`` (profiles that have it), ``LAUNCHER_JOB_FILE``,
``LAUNCHER_WORKDIR``, ``LAUNCHER_SCHED=dynamic``, ``$LAUNCHER_DIR/paramrun``, and a built-in
runner (a bash loop, ``$SLURM_NTASKS`` lines at a time) when no launcher is installed, so the
same script runs on any Slurm. The script ends by counting its units' done and empty markers: it
exits 0 when at least one unit is done or empty (failed units are listed by ``slurm-gen
--rerun-failed``) and 1 when none is (a broken environment, missing inputs), which stops the
``afterok`` chain.

``-t`` = ceil(units / tasks) x (median seconds of the stage's done markers, else the stage's
default, + the profile's start-up seconds per line) x safety, rounded up to minutes, at least
the profile's ``min_wall`` and at most its ``max_wall``.

Machine profiles are package data (``hetred/jobs/profiles/*.toml``); ``[slurm]`` in the config
file and the command line override them; the account comes from ``--account``,
``$HETRED_ACCOUNT`` or ``[slurm] account`` and is omitted when none is set.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import statistics
import subprocess
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hetred.errors import HetredError
from hetred.io.atomic import write_json_atomic, write_text_atomic
from hetred.jobs.registry import StageSpec, Unit
from hetred.layout import Layout

PROFILES = ("stampede3", "lonestar6", "frontera", "local")
#: $TACC_SYSTEM (set on TACC machines) -> profile
TACC_SYSTEMS = {"stampede3": "stampede3", "ls6": "lonestar6", "lonestar6": "lonestar6", "frontera": "frontera"}


@dataclass(frozen=True)
class Profile:
    """A machine: how many job-file lines a node runs at once, its queue and limits.

    Times are ``HH:MM:SS`` strings; ``cores_per_node = 0`` means this machine's CPU count and
    ``tasks_per_node = 0`` means ``cores_per_node``; ``queue = ""`` omits ``-p``; ``module = ""``
    omits ``module load``.
    """

    name: str
    description: str = ""
    cores_per_node: int = 0
    tasks_per_node: int = 0
    memory_gb: float = 0.0
    queue: str = ""
    max_wall: str = "48:00:00"
    min_wall: str = "00:10:00"
    module: str = ""
    units_per_task: int = 4
    safety: float = 2.0
    startup_seconds: float = 10.0
    account: str = ""                   #: never in a profile file: --account / $HETRED_ACCOUNT / config
    hetred: str = "hetred"              #: the command the job-file lines call
    setup: tuple[str, ...] = ()         #: shell lines run before the job file (e.g. activate a venv)

    @property
    def tasks(self) -> int:
        """Job-file lines one node runs at once."""
        cores = self.cores_per_node or os.cpu_count() or 1
        return max(1, min(self.tasks_per_node or cores, cores))


def load_profile(name: str) -> Profile:
    """A packaged machine profile by name."""
    if name not in PROFILES:
        raise HetredError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    text = resources.files("hetred.jobs").joinpath("profiles", f"{name}.toml").read_text()
    return _apply(Profile(name=name), tomllib.loads(text), f"profile {name}")


def _apply(p: Profile, values: Mapping[str, Any], where: str) -> Profile:
    known = {f.name: f for f in fields(Profile)}
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k == "profile":
            continue
        if k not in known:
            raise HetredError(f"{where}: unknown setting {k!r} (known: {', '.join(sorted(known))})")
        if k == "setup":
            v = (v,) if isinstance(v, str) else tuple(str(x) for x in v)
        elif k in ("max_wall", "min_wall"):
            parse_hms(str(v), f"{where}: {k}")
        out[k] = v
    return replace(p, **out)


def read_slurm_config(config_file: str | Path | None) -> dict[str, Any]:
    """The ``[slurm]`` table of the config file (empty without one)."""
    if not config_file:
        return {}
    try:
        data = tomllib.loads(Path(config_file).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise HetredError(f"cannot read [slurm] from {config_file}: {err}") from None
    return dict(data.get("slurm", {}))


def default_profile_name(slurm_cfg: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """``[slurm] profile``, else the TACC machine from ``$TACC_SYSTEM``, else ``local``."""
    env = os.environ if environ is None else environ
    if slurm_cfg.get("profile"):
        return str(slurm_cfg["profile"])
    return TACC_SYSTEMS.get(env.get("TACC_SYSTEM", "").lower(), "local")


def settings(profile: str, slurm_cfg: Mapping[str, Any], account: str | None = None,
             queue: str | None = None, environ: Mapping[str, str] | None = None) -> Profile:
    """Profile < ``[slurm]`` config < ``$HETRED_ACCOUNT`` (account) < command line."""
    env = os.environ if environ is None else environ
    p = _apply(load_profile(profile), slurm_cfg, "[slurm]")
    if env.get("HETRED_ACCOUNT"):
        p = replace(p, account=env["HETRED_ACCOUNT"])
    if account is not None:
        p = replace(p, account=account)
    if queue is not None:
        p = replace(p, queue=queue)
    return p


# ------------------------------------------------------------------------------------------------
# times

def parse_hms(text: str, what: str = "time") -> int:
    """``HH:MM:SS`` (or ``MM:SS``) -> seconds."""
    parts = text.strip().split(":")
    try:
        nums = [int(x) for x in parts]
    except ValueError:
        nums = []
    if not 2 <= len(nums) <= 3 or any(n < 0 for n in nums):
        raise HetredError(f"{what} must be HH:MM:SS, got {text!r}")
    while len(nums) < 3:
        nums.insert(0, 0)
    return nums[0] * 3600 + nums[1] * 60 + nums[2]


def format_hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def measured_seconds(layout: Layout, stage: str) -> list[float]:
    """The ``seconds`` of every done marker of a stage."""
    out = []
    for p in layout.glob("marker_done", stage=stage):
        try:
            out.append(float(json.loads(p.read_text())["seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class Timing:
    """Seconds per unit of a stage and where the number comes from."""

    seconds: float
    measured: int               #: done markers behind the median (0: the stage default)

    @property
    def source(self) -> str:
        return f"median of {self.measured} done" if self.measured else "default"


def stage_timing(layout: Layout, spec: StageSpec) -> Timing:
    secs = measured_seconds(layout, spec.name)
    if secs:
        return Timing(float(statistics.median(secs)), len(secs))
    return Timing(spec.default_seconds, 0)


def wall_time(nunits: int, ntasks: int, timing: Timing, p: Profile) -> tuple[str, str]:
    """(``-t`` value, one-line explanation) for a job of ``nunits`` lines on ``ntasks`` slots."""
    per_task = math.ceil(nunits / max(1, ntasks))
    per_unit = timing.seconds + p.startup_seconds
    need = per_task * per_unit * p.safety
    secs = max(parse_hms(p.min_wall), 60 * math.ceil(need / 60))
    note = (f"{per_task} unit(s) per task x ({timing.seconds:.1f} s {timing.source} + "
            f"{p.startup_seconds:g} s start-up) x safety {p.safety:g} = {need:.0f} s")
    cap = parse_hms(p.max_wall)
    if secs > cap:
        secs = cap
        note += f", capped at the profile's {p.max_wall} (use a smaller --units-per-job)"
    return format_hms(secs), note


# ------------------------------------------------------------------------------------------------
# job files and scripts

@dataclass(frozen=True)
class Roots:
    """The global options every job-file line repeats (absolute paths)."""

    raw: Path
    red: Path
    config: Path | None = None

    def args(self) -> list[str]:
        out = ["--raw", str(self.raw), "--red", str(self.red)]
        return out + (["--config", str(self.config)] if self.config else [])


def job_line(p: Profile, roots: Roots, unit: Unit, overwrite: bool = False) -> str:
    """The shell command of one unit (one job-file line)."""
    argv = [*roots.args(), *unit.args, *(["--overwrite"] if overwrite else [])]
    return " ".join([p.hetred, *(shlex.quote(a) for a in argv)])


@dataclass
class JobFile:
    """One chunk of a stage's units: a job file and its Slurm script."""

    stage: str
    name: str                   #: ``bias_201801_001`` (also the -J job name)
    units: list[Unit]
    lines: list[str]
    jobfile: Path
    script: Path
    ntasks: int
    wall: str
    wall_note: str
    markers: list[tuple[Path, Path]] = field(default_factory=list)   #: (done, empty) marker of each unit

    @property
    def shell_var(self) -> str:
        """The placeholder of its job id in dry-run sbatch lines: ``JOB_bias_001``."""
        return "JOB_" + re.sub(r"[^A-Za-z0-9]", "_", f"{self.stage}_{self.name.rsplit('_', 1)[-1]}")


def job_name(stage: str, label: str, k: int, rerun: bool = False) -> str:
    return f"{stage}_{label}_{'rerun_' if rerun else ''}{k:03d}"


def plan_stage(layout: Layout, spec: StageSpec, units: Sequence[Unit], p: Profile, roots: Roots,
               label: str, units_per_job: int | None = None, rerun: bool = False,
               overwrite: Sequence[bool] | None = None) -> list[JobFile]:
    """Cut a stage's units into job files of ``units_per_job`` (default: the profile's tasks per
    node x units per task) and size each one's tasks and wall time."""
    per_job = units_per_job or p.tasks * p.units_per_task
    if per_job < 1:
        raise HetredError("--units-per-job must be at least 1")
    timing = stage_timing(layout, spec)
    flags = list(overwrite) if overwrite is not None else [False] * len(units)
    jobs = []
    for k, start in enumerate(range(0, len(units), per_job), start=1):
        chunk = list(units[start:start + per_job])
        name = job_name(spec.name, label, k, rerun)
        ntasks = min(len(chunk), p.tasks)
        wall, note = wall_time(len(chunk), ntasks, timing, p)
        jobs.append(JobFile(
            stage=spec.name, name=name, units=chunk,
            lines=[job_line(p, roots, u, f) for u, f in zip(chunk, flags[start:start + per_job])],
            jobfile=layout.path("jobfile", stage=spec.name, name=name),
            script=layout.path("jobfile", stage=spec.name, name=name + ".slurm"),
            ntasks=ntasks, wall=wall, wall_note=note,
            markers=[(layout.path("marker_done", stage=u.stage, unit=u.uid),
                      layout.path("marker_empty", stage=u.stage, unit=u.uid)) for u in chunk]))
    return jobs


def render_jobfile(job: JobFile) -> str:
    """One command per line, no blank lines, a final newline (the launcher's rules)."""
    for line in job.lines:
        if not line.strip() or "\n" in line:
            raise HetredError(f"{job.name}: a job-file line is empty or spans lines: {line!r}")
    return "".join(line + "\n" for line in job.lines)


_RUNNER = r'''if [ -n "${LAUNCHER_DIR:-}" ] && [ -x "$LAUNCHER_DIR/paramrun" ]; then
  "$LAUNCHER_DIR/paramrun"
else
  # no TACC launcher: run the job file's lines here, $SLURM_NTASKS at a time
  ntasks=${SLURM_NTASKS:-1}
  echo "hetred: no launcher, built-in runner with $ntasks parallel lines"
  run_line() {
    local t0=$SECONDS
    bash -c "$2" < /dev/null
    echo "hetred: line $1 exit $? after $((SECONDS - t0)) s"
  }
  k=0
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] || continue
    k=$((k + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$ntasks" ]; do wait -n; done
    run_line "$k" "$line" &
  done < "$LAUNCHER_JOB_FILE"
  wait
fi'''

_CHECK = r'''# the units of this job that are done or empty (nothing to do in the data): their done or
# empty markers (two lines per unit); none of either fails the job
ndone=0
nempty=0
nunits=0
while IFS= read -r done_marker && IFS= read -r empty_marker; do
  nunits=$((nunits + 1))
  if [ -e "$done_marker" ]; then
    ndone=$((ndone + 1))
  elif [ -e "$empty_marker" ]; then
    nempty=$((nempty + 1))
  fi
done <<'HETRED_MARKERS'
{markers}
HETRED_MARKERS
echo "hetred: $ndone of $nunits units done, $nempty empty, $(date)"
[ $((ndone + nempty)) -gt 0 ]
'''


def render_script(job: JobFile, p: Profile, title: str) -> str:
    """The ``.slurm`` script of a job file (rjob style, with a fallback runner)."""
    sb = [f"#SBATCH -J {job.name}", "#SBATCH -N 1", f"#SBATCH -n {job.ntasks}"]
    if p.queue:
        sb.append(f"#SBATCH -p {p.queue}")
    sb.append(f"#SBATCH -t {job.wall}")
    if p.account:
        sb.append(f"#SBATCH -A {p.account}")
    sb += [f"#SBATCH -o {job.jobfile}.o%j", f"#SBATCH -e {job.jobfile}.e%j"]
    workdir = job.jobfile.parent
    out = ["#!/bin/bash",
           f"# {title}",
           f"# {job.name}: {len(job.lines)} units, {job.ntasks} at a time, profile {p.name}",
           f"# -t: {job.wall_note}",
           *sb,
           "",
           "export OMP_NUM_THREADS=1",
           f"export LAUNCHER_WORKDIR={shlex.quote(str(workdir))}",
           f"export LAUNCHER_JOB_FILE={shlex.quote(str(job.jobfile))}",
           "export LAUNCHER_SCHED=dynamic",
           'cd "$LAUNCHER_WORKDIR" || exit 1']
    if p.module:
        out += ["if type module > /dev/null 2>&1; then", f"  module load {p.module}", "fi"]
    out += list(p.setup)
    out += ['echo "hetred: job ${SLURM_JOB_ID:-?} on $(hostname): $LAUNCHER_JOB_FILE, $(date)"',
            _RUNNER,
            _CHECK.format(markers="\n".join(f"{d}\n{e}" for d, e in job.markers))]
    return "\n".join(out)


def stale_files(layout: Layout, stage: str, label: str, rerun: bool, keep: Sequence[str]) -> list[Path]:
    """Job files and scripts of an earlier generation (same stage, label and kind) not rewritten."""
    pat = re.compile(rf"{re.escape(stage)}_{re.escape(label)}_{'rerun_' if rerun else ''}\d{{3}}(\.slurm)?")
    return [f for f in layout.glob("jobfile", stage=stage)
            if pat.fullmatch(f.name) and f.name not in set(keep)]


def write_stage(layout: Layout, jobs: Sequence[JobFile], p: Profile, title: str, stage: str, label: str,
                rerun: bool) -> list[Path]:
    """Write job files and scripts; remove those of an earlier generation that are not rewritten."""
    written: list[Path] = []
    for job in jobs:
        write_text_atomic(job.jobfile, render_jobfile(job))
        write_text_atomic(job.script, render_script(job, p, title))
        os.chmod(job.script, 0o755 & ~_umask())
        written += [job.jobfile, job.script]
    keep = [f.name for f in written]
    for f in stale_files(layout, stage, label, rerun, keep):
        f.unlink(missing_ok=True)
    return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------------
# submission

def dependency_plan(stage_jobs: Sequence[Sequence[JobFile]], after: Sequence[str],
                    needs: Mapping[str, Sequence[str]] | None = None
                    ) -> list[tuple[JobFile, list[JobFile], list[str]]]:
    """(job, the jobs it waits for, external ids it waits for).

    With ``needs`` (stage -> the stages it needs, :attr:`hetred.jobs.registry.StageSpec.needs`),
    a stage's jobs wait for every job of the stages it needs; a needed stage without jobs in this
    submission passes its wait on to the stages it needs in turn. Without ``needs``, each stage
    waits for every job of the previous stage that has jobs. A stage that waits for no job here
    waits for ``after``."""
    by_stage = {jobs[0].stage: list(jobs) for jobs in stage_jobs if jobs}
    plan = []
    prev: list[JobFile] = []

    def waits(stage: str, seen: set[str]) -> list[str]:
        out: list[str] = []
        for n in (needs or {}).get(stage, ()):
            if n in seen:
                continue
            seen.add(n)
            out += [n] if n in by_stage else waits(n, seen)
        return out

    for jobs in stage_jobs:
        if not jobs:
            continue
        if needs is None:
            deps = list(prev)
        else:
            names = set(waits(jobs[0].stage, set()))
            # a stage another waited-for stage already waits for (through its needs) is implied
            names = {n for n in names if not any(n in _closure(m, needs) for m in names if m != n)}
            deps = [j for st, js in by_stage.items() if st in names for j in js]
        for job in jobs:
            plan.append((job, list(deps), [] if deps else list(after)))
        prev = list(jobs)
    return plan


def _closure(stage: str, needs: Mapping[str, Sequence[str]]) -> set[str]:
    """Every stage ``stage`` needs, directly or through others."""
    out: set[str] = set()
    todo = list(needs.get(stage, ()))
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo.extend(needs.get(n, ()))
    return out


def sbatch_args(script: Path, dep_ids: Sequence[str]) -> list[str]:
    """``sbatch --parsable [--dependency=afterok:ID[:ID...] --kill-on-invalid-dep=yes] SCRIPT``
    (a job whose dependency can never be met, e.g. after a cancelled job, is removed instead of
    pending forever)."""
    args = ["sbatch", "--parsable"]
    if dep_ids:
        args += ["--dependency=afterok:" + ":".join(dep_ids), "--kill-on-invalid-dep=yes"]
    return args + [str(script)]


def dry_run_lines(stage_jobs: Sequence[Sequence[JobFile]], after: Sequence[str],
                  needs: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The exact sbatch commands ``--submit`` would run, job ids as shell variables."""
    out = []
    for job, deps, ext in dependency_plan(stage_jobs, after, needs):
        ids = [f"${d.shell_var}" for d in deps] + list(ext)
        out.append(f"{job.shell_var}=$({' '.join(sbatch_args(job.script, ids))})")
    return out


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _sbatch(args: list[str]) -> "subprocess.CompletedProcess[str]":
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise HetredError("sbatch not found: --submit needs Slurm on PATH (see scripts/slurm)") from None


def submit(layout: Layout, label: str, stage_jobs: Sequence[Sequence[JobFile]], after: Sequence[str],
           profile: str, runner: Runner = _sbatch,
           needs: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """``sbatch --parsable`` every script in order with its dependencies; record the ids in
    ``jobs_submitted`` (``jobs/submitted_{label}.json``, one entry per submission)."""
    ids: dict[str, str] = {}
    records: list[dict[str, Any]] = []
    try:
        for job, deps, ext in dependency_plan(stage_jobs, after, needs):
            dep_ids = [ids[d.name] for d in deps] + list(ext)
            args = sbatch_args(job.script, dep_ids)
            r = runner(args)
            if r.returncode != 0:
                msg = (r.stderr or r.stdout or "").strip().splitlines()
                raise HetredError(f"sbatch failed for {job.script}: {msg[-1] if msg else f'exit {r.returncode}'}")
            jobid = r.stdout.strip().split(";")[0]
            if not jobid.isdigit():
                raise HetredError(f"sbatch --parsable gave {r.stdout.strip()!r} for {job.script}")
            ids[job.name] = jobid
            records.append({"stage": job.stage, "name": job.name, "job_id": jobid,
                            "dependency": dep_ids, "script": str(job.script), "jobfile": str(job.jobfile),
                            "units": [u.uid for u in job.units], "sbatch": " ".join(args)})
    finally:
        if records:
            _record(layout, label, profile, records)
    return records


def _record(layout: Layout, label: str, profile: str, records: list[dict[str, Any]]) -> Path:
    path = layout.path("jobs_submitted", name=label)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {"label": label, "submissions": []}
    data.setdefault("submissions", []).append({
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile,
        "jobs": records})
    write_json_atomic(path, data)
    return path
