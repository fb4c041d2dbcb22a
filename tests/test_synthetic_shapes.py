# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.synthetic.shapes`: the shape generators behind the training examples' offline runs."""

import numpy as np
import pytest

from processing.synthetic.shapes import (
    SEGMENTATION_ID2LABEL,
    SHAPE_NAMES,
    make_segmentation_shapes,
    make_shapes_dataset,
)


def test_shapes_dataset_is_balanced_seeded_and_named_after_the_shapes():
    dataset = make_shapes_dataset(8, image_size=24, num_classes=4, seed=3)
    again = make_shapes_dataset(8, image_size=24, num_classes=4, seed=3)
    other = make_shapes_dataset(8, image_size=24, num_classes=4, seed=4)

    assert dataset.features["label"].names == list(SHAPE_NAMES)
    assert dataset["label"] == [0, 1, 2, 3, 0, 1, 2, 3]
    images = [np.asarray(image) for image in dataset["image"]]
    assert all(image.shape == (24, 24, 3) and image.dtype == np.uint8 for image in images)
    assert all(np.array_equal(image, np.asarray(same)) for image, same in zip(images, again["image"]))
    assert not np.array_equal(images[0], np.asarray(other["image"][0]))
    # one shape on a plain background: two colors
    assert all(len(np.unique(image.reshape(-1, 3), axis=0)) == 2 for image in images)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_shapes_dataset_uses_the_first_shape_names(num_classes):
    dataset = make_shapes_dataset(4, image_size=16, num_classes=num_classes)

    assert dataset.features["label"].names == list(SHAPE_NAMES[:num_classes])


def test_segmentation_shapes_have_masks_of_known_classes_at_the_image_size():
    data = make_segmentation_shapes(6, image_size=40, seed=0)
    again = make_segmentation_shapes(6, image_size=40, seed=0)

    assert len(data["image"]) == len(data["annotation"]) == 6
    for image, mask, same_mask in zip(data["image"], data["annotation"], again["annotation"]):
        assert image.mode == "RGB" and mask.mode == "L" and image.size == mask.size
        assert all(30 <= side <= 50 for side in image.size)  # sides between 0.75 and 1.25 times image_size
        labels = np.asarray(mask)
        assert set(np.unique(labels)) <= set(SEGMENTATION_ID2LABEL)
        assert (labels > 0).any()  # at least one shape
        np.testing.assert_array_equal(labels, np.asarray(same_mask))
