"""Simulated raw frames have the real format: layout, headers, dtype, orientation keywords."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest
from astropy.io import fits

from hetred.io.raw import read_raw_member, tar_members
from hetred.layout import parse
from hetred.sim.header import TEMPLATE
from hetred.virus.fplane import read_fplane
from tests.helpers import real_file

KINDS = {"zro", "drk", "flt", "cmp", "twi", "sci"}


def test_tars_follow_the_layout(sim_night):
    lay, night = sim_night.layout, sim_night.night
    tars = sorted((lay.raw / night / "virus").glob("*.tar"))
    assert tars == sorted(sim_night.summary.tars)
    kinds = set()
    for tar in tars:
        obs = int(tar.stem[5:])
        assert tar == lay.path("raw_tar", night=night, obs=obs)
        for m in tar_members(tar):
            f = parse("raw_member", m)
            assert f is not None, m
            assert f["obs"] == obs and f["ifuslot"] == sim_night.ifuslot and f["stamp"].startswith(night)
            kinds.add(f["kind"])
    assert kinds == KINDS
    n = sum(len(tar_members(t)) for t in tars)
    assert n == sim_night.summary.n_members == 4 * 13


def test_frames_read_with_the_real_keywords(sim_night):
    for kind in sorted(KINDS):
        tar, member, e = sim_night.members(kind)[0]
        raw = read_raw_member(tar, member)
        assert raw.data.dtype == np.uint16 and raw.data.shape == (1032, 1064)
        assert list(raw.header.keys()) == [k for k, _, _ in TEMPLATE]
        assert raw.header["BZERO"] == 32768 and raw.header["BITPIX"] == 16
        assert raw.header["IMAGETYP"] == kind and raw.header["OBSID"] == e["obs"]
        assert raw.amp == "LL" and raw.ampname == "LR" and raw.ifuslot == sim_night.ifuslot
        st = e["stamp"]           # YYYYMMDDTHHMMSS.S: the UT of the start, truncated to 0.1 s
        assert raw.header["UT"][:10] == f"{st[9:11]}:{st[11:13]}:{st[13:17]}"
        assert raw.header["DATE-OBS"] == f"{st[:4]}-{st[4:6]}-{st[6:8]}"
        assert raw.contid == "0059" and raw.header["IFUID"] == "020" and isinstance(raw.header["IFUSLOT"], int)
        assert 0.85 <= raw.header["GAIN"] <= 0.90 and 2.9 <= raw.header["RDNOISE"] <= 3.3
    with tarfile.open(tar) as tf:          # the bytes are a standard FITS file, BZERO-scaled uint16
        with fits.open(tf.extractfile(member)) as hdul:
            hdul.verify("exception")


def test_amp_keywords_per_amp(sim_night):
    for tar, member, _ in sim_night.members("zro")[:4]:
        raw = read_raw_member(tar, member)
        half = raw.header["CCDHALF"]
        assert raw.ampname == {"L": "LR", "U": "UL"}[half] == raw.header["AMPLIFIE"]
        assert raw.header["CCDSEC"] == raw.header["DETSEC"] == {"L": "[1:2064,1:1032]", "U": "[1:2064,1033:2064]"}[half]
        assert raw.header["BIASSEC"] == "[1033:1064,1:1032]"


def test_arcs_are_separate_observations(sim_night):
    hg = sim_night.members("cmp", "hg")
    cd = sim_night.members("cmp", "cd-a")
    assert hg and cd and {e["obs"] for *_, e in hg}.isdisjoint({e["obs"] for *_, e in cd})
    assert read_raw_member(*hg[0][:2]).header["OBJECT"] == "hg"
    assert read_raw_member(*cd[0][:2]).header["OBJECT"] == "cd-a"


def test_science_headers_and_times(sim_night):
    sci = sim_night.members("sci")
    assert {e["exp"] for *_, e in sci} == {1, 2, 3}
    for tar, member, e in sci[::4]:
        h = read_raw_member(tar, member).header
        assert h["EXPTIME"] == 360 and h["DITHER"] == e["exp"] and h["OBJECT"].startswith("DEX")
        assert -90 < h["TRAJCDEC"] < 90 and 0 <= h["TRAJCRA"] < 24 and 0 <= h["PARANGLE"] < 360
    stamps = [e["stamp"] for e in sim_night.truth_night["exposures"]]
    assert stamps == sorted(stamps)            # observations in time order
    twi = [e for e in sim_night.truth_night["exposures"] if e["kind"] == "twi"]
    first_sci = min(e["stamp"] for e in sim_night.truth_night["exposures"] if e["kind"] == "sci")
    assert twi[0]["stamp"] < first_sci and "T00" <= twi[0]["stamp"][8:11] <= "T03"


def test_fplane_matches_headers(sim_night):
    fp = read_fplane(sim_night.layout.path("truth_fplane"))
    slot = fp[sim_night.ifuslot]
    h = read_raw_member(*sim_night.members("flt")[0][:2]).header
    assert (slot.specid, slot.ifuid, slot.contid) == (h["SPECID"], h["IFUID"], "0059")
    assert slot.specslot == int(h["SSA"])


def test_template_is_the_real_header():
    path = real_file("raw", "20180522T023753.4_053RL_zro.fits")
    real = fits.getheader(path)
    assert list(real.keys()) == [k for k, _, _ in TEMPLATE]
    for key, value, _ in TEMPLATE:
        assert real[key] == value, key


@pytest.mark.parametrize("kind", ["zro", "flt"])
def test_values_in_range(sim_night, kind):
    raw = read_raw_member(*sim_night.members(kind)[0][:2])
    data = raw.data[:, :1032].astype(float)
    level = np.median(raw.data[9:, 1033:1060])
    assert 1000 <= level <= 2200
    assert data.max() <= 65535
    if kind == "flt":          # lamp flat: peak 2.5-3.5e4 electrons per pixel (sim.frame.FLAT_PEAK), unsaturated
        peak_e = np.percentile(data - level, 99.9) * raw.header["GAIN"]
        assert 2e4 < peak_e < 5e4 and data.max() < 65535
