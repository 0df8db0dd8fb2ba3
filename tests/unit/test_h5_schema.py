"""hetred's HDF5 tables against h5tools' IsDescription classes at the 0.8.7 commit (d35b01a) and
at HEAD (b8caea2): names, order, types and shapes (tests/data/h5tools_schema.json, extracted from
the hetdex_api sources by scripts/h5tools_schema.py; regenerated and compared here when a clone
of HETDEX/hetdex_api is at hand)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tables as tb

from hetred.h5 import schema

ROOT = Path(__file__).resolve().parents[2]
FACTS = json.loads((ROOT / "tests" / "data" / "h5tools_schema.json").read_text())
SHOT, ASTRO = "h5tools/create_shot_hdf5.py", "h5tools/create_astrometry_hdf5.py"
FIDX, DET, S2D = "h5tools/create_fiber_index_hdf5.py", "h5tools/create_detect_hdf5.py", "hetdex_tools/get_spec2D.py"

#: hetred table -> (h5tools file, class) in both schemas
CLASSES = {
    "shot": (SHOT, "VIRUSShot"), "fibers": (SHOT, "VIRUSFiber"), "images": (SHOT, "VIRUSImage"),
    "shot_fiberindex": (SHOT, "VIRUSFiberIndex"), "qa": (ASTRO, "QualityAssessment"),
    "nominal": (ASTRO, "NominalVals"), "dithall": (ASTRO, "Dithall"), "survey_fiberindex": (FIDX, "VIRUSFiberIndex"),
    "detections": (DET, "Detections"), "spectra": (DET, "Spectra"), "det_fibers": (DET, "Fibers"),
    "phot_image": (S2D, "PhotImage"), "spec1d": (S2D, "Spec1D"),
}


def reference_dtype(cols: list) -> np.dtype:
    return schema.dtype(tuple((n, c, tuple(s), p) for n, c, s, p in cols))


@pytest.mark.parametrize("version", schema.SCHEMAS)
@pytest.mark.parametrize("table", sorted(CLASSES))
def test_every_table_has_the_columns_of_its_h5tools_class(table, version):
    f, cls = CLASSES[table]
    want = reference_dtype(FACTS["schemas"][version][f][cls])
    got = schema.dtype(schema.columns(table, version))
    assert got.names == want.names, (table, version)
    assert got == want, (table, version)


def test_the_head_only_tables():
    head = FACTS["schemas"]["head"]
    assert schema.dtype(schema.STARCATALOG_HEAD) == reference_dtype(head[ASTRO]["StarCatalog"])
    assert schema.dtype(schema.columns("mask", "head")) == reference_dtype(head[FIDX]["VIRUSFiberIndexWithFlags"])
    assert "StarCatalog" not in FACTS["schemas"]["0.8.7"][ASTRO]          # 0.8.7 writes astropy's table


@pytest.mark.parametrize("version", schema.SCHEMAS)
def test_spec2d_fiber_images_as_get_spec2d(version):
    ref = FACTS["schemas"][version][S2D]["FiberImage2D"]
    got = schema.fiber_image_2d(100, 9)
    assert [(n, c, p) for n, c, _, p in ref] == [(n, c, p) for n, c, _, p in got]
    assert [s for _, _, s, _ in got] == [(), (100,), (9, 100), (4, 9, 100)]


def test_the_row_sizes_and_differences_between_schemas():
    assert schema.dtype(schema.columns("fibers", "0.8.7")).itemsize == 62133     # hetdex_api_client.md §4.1
    n087 = set(schema.dtype(schema.columns("fibers", "0.8.7")).names)
    nhead = set(schema.dtype(schema.columns("fibers", "head")).names)
    assert n087 - nhead == {"error1Dfib", "spec_fullsky_sub", "Throughput"}
    assert nhead - n087 == {"error1D", "calfib_ffsky"}
    d087 = set(schema.dtype(schema.columns("detections", "0.8.7")).names)
    dhead = set(schema.dtype(schema.columns("detections", "head")).names)
    assert d087 - dhead == {"detectname"}
    assert dhead - d087 == {"apcor", "sn_cen", "flux_noise_1sigma", "sn_3fib", "sn_3fib_cen", "mc_file", "mc_file_idx"}


def test_pytables_orders_pos_columns_first_then_by_name():
    d = schema.dtype(schema.columns("fibers"))
    assert d.names[:4] == ("multiframe", "ra", "dec", "fiber_id")
    rest = d.names[4:]
    assert list(rest) == sorted(rest)            # upper case (Throughput) first, as PyTables sorts


def test_the_facts_match_the_hetdex_api_sources_when_at_hand():
    repo = os.environ.get("HETDEX_API_REPO", "/work/.mirror/HETDEX+hetdex_api/repo")
    if not Path(repo).exists():
        pytest.skip("no clone of HETDEX/hetdex_api (set HETDEX_API_REPO)")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "h5tools_schema.py"), repo], capture_output=True,
                       text=True, check=False)
    if p.returncode != 0:
        pytest.skip(f"the clone lacks the commits: {p.stderr.strip()[-200:]}")
    assert json.loads(p.stdout) == FACTS


def test_a_written_table_has_the_schema_dtype(tmp_path):
    for version in schema.SCHEMAS:
        cols = schema.columns("detections", version)
        with tb.open_file(str(tmp_path / f"x{version}.h5"), "w") as f:
            t = f.create_table(f.root, "Detections", schema.description(cols), "t")
            assert t.dtype == schema.dtype(cols)
