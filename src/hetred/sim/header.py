"""Raw VIRUS headers: the real keyword set and order, filled in per exposure and amp.

:data:`TEMPLATE` is the primary header of the real bias frame
``20180522T023753.4_053RL_zro.fits`` (145 cards; pyhetdex tests/data, copied to
/work/shared/data/real/raw), keyword for keyword in its order with its comments. The simulator
overwrites the values that describe an exposure (DATE, DATE-OBS, OBJECT, TEL*, PARANGLE, STRUCT*,
HA, ZD, AIRMASS, *_STRT, TRAJ*, UT, ST, MJD, OBSID, *EXPTIME, DARKTIME, IMAGETYP, DITHER, LAMP,
weather) and those that describe the amp (CONTID and the controller boards' S/N, SSA, SPECID,
IFUID, IFUSLOT, CCDPOS, DETECTOR, DETTEMP, CCDHALF, CCDSEC, DETSEC, AMPLIFIE, AMPNAME, GAIN,
RDNOISE, BIASSET). A value that is set drops the ``[UNSET]`` mark of its comment.

The file bytes are the astropy-formatted header followed by the data as big-endian int16 with
BZERO 32768, BSCALE 1 (exactly how the real frames store uint16), so astropy reads the frame
back as uint16 and the card order is the real one (astropy's own writer would move BSCALE/BZERO
to the end).
"""
from __future__ import annotations

import math
from datetime import timedelta
from functools import lru_cache

import numpy as np
from astropy.io import fits

from hetred.sim import almanac, seeds
from hetred.sim.plan import READTIME, Exposure, Observation
from hetred.virus.fplane import FplaneEntry

#: (keyword, value, comment) of the real header, in order
TEMPLATE: tuple[tuple[str, object, str], ...] = (
    ('SIMPLE', True, ''),
    ('BITPIX', 16, ''),
    ('NAXIS', 2, ''),
    ('NAXIS1', 1064, ''),
    ('NAXIS2', 1032, ''),
    ('EXTEND', True, ''),
    ('BSCALE', 1, 'REAL = DATA * BSCALE + BZERO'),
    ('BZERO', 32768, 'DATA-OFFSET'),
    ('DATE', '2018-05-22T02:38:23', 'date and time of writing file'),
    ('DATE-OBS', '2018-05-22', 'Date of the observation'),
    ('TELESCOP', 'het', 'Telescope name'),
    ('INSTRUME', 'virus', 'Instrument name'),
    ('OBJECT', '', '[UNSET] Object Name'),
    ('OBSERVER', '', '[UNSET] Observers'),
    ('TELRA', '+11:40:32.3', 'Right ascension of the tracker'),
    ('TELDEC', '+65:36:47.1', 'Declination of the tracker'),
    ('TELEQNOX', 2000, 'Equinox of the equatorial coordinates'),
    ('PARANGLE', 0.005657, 'Parallactic angle'),
    ('STRUCTAZ', 0.002717, 'Azimuth of the structure'),
    ('STRUCTEL', 55.078606, 'Elevation of the structure'),
    ('HA', '+00:00:00.7', 'Hour angle'),
    ('ZD', 34.921394, 'Zenith distance'),
    ('AIRMASS', 1.21960413859078, 'Airmass'),
    ('X_STRT', -0.626682, 'X pos of tracker at start of exposure (mm)'),
    ('Y_STRT', 0.396569, 'Y pos of tracker at start of exposure (mm)'),
    ('Z_STRT', 0.000526, 'Z pos of tracker at start of exposure (mm)'),
    ('RHO_STRT', -0.036828, 'Rho pos of tracker at start of exposure (deg)'),
    ('THE_STRT', -0.000155, 'Theta pos of tracker at start of exposure (deg)'),
    ('PHI_STRT', -0.000336, 'Phi pos of tracker at start of exposure (deg)'),
    ('RHO_OFFS', -999999.9, '[UNSET] Rho offset of tracker at start of expos'),
    ('TCS_UP', True, 'Flag indicating whether the TCS subsystem was o'),
    ('TRAJID', -999999, 'Identifier of the trajectory'),
    ('TRAJRA', -999999.9, '[UNSET] Right ascension of the trajectory'),
    ('TRAJDEC', -999999.9, '[UNSET] Declination of the trajectory'),
    ('TRAJEQ', -999999.9, '[UNSET] Equinox of the trajectory coordinates'),
    ('TRAJCRA', -999999.9, '[UNSET] Commanded right ascension of the trajec'),
    ('TRAJCDEC', -999999.9, '[UNSET] Commanded declination of the trajectory'),
    ('TRAJCEQ', -999999.9, '[UNSET] Commanded equinox of the trajectory coo'),
    ('TRAJDIR', '', '[UNSET] Direction of track'),
    ('TRAJOBJ', '', '[UNSET] Target name'),
    ('DATAFORM', 'CAMRA', '(VDAS, LRS2, ...)'),
    ('UT', '02:37:53.422', 'Universal time (UTC) of day of start of exposure'),
    ('ST', '+03:03:24.3', 'Local mean sidereal time at start of exposure'),
    ('MJD', 58260.1096460894, 'Modified Julian Date of start of exposure'),
    ('HOSTCOMP', 'vdas', 'Host computer name'),
    ('HOSTOPS', 'Linux 2.6.32-696.23.1.el6.x86_64', 'Host OS'),
    ('PROGRAM', 'camra_server-r9246 2018-05-18T18:19:24.000', 'Data acquisition progra'),
    ('NCCDS', 1, 'Number of CCDs in detector'),
    ('CCDSUM', '2 1', 'CCD total binning (col row)'),
    ('HWSUM', '2 1', 'CCD on chip binning (col row)'),
    ('CCDSIZE', '[1:2064,1:2064]', 'CCD size (unbinned pixels)'),
    ('HWSEC', '[1:2064,1:2064]', 'Region of CCD read (unbinned pixels)'),
    ('OPERATOR', '', '[UNSET] System operator(s)'),
    ('OBSID', 5, 'Observation number for this target'),
    ('RECIPE', '/opt/het/hetdex/bin/vlcal -i virus -pb -b 20', 'Recipe used for this'),
    ('OBSERVAT', 'MCDONALD', 'Observatory'),
    ('REXPTIME', 0, 'Requested exposure time (sec)'),
    ('PEXPTIME', 5.6313e-05, 'Locally perceived exposure time (sec)'),
    ('EXPTIME', 5.6313e-05, 'Estimate of integration time (sec)'),
    ('DARKTIME', 26.986659169, 'Estimate of the total dark time (sec)'),
    ('READTIME', 19.923205343, 'Estimate of the readout time (sec)'),
    ('IMAGETYP', 'zro', 'object, zero, dark, flat, comp, etc.'),
    ('SUBORDIN', False, 'Indicates peer readout system actuated the shut'),
    ('DITHER', 1, 'Position of dither mechanism'),
    ('FILTEREN', 3, 'Filter in wheel one (entrance window)'),
    ('FILTEREX', -999999, '[UNSET] Filter in wheel two (exit window)'),
    ('LAMP', '<none>', 'FCU lamp exposed'),
    ('LIGHTGDE', 'Blue', 'Light guide'),
    ('LIDLDLS', '20170401', ''),
    ('LIDHGA', '20170401', ''),
    ('LIDCDA', '20170401', ''),
    ('LIDFEARA', '20170401', ''),
    ('LIDKRA', '20170401', ''),
    ('LIDCDB', '20170401', ''),
    ('LIDNEB', '20170401', ''),
    ('LIDHPFB', '20180419', ''),
    ('LIDTHARB', '20170401', ''),
    ('LIDQTHB', '20170401', ''),
    ('WEATDATE', '2018-05-22T02:37:53.428', 'Date and time of last weather update (UTC)'),
    ('AMBTEMP', 18.3483333333333, 'Ambient temperature (Celcius)'),
    ('HUMIDITY', 61.829, 'Ambient relative humidity (percent)'),
    ('DEWPOINT', 10.9083333333333, 'Dew point (Celsius)'),
    ('BAROMPRE', 800.6437503045, 'Barometric pressure (mbar)'),
    ('WINDDIR', 130.06, 'Wind direction (deg)'),
    ('WINDSPD', 14.731, 'Wind speed (mph)'),
    ('DUST1_0', 10817, 'Dust count 1.0 um (ppcf)'),
    ('DUST0_3', 816690, 'Dust count 0.3 um (ppcf)'),
    ('WEAT_UP', True, 'Flag indicating whether the weather subsystem w'),
    ('MICROCOD', 'tim_0026.lod', 'Configured CCD controller microcode filename'),
    ('MCODMD5', '34f4c77ce113308fe131e06ea0cf4f6c', 'MD5 Hash for microcode file'),
    ('READELAY', 0, 'Configured readout delay'),
    ('CONTID', 'S/N 0059', 'Controller ID'),
    ('CHCONTID', -999999, '[UNSET] Controller ID used in characterization'),
    ('TIMING', 'ARC1215  REV 2A   20/06/12 S/N 0059 U1R2A.0  U48R2A.0', 'Timing Board'),
    ('CD', 'ARC13    REV 1V   20/07/12 S/N 0059 U49R1V.0', 'Clock Driver Board'),
    ('VIDEO', 'ARC14    REV 1V   06/08/12 S/N 0059 U9R1V.0', 'Video processor'),
    ('PC', 'ARC17    REV 1V   27/06/12 S/N 0059 U1R1V.0', 'Power controller boa'),
    ('FLEX', 'ARCVFLEX REV 3    23/08/12 S/N 0037 DEFAULT', 'Flex cable'),
    ('SSA', '236', 'Spectrograph slot address'),
    ('CRYOTEMP', -181.626300297678, 'Cold sink temperature (Celsius)'),
    ('CONTTEMP', -999999.9, '[UNSET] Controller temperature (Celsius)'),
    ('PRESSURE', -999999.9, '[UNSET] Cryostat vacuum pressure (mbar)'),
    ('MBAROK', False, 'Cryostat pressure validity'),
    ('SPECID', 320, 'Spectrograph ID'),
    ('IFUID', '020', 'IFU head ID'),
    ('IFUSLOT', 53, 'IFU slot position'),
    ('CCDPOS', 'R', 'CCD position in cryostat'),
    ('DETECTOR', 21262, 'Detector ID'),
    ('DETTEMP', -110.017085841857, 'Detector temp (Celsius)'),
    ('SETPOINT', -110, 'Detector setpoint temperature (Celsius)'),
    ('SERVOPWR', 0.63065364, 'Servo heater power (volts)'),
    ('S1_HI', 5, 'Serial 1 high clock voltage'),
    ('S1_LO', -5, 'Serial 1 low clock voltage'),
    ('P1_HI', 2, 'Parallel 1 high clock voltage'),
    ('P1_LO', -8, 'Parallel 1 low clock voltage'),
    ('S2_HI', 5, 'Serial 2 high clock voltage'),
    ('S2_LO', -5, 'Serial 2 low clock voltage'),
    ('P2_HI', 2, 'Parallel 2 high clock voltage'),
    ('P2_LO', -8, 'Parallel 2 low clock voltage'),
    ('S3_HI', 5, 'Serial 3 high clock voltage'),
    ('S3_LO', -5, 'Serial 3 low clock voltage'),
    ('P3_HI', 4, 'Parallel 3 high clock voltage'),
    ('P3_LO', -6, 'Parallel 3 low clock voltage'),
    ('SW_HI', 4.5, 'Summing well high clock voltage'),
    ('SW_LO', -4.5, 'Summing well low clock voltage'),
    ('RG_HI', 6, 'Reset gate high clock voltage'),
    ('RH_LO', -2, 'Reset gate low clock voltage'),
    ('VOD_U', 26, 'Output drain bias voltage - upper'),
    ('VOD_L', 26, 'Output drain bias voltage - lower'),
    ('VOG', 1, 'Output gate bias voltage'),
    ('VRD', 15, 'Reset drain bias voltage'),
    ('CCDHALF', 'L', 'Amplifier position'),
    ('CCDSEC', '[1:2064,1:1032]', 'Region of CCD read (unbinned CCD pixels)'),
    ('DETSEC', '[1:2064,1:1032]', 'Detector section (unbinned CCD pixels)'),
    ('AMPSEC', '[2064:1,1:1032]', 'Amplifier section (unbinned CCD pixels)'),
    ('AMPLIFIE', 'LR', 'Amplifier in use'),
    ('AMPNAME', 'LR', 'Amplifier in use'),
    ('GAIN', 0.875, 'Gain (electrons per ADU)'),
    ('RDNOISE', 2.97000002861023, 'Read noise (electrons)'),
    ('BIASSET', 1915, 'Bias setting (adu)'),
    ('BIASTRGT', 2000, 'Desired bias value (adu)'),
    ('DATASEC', '[1:1032,1:1032]', 'Image region of data frame (binned)'),
    ('BIASSEC', '[1033:1064,1:1032]', 'Overscan region of data frame (binned)'),
    ('TRIMSEC', '[1:1032,1:1032]', 'Image region to be extracted (binned)'),
    ('REPEAT', False, 'Indicates a duplicate frame'),
)

_UNSET = "[UNSET] "
_HALF_SEC = {"L": "[1:2064,1:1032]", "U": "[1:2064,1033:2064]"}
_BOARDS = ("TIMING", "CD", "VIDEO", "PC")


@lru_cache(maxsize=1)
def _template_index() -> dict[str, int]:
    return {k: i for i, (k, _, _) in enumerate(TEMPLATE)}


def _comment(key: str, value: object) -> str:
    comment = TEMPLATE[_template_index()[key]][2]
    if comment.startswith(_UNSET) and value not in ("", -999999, -999999.9):
        comment = comment[len(_UNSET):]
    return comment


def build_header(values: dict[str, object]) -> fits.Header:
    """The template with ``values`` filled in (unknown keys are an error)."""
    idx = _template_index()
    unknown = [k for k in values if k not in idx]
    if unknown:
        raise KeyError(f"not raw header keywords: {unknown}")
    cards: list = []
    for key, value, comment in TEMPLATE:
        if key in values:
            value = values[key]
            comment = _comment(key, value)
        if key == "UT":      # the real card is laid out tighter than astropy would (80 chars)
            cards.append(fits.Card.fromstring(f"UT      = '{value}' / {comment}".ljust(80)[:80]))
        else:
            cards.append((key, value, comment))
    return fits.Header(cards)


def fits_bytes(header: fits.Header, data: np.ndarray) -> bytes:
    """A complete FITS file: ``header`` (BITPIX 16, BZERO 32768) and uint16 ``data``."""
    if data.dtype != np.uint16 or data.shape != (header["NAXIS2"], header["NAXIS1"]):
        raise ValueError(f"data must be uint16 {header['NAXIS2']}x{header['NAXIS1']}, got {data.dtype} {data.shape}")
    head = header.tostring(padding=True).encode("ascii")
    body = (data ^ np.uint16(0x8000)).view(np.int16).astype(">i2").tobytes()
    pad = (-len(body)) % 2880
    return head + body + b"\0" * pad


def contid_text(contid: str) -> str:
    return f"S/N {contid}"


def amp_values(slot: FplaneEntry, amp: str, gain: float, rdnoise: float, biasset: int,
               detector_id: int, ampname: str) -> dict[str, object]:
    """Header values that describe the amp (fixed for the night)."""
    ccdpos, half = amp[0], amp[1]
    contid = slot.contid or "0000"
    vals: dict[str, object] = {
        "CONTID": contid_text(contid), "SSA": f"{slot.specslot:03d}", "SPECID": int(slot.specid),
        "IFUID": str(slot.ifuid), "IFUSLOT": int(slot.ifuslot), "CCDPOS": ccdpos,
        "DETECTOR": int(detector_id), "CCDHALF": half, "CCDSEC": _HALF_SEC[half],
        "DETSEC": _HALF_SEC[half], "AMPLIFIE": ampname, "AMPNAME": ampname,
        "GAIN": float(gain), "RDNOISE": float(rdnoise), "BIASSET": int(biasset), "BIASTRGT": 2000,
    }
    for key in _BOARDS:
        vals[key] = str(TEMPLATE[_template_index()[key]][1]).replace("S/N 0059", contid_text(contid))
    return vals


def weather(seed: int, night: str, hours: float) -> dict[str, object]:
    """Smooth weather of a night at ``hours`` after 00 UT (per-night random, deterministic)."""
    r = seeds.rng(seed, seeds.NIGHT, night=night)
    month = int(night[4:6])
    t0 = 12.0 + 8.0 * math.sin(2 * math.pi * (month - 4.5) / 12.0) + r.normal(0, 2)
    temp = t0 - 0.4 * hours + 0.3 * math.sin(hours + r.uniform(0, 6))
    hum = float(np.clip(r.uniform(10, 60) + 2.0 * hours, 3, 95))
    dew = temp - (100.0 - hum) / 5.0
    return {"AMBTEMP": float(temp), "HUMIDITY": round(hum, 3), "DEWPOINT": float(dew),
            "BAROMPRE": float(800.0 + r.normal(0, 2) + 0.1 * hours),
            "WINDDIR": round(float(r.uniform(0, 360) + 5 * math.sin(hours)) % 360, 2),
            "WINDSPD": round(float(abs(r.normal(12, 6)) + 2 * math.sin(2 * hours)), 3),
            "DUST1_0": int(r.integers(2000, 30000)), "DUST0_3": int(r.integers(2e5, 2e6))}


def _iso_ms(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def exposure_values(seed: int, e: Exposure, obs: Observation,
                    pointing: tuple[float, float, float] | None) -> dict[str, object]:
    """Header values that describe the exposure. ``pointing``: (ra, dec, pa) the telescope
    believes (science only: TRAJC*, PARANGLE), else the calibration park position (az 0)."""
    r = seeds.rng(seed, seeds.EXPOSURE, night=e.night, obs=e.obs, exp=e.exp)
    t = e.start
    day0 = almanac.night_start(e.night)
    lst = almanac.lst_deg(t)
    written = t + timedelta(seconds=e.darktime + READTIME)
    vals: dict[str, object] = {
        "DATE": written.strftime("%Y-%m-%dT%H:%M:%S"), "DATE-OBS": t.strftime("%Y-%m-%d"),
        "OBJECT": e.object, "UT": t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}",
        "ST": almanac.sexagesimal(lst / 15.0, hours=True), "MJD": float(e.mjd), "OBSID": int(e.obs),
        "REXPTIME": int(round(e.exptime)) if e.kind != "zro" else 0,
        "PEXPTIME": float(e.exptime), "EXPTIME": float(e.exptime), "DARKTIME": float(e.darktime),
        "READTIME": float(READTIME + r.normal(0, 0.01)), "IMAGETYP": e.kind, "DITHER": int(e.dither),
        "LAMP": e.lamp, "WEATDATE": _iso_ms(t + timedelta(milliseconds=6)),
        "X_STRT": float(r.normal(0, 0.5)), "Y_STRT": float(r.normal(0, 0.5)),
        "Z_STRT": float(r.normal(0, 0.001)), "RHO_STRT": float(r.normal(0, 0.03)),
        "THE_STRT": float(r.normal(0, 0.0003)), "PHI_STRT": float(r.normal(0, 0.0003)),
    }
    vals.update(weather(seed, e.night, (t - day0).total_seconds() / 3600.0))
    if pointing is None:
        ra, dec = lst, almanac.HET_LAT + 90.0 - almanac.HET_ALT + float(r.normal(0, 0.05))
        pa = float(r.normal(0, 0.01))
    else:
        ra, dec, pa = pointing
    alt, az, ha = almanac.altaz(ra, dec, t)
    zd = 90.0 - alt
    vals.update({
        "TELRA": almanac.sexagesimal(ra / 15.0, hours=True), "TELDEC": almanac.sexagesimal(dec, hours=False),
        "PARANGLE": round(float(pa), 6), "STRUCTAZ": round(float(az), 6), "STRUCTEL": round(float(alt), 6),
        "HA": almanac.sexagesimal(ha / 15.0, hours=True), "ZD": round(float(zd), 6),
        "AIRMASS": float(1.0 / math.cos(math.radians(min(zd, 80.0)))),
    })
    if pointing is not None:
        vals.update({
            "TRAJID": int(e.obs) + 1000 * int(e.night[4:]), "TRAJRA": float(ra / 15.0),
            "TRAJDEC": float(dec), "TRAJEQ": 2000.0, "TRAJCRA": float(ra / 15.0), "TRAJCDEC": float(dec),
            "TRAJCEQ": 2000.0, "TRAJDIR": "E" if ha < 0 else "W", "TRAJOBJ": obs.object,
        })
    return vals
