"""What a user sees when the data or the machine misbehave (issue 11, point 5, items 2-4).

Each case goes through the command as the user runs it: the exit code, one ``hetred: error:``
line per failed unit naming the unit and the file (or the config key), the other units tried,
and the summary table still printed. Small synthetic raw frames (tests/rawfactory.py), no
simulator: the whole module takes about a minute.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner

from hetred.cli import cli
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from tests.rawfactory import amp_fits_bytes, member, write_tar

NIGHT, MONTH, SLOT = "20180110", "201801", 53
AMPS = ("LL", "LU", "RL", "RU")


def invoke(lay: Layout, *args: str):
    """``hetred --raw --red --config ARGS`` in this process (QA plots off, to be quick)."""
    cfg = lay.red.parent / f"{lay.red.name}-hetred.toml"
    if not cfg.exists():
        cfg.write_text("[stages.bias]\nqa = false\n[stages.flat]\nqa = false\n")
    return CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "--config", str(cfg), *args])


def errors(result) -> list[str]:
    return [x for x in result.stderr.splitlines() if x.startswith("hetred: ")]


def zro_members(slot: int = SLOT, nexp: int = 3, bad: dict | None = None) -> dict[str, bytes]:
    """Bias frames of one IFU slot, exposure-major (exp01 LL LU RL RU, exp02 ...); ``bad`` maps
    (exp, amp) to header changes ({"drop": (...), "extra": {...}})."""
    out = {}
    for e in range(1, nexp + 1):
        for k, a in enumerate(AMPS):
            change = (bad or {}).get((e, a), {})
            out[member(1, e, f"{NIGHT}T0100{e:02d}.0", slot, a, "zro")] = amp_fits_bytes(
                slot, a, "zro", seed=10 * e + k, extra=change.get("extra"), drop=change.get("drop", ()))
    return out


@pytest.fixture(scope="module")
def zro_raw(tmp_path_factory) -> Path:
    """A raw root with one tar of 3 bias exposures of slot 053 (12 members)."""
    root = tmp_path_factory.mktemp("robust_raw")
    write_tar(Layout(root / "raw", root / "red"), NIGHT, 1, zro_members())
    return root / "raw"


def fresh(tmp_path: Path, raw: Path | None = None) -> Layout:
    """A layout with its own red root (and a copy of ``raw`` when given)."""
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    if raw is not None:
        shutil.copytree(raw, lay.raw)
    return lay


def table_printed(result, title: str, units: list[str]) -> bool:
    return title in result.stdout and all(u in result.stdout for u in units)


# ------------------------------------------------------------------------------------------------
# item 3: one truncated tar

def test_truncated_tar_lists_what_is_readable_and_stages_read_it(tmp_path):
    lay = fresh(tmp_path)
    tar = write_tar(lay, NIGHT, 1, zro_members())
    with tarfile.open(tar) as tf:
        names = tf.getnames()
    step = tarfile.BLOCKSIZE + len(amp_fits_bytes())        # header + data of one member
    os.truncate(tar, 5 * step + 100_000)                    # inside the data of the 6th member
    r = invoke(lay, "tarlist", MONTH)
    assert r.exit_code == 0, r.output
    listed = lay.path("tarlist", month=MONTH).read_text().splitlines()
    assert [x.split("/virus/", 1)[1] for x in listed] == names[:5]
    broken = lay.path("tarlist_broken", month=MONTH).read_text()
    assert f"{tar}: 5 members listed; truncated" in broken
    assert f"lost {NIGHT}/virus/{names[5]}" in broken
    warn = errors(r)
    assert any(str(tar) in w and "truncated" in w for w in warn) and all("warning" in w for w in warn)
    assert "broken tars: 1" in r.stdout and names[5] in r.stdout.replace("\n", "")
    # the stages read the intact members of the truncated tar: LL has two frames, the rest one
    r = invoke(lay, "bias", MONTH)
    assert r.exit_code == 0, r.output
    for a, n in zip(AMPS, (2, 1, 1, 1)):
        marker = json.loads(lay.path("marker_done", stage="bias", unit=f"{MONTH}_053_{a}").read_text())
        assert marker["counts"]["used"] == n, (a, marker["counts"])


def test_a_lost_member_names_the_tar(tmp_path):
    from hetred.errors import RawReadError
    from hetred.io.raw import read_raw_member

    lay = fresh(tmp_path)
    tar = write_tar(lay, NIGHT, 1, zro_members())
    with tarfile.open(tar) as tf:
        names = tf.getnames()
    os.truncate(tar, 5 * (tarfile.BLOCKSIZE + len(amp_fits_bytes())) + 100_000)
    assert read_raw_member(tar, names[4]).amp == "LL"                  # intact: read as ever
    for name, why in ((names[5], "lost: the tar is truncated"), (names[7], "not in the tar, which is truncated")):
        with pytest.raises(RawReadError, match=why) as info:
            read_raw_member(tar, name)
        assert str(info.value).startswith(f"{tar}::{name}: ") and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# item 2: header values the reduction needs

def _no_gain_unit_fails(result, unit: str, source: str) -> None:
    lines = [x for x in errors(result) if unit in x]
    assert len(lines) == 1, result.stderr
    assert "header has no GAIN" in lines[0] and source in lines[0], lines[0]


def test_flat_frame_without_gain_fails_its_unit(tmp_path):
    lay = fresh(tmp_path)
    members = {}
    for e in (1, 2):
        for a in ("LL", "LU"):
            drop = ("GAIN",) if (e, a) == (1, "LL") else ()
            members[member(2, e, f"{NIGHT}T0200{e:02d}.0", SLOT, a, "flt")] = amp_fits_bytes(
                SLOT, a, "flt", level=20000.0, seed=e, drop=drop)
    tar = write_tar(lay, NIGHT, 2, members)
    r = invoke(lay, "flat", "320", "--night", NIGHT, "--amp", "LL")
    assert r.exit_code == 1, r.output
    bad = member(2, 1, f"{NIGHT}T020001.0", SLOT, "LL", "flt")
    _no_gain_unit_fails(r, "flat cam320_LL", f"{tar}::{bad}")
    assert table_printed(r, "hetred flat 320", ["cam320_LL"])
    reason = json.loads(lay.path("marker_failed", stage="flat", unit="cam320_LL").read_text())["reason"]
    assert "header has no GAIN" in reason


def test_twilight_without_gain_or_with_a_garbage_ifuslot_fails_its_unit(tmp_path):
    lay = fresh(tmp_path)
    members = {}
    for a in ("LL", "LU", "RL"):
        change = {"LL": {"drop": ("GAIN",)}, "RL": {"extra": {"IFUSLOT": "0x5"}}}.get(a, {})
        members[member(3, 1, f"{NIGHT}T030001.0", SLOT, a, "twi")] = amp_fits_bytes(
            SLOT, a, "twi", level=3000.0, extra=change.get("extra"), drop=change.get("drop", ()))
        members[member(3, 2, f"{NIGHT}T030002.0", SLOT, a, "cmp")] = amp_fits_bytes(
            SLOT, a, "cmp", extra={"OBJECT": "hg"})
    tar = write_tar(lay, NIGHT, 3, members)
    r = invoke(lay, "twical", MONTH, "--step", "reduce")
    assert r.exit_code == 1, r.output
    twi = {a: f"{tar}::{member(3, 1, f'{NIGHT}T030001.0', SLOT, a, 'twi')}" for a in ("LL", "RL")}
    _no_gain_unit_fails(r, "_053_LL", twi["LL"])
    rl = [x for x in errors(r) if "_053_RL" in x]
    assert len(rl) == 1 and twi["RL"] in rl[0] and "header IFUSLOT = '0x5' is not a whole number" in rl[0]
    lu = [x for x in errors(r) if "_053_LU" in x]          # tried too: no master bias in this tree
    assert len(lu) == 1 and "no master bias" in lu[0]
    assert table_printed(r, "hetred twical", ["_053_LL", "_053_LU", "_053_RL"])


def test_science_frame_without_gain_fails_its_unit(tmp_path):
    lay = fresh(tmp_path)
    members = {}
    for slot in (SLOT, 63):
        for a in AMPS:
            drop = ("GAIN",) if (slot, a) == (SLOT, "RU") else ()
            members[member(7, 1, f"{NIGHT}T070001.0", slot, a, "sci")] = amp_fits_bytes(
                slot, a, "sci", seed=slot, drop=drop)
    tar = write_tar(lay, NIGHT, 7, members)
    r = invoke(lay, "sci", MONTH)
    assert r.exit_code == 1, r.output
    _no_gain_unit_fails(r, f"sci {NIGHT}v007_exp01_053", f"{tar}::{member(7, 1, f'{NIGHT}T070001.0', SLOT, 'RU', 'sci')}")
    other = [x for x in errors(r) if "_exp01_063" in x]     # the other unit was tried
    assert len(other) == 1 and "header has no GAIN" not in other[0]
    assert table_printed(r, "hetred sci", [f"{NIGHT}v007_exp01_053", f"{NIGHT}v007_exp01_063"])


def test_garbage_ifuslot_in_one_bias_frame_drops_that_frame(tmp_path):
    lay = fresh(tmp_path)
    tar = write_tar(lay, NIGHT, 1, zro_members(bad={(2, "LU"): {"extra": {"IFUSLOT": "abc"}}}))
    r = invoke(lay, "run", MONTH, "--stages", "bias")         # serial: the units run in this process
    assert r.exit_code == 0, r.output
    assert "internal error" not in r.output and table_printed(r, "hetred run", ["bias"])
    frames = lay.path("bias_frames", month=MONTH, ifuslot=SLOT, amp="LU").read_text()
    bad = f"{tar}::{member(1, 2, f'{NIGHT}T010002.0', SLOT, 'LU', 'zro')}"
    assert bad in frames and "header IFUSLOT = 'abc' is not a whole number" in frames
    counts = json.loads(lay.path("marker_done", stage="bias", unit=f"{MONTH}_053_LU").read_text())["counts"]
    assert counts["used"] == 2


# ------------------------------------------------------------------------------------------------
# item 4: the environment

@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only for this process: a read-only bind mount as root (skip when mounting
    is not permitted), else the permission bits."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in sorted(modes, reverse=True):
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p in sorted(modes):
                p.chmod(modes[p])
        return
    ok = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True, check=False)
    if ok.returncode != 0:
        pytest.skip(f"cannot bind-mount {path} read-only: {ok.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True, capture_output=True)


def test_read_only_tree(zro_raw, tmp_path):
    lay = fresh(tmp_path)
    lay = Layout(zro_raw, lay.red)
    assert invoke(lay, "tarlist", MONTH).exit_code == 0
    with read_only(lay.red):
        for args in (("bias", MONTH), ("run", MONTH, "--stages", "bias")):
            r = invoke(lay, *args)
            assert r.exit_code == 1, r.output
            lines = errors(r)
            assert len(lines) == 4, r.stderr
            for a, line in zip(AMPS, lines):
                assert line.startswith(f"hetred: error: bias {MONTH}_053_{a}: cannot write {lay.red}"), line
                assert "Read-only file system" in line or "Permission denied" in line, line
            assert "internal error" not in r.output
            assert table_printed(r, "hetred bias" if args[0] == "bias" else "hetred run", ["bias"])


def _full_disk_lines(r, lay: Layout) -> list[str]:
    assert r.exit_code == 1, r.output
    lines = errors(r)
    assert len(lines) == 4, r.stderr
    for a, line in zip(AMPS, lines):
        assert line.startswith(f"hetred: error: bias {MONTH}_053_{a}: cannot write {lay.red}/"), line
        # the kernel's ENOSPC, or astropy's own check of the free space before it writes
        assert "No space left on device" in line or "Not enough space on disk" in line, line
    assert table_printed(r, "hetred bias", [f"{MONTH}_053_{a}" for a in AMPS])
    return lines


def test_full_disk_injected(zro_raw, tmp_path, monkeypatch):
    """ENOSPC from the FITS writer, as the kernel gives it (no file name): the unit's line names
    the product it was writing."""
    lay = Layout(zro_raw, tmp_path / "red")
    assert invoke(lay, "tarlist", MONTH).exit_code == 0

    def no_space(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fits.HDUList, "writeto", no_space)
    r = invoke(lay, "bias", MONTH)
    for line in _full_disk_lines(r, lay):
        assert "masterbias" in line and ".fits: No space left on device" in line, line
    assert not list(lay.red.rglob("*.tmp"))


def test_full_disk_on_a_small_tmpfs(zro_raw, tmp_path):
    """A real full file system: a 6 MiB tmpfs as the reduction tree (skipped when mounting is not
    permitted): the tarlist fits, the products do not."""
    red = tmp_path / "red"
    red.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", f"hetred-test-{uuid.uuid4().hex[:6]}", str(red)],
                        capture_output=True, text=True, check=False)
    if ok.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {ok.stderr.strip()}")
    try:
        lay = Layout(zro_raw, red)
        assert invoke(lay, "tarlist", MONTH).exit_code == 0
        _full_disk_lines(invoke(lay, "bias", MONTH), lay)
        assert not list(red.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(red)], check=True, capture_output=True)


def test_bug_in_one_unit_fails_it_alone(zro_raw, tmp_path, monkeypatch):
    import hetred.bias.run as bias_run

    real = bias_run.run_bias

    def buggy(layout, month, slot, amp, settings):
        if amp == "RL":
            raise ValueError("invalid literal for int() with base 10: 'abc'")
        return real(layout, month, slot, amp, settings)

    monkeypatch.setattr(bias_run, "run_bias", buggy)
    lay = Layout(zro_raw, tmp_path / "red")
    r = invoke(lay, "bias", MONTH)
    assert r.exit_code == 1, r.output
    lines = errors(r)
    assert len(lines) == 1 and lines[0].startswith(f"hetred: error: bias {MONTH}_053_RL: internal error: ValueError")
    assert table_printed(r, "hetred bias", [f"{MONTH}_053_{a}" for a in AMPS])
    assert len(list(lay.glob("marker_done", stage="bias"))) == 3
    marker = json.loads(lay.path("marker_failed", stage="bias", unit=f"{MONTH}_053_RL").read_text())
    assert "Traceback" in marker["traceback"]


def _suicide(amp_to_kill: str):
    def unit(*args, **kwargs):
        if any(a == amp_to_kill or getattr(a, "unit", "").endswith(amp_to_kill) for a in args):
            os.kill(os.getpid(), signal.SIGKILL)
        return UnitOutcome(counts={"used": 1})
    return unit


def test_killed_worker_fails_only_its_unit_in_run(zro_raw, tmp_path, monkeypatch):
    import hetred.bias.run as bias_run

    monkeypatch.setattr(bias_run, "run_bias", _suicide("LU"))
    lay = Layout(zro_raw, tmp_path / "red")
    r = invoke(lay, "run", MONTH, "--stages", "bias", "--jobs", "2")
    assert r.exit_code == 1, r.output
    lines = errors(r)
    assert lines == [(f"hetred: error: bias {MONTH}_053_LU: its worker process was killed by SIGKILL "
                      "(the out-of-memory killer, or kill -9)")], r.stderr
    assert table_printed(r, "hetred run", ["bias"])
    assert sorted(p.name for p in lay.glob("marker_done", stage="bias")) == [
        f"{MONTH}_053_{a}.done.json" for a in ("LL", "RL", "RU")]
    marker = json.loads(lay.path("marker_failed", stage="bias", unit=f"{MONTH}_053_LU").read_text())
    assert "killed by SIGKILL" in marker["reason"]


def test_killed_worker_in_twical_and_sci_jobs(tmp_path, monkeypatch):
    """``twical --jobs`` and ``sci --jobs`` use the same workers: the dead one fails its unit."""
    import hetred.sci.run as sci_run
    import hetred.twical.run as twical_run

    lay = fresh(tmp_path)
    members = {}
    for a in AMPS:
        members[member(3, 1, f"{NIGHT}T030001.0", SLOT, a, "twi")] = amp_fits_bytes(SLOT, a, "twi")
        members[member(3, 2, f"{NIGHT}T030002.0", SLOT, a, "cmp")] = amp_fits_bytes(SLOT, a, "cmp")
    write_tar(lay, NIGHT, 3, members)
    write_tar(lay, NIGHT, 7, {member(7, e, f"{NIGHT}T07000{e}.0", SLOT, "LL", "sci"): amp_fits_bytes(SLOT, "LL", "sci")
                              for e in (1, 2, 3)})
    monkeypatch.setattr(twical_run, "run_reduce", _suicide("_RL"))
    r = invoke(lay, "twical", MONTH, "--step", "reduce", "--jobs", "2")
    assert r.exit_code == 1, r.output
    assert [x.split(": ", 3)[2] for x in errors(r)] == [f"twical-reduce {NIGHT}v003_exp01_053_RL"], r.stderr
    assert "killed by SIGKILL" in r.stderr and table_printed(r, "hetred twical", ["_053_LL", "_053_RU"])
    assert len(list(lay.glob("marker_done", stage="twical-reduce"))) == 3

    monkeypatch.setattr(sci_run, "run_sci", _suicide("_exp02_053"))
    r = invoke(lay, "sci", MONTH, "--jobs", "2")
    assert r.exit_code == 1, r.output
    assert [x.split(": ", 3)[2] for x in errors(r)] == [f"sci {NIGHT}v007_exp02_053"], r.stderr
    assert len(list(lay.glob("marker_done", stage="sci"))) == 2


def test_bad_config_value_is_one_line(tmp_path):
    """``[paths] raw = 42``, as the user meets it: one line naming the file and the key."""
    cfg = tmp_path / "hetred.toml"
    cfg.write_text("[paths]\nraw = 42\n")
    p = subprocess.run([sys.executable, "-c", "from hetred.cli import main; main()", "--config", str(cfg),
                        "tarlist", MONTH], capture_output=True, text=True, check=False)
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines() == [(f"hetred: error: config file {cfg}: [paths] raw = 42 is not a path "
                                      '(give a quoted string, e.g. raw = "/scratch/hetred")')], p.stderr


@pytest.mark.parametrize("text, key", [
    ('[paths]\nred = ["a"]\n', "[paths] red = ['a'] is not a path"),
    ('[paths]\nraw = ""\n', "[paths] raw = '' is not a path"),
    ('paths = "x"\n', "paths must be a table [paths]"),
    ('[stages]\nbias = 3\n', "stages.bias must be a table [stages.bias]"),
])
def test_bad_config_values(tmp_path, text, key):
    from hetred.config import load_config
    from hetred.errors import HetredError

    cfg = tmp_path / "hetred.toml"
    cfg.write_text(text)
    with pytest.raises(HetredError) as info:
        load_config(cfg, environ={})
    assert str(info.value).startswith(f"config file {cfg}: {key}") and "\n" not in str(info.value)
