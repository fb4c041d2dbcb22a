# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`evaluate` module: superpixel boundary recall, undersegmentation error and achievable segmentation accuracy."""

from processing.evaluation import map_metric  # the module: evaluate loads a script's first Metric class
from processing.evaluation.metrics import superpixel_quality


_DESCRIPTION = """
Standard superpixel scores against reference region maps, averaged over images: boundary recall (share of reference
boundary pixels with a superpixel boundary within `tolerance` times the image diagonal), undersegmentation error
(Neubert and Protzel, 2012: pixels by which superpixels leak out of the regions they overlap, over the pixel count)
and achievable segmentation accuracy (pixel accuracy of the best labeling of the superpixels).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 2-D integer maps): superpixel ids, one map per image.
    references (`list` of 2-D integer maps): reference regions or classes, same shapes.
    tolerance (`float`, *optional*, defaults to 0.0075): boundary matching distance, fraction of the diagonal.
    ignore_index (`int`, *optional*, defaults to 255): reference label of unlabeled pixels.
Returns:
    boundary_recall, undersegmentation_error, achievable_segmentation_accuracy, mean_num_superpixels (`float`).
Examples:
    >>> quality = evaluate.load("processing/evaluation/evaluate_metrics/superpixel_quality")
    >>> quality.compute(predictions=[[[0, 1, 1, 1]]], references=[[[0, 0, 1, 1]]])["undersegmentation_error"]
    0.5
"""

_CITATION = """
@inproceedings{neubert2012superpixel,
  title={Superpixel Benchmark and Comparison},
  author={Neubert, Peer and Protzel, Peter},
  booktitle={Forum Bildverarbeitung},
  year={2012}
}
"""


class SuperpixelQuality(map_metric.MapMetric):
    description, inputs_description, citation = _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION
    score = staticmethod(superpixel_quality)
