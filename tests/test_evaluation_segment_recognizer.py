# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The segment recognizer (`processing.evaluation.segment_recognizer`): crops, training on ground-truth segments of
a hand-made two-class set, and the two-step labeling (object class, then one of that class's parts)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from processing.evaluation.segment_recognizer import label_segments, masked_segment_crops, train_segment_recognizer

SIZE = 32
PARTS = {0: (1, 2), 1: (3, 4)}  # class 0: a square (top half part 1, bottom half 2); class 1: a disc (left 3, right 4)


@dataclass
class _Sample:
    image: np.ndarray
    label: int
    object_mask: np.ndarray
    part_mask: np.ndarray


def _sample(index: int) -> _Sample:
    rng = np.random.default_rng(index)
    label = index % 2
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    center = rng.integers(10, SIZE - 10, 2)
    radius = int(rng.integers(6, 9))
    if label == 0:
        inside = (np.abs(rows - center[0]) <= radius) & (np.abs(cols - center[1]) <= radius)
        first = inside & (rows < center[0])
    else:
        inside = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2
        first = inside & (cols < center[1])
    part_mask = np.where(first, PARTS[label][0], np.where(inside, PARTS[label][1], 0)).astype(np.uint8)
    image = rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8) // 4  # dark noise background
    image[inside] = 220  # the same color for both classes: only the shape tells them apart
    image[first] = 160
    return _Sample(image, label, np.where(inside, label + 1, 0).astype(np.uint8), part_mask)


def test_masked_segment_crops_zero_outside_the_mask():
    image = np.full((SIZE, SIZE, 3), 255, np.uint8)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[4:12, 4:20] = True
    mask[4:6, 4:6] = False

    crops = masked_segment_crops(image, [mask], crop_size=8)

    assert crops.shape == (1, 4, 8, 8)
    torch.testing.assert_close(crops[0, :3], crops[0, 3:].expand(3, -1, -1))  # white image: RGB equals the mask
    assert float(crops[0, 3].min()) < 0.5 < float(crops[0, 3].max())
    with pytest.raises(ValueError, match="every mask must be a non-empty"):
        masked_segment_crops(image, [np.zeros((SIZE, SIZE), bool)])


def test_recognizer_labels_ground_truth_segments_and_restricts_parts_to_the_class():
    recognizer, info = train_segment_recognizer(
        [_sample(index) for index in range(48)], num_object_labels=3, num_part_labels=5, epochs=12, seed=0
    )
    held_out = [_sample(1000 + index) for index in range(12)]

    object_right = 0
    for sample in held_out:
        object_map, part_map = label_segments(recognizer, sample.image, sample.object_mask, PARTS)
        object_right += int(np.array_equal(object_map, sample.object_mask))
        _, part_map = label_segments(recognizer, sample.image, sample.part_mask, PARTS)
        labeled = set(np.unique(part_map)) - {0}
        assert labeled <= {1, 2, 3, 4}

    assert info["num_segments"] == 48 * 4  # background, the object, two parts
    assert object_right >= 10  # a whole square or disc and the background are recognized
    # with every class allowed only part 2, every segment labeled as an object gets part 2
    only_two = {0: (2,), 1: (2,)}
    object_map, part_map = label_segments(recognizer, held_out[0].image, held_out[0].object_mask, only_two)
    assert set(np.unique(part_map[object_map > 0])) <= {2}
    assert set(np.unique(part_map[object_map == 0])) <= {0}
