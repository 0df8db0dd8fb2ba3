"""hetred.jobs.units: empty units, stale markers (depends), the per-unit lock, the temporary-file
journal, and worker pools that die with their parent (issue 11 points 2, 5.1 and 5.6)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hetred.errors import EmptyUnit, HetredError
from hetred.io.atomic import atomic_path, write_text_atomic
from hetred.jobs.units import (
    UnitLock,
    UnitOutcome,
    format_notes,
    is_done,
    is_settled,
    merge_notes,
    run_unit,
    unit_state,
)
from hetred.layout import Layout

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture()
def lay(tmp_path) -> Layout:
    return Layout(tmp_path / "raw", tmp_path / "red")


def test_empty_unit_is_not_a_failure(lay):
    def nothing():
        raise EmptyUnit("no bri frames with 2 < level < 15 (9 read, levels 0.5-0.8)",
                        counts={"read": 9, "levels": [0.5, 0.8]}, depends=[lay.red / "tarlist"])
    r = run_unit(lay, "bgmodel", "u1", nothing)
    assert r.status == "empty" and "levels 0.5-0.8" in r.message
    m = json.loads(lay.path("marker_empty", stage="bgmodel", unit="u1").read_text())
    assert m["status"] == "empty" and m["counts"]["read"] == 9
    assert m["depends"] == {str(lay.red / "tarlist"): None}
    assert not lay.path("marker_failed", stage="bgmodel", unit="u1").exists()
    assert unit_state(lay, "bgmodel", "u1").status == "empty" and is_settled(lay, "bgmodel", "u1")
    assert not is_done(lay, "bgmodel", "u1")
    # kept while its depends are unchanged; re-evaluated when one appears
    calls = []
    r = run_unit(lay, "bgmodel", "u1", lambda: calls.append(1) or UnitOutcome())
    assert r.status == "empty" and not calls
    write_text_atomic(lay.red / "tarlist", "x\n")
    assert unit_state(lay, "bgmodel", "u1").status == "stale"
    r = run_unit(lay, "bgmodel", "u1", lambda: calls.append(1) or UnitOutcome())
    assert r.status == "done" and calls == [1]
    assert not lay.path("marker_empty", stage="bgmodel", unit="u1").exists()


def test_a_failed_unit_after_an_empty_one_loses_the_empty_marker(lay):
    run_unit(lay, "s", "u", lambda: (_ for _ in ()).throw(EmptyUnit("nothing")))
    def broken():
        raise HetredError("broken input")
    r = run_unit(lay, "s", "u", broken, overwrite=True)
    assert r.status == "failed"
    assert not lay.path("marker_empty", stage="s", unit="u").exists()
    assert unit_state(lay, "s", "u").status == "failed"


def test_done_marker_goes_stale_when_a_calibration_appears_or_changes(lay):
    """twical reduced before the pixel flat existed is redone once the flat is there."""
    flat = lay.red / "lib_pflat" / "pixelflat_cam320_LL.fits"
    out = lay.red / "cal" / "work.fits"
    n = []

    def unit():
        n.append(1)
        write_text_atomic(out, f"made with flat: {flat.exists()}\n")
        return UnitOutcome(outputs=[str(out)], depends=[str(flat)])
    assert run_unit(lay, "twical-reduce", "u", unit).status == "done"
    assert run_unit(lay, "twical-reduce", "u", unit).status == "skipped"
    m = json.loads(lay.path("marker_done", stage="twical-reduce", unit="u").read_text())
    assert m["depends"] == {str(flat): None}
    write_text_atomic(flat, "flat v1\n")                  # the pixel flat appears
    st = unit_state(lay, "twical-reduce", "u")
    assert st.status == "stale" and "pixelflat_cam320_LL.fits" in st.why
    r = run_unit(lay, "twical-reduce", "u", unit)
    assert r.status == "done" and "input changed" in r.message and len(n) == 2
    assert out.read_text() == "made with flat: True\n"
    assert run_unit(lay, "twical-reduce", "u", unit).status == "skipped"
    time.sleep(0.01)
    write_text_atomic(flat, "flat v2, another size\n")    # the flat redone
    assert run_unit(lay, "twical-reduce", "u", unit).status == "done" and len(n) == 3
    out.unlink()                                         # an output gone
    assert unit_state(lay, "twical-reduce", "u").status == "stale"


def test_lock_reports_running_elsewhere_and_is_removed(lay):
    held = UnitLock(lay, "bias", "u")
    assert held.acquire()
    try:
        r = run_unit(lay, "bias", "u", lambda: UnitOutcome())
        assert r.status == "running" and r.message.startswith("running elsewhere (pid ")
        assert not lay.path("marker_done", stage="bias", unit="u").exists()
    finally:
        held.release()
    assert not lay.path("marker_lock", stage="bias", unit="u").exists()
    assert run_unit(lay, "bias", "u", lambda: UnitOutcome()).status == "done"
    assert not lay.path("marker_lock", stage="bias", unit="u").exists()


def test_two_processes_do_a_unit_once(lay, tmp_path):
    """Two processes start the same slow unit: one does it, the other reports it running
    elsewhere; no work is done twice."""
    script = tmp_path / "u.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {SRC!r})
        from hetred.jobs.units import run_unit, UnitOutcome
        from hetred.layout import Layout
        lay = Layout({str(lay.raw)!r}, {str(lay.red)!r})
        def work():
            with open({str(tmp_path / 'count')!r}, "a") as f:
                f.write("x")
            time.sleep(3)
            return UnitOutcome()
        print(run_unit(lay, "bias", "u", work).status)
    """))
    a = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    b = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    out_a = a.communicate(timeout=60)[0]
    assert sorted([out_a.strip(), b.stdout.strip()]) == ["done", "running"], (out_a, b.stdout, b.stderr)
    assert (tmp_path / "count").read_text() == "x"


def test_a_killed_unit_leaves_temporaries_its_rerun_removes(lay, tmp_path):
    """kill -9 during a write leaves a hidden .name.XXXX.tmp beside the product; the unit's next
    run removes it before starting (the lock file journals it)."""
    product = lay.red / "lib" / "product.fits"
    script = tmp_path / "k.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {SRC!r})
        from hetred.io.atomic import atomic_path
        from hetred.jobs.units import run_unit
        from hetred.layout import Layout
        lay = Layout({str(lay.raw)!r}, {str(lay.red)!r})
        def work():
            with atomic_path({str(product)!r}) as tmp:
                tmp.write_text("half a product")
                os.kill(os.getpid(), signal.SIGKILL)
        run_unit(lay, "flat", "cam320_LL", work)
    """))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGKILL
    left = list(product.parent.glob(".product.fits.*.tmp"))
    assert len(left) == 1 and not product.exists()
    assert not lay.path("marker_done", stage="flat", unit="cam320_LL").exists()
    assert lay.path("marker_lock", stage="flat", unit="cam320_LL").exists()   # the journal

    def work():
        with atomic_path(product) as tmp:
            tmp.write_text("a product")
        return UnitOutcome(outputs=[str(product)])
    assert run_unit(lay, "flat", "cam320_LL", work).status == "done"
    assert not list(product.parent.glob(".*.tmp")) and product.read_text() == "a product"
    assert not lay.path("marker_lock", stage="flat", unit="cam320_LL").exists()


def test_notes_are_said_once(lay):
    notes = merge_notes([{"background models missing": ["053LL: bri"]},
                         {"background models missing": ["053LL: bri", "053LU: bri"]}, None])
    assert notes == {"background models missing": ["053LL: bri", "053LU: bri"]}
    assert format_notes("twical-reduce", notes) == [
        "twical-reduce: background models missing: 053LL: bri, 053LU: bri"]


_POOLS = {
    # hetred.jobs.workers.process_pool: a ProcessPoolExecutor of N workers
    "process_pool": """
        from hetred.jobs.workers import process_pool
        pool = process_pool(2)
        futs = [pool.submit(busy, i) for i in range(4)]
        time.sleep(1.5)
        pids = list(pool._processes)
    """,
    # hetred.jobs.pool.WorkerPool (run, twical, sci, astrom --jobs): one executor per worker
    "WorkerPool": """
        from hetred.jobs.pool import WorkerPool
        pool = WorkerPool(2)
        futs = [pool._executor(k).submit(busy, k) for k in range(2)]
        time.sleep(1.5)
        pids = [p for k in range(2) for p in pool._executor(k)._processes]
    """,
}


@pytest.mark.parametrize("kind", sorted(_POOLS))
def test_pool_workers_die_with_a_killed_parent(tmp_path, kind):
    """kill -9 of a --jobs N parent: its pool workers end too (they used to wait for ever)."""
    script = tmp_path / "p.py"
    main = textwrap.dedent(_POOLS[kind]) + textwrap.dedent("""
        print(" ".join(str(p) for p in pids), flush=True)
        time.sleep(120)
    """)
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {SRC!r})

        def busy(x):
            time.sleep(120)

        if __name__ == "__main__":
    """) + textwrap.indent(main, " " * 4))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(x) for x in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(w) for w in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.time() + 40                        # SIGTERM at once; at worst GRACE (30 s)
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_every_pool_is_a_process_pool_that_dies_with_its_parent():
    """Stage code makes its worker pools with hetred.jobs.workers.process_pool or
    hetred.jobs.pool.WorkerPool only, and a WorkerPool's workers die with their parent."""
    from hetred.jobs.pool import WorkerPool
    from hetred.jobs.workers import die_with_parent

    src = Path(SRC) / "hetred"
    users = [p.relative_to(src).as_posix() for p in src.rglob("*.py")
             if "ProcessPoolExecutor(" in p.read_text()]
    assert sorted(users) == ["jobs/pool.py", "jobs/workers.py"]
    pool = WorkerPool(2)
    assert pool._initializer is die_with_parent and pool._initargs == (os.getpid(),)
