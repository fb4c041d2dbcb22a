# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`evaluate` module: boundary precision, recall and F-score with the BSDS distance tolerance."""

from processing.evaluation import map_metric  # the module: evaluate loads a script's first Metric class
from processing.evaluation.metrics import boundary_f_score


_DESCRIPTION = """
Boundary precision, recall and F-score of label maps. A pixel is on a boundary when its right, lower or lower-right
neighbor has another label. A predicted boundary pixel is correct when a reference boundary pixel lies within
`tolerance` times the image diagonal (0.0075, the BSDS benchmark's), and a reference boundary pixel is recovered when
a predicted one does; unlike BSDS, pixels are not matched one-to-one. Counts are summed over images (BSDS
aggregation); the mean of per-image F-scores is also returned. Score class maps (e.g. segments after labeling), not
raw segment ids, when internal segment boundaries should not count.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 2-D integer maps): predicted labels, one map per image.
    references (`list` of 2-D integer maps): reference labels, same shapes.
    tolerance (`float`, *optional*, defaults to 0.0075): matching distance as a fraction of the image diagonal.
Returns:
    precision, recall, f_score (`float`, from the counts summed over images) and mean_f_score (`float`).
Examples:
    >>> boundary_f = evaluate.load("processing/evaluation/evaluate_metrics/boundary_f_score")
    >>> boundary_f.compute(predictions=[[[0, 0, 1, 1]] * 4], references=[[[0, 0, 1, 1]] * 4])["f_score"]
    1.0
"""

_CITATION = """
@article{martin2004learning,
  title={Learning to Detect Natural Image Boundaries Using Local Brightness, Color, and Texture Cues},
  author={Martin, David R. and Fowlkes, Charless C. and Malik, Jitendra},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume={26}, number={5}, pages={530--549}, year={2004}
}
"""


class BoundaryFScore(map_metric.MapMetric):
    description, inputs_description, citation = _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION
    score = staticmethod(boundary_f_score)
