"""HETDEX identifiers: shotid, datevobs, multiframe, fiber_id (as hetdex_api builds them)."""
from __future__ import annotations

import re

#: CONTID of a frame without one (improcb writes "S/N 0666")
NO_CONTID = "0666"

_DATEVOBS = re.compile(r"^(\d{8})v(\d{3})$")


def shotid(night: str | int, obs: int) -> int:
    """``int(YYYYMMDD) * 1000 + obs``, e.g. 20180124, 10 -> 20180124010."""
    return int(night) * 1000 + int(obs)


def datevobs(night: str | int, obs: int) -> str:
    """``YYYYMMDDvOOO``, e.g. '20180124v010'."""
    return f"{int(night):08d}v{int(obs):03d}"


def parse_datevobs(text: str) -> tuple[str, int]:
    """'20180124v010' -> ('20180124', 10)."""
    m = _DATEVOBS.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a DATEvOBS like 20180124v010")
    return m.group(1), int(m.group(2))


def shotid_to_datevobs(sid: int) -> str:
    """20180124010 -> '20180124v010'."""
    return datevobs(sid // 1000, sid % 1000)


def multiframe(specid: int, ifuslot: int, ifuid: str | int, amp: str) -> str:
    """``multi_SSS_III_UUU_AA``, e.g. multi_320_053_020_LL."""
    return f"multi_{int(specid):03d}_{int(ifuslot):03d}_{format_ifuid(ifuid)}_{amp}"


def format_ifuid(ifuid: str | int) -> str:
    """IFUID as the 3-character string the files use ('020')."""
    s = str(ifuid).strip()
    return f"{int(s):03d}" if s.isdigit() else s


def fiber_id(sid: int, exp: int, mframe: str, fibnum: int) -> str:
    """``{shotid}_{exp}_{multiframe}_{fibnum:03d}`` (fibnum 1-112 within the amp)."""
    return f"{int(sid)}_{int(exp)}_{mframe}_{int(fibnum):03d}"


def month_of(night: str) -> str:
    """YYYYMMDD -> YYYYMM."""
    return str(night)[:6]


def check_month(text: str, what: str = "MONTH") -> str:
    """``YYYYMM`` with a month 01-12, else ValueError with one line naming ``what``."""
    s = str(text)
    if len(s) != 6 or not s.isdigit():
        raise ValueError(f"{what} must be YYYYMM, got {text!r}")
    if not 1 <= int(s[4:]) <= 12:
        raise ValueError(f"{what} must be YYYYMM with a month 01-12, got {text!r}")
    return s


def check_night(text: str, what: str = "--night") -> str:
    """``YYYYMMDD``, a real calendar date, else ValueError with one line naming ``what``."""
    from datetime import date

    s = str(text)
    if len(s) != 8 or not s.isdigit():
        raise ValueError(f"{what} must be YYYYMMDD, got {text!r}")
    try:
        date(int(s[:4]), int(s[4:6]), int(s[6:]))
    except ValueError:
        raise ValueError(f"{what} must be a date YYYYMMDD, got {text!r} (no such day)") from None
    return s
