"""``hetred fullsky``: the full-field sky of each science exposure (karlspipe hdr2.1 step 20:
fullsky/rfft + progs/vred3.f) and its HDU in the calibrated-fiber files (raddsky + imaddsky.f).

Modules: :mod:`~hetred.fullsky.settings` (vred3's parameters), :mod:`~hetred.fullsky.vred3` (the
algorithm, pure arrays; kernels in :mod:`hetred._ext.fullsky`), :mod:`~hetred.fullsky.inputs`
(multi files, library, residual maps), :mod:`~hetred.fullsky.formats` (amp.dat, sky.dat, ds9.reg),
:mod:`~hetred.fullsky.addsky` (the ``fullsky`` HDU of ``_cal.fits``), :mod:`~hetred.fullsky.qa`
(PNG), :mod:`~hetred.fullsky.run` (units). docs/stages/fullsky.md.
"""
