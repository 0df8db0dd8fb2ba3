"""hetred: the HETDEX / VIRUS reduction toolkit.

One installable package replacing Karl Gebhardt's production pipeline (HETDEX/karlspipe hdr2.1):
one ``hetred`` subcommand per stage, a single layout table for every path
(:mod:`hetred.layout`), instrument conventions in :mod:`hetred.virus`, and Cython kernels in
:mod:`hetred._ext`.
"""
from hetred._version import __version__

__all__ = ["__version__"]
