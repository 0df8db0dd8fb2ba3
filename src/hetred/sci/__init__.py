"""Step 7: science reductions, ``hetred sci`` (docs/stages/sci.md).

Replaces karlspipe hdr2.1 ``sci/rsetups``, ``run1s``, ``rback1``/``rbfits`` and vred.f in
science mode. Modules:

* :mod:`hetred.sci.settings` -- ``[stages.sci]`` settings;
* :mod:`hetred.sci.calibration` -- the monthly library of an amp, with the override table;
* :mod:`hetred.sci.reduce` -- per amp: overscan, master bias, pixel flat, background model,
  gain, orientation; trace shift, extraction, chi^2 masking, error frame;
* :mod:`hetred.sci.sky` -- master sky, continuum fibers, sky model, residual background,
  wavelength zero-point check;
* :mod:`hetred.sci.multi` -- Karl's 17-HDU multi file;
* :mod:`hetred.sci.run` -- units (shot x exposure x IFU) and ``run_sci``;
* :mod:`hetred.sci.rectify`, :mod:`hetred.sci.cofes`, :mod:`hetred.sci.fplane_png` -- rectified
  spectra, reconstructed IFU images and the focal-plane PNG.
"""
