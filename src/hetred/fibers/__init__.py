"""The fiber model shared by the stages that extract spectra (flat, twical, sci).

Modules: :mod:`~hetred.fibers.trace` (finding and following fiber traces), :mod:`~hetred.fibers.profile`
(the empirical cross-dispersion profile, and :func:`~hetred.fibers.profile.calibrate_frame`: trace,
profile and extraction of one frame), :mod:`~hetred.fibers.extract` (weighted profile extraction)
and :mod:`~hetred.fibers.library` (the monthly calibration library file, ``callib``).
"""
