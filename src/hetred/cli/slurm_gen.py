"""``hetred slurm-gen STAGES MONTH``: launcher job files and Slurm scripts (docs/operations.md)."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from hetred.cli.common import check_stage_settings, console, get_config, parse_slot
from hetred.errors import HetredError

EXAMPLES = """
\b
Examples:
  hetred slurm-gen bias 202008 --profile stampede3                # write job files + scripts
  hetred slurm-gen all 202008 --profile stampede3 --submit        # bias -> ... chained, submitted
  hetred slurm-gen twical 202008 --submit --after 123456          # wait for job 123456 first
  hetred slurm-gen bias,bgmodel 202008 --rerun-failed --submit    # only failed or missing units
  hetred slurm-gen bias 201701 --from-list 201701tarlist --dry-run
  hetred slurm-gen all --night 20180110 --profile local --queue debug --units-per-job 8
\b
STAGES: all, or a comma list of bias, bgmodel, twical (= twical-reduce,
twical-combine, twical-a2a), flat, sci (when installed). Job files go to
RED/jobs/STAGE/STAGE_LABEL_NNN with a .slurm script beside each; LABEL is the
month, night or shot. --dry-run writes nothing: it prints the summary, the
files it would write (-v: their text) and the sbatch lines. The account
comes from --account, $HETRED_ACCOUNT or [slurm] account in the config file
([slurm] also sets profile, queue, cores_per_node, tasks_per_node, max_wall,
min_wall, units_per_task, safety, hetred = the command, setup = shell lines).
"""


@click.command("slurm-gen", epilog=EXAMPLES)
@click.argument("stages")
@click.argument("month", required=False)
@click.option("--night", metavar="YYYYMMDD", help="Only this night (per-exposure stages); month = its month.")
@click.option("--shot", metavar="DATEvOBS", help="Only this shot (per-exposure stages); month = its month.")
@click.option("--from-list", "from_list", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Plan from this tarlist (as hetred tarlist --from-list); written as the month's "
                   "tarlist unless --dry-run.")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT", help="Only these IFU slots (repeatable).")
@click.option("--profile", type=click.Choice(("stampede3", "lonestar6", "frontera", "local")),
              help="Machine profile; default [slurm] profile, else $TACC_SYSTEM, else local.")
@click.option("--units-per-job", type=int, help="Units (lines) per job file; default tasks per node x units_per_task.")
@click.option("--account", help="Slurm account (-A); default $HETRED_ACCOUNT, else [slurm] account, else none.")
@click.option("--queue", help="Slurm partition (-p); default the profile's / [slurm] queue.")
@click.option("--submit", is_flag=True, help="sbatch --parsable every script, stages chained with afterok.")
@click.option("--dry-run", is_flag=True, help="Write and submit nothing; print what would be done.")
@click.option("--rerun-failed", is_flag=True,
              help="Only units not done or empty (failed, missing, or stale: inputs changed), and the "
                   "units that depend on what those rewrite.")
@click.option("--after", "after", multiple=True, metavar="JOBID",
              help="The first stage waits for this Slurm job (afterok; repeatable).")
@click.pass_context
def command(ctx: click.Context, stages: str, month: str | None, night: str | None, shot: str | None,
            from_list: Path | None, ifuslots: tuple[str, ...], profile: str | None,
            units_per_job: int | None, account: str | None, queue: str | None, submit: bool,
            dry_run: bool, rerun_failed: bool, after: tuple[str, ...]) -> None:
    """Write launcher job files and Slurm scripts for STAGES of MONTH (YYYYMM).

    One job-file line per unit of work (the same units as the stage's own command, each line
    a hetred command that runs exactly that unit and records its outcome in the unit's
    done/failed marker), chunked into job files with an rjob-style .slurm script each (TACC
    launcher, or a built-in runner on any Slurm). With --submit the scripts are submitted,
    each stage waiting (afterok) for every job of the one before.
    """
    from hetred.jobs import registry, runner, slurm
    from hetred.layout import Layout

    cfg = get_config(ctx)
    layout = Layout(cfg.raw.resolve(), cfg.red.resolve())   # scripts and lines name absolute paths
    root = ctx.find_root()
    config_file = root.params.get("config_file")
    slurm_cfg = slurm.read_slurm_config(config_file)
    prof = slurm.settings(profile or slurm.default_profile_name(slurm_cfg), slurm_cfg, account, queue)
    specs = registry.resolve(stages)
    check_stage_settings(cfg, specs)
    if units_per_job is not None and units_per_job < 1:
        raise HetredError("--units-per-job must be at least 1")
    for a in after:
        if not a.isdigit():
            raise HetredError(f"--after takes a Slurm job id (digits), got {a!r}")
    slots = tuple(sorted({parse_slot(s) for s in ifuslots}))

    month, entries, tarlist_note = runner.scope_entries(layout, month, night, shot, from_list, dry_run)
    scope = registry.Scope(layout, month, entries, night=night, shot=shot, ifuslots=slots,
                           stage_settings=cfg.stages)
    roots = slurm.Roots(layout.raw, layout.red,
                        Path(config_file).resolve() if config_file else None)
    title = f"hetred slurm-gen {stages} {scope.label}" + (" --rerun-failed" if rerun_failed else "")

    rows, stage_jobs = [], []
    reruns = runner.Reruns()
    rerun_groups: set[str] = set()
    for spec in specs:
        units = registry.enumerate_units(spec, scope)
        states = [runner.unit_state(layout, u) for u in units]
        flags = [False] * len(units)
        if rerun_failed:
            # not done or empty (failed, missing, stale), or depending on what a rerun rewrites
            keep = [st.status not in ("done", "empty") or reruns.affects(layout, u)
                    for u, st in zip(units, states)]
            if spec.aggregate and units and spec.group in rerun_groups:
                keep, flags = [True] * len(units), [True] * len(units)   # its inputs are being redone
            sel = [i for i, k in enumerate(keep) if k]
            todo, flags = [units[i] for i in sel], [flags[i] for i in sel]
            for u in todo:
                reruns.add(layout, spec, u)
            if todo:
                rerun_groups.add(spec.group)
        else:
            todo = units
        if spec.missing:
            todo, flags, scope.notes[spec.name] = [], [], f"{spec.missing}: no job files"
        jobs = slurm.plan_stage(layout, spec, todo, prof, roots, scope.label, units_per_job,
                                rerun=rerun_failed, overwrite=flags)
        stage_jobs.append(jobs)
        counts = {k: sum(st.status == k for st in states) for k in ("done", "empty", "stale")}
        rows.append((spec, len(units), counts, len(todo), jobs, slurm.stage_timing(layout, spec),
                     scope.notes.get(spec.name, "")))
    needs = {s.name: s.needs for s in registry.stages()}

    if cfg.verbosity >= 0:
        _summary(title, prof, rows)
        if tarlist_note:
            console.print(tarlist_note, highlight=False)

    if dry_run:
        for jobs in stage_jobs:
            for job in jobs:
                click.echo(f"would write {job.jobfile} ({len(job.lines)} lines) and {job.script.name}")
                shown = job.lines if cfg.verbosity > 0 else job.lines[:1]
                for line in shown:
                    click.echo(f"  {line}")
                if len(shown) < len(job.lines):
                    click.echo(f"  ... {len(job.lines) - len(shown)} more (-v shows all lines and the script)")
                if cfg.verbosity > 0:
                    click.echo(slurm.render_script(job, prof, title))
        lines = slurm.dry_run_lines(stage_jobs, after, needs)
        if lines:
            console.print("sbatch lines (--submit):", highlight=False)
            for line in lines:
                click.echo(line)
        click.echo("dry run: nothing written")
        return

    nfiles = 0
    for spec, jobs in zip(specs, stage_jobs):
        nfiles += len(slurm.write_stage(layout, jobs, prof, title, spec.name, scope.label, rerun_failed))
    console.print(f"wrote {nfiles} files (job files and their .slurm scripts)", highlight=False)
    if not submit:
        for jobs in stage_jobs:
            for job in jobs:
                click.echo(f"  {job.script}")
        if any(stage_jobs):
            console.print("submit with --submit (or sbatch each script in stage order)", highlight=False)
        return
    if not any(stage_jobs):
        console.print("nothing to submit", highlight=False)
        return
    records = slurm.submit(layout, scope.label, stage_jobs, after, prof.name, needs=needs)
    for r in records:
        dep = f" after {':'.join(r['dependency'])}" if r["dependency"] else ""
        click.echo(f"submitted {r['name']}: {r['job_id']}{dep}")
    console.print(f"job ids recorded in {layout.path('jobs_submitted', name=scope.label)}", highlight=False)


def _summary(title: str, prof, rows) -> None:
    acct = prof.account or "none"
    table = Table(title=f"{title}\n{prof.name}: {prof.tasks} tasks/node, queue {prof.queue or 'default'}, "
                        f"account {acct}",
                  caption="empty: nothing to do in the data; stale: done or empty once, inputs changed since "
                          "(redone); s/unit: median of (n) done markers, (0): the stage's default")
    for col, just in (("stage", "left"), ("units", "right"), ("done", "right"), ("empty", "right"),
                      ("stale", "right"), ("to run", "right"), ("jobs", "right"), ("tasks", "right"),
                      ("s/unit", "right"), ("-t", "left")):
        table.add_column(col, justify=just, no_wrap=True)
    notes = []
    for spec, n, counts, ntodo, jobs, timing, note in rows:
        walls = sorted({j.wall for j in jobs})
        tasks = sorted({j.ntasks for j in jobs})
        table.add_row(spec.name, str(n), str(counts["done"]), str(counts["empty"]), str(counts["stale"]),
                      str(ntodo), str(len(jobs)),
                      "-" if not tasks else "-".join(map(str, (tasks[0], tasks[-1]) if len(tasks) > 1 else tasks)),
                      f"{timing.seconds:.0f} ({timing.measured})", "-" if not walls else walls[-1])
        if note:
            notes.append(f"{spec.name}: {note}")
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)
