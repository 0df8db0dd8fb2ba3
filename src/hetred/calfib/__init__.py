"""Step 16 of Karl's process, ``hetred calfib``: the calibrated fibers of every IFU of a shot
(karlspipe hdr2.1 mkscripts/rcal_all -> fitradecsp mode 106; docs/stages/calfib.md).

* :mod:`hetred.calfib.calibrate` -- counts -> 1e-17 erg/s/cm^2 per 2 Å, errors (propagated, or
  fitradecsp's ad-hoc model);
* :mod:`hetred.calfib.run` -- the unit (shot x IFU slot) and the ``_cal.fits`` file;
* :mod:`hetred.calfib.settings`.
"""
