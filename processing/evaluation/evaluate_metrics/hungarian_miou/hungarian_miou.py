# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`evaluate` module: mIoU after Hungarian matching of predicted clusters to reference classes."""

from processing.evaluation import map_metric  # the module: evaluate loads a script's first Metric class
from processing.evaluation.metrics import hungarian_mean_iou


_DESCRIPTION = """
Mean IoU of unsupervised clusters after a one-to-one Hungarian matching of clusters to reference classes that
maximizes the matched pixels (the unsupervised semantic segmentation protocol). Over the split, cluster ids mean the
same thing in every image; with `per_image=True` every image is matched and scored alone (for per-image segment ids
such as CAST's) and the scores are averaged. Pixels of unmatched clusters count as errors.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 2-D integer maps): cluster id of every pixel, one map per image.
    references (`list` of 2-D integer maps): reference class of every pixel, same shapes.
    ignore_index (`int`, *optional*, defaults to 255): reference label of unlabeled pixels.
    per_image (`bool`, *optional*, defaults to `False`): match each image alone.
Returns:
    mean_iou (`float`); over the split also per_category_iou (`list[float]`, NaN for absent classes) and
    assignment (`dict[int, int]` cluster -> class); per image, per_image_iou (`list[float]`).
Examples:
    >>> hungarian_miou = evaluate.load("processing/evaluation/evaluate_metrics/hungarian_miou")
    >>> hungarian_miou.compute(predictions=[[[5, 5, 5, 2]]], references=[[[0, 0, 1, 1]]])["mean_iou"]
    0.5833333333333333
"""


class HungarianMeanIoU(map_metric.MapMetric):
    description, inputs_description, citation = _DESCRIPTION, _KWARGS_DESCRIPTION, ""
    score = staticmethod(hungarian_mean_iou)
