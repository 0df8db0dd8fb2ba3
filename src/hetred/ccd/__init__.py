"""Detector-level reduction shared by every stage that reduces frames: :mod:`~hetred.ccd.reduce`
(vred's per-amp steps: overscan, master bias, pixel flat, background blend, gain, orientation).
"""
