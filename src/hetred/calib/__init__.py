"""Calibration stages: the libraries built from calibration frames and read by the reduction.

Each module documents its stage and products (docs/stages/); for example
:mod:`hetred.calib.bias` is step 4, the master bias per spectrograph, controller and amp
(karlspipe ``bias/``), with :mod:`hetred.calib.bias_io` for its files.
"""
