"""Scale presets of ``hetred simulate``: what ``--scale demo|month|full`` means.

Explicit options (nights, --ifuslots/--n-ifus, frame counts, --shots) override a preset's values.

* ``demo``: one night, 2 IFUs (slots 053 and 063), 20 biases (enough for a master bias), 1 dark, 16 flats
  (a pixel flat of 16 frames reaches 0.27 % photon noise), 2 Hg + 2 Cd arcs,
  3 twilights, one science shot (3 dithers) with 4 bright emission lines per IFU: 8 amps x 47 exposures (376 frames), about 0.8 GB, well under 90 s.
  The shot is a star-rich field (5 stars per IFU on average, g 17-20.5, instead of 2 with g
  15-22): with 2 IFUs a survey-like field has 0-2 stars brighter than norm.dat's g 18 cut, so
  norm.dat, the shot's FWHM and the response curve would measure the noise of one or two stars
  (and a seed without a star fails astrometry), not the algorithms;
* ``month``: 6 nights x 2 IFUs, 4 biases a night (24 per amp over the month, enough for Karl's
  monthly master bias, >= 20), 2 flats, 1+1 arcs, 3 twilights and one shot a night;
* ``full``: one night with all 78 IFUs (312 amps) streamed amp by amp (peak memory well under
  2 GB): 5 biases, 1 dark, 2 flats, 1+1 arcs, 2 twilights, one shot: 4,680 frames, ~10 GB.
"""
from __future__ import annotations

from dataclasses import dataclass

from hetred.sim.plan import FrameCounts


@dataclass(frozen=True)
class Preset:
    name: str
    nights: str
    n_ifus: int
    counts: FrameCounts
    description: str


PRESETS: dict[str, Preset] = {
    "demo": Preset("demo", "20180110", 2, FrameCounts(zro=20, drk=1, flt=16, hg=2, cd=2, twi=3, shots=1, bright_lines=4,
                                                            stars_per_ifu=5, star_g=(17.0, 20.5)),
                   "one night, 2 IFUs: biases, dark, flats, arcs, twilights, one science shot"),
    "month": Preset("month", "20180110-20180115", 2,
                    FrameCounts(zro=4, drk=1, flt=2, hg=1, cd=1, twi=3, shots=1),
                    "6 nights x 2 IFUs, 24 biases per amp, flats/arcs/twilights every night"),
    "full": Preset("full", "20180110", 78, FrameCounts(zro=5, drk=1, flt=2, hg=1, cd=1, twi=2, shots=1),
                   "one night with all 78 IFUs (312 amps), streamed amp by amp"),
}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}: choose {', '.join(PRESETS)}") from None
