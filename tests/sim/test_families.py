"""The optics families of the simulator (hetred.sim.families, docs/simulator.md)."""
from __future__ import annotations

import numpy as np
import pytest

from hetred.sim import families as FAM
from hetred.sim import optics, seeds


def test_classic_is_the_default_and_unchanged():
    a = optics.build_optics(3, "20180110", 53, "LL")
    b = optics.build_optics(3, "20180110", 53, "LL", "classic")
    assert a.family == b.family == "classic" and a.family_params == {}
    for k in ("trace", "wave", "sigma", "power", "fwhm", "ftf", "coeffs"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


@pytest.mark.parametrize("fam", FAM.SMOOTH_FAMILIES)
def test_family_changes_only_the_fiber_dependence(fam):
    c = optics.build_optics(3, "20180110", 53, "RU")
    o = optics.build_optics(3, "20180110", 53, "RU", fam)
    assert o.family == fam and set(o.family_params) >= {"zero", "stretch", "dc2", "curv", "sigma"}
    assert o.dead == c.dead and o.amp2amp == c.amp2amp and o.halo_frac == c.halo_frac
    assert not np.array_equal(o.wave, c.wave) and not np.array_equal(o.trace, c.trace)
    # the wavelength stays a quadratic per fiber, increasing, in the range of the classic model
    x = np.arange(1032.0)
    np.testing.assert_allclose(o.wave, o.coeffs[:, :1] + o.coeffs[:, 1:2] * x + o.coeffs[:, 2:3] * x ** 2,
                               atol=1e-6)
    assert np.all(np.diff(o.wave, axis=1) > 0)
    assert 3470 < o.wave[:, 0].min() and o.wave[:, 0].max() < 3515 and 5490 < o.wave[:, -1].min()
    assert np.all((o.sigma > 2.3) & (o.sigma < 2.7)) and np.all((o.fwhm > 5.0) & (o.fwhm < 6.0))
    # zero point and tilt both vary along the slit
    tilt = o.wave[:, -1] - o.wave[:, 0]
    assert np.ptp(o.wave[:, 516]) > 1.0 and np.ptp(tilt) > 0.5


def test_edge_family_steepens_toward_an_edge():
    steep = []
    for seed in range(12):
        g, pars = FAM.slit_function("edge", seeds.rng(seed, seeds.FAMILY, ifuslot=53, amp="LL"))
        d = np.abs(np.diff(g))
        ends = max(d[:11].max(), d[-11:].max())          # the outer 10 % of the slit
        steep.append(ends / np.median(d))
        assert {"form", "edges"} <= set(pars)
    assert min(steep) > 3.0


def test_mixed_picks_one_family_per_amp_from_the_seed():
    fams = {amp: optics.build_optics(4, "20180110", 53, amp, "mixed").family for amp in ("LL", "LU", "RL", "RU")}
    again = {amp: optics.build_optics(4, "20180110", 53, amp, "mixed").family for amp in ("LL", "LU", "RL", "RU")}
    assert fams == again and set(fams.values()) <= set(FAM.SMOOTH_FAMILIES)
    assert len({optics.build_optics(s, "20180110", 53, "LL", "mixed").family for s in range(12)}) >= 3


def test_truth_records_the_family(tmp_path):
    import json

    from astropy.io import fits

    from hetred.errors import HetredError
    from hetred.layout import Layout
    from hetred.sim import FrameCounts, plan_archive, simulate_archive

    lay = Layout(tmp_path / "raw", tmp_path / "red", tmp_path / "truth")
    simulate_archive(lay, nights="20180110", ifuslots=[53], seed=2, optics_family="sine",
                     frames=FrameCounts(zro=1, drk=0, flt=0, hg=0, cd=0, twi=0, shots=0))
    night = json.loads(lay.path("truth_night", night="20180110").read_text())
    assert night["optics_family"] == "sine"
    assert night["amps"]["053LL"]["optics_family"] == "sine"
    assert "periods" in night["amps"]["053LL"]["optics_family_params"]["zero"]
    assert fits.getheader(lay.path("truth_amp", night="20180110", ifuslot=53, amp="RU"))["OPTFAM"] == "sine"
    with pytest.raises(HetredError, match="optics family"):
        plan_archive(nights="20180110", optics_family="wiggly")
