"""Steps 9-13 of Karl's process, ``hetred throughput``: stars in the fibers, the shot's FWHM, SED
fits, the g-band normalisation and the response curve (karlspipe hdr2.1 tpfits/rallcal,
rfitpoly; docs/stages/throughput.md).

* :mod:`hetred.throughput.psf` -- Karl's star model: Moffat beta 3.9 in 0.75" fibers, FWHM(lambda),
  ADR (kernels :mod:`hetred._ext.psfkern`);
* :mod:`hetred.throughput.starfit` -- band fluxes, position rasters, FWHM grid, spectra, 100-Å bins;
* :mod:`hetred.throughput.sedfit` -- offline stellarSEDfits (package data hetred/data/stellar);
* :mod:`hetred.throughput.response` -- expected counts, getsdssg, combsed, fitpoly;
* :mod:`hetred.throughput.shot` -- one shot on arrays; :mod:`hetred.throughput.run` -- the unit;
* :mod:`hetred.throughput.products`, :mod:`hetred.throughput.qa`, :mod:`hetred.throughput.settings`.
"""
