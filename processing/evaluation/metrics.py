# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Segmentation metrics: class maps (mean IoU, per-class IoU, pixel accuracy from a confusion matrix) and
unsupervised segments (region mIoU with oracle labels, Hungarian-matched mIoU, boundary F-score, superpixel
quality).

`evaluate.load("mean_iou")` needs the Hub, so the examples and tests use these instead; the same metrics are also
`evaluate` modules loadable by local path (`processing/evaluation/evaluate_metrics/`). scipy and scikit-image
(dependencies of the package) are imported by the functions that use them. The functions work on any integer maps
(numpy arrays, torch tensors, nested lists), read by the integer-map helpers of `processing.image_inputs_cast`,
without the model package.

Conventions (those of the `mean_iou` metric on the Hub and of mmsegmentation): pixels whose reference is
`ignore_index` are left out; a class that appears neither in the predictions nor in the references has an undefined
IoU (NaN) and is left out of the means.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ..image_inputs_cast import check_non_negative, integer_array, split_batch


__all__ = [
    "matched_pixel_agreement",
    "BSDS_BOUNDARY_TOLERANCE",
    "boundary_f_score",
    "boundary_map",
    "confusion_matrix",
    "hierarchy_level_scores",
    "hungarian_mean_iou",
    "mean_iou",
    "metrics_from_confusion_matrix",
    "oracle_segment_labels",
    "region_mean_iou",
    "superpixel_quality",
]

DEFAULT_IGNORE_INDEX = 255  # CastConfig.semantic_loss_ignore_index and SegFormer's reduced-label background
# Berkeley Segmentation Data Set benchmark: a boundary pixel is matched within 0.0075 of the image diagonal
BSDS_BOUNDARY_TOLERANCE = 0.0075


def confusion_matrix(
    predictions, references, num_labels: int, ignore_index: int | None = DEFAULT_IGNORE_INDEX
) -> np.ndarray:
    """
    Count, for every pair of classes, the pixels whose reference is one and whose prediction is the other.

    Args:
        predictions (`np.ndarray`, `torch.Tensor` or a list of them):
            Predicted class of every pixel: one `(height, width)` map, a `(batch_size, height, width)` batch, or a
            list of maps of different sizes. Values in `[0, num_labels)`.
        references (same structure and shapes as `predictions`):
            True class of every pixel, in `[0, num_labels)` or equal to `ignore_index`.
        num_labels (`int`):
            Number of classes.
        ignore_index (`int`, *optional*, defaults to 255):
            Reference label of pixels to leave out (unlabeled or ambiguous). `None` ignores nothing.

    Returns:
        `np.ndarray` of shape `(num_labels, num_labels)` and dtype int64: entry `[r, p]` counts the pixels of
        reference class `r` predicted as `p`.
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, numbers.Integral) or num_labels < 1:
        raise ValueError(f"`num_labels` must be a positive integer, got {num_labels!r}")
    prediction_maps, reference_maps = _as_map_list(predictions, "predictions"), _as_map_list(references, "references")
    if len(prediction_maps) != len(reference_maps):
        raise ValueError(
            f"`predictions` and `references` must hold the same number of maps, got {len(prediction_maps)} and "
            f"{len(reference_maps)}"
        )
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    for index, (prediction, reference) in enumerate(zip(prediction_maps, reference_maps)):
        if prediction.shape != reference.shape:
            raise ValueError(
                f"`predictions[{index}]` has shape {prediction.shape} but `references[{index}]` has {reference.shape}"
            )
        labeled = reference != ignore_index if ignore_index is not None else np.ones(reference.shape, dtype=bool)
        prediction, reference = prediction[labeled], reference[labeled]
        _check_range(prediction, num_labels, "predictions")
        _check_range(reference, num_labels, "references", ignore_index)
        pairs = reference * num_labels + prediction
        matrix += np.bincount(pairs, minlength=num_labels * num_labels).reshape(num_labels, num_labels)
    return matrix


def metrics_from_confusion_matrix(matrix: np.ndarray) -> dict:
    """
    IoU and accuracy from a confusion matrix (rows = references, columns = predictions), for instance one summed
    over the batches of an evaluation.

    Returns:
        `dict` with `"mean_iou"` (`float`: mean IoU over the classes present in predictions or references),
        `"mean_accuracy"` (`float`: mean per-class recall over the classes present in the references),
        `"overall_accuracy"` (`float`: pixel accuracy, the fraction of labeled pixels predicted right),
        `"per_category_iou"` and `"per_category_accuracy"` (`np.ndarray` of shape `(num_labels,)`, NaN where
        undefined). Every value is NaN when no pixel is labeled.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"`matrix` must be a square (num_labels, num_labels) array, got shape {matrix.shape}")
    true_positives = np.diag(matrix).astype(np.float64)
    reference_counts = matrix.sum(axis=1)
    prediction_counts = matrix.sum(axis=0)
    union = reference_counts + prediction_counts - true_positives
    with np.errstate(divide="ignore", invalid="ignore"):
        per_category_iou = np.where(union > 0, true_positives / union, np.nan)
        per_category_accuracy = np.where(reference_counts > 0, true_positives / reference_counts, np.nan)
    total = matrix.sum()
    return {
        "mean_iou": _nan_mean(per_category_iou),
        "mean_accuracy": _nan_mean(per_category_accuracy),
        "overall_accuracy": float(true_positives.sum() / total) if total > 0 else float("nan"),
        "per_category_iou": per_category_iou,
        "per_category_accuracy": per_category_accuracy,
    }


def mean_iou(predictions, references, num_labels: int, ignore_index: int | None = DEFAULT_IGNORE_INDEX) -> dict:
    """
    Mean intersection over union of class maps, with per-class IoU and pixel accuracy.

    Args:
        predictions (`np.ndarray`, `torch.Tensor` or a list of them):
            Predicted class maps (see [`confusion_matrix`]).
        references (same structure and shapes as `predictions`):
            True class maps; pixels equal to `ignore_index` are left out.
        num_labels (`int`):
            Number of classes.
        ignore_index (`int`, *optional*, defaults to 255):
            Reference label of unlabeled pixels. `None` ignores nothing.

    Returns:
        `dict`: see [`metrics_from_confusion_matrix`].

    Example:

    ```python
    >>> import numpy as np
    >>> from processing.evaluation.metrics import mean_iou

    >>> references = np.array([[0, 0], [1, 255]])
    >>> predictions = np.array([[0, 1], [1, 1]])
    >>> metrics = mean_iou(predictions, references, num_labels=2)
    >>> round(metrics["mean_iou"], 4), round(metrics["overall_accuracy"], 4)
    (0.5, 0.6667)
    ```
    """
    return metrics_from_confusion_matrix(confusion_matrix(predictions, references, num_labels, ignore_index))


# ---------------------------------------------------------------------------------------------------------------
# Unsupervised segments: the segment ids of a prediction are arbitrary (e.g. a CAST hierarchy level, k-means
# clusters); they are scored against class maps after giving every segment a class.
# ---------------------------------------------------------------------------------------------------------------


def oracle_segment_labels(segments, reference, ignore_index: int | None = DEFAULT_IGNORE_INDEX) -> np.ndarray:
    """
    Give every segment the reference class it overlaps most (the *oracle* labeling): a class map that is the best
    any labeling of these segments can do pixel-wise.

    This is an upper bound on what a segment classifier can reach. The CAST paper labels segments with an
    open-vocabulary classifier instead; with oracle labels the score measures only how well the segments follow the
    reference regions.

    Args:
        segments (`np.ndarray` or `torch.Tensor` of shape `(height, width)`):
            Non-negative integer segment ids (any values; they need not be contiguous).
        reference (`np.ndarray` or `torch.Tensor` of shape `(height, width)`):
            Non-negative integer class of every pixel, or `ignore_index`.
        ignore_index (`int`, *optional*, defaults to 255):
            Reference label of pixels that do not vote. `None` lets every pixel vote.

    Returns:
        `np.ndarray` of shape `(height, width)`, dtype int64: the class of every pixel's segment. Ties go to the
        smallest class; a segment without voting pixels gets `ignore_index` (or 0 when it is `None`).

    Example:

    ```python
    >>> import numpy as np
    >>> from processing.evaluation.metrics import oracle_segment_labels

    >>> segments = np.array([[0, 0, 1, 1]])
    >>> reference = np.array([[2, 2, 2, 5]])  # segment 1 is a tie between classes 2 and 5
    >>> oracle_segment_labels(segments, reference).tolist()
    [[2, 2, 2, 2]]
    ```
    """
    (segments,), (reference,) = _paired_maps(segments, reference, "segments", "reference")
    _check_non_negative(segments, "segments")
    _check_non_negative(reference, "reference", ignore_index)
    segment_ids, segment_index = np.unique(segments, return_inverse=True)
    overlap_segments, overlap_classes, overlap_counts = _overlaps(reference, segment_index.reshape(-1), ignore_index)
    segment_classes = np.full(segment_ids.size, ignore_index if ignore_index is not None else 0, dtype=np.int64)
    # per segment: the largest overlap first, ties to the smallest class; the first entry of each segment wins
    order = np.lexsort((overlap_classes, -overlap_counts, overlap_segments))
    first = order[np.r_[True, np.diff(overlap_segments[order]) != 0]] if order.size else order
    segment_classes[overlap_segments[first]] = overlap_classes[first]
    return segment_classes[segment_index.reshape(segments.shape)]


def region_mean_iou(segmentations, references, ignore_index: int | None = DEFAULT_IGNORE_INDEX) -> dict:
    """
    Region mIoU of unsupervised segments, under the PartImageNet protocol of the CAST paper: every image is scored
    on its own (mean Jaccard index over the classes present in its reference or its labeled prediction) and the
    scores are averaged over images.

    Segments are labeled with [`oracle_segment_labels`] (each takes the reference class it overlaps most), not with
    the open-vocabulary classifier of the paper: the score measures how well the segments follow the reference
    regions, and finer segmentations score higher, so compare methods at equal segment counts.

    Args:
        segmentations (`np.ndarray`, `torch.Tensor` or a list of them):
            Segment ids: one `(height, width)` map, a `(batch_size, height, width)` batch or a list of maps.
        references (same structure and shapes as `segmentations`):
            Non-negative class maps (e.g. 0 = background, 1 = object; or part ids).
        ignore_index (`int`, *optional*, defaults to 255):
            Reference label of unlabeled pixels. `None` ignores nothing.

    Returns:
        `dict` with `"mean_iou"` (`float`: mean over the images that have labeled pixels, NaN if none has) and
        `"per_image_iou"` (`np.ndarray` of shape `(num_images,)`, NaN for images without labeled pixels).

    Example:

    ```python
    >>> import numpy as np
    >>> from processing.evaluation.metrics import region_mean_iou

    >>> reference = np.array([[0, 0, 1, 1]])
    >>> segments = np.array([[7, 3, 3, 3]])  # segment 3 covers a background pixel and the object: labeled object
    >>> round(region_mean_iou(segments, reference)["mean_iou"], 4)  # background IoU 1/2, object 2/3
    0.5833
    ```
    """
    segment_maps, reference_maps = _paired_maps(segmentations, references, "segmentations", "references")
    scores = []
    for segments, reference in zip(segment_maps, reference_maps):
        labeled = oracle_segment_labels(segments, reference, ignore_index)
        scores.append(_image_mean_iou(labeled, reference, ignore_index))
    scores = np.array(scores, dtype=np.float64)
    return {"mean_iou": _nan_mean(scores), "per_image_iou": scores}


def hungarian_mean_iou(
    predictions,
    references,
    ignore_index: int | None = DEFAULT_IGNORE_INDEX,
    per_image: bool = False,
) -> dict:
    """
    Mean IoU after a one-to-one Hungarian matching of predicted clusters to reference classes, the protocol of
    unsupervised semantic segmentation (e.g. PiCIE, STEGO): the matching maximizes the number of pixels whose cluster
    is matched to their class (`scipy.optimize.linear_sum_assignment`).

    Args:
        predictions (`np.ndarray`, `torch.Tensor` or a list of them):
            Non-negative cluster ids: one map, a batch or a list of maps.
        references (same structure and shapes as `predictions`):
            Non-negative class maps, `ignore_index` where unlabeled.
        ignore_index (`int`, *optional*, defaults to 255):
            Reference label of unlabeled pixels. `None` ignores nothing.
        per_image (`bool`, *optional*, defaults to `False`):
            `False`: cluster ids mean the same thing in every image; one matching over the whole split, one IoU per
            class. `True`: ids are per image (as CAST's segments); match and score each image alone and average.

    Returns:
        `dict`. Split-level: `"mean_iou"` (mean over the classes present in the references), `"per_category_iou"`
        (`np.ndarray` of shape `(num_classes,)`, NaN for classes absent from the references; 0 for a class left
        without a cluster) and `"assignment"` (`dict` cluster id -> class). Pixels of unmatched clusters count as
        errors. Per image: `"mean_iou"` and `"per_image_iou"`.

    Example:

    ```python
    >>> import numpy as np
    >>> from processing.evaluation.metrics import hungarian_mean_iou

    >>> references = np.array([[0, 0, 1, 1]])
    >>> predictions = np.array([[5, 5, 5, 2]])  # cluster 5 -> class 0 (IoU 2/3), cluster 2 -> class 1 (IoU 1/2)
    >>> round(hungarian_mean_iou(predictions, references)["mean_iou"], 4)
    0.5833
    ```
    """
    if not isinstance(per_image, (bool, np.bool_)):
        raise TypeError(f"`per_image` must be a bool, got {type(per_image).__name__}")
    prediction_maps, reference_maps = _paired_maps(predictions, references, "predictions", "references")
    for prediction, reference in zip(prediction_maps, reference_maps):
        _check_non_negative(prediction, "predictions")
        _check_non_negative(reference, "references", ignore_index)
    if per_image:
        scores = np.array(
            [_matched_iou(_contingency_table(ref, pred, ignore_index))[0] for pred, ref in zip(prediction_maps, reference_maps)],
            dtype=np.float64,
        )
        return {"mean_iou": _nan_mean(scores), "per_image_iou": scores}
    tables = [_contingency_table(ref, pred, ignore_index) for pred, ref in zip(prediction_maps, reference_maps)]
    num_classes = max(table.shape[0] for table in tables)
    num_clusters = max(table.shape[1] for table in tables)
    table = np.zeros((num_classes, num_clusters), dtype=np.int64)
    for image_table in tables:
        table[: image_table.shape[0], : image_table.shape[1]] += image_table
    mean, per_category_iou, assignment = _matched_iou(table)
    return {"mean_iou": mean, "per_category_iou": per_category_iou, "assignment": assignment}


# ---------------------------------------------------------------------------------------------------------------
# Boundaries
# ---------------------------------------------------------------------------------------------------------------


def boundary_map(label_map) -> np.ndarray:
    """
    One-pixel-wide boundaries of a label map, as the BSDS benchmark draws them from a segmentation: a pixel is on a
    boundary when its right, lower or lower-right neighbor has another label.

    Args:
        label_map (`np.ndarray` or `torch.Tensor` of shape `(height, width)`): integer labels.

    Returns:
        `np.ndarray` of shape `(height, width)`, dtype bool: True on boundary pixels.
    """
    (labels,) = _as_map_list(label_map, "label_map")
    boundaries = np.zeros(labels.shape, dtype=bool)
    boundaries[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    boundaries[:-1, :] |= labels[:-1, :] != labels[1:, :]
    boundaries[:-1, :-1] |= labels[:-1, :-1] != labels[1:, 1:]
    return boundaries


def boundary_f_score(predictions, references, tolerance: float = BSDS_BOUNDARY_TOLERANCE) -> dict:
    """
    Boundary precision, recall and F-score of label maps against reference maps, with the BSDS distance tolerance.

    Boundaries come from [`boundary_map`]. A predicted boundary pixel is correct when a reference boundary pixel lies
    within `tolerance * image diagonal` (Euclidean distance, `scipy.ndimage.distance_transform_edt`), and a reference
    boundary pixel is recovered when a predicted one lies within that distance. The BSDS benchmark additionally
    matches pixels one-to-one; without that matching these scores can only be higher (by a little when boundaries
    are thin, as here).

    Only where labels change is a boundary, so score class maps (e.g. segments after [`oracle_segment_labels`]),
    not raw segment ids, when internal segment boundaries should not count.

    Args:
        predictions (`np.ndarray`, `torch.Tensor` or a list of them):
            Integer label maps: one map, a batch or a list of maps.
        references (same structure and shapes as `predictions`):
            Integer reference label maps.
        tolerance (`float`, *optional*, defaults to 0.0075):
            Matching distance as a fraction of the image diagonal (0.0075: the BSDS benchmark's).

    Returns:
        `dict` with `"precision"`, `"recall"` and `"f_score"` from the boundary pixels summed over all images (the
        BSDS aggregation), and `"mean_f_score"` (mean of the per-image F-scores). With no predicted boundary
        pixel precision is 1; with no reference boundary pixel recall is 1.

    Example:

    ```python
    >>> import numpy as np
    >>> from processing.evaluation.metrics import boundary_f_score

    >>> reference = np.zeros((8, 8), dtype=int)
    >>> reference[:, 4:] = 1
    >>> prediction = np.roll(reference, 1, axis=1)  # boundary one pixel off: within 0.06 of the diagonal
    >>> boundary_f_score(prediction, reference, tolerance=0.1)["f_score"]
    1.0
    ```
    """
    tolerance = _check_tolerance(tolerance)
    prediction_maps, reference_maps = _paired_maps(predictions, references, "predictions", "references")
    totals = np.zeros(4, dtype=np.int64)  # matched predicted, predicted, matched reference, reference
    image_scores = []
    for prediction, reference in zip(prediction_maps, reference_maps):
        counts = _boundary_counts(boundary_map(prediction), boundary_map(reference), tolerance)
        totals += counts
        image_scores.append(_f_score(*_precision_recall(counts))[2])
    precision, recall, f_score = _f_score(*_precision_recall(totals))
    return {"precision": precision, "recall": recall, "f_score": f_score, "mean_f_score": float(np.mean(image_scores))}


def hierarchy_level_scores(hierarchies, references: dict) -> list[dict]:
    """
    Score every level of segment hierarchies (e.g. CAST's `hierarchy`, or k-means levels) against one or more sets
    of reference maps: region mIoU ([`region_mean_iou`], oracle segment labels) and boundary F-score
    ([`boundary_f_score`], BSDS tolerance) of the oracle-labeled maps.

    Args:
        hierarchies (`np.ndarray` or `torch.Tensor` of shape `(num_images, num_levels, height, width)`, or a list
            of `(num_levels, height, width)` arrays): segment ids, one map per image and level.
        references (`dict[str, list]`): named reference sets (e.g. `{"object": object_masks, "part": part_masks}`),
            each one `(height, width)` class map per image.

    Returns:
        `list[dict]`, one per level (in the order of `hierarchies`' levels): `"mean_segments"` (distinct segments
        per image, averaged over images) and, for every reference name, `"<name>_miou"` and `"<name>_boundary_f"`.
    """
    stack = [np.asarray(hierarchy) for hierarchy in hierarchies]
    scores = []
    for level in range(stack[0].shape[0] if stack else 0):
        segments = [hierarchy[level] for hierarchy in stack]
        level_scores = {"mean_segments": float(np.mean([len(np.unique(item)) for item in segments]))}
        for name, reference_maps in references.items():
            level_scores[f"{name}_miou"] = region_mean_iou(segments, reference_maps)["mean_iou"]
            labeled = [oracle_segment_labels(item, reference) for item, reference in zip(segments, reference_maps)]
            level_scores[f"{name}_boundary_f"] = boundary_f_score(labeled, reference_maps)["f_score"]
        scores.append(level_scores)
    return scores


def superpixel_quality(
    superpixels,
    references,
    tolerance: float = BSDS_BOUNDARY_TOLERANCE,
    ignore_index: int | None = DEFAULT_IGNORE_INDEX,
) -> dict:
    """
    Standard superpixel benchmark scores of over-segmentations against reference region maps, averaged over images:

    * boundary recall: the share of reference boundary pixels with a superpixel boundary within `tolerance * image
      diagonal` (higher is better);
    * undersegmentation error (Neubert and Protzel, 2012): the pixels by which superpixels leak out of the reference
      regions they overlap, `sum over regions G and superpixels S meeting G of min(|S & G|, |S - G|)`, divided by
      the pixel count (lower is better);
    * achievable segmentation accuracy: the pixel accuracy of the best labeling of the superpixels,
      `sum over S of max over G of |S & G|` divided by the pixel count (higher is better).

    Pixels whose reference is `ignore_index` are left out of the two region scores.

    Args:
        superpixels (`np.ndarray`, `torch.Tensor` or a list of them):
            Non-negative superpixel ids: one map, a batch or a list of maps.
        references (same structure and shapes as `superpixels`):
            Non-negative reference region (or class) maps.
        tolerance (`float`, *optional*, defaults to 0.0075):
            Boundary matching distance as a fraction of the image diagonal.
        ignore_index (`int`, *optional*, defaults to 255):
            Reference label of unlabeled pixels. `None` ignores nothing.

    Returns:
        `dict` with `"boundary_recall"`, `"undersegmentation_error"`, `"achievable_segmentation_accuracy"` and
        `"mean_num_superpixels"` (`float` each, means over images).
    """
    tolerance = _check_tolerance(tolerance)
    superpixel_maps, reference_maps = _paired_maps(superpixels, references, "superpixels", "references")
    recalls, errors, accuracies, counts = [], [], [], []
    for segments, reference in zip(superpixel_maps, reference_maps):
        _check_non_negative(segments, "superpixels")
        _check_non_negative(reference, "references", ignore_index)
        boundary_counts = _boundary_counts(boundary_map(segments), boundary_map(reference), tolerance)
        recalls.append(_precision_recall(boundary_counts)[1])
        _, segment_index = np.unique(segments, return_inverse=True)
        overlap_segments, _, overlap_counts = _overlaps(reference, segment_index.reshape(-1), ignore_index)
        total = overlap_counts.sum()
        if total == 0:
            errors.append(np.nan)
            accuracies.append(np.nan)
        else:
            superpixel_sizes = np.bincount(overlap_segments, weights=overlap_counts).astype(np.int64)
            leaks = np.minimum(overlap_counts, superpixel_sizes[overlap_segments] - overlap_counts)
            errors.append(leaks.sum() / total)
            largest = np.zeros(superpixel_sizes.size, dtype=np.int64)
            np.maximum.at(largest, overlap_segments, overlap_counts)
            accuracies.append(largest.sum() / total)
        counts.append(len(np.unique(segments)))
    return {
        "boundary_recall": float(np.mean(recalls)),
        "undersegmentation_error": _nan_mean(np.array(errors, dtype=np.float64)),
        "achievable_segmentation_accuracy": _nan_mean(np.array(accuracies, dtype=np.float64)),
        "mean_num_superpixels": float(np.mean(counts)),
    }


def _image_mean_iou(prediction: np.ndarray, reference: np.ndarray, ignore_index: int | None) -> float:
    """Mean IoU of one image over the classes present in its reference or prediction (labeled pixels only). The
    classes are renumbered to those present, so memory follows the pixel count, not the largest label."""
    labeled = reference != ignore_index if ignore_index is not None else np.ones(reference.shape, dtype=bool)
    if not labeled.any():
        return float("nan")
    prediction, reference = prediction[labeled], reference[labeled]
    classes, index = np.unique(np.concatenate([prediction, reference]), return_inverse=True)
    predicted_index, reference_index = index[: prediction.size], index[prediction.size :]
    true_positives = np.bincount(reference_index[predicted_index == reference_index], minlength=classes.size)
    union = (
        np.bincount(reference_index, minlength=classes.size)
        + np.bincount(predicted_index, minlength=classes.size)
        - true_positives
    )
    return float(np.mean(true_positives / union))  # every class counted here is present, so its union is positive


def _overlaps(
    reference: np.ndarray, segment_index: np.ndarray, ignore_index: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-empty overlaps of segments and reference classes over the labeled pixels, as three aligned arrays
    (segment index, class, pixel count), sorted by segment then class. Sparse: memory follows the pixel count,
    never the largest id (a dense table for one label 60000 would need gigabytes)."""
    reference = reference.reshape(-1)
    labeled = reference != ignore_index if ignore_index is not None else np.ones(reference.shape, dtype=bool)
    if not labeled.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    pairs, counts = np.unique(
        np.stack([segment_index[labeled], reference[labeled]]).astype(np.int64), axis=1, return_counts=True
    )
    return pairs[0], pairs[1], counts.astype(np.int64)


def matched_pixel_agreement(reference, other) -> float:
    """Share of pixels on which two segmentations of the same image agree once the ids of `other` are matched one to
    one to those of `reference` (the matching that maximizes the overlap, Hungarian algorithm). 1.0 for the same
    partition under other ids; used to compare a model's hierarchy across dtypes or devices.

    Args:
        reference, other (`np.ndarray` or `torch.Tensor` of shape `(height, width)`): non-negative integer ids.
    """
    from scipy.optimize import linear_sum_assignment

    (reference,), (other,) = _paired_maps([reference], [other], "reference", "other")
    _check_non_negative(reference, "reference")
    _check_non_negative(other, "other")
    # overlaps of the ids present only, so memory follows the pixels, not the largest id
    reference_ids, reference_index = np.unique(reference, return_inverse=True)
    other_ids, other_index = np.unique(other, return_inverse=True)
    overlap = np.zeros((len(reference_ids), len(other_ids)), dtype=np.int64)
    np.add.at(overlap, (reference_index.ravel(), other_index.ravel()), 1)
    rows, columns = linear_sum_assignment(overlap, maximize=True)
    return float(overlap[rows, columns].sum()) / reference.size


def _contingency_table(reference: np.ndarray, segments: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Dense (reference classes, segment ids) pixel counts over the labeled pixels, with a column for every id up to
    the largest in `segments`."""
    from skimage.metrics import contingency_table

    labeled = reference != ignore_index if ignore_index is not None else np.ones(reference.shape, dtype=bool)
    num_segments = int(segments.max()) + 1 if segments.size else 1
    if not labeled.any():
        return np.zeros((1, num_segments), dtype=np.int64)
    table = contingency_table(reference[labeled], segments[labeled], sparse_type="array").toarray()
    table = np.rint(table).astype(np.int64)
    return np.pad(table, ((0, 0), (0, num_segments - table.shape[1])))


def _matched_iou(table: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """Hungarian matching of clusters (columns) to the classes present (rows with pixels), and the IoUs."""
    from scipy.optimize import linear_sum_assignment

    class_sizes, cluster_sizes = table.sum(axis=1), table.sum(axis=0)
    present = np.flatnonzero(class_sizes > 0)
    per_category_iou = np.full(table.shape[0], np.nan)
    if present.size == 0:
        return float("nan"), per_category_iou, {}
    per_category_iou[present] = 0.0
    rows, columns = linear_sum_assignment(table[present], maximize=True)
    assignment = {}
    for row, cluster in zip(rows, columns):
        category = int(present[row])
        overlap = table[category, cluster]
        per_category_iou[category] = overlap / (class_sizes[category] + cluster_sizes[cluster] - overlap)
        assignment[int(cluster)] = category
    return float(per_category_iou[present].mean()), per_category_iou, assignment


def _boundary_counts(predicted: np.ndarray, reference: np.ndarray, tolerance: float) -> np.ndarray:
    """[matched predicted, predicted, matched reference, reference] boundary pixel counts of one image."""
    from scipy.ndimage import distance_transform_edt

    max_distance = tolerance * float(np.hypot(*predicted.shape))
    num_predicted, num_reference = int(predicted.sum()), int(reference.sum())
    matched_predicted = matched_reference = 0
    if num_predicted and num_reference:
        matched_predicted = int((distance_transform_edt(~reference)[predicted] <= max_distance).sum())
        matched_reference = int((distance_transform_edt(~predicted)[reference] <= max_distance).sum())
    return np.array([matched_predicted, num_predicted, matched_reference, num_reference], dtype=np.int64)


def _precision_recall(counts: np.ndarray) -> tuple[float, float]:
    matched_predicted, num_predicted, matched_reference, num_reference = (int(value) for value in counts)
    precision = matched_predicted / num_predicted if num_predicted else 1.0
    recall = matched_reference / num_reference if num_reference else 1.0
    return precision, recall


def _f_score(precision: float, recall: float) -> tuple[float, float, float]:
    total = precision + recall
    return float(precision), float(recall), float(2 * precision * recall / total) if total > 0 else 0.0


def _check_tolerance(tolerance) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not 0 <= tolerance < 1:
        raise ValueError(f"`tolerance` must be a fraction of the image diagonal in [0, 1), got {tolerance!r}")
    return float(tolerance)


def _paired_maps(first, second, first_name: str, second_name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    first_maps, second_maps = _as_map_list(first, first_name), _as_map_list(second, second_name)
    if len(first_maps) != len(second_maps):
        raise ValueError(
            f"`{first_name}` and `{second_name}` must hold the same number of maps, got {len(first_maps)} and "
            f"{len(second_maps)}"
        )
    for index, (first_map, second_map) in enumerate(zip(first_maps, second_maps)):
        if first_map.shape != second_map.shape:
            raise ValueError(
                f"`{first_name}[{index}]` has shape {first_map.shape} but `{second_name}[{index}]` has {second_map.shape}"
            )
    return first_maps, second_maps


def _check_non_negative(values: np.ndarray, argument: str, ignore_index: int | None = None) -> None:
    if ignore_index is not None:
        values = values[values != ignore_index]
    if values.size:
        allowed = "ids" + (f" (or ignore_index={ignore_index})" if ignore_index is not None else "")
        check_non_negative(values, argument, allowed)


def _nan_mean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def _as_map_list(maps, argument: str) -> list[np.ndarray]:
    """A list of int64 2-D maps from a map, a batch of maps or an iterable of maps (numpy, torch or lists)."""
    if isinstance(maps, (np.ndarray, torch.Tensor)):
        return split_batch(
            integer_array(maps, argument, what="class labels").astype(np.int64, copy=False),
            (2,),
            f"`{argument}` must be a (height, width) map, a (batch_size, height, width) batch or a list of maps",
        )
    if isinstance(maps, (list, tuple)):
        if any(isinstance(item, (np.ndarray, torch.Tensor)) for item in maps):
            return [single for item in maps for single in _as_map_list(item, argument)]
        try:
            array = np.asarray(maps)  # nested lists of numbers
        except ValueError as error:
            raise ValueError(f"`{argument}` given as nested lists must be rectangular: {error}") from error
        if array.dtype == object:
            raise TypeError(f"`{argument}` must hold integer class labels, got a list of mixed types")
        return _as_map_list(array, argument)
    raise TypeError(f"`{argument}` must be numpy arrays, torch tensors or lists of maps, got {type(maps).__name__}")


def _check_range(values: np.ndarray, num_labels: int, argument: str, ignore_index: int | None = None) -> None:
    if values.size == 0:
        return
    minimum, maximum = int(values.min()), int(values.max())
    if minimum < 0 or maximum >= num_labels:
        allowed = f"[0, {num_labels})" + (f" or equal ignore_index={ignore_index}" if ignore_index is not None else "")
        raise ValueError(f"`{argument}` must lie in {allowed}, got values from {minimum} to {maximum}")
