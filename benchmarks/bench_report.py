"""Benchmark of ``hetred report``: the detection reports of a shot, and the night page of a 78-IFU
night, on one core.

Inputs: a reduced demo tree (``hetred demo DIR``: the small real run; made first when ``--demo DIR``
holds none, about 9 minutes on 2 cores).

1. **Detection reports.** Every report of the demo shot is made again
   (:func:`hetred.report.run.run_report_detections`, ``remake``) in a child process pinned to one
   CPU (``sched_setaffinity``, ``OMP_NUM_THREADS=1``), into a tree of its own whose ``h5/`` is the
   demo's: seconds per report = the unit's wall time / reports (the first report includes opening
   the detect, im2D and shot files), and the unit's own time per report made.
2. **The night page of a 78-IFU night.** Simulating and reducing 78 IFUs would take hours, so the
   night's inputs are fabricated from the demo's products (not timed): every done marker of the
   demo's slot 053 (bias, bgmodel, flat, twical, sci, calfib, detect) copied for each of the 78
   slots of the focal plane under the slot's own unit name, SPECID and IFUID, with its QA plots and
   bias frame tables hard-linked under their new names; the calibration library files hard-linked
   under the 78 slots' names (the page reads their names); ``--shots`` shots (default 8, a full
   HETDEX night) each with the demo shot's astrometry, throughput, focal-plane images and QA
   plots, an amp.dat of 312 rows (the demo's 8 repeated, 5 flagged red in ds9.reg) per exposure,
   and a report database of 39 x the demo shot's reports (5,655 detections: a 78-IFU shot at the
   demo's detection density), each report and thumbnail a hard link to a demo one (the databases
   hold the detections table and a 0-byte image: the page reads only that table); the month's
   tarlist with every frame of the 78 IFUs, so that ``night_plan`` enumerates the units the stages
   should have. Then ``hetred report night`` does what its command does (``night_plan`` and the
   ``report-night`` unit) in a child pinned to one CPU.

Targets (issue 17): <= 0.3 s per detection report; the night page of a 78-IFU night <= 60 s.
Reference: ELiXer makes a report in 5-30 s (its catalogue cut-outs and fits; seed's account of
step 18), Karl looks at the QA PNGs one by one.

Run: ``python benchmarks/bench_report.py --demo /tmp/report_demo [--shots 8] [--dir D] [--keep]``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_REPORT_S = 0.3
TARGET_NIGHT_S = 60.0
SRC = Path(__file__).resolve().parents[1] / "src"
NIGHT, MONTH, SLOT0, OBS0 = "20180110", "201801", 53, 7

CHILD = """
import json, os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import matplotlib, tables, PIL.Image, sqlite3                       # imports apart from the timing
from hetred.layout import Layout
from hetred.jobs.units import run_unit
from hetred.report import run as R
from hetred.report.settings import ReportSettings
lay = Layout(Path(sys.argv[3]) / "raw", Path(sys.argv[3]) / "red")
st = ReportSettings()
t0, c0 = time.perf_counter(), time.process_time()
if sys.argv[2] == "detections":
    r = run_unit(lay, R.STAGE_DETECTIONS, sys.argv[4],
                 lambda: R.run_report_detections(lay, sys.argv[4], st, remake=True), overwrite=True)
else:
    from hetred.jobs.registry import night_plan
    order, expected, shots = night_plan(lay, sys.argv[4])
    t1 = time.perf_counter()
    r = run_unit(lay, R.STAGE_NIGHT, sys.argv[4],
                 lambda: R.run_report_night(lay, sys.argv[4], st, order, expected, shots), overwrite=True)
out = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "status": r.status, "msg": r.message,
       "counts": r.outcome.counts if r.outcome else {}}
if sys.argv[2] == "night":
    out["plan"] = t1 - t0
print(json.dumps(out))
"""


def _child(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMEXPR_MAX_THREADS="1", MPLBACKEND="Agg")
    p = subprocess.run([sys.executable, "-c", CHILD, str(SRC), *args], capture_output=True, text=True, env=env,
                       check=False)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-3000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if out["status"] != "done":
        raise SystemExit(f"{args[0]}: {out['status']}: {out['msg']}")
    return out


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        os.link(src, dest)


# ------------------------------------------------------------------------------------------------
# the 78-IFU night, from the demo's products

class Fab:
    def __init__(self, demo, out, shots: int, reports) -> None:
        from hetred.sim.focalplane import default_order, slot_entry

        self.d, self.o, self.rep = demo, out, reports
        self.slots = [slot_entry(s) for s in default_order()[:78]]
        e0 = slot_entry(SLOT0)
        self.spec0, self.ifuid0 = e0.specid, e0.ifuid
        self.shots = [f"{NIGHT}v{OBS0 + k:03d}" for k in range(shots)]

    def marker(self, stage: str, uid: str, new_uid: str, outputs: dict[str, Path] | None = None) -> None:
        """Copy a demo marker under a new unit name; ``outputs``: old path -> new path (linked)."""
        for key in ("marker_done", "marker_empty"):
            src = self.d.path(key, stage=stage, unit=uid)
            if not src.exists():
                continue
            m = json.loads(src.read_text())
            m["unit"] = new_uid
            outs = []
            for o in m.get("outputs", []):
                new = (outputs or {}).get(o)
                if new is not None:
                    _link(Path(o), new)
                outs.append(str(new) if new is not None else o)
            m["outputs"] = outs
            dest = self.o.path(key, stage=stage, unit=new_uid)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(m))

    def calibration(self) -> None:
        d, o = self.d, self.o
        for e in self.slots:
            s = e.ifuslot
            for amp in ("LL", "LU", "RL", "RU"):
                u0, u = f"{MONTH}_{SLOT0:03d}_{amp}", f"{MONTH}_{s:03d}_{amp}"
                self.marker("bias", u0, u, {str(d.path("qa", stage="bias", name=f"{u0}.png")):
                                            o.path("qa", stage="bias", name=f"{u}.png")})
                _link(d.path("bias_frames", month=MONTH, ifuslot=SLOT0, amp=amp),
                      o.path("bias_frames", month=MONTH, ifuslot=s, amp=amp))
                for kind in ("sci", "twi", "bri"):
                    self.marker("bgmodel", f"{u0}_{kind}", f"{u}_{kind}",
                                {str(d.path("qa", stage="bgmodel", name=f"{u0}_{kind}.png")):
                                 o.path("qa", stage="bgmodel", name=f"{u}_{kind}.png")})
                self.marker("twical-combine", u0, u)
                for p in d.glob("marker_done", stage="twical-reduce"):
                    uid = p.name[: -len(".done.json")]
                    if uid.endswith(f"_{SLOT0:03d}_{amp}"):
                        self.marker("twical-reduce", uid, uid.replace(f"_{SLOT0:03d}_", f"_{s:03d}_"))
                f0, f1 = f"cam{self.spec0:03d}_{amp}", f"cam{e.specid:03d}_{amp}"
                self.marker("flat", f0, f1, {str(d.path("qa", stage="flat", name=f"{f0}.png")):
                                             o.path("qa", stage="flat", name=f"{f1}.png")})
                m = o.path("marker_done", stage="flat", unit=f1)
                j = json.loads(m.read_text())
                j["counts"]["ifuslot"] = s
                m.write_text(json.dumps(j))
                _link(d.path("callib", month=MONTH, specid=self.spec0, ifuslot=SLOT0, ifuid=self.ifuid0, amp=amp),
                      o.path("callib", month=MONTH, specid=e.specid, ifuslot=s, ifuid=e.ifuid, amp=amp))
            _link(d.path("qa", stage="twical", name=f"{MONTH}_{SLOT0:03d}.png"),
                  o.path("qa", stage="twical", name=f"{MONTH}_{s:03d}.png"))
        a2a = o.path("amp_to_amp", month=MONTH)
        a2a.write_text("# ifuslot amp a2a scatter nexp\n" + "".join(
            f"{e.ifuslot:03d} {a} {0.95 + 0.001 * k:.5f} 0.00005 3\n" for k, e in enumerate(self.slots)
            for a in ("LL", "LU", "RL", "RU")))
        self.marker("twical-a2a", MONTH, MONTH)
        self.marker("tarlist", MONTH, MONTH)

    def shot(self, dv: str) -> None:
        d, o = self.d, self.o
        dv0, obs = f"{NIGHT}v{OBS0:03d}", int(dv[9:])
        for p in d.glob("astrom_dir"):
            if p.name == dv0:
                for f in p.iterdir():
                    if f.is_file():
                        _link(f, o.path("astrom_dir", datevobs=dv) / f.name)
        for stage in ("astrom", "throughput", "fullsky-addsky", "h5-shot", "spec2d"):
            self.marker(stage, dv0, dv)
        for exp in (1, 2, 3):
            keys0 = {"night": NIGHT, "obs": OBS0, "obs3": f"{OBS0:03d}", "exp": exp, "month": MONTH}
            keys = {**keys0, "obs": obs, "obs3": f"{obs:03d}"}
            _link(d.path("sci_fplane_png", **keys0), o.path("sci_fplane_png", **keys))
            _link(d.path("fullsky_png", **keys0), o.path("fullsky_png", **keys))
            rows = d.path("fullsky_amp", **keys0).read_text().splitlines()
            head, body = rows[0], [r for r in rows[1:] if r.strip()]
            out, names = [head], []
            for k, e in enumerate(self.slots):
                for r in body[:4]:
                    name = f"{e.specid:03d}_{e.ifuslot:03d}_{e.ifuid}_{r[12:14]}"
                    names.append(name)
                    out.append(name + r[14:])
            p = o.path("fullsky_amp", **keys)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("\n".join(out) + "\n")
            o.path("fullsky_ds9", **keys).write_text("image\n" + "".join(
                f"# text(10,{112 * k + 56}) textangle=90 text={{{n}}}" + (" color=red" if k % 70 == 5 else "") + "\n"
                for k, n in enumerate(names)))
            self.marker("fullsky", f"{dv0}_exp{exp:02d}", f"{dv}_exp{exp:02d}")
            for e in self.slots:
                self.marker("sci", f"{dv0}_exp{exp:02d}_{SLOT0:03d}", f"{dv}_exp{exp:02d}_{e.ifuslot:03d}")
        for e in self.slots:
            for stage in ("calfib", "detect"):
                self.marker(stage, f"{dv0}_{SLOT0:03d}", f"{dv}_{e.ifuslot:03d}")
        for key in ("tp_summary", "throughput", "tp_png"):
            _link(d.path(key, month=MONTH, datevobs=dv0), o.path(key, month=MONTH, datevobs=dv))
        self.reports(dv0, dv)

    def reports(self, dv0: str, dv: str) -> None:
        from hetred.report.db import SCHEMA

        d, o = self.rep, self.o
        con = sqlite3.connect(d.path("report_db", month=MONTH, datevobs=dv0))
        rows = con.execute("SELECT * FROM detections").fetchall()
        meta = con.execute("SELECT key, value FROM meta").fetchall()
        con.close()
        base = 2_100_000_000 + 100_000 * int(dv[9:])
        path = o.path("report_db", month=MONTH, datevobs=dv)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        con = sqlite3.connect(path)
        for stmt in SCHEMA:
            con.execute(stmt)
        n = 0
        for copy in range(39):
            for r in rows:
                did = base + n
                n += 1
                con.execute("INSERT INTO report VALUES (?, ?)", (did, b""))
                con.execute(f"INSERT INTO detections VALUES ({','.join('?' * len(r))})", (did, r[1], dv, *r[3:]))
                for key in ("report_png", "report_thumb"):
                    _link(d.path(key, month=MONTH, datevobs=dv0, detectid=r[0]),
                          o.path(key, month=MONTH, datevobs=dv, detectid=did))
        con.executemany("INSERT INTO meta VALUES (?, ?)", meta)
        con.commit()
        con.close()
        self.d, d = self.rep, self.d
        try:
            self.marker("report-detections", dv0, dv)
        finally:
            self.d = d

    def tarlist(self) -> None:
        lines = self.d.path("tarlist", month=MONTH).read_text().splitlines()
        out = []
        for ln in lines:
            m = re.search(r"_(\d{3})(LL|LU|RL|RU)_(\w{3})\.fits$", ln)
            if m is None or int(m.group(1)) != SLOT0:
                continue
            shots = [OBS0 + k for k in range(len(self.shots))] if m.group(3) == "sci" else [None]
            for obs in shots:
                base = ln if obs is None else ln.replace(f"virus{OBS0:07d}", f"virus{obs:07d}")
                for e in self.slots:
                    out.append(base.replace(f"_{SLOT0:03d}{m.group(2)}_", f"_{e.ifuslot:03d}{m.group(2)}_"))
        p = self.o.path("tarlist", month=MONTH)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(out) + "\n")


def fabricate(demo_red: Path, reports_red: Path, root: Path, shots: int) -> None:
    """The 78-IFU night under ``root`` from the demo's products and the reports of ``reports_red``."""
    from hetred.layout import Layout

    f = Fab(Layout(demo_red.parent / "raw", demo_red), Layout(root / "raw", root / "red"), shots,
            Layout(reports_red.parent / "raw", reports_red))
    f.calibration()
    for dv in f.shots:
        f.shot(dv)
    f.tarlist()


def ensure_demo(demo: Path) -> Path:
    red = demo / "red"
    if not (red / "h5").is_dir():
        print(f"no reduced demo in {demo}: running hetred demo (about 9 min) ...", flush=True)
        env = dict(os.environ, PYTHONPATH=str(SRC))
        subprocess.run([sys.executable, "-c", "from hetred.cli import main; main()", "-q", "demo", str(demo)],
                       env=env, check=False)
    if not (red / "h5").is_dir():
        raise SystemExit(f"{demo}: no reduced demo")
    return red


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", required=True, help="a hetred demo directory (made when it holds none)")
    ap.add_argument("--shots", type=int, default=8, help="shots of the fabricated 78-IFU night")
    ap.add_argument("--dir", help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(SRC))
    demo_red = ensure_demo(Path(args.demo).resolve())
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_report_"))
    try:
        # 1. detection reports
        det = root / "det"
        (det / "red").mkdir(parents=True, exist_ok=True)
        if not (det / "red" / "h5").exists():
            (det / "red" / "h5").symlink_to(demo_red / "h5")
        dv = f"{NIGHT}v{OBS0:03d}"
        r = _child("detections", str(det), dv)
        n = r["counts"]["reports"]
        per = r["wall"] / n
        print(f"detection reports of {dv}: {n} reports in {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU on one core: "
              f"{per:.3f} s per report (the unit's own per report made: {r['counts']['seconds_per_report']:.3f} s); "
              f"target <= {TARGET_REPORT_S} s: {'met' if per <= TARGET_REPORT_S else 'NOT met'}")
        # 2. the night page of a 78-IFU night
        night = root / "night"
        t0 = time.perf_counter()
        if not (night / "red" / "markers").exists():
            fabricate(demo_red, det / "red", night, args.shots)
        print(f"fabricated the 78-IFU night ({args.shots} shots) in {time.perf_counter() - t0:.0f} s (not timed)")
        r = _child("night", str(night), NIGHT)
        c = r["counts"]
        print(f"night page of a 78-IFU night, {c['shots']} shots: {r['wall']:.1f} s wall ({r['plan']:.1f} s of it the "
              f"stage registry's units), {r['cpu']:.1f} s CPU on one core; {c['pages']} pages, {c['files']} files "
              f"linked or written ({c['bytes'] / 1e9:.1f} GB were they copied), index.html weight {c['page_weight'] / 1e6:.2f} MB, "
              f"{c['broken_links']} broken links, {c['marked']} numbers marked; target <= {TARGET_NIGHT_S:.0f} s: "
              f"{'met' if r['wall'] <= TARGET_NIGHT_S else 'NOT met'}")
        from hetred.layout import Layout
        from hetred.report.html import page_weight

        lay = Layout(night / "raw", night / "red")
        shot_pages = sorted(lay.path("web_dir", night=NIGHT).glob(f"{NIGHT}v*.html"))
        if shot_pages:
            w = max(page_weight(p) for p in shot_pages)
            print(f"heaviest shot page: {w / 1e6:.2f} MB with every image (its thumbnails are lazy-loaded)")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
