# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Segmenters without learning, the controls a learned segmentation must beat: pixel color k-means, the
adjacency-constrained Ward merge of superpixels by color, and a regular grid. Each returns a hierarchy in CAST's
layout: `(num_levels, height, width)` segment ids, one level per requested count, finest first.

```python
>>> import numpy as np
>>> from processing.evaluation.color_baselines import grid_hierarchy
>>> grid_hierarchy((4, 4), [4, 2])[1].tolist()
[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]
```
"""

from __future__ import annotations

import numbers

import numpy as np


__all__ = ["color_kmeans_hierarchy", "color_merge_hierarchy", "grid_hierarchy", "lab_pixels"]

_KMEANS_ITERATIONS = 20


def lab_pixels(image: np.ndarray) -> np.ndarray:
    """CIE Lab colors of a `(height, width, 3)` uint8 RGB image, `(height, width, 3)` float64 (perceptual
    distances, as color grouping baselines use)."""
    from skimage.color import rgb2lab

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"`image` must be a (height, width, 3) RGB array, got shape {image.shape}")
    return rgb2lab(image)


def grid_hierarchy(shape: tuple[int, int], counts: list[int]) -> np.ndarray:
    """A regular grid per count: `rows x cols` cells with `rows * cols == count` and the squarest such split."""
    height, width = shape
    levels = []
    for count in _check_counts(counts):
        rows = max(divisor for divisor in range(1, int(count**0.5) + 1) if count % divisor == 0)
        cols = count // rows
        row_index = np.minimum(np.arange(height) * rows // height, rows - 1)
        col_index = np.minimum(np.arange(width) * cols // width, cols - 1)
        levels.append(row_index[:, None] * cols + col_index[None, :])
    return np.stack(levels).astype(np.int64)


def color_kmeans_hierarchy(image: np.ndarray, counts: list[int], seed: int = 0) -> np.ndarray:
    """k-means (k-means++ seeding, Lloyd iterations) of the pixels' Lab colors, run for each count on its own.
    Clusters need not be contiguous: one "segment" may be many scattered regions."""
    colors = lab_pixels(image).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    levels = [_kmeans(colors, count, rng) for count in _check_counts(counts)]
    return np.stack(levels).reshape(len(levels), *np.asarray(image).shape[:2]).astype(np.int64)


def color_merge_hierarchy(image: np.ndarray, superpixels: np.ndarray, counts: list[int]) -> np.ndarray:
    """
    Adjacency-constrained Ward clustering of superpixels by mean Lab color: starting from the superpixels, merge
    the two touching regions whose merge raises the within-region color variance least
    (`n_a n_b / (n_a + n_b) * |mean_a - mean_b|^2`), and keep the partition at each requested count. The levels
    nest; a count at or above the superpixel count keeps the superpixels.
    """
    superpixels = np.asarray(superpixels)
    colors = lab_pixels(image)
    if superpixels.shape != colors.shape[:2]:
        raise ValueError(f"`superpixels` must have the image's shape {colors.shape[:2]}, got {superpixels.shape}")
    _, region = np.unique(superpixels, return_inverse=True)
    region = region.reshape(superpixels.shape)
    num_regions = int(region.max()) + 1
    sizes = np.bincount(region.reshape(-1), minlength=num_regions).astype(np.float64)
    sums = np.stack([np.bincount(region.reshape(-1), colors[..., channel].reshape(-1), num_regions) for channel in range(3)], 1)
    neighbors = [set() for _ in range(num_regions)]
    for first, second in ((region[:, :-1], region[:, 1:]), (region[:-1], region[1:])):
        touching = first != second
        for a, b in zip(first[touching], second[touching]):
            neighbors[a].add(int(b))
            neighbors[b].add(int(a))
    parent = np.arange(num_regions)  # each original region -> its current cluster (a surviving region index)
    alive = set(range(num_regions))
    wanted = sorted(set(_check_counts(counts)), reverse=True)
    partitions = {}
    while True:
        for count in wanted:
            if count >= len(alive) and count not in partitions:
                partitions[count] = parent.copy()
        if len(alive) <= min(wanted) or len(partitions) == len(wanted):
            break
        best, best_cost = None, np.inf
        for a in alive:
            for b in neighbors[a]:
                if a < b:
                    difference = sums[a] / sizes[a] - sums[b] / sizes[b]
                    cost = sizes[a] * sizes[b] / (sizes[a] + sizes[b]) * float(difference @ difference)
                    if cost < best_cost:
                        best, best_cost = (a, b), cost
        if best is None:  # disconnected regions cannot merge further
            for count in wanted:
                partitions.setdefault(count, parent.copy())
            break
        a, b = best
        sizes[a] += sizes[b]
        sums[a] += sums[b]
        parent[parent == b] = a
        neighbors[a] = (neighbors[a] | neighbors[b]) - {a, b}
        for other in neighbors[b] - {a}:
            neighbors[other].discard(b)
            neighbors[other].add(a)
        alive.discard(b)
    levels = [np.unique(partitions[count], return_inverse=True)[1][region] for count in _check_counts(counts)]
    return np.stack(levels).astype(np.int64)


def _kmeans(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    count = min(count, len(points))
    centers = [points[int(rng.integers(len(points)))]]
    distance = ((points - centers[0]) ** 2).sum(1)
    for _ in range(1, count):
        total = distance.sum()
        chosen = int(rng.choice(len(points), p=distance / total)) if total > 0 else int(rng.integers(len(points)))
        centers.append(points[chosen])
        distance = np.minimum(distance, ((points - points[chosen]) ** 2).sum(1))
    centers = np.stack(centers)
    assignments = np.zeros(len(points), dtype=np.int64)
    for iteration in range(_KMEANS_ITERATIONS):
        updated = (((points[:, None] - centers[None]) ** 2).sum(-1)).argmin(1)
        if iteration and np.array_equal(updated, assignments):
            break
        assignments = updated
        for cluster in range(count):
            members = points[assignments == cluster]
            if len(members):
                centers[cluster] = members.mean(0)
    return assignments


def _check_counts(counts) -> list[int]:
    counts = list(counts)
    if not counts or any(isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1 for c in counts):
        raise ValueError(f"`counts` must be a non-empty list of positive ints, got {counts!r}")
    return [int(count) for count in counts]
