# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Pictures of CAST hierarchies: the input image and every level of its segmentation, side by side.

Colours follow the hierarchy, as in the CAST paper's figures: every segment of the coarsest level gets its own hue,
and every finer segment keeps the hue of the coarse segment it lies in, its siblings and cousins differing in
saturation and value. The first child of a segment (in raster order) keeps its parent's colour exactly, so a finer
level always shows at least the colours of the coarser one. Colours depend only on the partition the hierarchy
describes (not on its id values, the image or any random state), so the same hierarchy always gives the same picture.

Images are read by `image_inputs_cast.rgb_uint8_image`, hierarchies by its integer-map helpers.
"""

from __future__ import annotations

import numbers
import os

import numpy as np
from PIL import Image


from .image_inputs_cast import MAX_UINT8, check_non_negative, integer_array, rgb_uint8_image


try:
    from skimage.color import hsv2rgb as _hsv2rgb
    from skimage.segmentation import find_boundaries as _find_boundaries
except ImportError:  # reported with an install hint when a picture is actually drawn
    _hsv2rgb = None
    _find_boundaries = None


__all__ = ["draw_hierarchy", "hierarchy_colors", "save_hierarchy_picture"]

# Hues of the coarsest segments step by the golden ratio's conjugate: consecutive segments get far-apart hues and no
# two segments ever get the same one.
_GOLDEN_RATIO_CONJUGATE = (5**0.5 - 1) / 2
_FIRST_HUE = 0.05
# Shade n of a hue is the n-th point of the 2-D golden (R2) sequence in (saturation, value): an even spread for any
# number of shades.
_PLASTIC_NUMBER = 1.324717957244746
_SATURATION_STEP = 1 / _PLASTIC_NUMBER
_VALUE_STEP = 1 / _PLASTIC_NUMBER**2
# Saturation and value stay in these ranges so that no segment is grey, black or white (the boundary colour).
_SATURATION_RANGE = (0.35, 1.0)
_VALUE_RANGE = (0.55, 1.0)
# Where the coarsest segments sit inside those ranges (fractions of each range): vivid and bright.
_COARSEST_SATURATION_FRACTION = 0.7
_COARSEST_VALUE_FRACTION = 0.85

_RGB_CHANNELS = 3
_HSV_CHANNELS = 3

DEFAULT_BOUNDARY_COLOR = (255, 255, 255)
DEFAULT_GAP = 4
DEFAULT_GAP_COLOR = (255, 255, 255)


def hierarchy_colors(hierarchy) -> np.ndarray:
    r"""
    Colour every pixel of every level of a hierarchical segmentation, consistently from coarse to fine.

    Each segment of the coarsest level gets its own hue (golden-ratio steps, in the order in which the segments first
    appear in raster order). Each finer segment keeps the hue of the segment it lies in one level up; the first of a
    segment's children keeps its colour exactly and the others take new shades (saturation and value) that no other
    segment of the same hue uses at that level. Hence a finer level has at least as many distinct colours as the
    coarser one, and the colours depend only on the partition the hierarchy describes, not on its id values.

    Args:
        hierarchy (`np.ndarray` or `torch.Tensor` of shape `(num_levels, height, width)`):
            Non-negative integer segment ids, finest level first (e.g. `CastModelOutput.hierarchy[i]`). Every segment
            of a level must lie inside exactly one segment of the next level. A 2-D `(height, width)` map is one
            level.

    Returns:
        `np.ndarray` of dtype `uint8` and shape `(num_levels, height, width, 3)`: the RGB colour of every pixel at
        every level, in the order of `hierarchy`.
    """
    _require_skimage()
    labels = _hierarchy_to_numpy(hierarchy)
    num_levels, height, width = labels.shape
    flat_labels = labels.reshape(num_levels, height * width)
    segment_maps, first_pixels = zip(*(_segments_in_raster_order(level) for level in flat_labels), strict=True)

    # Every segment gets a hue family (its coarsest ancestor) and a shade index, unique inside its family and level.
    num_coarsest = len(first_pixels[-1])
    families, shades = [np.arange(num_coarsest)], [np.zeros(num_coarsest, dtype=np.int64)]
    for level in range(num_levels - 2, -1, -1):
        parents = segment_maps[level + 1][first_pixels[level]]
        if not np.array_equal(parents[segment_maps[level]], segment_maps[level + 1]):
            raise ValueError(
                f"`hierarchy` must be nested: every segment of level {level} must lie inside exactly one segment of "
                f"level {level + 1}, but a segment of level {level} spans several"
            )
        family, shade = _child_shades(families[0], shades[0], parents, num_coarsest)
        families.insert(0, family)
        shades.insert(0, shade)

    hues = (_FIRST_HUE + np.arange(num_coarsest) * _GOLDEN_RATIO_CONJUGATE) % 1.0
    colors = np.empty((num_levels, height * width, _RGB_CHANNELS), dtype=np.uint8)
    for level in range(num_levels):
        colors[level] = _segment_rgb(hues[families[level]], shades[level])[segment_maps[level]]
    return colors.reshape(num_levels, height, width, _RGB_CHANNELS)


def draw_hierarchy(
    image,
    hierarchy,
    *,
    boundary_color: tuple[int, int, int] = DEFAULT_BOUNDARY_COLOR,
    show_boundaries: bool = True,
    alpha: float = 1.0,
    gap: int = DEFAULT_GAP,
    gap_color: tuple[int, int, int] = DEFAULT_GAP_COLOR,
) -> Image.Image:
    r"""
    Draw an image and every level of its hierarchical segmentation side by side.

    The picture holds `num_levels + 1` panels of the image's size, left to right: the input image, then the levels in
    the order of `hierarchy` (finest first), separated by `gap` pixels. Level panels are flat colours from
    [`hierarchy_colors`] by default (`alpha=1`); a smaller `alpha` blends the colours over the image. Segment
    boundaries are drawn on top in `boundary_color`.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The segmented image, `(height, width)` or `(height, width, channels)`, decoded as the image processor
            decodes it: grayscale is repeated to RGB, alpha channels are dropped, 16-bit images (uint16 arrays, PIL
            modes `"I;16"` and `"I"`) are scaled to 8 bits; float images must lie in `[0, 1]`.
        hierarchy (`np.ndarray` or `torch.Tensor` of shape `(num_levels, height, width)`):
            Non-negative integer segment ids at the image's size, finest level first, nested from fine to coarse
            (e.g. a label map stack from `CastImageProcessor.post_process_hierarchical_segmentation`).
        boundary_color (`tuple[int, int, int]`, *optional*, defaults to `(255, 255, 255)`):
            RGB colour of the segment boundaries.
        show_boundaries (`bool`, *optional*, defaults to `True`):
            Whether to draw segment boundaries (the pixels along both sides of every boundary).
        alpha (`float`, *optional*, defaults to 1.0):
            Opacity of the segment colours over the image, in `[0, 1]`: 1 draws flat colours, 0 the image alone.
        gap (`int`, *optional*, defaults to 4):
            Width in pixels of the strip between panels.
        gap_color (`tuple[int, int, int]`, *optional*, defaults to `(255, 255, 255)`):
            RGB colour of the strips between panels.

    Returns:
        `PIL.Image.Image`: an RGB picture of height `height` and width `(num_levels + 1) * width + num_levels * gap`.

    Example:

    ```python
    >>> import numpy as np
    >>> from processing import draw_hierarchy

    >>> image = np.zeros((4, 6, 3), dtype=np.uint8)
    >>> hierarchy = np.array([[[0, 0, 1, 1, 2, 2]] * 4, [[0, 0, 0, 0, 1, 1]] * 4])  # 3 segments, then 2
    >>> draw_hierarchy(image, hierarchy, gap=0).size
    (18, 4)
    ```
    """
    _require_skimage()
    pixels = rgb_uint8_image(image)
    labels = _hierarchy_to_numpy(hierarchy)
    if labels.shape[1:] != pixels.shape[:2]:
        raise ValueError(
            f"`hierarchy` must have the (height, width) of `image`, got {tuple(labels.shape[1:])} for an image of "
            f"{tuple(pixels.shape[:2])}; resize the label maps to the image first (e.g. with `target_sizes`)"
        )
    boundary_rgb = _check_color(boundary_color, "boundary_color")
    gap_rgb = _check_color(gap_color, "gap_color")
    alpha = _check_alpha(alpha)
    gap = _check_gap(gap)
    if not isinstance(show_boundaries, (bool, np.bool_)):
        raise TypeError(f"`show_boundaries` must be a bool, got {type(show_boundaries).__name__}")

    num_levels, height, width = labels.shape
    panels = [pixels]
    for level_labels, level_colors in zip(labels, hierarchy_colors(labels), strict=True):
        panel = level_colors
        if alpha < 1.0:
            blended = alpha * level_colors.astype(np.float64) + (1.0 - alpha) * pixels
            panel = np.clip(np.round(blended), 0, MAX_UINT8).astype(np.uint8)
        if show_boundaries:
            panel = panel.copy()
            panel[_find_boundaries(level_labels, mode="thick")] = boundary_rgb
        panels.append(panel)

    picture = np.empty((height, (num_levels + 1) * width + num_levels * gap, _RGB_CHANNELS), dtype=np.uint8)
    picture[:] = gap_rgb
    for index, panel in enumerate(panels):
        left = index * (width + gap)
        picture[:, left : left + width] = panel
    return Image.fromarray(picture, mode="RGB")


def save_hierarchy_picture(image, hierarchy, path: str | os.PathLike, **kwargs) -> Image.Image:
    r"""
    Draw a hierarchy with [`draw_hierarchy`] and save the picture as a PNG file.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The segmented image (see [`draw_hierarchy`]).
        hierarchy (`np.ndarray` or `torch.Tensor` of shape `(num_levels, height, width)`):
            Integer segment ids at the image's size, finest level first.
        path (`str` or `os.PathLike`):
            Where to write the picture. It is written in PNG format whatever the file name's extension.
        kwargs:
            Drawing options of [`draw_hierarchy`] (`boundary_color`, `show_boundaries`, `alpha`, `gap`, `gap_color`).

    Returns:
        `PIL.Image.Image`: the picture that was written.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a string or a path, got {type(path).__name__}")
    picture = draw_hierarchy(image, hierarchy, **kwargs)
    picture.save(path, format="PNG")
    return picture


def _require_skimage() -> None:
    if _find_boundaries is None or _hsv2rgb is None:
        raise ImportError("Drawing CAST hierarchies needs scikit-image: pip install scikit-image")


def _segments_in_raster_order(level_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber one flattened level so that ids follow first appearance in raster order; also return, for every new
    id, the index of its first pixel. Renumbering makes colours independent of the id values."""
    _, first_pixels, inverse = np.unique(level_labels, return_index=True, return_inverse=True)
    order = np.argsort(first_pixels, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)], first_pixels[order]


def _rank_within_groups(groups: np.ndarray) -> np.ndarray:
    """For every element, how many elements before it (in index order) belong to the same group."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    group_starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    group_sizes = np.diff(np.r_[group_starts, len(groups)])
    ranks = np.empty(len(groups), dtype=np.int64)
    ranks[order] = np.arange(len(groups)) - np.repeat(group_starts, group_sizes)
    return ranks


def _child_shades(
    parent_families: np.ndarray, parent_shades: np.ndarray, parents: np.ndarray, num_families: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hue family and shade index of the segments of a finer level, given each one's parent id.

    Segments are numbered by first appearance, so ranks follow raster order. A parent's first child inherits the
    parent's shade (hence its exact colour); the other children take the next unused shades of their family. Inside a
    family the parents' shades are `0..m-1`, so the new ones start at `m` and shades stay unique per family and level:
    cousins of the same hue never share a colour.
    """
    families = parent_families[parents]
    shades = parent_shades[parents].copy()
    is_new_shade = _rank_within_groups(parents) > 0
    parents_per_family = np.bincount(parent_families, minlength=num_families)
    new_families = families[is_new_shade]
    shades[is_new_shade] = parents_per_family[new_families] + _rank_within_groups(new_families)
    return families, shades


def _segment_rgb(hues: np.ndarray, shades: np.ndarray) -> np.ndarray:
    """(num_segments, 3) uint8 RGB: shade `n` is the n-th point of the R2 sequence in (saturation, value), so the
    shades of a family are evenly spread and shade 0 is the family's coarsest colour."""
    hsv = np.empty((len(hues), _HSV_CHANNELS))
    hsv[:, 0] = hues
    for channel, start, step, (low, high) in (
        (1, _COARSEST_SATURATION_FRACTION, _SATURATION_STEP, _SATURATION_RANGE),
        (2, _COARSEST_VALUE_FRACTION, _VALUE_STEP, _VALUE_RANGE),
    ):
        hsv[:, channel] = low + ((start + shades * step) % 1.0) * (high - low)
    rgb = _hsv2rgb(hsv[:, None, :])[:, 0]
    return np.round(rgb * MAX_UINT8).astype(np.uint8)


def _hierarchy_to_numpy(hierarchy) -> np.ndarray:
    """Validate a hierarchy and return it as an int64 array of shape (num_levels, height, width)."""
    hierarchy = integer_array(hierarchy, "hierarchy", what="segment ids")
    if hierarchy.ndim == 2:
        hierarchy = hierarchy[None]
    if hierarchy.ndim != 3:
        raise ValueError(
            "`hierarchy` must have shape (num_levels, height, width) or (height, width), got shape "
            f"{tuple(hierarchy.shape)}; for a batched model output pass one image's hierarchy, e.g. `hierarchy[0]`"
        )
    if 0 in hierarchy.shape:
        raise ValueError(f"`hierarchy` must have at least one level and pixel, got shape {tuple(hierarchy.shape)}")
    check_non_negative(hierarchy, "hierarchy", "segment ids")
    return hierarchy.astype(np.int64, copy=False)


def _check_color(color, name: str) -> np.ndarray:
    values = np.asarray(color) if isinstance(color, (tuple, list, np.ndarray)) else None
    if (
        values is None
        or values.shape != (_RGB_CHANNELS,)
        or not np.issubdtype(values.dtype, np.integer)
        or values.min() < 0
        or values.max() > MAX_UINT8
    ):
        raise ValueError(f"`{name}` must be three integers in [0, {MAX_UINT8}] (R, G, B), got {color!r}")
    return values.astype(np.uint8)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"`alpha` must be a number in [0, 1], got {type(alpha).__name__} {alpha!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    return float(alpha)


def _check_gap(gap) -> int:
    if isinstance(gap, bool) or not isinstance(gap, numbers.Integral):
        raise TypeError(f"`gap` must be a non-negative integer, got {type(gap).__name__} {gap!r}")
    if gap < 0:
        raise ValueError(f"`gap` must be a non-negative integer, got {gap}")
    return int(gap)
