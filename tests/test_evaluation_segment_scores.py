# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Best-segment IoU, connected components per segment, per-image mIoU and the bootstrap intervals
(`processing.evaluation.segment_scores`) on hand-made cases."""

import numpy as np
import pytest

from processing.evaluation.segment_scores import (
    best_segment_iou,
    bootstrap_interval,
    connected_components_per_segment,
    per_image_mean_iou,
)


def test_best_segment_iou_is_the_best_single_segment():
    segments = np.array([[0, 0, 1, 1], [2, 2, 1, 1]])
    region = np.array([[0, 1, 1, 1], [0, 0, 1, 1]])  # 5 pixels: segment 1 holds 4 of them and nothing else

    assert best_segment_iou(segments, region) == pytest.approx(4 / 5)
    # one segment covering everything: IoU = region share of the image
    assert best_segment_iou(np.zeros((2, 4), int), region) == pytest.approx(5 / 8)
    assert np.isnan(best_segment_iou(segments, np.zeros((2, 4), int)))


def test_connected_components_count_scattered_segments():
    assert connected_components_per_segment(np.array([[0, 0], [1, 1]])) == 1.0
    # id 0 in two pieces, id 1 one piece
    assert connected_components_per_segment(np.array([[0, 1, 0], [1, 1, 1]])) == pytest.approx(3 / 2)
    # 4-connectivity: a diagonal does not join pixels, so both ids are in two pieces
    assert connected_components_per_segment(np.array([[0, 1], [1, 0]])) == pytest.approx(4 / 2)
    assert connected_components_per_segment(np.array([[5, 7, 5, 7]])) == pytest.approx(4 / 2)


def test_per_image_mean_iou_scores_each_image_alone():
    references = [np.array([[0, 0, 1, 1]]), np.array([[0, 0, 0, 0]])]
    predictions = [np.array([[0, 1, 1, 1]]), np.array([[0, 0, 0, 0]])]

    scores = per_image_mean_iou(predictions, references)

    np.testing.assert_allclose(scores, [(1 / 2 + 2 / 3) / 2, 1.0])


def test_bootstrap_interval_of_a_constant_paired_difference_collapses():
    scores = np.random.default_rng(0).random((3, 40))

    paired = bootstrap_interval(scores, scores - 0.1)
    unpaired_scale = bootstrap_interval(scores)

    assert paired["estimate"] == pytest.approx(0.1)
    assert paired["high"] - paired["low"] < 1e-9  # pairing removes the image-to-image spread entirely
    assert unpaired_scale["high"] - unpaired_scale["low"] > 0.05
    assert unpaired_scale["low"] < unpaired_scale["estimate"] < unpaired_scale["high"]
    assert paired["num_images"] == 40 and len(paired["seed_means"]) == 3


def test_bootstrap_interval_covers_a_known_mean_and_drops_undefined_images():
    rng = np.random.default_rng(1)
    scores = rng.normal(0.5, 0.1, 400)
    scores[:5] = np.nan

    interval = bootstrap_interval(scores, resamples=500)

    assert interval["num_images"] == 395
    assert interval["low"] < 0.5 < interval["high"] and interval["high"] - interval["low"] < 0.05


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bootstrap_interval(np.ones(4), np.ones(5)), "`baseline` must have the shape of `scores`"),
        (lambda: bootstrap_interval(np.ones((2, 2, 2))), r"`scores` must be \(num_images,\)"),
        (lambda: bootstrap_interval(np.ones(4), confidence=1.5), r"`confidence` must be in \(0, 1\), got 1.5"),
        (lambda: bootstrap_interval([np.nan, 1.0]), "at least 2 images"),
        (lambda: best_segment_iou(np.zeros((2, 2), int), np.zeros((3, 2), int)), "`segments` has shape"),
        (lambda: connected_components_per_segment(np.array([[-1, 0]])), "non-negative ids"),
    ],
    ids=["shape", "ndim", "confidence", "too-few", "best-shape", "negative"],
)
def test_segment_scores_reject_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
