"""``hetred h5``: the HDF5 files hetdex_api reads (steps 17 and 19; docs/stages/h5.md).

Modules: ``run.py`` (the units), ``settings.py``, ``schema.py`` (h5tools' tables, 0.8.7 and HEAD),
``inputs.py`` (the earlier stages' products), ``shot.py`` + ``shotmeta.py`` + ``astrometry.py``
(the shot file), ``fluxlimit.py``, ``survey.py``, ``fiberindex.py``, ``detect.py``.
"""
