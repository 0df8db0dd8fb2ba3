"""The order of the process is declared once (StageSpec.needs in hetred.jobs.registry) and used
by hetred run, hetred slurm-gen and the demo (issue 11 point 5.1)."""
from __future__ import annotations

from pathlib import Path

import pytest

from hetred.errors import HetredError
from hetred.jobs import registry, slurm
from hetred.jobs.registry import StageSpec


def _names(specs) -> list[str]:
    return [s.name for s in specs]


def test_every_stage_comes_after_the_stages_it_needs():
    order = _names(registry.stages())
    for spec in registry.stages():
        for need in spec.needs:
            assert need in order, (spec.name, need)
            assert order.index(need) < order.index(spec.name), (spec.name, need)
    # the pixel flat is made before the twilights are reduced with it
    assert order.index("flat") < order.index("twical-reduce")
    assert order[:3] == ["bias", "bgmodel", "flat"]


def test_resolve_keeps_the_process_order_whatever_the_user_wrote():
    assert _names(registry.resolve("twical,flat")) == ["flat", "twical-reduce", "twical-combine", "twical-a2a"]
    assert _names(registry.resolve("all")) == _names(registry.stages())


def test_process_order_sorts_by_needs_and_rejects_circles():
    def spec(name, *needs):
        return StageSpec(name, name, lambda scope: [], 1.0, needs=needs)
    got = registry.process_order([spec("c", "b"), spec("a"), spec("b", "a"), spec("d", "zz")])
    assert _names(got) == ["a", "b", "c", "d"]          # a need outside the list is ignored
    with pytest.raises(HetredError, match="circle"):
        registry.process_order([spec("a", "b"), spec("b", "a")])
    assert registry.requires(spec("x", "c"), [spec("a"), spec("b", "a"), spec("c", "b")]) == ["a", "b", "c"]


def test_demo_stages_come_from_the_registry():
    from hetred.demo.runner import stage_names

    assert stage_names() == ["tarlist", *registry.group_order()]
    assert stage_names().index("flat") < stage_names().index("twical")


def _job(stage: str, k: int = 1) -> slurm.JobFile:
    return slurm.JobFile(stage=stage, name=f"{stage}_201801_{k:03d}", units=[], lines=[],
                         jobfile=Path(f"/j/{stage}_{k}"), script=Path(f"/j/{stage}_{k}.slurm"),
                         ntasks=1, wall="00:10:00", wall_note="")


def test_afterok_follows_the_declared_needs():
    needs = {s.name: s.needs for s in registry.stages()}
    jobs = [[_job("bias")], [_job("bgmodel"), _job("bgmodel", 2)], [_job("flat")], [_job("twical-reduce")],
            [_job("twical-combine")], [_job("twical-a2a")], [_job("sci")]]
    plan = {j.name: ([d.name for d in deps], ext) for j, deps, ext in slurm.dependency_plan(jobs, ["77"], needs)}
    assert plan["bias_201801_001"] == ([], ["77"])
    assert plan["bgmodel_201801_001"] == (["bias_201801_001"], [])
    assert plan["flat_201801_001"] == (["bias_201801_001"], [])          # beside bgmodel, not after it
    assert plan["twical-reduce_201801_001"] == (
        ["bgmodel_201801_001", "bgmodel_201801_002", "flat_201801_001"], [])
    assert plan["twical-a2a_201801_001"] == (["twical-combine_201801_001"], [])
    assert plan["sci_201801_001"] == (["twical-a2a_201801_001"], [])
    # a needed stage without jobs passes its wait on: twical alone waits for --after
    plan = slurm.dependency_plan([[_job("twical-reduce")], [_job("twical-combine")]], ["77"], needs)
    assert [(j.name, [d.name for d in deps], ext) for j, deps, ext in plan] == [
        ("twical-reduce_201801_001", [], ["77"]), ("twical-combine_201801_001", ["twical-reduce_201801_001"], [])]
    plan = slurm.dependency_plan([[_job("flat")], [_job("sci")]], [], needs)
    assert [d.name for d in plan[1][1]] == ["flat_201801_001"]
