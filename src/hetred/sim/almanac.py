"""Sun, sidereal time and alt-azimuth at the HET, to put simulated exposures at realistic times.

Low-precision formulas (Astronomical Almanac, "low precision formulas for the Sun"; accurate to
about 0.01 deg, ample for scheduling): sun RA/Dec from the mean longitude and anomaly, GMST from
the IAU 1982 linear term. A night ``YYYYMMDD`` is the UT date: its evening twilight starts around
00-02 UT (the local evening of the day before), as in the real archive (karlspipe tarlists,
e.g. 20170103: twilights at 00:30 UT, science at 11:09 UT).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

HET_LAT = 30.681444      #: deg north (McDonald Observatory, HET)
HET_LON = -104.014722    #: deg east
HET_ALT = 55.0           #: the HET's fixed structure elevation (deg); zenith distance 35 deg
_MJD0 = datetime(1858, 11, 17, tzinfo=timezone.utc)


def mjd(t: datetime) -> float:
    """Modified Julian Date of a UTC datetime."""
    return (t - _MJD0).total_seconds() / 86400.0


def night_start(night: str) -> datetime:
    """00:00 UT of the night's date."""
    return datetime(int(night[:4]), int(night[4:6]), int(night[6:8]), tzinfo=timezone.utc)


def sun_radec(t: datetime) -> tuple[float, float]:
    """Apparent RA, Dec of the Sun (deg)."""
    n = mjd(t) + 2400000.5 - 2451545.0
    lmean = (280.460 + 0.9856474 * n) % 360.0
    g = math.radians((357.528 + 0.9856003 * n) % 360.0)
    lam = math.radians(lmean + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    eps = math.radians(23.439 - 4e-7 * n)
    ra = math.degrees(math.atan2(math.cos(eps) * math.sin(lam), math.cos(lam))) % 360.0
    dec = math.degrees(math.asin(math.sin(eps) * math.sin(lam)))
    return ra, dec


def lst_deg(t: datetime, lon: float = HET_LON) -> float:
    """Local mean sidereal time (deg)."""
    d = mjd(t) + 2400000.5 - 2451545.0
    return (280.46061837 + 360.98564736629 * d + lon) % 360.0


def altaz(ra: float, dec: float, t: datetime, lat: float = HET_LAT) -> tuple[float, float, float]:
    """(altitude, azimuth east of north, hour angle) in deg of (ra, dec) at time t."""
    ha = (lst_deg(t) - ra + 180.0) % 360.0 - 180.0
    h, d, p = math.radians(ha), math.radians(dec), math.radians(lat)
    alt = math.asin(math.sin(p) * math.sin(d) + math.cos(p) * math.cos(d) * math.cos(h))
    az = math.atan2(-math.cos(d) * math.sin(h),
                    math.sin(d) * math.cos(p) - math.cos(d) * math.sin(p) * math.cos(h))
    return math.degrees(alt), math.degrees(az) % 360.0, ha


def sun_alt(t: datetime) -> float:
    ra, dec = sun_radec(t)
    return altaz(ra, dec, t)[0]


def crossing(t0: datetime, t1: datetime, alt: float, setting: bool) -> datetime:
    """First time in [t0, t1] when the Sun crosses ``alt`` (going down when ``setting``)."""
    step = timedelta(minutes=2)
    t = t0
    prev = sun_alt(t)
    while t < t1:
        nxt = sun_alt(t + step)
        if (setting and prev >= alt > nxt) or (not setting and prev <= alt < nxt):
            lo, hi = t, t + step
            for _ in range(30):
                mid = lo + (hi - lo) / 2
                above = sun_alt(mid) >= alt
                if above == setting:
                    lo = mid
                else:
                    hi = mid
            return lo + (hi - lo) / 2
        t, prev = t + step, nxt
    raise ValueError(f"the Sun does not cross {alt} deg between {t0} and {t1}")


def evening(night: str) -> dict[str, datetime]:
    """Sunset, the -6/-12/-18 deg twilights and the next morning's -18 deg, for a night."""
    d0 = night_start(night)
    lo, hi = d0 - timedelta(hours=4), d0 + timedelta(hours=6)
    out = {"sunset": crossing(lo, hi, -0.833, True)}
    for name, a in (("civil", -6.0), ("nautical", -12.0), ("astronomical", -18.0)):
        out[name] = crossing(out["sunset"], hi + timedelta(hours=2), a, True)
    out["morning"] = crossing(out["astronomical"] + timedelta(hours=4), d0 + timedelta(hours=18), -18.0, False)
    return out


def hour_angle_at_het_altitude(dec: float, lat: float = HET_LAT) -> float | None:
    """|HA| (deg) at which a source at ``dec`` crosses the HET's 55-deg altitude, or None."""
    p, d = math.radians(lat), math.radians(dec)
    c = (math.sin(math.radians(HET_ALT)) - math.sin(p) * math.sin(d)) / (math.cos(p) * math.cos(d))
    if not -1.0 <= c <= 1.0:
        return None
    return math.degrees(math.acos(c))


def sexagesimal(value: float, hours: bool, sign: bool = True, decimals: int = 1) -> str:
    """'+11:40:32.3' style text of an angle (``hours``: value is in hours)."""
    s = "-" if value < 0 else ("+" if sign else "")
    v = abs(value)
    scale = 10 ** decimals
    total = round(v * 3600 * scale)
    h, rem = divmod(total, 3600 * scale)
    m, sec = divmod(rem, 60 * scale)
    width = 3 + decimals if decimals else 2
    return f"{s}{h:02d}:{m:02d}:{sec / scale:0{width}.{decimals}f}"
