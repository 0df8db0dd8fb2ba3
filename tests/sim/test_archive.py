"""Archive-level behaviour: roots kept apart, determinism, the dry-run plan, the CLI."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest
from click.testing import CliRunner

from hetred.cli import cli
from hetred.errors import HetredError
from hetred.layout import Layout
from hetred.sim import FrameCounts, almanac, plan_archive, simulate_archive
from hetred.sim.focalplane import slot_entry
from hetred.sim.frame import AmpModel, exposure_context
from hetred.sim.plan import plan_night


def _member_bytes(tar, member) -> bytes:
    with tarfile.open(tar) as tf:
        return tf.extractfile(member).read()


def test_raw_root_holds_only_the_archive(sim_night):
    raw, truth = sim_night.layout.raw.resolve(), sim_night.layout.truth.resolve()
    assert raw not in truth.parents and truth not in raw.parents
    files = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file())
    assert files and all(f.endswith(".tar") and f.startswith(f"{sim_night.night}/virus/virus") or
                         f.startswith("catalogs/") and f.endswith(".ifustars") or
                         f == f"fplane/fplane_{sim_night.night}.txt" for f in files), files
    assert not any("truth" in f or f.endswith((".json", ".fits")) for f in files)
    assert (truth / "fplane.txt").is_file() and (truth / sim_night.night / "night.json").is_file()


@pytest.mark.parametrize("inside", ["raw", "raw/truth", "raw/a/b"])
def test_truth_inside_raw_is_refused(tmp_path, inside):
    lay = Layout(tmp_path / "raw", tmp_path / "red", tmp_path / inside)
    with pytest.raises(HetredError, match="inside the raw root"):
        simulate_archive(lay, nights="20180110", ifuslots=[53], frames=FrameCounts(zro=1, drk=0, flt=0, hg=0,
                                                                                     cd=0, twi=0, shots=0))
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*.tar"))


def test_same_seed_same_bytes_whatever_the_order(sim_night):
    """Re-render one member alone (no other amp, exposure or night before it): identical bytes."""
    night = sim_night.night
    counts = FrameCounts(zro=3, drk=1, flt=2, hg=1, cd=1, twi=2, shots=1)
    plan = plan_night(night, counts)
    obs = next(o for o in plan.observations if o.kind == "flt")
    e = obs.exposures[1]
    model = AmpModel(sim_night.seed, night, slot_entry(sim_night.ifuslot), "RU", almanac.night_start(night))
    buf, _ = model.fits(exposure_context(sim_night.seed, e, obs))
    tar, member, _ = [m for m in sim_night.members("flt") if m[2]["exp"] == 2 and m[1].endswith("RU_flt.fits")][0]
    assert buf == _member_bytes(tar, member)
    buf2, _ = AmpModel(sim_night.seed + 1, night, slot_entry(sim_night.ifuslot), "RU",
                       almanac.night_start(night)).fits(exposure_context(sim_night.seed + 1, e, obs))
    assert buf2 != buf


def test_full_archive_repeatable(tmp_path):
    frames = FrameCounts(zro=1, drk=0, flt=1, hg=0, cd=0, twi=0, shots=0)
    a = Layout(tmp_path / "a" / "raw", tmp_path / "a" / "red", tmp_path / "a" / "truth")
    b = Layout(tmp_path / "b" / "raw", tmp_path / "b" / "red", tmp_path / "b" / "truth")
    simulate_archive(a, nights="20180301", ifuslots=[63], frames=frames, seed=5)
    simulate_archive(b, nights="20180301", ifuslots=[63, 75], frames=frames, seed=5)   # another slot too
    tar_a = a.path("raw_tar", night="20180301", obs=2)
    tar_b = b.path("raw_tar", night="20180301", obs=2)
    with tarfile.open(tar_a) as ta, tarfile.open(tar_b) as tb:
        names_a = ta.getnames()
        assert set(names_a) <= set(tb.getnames())
        for n in names_a:
            assert ta.extractfile(n).read() == tb.extractfile(n).read()
    with pytest.raises(HetredError, match="exists"):
        simulate_archive(a, nights="20180301", ifuslots=[63], frames=frames, seed=5)


def test_dry_run_prints_the_plan(tmp_path):
    res = CliRunner().invoke(cli, ["--raw", str(tmp_path / "raw"), "simulate", "--truth", str(tmp_path / "truth"),
                                   "--scale", "demo", "--dry-run"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "virus0000001.tar twi" in out and "cmp hg" in out and "cmp cd-a" in out and "sci DEX" in out
    assert "376 members" in out and "zro 160" in out
    assert not (tmp_path / "raw").exists() and not (tmp_path / "truth").exists()


def test_cli_full_scale_plan_and_options(tmp_path):
    res = CliRunner().invoke(cli, ["--raw", str(tmp_path / "raw"), "simulate", "20180101-20180103",
                                   "--truth", str(tmp_path / "t"), "--n-ifus", "78", "--zro", "7",
                                   "--shots", "2", "--hg", "0", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "3 night(s), 78 IFU(s)" in res.output and "312 amps" in res.output
    assert "cmp hg" not in res.output and res.output.count("sci DEX") == 6


def test_cli_refuses_truth_inside_raw(tmp_path):
    res = CliRunner().invoke(cli, ["--raw", str(tmp_path / "raw"), "simulate", "--truth",
                                   str(tmp_path / "raw" / "truth"), "--dry-run"], standalone_mode=True)
    assert res.exit_code != 0
    assert "inside the raw root" in str(res.exception) + res.output


def test_cli_writes_a_small_night(tmp_path):
    res = CliRunner().invoke(cli, ["--raw", str(tmp_path / "raw"), "simulate", "20180210", "--truth",
                                   str(tmp_path / "truth"), "--ifuslots", "053", "--zro", "1", "--drk", "0",
                                   "--flt", "0", "--hg", "0", "--cd", "0", "--twi", "0", "--shots", "0"])
    assert res.exit_code == 0, res.output
    assert "zro" in res.output and (tmp_path / "raw" / "20180210" / "virus" / "virus0000001.tar").is_file()


def test_plan_rejects_bad_requests():
    with pytest.raises(HetredError):
        plan_archive(nights="2018011")
    with pytest.raises(HetredError):
        plan_archive(n_ifus=79)
    with pytest.raises(HetredError):
        plan_archive(nights="20180110", shots=40)     # does not fit in one night
    p = plan_archive(scale="month")
    zro_per_amp = sum(len(o.exposures) for n in p.nights for o in n.observations if o.kind == "zro")
    assert zro_per_amp >= 20 and len(p.slots) in (1, 2) and len(p.nights) > 3
    assert np.all([n.night.startswith("201801") for n in p.nights])


def test_cli_scale_choices_are_the_presets():
    from hetred.cli.simulate import SCALES
    from hetred.sim.presets import PRESETS

    assert sorted(SCALES) == sorted(PRESETS)
    from hetred.cli.simulate import CHOICES
    from hetred.sim.families import CHOICES as FAMILY_CHOICES
    assert CHOICES == FAMILY_CHOICES
