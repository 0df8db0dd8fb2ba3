"""The simulated focal plane: up to 78 IFU slots on the 100-arcsec grid, with hardware identities.

Slots, positions, SPECID, SPECSLOT and IFUID of the 40 IFUs installed on 20180611 are those of
that night's fplane (HETDEX/karlspipe fplane, copied in /work/shared/data/real/fplane); the 38
other slots of the 78-IFU focal plane (commented out in that file) get the grid position
X_FP = (xid - 5.5)*100, Y_FP = (4.5 - yid)*100 (slot = 10*xid + yid) and synthetic identities:
SPECID = 400 + slot, SPECSLOT = 300 + slot, IFUID = 100 + slot. Slot 025 shared SPECID 301 with
slot 015 in that file; it gets 425 so every slot has its own spectrograph. CONTID (the controller
serial, header ``'S/N 0059'``) is 0059 for slot 053 (as in the real raw frames of 20180522) and
1000 + slot elsewhere. Any other slot number asked for (e.g. 054) is built by the grid rule.
"""
from __future__ import annotations

from hetred.virus.fplane import FplaneEntry

#: (slot, X_FP, Y_FP, SPECID, SPECSLOT, IFUID) of the IFUs installed on 20180611
REAL_SLOTS: tuple[tuple[int, float, float, int, int, str], ...] = (
    (15, -450.0, -50.0, 301, 233, "038"), (22, -349.743, 250.336, 317, 234, "039"),
    (23, -349.798, 150.243, 318, 244, "078"), (24, -350.0, 50.0, 303, 254, "013"),
    (25, -350.0, -50.0, 425, 255, "009"), (26, -350.0, -150.0, 321, 243, "035"),
    (27, -350.0, -250.0, 314, 253, "011"), (32, -249.680, 250.284, 316, 247, "052"),
    (33, -251.340, 151.939, 310, 257, "002"), (34, -250.009, 50.158, 304, 256, "003"),
    (35, -249.934, -49.510, 302, 235, "041"), (36, -250.255, -150.006, 311, 245, "053"),
    (37, -250.786, -249.921, 313, 255, "010"), (42, -149.615, 250.167, 315, 218, "073"),
    (43, -149.765, 150.070, 306, 228, "057"), (44, -149.849, 50.172, 202, 238, "074"),
    (45, -150.338, -50.114, 305, 248, "056"), (46, -150.147, -150.132, 309, 258, "005"),
    (47, -150.331, -249.952, 312, 237, "065"), (52, -50.0, 250.0, 323, 231, "016"),
    (53, -50.0, 150.0, 320, 236, "020"), (63, 50.0, 150.0, 322, 128, "062"),
    (72, 150.0, 250.0, 325, 151, "044"), (73, 150.400, 149.713, 37, 131, "031"),
    (74, 150.340, 49.642, 307, 132, "076"), (75, 149.406, -50.352, 47, 122, "075"),
    (76, 149.815, -150.387, 25, 152, "032"), (82, 250.0, 250.0, 326, 134, "034"),
    (83, 250.402, 149.424, 319, 135, "023"), (84, 250.031, 49.483, 41, 136, "015"),
    (85, 249.872, -50.653, 27, 137, "001"), (86, 249.975, -150.630, 17, 138, "022"),
    (93, 349.713, 147.976, 8, 146, "054"), (94, 350.348, 49.631, 32, 147, "028"),
    (95, 349.977, -50.090, 20, 158, "004"), (96, 349.966, -150.847, 38, 152, "014"),
    (103, 450.379, 149.178, 13, 153, "019"), (104, 450.135, 49.250, 16, 154, "026"),
    (105, 450.229, -50.873, 51, 155, "051"), (106, 449.902, -150.973, 12, 157, "033"),
)

#: the other 38 slots of the 78-IFU focal plane (empty on 20180611)
EXTRA_SLOTS: tuple[int, ...] = (
    13, 14, 16, 21, 28, 30, 31, 38, 39, 40, 41, 48, 49, 50, 51, 57, 58, 59, 60, 61, 62, 67, 68,
    69, 70, 71, 77, 78, 79, 80, 81, 87, 88, 89, 91, 92, 97, 98,
)

MAX_IFUS = len(REAL_SLOTS) + len(EXTRA_SLOTS)   # 78
#: IFUIDs whose R half is mirrored in real life (Remedy IFUcen_HETDEX_reverse_R); placed last
_SPECIAL_IFUIDS = ("003", "004", "005", "008")
_REAL = {row[0]: row for row in REAL_SLOTS}


def grid_position(slot: int) -> tuple[float, float]:
    """Nominal (X_FP, Y_FP) arcsec of a slot on the 100-arcsec grid."""
    xid, yid = divmod(int(slot), 10)
    return (xid - 5.5) * 100.0, (4.5 - yid) * 100.0


def contid_of(slot: int) -> str:
    """Controller serial number (4 digits) of a slot's spectrograph."""
    return "0059" if int(slot) == 53 else f"{1000 + int(slot):04d}"


def slot_entry(slot: int) -> FplaneEntry:
    """The fplane entry of one slot (real identity when installed on 20180611, else synthetic)."""
    slot = int(slot)
    if not 10 <= slot <= 109:
        raise ValueError(f"IFU slot {slot:03d} is not on the focal-plane grid (010-109)")
    if slot in _REAL:
        _, x, y, specid, specslot, ifuid = _REAL[slot]
    else:
        x, y = grid_position(slot)
        specid, specslot, ifuid = 400 + slot, 300 + slot, f"{100 + slot:03d}"
    return FplaneEntry(ifuslot=slot, x_fp=x, y_fp=y, specid=specid, specslot=specslot,
                       ifuid=ifuid, ifurot=0.0, platesc=1.0, contid=contid_of(slot))


def default_order() -> list[int]:
    """All 78 slots, most natural first: 053 and 063 (the demo pair), then installed IFUs by
    distance from the centre, then the empty slots; the mirrored-R IFUIDs last of the installed."""
    def rank(slot: int) -> tuple:
        e = slot_entry(slot)
        first = {53: 0, 63: 1}.get(slot, 2)
        return (first, slot not in _REAL, e.ifuid in _SPECIAL_IFUIDS, round(abs(complex(e.x_fp, e.y_fp))), slot)

    return sorted([row[0] for row in REAL_SLOTS] + list(EXTRA_SLOTS), key=rank)


def choose_slots(ifuslots: list[int] | None = None, n_ifus: int | None = None) -> list[FplaneEntry]:
    """The slots to simulate: the given slot numbers, or the first ``n_ifus`` of :func:`default_order`."""
    if ifuslots:
        slots = sorted(dict.fromkeys(int(s) for s in ifuslots))
        return [slot_entry(s) for s in slots]
    n = 2 if n_ifus is None else int(n_ifus)
    if not 1 <= n <= MAX_IFUS:
        raise ValueError(f"--n-ifus must be 1..{MAX_IFUS}, got {n}")
    return sorted((slot_entry(s) for s in default_order()[:n]), key=lambda e: e.ifuslot)


def parse_slot_list(text: str) -> list[int]:
    """'053,054' or '53 54' -> [53, 54]."""
    out = []
    for part in text.replace(",", " ").split():
        if not part.isdigit():
            raise ValueError(f"IFU slot {part!r} is not a number")
        out.append(int(part))
    return out


def detector_id(specid: int, ccdpos: str) -> int:
    """A synthetic DETECTOR serial for the L or R CCD of a spectrograph."""
    return 20000 + 3 * int(specid) + (0 if ccdpos == "L" else 1)
