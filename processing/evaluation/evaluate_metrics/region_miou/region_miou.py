# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`evaluate` module: region mIoU of unsupervised segments with oracle segment labels (PartImageNet protocol)."""

from processing.evaluation import map_metric  # the module: evaluate loads a script's first Metric class
from processing.evaluation.metrics import region_mean_iou


_DESCRIPTION = """
Region mIoU of unsupervised segments (e.g. one level of a CAST hierarchy). Every predicted segment takes the reference
class it overlaps most (an oracle labeling: the CAST paper labels segments with an open-vocabulary classifier
instead), each image is scored by its mean Jaccard index over the classes present in it, and the scores are averaged
over images, as in the paper's PartImageNet evaluation. Finer segmentations score higher: compare methods at equal
segment counts.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 2-D integer maps): segment ids of every pixel, one map per image.
    references (`list` of 2-D integer maps): reference class of every pixel, same shapes.
    ignore_index (`int`, *optional*, defaults to 255): reference label of unlabeled pixels.
Returns:
    mean_iou (`float`): mean over images of the per-image mIoU.
    per_image_iou (`list[float]`): the per-image mIoU (NaN for images without labeled pixels).
Examples:
    >>> region_miou = evaluate.load("processing/evaluation/evaluate_metrics/region_miou")
    >>> region_miou.compute(predictions=[[[7, 3, 3, 3]]], references=[[[0, 0, 1, 1]]])["mean_iou"]
    0.5833333333333333
"""

_CITATION = """
@inproceedings{ke2024cast,
  title={Learning Hierarchical Image Segmentation For Recognition and By Recognition},
  author={Ke, Tsung-Wei and Mo, Sangwoo and Yu, Stella X.},
  booktitle={International Conference on Learning Representations},
  year={2024}
}
"""


class RegionMeanIoU(map_metric.MapMetric):
    description, inputs_description, citation = _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION
    score = staticmethod(region_mean_iou)
