"""Run the demo: simulate, reduce stage by stage, check against the truth."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from hetred.demo import checks
from hetred.demo.result import DemoResult
from hetred.errors import HetredError
from hetred.layout import Layout
from hetred.sim import SkyVariation, simulate_archive

#: the stages the demo runs, in the order of the process: (name, function(result) -> products)
Stage = Callable[[DemoResult], list[str]]


#: the demo night's sky differs between amps in level and wavelength (hetred fullsky); no continuum
#: fibers: fixed in the IFU, they would be stars to the astrometry (the fiber-level exposure of the
#: fullsky demo stage and the stage tests have them)
DEMO_SKY = SkyVariation(continuum=(0, 0))


def _simulate(res: DemoResult, seed: int) -> list[str]:
    res.summary = simulate_archive(res.layout, scale="demo", seed=seed, overwrite=True, sky_variation=DEMO_SKY)
    return [str(p) for p in res.summary.tars]


def stage_names() -> list[str]:
    """The demo's stages after ``simulate``, in order."""
    return [name for name, _ in checks.STAGES]


def select_stages(names: list[str] | None) -> list[tuple[str, Stage]]:
    """The demo stages named (in the process order); None: all. Unknown names raise HetredError."""
    if names is None:
        return list(checks.STAGES)
    unknown = sorted(set(names) - set(stage_names()))
    if unknown:
        raise HetredError(f"demo: unknown stage(s) {', '.join(unknown)}; known: {', '.join(stage_names())}")
    return [(n, fn) for n, fn in checks.STAGES if n in names]


def run_demo(root: Path, seed: int = 0, stages: list[tuple[str, Stage]] | None = None,
             progress: Callable[[str], None] | None = None) -> DemoResult:
    """Simulate the demo night under ``root`` (raw/, red/, truth/) and run every stage
    (or ``stages``, see :func:`select_stages`).

    A stage that raises :class:`HetredError` is recorded as a failure and the demo goes on with
    the stages that do not need it.
    """
    root = Path(root)
    layout = Layout(root / "raw", root / "red", root / "truth")
    res = DemoResult(root=root, layout=layout, month="")
    plan = [("simulate", lambda r: _simulate(r, seed))] + (stages if stages is not None else checks.STAGES)
    for name, fn in plan:
        if progress is not None:
            progress(name)
        t0 = time.perf_counter()
        try:
            res.products[name] = fn(res)
        except HetredError as err:
            res.failures.append(f"{name}: {err}")
            res.seconds[name] = time.perf_counter() - t0
            continue
        res.seconds[name] = time.perf_counter() - t0
        if name == "simulate":
            assert res.summary is not None
            res.month = res.summary.nights[0][:6]
        res.checks.extend(checks.CHECKS.get(name, lambda r: [])(res))
    return res
