"""Generated data sets: part-whole objects with object and part masks (`part_whole`), and plain shapes for
classification and semantic segmentation (`shapes`)."""
