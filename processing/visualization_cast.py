# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Pictures of CAST hierarchies: the input image and every level of its segmentation, side by side, as flat colors
or overlaid on the photo, with captions; color label maps; class-labeled segmentations with a legend.

Colors follow the hierarchy, as in the CAST paper's figures: every segment of the coarsest level gets its own hue,
and every finer segment keeps the hue of the coarse segment it lies in, its siblings and cousins differing in
saturation and value. The first child of a segment (in raster order) keeps its parent's color exactly, so a finer
level always shows at least the colors of the coarser one. Colors depend only on the partition the hierarchy
describes (not on its id values, the image or any random state), so the same hierarchy always gives the same picture.

Label maps are written as indexed-palette PNGs ([`hierarchy_label_maps`]): the pixel values are the segment ids, so
programs read the ids, and the palette holds the hierarchy colors, so image viewers show the picture's colors.
Class-labeled maps ([`draw_segmentation`]) color each class by its id (the same class has the same color in every
image) and list the classes present in a legend.

Text uses Pillow's default font (no font files needed). Images are read by `image_inputs_cast.rgb_uint8_image`,
hierarchies by its integer-map helpers.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


from .image_inputs_cast import MAX_UINT8, check_non_negative, integer_array, rgb_uint8_image


try:
    from skimage.color import hsv2rgb as _hsv2rgb
    from skimage.segmentation import find_boundaries as _find_boundaries
except ImportError:  # reported with an install hint when a picture is actually drawn
    _hsv2rgb = None
    _find_boundaries = None


__all__ = [
    "DRAW_MODES",
    "draw_hierarchy",
    "draw_segmentation",
    "hierarchy_colors",
    "hierarchy_label_maps",
    "label_colors",
    "level_caption",
    "save_hierarchy_picture",
    "segment_lineage",
]

# Hues of the coarsest segments step by the golden ratio's conjugate: consecutive segments get far-apart hues and no
# two segments ever get the same one.
_GOLDEN_RATIO_CONJUGATE = (5**0.5 - 1) / 2
_FIRST_HUE = 0.05
# Shade n of a hue is the n-th point of the 2-D golden (R2) sequence in (saturation, value): an even spread for any
# number of shades.
_PLASTIC_NUMBER = 1.324717957244746
_SATURATION_STEP = 1 / _PLASTIC_NUMBER
_VALUE_STEP = 1 / _PLASTIC_NUMBER**2
# Saturation and value stay in these ranges so that no segment is gray, black or white (the boundary color).
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
# "panels": flat colors beside the image; "overlay": the same colors blended over the photo, so that a person sees
# which object each segment covers.
DRAW_MODES = ("panels", "overlay")
OVERLAY_ALPHA = 0.5
# Outside a highlighted segment's lineage the picture keeps this share of its brightness: dim, still readable.
_DIM_FACTOR = 0.3
_TEXT_COLOR = (0, 0, 0)
# Caption and legend text height, as a share of the panel width, within these pixel sizes.
_FONT_SIZE_RANGE = (9, 18)
_FONT_SIZE_SHARE = 1 / 14
_TEXT_PADDING = 3
_PALETTE_SIZE = 256  # a PNG palette has at most this many entries, so indexed label maps hold ids 0..255


def hierarchy_colors(hierarchy) -> np.ndarray:
    r"""
    Color every pixel of every level of a hierarchical segmentation, consistently from coarse to fine.

    Each segment of the coarsest level gets its own hue (golden-ratio steps, in the order in which the segments first
    appear in raster order). Each finer segment keeps the hue of the segment it lies in one level up; the first of a
    segment's children keeps its color exactly and the others take new shades (saturation and value) that no other
    segment of the same hue uses at that level. Hence a finer level has at least as many distinct colors as the
    coarser one, and the colors depend only on the partition the hierarchy describes, not on its id values.

    Args:
        hierarchy (`np.ndarray` or `torch.Tensor` of shape `(num_levels, height, width)`):
            Non-negative integer segment ids, finest level first (e.g. `CastModelOutput.hierarchy[i]`). Every segment
            of a level must lie inside exactly one segment of the next level. A 2-D `(height, width)` map is one
            level.

    Returns:
        `np.ndarray` of dtype `uint8` and shape `(num_levels, height, width, 3)`: the RGB color of every pixel at
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
    mode: str = "panels",
    captions: bool | Sequence[str] = False,
    boundary_color: tuple[int, int, int] = DEFAULT_BOUNDARY_COLOR,
    show_boundaries: bool = True,
    alpha: float | None = None,
    gap: int = DEFAULT_GAP,
    gap_color: tuple[int, int, int] = DEFAULT_GAP_COLOR,
    highlight=None,
) -> Image.Image:
    r"""
    Draw an image and every level of its hierarchical segmentation side by side.

    The picture holds `num_levels + 1` panels of the image's size, left to right: the input image, then the levels in
    the order of `hierarchy` (finest first), separated by `gap` pixels. Level panels are flat colors from
    [`hierarchy_colors`] in `"panels"` mode and the same colors blended over the image in `"overlay"` mode. Segment
    boundaries are drawn on top in `boundary_color`. With `captions`, a strip under each panel names it.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The segmented image, `(height, width)` or `(height, width, channels)`, decoded as the image processor
            decodes it: grayscale is repeated to RGB, alpha channels are dropped, 16-bit images (uint16 arrays, PIL
            modes `"I;16"` and `"I"`) are scaled to 8 bits; float images must lie in `[0, 1]`.
        hierarchy (`np.ndarray` or `torch.Tensor` of shape `(num_levels, height, width)`):
            Non-negative integer segment ids at the image's size, finest level first, nested from fine to coarse
            (e.g. a label map stack from `CastImageProcessor.post_process_hierarchical_segmentation`).
        mode (`str`, *optional*, defaults to `"panels"`):
            `"panels"` (flat colors) or `"overlay"` (colors blended over the image with opacity `alpha`).
        captions (`bool` or `list[str]`, *optional*, defaults to `False`):
            `True` writes `"image"` under the first panel and `"level <l>: <n> segments"` under level `l` (counted
            from 0 in the order of `hierarchy`); a list gives one caption per level instead (e.g. when `hierarchy`
            holds a subset of a model's levels), with one more string first to name the input panel (e.g. when it
            shows ground truth instead of the photo). `False` draws no caption strip.
        boundary_color (`tuple[int, int, int]`, *optional*, defaults to `(255, 255, 255)`):
            RGB color of the segment boundaries.
        show_boundaries (`bool`, *optional*, defaults to `True`):
            Whether to draw segment boundaries (the pixels along both sides of every boundary).
        alpha (`float`, *optional*):
            Opacity of the segment colors over the image, in `[0, 1]`: 1 draws flat colors, 0 the image alone.
            Defaults to 1 in `"panels"` mode and 0.5 in `"overlay"` mode.
        gap (`int`, *optional*, defaults to 4):
            Width in pixels of the strip between panels.
        gap_color (`tuple[int, int, int]`, *optional*, defaults to `(255, 255, 255)`):
            RGB color of the strips between panels and behind the captions.
        highlight (`np.ndarray` of dtype bool and shape `(num_levels, height, width)`, *optional*):
            Pixels to keep bright in each level panel (e.g. from [`segment_lineage`]); the rest of each level panel
            is dimmed. The input panel is never dimmed.

    Returns:
        `PIL.Image.Image`: an RGB picture of width `(num_levels + 1) * width + num_levels * gap` and height `height`,
        plus the caption strip's height with `captions`.

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
    mode = _check_mode(mode)
    boundary_rgb = _check_color(boundary_color, "boundary_color")
    gap_rgb = _check_color(gap_color, "gap_color")
    alpha = _check_alpha(alpha if alpha is not None else (1.0 if mode == "panels" else OVERLAY_ALPHA))
    gap = _check_gap(gap)
    if not isinstance(show_boundaries, (bool, np.bool_)):
        raise TypeError(f"`show_boundaries` must be a bool, got {type(show_boundaries).__name__}")
    caption_texts = _check_captions(captions, labels)
    highlight = _check_highlight(highlight, labels.shape)

    num_levels, height, width = labels.shape
    panels = [pixels]
    for level, (level_labels, level_colors) in enumerate(zip(labels, hierarchy_colors(labels), strict=True)):
        panel = _blend(level_colors, pixels, alpha)
        if show_boundaries:
            panel = panel.copy()
            panel[_find_boundaries(level_labels, mode="thick")] = boundary_rgb
        if highlight is not None:
            panel = np.where(highlight[level][..., None], panel, np.round(panel * _DIM_FACTOR).astype(np.uint8))
        panels.append(panel)

    picture = np.empty((height, (num_levels + 1) * width + num_levels * gap, _RGB_CHANNELS), dtype=np.uint8)
    picture[:] = gap_rgb
    for index, panel in enumerate(panels):
        left = index * (width + gap)
        picture[:, left : left + width] = panel
    picture = Image.fromarray(picture, mode="RGB")
    if caption_texts is None:
        return picture
    return _add_captions(picture, caption_texts, width, gap, tuple(int(value) for value in gap_rgb))


def draw_segmentation(
    image,
    segmentation,
    id2label: Mapping[int, str] | None = None,
    *,
    alpha: float = OVERLAY_ALPHA,
    show_boundaries: bool = True,
    boundary_color: tuple[int, int, int] = DEFAULT_BOUNDARY_COLOR,
    legend: bool = True,
) -> Image.Image:
    r"""
    Overlay a class-labeled segmentation (e.g. from `post_process_semantic_segmentation`) on its image, with a legend.

    Every class gets the color [`label_colors`] gives its id, so a class looks the same in every picture. The legend,
    right of the image, shows a swatch and the name of every class present, in id order.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The segmented image (decoded as in [`draw_hierarchy`]).
        segmentation (`np.ndarray` or `torch.Tensor` of shape `(height, width)`):
            Non-negative integer class ids at the image's size.
        id2label (`dict[int, str]`, *optional*):
            Class names, e.g. `model.config.id2label`; ids without a name are shown as `"class <id>"`.
        alpha (`float`, *optional*, defaults to 0.5):
            Opacity of the class colors over the image, in `[0, 1]`.
        show_boundaries (`bool`, *optional*, defaults to `True`):
            Whether to draw the boundaries between classes.
        boundary_color (`tuple[int, int, int]`, *optional*, defaults to `(255, 255, 255)`):
            RGB color of the boundaries.
        legend (`bool`, *optional*, defaults to `True`):
            Whether to add the legend.

    Returns:
        `PIL.Image.Image`: an RGB picture of the image's height (or the legend's, if taller), as wide as the image plus
        the legend.
    """
    _require_skimage()
    pixels = rgb_uint8_image(image)
    labels = integer_array(segmentation, "segmentation", what="class ids")
    if labels.shape != pixels.shape[:2]:
        raise ValueError(
            f"`segmentation` must have the (height, width) of `image`, {tuple(pixels.shape[:2])}, got shape "
            f"{tuple(labels.shape)}"
        )
    check_non_negative(labels, "segmentation", "class ids")
    if id2label is not None and not isinstance(id2label, Mapping):
        raise TypeError(f"`id2label` must be a dict from class id to name, got {type(id2label).__name__}")
    alpha = _check_alpha(alpha)
    boundary_rgb = _check_color(boundary_color, "boundary_color")
    for name, flag in (("show_boundaries", show_boundaries), ("legend", legend)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"`{name}` must be a bool, got {type(flag).__name__}")

    labels = labels.astype(np.int64, copy=False)
    present = np.unique(labels)
    colors = label_colors(int(present[-1]) + 1)
    panel = _blend(colors[labels], pixels, alpha)
    if show_boundaries:
        panel[_find_boundaries(labels, mode="thick")] = boundary_rgb
    picture = Image.fromarray(panel, mode="RGB")
    if not legend:
        return picture
    names = dict(id2label or {})
    # config.id2label keys are ints, but JSON round trips may leave strings
    names.update({int(key): value for key, value in names.items() if isinstance(key, str) and key.isdigit()})
    entries = [(names.get(int(class_id), f"class {class_id}"), colors[class_id]) for class_id in present]
    return _add_legend(picture, entries)


def label_colors(num_labels: int) -> np.ndarray:
    r"""
    Colors of class ids `0..num_labels - 1`, far-apart hues in golden-ratio steps (those of the coarsest segments
    in [`hierarchy_colors`]), with the value alternating so that neighboring ids also differ in brightness.

    Returns:
        `np.ndarray` of dtype `uint8` and shape `(num_labels, 3)`.
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, numbers.Integral) or num_labels < 0:
        raise ValueError(f"`num_labels` must be a non-negative integer, got {num_labels!r}")
    _require_skimage()
    ids = np.arange(num_labels)
    hues = (_FIRST_HUE + ids * _GOLDEN_RATIO_CONJUGATE) % 1.0
    return _segment_rgb(hues, ids % 2)


def segment_lineage(hierarchy, level: int, row: int, column: int) -> np.ndarray:
    r"""
    Where, at every level, the segment under pixel `(row, column)` of level `level` and its relatives lie.

    At `level` and every finer level the mask is the segment itself (the union of its descendants, which tile it); at
    every coarser level it is the ancestor containing it. Pass it as `highlight` to [`draw_hierarchy`].

    Args:
        hierarchy (`np.ndarray` or `torch.Tensor` of shape `(num_levels, height, width)`):
            Nested segment ids, finest level first.
        level (`int`): the level of the chosen segment (negative values count from the coarsest).
        row (`int`), column (`int`): a pixel of the chosen segment.

    Returns:
        `np.ndarray` of dtype bool and shape `(num_levels, height, width)`: True inside the lineage.
    """
    labels = _hierarchy_to_numpy(hierarchy)
    num_levels, height, width = labels.shape
    for name, value, size in (("level", level, num_levels), ("row", row, height), ("column", column, width)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}")
        low = -size if name == "level" else 0
        if not low <= value < size:
            raise ValueError(f"`{name}` must be in [{low}, {size - 1}], got {value}")
    level = int(level) % num_levels
    chosen = labels[level] == labels[level, row, column]
    masks = np.empty(labels.shape, dtype=bool)
    masks[: level + 1] = chosen
    for coarser in range(level + 1, num_levels):
        masks[coarser] = labels[coarser] == labels[coarser, row, column]
    return masks


def hierarchy_label_maps(hierarchy) -> list[Image.Image]:
    r"""
    Every level of a hierarchy as an indexed-palette (`"P"` mode) image: pixel values are the segment ids, the palette
    holds the colors of [`hierarchy_colors`]. Saved as PNG, a program reads the ids (`np.asarray(Image.open(path))`)
    and an image viewer shows the colors of the hierarchy pictures.

    Args:
        hierarchy (`np.ndarray` or `torch.Tensor` of shape `(num_levels, height, width)`):
            Nested segment ids, finest level first, at most 255.

    Returns:
        `list[PIL.Image.Image]`: one `"P"` image per level, in the order of `hierarchy`.
    """
    labels = _hierarchy_to_numpy(hierarchy)
    if labels.max() >= _PALETTE_SIZE:
        raise ValueError(
            f"`hierarchy` must hold segment ids below {_PALETTE_SIZE} for an indexed-palette PNG, got "
            f"{labels.max()}; save such levels as 16-bit grayscale maps instead"
        )
    label_maps = []
    for level_labels, level_colors in zip(labels, hierarchy_colors(labels), strict=True):
        palette = np.zeros((_PALETTE_SIZE, _RGB_CHANNELS), dtype=np.uint8)
        # every pixel of a segment has the segment's color, so any one pixel per id gives the palette entry
        palette[level_labels.reshape(-1)] = level_colors.reshape(-1, _RGB_CHANNELS)
        # putpalette turns the "L" image into a "P" image whose indices are the ids themselves
        label_map = Image.fromarray(level_labels.astype(np.uint8))
        label_map.putpalette(palette.reshape(-1).tolist())
        label_maps.append(label_map)
    return label_maps


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
            Drawing options of [`draw_hierarchy`] (`mode`, `captions`, `boundary_color`, `show_boundaries`, `alpha`,
            `gap`, `gap_color`, `highlight`).

    Returns:
        `PIL.Image.Image`: the picture that was written.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a string or a path, got {type(path).__name__}")
    picture = draw_hierarchy(image, hierarchy, **kwargs)
    picture.save(path, format="PNG")
    return picture


def level_caption(level: int, num_segments: int) -> str:
    """The caption of a level panel: `"level 2: 8 segments"`."""
    return f"level {level}: {num_segments} segment{'' if num_segments == 1 else 's'}"


def _blend(colors: np.ndarray, pixels: np.ndarray, alpha: float) -> np.ndarray:
    """`alpha * colors + (1 - alpha) * pixels`, rounded to uint8 (a new array)."""
    if alpha == 1.0:
        return colors.copy()
    blended = alpha * colors.astype(np.float64) + (1.0 - alpha) * pixels
    return np.clip(np.round(blended), 0, MAX_UINT8).astype(np.uint8)


def _font(panel_width: int) -> ImageFont.ImageFont:
    """Pillow's default font at a size that suits the panel (scalable when Pillow has FreeType, else its bitmap
    font, which has one size)."""
    low, high = _FONT_SIZE_RANGE
    return ImageFont.load_default(size=int(np.clip(round(panel_width * _FONT_SIZE_SHARE), low, high)))


def _fitted_text(draw: ImageDraw.ImageDraw, text: str, font, max_width: int) -> str:
    """`text`, cut with an ellipsis where it is wider than `max_width` pixels (narrow panels)."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=font) > max_width:
        text = text[:-1]
    return text + "…"


def _add_captions(
    picture: Image.Image, captions: list[str], panel_width: int, gap: int, background: tuple[int, int, int]
) -> Image.Image:
    """The picture with a strip below it holding one centerd caption under each panel."""
    font = _font(panel_width)
    draw = ImageDraw.Draw(picture)
    line_top, line_bottom = draw.textbbox((0, 0), "Level 0: 8 segments", font=font)[1::2]
    strip_height = line_bottom + 2 * _TEXT_PADDING
    captioned = Image.new("RGB", (picture.width, picture.height + strip_height), background)
    captioned.paste(picture, (0, 0))
    draw = ImageDraw.Draw(captioned)
    for index, caption in enumerate(captions):
        text = _fitted_text(draw, caption, font, panel_width - 2 * _TEXT_PADDING)
        center = index * (panel_width + gap) + panel_width / 2
        top = picture.height + _TEXT_PADDING
        draw.text((center - draw.textlength(text, font=font) / 2, top), text, fill=_TEXT_COLOR, font=font)
    return captioned


def _add_legend(picture: Image.Image, entries: list[tuple[str, np.ndarray]]) -> Image.Image:
    """The picture with a legend on its right: one color swatch and name per entry, top to bottom."""
    font = _font(picture.width)
    measure = ImageDraw.Draw(picture)
    line_height = measure.textbbox((0, 0), "Ag", font=font)[3] + _TEXT_PADDING
    swatch = line_height - _TEXT_PADDING
    text_width = max(measure.textlength(name, font=font) for name, _ in entries)
    legend_width = int(np.ceil(3 * _TEXT_PADDING + swatch + text_width + _TEXT_PADDING))
    height = max(picture.height, len(entries) * line_height + 2 * _TEXT_PADDING)
    with_legend = Image.new("RGB", (picture.width + legend_width, height), DEFAULT_GAP_COLOR)
    with_legend.paste(picture, (0, 0))
    draw = ImageDraw.Draw(with_legend)
    left = picture.width + 2 * _TEXT_PADDING
    for index, (name, color) in enumerate(entries):
        top = _TEXT_PADDING + index * line_height
        draw.rectangle([left, top, left + swatch - 1, top + swatch - 1], fill=tuple(int(v) for v in color),
                       outline=_TEXT_COLOR)
        draw.text((left + swatch + _TEXT_PADDING, top), name, fill=_TEXT_COLOR, font=font)
    return with_legend


def _require_skimage() -> None:
    if _find_boundaries is None or _hsv2rgb is None:
        raise ImportError("Drawing CAST hierarchies needs scikit-image: pip install scikit-image")


def _segments_in_raster_order(level_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber one flattened level so that ids follow first appearance in raster order; also return, for every new
    id, the index of its first pixel. Renumbering makes colors independent of the id values."""
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
    parent's shade (hence its exact color); the other children take the next unused shades of their family. Inside a
    family the parents' shades are `0..m-1`, so the new ones start at `m` and shades stay unique per family and level:
    cousins of the same hue never share a color.
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
    shades of a family are evenly spread and shade 0 is the family's coarsest color."""
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


def _check_mode(mode) -> str:
    if mode not in DRAW_MODES:
        raise ValueError(f"`mode` must be one of {DRAW_MODES}, got {mode!r}")
    return mode


def _check_captions(captions, labels: np.ndarray) -> list[str] | None:
    """Caption of every panel (the input panel first), or None for no caption strip."""
    if isinstance(captions, (bool, np.bool_)):
        if not captions:
            return None
        counts = [len(np.unique(level_labels)) for level_labels in labels]
        return ["image"] + [level_caption(level, count) for level, count in enumerate(counts)]
    if (
        not isinstance(captions, Sequence)
        or isinstance(captions, str)
        or not all(isinstance(caption, str) for caption in captions)
    ):
        raise TypeError(f"`captions` must be a bool or a list of strings, got {type(captions).__name__} {captions!r}")
    if len(captions) not in (len(labels), len(labels) + 1):
        raise ValueError(
            f"`captions` must hold one string per level ({len(labels)}), or one more for the input panel, got "
            f"{len(captions)}"
        )
    return ["image", *captions] if len(captions) == len(labels) else list(captions)


def _check_highlight(highlight, shape: tuple[int, ...]) -> np.ndarray | None:
    if highlight is None:
        return None
    if not isinstance(highlight, np.ndarray) or highlight.dtype != np.bool_:
        raise TypeError(f"`highlight` must be a boolean numpy array, got {type(highlight).__name__}")
    if highlight.shape != shape:
        raise ValueError(f"`highlight` must have the shape of `hierarchy`, {shape}, got {highlight.shape}")
    return highlight


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
