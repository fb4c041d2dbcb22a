# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.visualization_cast`: hierarchy colors (a child keeps its parent's hue) and pictures."""

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
    # finest first: counts must not increase from fine to coarse; one color per segment, plus the boundaries
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
    relabeled = torch.from_numpy(small_hierarchy * 7 + 3)
    np.testing.assert_array_equal(first, np.asarray(draw_hierarchy(small_image, relabeled)))


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


def test_draw_hierarchy_overlay_blends_half_colors_half_image_by_default(small_image, small_hierarchy):
    width = small_image.shape[1]
    overlay = draw_hierarchy(small_image, small_hierarchy, mode="overlay", show_boundaries=False)
    explicit = draw_hierarchy(small_image, small_hierarchy, alpha=0.5, show_boundaries=False)
    np.testing.assert_array_equal(np.asarray(overlay), np.asarray(explicit))
    expected = np.round(0.5 * hierarchy_colors(small_hierarchy)[-1] + 0.5 * small_image.astype(np.float64))
    np.testing.assert_allclose(_panels(overlay, width, 4)[3], expected, atol=1)


def test_draw_hierarchy_captions_add_a_strip_with_text_under_every_panel(small_image, small_hierarchy):
    height, width = small_image.shape[:2]
    plain = draw_hierarchy(small_image, small_hierarchy, mode="overlay")
    captioned = draw_hierarchy(small_image, small_hierarchy, mode="overlay", captions=True)
    assert captioned.width == plain.width and captioned.height > height
    np.testing.assert_array_equal(np.asarray(captioned)[:height], np.asarray(plain))
    strip = np.asarray(captioned)[height:]
    for panel in _panels(Image.fromarray(strip), width, small_hierarchy.shape[0] + 1):
        assert (panel.max(axis=-1) < 128).any()  # dark text under every panel

    # custom captions replace the automatic ones: different text, same strip
    custom = draw_hierarchy(small_image, small_hierarchy, captions=["a", "b", "c"])
    automatic = draw_hierarchy(small_image, small_hierarchy, captions=True)
    assert custom.size == automatic.size
    assert not np.array_equal(np.asarray(custom)[height:], np.asarray(automatic)[height:])


def test_level_caption_names_level_and_count():
    from processing.visualization_cast import level_caption

    assert level_caption(2, 8) == "level 2: 8 segments"
    assert level_caption(0, 1) == "level 0: 1 segment"


def test_segment_lineage_covers_the_segment_below_and_its_ancestors_above(small_hierarchy):
    from processing.visualization_cast import segment_lineage

    row, column = 20, 30
    masks = segment_lineage(small_hierarchy, 1, row, column)
    chosen = small_hierarchy[1] == small_hierarchy[1, row, column]
    np.testing.assert_array_equal(masks[0], chosen)  # the descendants tile the segment
    np.testing.assert_array_equal(masks[1], chosen)
    np.testing.assert_array_equal(masks[2], small_hierarchy[2] == small_hierarchy[2, row, column])
    assert masks[2][chosen].all()  # the ancestor contains the segment
    np.testing.assert_array_equal(segment_lineage(small_hierarchy, -2, row, column), masks)


def test_draw_hierarchy_highlight_dims_outside_the_lineage_only(small_image, small_hierarchy):
    from processing.visualization_cast import segment_lineage

    width = small_image.shape[1]
    masks = segment_lineage(small_hierarchy, 0, 10, 10)
    plain = _panels(draw_hierarchy(small_image, small_hierarchy), width, 4)
    lit = _panels(draw_hierarchy(small_image, small_hierarchy, highlight=masks), width, 4)
    np.testing.assert_array_equal(lit[0], plain[0])  # the photo is never dimmed
    for level, (lit_panel, plain_panel) in enumerate(zip(lit[1:], plain[1:])):
        np.testing.assert_array_equal(lit_panel[masks[level]], plain_panel[masks[level]])
        outside = ~masks[level]
        assert (lit_panel[outside].astype(int).sum(-1) < plain_panel[outside].astype(int).sum(-1)).all()


def test_hierarchy_label_maps_are_palette_pngs_with_the_ids_and_the_colors(tmp_path, small_hierarchy):
    from processing.visualization_cast import hierarchy_label_maps

    colors = hierarchy_colors(small_hierarchy)
    for level, label_map in enumerate(hierarchy_label_maps(small_hierarchy)):
        path = tmp_path / f"level{level}.png"
        label_map.save(path)
        with Image.open(path) as written:
            assert written.mode == "P"
            np.testing.assert_array_equal(np.asarray(written), small_hierarchy[level])
            np.testing.assert_array_equal(np.asarray(written.convert("RGB")), colors[level])
    with pytest.raises(ValueError, match="segment ids below 256 for an indexed-palette PNG, got 256"):
        hierarchy_label_maps(np.full((1, 2, 2), 256))


def test_draw_segmentation_colors_classes_by_id_and_lists_present_classes(small_image):
    from processing.visualization_cast import draw_segmentation, label_colors

    height, width = small_image.shape[:2]
    classes = np.zeros((height, width), dtype=np.int64)
    classes[:, width // 2 :] = 3
    picture = draw_segmentation(small_image, classes, {0: "background", 3: "cat"}, alpha=1.0, show_boundaries=False)
    assert picture.height == height and picture.width > width  # the legend sits on the right
    pixels = np.asarray(picture)
    colors = label_colors(4)
    np.testing.assert_array_equal(pixels[:, : width // 2], np.broadcast_to(colors[0], (height, width // 2, 3)))
    np.testing.assert_array_equal(pixels[:, width // 2 : width], np.broadcast_to(colors[3], (height, width // 2, 3)))
    legend = pixels[:, width:].reshape(-1, 3)
    legend_colors = {tuple(color) for color in legend}
    assert tuple(colors[0]) in legend_colors and tuple(colors[3]) in legend_colors
    assert tuple(colors[1]) not in legend_colors  # absent classes are not listed
    # a class keeps its color whatever else the image holds
    alone = np.asarray(draw_segmentation(small_image, np.full((height, width), 3), alpha=1.0, legend=False))
    np.testing.assert_array_equal(alone[0, 0], colors[3])
    assert len({tuple(color) for color in label_colors(50)}) == 50


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "side-by-side"}, ValueError, r"`mode` must be one of \('panels', 'overlay'\)"),
        ({"captions": "level 0"}, TypeError, "`captions` must be a bool or a list of strings"),
        ({"captions": ["a"]}, ValueError, r"`captions` must hold one string per level \(3\), or one more .* got 1"),
        ({"highlight": np.ones((3, 4, 4), dtype=bool)}, ValueError, "`highlight` must have the shape of"),
        ({"highlight": np.ones((3, 64, 96))}, TypeError, "`highlight` must be a boolean numpy array"),
    ],
)
def test_draw_hierarchy_rejects_bad_drawing_options(small_image, small_hierarchy, kwargs, error, match):
    with pytest.raises(error, match=match):
        draw_hierarchy(small_image, small_hierarchy, **kwargs)


def test_draw_segmentation_and_lineage_reject_bad_input(small_image, small_hierarchy):
    from processing.visualization_cast import draw_segmentation, segment_lineage

    with pytest.raises(ValueError, match=r"`segmentation` must have the \(height, width\) of `image`"):
        draw_segmentation(small_image, small_hierarchy)
    with pytest.raises(TypeError, match="`id2label` must be a dict"):
        draw_segmentation(small_image, small_hierarchy[0], ["cat"])
    with pytest.raises(ValueError, match=r"`row` must be in \[0, 63\], got 64"):
        segment_lineage(small_hierarchy, 0, 64, 0)
    with pytest.raises(ValueError, match=r"`level` must be in \[-3, 2\], got 3"):
        segment_lineage(small_hierarchy, 3, 0, 0)
