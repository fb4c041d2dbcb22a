# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.evaluation.metrics`: mean IoU, per-class IoU and pixel accuracy on hand-made maps."""

import math

import numpy as np
import pytest
import torch

from processing.evaluation.metrics import confusion_matrix, mean_iou, metrics_from_confusion_matrix


def test_mean_iou_perfect_prediction():
    references = np.array([[0, 1, 2], [2, 1, 0]])

    metrics = mean_iou(references.copy(), references, num_labels=3)

    assert metrics["mean_iou"] == metrics["mean_accuracy"] == metrics["overall_accuracy"] == 1.0
    np.testing.assert_array_equal(metrics["per_category_iou"], [1.0, 1.0, 1.0])


def test_mean_iou_hand_computed_with_ignored_pixel():
    references = np.array([[0, 0], [1, 255]])
    predictions = np.array([[0, 1], [1, 1]])  # the prediction under the ignored pixel does not count

    metrics = mean_iou(predictions, references, num_labels=2)

    # class 0: 1 hit, 1 missed -> IoU 1/2, recall 1/2; class 1: 1 hit, 1 false alarm -> IoU 1/2, recall 1
    np.testing.assert_allclose(metrics["per_category_iou"], [0.5, 0.5])
    np.testing.assert_allclose(metrics["per_category_accuracy"], [0.5, 1.0])
    assert metrics["mean_iou"] == pytest.approx(0.5)
    assert metrics["mean_accuracy"] == pytest.approx(0.75)
    assert metrics["overall_accuracy"] == pytest.approx(2 / 3)


def test_mean_iou_leaves_out_classes_absent_from_both():
    references = np.array([[0, 0, 1, 1]])
    predictions = np.array([[0, 1, 1, 1]])

    metrics = mean_iou(predictions, references, num_labels=4)

    # class 0: 1 / 2, class 1: 2 / 3; classes 2 and 3 appear nowhere
    np.testing.assert_allclose(metrics["per_category_iou"][:2], [1 / 2, 2 / 3])
    assert np.isnan(metrics["per_category_iou"][2:]).all()
    assert metrics["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_mean_iou_counts_classes_only_predicted_as_zero():
    references = np.zeros((2, 2), dtype=np.int64)
    predictions = np.array([[0, 0], [0, 2]])

    metrics = mean_iou(predictions, references, num_labels=3)

    np.testing.assert_allclose(metrics["per_category_iou"], [0.75, np.nan, 0.0])
    assert metrics["mean_iou"] == pytest.approx(0.375)  # the false-alarm class pulls the mean down
    assert np.isnan(metrics["per_category_accuracy"][2])  # no reference pixel: recall undefined
    assert metrics["mean_accuracy"] == pytest.approx(0.75)


def test_mean_iou_majority_class_baseline():
    # 3 of 4 pixels are class 0: predicting 0 everywhere gives IoU 3/4 for it and 0 for class 1
    references = np.array([[0, 0], [0, 1]])

    metrics = mean_iou(np.zeros_like(references), references, num_labels=2)

    assert metrics["mean_iou"] == pytest.approx(0.375)
    assert metrics["overall_accuracy"] == pytest.approx(0.75)


def test_mean_iou_batches_lists_and_tensors_agree():
    rng = np.random.default_rng(0)
    first_ref, second_ref = rng.integers(0, 3, (4, 5)), rng.integers(0, 3, (6, 3))
    first_pred, second_pred = rng.integers(0, 3, (4, 5)), rng.integers(0, 3, (6, 3))

    summed = confusion_matrix(first_pred, first_ref, 3) + confusion_matrix(second_pred, second_ref, 3)
    from_list = confusion_matrix([first_pred, second_pred], [first_ref, second_ref], 3)
    np.testing.assert_array_equal(from_list, summed)
    assert summed.sum() == 20 + 18

    batch_pred, batch_ref = rng.integers(0, 3, (2, 4, 4)), rng.integers(0, 3, (2, 4, 4))
    np.testing.assert_array_equal(
        confusion_matrix(torch.from_numpy(batch_pred), torch.from_numpy(batch_ref), 3),
        confusion_matrix(list(batch_pred), batch_ref.tolist(), 3),
    )
    assert mean_iou(batch_pred, batch_ref, 3)["mean_iou"] == pytest.approx(
        metrics_from_confusion_matrix(confusion_matrix(batch_pred, batch_ref, 3))["mean_iou"]
    )


def test_confusion_matrix_rows_are_references():
    matrix = confusion_matrix(np.array([[1, 1, 0]]), np.array([[0, 1, 1]]), num_labels=2)

    np.testing.assert_array_equal(matrix, [[0, 1], [1, 1]])


def test_mean_iou_without_labelled_pixels_is_nan():
    metrics = mean_iou(np.zeros((2, 2), dtype=np.int64), np.full((2, 2), 255), num_labels=2)

    assert all(math.isnan(metrics[key]) for key in ("mean_iou", "mean_accuracy", "overall_accuracy"))


def test_mean_iou_custom_and_no_ignore_index():
    references = np.array([[0, 1, 2]])
    predictions = np.array([[0, 1, 1]])

    with_ignore = mean_iou(predictions, references, num_labels=3, ignore_index=2)
    without = mean_iou(predictions, references, num_labels=3, ignore_index=None)

    assert with_ignore["mean_iou"] == 1.0
    assert without["overall_accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "predictions, references, num_labels, error, message",
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), 2, ValueError, r"`predictions\[0\]` has shape \(2, 2\)"),
        (np.full((2, 2), 5), np.zeros((2, 2), int), 2, ValueError, r"`predictions` must lie in \[0, 2\), got .* to 5"),
        (np.zeros((2, 2), int), np.full((2, 2), 7), 2, ValueError, r"`references` must lie in \[0, 2\) or equal"),
        (np.zeros((2, 2)), np.zeros((2, 2), int), 2, TypeError, "`predictions` must hold integer class labels"),
        (np.zeros((3, 2, 2), int), np.zeros((2, 2, 2), int), 2, ValueError, "same number of maps, got 3 and 2"),
        (np.zeros((1, 1, 2, 2), int), np.zeros((2, 2), int), 2, ValueError, r"`predictions` must be a \(height"),
        (np.zeros((2, 2), int), np.zeros((2, 2), int), 0, ValueError, "`num_labels` must be a positive integer"),
        ("mask", np.zeros((2, 2), int), 2, TypeError, "`predictions` must be numpy arrays"),
    ],
    ids=["shape", "prediction-range", "reference-range", "float", "count", "four-dims", "num-labels", "string"],
)
def test_mean_iou_rejects_bad_inputs(predictions, references, num_labels, error, message):
    with pytest.raises(error, match=message):
        mean_iou(predictions, references, num_labels=num_labels)
