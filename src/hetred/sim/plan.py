"""The observing plan of a simulated night: observations, exposures, times and pointings.

The order follows the real archive (karlspipe 201701tarlist, e.g. 20170107): evening twilight
flats (one observation of several exposures, from about sun altitude -3 deg, exposure times
growing as the sky fades), then the Hg arc (``OBJECT = 'hg'``) and the Cd arc (``'cd-a'``) as two
observations, the lamp flat, an observation of biases (``zro``, about 25 s apart), darks (360 s),
and after astronomical twilight the science shots: observations of three dithered 360-s
exposures about 400 s apart, shots about 10 minutes apart. Observation numbers count from 1 in
time order. Every time is deterministic (no randomness in the plan).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hetred.sim import almanac

#: raw type codes in plan order
KINDS = ("twi", "cmp", "flt", "zro", "drk", "sci")

READTIME = 19.923205343      #: s (real zro header READTIME)
ZRO_EXPTIME = 5.6313e-05     #: s (real zro header EXPTIME)
ZRO_DARKTIME = 26.986659169  #: s (real zro header DARKTIME)
SCI_EXPTIME = 360.0
DRK_EXPTIME = 360.0
FLT_EXPTIME = 60.0
ARC_EXPTIME = {"hg": 60.0, "cd-a": 120.0}
TWI_FIRST_EXPTIME = 8.0
TWI_GROWTH = 1.6
EXPOSURE_GAP = 40.0          #: s between science exposures of a shot after readout (dither move)
SHOT_GAP = 600.0             #: s between shots (slew, acquisition)


@dataclass(frozen=True)
class FrameCounts:
    """Exposures per night of each calibration type, and science shots per night."""

    zro: int = 5
    drk: int = 1
    flt: int = 2
    hg: int = 1
    cd: int = 1
    twi: int = 3
    shots: int = 1
    #: bright emission lines (hetred.sim.sky.BRIGHT_LINES) added to every IFU of every shot, so
    #: that line fluxes can be checked to 1 % (the random lines are mostly near the noise)
    bright_lines: int = 0
    #: field stars per IFU (Poisson mean) of every shot, and their g range
    #: (hetred.sim.sky.make_shot_scene: dN/dg ~ 10^(0.2 g))
    stars_per_ifu: int = 2
    star_g: tuple[float, float] = (15.0, 22.0)

    def replace(self, **changes: int | None) -> "FrameCounts":
        vals = {k: getattr(self, k) for k in ("zro", "drk", "flt", "hg", "cd", "twi", "shots", "bright_lines",
                                              "stars_per_ifu")}
        vals.update({k: int(v) for k, v in changes.items() if v is not None})
        bad = [k for k, v in vals.items() if v < 0]
        if bad:
            raise ValueError(f"negative frame count for {', '.join(bad)}")
        return FrameCounts(**vals, star_g=self.star_g)


@dataclass(frozen=True)
class Exposure:
    """One exposure: every amp of every IFU is read out at ``start``."""

    night: str
    obs: int
    exp: int
    kind: str            #: zro drk flt cmp twi sci
    object: str          #: OBJECT header value ('' for biases, 'hg' / 'cd-a' for arcs)
    start: datetime      #: UTC start of the exposure
    exptime: float
    darktime: float
    seq: int             #: 0-based position in its observation
    lamp: str = "<none>"

    @property
    def stamp(self) -> str:
        """``YYYYMMDDTHHMMSS.S`` (tenths of a second, truncated like the DAQ)."""
        t = self.start
        return t.strftime("%Y%m%dT%H%M%S") + f".{t.microsecond // 100000}"

    @property
    def mjd(self) -> float:
        return almanac.mjd(self.start)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.darktime)

    @property
    def dither(self) -> int:
        return self.exp if self.kind == "sci" else 1


@dataclass
class Observation:
    """One observation = one raw tar."""

    night: str
    obs: int
    kind: str
    object: str
    exposures: list[Exposure] = field(default_factory=list)
    ra0: float | None = None      #: planned pointing of a science shot (deg)
    dec0: float | None = None
    field_name: str = ""
    bright_lines: int = 0         #: of hetred.sim.sky.BRIGHT_LINES, per IFU (science shots)
    stars_per_ifu: float = 2.0    #: field stars per IFU (Poisson mean; science shots)
    star_g: tuple[float, float] = (15.0, 22.0)   #: their g range

    @property
    def datevobs(self) -> str:
        return f"{self.night}v{self.obs:03d}"


@dataclass
class NightPlan:
    night: str
    observations: list[Observation]
    almanac: dict[str, datetime]

    @property
    def exposures(self) -> list[Exposure]:
        return [e for o in self.observations for e in o.exposures]

    @property
    def shots(self) -> list[Observation]:
        return [o for o in self.observations if o.kind == "sci"]


def parse_nights(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """'20180101', '20180101-20180105' or '20180101,20180103' (or a list of these) -> nights."""
    parts = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for part in parts:
        for item in str(part).replace(",", " ").split():
            if "-" in item:
                a, b = item.split("-", 1)
                d0, d1 = _date(a), _date(b)
                if d1 < d0:
                    raise ValueError(f"night range {item} runs backwards")
                if (d1 - d0).days > 400:
                    raise ValueError(f"night range {item} is longer than 400 nights")
                out.extend((d0 + timedelta(days=i)).strftime("%Y%m%d") for i in range((d1 - d0).days + 1))
            else:
                out.append(_date(item).strftime("%Y%m%d"))
    if not out:
        raise ValueError("no nights given")
    return sorted(dict.fromkeys(out))


def _date(text: str) -> datetime:
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise ValueError(f"night {text!r} is not a date YYYYMMDD") from None


def _field(lst_hours: float, number: int) -> tuple[str, float]:
    """(OBJECT, Dec) of a HETDEX-like field for the sidereal time (spring, fall, or other)."""
    if 8.5 <= lst_hours < 17.5:
        return f"DEXsp{number:04d}", 51.0 + 3.0 * ((number * 0.618) % 1.0 - 0.5)
    if lst_hours >= 21.0 or lst_hours < 3.0:
        return f"DEXfl{number:04d}", 0.0 + 2.0 * ((number * 0.618) % 1.0 - 0.5)
    return f"DEXot{number:04d}", 30.0 + 10.0 * ((number * 0.618) % 1.0 - 0.5)


def plan_night(night: str, counts: FrameCounts) -> NightPlan:
    """The deterministic schedule of one night."""
    alm = almanac.evening(night)
    day0 = almanac.night_start(night)
    observations: list[Observation] = []

    def add(kind: str, obj: str, n: int, t: datetime, exptime: float, darktime: float,
            gap: float, lamp: str = "<none>", growth: float = 1.0,
            cadence: float | None = None) -> datetime:
        if n <= 0:
            return t
        o = Observation(night, len(observations) + 1, kind, obj)
        for i in range(n):
            et = round(exptime * growth ** i, 1) if growth != 1.0 else exptime
            dt = darktime + et - exptime
            o.exposures.append(Exposure(night, o.obs, i + 1, kind, obj, t, round(et, 6),
                                        round(dt, 6), i, lamp))
            t = t + timedelta(seconds=cadence if cadence else et + READTIME + gap)
        observations.append(o)
        return t

    # evening twilight flats from sun altitude ~ -3 deg (never before 00:00:30 UT of the night)
    t = max(alm["sunset"] + (alm["civil"] - alm["sunset"]) / 2, day0 + timedelta(seconds=30))
    t = add("twi", "skyflat", counts.twi, t, TWI_FIRST_EXPTIME, TWI_FIRST_EXPTIME + 7.1, 25.0,
            growth=TWI_GROWTH)
    t = max(t, alm["civil"]) + timedelta(minutes=15, seconds=13.4)
    t = add("cmp", "hg", counts.hg, t, ARC_EXPTIME["hg"], ARC_EXPTIME["hg"] + 7.3, 45.0, lamp="Hg")
    t = add("cmp", "cd-a", counts.cd, t + timedelta(seconds=20), ARC_EXPTIME["cd-a"],
            ARC_EXPTIME["cd-a"] + 7.3, 45.0, lamp="Cd-A")
    t = add("flt", "ldls_long", counts.flt, t + timedelta(seconds=30), FLT_EXPTIME, FLT_EXPTIME + 7.2,
            30.0, lamp="LDLS")
    t = add("zro", "", counts.zro, t + timedelta(seconds=40), ZRO_EXPTIME, ZRO_DARKTIME, 0.0,
            cadence=25.4)
    t = add("drk", "dark", counts.drk, t + timedelta(seconds=30), DRK_EXPTIME, DRK_EXPTIME + 7.0, 10.0)
    # science after astronomical twilight
    t = max(t + timedelta(minutes=5), alm["astronomical"] + timedelta(minutes=2, seconds=17.8))
    for s in range(counts.shots):
        mid = t + timedelta(seconds=600)
        lst_h = almanac.lst_deg(mid) / 15.0
        name, dec0 = _field(lst_h, int(night[2:]) % 997 * 7 + s + 1)
        ha = almanac.hour_angle_at_het_altitude(dec0) or 0.0
        ha = ha if s % 2 else -ha          # alternate east and west tracks
        ra0 = (almanac.lst_deg(mid) - ha) % 360.0
        t_end = add("sci", name, 3, t, SCI_EXPTIME, SCI_EXPTIME + 7.4, EXPOSURE_GAP)
        o = observations[-1]
        o.ra0, o.dec0, o.field_name = ra0, dec0, name
        o.bright_lines = counts.bright_lines
        o.stars_per_ifu, o.star_g = float(counts.stars_per_ifu), tuple(counts.star_g)
        if o.exposures[-1].end > alm["morning"]:
            raise ValueError(f"night {night}: {counts.shots} shots do not fit before morning twilight "
                             f"({s} fit)")
        t = t_end + timedelta(seconds=SHOT_GAP)
    last = observations[-1].exposures[-1].end if observations else day0
    if last.date() != day0.date():
        raise ValueError(f"night {night}: the plan runs past the end of the UT date")
    return NightPlan(night, observations, alm)


def describe(plan: NightPlan, n_amps: int) -> list[str]:
    """Human-readable lines of a night's plan (for --dry-run)."""
    lines = [f"night {plan.night}: sunset {plan.almanac['sunset']:%H:%M} UT, "
             f"astronomical twilight {plan.almanac['astronomical']:%H:%M}-{plan.almanac['morning']:%H:%M} UT"]
    for o in plan.observations:
        e0, e1 = o.exposures[0], o.exposures[-1]
        obj = f" {o.object}" if o.object else ""
        point = f" ra={o.ra0:.3f} dec={o.dec0:+.3f}" if o.ra0 is not None else ""
        lines.append(f"  virus{o.obs:07d}.tar {o.kind}{obj}: {len(o.exposures)} exp "
                     f"{e0.stamp}..{e1.stamp[9:]} exptime {e0.exptime:g}"
                     f"{'' if e0.exptime == e1.exptime else '-' + format(e1.exptime, 'g')} s, "
                     f"{len(o.exposures) * n_amps} members{point}")
    return lines
