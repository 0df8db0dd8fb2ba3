"""The ``hetred`` command: one subcommand per stage of the process.

Every failure exits non-zero with one line ``hetred: error: ...`` (``-v`` adds the traceback
for unexpected errors).
"""
from __future__ import annotations

import importlib
import signal
import sys
import traceback

import click

from hetred._version import __version__
from hetred.config import load_config
from hetred.errors import HetredError

#: subcommand modules, in the order of the process; each defines ``command``
SUBCOMMANDS = ("tarlist", "bias", "bgmodel", "twical", "flat", "sci", "astrom", "throughput", "calfib", "detect",
               "continuum", "resmap", "fullsky", "h5", "spec2d", "report", "slurm_gen", "run", "simulate", "demo")

EXAMPLES = """
\b
Examples:
  hetred demo                                  # simulate a small night and reduce it
  hetred tarlist 202008                        # lists of the month's raw files
  hetred --raw /work/03946/hetdex/maverick --red /scratch/hetred tarlist 202008
  HETRED_RED=/scratch/hetred hetred tarlist 201701 --from-list 201701tarlist
  hetred --config hetred.toml tarlist 202008

\b
Code: each stage's help ends with its package (src/hetred/<stage>/run.py holds
its units); the whole map is docs/code.md.
"""

#: where each subcommand's code and documentation live (appended to its --help)
CODE = {
    "tarlist": ("src/hetred/lists/tarlist.py", "docs/stages/tarlist.md"),
    "bias": ("src/hetred/bias/ (run.py: the unit; masterbias.py: the arrays)", "docs/stages/bias.md"),
    "bgmodel": ("src/hetred/background/ (run.py: the unit; scattered.py, imgetgap.py: the models)",
                "docs/stages/bgmodel.md"),
    "flat": ("src/hetred/flat/ (run.py: the unit; pixelflat.py, defects.py)", "docs/stages/flat.md"),
    "twical": ("src/hetred/twical/ (run.py: reduce and combine; amp_to_amp.py; wavelength.py); "
               "src/hetred/fibers/ (trace, profile, extraction)", "docs/stages/twical.md"),
    "sci": ("src/hetred/sci/ (run.py: the unit; reduce.py, sky.py, multi.py); src/hetred/ccd/reduce.py",
            "docs/stages/sci.md"),
    "astrom": ("src/hetred/astrom/ (run.py: the unit; solve.py, stars.py, getoff.py, rotation.py, fibers.py)",
               "docs/stages/astrom.md"),
    "throughput": ("src/hetred/throughput/ (run.py: the unit; shot.py, starfit.py, psf.py, sedfit.py, response.py)",
                   "docs/stages/throughput.md"),
    "calfib": ("src/hetred/calfib/ (run.py: the unit; calibrate.py); src/hetred/io/fiberspec.py",
               "docs/stages/calfib.md"),
    "detect": ("src/hetred/detect/ (run.py: the unit; loading.py, search.py, measure.py, linefit.py, formats.py); "
               "src/hetred/_ext/detkern.pyx", "docs/stages/detect.md"),
    "continuum": ("src/hetred/detect/continuum.py (the unit and Karl's cs/ steps)", "docs/stages/detect.md"),
    "resmap": ("src/hetred/resmap/ (run.py: the unit; combine.py: imcmbext/imcmbchi; stream.py)",
               "docs/stages/resmap.md"),
    "fullsky": ("src/hetred/fullsky/ (run.py: the units; vred3.py: the algorithm; addsky.py; formats.py)",
                "docs/stages/fullsky.md"),
    "h5": ("src/hetred/h5/ (run.py: the units; shot.py, survey.py, fiberindex.py, detect.py; schema.py: "
           "h5tools' tables)", "docs/stages/h5.md"),
    "spec2d": ("src/hetred/h5/spec2d.py (units in src/hetred/h5/run.py)", "docs/stages/spec2d.md"),
    "report": ("src/hetred/report/ (run.py: the units; detplot.py: a detection's page; db.py: sqlite; pages.py, "
               "shotpage.py, html.py: the HTML; status.py, calib.py, shotdata.py: what the pages read)",
               "docs/stages/report.md"),
    "slurm-gen": ("src/hetred/jobs/ (registry.py: stages and order; slurm.py)", "docs/operations.md"),
    "run": ("src/hetred/jobs/ (registry.py, runner.py)", "docs/operations.md"),
    "simulate": ("src/hetred/sim/", "docs/simulator.md"),
    "demo": ("src/hetred/demo/ (runner.py; checks*.py)", "docs/demo.md"),
}


def _add_code_lines(cmd: click.Command) -> None:
    where = CODE.get(cmd.name or "")
    if where is not None:
        cmd.epilog = (cmd.epilog or "").rstrip() + f"\n\n\b\nCode: {where[0]}\nDocs: {where[1]}\n"



@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.version_option(__version__, "--version", prog_name="hetred")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="HETRED_CONFIG",
              help="TOML settings file ([paths] raw/red, [stages.<name>]).")
@click.option("--raw", type=click.Path(file_okay=False), help="Raw archive root [env HETRED_RAW].")
@click.option("--red", type=click.Path(file_okay=False), help="Reduction root [env HETRED_RED].")
@click.option("-v", "--verbose", count=True, help="More output (-vv for tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and results.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, raw: str | None, red: str | None,
        verbose: int, quiet: bool) -> None:
    """hetred: reduce HETDEX / VIRUS data, one subcommand per stage of Karl's process.

    Paths come from --raw/--red, else HETRED_RAW/HETRED_RED, else the config file,
    else ./raw and ./red.
    """
    ctx.obj = load_config(config_file, raw=raw, red=red, verbosity=-1 if quiet else verbose)


for _name in SUBCOMMANDS:
    _cmd = importlib.import_module(f"hetred.cli.{_name}").command
    _add_code_lines(_cmd)
    cli.add_command(_cmd)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the group, turn every failure into one line and exit code."""
    verbose = any(a in ("-v", "-vv", "--verbose") for a in (argv or sys.argv[1:]))
    # Slurm ends a job (time limit, scancel) with SIGTERM: unwind, so that the running unit leaves a
    # failed marker and no temporary files (hetred.jobs.units.run_unit, hetred.io.atomic)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        rv = cli.main(args=argv, prog_name="hetred", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hetred: aborted", err=True)
        sys.exit(130)
    except click.UsageError as err:      # a bad option or value: one line, and where the help is
        where = f" (see '{err.ctx.command_path} -h')" if err.ctx is not None else ""
        click.echo(f"hetred: error: {err.format_message()}{where}", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except HetredError as err:
        click.echo(f"hetred: error: {err}", err=True)
        sys.exit(1)
    except OSError as err:      # the tree or the disk, outside a unit (units report their own)
        from hetred.jobs.units import describe_failure

        if verbose:
            traceback.print_exc()
        click.echo(f"hetred: error: {describe_failure(err)}", err=True)
        sys.exit(1)
    except Exception as err:  # an unexpected failure still ends with one clear line
        if verbose:
            traceback.print_exc()
        click.echo(f"hetred: internal error: {err.__class__.__name__}: {err} (run with -v for the traceback)",
                   err=True)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)
