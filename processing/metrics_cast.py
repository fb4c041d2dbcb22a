# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Segmentation metrics computed with numpy from a confusion matrix: mean IoU, per-class IoU and pixel accuracy.

`evaluate.load("mean_iou")` needs the Hub, so the examples and tests use these instead. Only numpy is imported: the
functions work on any integer class maps (numpy arrays, torch tensors, nested lists), without the model package.

Conventions (those of the `mean_iou` metric on the Hub and of mmsegmentation): pixels whose reference is
`ignore_index` are left out; a class that appears neither in the predictions nor in the references has an undefined
IoU (NaN) and is left out of the means.
"""

from __future__ import annotations

import numbers
import numpy as np


__all__ = ["confusion_matrix", "mean_iou", "metrics_from_confusion_matrix"]

DEFAULT_IGNORE_INDEX = 255  # CastConfig.semantic_loss_ignore_index and SegFormer's reduced-label background


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
            Reference label of pixels to leave out (unlabelled or ambiguous). `None` ignores nothing.

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
        labelled = reference != ignore_index if ignore_index is not None else np.ones(reference.shape, dtype=bool)
        prediction, reference = prediction[labelled], reference[labelled]
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
        `"overall_accuracy"` (`float`: pixel accuracy, the fraction of labelled pixels predicted right),
        `"per_category_iou"` and `"per_category_accuracy"` (`np.ndarray` of shape `(num_labels,)`, NaN where
        undefined). Every value is NaN when no pixel is labelled.
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
            Reference label of unlabelled pixels. `None` ignores nothing.

    Returns:
        `dict`: see [`metrics_from_confusion_matrix`].

    Example:

    ```python
    >>> import numpy as np
    >>> from processing.metrics_cast import mean_iou

    >>> references = np.array([[0, 0], [1, 255]])
    >>> predictions = np.array([[0, 1], [1, 1]])
    >>> metrics = mean_iou(predictions, references, num_labels=2)
    >>> round(metrics["mean_iou"], 4), round(metrics["overall_accuracy"], 4)
    (0.5, 0.6667)
    ```
    """
    return metrics_from_confusion_matrix(confusion_matrix(predictions, references, num_labels, ignore_index))


def _nan_mean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def _as_map_list(maps, argument: str) -> list[np.ndarray]:
    """A list of integer 2-D maps from a map, a batch of maps or an iterable of maps (numpy, torch or lists)."""
    if hasattr(maps, "detach"):  # a torch tensor, without importing torch
        maps = maps.detach().cpu().numpy()
    if isinstance(maps, np.ndarray):
        if maps.ndim == 2:
            return [_integer_map(maps, argument)]
        if maps.ndim == 3:
            return [_integer_map(item, argument) for item in maps]
        raise ValueError(
            f"`{argument}` must be a (height, width) map, a (batch_size, height, width) batch or a list of maps, "
            f"got shape {maps.shape}"
        )
    if isinstance(maps, (list, tuple)):
        if any(isinstance(item, np.ndarray) or hasattr(item, "detach") for item in maps):
            return [single for item in maps for single in _as_map_list(item, argument)]
        try:
            array = np.asarray(maps)  # nested lists of numbers
        except ValueError as error:
            raise ValueError(f"`{argument}` given as nested lists must be rectangular: {error}") from error
        if array.dtype == object:
            raise TypeError(f"`{argument}` must hold integer class labels, got a list of mixed types")
        return _as_map_list(array, argument)
    raise TypeError(f"`{argument}` must be numpy arrays, torch tensors or lists of maps, got {type(maps).__name__}")


def _integer_map(array: np.ndarray, argument: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"`{argument}` must hold integer class labels, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_range(values: np.ndarray, num_labels: int, argument: str, ignore_index: int | None = None) -> None:
    if values.size == 0:
        return
    minimum, maximum = int(values.min()), int(values.max())
    if minimum < 0 or maximum >= num_labels:
        allowed = f"[0, {num_labels})" + (f" or equal ignore_index={ignore_index}" if ignore_index is not None else "")
        raise ValueError(f"`{argument}` must lie in {allowed}, got values from {minimum} to {maximum}")
