"""Step 14 and 15: line detection (``hetred detect``, Karl's fitradecsp mode 104) and continuum
sources (``hetred continuum``); docs/stages/detect.md."""
