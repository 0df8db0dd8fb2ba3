"""Step 5: background models, ``hetred bgmodel MONTH`` (docs/stages/bgmodel.md).

Modules: :mod:`~hetred.background.settings`, :mod:`~hetred.background.frames` (improcn, imcmb),
:mod:`~hetred.background.model` with :mod:`~hetred.background.scattered` and
:mod:`~hetred.background.imgetgap`, :mod:`~hetred.background.products`, and
:mod:`~hetred.background.run` (the unit).
"""
