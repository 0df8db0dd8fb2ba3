"""Step 8, astrometry of a shot (``hetred astrom``): vdrp's astrometry in pure modules.

Karl's step 8 as HETDEX/vdrp ``src/vdrp/astrometry.py`` runs it (``runsh0 DATE OBS RA DEC
TRACK``; facts and sources in shared/reference/astrom_throughput.md §1-2, docs/stages/astrom.md):

* :mod:`hetred.astrom.formats` -- the text files (DAOPHOT ``.als``, shuffle's ``shout.ifustars``,
  ``radec*.dat``, ``getoff*.out``, ``all.mch``, ``all.raw``, ``norm.dat``, ``tmp_expNN.csv``,
  ``xy_expNN.dat``);
* :mod:`hetred.astrom.stars` -- star finding and PSF photometry on the CoFeS images (photutils),
  giving the ``.als``-equivalent tables;
* :mod:`hetred.astrom.getoff` -- detections on the sky, catalogue pairs and the iterated biweight
  offsets (vdrp ``add_ra_dec``, ``compute_offset``; Fortran ``getoff2``);
* :mod:`hetred.astrom.rotation` -- the rotation trials' optimum (``compute_optimal_ang_off``) and the
  shot centre (``combine_radec``);
* :mod:`hetred.astrom.register` -- exposure registration (DAOMASTER's ``all.mch``/``all.raw``) and
  the relative exposure normalisation ``norm.dat`` (``getNorm``);
* :mod:`hetred.astrom.fibers` -- every fiber's RA/Dec (``dith_expNN.all``, ``dithall.use``);
* :mod:`hetred.astrom.settings`, :mod:`hetred.astrom.solve` (one shot from its tables),
  :mod:`hetred.astrom.inputs` (finding a shot's inputs), :mod:`hetred.astrom.run` (units),
  :mod:`hetred.astrom.qa` (PNGs).
"""
