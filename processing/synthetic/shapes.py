# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Colored shapes: the seeded generators behind the offline runs of the training examples.

* [`make_shapes_dataset`]: image classification. One filled shape (`SHAPE_NAMES`: circle, square, triangle, cross)
  of random color, size and position on a plain background per image; the label is the shape.
* [`make_segmentation_shapes`]: semantic segmentation. One to three textured discs, squares and triangles on a
  textured background, with per-pixel classes (`SEGMENTATION_ID2LABEL`).

Both depend only on their arguments (a seeded `numpy.random.Generator`), so a run is repeatable. The part-whole
images of the science benchmark are in `processing.synthetic.part_whole`.

```python
>>> from processing.synthetic.shapes import make_shapes_dataset
>>> make_shapes_dataset(4, image_size=32, seed=0).features["label"].names
['circle', 'square', 'triangle']
```
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


__all__ = ["SEGMENTATION_ID2LABEL", "SHAPE_NAMES", "make_segmentation_shapes", "make_shapes_dataset"]

# ---------------------------------------------------------------------------------------------------------------
# Classification: one plain shape per image
# ---------------------------------------------------------------------------------------------------------------

SHAPE_NAMES = ("circle", "square", "triangle", "cross")
_MIN_SHAPE_FRACTION, _MAX_SHAPE_FRACTION = 0.35, 0.7  # shape size relative to the image side
_MIN_COLOR_DISTANCE = 120  # foreground and background differ by at least this (sum over RGB), so shapes are visible


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], color: tuple[int, ...]
) -> None:
    left, top, right, bottom = box
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=color)
    else:  # cross: two bars of a third of the side
        third_w, third_h = (right - left) / 3, (bottom - top) / 3
        draw.rectangle((left + third_w, top, right - third_w, bottom), fill=color)
        draw.rectangle((left, top + third_h, right, bottom - third_h), fill=color)


def _random_colors(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    while True:
        background, foreground = rng.integers(0, 256, size=(2, 3))
        if np.abs(background - foreground).sum() >= _MIN_COLOR_DISTANCE:
            return tuple(int(v) for v in background), tuple(int(v) for v in foreground)


def make_shapes_dataset(
    num_samples: int, image_size: int = 64, num_classes: int = 3, seed: int = 0
) -> datasets.Dataset:
    """Images of one filled shape (circle, square, ...) of random color, size and position on a random plain
    background; the label is the shape. Classes are balanced (example `i` has class `i % num_classes`).

    Returns:
        `datasets.Dataset` with columns `image` (RGB, `image_size` square) and `label` (`ClassLabel` named after the
        first `num_classes` of `SHAPE_NAMES`).
    """
    import datasets  # the `train` extra: only the dataset builders need it

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(num_samples):
        label = index % num_classes
        background, foreground = _random_colors(rng)
        image = Image.new("RGB", (image_size, image_size), background)
        side = rng.uniform(_MIN_SHAPE_FRACTION, _MAX_SHAPE_FRACTION) * image_size
        left, top = rng.uniform(0, image_size - side, size=2)
        _draw_shape(ImageDraw.Draw(image), SHAPE_NAMES[label], (left, top, left + side, top + side), foreground)
        images.append(image)
        labels.append(label)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(SHAPE_NAMES[:num_classes]))}
    )
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


# ---------------------------------------------------------------------------------------------------------------
# Semantic segmentation: textured colored shapes on a textured background
# ---------------------------------------------------------------------------------------------------------------

SEGMENTATION_ID2LABEL = {0: "background", 1: "disc", 2: "square", 3: "triangle"}
# Each class has its own color family and shape, so the classes are learnable from color alone or shape alone.
_SHAPE_COLORS = {1: (200, 50, 50), 2: (50, 180, 70), 3: (60, 80, 210)}
_COLOR_JITTER = 30
_NOISE_STD = 10.0
_TEXTURE_AMPLITUDE = 18.0
_SIZE_RANGE = (0.75, 1.25)  # image sides relative to `image_size`: the processor resizes them
_SHAPE_RADIUS_RANGE = (0.2, 0.38)  # relative to the shorter image side
_MAX_SHAPES = 3


def make_segmentation_shapes(num_samples: int, image_size: int, seed: int) -> dict[str, list[Image.Image]]:
    """
    Images with known per-pixel classes (see `SEGMENTATION_ID2LABEL`): one to three red discs, green squares and blue
    triangles, each with a striped texture and noise, on a gray textured background. Later shapes cover earlier
    ones. Image sides vary between 0.75 and 1.25 times `image_size`. Deterministic for a given `seed`.

    Returns:
        `dict` with `"image"` (RGB PIL images) and `"annotation"` (mode "L" PIL masks of class ids), `num_samples`
        each.
    """
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    low, high = (round(image_size * factor) for factor in _SIZE_RANGE)
    for _ in range(num_samples):
        height, width = (int(side) for side in rng.integers(low, high + 1, size=2))
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
        gray = rng.uniform(90, 170) + rng.uniform(-10, 10, size=3)
        image = gray + _stripes(rng, rows, cols)[..., None] + rng.normal(0, _NOISE_STD, (height, width, 3))
        mask = np.zeros((height, width), dtype=np.uint8)
        for _ in range(int(rng.integers(1, _MAX_SHAPES + 1))):
            label = int(rng.integers(1, len(SEGMENTATION_ID2LABEL)))
            inside = _shape_mask(rng, label, rows, cols)
            color = np.array(_SHAPE_COLORS[label]) + rng.uniform(-_COLOR_JITTER, _COLOR_JITTER, size=3)
            texture = color + _stripes(rng, rows, cols)[..., None] + rng.normal(0, _NOISE_STD, (height, width, 3))
            image[inside] = texture[inside]
            mask[inside] = label
        images.append(Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)))
        annotations.append(Image.fromarray(mask, mode="L"))
    return {"image": images, "annotation": annotations}


def _stripes(rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    angle, period, phase = rng.uniform(0, np.pi), rng.uniform(4, 12), rng.uniform(0, 2 * np.pi)
    position = rows * np.cos(angle) + cols * np.sin(angle)
    return _TEXTURE_AMPLITUDE * np.sin(2 * np.pi * position / period + phase)


def _shape_mask(rng: np.random.Generator, label: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    height, width = rows.shape
    radius = rng.uniform(*_SHAPE_RADIUS_RANGE) * min(height, width)
    center_row, center_col = rng.uniform(0, height), rng.uniform(0, width)
    dy, dx = rows - center_row, cols - center_col
    if label == 1:  # disc
        return dy**2 + dx**2 <= radius**2
    angle = rng.uniform(0, 2 * np.pi)
    # coordinates in the shape's own rotated frame
    along, across = dy * np.cos(angle) + dx * np.sin(angle), -dy * np.sin(angle) + dx * np.cos(angle)
    if label == 2:  # square
        return (np.abs(along) <= radius / math.sqrt(2)) & (np.abs(across) <= radius / math.sqrt(2))
    # equilateral triangle: inside the three half-planes whose normals point to its vertices
    inside = np.ones(rows.shape, dtype=bool)
    for vertex in range(3):
        normal = 2 * np.pi * vertex / 3
        inside &= along * np.cos(normal) + across * np.sin(normal) <= radius / 2
    return inside
