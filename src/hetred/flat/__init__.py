"""Pixel flats and the bad-pixel mask, ``hetred flat SPECID`` (docs/stages/flat.md).

Modules: :mod:`~hetred.flat.settings`, :mod:`~hetred.flat.pixelflat` (pure arrays: imar_flt,
imcmb), :mod:`~hetred.flat.defects` (the boxes of pix_mask.tab) and :mod:`~hetred.flat.run`
(the unit, its files and the table).
"""
