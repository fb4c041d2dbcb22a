# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The learning-free control segmenters (`processing.evaluation.color_baselines`) on hand-made images."""

import numpy as np
import pytest

from processing.evaluation.color_baselines import color_kmeans_hierarchy, color_merge_hierarchy, grid_hierarchy


def _two_color_image():
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = (200, 30, 30)
    image[:, 4:] = (30, 30, 200)
    return image


def test_grid_hierarchy_has_the_requested_counts():
    levels = grid_hierarchy((12, 10), [6, 4, 1])

    assert levels.shape == (3, 12, 10)
    assert [len(np.unique(level)) for level in levels] == [6, 4, 1]


def test_color_kmeans_separates_two_colors():
    levels = color_kmeans_hierarchy(_two_color_image(), [2])

    assert len(np.unique(levels[0][:, :4])) == len(np.unique(levels[0][:, 4:])) == 1
    assert levels[0][0, 0] != levels[0][0, 7]


def test_color_merge_only_merges_touching_regions_and_nests():
    image = _two_color_image()
    image[:, 6:] = (200, 30, 30)  # red, blue, red stripes: the two reds never touch
    superpixels = np.repeat(np.arange(4)[None], 8, 0).repeat(2, 1)  # four vertical stripes of 2 columns

    levels = color_merge_hierarchy(image, superpixels, [4, 3, 2])

    assert [len(np.unique(level)) for level in levels] == [4, 3, 2]
    # at 3 regions the two left red stripes are merged; the right red stays apart from them (not adjacent)
    assert levels[1][0, 0] == levels[1][0, 2] and levels[1][0, 0] != levels[1][0, 6]
    for fine, coarse in zip(levels[:-1], levels[1:]):
        for segment in np.unique(fine):
            assert len(np.unique(coarse[fine == segment])) == 1


def test_color_baselines_reject_bad_counts():
    with pytest.raises(ValueError, match="`counts` must be a non-empty list of positive ints"):
        grid_hierarchy((4, 4), [0])
    with pytest.raises(ValueError, match=r"`image` must be a \(height, width, 3\) RGB array"):
        color_kmeans_hierarchy(np.zeros((4, 4)), [2])
