"""``hetred spec2d (MONTH | --shot DATEvOBS | --merge)``: step 19, get_spec2D's cut-outs and
spectra of the detections (docs/stages/spec2d.md)."""
from __future__ import annotations

import click

from hetred.cli.common import check_month, console, dry_run_state, get_config, stage_entries
from hetred.cli.h5 import _common, _finish, _override, _run_one, _settings
from hetred.errors import HetredError
from hetred.jobs.units import UnitResult, run_unit

EXAMPLES = """
\b
Examples:
  hetred spec2d --shot 20180110v007          # im2D_20180110007.h5 of one shot
  hetred spec2d 201801                       # every science shot of the month
  hetred spec2d --merge                      # every im2D file into merged_im2D.h5
\b
Needs the shot file (hetred h5 shot) and a detect file (hetred h5 detect: the
merged release file, else the shot's month). Cut-out size: [stages.h5]
spec2d_width (100 columns) and spec2d_height (9 rows), get_spec2D's -dx/-dy.
"""


@click.command("spec2d", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--merge", is_flag=True, help="Merge every shot's im2D file into merged_im2D.h5.")
@_common
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, merge: bool, release, schema, compress,
            no_compress, overwrite: bool, dry_run: bool) -> None:
    """2-D cut-outs around each detection (its fibers' clean_image along the trace, weighted),
    its 1-D spectrum and (empty) photometric image: im2D_SHOTID.h5 per shot, or --merge."""
    from hetred.h5.run import month_of_shot, run_spec2d, run_spec2d_merge, shot_units
    from hetred.h5.spec2d import STAGE, STAGE_MERGE

    st = _settings(ctx, **_override(release, schema, compress, no_compress))
    cfg = get_config(ctx)
    layout = cfg.layout
    if sum(x is not None and x is not False for x in (month, shot, merge or None)) != 1:
        raise HetredError("give one of MONTH, --shot DATEvOBS or --merge")
    if merge:
        _run_one(ctx, STAGE_MERGE, st.release, lambda: run_spec2d_merge(layout, st), overwrite, dry_run,
                 str(layout.path("spec2d_merged", name=st.release)), "hetred spec2d --merge", ("shots", "detections"))
        return
    if month is not None:
        check_month(month)
    entries = stage_entries(layout, month, dry_run) if month is not None else None
    units = shot_units(layout, month=month, shot=shot, entries=entries)
    if not units:
        console.print(f"no science shot for {month} in the tarlist: nothing to do", highlight=False)
        return
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; month {month_of_shot(u.unit)}")
        click.echo("dry run: nothing written")
        return
    results: list[UnitResult] = []
    for u in units:
        results.append(run_unit(layout, STAGE, u.unit, lambda d=u.unit: run_spec2d(layout, d, st),
                                overwrite=overwrite))
    _finish(ctx, results, "hetred spec2d", ("detections",))
