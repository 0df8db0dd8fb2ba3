"""Step 4: the master bias library, ``hetred bias MONTH`` (docs/stages/bias.md).

Modules: :mod:`~hetred.bias.settings` (``[stages.bias]``), :mod:`~hetred.bias.masterbias` (pure
arrays: improcb, imcmb, imbox2, imgetctrap), :mod:`~hetred.bias.frames` (the unit's zro frames),
:mod:`~hetred.bias.products` (files written) and :mod:`~hetred.bias.run` (the unit).
"""
