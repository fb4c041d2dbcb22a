"""Console scripts: `cast-convert` (`convert`) and `cast-segment` (`segment`)."""
