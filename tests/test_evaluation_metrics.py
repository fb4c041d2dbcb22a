# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.evaluation.metrics` on hand-made maps with answers worked out by hand: class maps (mean IoU,
per-class IoU, pixel accuracy) and unsupervised segments (oracle labels, region mIoU, Hungarian matching,
boundaries, superpixel quality, hierarchy levels)."""

import math

import numpy as np
import pytest
import torch

from processing.evaluation.metrics import (
    BSDS_BOUNDARY_TOLERANCE,
    boundary_f_score,
    boundary_map,
    confusion_matrix,
    hierarchy_level_scores,
    hungarian_mean_iou,
    mean_iou,
    matched_pixel_agreement,
    metrics_from_confusion_matrix,
    oracle_segment_labels,
    region_mean_iou,
    superpixel_quality,
)


def _halves(height: int = 8, width: int = 8, column: int = 4) -> np.ndarray:
    """0 left of `column`, 1 from it on."""
    reference = np.zeros((height, width), dtype=np.int64)
    reference[:, column:] = 1
    return reference


# ---------------------------------------------------------------------------------------------------------------
# Class maps
# ---------------------------------------------------------------------------------------------------------------


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


def test_mean_iou_without_labeled_pixels_is_nan():
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


# ---------------------------------------------------------------------------------------------------------------
# Oracle labels and region mIoU
# ---------------------------------------------------------------------------------------------------------------


def test_oracle_segment_labels_majority_ties_and_ignored_voters():
    segments = np.array([[0, 0, 0, 1, 1, 2, 2]])
    reference = np.array([[3, 3, 1, 4, 1, 255, 255]])

    labeled = oracle_segment_labels(segments, reference)

    # segment 0: class 3 wins 2 to 1; segment 1: tie between 1 and 4 goes to 1; segment 2: only ignored pixels
    np.testing.assert_array_equal(labeled, [[3, 3, 3, 1, 1, 255, 255]])
    assert labeled.dtype == np.int64


def test_oracle_segment_labels_ignored_pixels_do_not_vote():
    segments = np.zeros((1, 5), dtype=np.int64)
    reference = np.array([[255, 255, 255, 2, 2]])

    np.testing.assert_array_equal(oracle_segment_labels(segments, reference), np.full((1, 5), 2))
    # without an ignore index, 255 is a class like any other and wins
    np.testing.assert_array_equal(oracle_segment_labels(segments, reference, ignore_index=None), np.full((1, 5), 255))


def test_region_mean_iou_segments_equal_to_regions_score_one_whatever_the_ids():
    reference = np.array([[0, 0, 1], [2, 2, 1]])
    segments = np.array([[40, 40, 7], [9, 9, 7]])

    result = region_mean_iou(segments, reference)

    assert result["mean_iou"] == 1.0
    np.testing.assert_array_equal(result["per_image_iou"], [1.0])


def test_region_mean_iou_hand_computed():
    reference = np.array([[0, 0, 1, 1]])
    segments = np.array([[7, 3, 3, 3]])  # segment 3: one background and two object pixels -> labeled object

    # background: intersection 1, union 2; object: intersection 2, union 3
    assert region_mean_iou(segments, reference)["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_region_mean_iou_one_segment_takes_the_majority_class():
    reference = np.array([[0, 0, 0, 1]])

    # everything is labeled background: IoU 3/4 for it, 0 for the missed object
    assert region_mean_iou(np.zeros((1, 4), dtype=np.int64), reference)["mean_iou"] == pytest.approx(0.375)


def test_region_mean_iou_averages_images_not_pixels():
    references = [np.array([[0, 0, 1, 1]]), np.zeros((3, 3), dtype=np.int64)]
    segments = [np.array([[7, 3, 3, 3]]), np.zeros((3, 3), dtype=np.int64)]

    result = region_mean_iou(segments, references)

    np.testing.assert_allclose(result["per_image_iou"], [7 / 12, 1.0])
    assert result["mean_iou"] == pytest.approx((7 / 12 + 1.0) / 2)


def test_region_mean_iou_ignored_pixels_and_unlabeled_images():
    references = [np.array([[0, 255, 1, 1]]), np.full((2, 2), 255)]
    segments = [np.array([[0, 0, 1, 1]]), np.zeros((2, 2), dtype=np.int64)]

    result = region_mean_iou(segments, references)

    # image 0 is perfect once its ignored pixel is left out; image 1 has no labeled pixel (NaN, not averaged)
    assert result["per_image_iou"][0] == 1.0
    assert math.isnan(result["per_image_iou"][1])
    assert result["mean_iou"] == 1.0


def test_region_mean_iou_accepts_batches_tensors_and_lists():
    rng = np.random.default_rng(0)
    references, segments = rng.integers(0, 3, (3, 6, 5)), rng.integers(0, 8, (3, 6, 5))

    expected = region_mean_iou(list(segments), list(references))["mean_iou"]

    assert region_mean_iou(torch.from_numpy(segments), torch.from_numpy(references))["mean_iou"] == expected
    assert region_mean_iou(segments.tolist(), references.tolist())["mean_iou"] == expected


# ---------------------------------------------------------------------------------------------------------------
# Hungarian matching
# ---------------------------------------------------------------------------------------------------------------


def test_hungarian_mean_iou_split_versus_per_image():
    references = [np.array([[0, 0, 1, 1]]), np.array([[0, 0, 1, 1]])]
    predictions = [np.array([[0, 0, 1, 1]]), np.array([[1, 1, 0, 0]])]  # ids swap meaning in the second image

    split = hungarian_mean_iou(predictions, references)
    per_image = hungarian_mean_iou(predictions, references, per_image=True)

    # over the split every cluster holds 2 pixels of each class: IoU 2 / (4 + 4 - 2) for both classes
    assert split["mean_iou"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(split["per_category_iou"], [1 / 3, 1 / 3])
    # alone, each image is segmented perfectly
    assert per_image["mean_iou"] == 1.0
    np.testing.assert_array_equal(per_image["per_image_iou"], [1.0, 1.0])


def test_hungarian_mean_iou_more_clusters_than_classes():
    result = hungarian_mean_iou(np.array([[0, 1, 2, 2]]), np.array([[0, 0, 1, 1]]))

    # class 0 gets cluster 0 or 1 (one pixel: IoU 1 / 2), class 1 gets cluster 2 (IoU 1); the other cluster is an error
    np.testing.assert_allclose(result["per_category_iou"], [0.5, 1.0])
    assert result["mean_iou"] == pytest.approx(0.75)
    assert result["assignment"][2] == 1 and len(result["assignment"]) == 2


def test_hungarian_mean_iou_more_classes_than_clusters_and_absent_classes():
    references = np.array([[0, 0, 2, 2]])  # class 1 never occurs
    result = hungarian_mean_iou(np.zeros((1, 4), dtype=np.int64), references)

    # one class gets the only cluster (IoU 2 / 4), the other none (IoU 0); class 1 is left out (NaN)
    assert sorted(result["per_category_iou"][[0, 2]]) == [0.0, 0.5]
    assert math.isnan(result["per_category_iou"][1])
    assert result["mean_iou"] == pytest.approx(0.25)


def test_hungarian_mean_iou_maximizes_matched_pixels():
    references = np.array([[0, 0, 0, 1, 1, 1]])
    predictions = np.array([[5, 5, 6, 6, 6, 6]])

    result = hungarian_mean_iou(predictions, references)

    # 5 -> 0 and 6 -> 1 match 5 pixels (the swap only 1): IoUs 2/3 and 3/4
    assert result["assignment"] == {5: 0, 6: 1}
    assert result["mean_iou"] == pytest.approx((2 / 3 + 3 / 4) / 2)


# ---------------------------------------------------------------------------------------------------------------
# Boundaries
# ---------------------------------------------------------------------------------------------------------------


def test_boundary_map_marks_pixels_whose_right_lower_or_diagonal_neighbor_differs():
    labels = np.array([[0, 0, 1], [0, 0, 1], [2, 2, 2]])

    expected = np.array([[False, True, False], [True, True, True], [False, False, False]])
    np.testing.assert_array_equal(boundary_map(labels), expected)
    assert not boundary_map(np.zeros((4, 4), dtype=np.int64)).any()


def test_boundary_f_score_hand_computed_precision():
    reference = _halves()  # 8 boundary pixels (column 3)
    prediction = _halves()
    prediction[4:, 4:] = 2  # adds 4 boundary pixels (row 3, columns 4-7) that the reference does not have

    result = boundary_f_score(prediction, reference, tolerance=0.0)

    assert result["precision"] == pytest.approx(8 / 12)
    assert result["recall"] == 1.0
    assert result["f_score"] == pytest.approx(0.8)  # 2 * (2/3) * 1 / (2/3 + 1)


def test_boundary_f_score_bsds_tolerance_is_relative_to_the_diagonal():
    reference = _halves(100, 100, 50)  # diagonal 141.4 px: the BSDS tolerance is 1.06 px

    one_pixel_off = boundary_f_score(_halves(100, 100, 51), reference)
    two_pixels_off = boundary_f_score(_halves(100, 100, 52), reference)

    assert BSDS_BOUNDARY_TOLERANCE == 0.0075
    assert one_pixel_off["f_score"] == 1.0
    assert two_pixels_off["f_score"] == 0.0
    # on a small image the same shift is more than 0.0075 of the diagonal
    assert boundary_f_score(_halves(8, 8, 5), _halves(8, 8, 4))["f_score"] == 0.0


def test_boundary_f_score_empty_boundaries_and_aggregation():
    reference = _halves()
    uniform = np.zeros((8, 8), dtype=np.int64)

    missed = boundary_f_score(uniform, reference)
    nothing_to_find = boundary_f_score(uniform, uniform)
    both = boundary_f_score([reference, uniform], [reference, reference])

    assert (missed["precision"], missed["recall"], missed["f_score"]) == (1.0, 0.0, 0.0)
    assert nothing_to_find["f_score"] == 1.0
    # summed counts: 8 of 8 predicted pixels right, 8 of 16 reference pixels found
    assert both["precision"] == 1.0 and both["recall"] == 0.5
    assert both["f_score"] == pytest.approx(2 / 3)
    assert both["mean_f_score"] == pytest.approx(0.5)  # per image: 1 and 0


# ---------------------------------------------------------------------------------------------------------------
# Superpixel quality
# ---------------------------------------------------------------------------------------------------------------


def test_superpixel_quality_hand_computed():
    reference = _halves(4, 4, 2)
    superpixels = np.array([[0, 1, 1, 2]] * 4)  # superpixel 1 straddles the two regions

    strict = superpixel_quality(superpixels, reference, tolerance=0.0)
    tolerant = superpixel_quality(superpixels, reference, tolerance=0.2)  # 0.2 * 5.66 = 1.13 px

    # superpixel 1 leaks 4 pixels into each region: (4 + 4) / 16; best labeling gets 4 + 4 + 4 of 16 right
    assert strict["undersegmentation_error"] == pytest.approx(0.5)
    assert strict["achievable_segmentation_accuracy"] == pytest.approx(0.75)
    assert strict["mean_num_superpixels"] == 3.0
    # the reference boundary (column 1) is one pixel from the superpixel boundaries (columns 0 and 2)
    assert strict["boundary_recall"] == 0.0
    assert tolerant["boundary_recall"] == 1.0


def test_superpixel_quality_perfect_and_ignored_pixels():
    reference = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])

    perfect = superpixel_quality(reference * 5 + 3, reference)
    ignoring = superpixel_quality(np.zeros((2, 4), dtype=np.int64), np.array([[0, 0, 255, 255]] * 2))

    assert perfect == {
        "boundary_recall": 1.0, "undersegmentation_error": 0.0, "achievable_segmentation_accuracy": 1.0,
        "mean_num_superpixels": 2.0,
    }
    # the ignored half does not count: the one superpixel covers exactly the labeled region
    assert ignoring["undersegmentation_error"] == 0.0
    assert ignoring["achievable_segmentation_accuracy"] == 1.0


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: region_mean_iou(np.zeros((2, 2), int), np.zeros((2, 3), int)), ValueError, r"`segmentations\[0\]` has shape"),
        (lambda: region_mean_iou(np.zeros((2, 2)), np.zeros((2, 2), int)), TypeError, "integer class labels"),
        (lambda: region_mean_iou(np.full((2, 2), -1), np.zeros((2, 2), int)), ValueError, "`segments` must hold non-negative"),
        (lambda: hungarian_mean_iou([np.zeros((2, 2), int)] * 2, [np.zeros((2, 2), int)]), ValueError, "same number of maps"),
        (lambda: hungarian_mean_iou(np.zeros((2, 2), int), np.zeros((2, 2), int), per_image=1), TypeError, "`per_image` must be a bool"),
        (lambda: boundary_f_score(np.zeros((2, 2), int), np.zeros((2, 2), int), tolerance=1.5), ValueError, r"`tolerance` must be .* \[0, 1\)"),
        (lambda: superpixel_quality(np.zeros((2, 2), int), np.full((2, 2), -3)), ValueError, "`references` must hold non-negative"),
    ],
    ids=["shape", "float", "negative-segment", "count", "per-image-type", "tolerance", "negative-reference"],
)
def test_segment_metrics_reject_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------------------------------------------------
# Hierarchy levels
# ---------------------------------------------------------------------------------------------------------------


def test_hierarchy_level_scores_hand_computed_levels():
    reference = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    fine = np.array([[4, 4, 9, 9], [4, 4, 9, 9], [5, 5, 9, 9], [5, 5, 9, 9]])  # follows the reference: perfect
    coarse = np.zeros((4, 4), dtype=np.int64)  # one segment: labeled class 0 (tie goes to the smallest class)
    hierarchy = torch.from_numpy(np.stack([fine, coarse]))

    scores = hierarchy_level_scores([hierarchy, hierarchy], {"object": [reference, reference]})

    assert [level["mean_segments"] for level in scores] == [3.0, 1.0]
    assert scores[0]["object_miou"] == 1.0 and scores[0]["object_boundary_f"] == 1.0
    assert scores[1]["object_miou"] == pytest.approx(0.25)  # class 0: IoU 8/16, class 1: IoU 0
    assert scores[1]["object_boundary_f"] == 0.0  # no predicted boundary: precision 1, recall 0


def test_region_metrics_memory_follows_the_labels_present_not_the_largest_id():
    """Issue 17 item 4: one label 60000 made `region_mean_iou` (and so `hierarchy_level_scores`) ask for a dense
    60001 x 60001 table (26.8 GiB). The scores are those of the same maps with small ids."""
    import tracemalloc

    reference = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 1, 1]])
    segments = np.array([[4, 4, 9, 9], [4, 5, 9, 9], [5, 5, 9, 9], [5, 5, 9, 3]])  # 5 straddles classes 0 and 2
    large_reference = np.where(reference == 2, 60000, reference)
    large_segments = np.where(segments == 9, 59999, segments)
    tracemalloc.start()
    try:
        large_iou = region_mean_iou(large_segments, large_reference)["mean_iou"]
        large_levels = hierarchy_level_scores([large_segments[None]], {"object": [large_reference]})
        large_quality = superpixel_quality(large_segments, large_reference)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert large_iou == region_mean_iou(segments, reference)["mean_iou"] == pytest.approx((0.75 + 1 + 0.8) / 3)
    assert large_levels[0]["object_miou"] == pytest.approx(large_iou)
    assert large_quality == superpixel_quality(segments, reference)
    labels = oracle_segment_labels(large_segments, large_reference)
    np.testing.assert_array_equal(np.where(labels == 60000, 2, labels), oracle_segment_labels(segments, reference))


def test_matched_pixel_agreement_matches_ids_one_to_one():
    reference = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])
    renamed = (reference + 5) % 3 * 10  # the same partition under other ids
    assert matched_pixel_agreement(reference, renamed) == 1.0
    # one pixel moved from segment 0 to segment 1: 11 of 12 pixels agree; merging two segments of 4 and 4 pixels
    # into one leaves one of them unmatched: 8 of 12
    moved = reference.copy()
    moved[0, 1] = 1
    assert matched_pixel_agreement(reference, moved) == 11 / 12
    merged = np.where(reference == 1, 0, reference)
    assert matched_pixel_agreement(reference, merged) == 8 / 12
    with pytest.raises(ValueError, match=r"`reference\[0\]` has shape \(3, 4\) but `other\[0\]` has \(2, 4\)"):
        matched_pixel_agreement(reference, reference[:2])
