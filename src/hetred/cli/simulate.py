"""``hetred simulate``: write a realistic raw VIRUS archive (and its truth, kept apart)."""
from __future__ import annotations

from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from hetred.cli.common import console, err_console, get_config
from hetred.errors import HetredError
from hetred.layout import Layout

#: the presets of hetred.sim.presets (kept here so that `hetred` starts without importing the
#: simulator; tests/sim/test_archive.py checks that the two agree)
SCALES = ("demo", "full", "month")
#: hetred.sim.families.CHOICES (same reason; the same test checks them)
CHOICES = ("classic", "poly", "edge", "piecewise", "sine", "mixed")

EXAMPLES = """
\b
Examples:
  hetred --raw sim/raw simulate --truth sim/truth --scale demo      # 2 IFUs, one night (< 90 s)
  hetred --raw sim/raw simulate 20180101-20180105 --truth sim/truth --scale month
  hetred --raw sim/raw simulate 20180110 --truth sim/truth --ifuslots 053,063 --zro 11 --shots 2
  hetred --raw sim/raw simulate --truth sim/truth --scale full --dry-run   # 78 IFUs: the plan only
  hetred --raw sim/raw simulate --truth sim/truth --solar sun_use.dat --seed 7
  hetred --raw sim/raw simulate --truth sim/truth --optics-family edge   # edge-steepening optics
  hetred --raw sim/raw simulate --truth sim/truth --sky-variation   # sky level/wavelength per amp
"""


@click.command("simulate", epilog=EXAMPLES)
@click.argument("nights", required=False)
@click.option("--truth", "truth", type=click.Path(file_okay=False, path_type=Path),
              help="Truth root, outside the raw root [default: 'truth' beside the raw root].")
@click.option("--scale", type=click.Choice(SCALES), default="demo", show_default=True,
              help="Preset: demo (1 night, 2 IFUs), month (6 nights, 2 IFUs), full (1 night, 78 IFUs).")
@click.option("--ifuslots", help="IFU slots, e.g. 053,063 (overrides the preset).")
@click.option("--n-ifus", type=click.IntRange(1, 78), help="Number of IFUs (the most central first).")
@click.option("--zro", type=click.IntRange(0), help="Bias frames per night.")
@click.option("--drk", type=click.IntRange(0), help="Dark frames (360 s) per night.")
@click.option("--flt", type=click.IntRange(0), help="Lamp flats per night.")
@click.option("--hg", type=click.IntRange(0), help="Hg arcs (OBJECT hg) per night.")
@click.option("--cd", type=click.IntRange(0), help="Cd arcs (OBJECT cd-a) per night.")
@click.option("--twi", type=click.IntRange(0), help="Twilight flats per night.")
@click.option("--shots", type=click.IntRange(0), help="Science shots (3 dithers each) per night.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--solar", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Two-column solar spectrum for the twilights (e.g. sun_use.dat).")
@click.option("--optics-family", type=click.Choice(CHOICES), default="classic", show_default=True,
              help="How wavelength, trace, profile and LSF vary along the slit (docs/simulator.md): "
                   "classic polynomials, or poly, edge, piecewise, sine; mixed: one per amp from the seed.")
@click.option("--sky-variation", is_flag=True,
              help="The sky of each amp differs (level 0.9-1.1, 0-10 continuum fibers) and its wavelengths "
                   "are off by W0 +-0.5 A, W1 +-0.3e-3 (all its light, sources too: Karl's convention, which "
                   "hetred detect corrects), as hetred fullsky measures it; recorded in the shot truth "
                   "(docs/simulator_sky.md).")
@click.option("--overwrite", is_flag=True, help="Replace tars that already exist.")
@click.option("--dry-run", is_flag=True, help="Print the plan (observations, exposures, members); write nothing.")
@click.pass_context
def command(ctx: click.Context, nights: str | None, truth: Path | None, scale: str, ifuslots: str | None,
            n_ifus: int | None, zro, drk, flt, hg, cd, twi, shots, seed: int, solar: Path | None,
            optics_family: str, sky_variation: bool, overwrite: bool, dry_run: bool) -> None:
    """Simulate raw VIRUS nights: tars in the real layout under the raw root, truth elsewhere.

    NIGHTS is YYYYMMDD, a range YYYYMMDD-YYYYMMDD or a comma list (default: the preset's).
    Frames are written in readout orientation with the real header keywords; the truth tree
    (traces, wavelengths, fiber-to-fiber, pixel flat, bias levels, sources) goes to --truth.
    """
    from hetred.sim.archive import check_roots, plan_archive, simulate_archive
    from hetred.sim.focalplane import parse_slot_list

    cfg = get_config(ctx)
    try:
        slots = parse_slot_list(ifuslots) if ifuslots else None
    except ValueError as err:
        raise HetredError(str(err)) from None
    frames = {k: v for k, v in dict(zro=zro, drk=drk, flt=flt, hg=hg, cd=cd, twi=twi).items() if v is not None}
    from hetred.sim.skyvar import SkyVariation

    plan = plan_archive(nights, slots, n_ifus, frames, shots, seed, scale, solar, optics_family,
                        SkyVariation() if sky_variation else None)
    truth_root = truth if truth is not None else Path(cfg.raw).resolve().parent / "truth"
    layout = Layout(cfg.raw, cfg.red, truth_root)
    check_roots(layout)
    if dry_run:
        for line in plan.describe():
            console.print(line, highlight=False, soft_wrap=True)
        console.print(f"raw root {layout.raw}, truth root {layout.truth} (dry run: nothing written)",
                      highlight=False, soft_wrap=True)
        return
    quiet = cfg.verbosity < 0
    show = not quiet and err_console.is_terminal
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not show) as progress:
        task = progress.add_task("amp frames", total=plan.n_members)

        def report(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, description=f"amp frames {label}")

        summary = simulate_archive(layout, progress=report, overwrite=overwrite, plan=plan)
    if not quiet:
        _summary(summary)


def _summary(s) -> None:
    table = Table(title=f"hetred simulate ({s.scale}, seed {s.seed})")
    table.add_column("type")
    table.add_column("members", justify="right")
    table.add_column("s / frame", justify="right")
    mean = s.mean_frame_seconds()
    for kind in ("zro", "drk", "flt", "cmp", "twi", "sci"):
        if kind in s.members_by_kind:
            table.add_row(kind, str(s.members_by_kind[kind]), f"{mean.get(kind, 0):.3f}")
    table.add_row("all", str(s.n_members), "", end_section=True)
    table.add_row("nights", str(len(s.nights)), "")
    slots = ",".join(f"{i:03d}" for i in s.ifuslots)
    table.add_row("IFU slots", slots if len(s.ifuslots) <= 6 else f"{len(s.ifuslots)} ({slots[:23]}...)", "")
    table.add_row("tars", str(s.n_tars), "")
    table.add_row("written", f"{s.bytes_written / 2**30:.2f} GB", "")
    table.add_row("time", f"{s.seconds:.1f} s", f"amp models {s.model_seconds:.1f} s")
    console.print(table)
    console.print(f"raw archive: {s.raw}", highlight=False)
    console.print(f"truth:       {s.truth}", highlight=False)
    if s.shots:
        console.print("science shots: " + " ".join(s.shots), highlight=False)
