# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Input decoding for CAST: every image the package accepts becomes one pixel array, every integer map a checked
numpy array.

Images (PIL images of any mode, numpy arrays, torch tensors; channels first or last; bool, integer or float pixels)
are decoded by [`decode_image`] into a channels-first array: uint8 for boolean, 8-bit and 16-bit pixels (16-bit
values `v` become `round(v / 257)`), the float array itself for float pixels. The image processor segments that
array; pictures, augmentations and the command line take its 8-bit RGB view, [`rgb_uint8_image`]. Integer maps
(superpixels, segmentation maps, hierarchies, metric inputs) go through one family of helpers,
[`integer_array`], [`integer_maps`], [`check_maps_match_images`] and [`check_non_negative`], parametrized by the
name of the argument they came in.

Hub-flat: imports only numpy, PIL, torch and the public `transformers` API.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import urllib.request

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers.image_utils import ChannelDimension, is_valid_image
from transformers.utils import logging


__all__ = [
    "LABEL_PIL_MODES",
    "SIXTEEN_BIT_PIL_MODES",
    "check_integer_dtype",
    "check_maps_match_images",
    "check_non_negative",
    "decode_image",
    "flatten_images",
    "integer_array",
    "integer_maps",
    "load_image",
    "rgb_uint8_image",
    "split_batch",
]

logger = logging.get_logger(__name__)

MAX_UINT8 = 255
_MAX_UINT16 = 65535
_UINT16_TO_UINT8 = 257  # 65535 / 255: a 16-bit value v is the 8-bit value round(v / 257)
_RGB_CHANNELS = 3
# PIL modes holding 16-bit samples. Several Pillow versions open 16-bit PNGs as "I" (32-bit), so it counts as 16-bit.
SIXTEEN_BIT_PIL_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_FLOAT_PIL_MODES = ("F",)
# Channel counts that convert to RGB (gray, gray+alpha, RGB, RGBA), and those recognized without conversion when
# guessing where the channel axis is (2 would make too many (2, H, W)-like shapes ambiguous).
_CONVERTIBLE_CHANNELS = (1, 2, 3, 4)
_KNOWN_CHANNELS = (1, 3, 4)
# PIL modes that hold one integer class label per pixel ("P" gives the palette indices, not the colors).
LABEL_PIL_MODES = ("L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")
_NON_INTEGER_PIL_MODES = ("1", "F")
_SHAPES = {
    ChannelDimension.FIRST: "(height, width) or (channels, height, width)",
    ChannelDimension.LAST: "(height, width) or (height, width, channels)",
}


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------


def flatten_images(images, argument: str = "images") -> list:
    """Flat list of single images from an image, a 4-D batch array or a (nested) list of them."""
    if is_valid_image(images):
        return _split_batch(images, argument)
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"`{argument}` must contain at least one image, got an empty list")
        flat = []
        for item in images:
            for image in item if isinstance(item, (list, tuple)) else [item]:
                flat.extend(_split_batch(image, argument))
        return flat
    raise TypeError(
        f"`{argument}` must be PIL images, numpy arrays or torch tensors, or lists of them, got {type(images).__name__}"
    )


def decode_image(
    image,
    *,
    do_convert_rgb: bool = True,
    input_data_format: str | ChannelDimension | None = None,
    argument: str = "images",
    contiguous: bool = True,
) -> np.ndarray:
    """
    Decode one image into the array CAST works on.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            `(height, width)`, channels-first or channels-last. PIL images in the 16-bit modes (`"I;16*"`, `"I"`) are
            read as 16-bit, `"F"` as float; with `do_convert_rgb`, other modes (`"P"`, `"LA"`, `"RGBA"`, `"CMYK"`,
            ...) are converted to RGB by PIL, which drops transparency rather than compositing.
        do_convert_rgb (`bool`, *optional*, defaults to `True`):
            Whether to return 3 RGB channels: gray (and gray+alpha) is repeated, alpha is dropped.
        input_data_format (`str` or `ChannelDimension`, *optional*):
            Where the channels of arrays are; guessed from the shape when not given (first when both are plausible,
            like transformers). PIL images are always channels-last.
        argument (`str`, *optional*, defaults to `"images"`):
            Name of the argument the image came in, for error messages.
        contiguous (`bool`, *optional*, defaults to `True`):
            Whether to return a C-contiguous array. With `False`, channels-last pixels (PIL images included) come
            back as a channels-first view of themselves, without a copy: the image processor hands them to PIL for
            resizing, which reads them channels-last again, so the copy would cost two full-size passes for nothing.

    Returns:
        `np.ndarray` of shape `(channels, height, width)`: uint8 for boolean (0 or 255), 8-bit and 16-bit pixels
        (scaled to 8 bits), and for float pixels the finite float array as given (float16 becomes float32).
    """
    pixels, is_sixteen_bit, is_pil = _pixel_array(image, do_convert_rgb, argument)
    pixels = _eight_bit_or_float(pixels, is_sixteen_bit, argument)
    layout = ChannelDimension.LAST if is_pil else input_data_format
    pixels = _channels_first(pixels, layout, do_convert_rgb, argument)
    if contiguous:
        pixels = np.ascontiguousarray(pixels)
    if not do_convert_rgb:
        return pixels
    # gray and gray+alpha repeat their first channel; RGBA drops its last
    return np.repeat(pixels[:1], _RGB_CHANNELS, axis=0) if pixels.shape[0] < _RGB_CHANNELS else pixels[:_RGB_CHANNELS]


def load_image(image, timeout: float | None = None) -> Image.Image:
    """
    Open an image, upright as viewers show it, keeping its bit depth: transformers' `load_image` converts every image
    to 8-bit RGB, which saturates 16-bit files (every pixel of a 16-bit PNG becomes 255); [`decode_image`] scales
    them instead.

    Args:
        image (`str` or `PIL.Image.Image`):
            A path to a local file, an `http://` or `https://` URL, a base64 string (optionally with a
            `data:image/...;base64,` prefix) or a PIL image (kept in its mode).
        timeout (`float`, *optional*):
            Seconds to wait for an image fetched from the web.
    """
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)
    if not isinstance(image, str):
        raise TypeError(
            f"`image` must be a path, a URL, a base64 string or a PIL image, got {type(image).__name__}"
        )
    if image.startswith(("http://", "https://")):
        # the standard library's client: remote code may rely on nothing else, and it hands over the file's bytes
        with urllib.request.urlopen(image, timeout=timeout) as response:
            return _open_image_bytes(response.read(), image)
    if os.path.isfile(image):
        with Image.open(image) as opened:
            opened.load()  # truncated files fail here, not later
            return ImageOps.exif_transpose(opened)
    encoded = image.split(",", 1)[1] if image.startswith("data:image/") else image
    try:
        data = base64.b64decode(encoded)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"`image` must be an existing file, an http(s) URL or a base64-encoded image, got {image[:80]!r}"
        ) from None
    return _open_image_bytes(data, "the base64 string")


def _open_image_bytes(data: bytes, source: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened)
    except (OSError, SyntaxError) as error:  # PIL's errors for unreadable and truncated images
        raise ValueError(f"`image` from {source} is not a readable image: {error}") from None


def rgb_uint8_image(image, *, argument: str = "image", allow_float: bool = True) -> np.ndarray:
    """
    The 8-bit RGB view of one channels-last image (pictures, augmentations, the command line).

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            `(height, width)` or `(height, width, channels)` with 1 to 4 channels, decoded by [`decode_image`].
        argument (`str`, *optional*, defaults to `"image"`):
            Name of the argument the image came in, for error messages.
        allow_float (`bool`, *optional*, defaults to `True`):
            Whether float pixels are accepted; they must then lie in `[0, 1]` (no rescale factor applies here).

    Returns:
        `np.ndarray` of shape `(height, width, 3)` and dtype uint8.
    """
    pixels = decode_image(image, input_data_format=ChannelDimension.LAST, argument=argument)
    if pixels.dtype != np.uint8:
        if not allow_float:
            raise ValueError(
                f"`{argument}` must hold integer or boolean pixels (such as uint8), got dtype {pixels.dtype}"
            )
        low, high = pixels.min(), pixels.max()
        if low < 0 or high > 1:
            raise ValueError(f"float `{argument}` values must be finite and in [0, 1], got range [{low}, {high}]")
        pixels = np.round(pixels.astype(np.float64) * MAX_UINT8).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(pixels, 0, -1))


def split_batch(array, item_ndims: tuple[int, ...], requirement: str) -> list:
    """`[array]` when it has one of `item_ndims` dimensions, its items when it has one more (a batch); else a
    ValueError saying `requirement` and the shape received."""
    if array.ndim in item_ndims:
        return [array]
    if array.ndim == max(item_ndims) + 1:
        return list(array)
    raise ValueError(f"{requirement}, got shape {tuple(array.shape)}")


def _split_batch(image, argument: str) -> list:
    if isinstance(image, Image.Image):
        return [image]
    if not is_valid_image(image):
        raise TypeError(
            f"`{argument}` must be PIL images, numpy arrays or torch tensors, or lists of them, "
            f"got a list item of type {type(image).__name__}"
        )
    return split_batch(
        image,
        (2, 3),
        f"each entry of `{argument}` must have 2 (height, width) or 3 (with channels) dimensions, or 4 for a batch",
    )


def _pixel_array(image, do_convert_rgb: bool, argument: str) -> tuple[np.ndarray, bool, bool]:
    """Numpy pixels of one image, whether they are 16-bit, and whether they came from PIL (channels last)."""
    if isinstance(image, Image.Image):
        if image.mode in SIXTEEN_BIT_PIL_MODES:
            return np.asarray(image), True, True
        if image.mode not in _FLOAT_PIL_MODES and do_convert_rgb and image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image), False, True
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16
            image = image.float()
        return image.numpy(), False, False
    if isinstance(image, np.ndarray):
        return image, False, False
    raise TypeError(f"`{argument}` must be a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")


def _eight_bit_or_float(pixels: np.ndarray, is_sixteen_bit: bool, argument: str) -> np.ndarray:
    """uint8 pixels for boolean and integer images (16-bit ones scaled down), checked floats for float images."""
    if pixels.size == 0:
        raise ValueError(f"`{argument}` must have a non-zero height and width, got an image of shape {pixels.shape}")
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8) * MAX_UINT8
    if np.issubdtype(pixels.dtype, np.floating):
        if not np.isfinite(pixels).all():
            raise ValueError(f"`{argument}` must hold finite pixel values, got NaN or infinite values")
        return pixels.astype(np.float32) if pixels.dtype == np.float16 else pixels
    if not np.issubdtype(pixels.dtype, np.integer):
        raise TypeError(f"`{argument}` must hold integer, boolean or floating-point pixels, got dtype {pixels.dtype}")
    if pixels.dtype == np.uint8:
        return pixels
    minimum, maximum = int(pixels.min()), int(pixels.max())
    if minimum < 0:
        raise ValueError(f"`{argument}` must hold non-negative pixel values, got minimum {minimum}")
    if maximum > _MAX_UINT16:
        raise ValueError(
            f"integer `{argument}` must be 8- or 16-bit (values at most {_MAX_UINT16}), got maximum {maximum}"
        )
    # Other integer dtypes say nothing about the bit depth: values above 255 can only be 16-bit.
    if is_sixteen_bit or pixels.dtype == np.uint16 or maximum > MAX_UINT8:
        # round(v / 257) in integer arithmetic: a 16-bit image made from an 8-bit one (v = 257 * u) gives u back
        return ((pixels.astype(np.uint32) + _UINT16_TO_UINT8 // 2) // _UINT16_TO_UINT8).astype(np.uint8)
    return pixels.astype(np.uint8)


def _channels_first(
    pixels: np.ndarray, layout: str | ChannelDimension | None, do_convert_rgb: bool, argument: str
) -> np.ndarray:
    if pixels.ndim == 2:
        return pixels[None]
    layout = ChannelDimension(layout) if layout is not None else None
    if pixels.ndim != 3:
        shapes = _SHAPES[layout] if layout is not None else "(height, width) or 3 dimensions with channels"
        raise ValueError(f"`{argument}` must have shape {shapes}, got shape {pixels.shape}")
    if layout is None:
        known_channels = _CONVERTIBLE_CHANNELS if do_convert_rgb else _KNOWN_CHANNELS
        if pixels.shape[0] in known_channels:
            if pixels.shape[-1] in known_channels:
                # (k, W, 3)-like shapes fit both layouts (a 1x1 RGB pixel is (1, 1, 3)); like transformers, assume
                # channels first, but say so: a wrong guess gives a silently wrong image
                logger.warning_once(
                    f"`{argument}` of shape {pixels.shape} could have its channels first or last; assuming first, "
                    f"as transformers does. Pass `input_data_format` to say where the channels are"
                )
            layout = ChannelDimension.FIRST
        elif pixels.shape[-1] in known_channels:
            layout = ChannelDimension.LAST
        else:
            raise ValueError(
                f"`{argument}` must have {known_channels} channels first or last, got shape {pixels.shape}; "
                "pass `input_data_format` to say where the channels are"
            )
    num_channels = pixels.shape[0 if layout == ChannelDimension.FIRST else -1]
    if do_convert_rgb and num_channels not in _CONVERTIBLE_CHANNELS:
        raise ValueError(
            f"`{argument}` must have shape {_SHAPES[layout]} with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) "
            f"channels to be converted to RGB, got shape {pixels.shape}"
        )
    return np.moveaxis(pixels, -1, 0) if layout == ChannelDimension.LAST else pixels


# ---------------------------------------------------------------------------------------------------------------
# Integer maps
# ---------------------------------------------------------------------------------------------------------------


def check_integer_dtype(values, argument: str, what: str = "segment ids") -> None:
    """TypeError unless the numpy array or torch tensor `values` holds integers (booleans are no ids)."""
    if isinstance(values, torch.Tensor):
        is_integer = not (values.is_floating_point() or values.is_complex() or values.dtype == torch.bool)
    else:
        is_integer = np.issubdtype(values.dtype, np.integer)
    if not is_integer:
        raise TypeError(f"`{argument}` must hold integer {what}, got dtype {values.dtype}")


def check_non_negative(values, argument: str, what: str | None = None) -> None:
    """ValueError if the array or tensor `values` holds a negative value; `what` names the values (without it the
    message says that `argument` must "be non-negative")."""
    if values.reshape(-1).shape[0] == 0:
        return
    minimum = int(values.min())
    if minimum < 0:
        requirement = f"hold non-negative {what}" if what else "be non-negative"
        raise ValueError(f"`{argument}` must {requirement}, got minimum {minimum}")


def integer_array(
    values, argument: str, *, what: str = "segment ids", accept_pil: bool = False, in_list: bool = False
) -> np.ndarray:
    """
    One integer map (or stack of maps) as a numpy array, its dtype checked but kept.

    Args:
        values (`np.ndarray`, `torch.Tensor` or, with `accept_pil`, a `PIL.Image.Image` in a `LABEL_PIL_MODES` mode):
            The integers.
        argument (`str`):
            Name of the argument, for error messages.
        what (`str`, *optional*, defaults to `"segment ids"`):
            What the integers are, for error messages (`"class labels"`, ...).
        accept_pil (`bool`, *optional*, defaults to `False`):
            Whether label images are accepted.
        in_list (`bool`, *optional*, defaults to `False`):
            Whether `values` is an item of a list given as `argument` (for the wording of type errors).
    """
    if isinstance(values, torch.Tensor):
        check_integer_dtype(values, argument, what)
        return values.detach().cpu().numpy()
    if isinstance(values, np.ndarray):
        check_integer_dtype(values, argument, what)
        return values
    if accept_pil and isinstance(values, Image.Image):
        if values.mode in _NON_INTEGER_PIL_MODES:
            raise TypeError(f"`{argument}` must hold integer {what}, got a PIL image in mode {values.mode!r}")
        if values.mode not in LABEL_PIL_MODES:
            raise ValueError(
                f"`{argument}` PIL images must have one class label per pixel (mode in {LABEL_PIL_MODES}), "
                f"got mode {values.mode!r}"
            )
        return np.asarray(values)
    kinds = "a PIL image, a numpy array or a torch tensor" if accept_pil else "a numpy array or a torch tensor"
    prefix = f"each map in `{argument}`" if in_list else f"`{argument}`"
    raise TypeError(f"{prefix} must be {kinds}, got {type(values).__name__}")


def integer_maps(maps, argument: str, *, what: str = "segment ids", accept_pil: bool = False) -> list[np.ndarray]:
    """
    Flat list of integer maps from one 2-D map, a 3-D `(batch_size, height, width)` batch or a list of maps (numpy
    arrays, torch tensors and, with `accept_pil`, label images), each read by [`integer_array`]. The maps' own
    shapes are checked by [`check_maps_match_images`].
    """
    if isinstance(maps, (np.ndarray, torch.Tensor)):
        return split_batch(
            integer_array(maps, argument, what=what),
            (2,),
            f"`{argument}` must be a 2-D (height, width) map or a 3-D (batch_size, height, width) batch of maps",
        )
    if isinstance(maps, (list, tuple)):
        return [integer_array(item, argument, what=what, accept_pil=accept_pil, in_list=True) for item in maps]
    if accept_pil and isinstance(maps, Image.Image):
        return [integer_array(maps, argument, what=what, accept_pil=True)]
    kinds = "a PIL image, a numpy array, a torch tensor" if accept_pil else "a numpy array, a torch tensor"
    raise TypeError(f"`{argument}` must be {kinds} or a list of them, got {type(maps).__name__}")


def check_maps_match_images(
    maps: list[np.ndarray],
    image_sizes: list[tuple[int, int]],
    argument: str,
    *,
    what: str | None = None,
    maximum: int | None = None,
) -> list[np.ndarray]:
    """
    Check maps from [`integer_maps`] against the images they describe: one 2-D map per image at its `(height,
    width)`, non-negative (`what` names the values in that message) and at most `maximum` when given.
    """
    if len(maps) != len(image_sizes):
        raise ValueError(
            f"`{argument}` must hold one map per image, got {len(maps)} maps for {len(image_sizes)} images"
        )
    for index, (label_map, image_size) in enumerate(zip(maps, image_sizes, strict=True)):
        if label_map.ndim != 2:
            raise ValueError(
                f"`{argument}[{index}]` must be a 2-D (height, width) map, got shape {tuple(label_map.shape)}"
            )
        if tuple(label_map.shape) != tuple(image_size):
            raise ValueError(
                f"`{argument}[{index}]` has shape {tuple(label_map.shape)} but `images[{index}]` has (height, width) "
                f"{tuple(image_size)}; give each map at its image's original size"
            )
        check_non_negative(label_map, argument, what)
        if maximum is not None and int(label_map.max()) > maximum:
            raise ValueError(f"`{argument}` values must be at most {maximum}, got maximum {int(label_map.max())}")
    return maps
