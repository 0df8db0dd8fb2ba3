"""``hetred resmap``: per-pixel residual, noise and chi^2 maps of each camera amp over a month
(karlspipe hdr2.1 steps 14c-14d: imcmbext.f, imcmbchi.f). Modules: :mod:`~hetred.resmap.settings`,
:mod:`~hetred.resmap.combine` (pure arrays), :mod:`~hetred.resmap.stream` (files, row blocks),
:mod:`~hetred.resmap.run` (units), :mod:`~hetred.resmap.qa`. docs/stages/resmap.md.
"""
