# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.visualization_cast`: hierarchy colours (a child keeps its parent's hue) and pictures."""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data
from skimage.color import rgb2hsv
from skimage.segmentation import slic

from conftest import tiny_config_kwargs
from processing.visualization_cast import DEFAULT_GAP, draw_hierarchy, hierarchy_colors, save_hierarchy_picture


HUE_TOLERANCE = 0.02  # uint8 rounding moves a hue by well under this (hues live in [0, 1))


def _nested_hierarchy(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """Three nested levels, finest first: SLIC superpixels merged at random into 8, then 3 groups."""
    rng = np.random.default_rng(seed)
    fine = slic(image, n_segments=64, start_label=0)
    middle = rng.permutation(np.arange(fine.max() + 1) % 8)[fine]
    coarse = (np.arange(8) % 3)[middle]
    return np.stack([fine, middle, coarse]).astype(np.int64)


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def astronaut_hierarchy(astronaut):
    return _nested_hierarchy(astronaut)


@pytest.fixture(scope="module")
def small_image():
    return np.asarray(Image.fromarray(skimage_data.chelsea()).resize((96, 64)))


@pytest.fixture(scope="module")
def small_hierarchy(small_image):
    return _nested_hierarchy(small_image)


def _panels(picture: Image.Image, width: int, num_panels: int, gap: int = DEFAULT_GAP) -> list[np.ndarray]:
    pixels = np.asarray(picture)
    return [pixels[:, index * (width + gap) : index * (width + gap) + width] for index in range(num_panels)]


def _num_colors(pixels: np.ndarray) -> int:
    return len(np.unique(pixels.reshape(-1, 3), axis=0))


def test_save_hierarchy_picture_astronaut_has_one_panel_per_level_plus_input(tmp_path, astronaut, astronaut_hierarchy):
    path = tmp_path / "astronaut_hierarchy.png"
    returned = save_hierarchy_picture(astronaut, astronaut_hierarchy, path)

    num_levels = astronaut_hierarchy.shape[0]
    height, width = astronaut.shape[:2]
    with Image.open(path) as written:
        assert written.format == "PNG"
        assert written.mode == "RGB"
        assert written.size == ((num_levels + 1) * width + num_levels * DEFAULT_GAP, height)
        picture = np.asarray(written)
    np.testing.assert_array_equal(picture, np.asarray(returned))
    np.testing.assert_array_equal(_panels(returned, width, 1)[0], astronaut)


def test_draw_hierarchy_astronaut_finer_levels_have_at_least_as_many_colors(astronaut, astronaut_hierarchy):
    num_levels = astronaut_hierarchy.shape[0]
    picture = draw_hierarchy(astronaut, astronaut_hierarchy)
    level_panels = _panels(picture, astronaut.shape[1], num_levels + 1)[1:]

    panel_counts = [_num_colors(panel) for panel in level_panels]
    color_counts = [_num_colors(colors) for colors in hierarchy_colors(astronaut_hierarchy)]
    segment_counts = [len(np.unique(level)) for level in astronaut_hierarchy]
    # finest first: counts must not increase from fine to coarse; one colour per segment, plus the boundaries
    assert panel_counts == sorted(panel_counts, reverse=True)
    assert color_counts == segment_counts
    assert panel_counts == [count + 1 for count in segment_counts]


def test_hierarchy_colors_finer_level_contains_every_coarser_color(small_hierarchy):
    colors = hierarchy_colors(small_hierarchy)
    for fine, coarse in itertools.pairwise(colors):
        fine_colors = {tuple(color) for color in fine.reshape(-1, 3)}
        coarse_colors = {tuple(color) for color in coarse.reshape(-1, 3)}
        assert coarse_colors <= fine_colors


def test_hierarchy_colors_children_keep_parent_hue_and_siblings_differ(small_hierarchy):
    colors = hierarchy_colors(small_hierarchy)
    hues = rgb2hsv(colors.reshape(-1, 1, 3))[:, 0, 0].reshape(small_hierarchy.shape)
    for level in range(small_hierarchy.shape[0] - 1):
        hue_difference = np.abs(hues[level] - hues[level + 1])
        assert np.minimum(hue_difference, 1 - hue_difference).max() < HUE_TOLERANCE
        for parent in np.unique(small_hierarchy[level + 1]):
            children = np.unique(small_hierarchy[level][small_hierarchy[level + 1] == parent])
            child_colors = {tuple(colors[level][small_hierarchy[level] == child][0]) for child in children}
            assert len(child_colors) == len(children)


def test_hierarchy_colors_coarsest_segments_get_distinct_hues(small_hierarchy):
    colors = hierarchy_colors(small_hierarchy)[-1]
    segments = np.unique(small_hierarchy[-1])
    segment_colors = np.stack([colors[small_hierarchy[-1] == segment][0] for segment in segments])
    hues = rgb2hsv(segment_colors[:, None])[:, 0, 0]
    assert len(set(np.round(hues, 2).tolist())) == len(segments)


def test_draw_hierarchy_is_deterministic_and_ignores_id_values(small_image, small_hierarchy):
    first = np.asarray(draw_hierarchy(small_image, small_hierarchy))
    second = np.asarray(draw_hierarchy(small_image, small_hierarchy.copy()))
    np.testing.assert_array_equal(first, second)

    # the same partition with other ids (and torch input) gives the same picture
    relabelled = torch.from_numpy(small_hierarchy * 7 + 3)
    np.testing.assert_array_equal(first, np.asarray(draw_hierarchy(small_image, relabelled)))


def test_draw_hierarchy_without_boundaries_draws_flat_colors(small_image, small_hierarchy):
    height, width = small_image.shape[:2]
    num_levels = small_hierarchy.shape[0]
    picture = draw_hierarchy(small_image, small_hierarchy, show_boundaries=False, gap=0)
    assert picture.size == ((num_levels + 1) * width, height)
    for panel, colors in zip(_panels(picture, width, num_levels + 1, gap=0)[1:], hierarchy_colors(small_hierarchy)):
        np.testing.assert_array_equal(panel, colors)


def test_draw_hierarchy_alpha_blends_colors_over_the_image(small_image, small_hierarchy):
    width = small_image.shape[1]
    image_only = draw_hierarchy(small_image, small_hierarchy, alpha=0.0, show_boundaries=False)
    for panel in _panels(image_only, width, small_hierarchy.shape[0] + 1)[1:]:
        np.testing.assert_array_equal(panel, small_image)

    half = draw_hierarchy(small_image, small_hierarchy, alpha=0.5, show_boundaries=False)
    expected = np.round(0.5 * hierarchy_colors(small_hierarchy)[0] + 0.5 * small_image.astype(np.float64))
    np.testing.assert_allclose(_panels(half, width, 2)[1], expected, atol=1)


def test_draw_hierarchy_boundaries_use_boundary_color(small_image, small_hierarchy):
    width = small_image.shape[1]
    picture = draw_hierarchy(small_image, small_hierarchy, boundary_color=(0, 0, 0))
    finest = _panels(picture, width, 2)[1]
    assert (finest == 0).all(axis=-1).any()


@pytest.mark.parametrize(
    ("convert", "keeps_colors"),
    [
        pytest.param(lambda image: Image.fromarray(image).convert("L"), False, id="pil-gray"),
        pytest.param(lambda image: Image.fromarray(image).convert("RGBA"), True, id="pil-rgba"),
        pytest.param(lambda image: Image.fromarray(image).convert("P"), False, id="pil-palette"),
        pytest.param(lambda image: image[..., 0], False, id="array-gray"),
        pytest.param(lambda image: np.dstack([image, np.full(image.shape[:2], 9, np.uint8)]), True, id="array-rgba"),
        pytest.param(lambda image: image.astype(np.uint16) * 257, True, id="array-16-bit"),
        pytest.param(lambda image: image / 255.0, True, id="array-float"),
        pytest.param(lambda image: torch.from_numpy(image.copy()), True, id="tensor"),
    ],
)
def test_draw_hierarchy_converts_image_formats_to_rgb(small_image, small_hierarchy, convert, keeps_colors):
    picture = draw_hierarchy(convert(small_image), small_hierarchy)
    reference = draw_hierarchy(small_image, small_hierarchy)
    assert picture.mode == "RGB"
    assert picture.size == reference.size
    width = small_image.shape[1]
    input_panel = _panels(picture, width, 1)[0]
    if keeps_colors:
        np.testing.assert_array_equal(input_panel, small_image)
    # the level panels depend on the hierarchy only
    np.testing.assert_array_equal(np.asarray(picture)[:, width:], np.asarray(reference)[:, width:])


def test_draw_hierarchy_repeats_gray_images_to_rgb(small_image, small_hierarchy):
    gray = small_image[..., 0]
    input_panel = _panels(draw_hierarchy(gray, small_hierarchy), small_image.shape[1], 1)[0]
    np.testing.assert_array_equal(input_panel, np.repeat(gray[..., None], 3, axis=-1))


def test_draw_hierarchy_accepts_one_2d_level(small_image, small_hierarchy):
    picture = draw_hierarchy(small_image, small_hierarchy[0])
    assert picture.size == (2 * small_image.shape[1] + DEFAULT_GAP, small_image.shape[0])


def test_draw_hierarchy_of_a_tiny_cast_model(small_image):
    from modeling_cast import CastConfig, CastModel
    from processing import CastImageProcessor

    model = CastModel(CastConfig(**tiny_config_kwargs(image_size=64, num_segments=[8, 4]))).eval()
    processor = CastImageProcessor(size={"height": 64, "width": 64}, n_segments=32)
    image = np.asarray(Image.fromarray(small_image).resize((64, 64), Image.BILINEAR))
    with torch.no_grad():
        hierarchy = model(**processor(image, return_tensors="pt")).hierarchy[0]

    picture = draw_hierarchy(image, hierarchy)
    counts = [_num_colors(colors) for colors in hierarchy_colors(hierarchy)]
    assert picture.size == (3 * 64 + 2 * DEFAULT_GAP, 64)
    assert counts == sorted(counts, reverse=True)
    assert counts == [len(torch.unique(level)) for level in hierarchy]


def _bad_call(image, hierarchy, **kwargs):
    return lambda: draw_hierarchy(image, hierarchy, **kwargs)


@pytest.mark.parametrize(
    ("make_call", "error", "match"),
    [
        (lambda i, h: _bad_call(i[:32], h), ValueError, r"`hierarchy` must have the \(height, width\) of `image`"),
        (lambda i, h: _bad_call(i, h.astype(np.float32)), TypeError, "`hierarchy` must hold integer segment ids"),
        (lambda i, h: _bad_call(i, torch.from_numpy(h).float()), TypeError, "`hierarchy` must hold integer"),
        (lambda i, h: _bad_call(i, h.astype(bool)), TypeError, "`hierarchy` must hold integer segment ids"),
        (lambda i, h: _bad_call(i, h[None]), ValueError, r"`hierarchy` must have shape \(num_levels, height, width\)"),
        (lambda i, h: _bad_call(i, h[0, 0]), ValueError, r"`hierarchy` must have shape"),
        (lambda i, h: _bad_call(i, h[:0]), ValueError, "`hierarchy` must have at least one level"),
        (lambda i, h: _bad_call(i, h - 1), ValueError, "`hierarchy` must hold non-negative segment ids, got min.* -1"),
        (lambda i, h: _bad_call(i, h.tolist()), TypeError, "`hierarchy` must be a numpy array or a torch tensor"),
        (lambda i, h: _bad_call(i, h[::-1].copy()), ValueError, "`hierarchy` must be nested"),
        (lambda i, h: _bad_call(i.tolist(), h), TypeError, "`image` must be a PIL image, a numpy array"),
        (lambda i, h: _bad_call(np.dstack([i, i]), h), ValueError, r"`image` must have shape \(height, width\)"),
        (lambda i, h: _bad_call(i * 2.0, h), ValueError, r"float `image` values must be finite and in \[0, 1\]"),
        (lambda i, h: _bad_call(i, h, boundary_color=(0, 0, 300)), ValueError, "`boundary_color` must be three"),
        (lambda i, h: _bad_call(i, h, gap_color="white"), ValueError, "`gap_color` must be three integers"),
        (lambda i, h: _bad_call(i, h, alpha=1.5), ValueError, r"`alpha` must be in \[0, 1\], got 1.5"),
        (lambda i, h: _bad_call(i, h, alpha="0.5"), TypeError, "`alpha` must be a number"),
        (lambda i, h: _bad_call(i, h, gap=-1), ValueError, "`gap` must be a non-negative integer, got -1"),
        (lambda i, h: _bad_call(i, h, show_boundaries="yes"), TypeError, "`show_boundaries` must be a bool"),
    ],
)
def test_draw_hierarchy_rejects_bad_input(small_image, small_hierarchy, make_call, error, match):
    with pytest.raises(error, match=match):
        make_call(small_image, small_hierarchy)()


def test_hierarchy_colors_rejects_non_nested_levels():
    fine = np.array([[0, 0, 1, 1]])
    coarse = np.array([[0, 1, 1, 1]])  # fine segment 0 spans coarse segments 0 and 1
    with pytest.raises(ValueError, match="every segment of level 0 must lie inside exactly one segment of level 1"):
        hierarchy_colors(np.stack([fine, coarse]))


def test_save_hierarchy_picture_rejects_bad_path(small_image, small_hierarchy):
    with pytest.raises(TypeError, match="`path` must be a string or a path"):
        save_hierarchy_picture(small_image, small_hierarchy, 42)
