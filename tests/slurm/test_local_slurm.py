"""A simulated month's bias -> bgmodel -> twical chain on a real Slurm (issue 7).

Needs a Slurm that takes jobs: ``scripts/slurm/local-cluster.sh start`` brings up a one-node
one (``.ci/run`` does it); without one the test skips, naming why. The scenario:

1. simulate a one-night month with one IFU slot and corrupt its LL twilight frame (a truncated
   FITS member in the tar): the LL twilight background must fail (its one frame unreadable) and
   the LL twilight reduction must fail with one line naming the member;
2. ``hetred slurm-gen bias,bgmodel,twical MONTH --profile local --queue P --submit``; while
   the twical-reduce job runs (at least one of its units finished), ``scancel`` it and the jobs
   waiting for it: a job killed mid-way;
3. every bias and bgmodel unit ended (done, or failed with its reason); stages ran in order
   (markers' start/end times and ``sacct -c``, the job-completion log); ``--rerun-failed
   --dry-run`` lists exactly the units that are not done (plus nothing else), and writes nothing;
4. repair the frame, ``--rerun-failed --submit``: the month completes. Every unit is done except
   the four ``bri`` background units (a one-night simulation has no bright-time frames: they are
   empty, "no bri frames", not failed); every product exists once and reads back; no temporary
   files are left; the amp-to-amp table covers all four amps.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

MONTH, NIGHT, SLOT, BAD_AMP = "201801", "20180110", 53, "LL"
STAGES = "bias,bgmodel,twical"
ORDER = ("bias", "bgmodel", "twical-reduce", "twical-combine", "twical-a2a")
WAIT_S = 240          #: per submission; a pass takes ~1-2 min on 2 cores


# ------------------------------------------------------------------------------------------------
# the cluster

def _run(args: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def slurm_partition() -> str:
    """A partition with an idle (or partly used) node, or skip saying why there is none."""
    hint = "start the one-node test cluster with scripts/slurm/local-cluster.sh start"
    if shutil.which("sbatch") is None:
        pytest.skip(f"sbatch is not on PATH: no Slurm on this machine ({hint})")
    r = _run(["sinfo", "-h", "-N", "-o", "%P %t"], timeout=30)
    if r.returncode != 0:
        pytest.skip(f"sinfo failed: Slurm is installed but not running ({(r.stderr or r.stdout).strip()}; {hint})")
    rows = [line.split() for line in r.stdout.splitlines() if len(line.split()) == 2]
    for want_default in (True, False):
        for part, state in rows:
            if state in ("idle", "mix") and part.endswith("*") == want_default:
                return part.rstrip("*")
    pytest.skip(f"sinfo shows no idle node: {r.stdout.strip() or 'no nodes'} ({hint})")


def active_jobs(ids: set[str]) -> dict[str, tuple[str, str]]:
    """Our jobs that Slurm still has pending or running: id -> (state, reason)."""
    r = _run(["squeue", "-h", "-o", "%i %T %r"], timeout=30)
    assert r.returncode == 0, f"squeue failed: {r.stderr.strip()}"
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if parts and parts[0] in ids:
            out[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return out


def wait_for(ids: set[str], what: str, on_poll=None) -> float:
    """Poll squeue until none of ``ids`` is pending or running; seconds waited. A job whose
    dependency can never be met, or the time limit, cancels our jobs and fails the test."""
    t0 = time.monotonic()
    while True:
        active = active_jobs(ids)
        if not active:
            return time.monotonic() - t0
        stuck = {j: s for j, s in active.items() if "DependencyNeverSatisfied" in s[1]}
        late = time.monotonic() - t0 > WAIT_S
        if stuck or late:
            _run(["scancel", *active])
            pytest.fail(f"{what}: " + (f"jobs whose dependency failed: {stuck}" if stuck else
                                       f"still pending/running after {WAIT_S} s: {active}"))
        if on_poll is not None:
            on_poll(active)
        time.sleep(1.0)


def sacct_spans(ids: set[str]) -> dict[str, tuple[str, datetime | None, datetime | None]]:
    """id -> (state, start, end) from the job-completion log (``sacct -c``; second resolution)."""
    r = _run(["sacct", "-c", "-X", "-P", "-n", "--format=JobID,State,Start,End"], timeout=30)
    out: dict[str, tuple[str, datetime | None, datetime | None]] = {}
    if r.returncode != 0:
        return out

    def when(text: str) -> datetime | None:
        try:   # local time as Slurm prints it
            return datetime.fromisoformat(text).astimezone(timezone.utc)
        except ValueError:
            return None

    for line in r.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 4 and parts[0] in ids:
            out[parts[0]] = (parts[1], when(parts[2]), when(parts[3]))
    return out


# ------------------------------------------------------------------------------------------------
# hetred

def hetred(layout, *args: str, verbose: bool = False) -> str:
    """Run the hetred of this Python (the jobs inherit its PATH through sbatch); its stdout."""
    bindir = Path(sys.executable).parent
    exe = bindir / "hetred"
    cmd = [str(exe) if exe.exists() else "hetred", *(["-v"] if verbose else []),
           "--raw", str(layout.raw), "--red", str(layout.red), *args]
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", COLUMNS="200")
    r = _run(cmd, timeout=180, env=env)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def submitted(layout, stdout: str) -> dict[str, list[str]]:
    """stage -> job ids of the last submission (jobs/submitted_MONTH.json), checked against
    slurm-gen --submit's "submitted NAME: ID" lines."""
    record = json.loads(layout.path("jobs_submitted", name=MONTH).read_text())["submissions"][-1]
    out: dict[str, list[str]] = {}
    for r in record["jobs"]:
        out.setdefault(r["stage"], []).append(r["job_id"])
    printed = set(re.findall(r"^submitted \S+: (\d+)", stdout, flags=re.M))
    assert printed == {j for js in out.values() for j in js}, (printed, record)
    return out


def markers(layout) -> dict[tuple[str, str], dict]:
    """(stage, unit) -> marker JSON (done, empty or failed) of the chain's stages."""
    out = {}
    for stage in ORDER:
        for key in ("marker_failed", "marker_empty", "marker_done"):   # done wins over a stale failed one
            for p in layout.glob(key, stage=stage):
                unit = p.name.rsplit(".", 2)[0]
                out[(stage, unit)] = json.loads(p.read_text())
    return out


def spans(layout, since: datetime) -> dict[str, tuple[datetime, datetime]]:
    """stage -> (earliest start, latest end) of its units that started after ``since``."""
    out: dict[str, tuple[datetime, datetime]] = {}
    for (stage, _), m in markers(layout).items():
        start = datetime.fromisoformat(m["started"])
        if start < since:
            continue
        end = start + timedelta(seconds=float(m["seconds"]))
        a, b = out.get(stage, (start, end))
        out[stage] = (min(a, start), max(b, end))
    return out


def assert_in_order(found: dict[str, tuple], what: str, slack: timedelta = timedelta(0)) -> None:
    stages = [s for s in ORDER if s in found]
    for a, b in zip(stages, stages[1:]):
        assert found[b][0] + slack >= found[a][1], (
            f"{what}: {b} started {found[b][0]} before {a} ended {found[a][1]}")


def job_spans(jobs: dict[str, list[str]], skip: set[str] = frozenset()) -> dict[str, tuple]:
    """stage -> (earliest start, latest end) of its jobs that ran, from ``sacct -c``; asserts the
    jobs' states are ``COMPLETED`` (or ``CANCELLED`` for those in ``skip`` / killed)."""
    acct = sacct_spans({j for js in jobs.values() for j in js})
    out = {}
    for stage, js in jobs.items():
        ran = [acct[j] for j in js if j in acct and j not in skip and acct[j][1] and acct[j][2]]
        if ran:
            out[stage] = (min(a[1] for a in ran), max(a[2] for a in ran))
    return out


def all_units(layout) -> dict[str, list]:
    """stage -> its units (hetred.jobs.registry: the same enumeration slurm-gen uses)."""
    from hetred.jobs import registry
    from hetred.lists.tarlist import month_entries

    scope = registry.Scope(layout, MONTH, month_entries(layout, MONTH))
    return {spec.name: registry.enumerate_units(spec, scope) for spec in registry.resolve(STAGES)}


def rerun_lines(stdout: str, layout) -> set[str]:
    """The units' arguments of every job-file line a ``-v --dry-run`` prints."""
    prefix = f"--red {layout.red} "
    out = set()
    for line in stdout.splitlines():
        if line.startswith("  ") and prefix in line:
            args = line.split(prefix, 1)[1]
            out.add(re.sub(r" --overwrite$", "", args))
    return out


def corrupt_member(tar: Path, suffix: str) -> tuple[bytes, str]:
    """Truncate the member ending in ``suffix`` to a third (in place); the original tar bytes."""
    original = tar.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(original)) as tf:
        items = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]
    hit = ""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        for m, data in items:
            if data is not None and m.name.endswith(suffix):
                data, m.size, hit = data[: len(data) // 3], len(data) // 3, m.name
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    assert hit, f"no member *{suffix} in {tar}"
    tar.write_bytes(buf.getvalue())
    return original, hit


# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """A one-night month: slot 053, 3 zro, 1 hg, 1 cd, 1 twi, 1 shot; its LL twilight corrupt."""
    from hetred.layout import Layout
    from hetred.sim import FrameCounts, simulate_archive

    partition = slurm_partition()
    root = tmp_path_factory.mktemp("slurm_month")
    layout = Layout(root / "raw", root / "red", root / "truth")
    simulate_archive(layout, nights=NIGHT, ifuslots=[SLOT], seed=1,
                     frames=FrameCounts(zro=3, drk=0, flt=0, hg=1, cd=1, twi=1, shots=1))
    suffix = f"_{SLOT:03d}{BAD_AMP}_twi.fits"
    tars = []
    for t in layout.glob("raw_tar", night=NIGHT):
        with tarfile.open(t) as tf:
            if any(n.endswith(suffix) for n in tf.getnames()):
                tars.append(t)
    assert len(tars) == 1
    original, member = corrupt_member(tars[0], suffix)
    return layout, partition, tars[0], original, member


def test_month_on_local_slurm(month):
    layout, partition, bad_tar, original, member = month
    common = ("slurm-gen", STAGES, MONTH, "--profile", "local", "--queue", partition)
    report: list[str] = []
    units, jobs = first_pass(layout, common, member, report)
    dry_run_lists_what_is_not_done(layout, common, units)

    tmp = bad_tar.with_name(bad_tar.name + ".repair")     # repair the frame
    tmp.write_bytes(original)
    os.replace(tmp, bad_tar)
    rerun_completes_the_month(layout, common, units, set().union(*jobs.values()), report)
    print("; ".join(report))


def first_pass(layout, common, member, report):
    """Submit the chain and kill the twical-reduce job mid-way; check what ran and its order."""
    t_submit = datetime.now(timezone.utc)
    out = hetred(layout, *common, "--submit")
    jobs = submitted(layout, out)
    assert [s for s in ORDER if s in jobs] == list(ORDER), out
    ids = {j for js in jobs.values() for j in js}

    killed: list[str] = []          # jobs cancelled
    never_ran: set[str] = set()     # of which those still pending then
    reduce_ids = set(jobs["twical-reduce"])
    after_reduce = set(jobs["twical-combine"]) | set(jobs["twical-a2a"])

    def kill_reduce_mid_way(active):
        if killed:
            return
        running = any(active.get(j, ("",))[0] == "RUNNING" for j in reduce_ids)
        started = any(True for k in ("marker_done", "marker_failed")
                      for _ in layout.glob(k, stage="twical-reduce"))
        if running and started:
            victims = sorted(j for j in active if j in reduce_ids | after_reduce)
            _run(["scancel", *victims])
            killed.extend(victims)
            never_ran.update(j for j in victims if active[j][0] == "PENDING")

    waited = wait_for(ids, "first submission", on_poll=kill_reduce_mid_way)
    report.append(f"first pass {waited:.0f} s, killed {killed or 'nothing (twical-reduce ended first)'}")

    units = all_units(layout)
    seen = markers(layout)
    for stage in ("bias", "bgmodel"):           # they ran to the end: every unit has a marker
        missing = [u.uid for u in units[stage] if (stage, u.uid) not in seen]
        assert not missing, f"{stage} units without a marker: {missing}"
    assert all(seen[("bias", u.uid)]["status"] == "done" for u in units["bias"])
    assert all(seen[("bgmodel", u.uid)]["status"] == "empty" for u in units["bgmodel"] if u.uid.endswith("_bri"))
    bad_bg = f"{MONTH}_{SLOT:03d}_{BAD_AMP}_twi"
    assert seen[("bgmodel", bad_bg)]["status"] == "failed"
    assert "unreadable" in seen[("bgmodel", bad_bg)]["reason"]    # bgmodel skips the frame, counts it
    for (stage, uid), m in seen.items():   # the reduction fails naming the file (unless killed first)
        if stage == "twical-reduce" and uid.endswith(f"_{SLOT:03d}_{BAD_AMP}") and m["status"] == "failed":
            assert member in m["reason"] or "interrupted" in m["reason"], m["reason"]
    if killed:
        done = [u for u in units["twical-reduce"]
                if seen.get(("twical-reduce", u.uid), {}).get("status") == "done"]
        assert len(done) < len(units["twical-reduce"]), "the twical-reduce job was killed after its last unit"
    assert_in_order(spans(layout, t_submit), "markers, first pass")
    acct = sacct_spans(ids)
    if acct:   # sacct -c reads the job-completion log (JobCompType=jobcomp/filetxt)
        assert {acct[j][0] for s in ("bias", "bgmodel") for j in jobs[s]} == {"COMPLETED"}, acct
        assert_in_order(job_spans(jobs, never_ran), "sacct -c, first pass")
    return units, jobs


def dry_run_lists_what_is_not_done(layout, common, units) -> None:
    """``--rerun-failed --dry-run`` lists exactly the units without a done marker (the a2a
    aggregate may be listed to be redone) and writes nothing."""
    jobs_dir = layout.path("jobs_submitted", name=MONTH).parent
    before = sorted(p.relative_to(jobs_dir) for p in jobs_dir.rglob("*"))
    out = hetred(layout, *common, "--rerun-failed", "--dry-run", verbose=True)
    assert "dry run: nothing written" in out
    assert sorted(p.relative_to(jobs_dir) for p in jobs_dir.rglob("*")) == before
    listed = rerun_lines(out, layout)
    seen = markers(layout)
    not_done = {" ".join(u.args) for us in units.values() for u in us
                if seen.get((u.stage, u.uid), {}).get("status") not in ("done", "empty")}
    bad = [u for u in units["bgmodel"] + units["twical-reduce"]
           if u.uid.endswith((f"_{SLOT:03d}_{BAD_AMP}_twi", f"_{SLOT:03d}_{BAD_AMP}"))]
    assert len(bad) == 2 and {" ".join(u.args) for u in bad} <= listed, (bad, out)
    a2a = {" ".join(u.args) for u in units["twical-a2a"]}
    assert listed - a2a == not_done - a2a, (sorted(listed ^ not_done), out)


def rerun_completes_the_month(layout, common, units, first_ids: set[str], report) -> None:
    """``--rerun-failed --submit`` after the repair: every unit done (but the bri ones), in
    order, every product once and readable, no temporary files, a2a over all four amps."""
    from astropy.io import fits

    t_rerun = datetime.now(timezone.utc)
    out = hetred(layout, *common, "--rerun-failed", "--submit")
    jobs = submitted(layout, out)
    ids = {j for js in jobs.values() for j in js}
    assert ids and not ids & first_ids
    waited = wait_for(ids, "--rerun-failed submission")
    report.append(f"rerun {waited:.0f} s ({', '.join(f'{s}: {len(j)} job(s)' for s, j in jobs.items())})")
    acct = sacct_spans(ids)
    if acct:
        assert {acct[j][0] for j in ids if j in acct} == {"COMPLETED"}, acct
        assert_in_order(job_spans(jobs), "sacct -c, rerun")
    assert_in_order(spans(layout, t_rerun), "markers, rerun")

    seen = markers(layout)
    for stage, us in units.items():
        for u in us:
            m = seen.get((stage, u.uid))
            assert m is not None, f"{stage} {u.uid}: no marker after the rerun"
            if stage == "bgmodel" and u.uid.endswith("_bri"):   # no bright-time frames simulated
                assert m["status"] == "empty" and "no bri frames" in m["reason"], m
            else:
                assert m["status"] == "done", f"{stage} {u.uid}: {m.get('reason')}"
                assert all(Path(p).exists() for p in m["outputs"]), m["outputs"]

    for key, n in {"masterbias": 4, "bias_frames": 4, "callib": 4, "amp_to_amp": 1}.items():
        got = list(layout.glob(key, month=MONTH))
        assert len(got) == n, (key, got)
    for kind, n in (("sci", 4), ("twi", 4), ("bri", 0)):
        assert len(list(layout.glob("bgmodel", month=MONTH, bgkind=kind))) == n, kind
    for p in {Path(p) for m in seen.values() if m["status"] == "done" for p in m["outputs"]}:
        if p.suffix == ".fits":
            with fits.open(p) as h:
                for hdu in h:
                    _ = hdu.data
    leftovers = list(Path(layout.red).rglob(".*.tmp"))
    assert not leftovers, leftovers
    a2a = seen[("twical-a2a", MONTH)]["counts"]["a2a"]
    assert sorted(a2a) == [f"{SLOT:03d}{a}" for a in ("LL", "LU", "RL", "RU")], a2a
