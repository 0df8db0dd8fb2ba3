"""VIRUS instrument facts: amp geometry and orientation, the IFU and its fiber <-> amp map,
the focal plane, dithers and fiber sky coordinates, and HETDEX identifiers."""
from hetred.virus.amp import AMPS, amp_from_header, ampname_from_header, deorient, orient, trim
from hetred.virus.coords import DITHERS, dither_offset, fiber_radec, radec_to_ifu
from hetred.virus.fplane import FplaneEntry, format_fplane, parse_fplane, read_fplane, write_fplane
from hetred.virus.ids import datevobs, fiber_id, multiframe, parse_datevobs, shotid
from hetred.virus.ifu import amp_fiber_ids, amp_of_fiber, amp_positions, ifu_positions, read_ifucen

__all__ = [
    "AMPS", "amp_from_header", "ampname_from_header", "deorient", "orient", "trim",
    "DITHERS", "dither_offset", "fiber_radec", "radec_to_ifu",
    "FplaneEntry", "format_fplane", "parse_fplane", "read_fplane", "write_fplane",
    "datevobs", "fiber_id", "multiframe", "parse_datevobs", "shotid",
    "amp_fiber_ids", "amp_of_fiber", "amp_positions", "ifu_positions", "read_ifucen",
]
