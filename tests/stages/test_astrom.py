"""hetred astrom on simulated shots: the issue-12 acceptance against the truth, the command, bad input.

The shots are simulated at the level of the reconstructed images (tests/stages/astrom_support.py):
16 IFUs spread over the focal plane, stars g 16.5-21.5 over the whole IFU, the header pointing
1-3" and the rotation 1.4-1.65 deg off the truth, transparency 0.9-1.1 per exposure. The simulator
dithers by hetred.virus.coords.DITHERS, which the config passes to the astrometry.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hetred.cli import cli
from hetred.virus.coords import DITHERS
from tests.stages.astrom_support import NIGHT, make_layout_shot

SPREAD = (15, 22, 27, 33, 37, 42, 47, 52, 63, 72, 76, 82, 86, 93, 103, 106)     # 16 IFUs, whole plane


def _config(tmp, **extra):
    cfg = tmp / "hetred.toml"
    vals = {"dithers": [v for d in DITHERS for v in d], **extra}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in vals.items())
    cfg.write_text(f"[stages.astrom]\n{body}\n")
    return cfg


def _run(lay, cfg, *args):
    return CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "--config", str(cfg), *args])


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("astrom")
    ls = make_layout_shot(tmp, SPREAD, seed=3)
    cfg = _config(tmp)
    r = _run(ls.layout, cfg, "astrom", "--shot", ls.datevobs)
    return ls, cfg, r


def test_the_shot_is_solved_and_every_file_written(solved):
    ls, _, r = solved
    assert r.exit_code == 0, r.output
    d = ls.layout.path("astrom_dir", datevobs=ls.datevobs)
    for name in ("radec.orig", "radec2_final.dat", "norm.dat", "dithall.use", "all.mch", "all.raw", "fplane.txt",
                 "shout.ifustars", "ang_off.png"):
        assert (d / name).is_file(), name
    for k in (1, 2, 3):
        for key in ("astrom_radec_exp", "astrom_radec2_exp", "astrom_getoff", "astrom_getoff2", "astrom_tmp",
                    "astrom_xy", "astrom_dith", "astrom_match_png"):
            assert ls.layout.path(key, datevobs=ls.datevobs, exp=k).is_file(), (key, k)
    assert ls.layout.path("astrom_trial_getoff2", datevobs=ls.datevobs, exp=2, angle="01.450").is_file()
    assert not list(d.rglob(".*.tmp"))                     # atomic writes leave nothing behind
    assert ls.layout.path("marker_done", stage="astrom", unit=ls.datevobs).is_file()
    assert "20180110v007" in r.output


def test_acceptance_against_the_truth(solved):
    """Every fiber's RA/Dec within 0.1" rms of the truth, PA within 0.01 deg, norm.dat within 0.5 %
    of the injected transparency ratios."""
    from hetred.astrom import formats as F
    from hetred.astrom.fibers import read_dith
    from hetred.demo.checks_astrom import fiber_errors
    from hetred.sim.focalplane import slot_entry

    ls, _, _ = solved
    sc = ls.shot.scene
    dith = read_dith(ls.layout.path("dithall", datevobs=ls.datevobs))
    assert len(dith["ra"]) == 3 * 448 * len(SPREAD)
    err = fiber_errors(dith, {s: slot_entry(s) for s in SPREAD}, sc.ra0, sc.dec0, sc.pa)
    assert np.sqrt(np.mean(err ** 2)) < 0.1
    _ra, _dec, pa = F.read_radec(ls.layout.path("radec_final", datevobs=ls.datevobs))
    assert abs(pa - sc.pa) < 0.01
    norm = np.array(F.read_norm(ls.layout.path("astrom_norm", datevobs=ls.datevobs)))
    assert np.max(np.abs(norm / ls.shot.norm - 1)) < 0.005


def test_rerun_skips_and_overwrite_redoes(solved):
    ls, cfg, _ = solved
    r = _run(ls.layout, cfg, "astrom", "--shot", ls.datevobs)
    assert r.exit_code == 0 and "already done" in r.output
    r = _run(ls.layout, cfg, "astrom", "--shot", ls.datevobs, "--dry-run")
    assert r.exit_code == 0 and "done (would skip)" in r.output


def _small(tmp, **kw):
    ls = make_layout_shot(tmp, (33, 63, 85), seed=5, **kw)
    return ls, _config(tmp, qa=False)


def test_missing_or_empty_catalogue_fails_with_one_line(tmp_path):
    ls, cfg = _small(tmp_path)
    cat = ls.layout.path("star_catalog", datevobs=ls.datevobs)
    cat.unlink()
    r = _run(ls.layout, cfg, "astrom", "--shot", ls.datevobs)
    assert r.exit_code == 1
    err = [ln for ln in r.output.splitlines() if ln.startswith("hetred: error:")]
    assert len(err) == 1 and "no star catalogue" in err[0] and str(cat) in err[0]
    cat.write_text("# only a header\n")
    r = _run(ls.layout, cfg, "astrom", "--shot", ls.datevobs)
    assert r.exit_code == 1 and "has no stars" in r.output
    assert ls.layout.path("marker_failed", stage="astrom", unit=ls.datevobs).is_file()


def test_a_shot_with_one_exposure_fails_with_one_line(tmp_path):
    ls, cfg = _small(tmp_path, exposures=1)
    r = _run(ls.layout, cfg, "astrom", "--shot", ls.datevobs)
    assert r.exit_code == 1
    assert "images of 1 exposure(s) (exp01); the astrometry needs the 3 dithered exposures" in r.output


def test_ifu_missing_from_fplane_and_nan_image_are_left_out_with_a_warning(tmp_path):
    from astropy.io import fits

    ls, cfg = _small(tmp_path)
    fp = ls.layout.path("fplane_archive", night=NIGHT)
    fp.write_text("".join(ln + "\n" for ln in fp.read_text().splitlines() if not ln.startswith("085")))
    cofes = sorted(ls.layout.glob("cofes", night=NIGHT, obs=7, exp=2))
    img = next(p for p in cofes if p.name.endswith("_063_sci.fits"))
    with fits.open(img, mode="update") as h:
        h[0].data[:] = np.nan
    r = _run(ls.layout, cfg, "astrom", "--shot", ls.datevobs)
    assert r.exit_code == 0, r.output
    assert "IFU slot 085 has images but is not in the fplane" in r.output
    assert "no finite pixel (all NaN): left out" in r.output
    marker = json.loads(ls.layout.path("marker_done", stage="astrom", unit=ls.datevobs).read_text())
    assert len(marker["counts"]["warnings"]) >= 2


def test_one_bad_shot_does_not_stop_the_others(tmp_path):
    ls, cfg = _small(tmp_path)
    ls2 = make_layout_shot(tmp_path, (33, 63, 85), seed=6, obs=8)
    ls2.layout.path("star_catalog", datevobs=ls2.datevobs).unlink()
    r = _run(ls.layout, cfg, "astrom", NIGHT[:6])
    assert r.exit_code == 1
    assert ls.layout.path("marker_done", stage="astrom", unit=ls.datevobs).is_file()
    assert ls.layout.path("marker_failed", stage="astrom", unit=ls2.datevobs).is_file()
    errors = [ln for ln in r.output.splitlines() if ln.startswith("hetred: error:")]
    assert len(errors) == 1 and "20180110v008" in errors[0]


def test_outside_the_layout_from_an_image_folder(tmp_path):
    from hetred.sim.cofes_shot import simulate_cofes_shot
    from hetred.sim.focalplane import slot_entry

    simulate_cofes_shot(tmp_path / "in", [slot_entry(s) for s in (33, 63, 85)], seed=2)
    cfg = _config(tmp_path, qa=False)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["--config", str(cfg), "astrom", "--images", str(tmp_path / "in"), "--radec",
                                 str(tmp_path / "in" / "radec.orig"), "--fplane", str(tmp_path / "in" / "fplane.txt"),
                                 "--catalog", str(tmp_path / "in" / "shout.ifustars"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "radec2_final.dat").is_file() and (out / "dithall.use").is_file()
    r = CliRunner().invoke(cli, ["astrom", "--images", str(tmp_path / "in"), "--out", str(out)])
    assert r.exit_code == 1 and "need --radec, --fplane, --catalog" in str(r.exception)
