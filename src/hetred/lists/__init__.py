"""Steps 1-2 of the process: lists of raw files (tarlist, science list, calibration inventory)."""
