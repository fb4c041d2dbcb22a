# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Scores of unsupervised segments that the oracle labeling of `metrics.region_mean_iou` cannot give, and the
bootstrap intervals that compare them.

* [`best_segment_iou`]: how well the single best segment covers a whole region (an object made of differently
  colored parts): no labeling involved, and more segments do not help.
* [`connected_components_per_segment`]: how fragmented the segments are (pixel k-means "segments" are hundreds
  of scattered regions, which the oracle labeling rewards).
* [`per_image_mean_iou`]: the per-image Jaccard of class maps labeled by any rule (e.g. a recognizer).
* [`bootstrap_interval`]: percentile bootstrap 95% intervals of a mean or of a paired mean difference over
  images, with `scipy.stats.bootstrap` (its `paired=True` resamples the images of every sample together).

```python
>>> import numpy as np
>>> from processing.evaluation.segment_scores import best_segment_iou
>>> segments = np.array([[0, 0, 1, 1]])
>>> best_segment_iou(segments, np.array([[0, 1, 1, 1]]))  # segment 1: 2 of the 3 object pixels, nothing else
0.6666666666666666
```
"""

from __future__ import annotations

import numbers

import numpy as np

from .metrics import DEFAULT_IGNORE_INDEX, _as_map_list, _image_mean_iou, _paired_maps


__all__ = [
    "best_segment_iou",
    "bootstrap_interval",
    "connected_components_per_segment",
    "per_image_mean_iou",
]


def best_segment_iou(segments, region) -> float:
    """
    The largest IoU between one segment and a region: `max over segments S of |S & R| / |S | R|`.

    Args:
        segments (`np.ndarray` or `torch.Tensor` of shape `(height, width)`): non-negative segment ids.
        region (same shape): the region, True or non-zero inside (e.g. an object mask with class ids).

    Returns:
        `float` in `[0, 1]`; NaN when the region is empty (an image without an object has no whole to find).
    """
    segments, region = _single_map(segments, "segments"), _single_map(region, "region")
    if segments.shape != region.shape:
        raise ValueError(f"`segments` has shape {segments.shape} but `region` has {region.shape}")
    _check_ids(segments, "segments")
    inside = region.reshape(-1) != 0
    if not inside.any():
        return float("nan")
    _, segment_index = np.unique(segments.reshape(-1), return_inverse=True)
    sizes = np.bincount(segment_index)
    overlaps = np.bincount(segment_index[inside], minlength=sizes.size)
    return float(np.max(overlaps / (sizes + inside.sum() - overlaps)))


def connected_components_per_segment(segments) -> float:
    """
    Mean number of 4-connected components of a segment (1.0: every segment is one contiguous region).

    Args:
        segments (`np.ndarray` or `torch.Tensor` of shape `(height, width)`): non-negative segment ids.

    Returns:
        `float`: connected regions of equal id divided by the number of distinct ids.
    """
    from skimage.measure import label as connected_regions

    segments = _single_map(segments, "segments")
    _check_ids(segments, "segments")
    # ids become 1.. so that no segment is skimage's background (0)
    _, relabeled = np.unique(segments, return_inverse=True)
    regions = connected_regions(relabeled.reshape(segments.shape) + 1, background=0, connectivity=1)
    return float(regions.max() / len(np.unique(relabeled)))


def per_image_mean_iou(predictions, references, ignore_index: int | None = DEFAULT_IGNORE_INDEX) -> np.ndarray:
    """
    Per-image mean IoU of class maps over the classes present in the image's reference or prediction, as the
    region mIoU of the CAST paper's PartImageNet protocol scores labeled segments.

    Args:
        predictions (`np.ndarray`, `torch.Tensor` or a list of them): class maps (one map, a batch or a list).
        references (same structure): reference class maps, `ignore_index` where unlabeled.
        ignore_index (`int`, *optional*, defaults to 255): reference label of unlabeled pixels; `None`: none.

    Returns:
        `np.ndarray` of shape `(num_images,)`, NaN for an image without labeled pixels.
    """
    prediction_maps, reference_maps = _paired_maps(predictions, references, "predictions", "references")
    return np.array(
        [_image_mean_iou(prediction, reference, ignore_index) for prediction, reference in zip(prediction_maps, reference_maps)],
        dtype=np.float64,
    )


def bootstrap_interval(
    scores, baseline=None, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict:
    """
    Percentile bootstrap interval over images of the mean of `scores`, or, with `baseline`, of the paired mean
    difference `scores - baseline` (the same images resampled for both: `scipy.stats.bootstrap(paired=True)`).

    Several seeds: pass `(num_seeds, num_images)` arrays. The statistic is then the mean over seeds of the per-seed
    means, and the images are resampled jointly for every seed (and both arms), so the interval covers the image
    sample with the seeds held fixed; the spread over seeds is reported next to it (`"seed_means"`).

    Args:
        scores (array of shape `(num_images,)` or `(num_seeds, num_images)`): per-image scores; NaN images (no
            object) are dropped from every arm and seed.
        baseline (same shape, *optional*): the scores of the method compared against, on the same images.
        confidence (`float`, *optional*, defaults to 0.95): interval coverage, in (0, 1).
        resamples (`int`, *optional*, defaults to 2000): bootstrap resamples.
        seed (`int`, *optional*, defaults to 0): seed of the resampling.

    Returns:
        `dict` with `"estimate"`, `"low"`, `"high"` (floats), `"num_images"` and `"seed_means"` (the statistic of each
        seed alone).
    """
    from scipy.stats import bootstrap

    scores = _score_matrix(scores, "scores")
    arms = [scores]
    if baseline is not None:
        baseline = _score_matrix(baseline, "baseline")
        if baseline.shape != scores.shape:
            raise ValueError(f"`baseline` must have the shape of `scores` {scores.shape}, got {baseline.shape}")
        arms.append(baseline)
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, numbers.Integral) or resamples < 1:
        raise ValueError(f"`resamples` must be a positive int, got {resamples!r}")
    kept = ~np.any([np.isnan(arm).any(axis=0) for arm in arms], axis=0)
    arms = [arm[:, kept] for arm in arms]
    num_seeds, num_images = arms[0].shape
    if num_images < 2:
        raise ValueError(f"`scores` must hold at least 2 images with defined scores, got {num_images}")

    def statistic(*samples, axis=-1):
        # samples: one per (arm, seed), each resampled with the same image indices (paired)
        per_seed = np.stack([np.mean(sample, axis=axis) for sample in samples])
        per_seed = per_seed.reshape(len(arms), num_seeds, *per_seed.shape[1:])
        difference = per_seed[0] - per_seed[1] if len(arms) == 2 else per_seed[0]
        return difference.mean(axis=0)

    samples = tuple(row for arm in arms for row in arm)
    result = bootstrap(
        samples, statistic, paired=True, vectorized=True, confidence_level=float(confidence), n_resamples=resamples,
        method="percentile", random_state=np.random.default_rng(seed),
    )
    seed_means = (arms[0] - arms[1]).mean(axis=1) if len(arms) == 2 else arms[0].mean(axis=1)
    return {
        "estimate": float(statistic(*samples)),
        "low": float(result.confidence_interval.low),
        "high": float(result.confidence_interval.high),
        "num_images": int(num_images),
        "seed_means": [float(value) for value in seed_means],
    }


def _score_matrix(values, argument: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(f"`{argument}` must be (num_images,) or (num_seeds, num_images) scores, got shape {array.shape}")
    return array


def _single_map(values, argument: str) -> np.ndarray:
    maps = _as_map_list(values, argument)
    if len(maps) != 1:
        raise ValueError(f"`{argument}` must be one (height, width) map, got {len(maps)} maps")
    return maps[0]


def _check_ids(values: np.ndarray, argument: str) -> None:
    if values.size and int(values.min()) < 0:
        raise ValueError(f"`{argument}` must hold non-negative ids, got a minimum of {int(values.min())}")
