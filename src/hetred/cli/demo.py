"""``hetred demo [DIR]``: a simulated night reduced end to end, checked against its truth."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from hetred.cli.common import console, err_console, get_config
from hetred.errors import HetredError

EXAMPLES = """
\b
Examples:
  hetred demo                       # into ./hetred-demo
  hetred demo /scratch/me/demo --seed 3
  hetred -q demo && echo all checks passed
  hetred demo --stages tarlist,bias,bgmodel   # stop after the background models
"""


@click.command("demo", epilog=EXAMPLES)
@click.argument("directory", required=False, default="hetred-demo",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Simulator seed.")
@click.option("--stages", default=None, metavar="LIST",
              help="Comma list of the stages to run after simulate (each needs the ones before it); "
                   "default: all of them, in the process order (a wrong name lists them).")
@click.pass_context
def command(ctx: click.Context, directory: Path, seed: int, stages: str | None) -> None:
    """Simulate the demo night (2 IFUs) into DIRECTORY and run every stage on it, from the
    tarlists and master biases to the last products, each checked against the truth.

    DIRECTORY gets raw/ (the simulated archive), truth/ (kept apart, read only by the checks) and
    red/ (the products). A table compares each product with the truth; the command exits 1 when
    a check fails.
    """
    from hetred.demo import run_demo
    from hetred.demo.runner import select_stages

    cfg = get_config(ctx)
    quiet = cfg.verbosity < 0

    def say(stage: str) -> None:
        if not quiet:
            err_console.print(f"[bold]demo:[/bold] {stage} ...")

    chosen = select_stages([x.strip() for x in stages.split(",") if x.strip()] if stages else None)
    res = run_demo(directory, seed=seed, stages=chosen, progress=say)
    table = Table(title=f"hetred demo: products vs truth ({directory})")
    for col, just in (("stage", "left"), ("check", "left"), ("value", "right"), ("tolerance", "left"),
                      ("result", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for c in res.checks:
        table.add_row(c.stage, c.name, f"{c.value:.4g} {c.unit}".strip(), c.tolerance,
                      "[green]pass[/green]" if c.passed else "[red]FAIL[/red]")
    console.print(table)
    if not quiet:
        times = Table(title="time per stage")
        times.add_column("stage")
        times.add_column("seconds", justify="right")
        for name, sec in res.seconds.items():
            times.add_row(name, f"{sec:.1f}")
        console.print(times)
        console.print(f"raw archive: {res.layout.raw}\ntruth:       {res.layout.truth}\n"
                      f"products:    {res.layout.red}", highlight=False)
        for name, paths in res.products.items():
            pngs = [p for p in paths if p.endswith(".png")]
            for p in pngs:
                console.print(f"QA plot ({name}): {p}", highlight=False)
    for night in (res.extra.get("report") or {}):
        page = res.layout.path("web_page", night=night, name="index.html")
        if page.exists():
            console.print(f"night page: {page}", highlight=False, soft_wrap=True)
    for f in res.failures:
        err_console.print(f"[red]stage failed:[/red] {f}", highlight=False)
    if not res.passed:
        n_bad = sum(not c.passed for c in res.checks) + len(res.failures)
        raise HetredError(f"demo: {n_bad} check(s) or stage(s) failed (see the table above)")
