"""Unit checks of the simulator's building blocks."""
from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from hetred.sim import almanac, detector, focalplane, header, optics, plan, seeds, spectra
from hetred.virus import amp as ampgeom


def test_profile_cdf_table_matches_incomplete_gamma():
    rng = np.random.default_rng(0)
    y = rng.uniform(-12, 12, 20000)
    sig = rng.uniform(2.3, 2.7, y.size)
    p = rng.uniform(2.2, 2.8, y.size)
    assert np.abs(optics.profile_cdf(y, sig, p) - optics.profile_cdf_exact(y, sig, p)).max() < 2e-6


def test_profile_integrates_to_one_and_is_not_gaussian():
    y = np.linspace(-15, 15, 30001)
    pdf = np.gradient(optics.profile_cdf_exact(y, 2.5, 2.5), y)
    assert abs(np.trapezoid(pdf, y) - 1) < 1e-6
    assert abs(np.trapezoid(pdf * y * y, y) ** 0.5 - 2.5 * 1.0) > 0.05       # sigma is not the rms
    ref = np.exp(-0.5 * np.abs(y / 2.5) ** 2.5)
    assert np.allclose(pdf / pdf.max(), ref, atol=1e-4)


def test_optics_geometry_and_light_budget():
    o = optics.build_optics(3, "20180110", 53, "LL")
    spec = np.ones((112, 1032), dtype=np.float32) * 1000
    img = o.spread(spec)
    core = o.matrix.sum(axis=0).A1.reshape(112, 1032)
    assert np.allclose(core[5:-5, 100:-100], 1 - o.halo_frac, atol=1e-5)      # exact pixel integration
    assert 0.03 <= o.halo_frac <= 0.04
    assert 0.9 * 1000 * 112 * 1032 < img.sum() <= 1000 * 112 * 1032
    d = np.diff(o.trace[:, 500])
    assert sorted(np.argsort(d)[-2:]) == [36, 74]
    assert 10 < o.trace[0].min() and o.trace[-1].max() < 1030
    assert np.ptp(o.trace[0]) < 8 and abs(o.night_shift_y) <= 0.2
    disp = o.dwave.mean(axis=0)
    assert 2.0 < disp[0] < 2.04 and 1.88 < disp[-1] < 1.91
    assert 5.0 <= o.fwhm.min() and o.fwhm.max() <= 6.0
    live = np.delete(o.ftf[:, 516], [f - 1 for f in o.dead]) / o.amp2amp
    assert 0.03 < live.std() < 0.13 and all(o.ftf[f - 1, 516] / o.amp2amp <= 0.3 * 1.5 for f in o.dead)


def test_halo_follows_the_traces():
    """The halo of a fiber at column x is centred on its trace at x: exactly the kernel matrix
    1/(|d| + 4) at integer trace positions, linear between integers; it follows a curved trace."""
    o = optics.build_optics(3, "20180110", 53, "LL")
    spec = np.random.default_rng(0).uniform(500, 1500, (112, 1032)).astype(np.float32)
    o.trace = np.round(o.trace)
    cols = [0, 17, 516, 1031]
    exact = np.stack([optics._halo_matrix(o.trace[:, c], o.halo_frac) @ spec[:, c] for c in cols], 1)
    assert np.allclose(o.halo_light(spec)[:, cols], exact, rtol=2e-5)
    one = np.zeros((112, 1032), np.float32)
    one[0] = 1000.0
    o = optics.build_optics(3, "20180110", 53, "LL")
    h = o.halo_light(one)
    peak = np.argmax(h, axis=0)
    assert np.abs(peak - np.floor(o.trace[0] + 0.5)).max() <= 1 and np.ptp(peak) >= 2


def test_line_pixel_integration_is_normalised():
    o = optics.build_optics(3, "20180110", 53, "RU")
    frac = spectra.lines_per_pixel(o.coeffs, o.fwhm, [(4358.335, 1.0), (5085.822, 2.0)])
    assert np.allclose(frac.sum(axis=1), 3.0, atol=1e-6)
    x = spectra.column_of(o.coeffs, 4358.335)
    assert np.allclose(spectra.wavelength(o.coeffs, x[:, None])[:, 0] - 4358.335, 0, atol=1e-8)


def test_poisson_sampler_moments():
    r = np.random.default_rng(1)
    for lam in (0.3, 5.0, 8.0, 50.0, 5000.0):
        x = detector.poisson(r, np.full(400_000, lam, dtype=np.float32))
        assert abs(x.mean() - lam) < 5 * np.sqrt(lam / x.size) + 1e-3
        assert abs(x.var() / lam - 1) < 0.02
        assert x.min() >= 0 and np.all(x == np.round(x))


def test_raw_to_oriented_agrees_with_orient():
    for amp in ("LL", "LU", "RL", "RU"):
        raw = np.zeros((1032, 1032))
        raw[10, 700] = 1
        o = ampgeom.orient(raw, amp, detector.ampname_of(amp))
        y, x = detector.raw_to_oriented(np.array(10), np.array(700), amp)
        assert o[int(y), int(x)] == 1


def test_detector_properties():
    d = detector.build_detector(2, "20180110", 63, "LU")
    assert 0.85 <= d.gain_header <= 0.90 and abs(d.gain_true / d.gain_header - 1) <= 0.02
    assert 2.9 <= d.rdnoise_header <= 3.3 and 1000 <= d.bias_base <= 2200
    s = d.bias_structure
    assert s.shape == (1032, 1064) and s[20:, :1032].std() < 1.0
    assert abs(ampgeom.overscan_region(s).mean()) < 1e-4
    assert s[0].mean() < -3                                # readout-start ramp
    assert len(d.traps) <= 2 and all(30 <= t[2] <= 300 for t in d.traps)
    r = np.random.default_rng(0)
    raw = detector.digitise(None, d, 1500.0, r)
    assert raw.dtype == np.uint16 and raw.shape == (1032, 1064)
    noise = np.std(raw[100:, 1034:1060].astype(float))
    assert abs(noise - d.rdnoise_true / d.gain_true) < 0.15
    rows, cols, e = detector.cosmic_rays(np.random.default_rng(0), 360.0)
    assert 1000 < e.sum() / 50 < 20000 and len(np.unique(rows * 2000 + cols)) > 30


def test_fits_bytes_round_trip():
    data = (np.arange(1032 * 1064) % 65536).astype(np.uint16).reshape(1032, 1064)
    h = header.build_header({"OBJECT": "hg", "IMAGETYP": "cmp", "UT": "01:02:03.456"})
    buf = header.fits_bytes(h, data)
    assert len(buf) % 2880 == 0 and len(buf) == 2211840          # the real files' size
    with fits.open(io.BytesIO(buf)) as hdul:
        assert hdul[0].data.dtype == np.uint16 and np.array_equal(hdul[0].data, data)
        assert hdul[0].header["OBJECT"] == "hg" and hdul[0].header["UT"] == "01:02:03.456"
        assert hdul[0].header.comments["OBJECT"] == "Object Name"
    with pytest.raises(KeyError):
        header.build_header({"AMP": "LL"})                        # raw files have no AMP keyword


def test_focal_plane():
    slots = focalplane.choose_slots(n_ifus=78)
    assert len(slots) == 78 == len({s.ifuslot for s in slots}) == len({s.specid for s in slots})
    assert len({s.ifuid for s in slots}) == 78 and len({s.contid for s in slots}) == 78
    for s in slots:
        gx, gy = focalplane.grid_position(s.ifuslot)
        assert abs(s.x_fp - gx) < 2.5 and abs(s.y_fp - gy) < 2.5
    assert [s.ifuslot for s in focalplane.choose_slots(n_ifus=2)] == [53, 63]
    e = focalplane.slot_entry(53)
    assert (e.specid, e.ifuid, e.contid) == (320, "020", "0059")
    assert focalplane.slot_entry(54).x_fp == -50.0 and focalplane.parse_slot_list("053,054") == [53, 54]


def test_plan_and_almanac():
    alm = almanac.evening("20170103")
    assert alm["sunset"].strftime("%H") in ("23", "00") and alm["astronomical"] > alm["sunset"]
    p = plan.plan_night("20180610", plan.FrameCounts(zro=11, drk=2, flt=1, hg=1, cd=1, twi=3, shots=4))
    kinds = [o.kind for o in p.observations]
    assert kinds[:6] == ["twi", "cmp", "cmp", "flt", "zro", "drk"] and kinds[6:] == ["sci"] * 4
    assert [o.obs for o in p.observations] == list(range(1, 11))
    zro = p.observations[4].exposures
    assert len(zro) == 11 and zro[0].exptime < 1e-3 and 20 < (zro[1].start - zro[0].start).total_seconds() < 30
    for o in p.shots:
        assert [e.exp for e in o.exposures] == [1, 2, 3] and o.exposures[0].start >= alm_start(p)
        assert 25 < almanac.altaz(o.ra0, o.dec0, o.exposures[1].start)[0] < 85
    stamps = [e.stamp for e in p.exposures]
    assert stamps == sorted(stamps) and all(s.startswith("20180610T") for s in stamps)
    assert plan.parse_nights("20180130-20180202") == ["20180130", "20180131", "20180201", "20180202"]


def alm_start(p):
    return p.almanac["astronomical"]


def test_seeds_are_keyed_not_ordered():
    a = seeds.rng(7, seeds.FRAME, night="20180110", obs=3, exp=1, ifuslot=53, amp="LL").random(3)
    seeds.rng(7, seeds.FRAME, night="20180110", obs=4, exp=1, ifuslot=53, amp="LL").random(10)
    b = seeds.rng(7, seeds.FRAME, night="20180110", obs=3, exp=1, ifuslot=53, amp="LL").random(3)
    c = seeds.rng(7, seeds.FRAME, night="20180110", obs=3, exp=1, ifuslot=53, amp="LU").random(3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_spectra_throughput_and_solar(tmp_path):
    t = spectra.throughput(np.array([3470.0, 4540.0, 5540.0]))
    assert np.allclose(t, [0.0246, 0.1603, 0.1277], atol=0.002)
    sun = spectra.solar_fine(None)
    k = np.interp(3933.7, spectra.FINE, sun) / np.interp(3900.0, spectra.FINE, sun)
    assert k < 0.8                                          # Ca K absorption survives the LSF
    f = tmp_path / "sun.dat"
    f.write_text("\n".join(f"{w} {1.0 - 0.5 * np.exp(-0.5 * ((w - 4500) / 3) ** 2)}"
                           for w in np.arange(3400.0, 5700.0, 0.5)))
    s2 = spectra.solar_fine(str(f))
    assert np.interp(4500.0, spectra.FINE, s2) < 0.85 * np.interp(4000.0, spectra.FINE, s2)


def test_headers_of_a_whole_night_fit_the_cards():
    """Every exposure's header formats without astropy truncating anything (80-char cards)."""
    import warnings

    from hetred.sim.frame import exposure_context

    p = plan.plan_night("20180110", plan.FrameCounts(zro=11, drk=2, flt=3, hg=2, cd=2, twi=4, shots=3))
    amp_vals = header.amp_values(focalplane.slot_entry(53), "RU", 0.871, 3.12, 1700, 21000, "UL")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for o in p.observations:
            for e in o.exposures:
                for us in (0, 995000):     # also a start time just before a whole second
                    e2 = e.__class__(**{**e.__dict__, "start": e.start.replace(microsecond=us)})
                    vals = dict(exposure_context(3, e2, o).header_values, **amp_vals)
                    text = header.build_header(vals).tostring()
                    assert len(text) % 80 == 0 and "WEATDATE" in text
