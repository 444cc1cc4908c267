"""From a scanned upload to a Verdict: shared model batches, calibration, fusion, results files."""
