# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.image_inputs_cast`: the one image decoder (every PIL mode, numpy and torch layouts and dtypes),
its 8-bit RGB view, the integer-map helpers, and that every consumer (processor, pictures, augmentations) reads an
image to the same pixels."""

import numpy as np
import pytest
import torch
from conftest import smooth_image
from PIL import Image

from processing import CastImageProcessor, draw_hierarchy
from processing.image_inputs_cast import (
    check_integer_dtype,
    check_maps_match_images,
    check_non_negative,
    decode_image,
    flatten_images,
    integer_array,
    integer_maps,
    rgb_uint8_image,
    split_batch,
)
from processing.training.augmentation import to_rgb_image


RGB = smooth_image(20, 28, seed=0)  # (height, width, 3) uint8
GRAY = RGB[..., 0]


def _channels_first(pixels: np.ndarray) -> np.ndarray:
    return np.moveaxis(pixels, -1, 0)


def _gray_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[None], 3, axis=0)


# ---------------------------------------------------------------------------------------------------------------
# decode_image
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "CMYK", "L", "LA", "1"])
def test_decode_pil_modes_convert_like_pil(mode):
    image = Image.fromarray(RGB).convert(mode)

    pixels = decode_image(image)

    assert pixels.dtype == np.uint8 and pixels.shape == (3, 20, 28)
    np.testing.assert_array_equal(pixels, _channels_first(np.asarray(image.convert("RGB"))))


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_decode_sixteen_bit_pil_images_scale_to_eight_bits(mode):
    # v = 257 * u + r with |r| < 128 rounds back to u
    sixteen_bit = GRAY.astype(np.int32) * 257 + np.random.default_rng(1).integers(-100, 100, GRAY.shape)
    image = Image.fromarray(sixteen_bit.clip(0, 65535).astype(np.uint16 if mode == "I;16" else np.int32))
    assert image.mode == mode

    np.testing.assert_array_equal(decode_image(image), _gray_rgb(GRAY))
    np.testing.assert_array_equal(decode_image(image, do_convert_rgb=False), GRAY[None])


def test_decode_float_pil_images_stay_float():
    image = Image.fromarray((GRAY / 255).astype(np.float32))
    assert image.mode == "F"

    pixels = decode_image(image)

    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, _gray_rgb((GRAY / 255).astype(np.float32)))


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(RGB, id="channels-last"),
        pytest.param(np.ascontiguousarray(_channels_first(RGB)), id="channels-first"),
        pytest.param(torch.from_numpy(RGB.copy()), id="torch-channels-last"),
        pytest.param(torch.from_numpy(np.ascontiguousarray(_channels_first(RGB))), id="torch-channels-first"),
        pytest.param(RGB.astype(np.uint16) * 257, id="uint16"),
        pytest.param(RGB.astype(np.int64), id="int64-eight-bit"),
        pytest.param(np.concatenate([RGB, np.full((20, 28, 1), 7, np.uint8)], axis=-1), id="rgba"),
    ],
)
def test_decode_arrays_and_tensors_give_the_same_pixels(image):
    np.testing.assert_array_equal(decode_image(image), _channels_first(RGB))


def test_decode_gray_bool_and_float_arrays():
    np.testing.assert_array_equal(decode_image(GRAY), _gray_rgb(GRAY))
    np.testing.assert_array_equal(decode_image(np.stack([GRAY, GRAY], axis=-1)), _gray_rgb(GRAY))  # gray + alpha
    np.testing.assert_array_equal(decode_image(GRAY > 100), _gray_rgb((GRAY > 100).astype(np.uint8) * 255))
    as_float = RGB / 255.0
    assert decode_image(as_float).dtype == np.float64  # floats are kept; the processor chooses its working type
    assert decode_image(torch.from_numpy(as_float).half()).dtype == np.float32
    # an integer image above 255 can only be 16-bit
    np.testing.assert_array_equal(decode_image(GRAY.astype(np.int32) * 257), _gray_rgb(GRAY))


def test_decode_without_rgb_conversion_keeps_the_channels():
    rgba = np.concatenate([RGB, np.full((20, 28, 1), 7, np.uint8)], axis=-1)

    pixels = decode_image(rgba, do_convert_rgb=False, input_data_format="channels_last")

    assert pixels.shape == (4, 20, 28)
    np.testing.assert_array_equal(pixels[3], np.full((20, 28), 7))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: decode_image([[0, 1]], argument="image"), TypeError, "`image` must be a PIL image, a numpy array"),
        (lambda: decode_image(np.zeros((0, 4, 3))), ValueError, "`images` must have a non-zero height and width"),
        (lambda: decode_image(np.full((4, 4), np.nan)), ValueError, "`images` must hold finite pixel values"),
        (lambda: decode_image(np.full((4, 4), -1, np.int16)), ValueError, "`images` must hold non-negative pixel"),
        (lambda: decode_image(np.full((4, 4), 70000)), ValueError, "integer `images` must be 8- or 16-bit"),
        (lambda: decode_image(np.zeros((4, 4), np.complex64)), TypeError, "`images` must hold integer, boolean or"),
        (lambda: decode_image(np.zeros((5, 6, 7), np.uint8)), ValueError, r"`images` must have \(1, 2, 3, 4\) chan"),
        (
            lambda: decode_image(np.zeros((4, 4, 6), np.uint8), input_data_format="channels_last", argument="photo"),
            ValueError,
            r"`photo` must have shape \(height, width\) or \(height, width, channels\) with 1 \(gray\)",
        ),
        (lambda: decode_image(np.zeros((2, 4, 4, 3), np.uint8)), ValueError, r"`images` must have shape"),
    ],
    ids=["type", "empty", "non-finite", "negative", "above-16-bit", "complex", "channels", "layout", "four-dims"],
)
def test_decode_rejects_bad_images_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_flatten_images_splits_batches_and_nested_lists():
    batch = np.stack([RGB, RGB])

    assert len(flatten_images(batch)) == 2
    assert len(flatten_images([RGB, [Image.fromarray(RGB), batch]])) == 4
    with pytest.raises(ValueError, match="`images` must contain at least one image"):
        flatten_images([])
    with pytest.raises(TypeError, match="got a list item of type str"):
        flatten_images([RGB, "photo.png"])


# ---------------------------------------------------------------------------------------------------------------
# rgb_uint8_image and the consumers
# ---------------------------------------------------------------------------------------------------------------


def test_rgb_uint8_image_rounds_unit_floats_and_refuses_floats_when_asked():
    np.testing.assert_array_equal(rgb_uint8_image(RGB / 255.0), RGB)
    np.testing.assert_array_equal(rgb_uint8_image((RGB / 255.0).astype(np.float32)), RGB)
    assert rgb_uint8_image(GRAY).shape == (20, 28, 3)
    with pytest.raises(ValueError, match=r"float `image` values must be finite and in \[0, 1\]"):
        rgb_uint8_image(RGB * 2.0)
    with pytest.raises(ValueError, match=r"`view` must hold integer or boolean pixels \(such as uint8\), got dtype"):
        rgb_uint8_image(RGB / 255.0, argument="view", allow_float=False)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(Image.fromarray(GRAY.astype(np.uint16) * 257), id="pil-16-bit"),
        pytest.param(GRAY.astype(np.uint16) * 257 + 5, id="array-16-bit"),
        pytest.param(Image.fromarray(RGB).convert("P"), id="pil-palette"),
        pytest.param(Image.fromarray(RGB).convert("CMYK"), id="pil-cmyk"),
        pytest.param(np.concatenate([RGB, np.zeros((20, 28, 1), np.uint8)], axis=-1), id="array-rgba"),
    ],
)
def test_processor_pictures_and_augmentations_read_the_same_pixels(image):
    pixels = rgb_uint8_image(image)
    processor = CastImageProcessor(size={"height": 16, "width": 16}, n_segments=8)

    processed = processor(image, return_tensors="np")

    reference = processor(pixels, input_data_format="channels_last", return_tensors="np")
    np.testing.assert_array_equal(processed["pixel_values"], reference["pixel_values"])
    np.testing.assert_array_equal(processed["superpixels"], reference["superpixels"])
    picture = np.asarray(draw_hierarchy(image, np.zeros((20, 28), dtype=np.int64), gap=0))
    np.testing.assert_array_equal(picture[:, :28], pixels)
    np.testing.assert_array_equal(np.asarray(to_rgb_image(image)), pixels)


# ---------------------------------------------------------------------------------------------------------------
# Integer maps
# ---------------------------------------------------------------------------------------------------------------


def test_integer_maps_read_maps_batches_lists_and_label_images():
    label_map = np.arange(12).reshape(3, 4) % 5

    for maps, count in ((label_map, 1), (np.stack([label_map] * 3), 3), ([torch.from_numpy(label_map)] * 2, 2)):
        read = integer_maps(maps, "maps")
        assert len(read) == count and all(isinstance(item, np.ndarray) for item in read)
        np.testing.assert_array_equal(read[-1], label_map)
    (from_pil,) = integer_maps(Image.fromarray(label_map.astype(np.uint8)), "masks", accept_pil=True)
    np.testing.assert_array_equal(from_pil, label_map)


@pytest.mark.parametrize("argument", ["superpixels", "segmentation_maps", "hierarchy"])
def test_integer_map_errors_name_the_argument(argument):
    with pytest.raises(TypeError, match=rf"`{argument}` must hold integer class labels, got dtype float64"):
        integer_array(np.zeros((2, 2)), argument, what="class labels")
    with pytest.raises(TypeError, match=rf"`{argument}` must hold integer segment ids, got dtype torch.bool"):
        check_integer_dtype(torch.zeros(2, 2, dtype=torch.bool), argument)
    with pytest.raises(TypeError, match=rf"each map in `{argument}` must be a numpy array or a torch tensor"):
        integer_maps([[0, 1]], argument)
    with pytest.raises(ValueError, match=rf"`{argument}` must hold non-negative segment ids, got minimum -2"):
        check_non_negative(torch.tensor([0, -2]), argument, "segment ids")
    with pytest.raises(ValueError, match=rf"`{argument}` must be non-negative, got minimum -1"):
        check_non_negative(np.array([-1]), argument)
    with pytest.raises(ValueError, match=rf"`{argument}\[1\]` has shape \(3, 3\) but `images\[1\]` has"):
        check_maps_match_images([np.zeros((2, 2), int), np.zeros((3, 3), int)], [(2, 2), (2, 2)], argument)
    with pytest.raises(ValueError, match=rf"`{argument}` values must be at most 3, got maximum 4"):
        check_maps_match_images([np.full((2, 2), 4)], [(2, 2)], argument, maximum=3)


def test_split_batch_returns_items_or_says_what_it_expected():
    assert len(split_batch(np.zeros((2, 2)), (2,), "unused")) == 1
    assert len(split_batch(np.zeros((5, 2, 2)), (2,), "unused")) == 5
    with pytest.raises(ValueError, match=r"a map or a batch, got shape \(1, 1, 2, 2\)"):
        split_batch(np.zeros((1, 1, 2, 2)), (2,), "a map or a batch")


def test_decode_image_warns_when_the_channel_axis_is_ambiguous(caplog):
    """Issue 17 item 9: a (k, W, 3) array with k <= 4 (here one row of RGB pixels) was silently read channels-first;
    it still is, as in transformers, but with a warning, and `input_data_format` decides without one."""
    row = smooth_image(8, 5, seed=1)[:1]  # (1, 5, 3): one row of 5 RGB pixels, or 1 channel of 5 x 3
    with caplog.at_level("WARNING"):
        assert decode_image(row).shape == (3, 5, 3)  # channels first: the gray channel repeated
    assert "of shape (1, 5, 3) could have its channels first or last; assuming first" in caplog.text
    assert "input_data_format" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(
            decode_image(row, input_data_format="channels_last"), np.moveaxis(row, -1, 0)
        )
        decode_image(RGB)  # (20, 28, 3) is not ambiguous
    assert caplog.text == ""


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_decode_image_without_copy_gives_the_same_pixels(mode):
    image = Image.fromarray(RGB).convert(mode) if mode != "I;16" else Image.fromarray(GRAY.astype(np.uint16) * 257)

    view = decode_image(image, contiguous=False)
    copy = decode_image(image)

    assert copy.flags.c_contiguous
    np.testing.assert_array_equal(view, copy)
    assert view.dtype == copy.dtype == np.uint8


def test_decode_image_without_copy_is_a_view_of_channels_last_pixels():
    view = decode_image(RGB, contiguous=False, input_data_format="channels_last")

    assert np.shares_memory(view, RGB) and view.shape == (3, *RGB.shape[:2])
    np.testing.assert_array_equal(view, _channels_first(RGB))
