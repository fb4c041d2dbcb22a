"""Generated data sets: part-whole objects with object and part masks (`part_whole`)."""
