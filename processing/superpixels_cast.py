# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Superpixel back-ends of the CAST image processor.

Every function takes one image of shape (height, width, channels), the un-normalized view the official CAST data
loaders segment: uint8 pixels, or floats in [0, 1]. Each back-end reads it in its own type (SLIC in floats, SEEDS in
uint8), so 8-bit images never make a float round trip into SEEDS. The maps returned are int64, of shape (height,
width). Two back-ends follow the official recipes:

- `"slic"`: scikit-image SLIC (the `datasets_slic.py` alternative of the official code), with its retry rule.
- `"seeds"`: OpenCV-contrib SEEDS (what the released checkpoints were trained with). OpenCV is optional and is
  imported only when this back-end is used.

A third runs in torch, batched and on any device: `"torch_slic"` ([`torch_slic_superpixels`], a whole batch of
same-size images in one call). It is the back-end the model itself runs when it is given no superpixels, and has
one implementation, `tensor_slic_cast.py` in the model package; this package's `tensor_slic_cast.py` is a link to
that file, so that both packages import it as a sibling (and a saved folder carries it as remote code).

Hub-flat: imports only numpy, torch, the standard library and (inside `try` blocks) the optional back-ends.
"""

import numpy as np
import torch
from transformers.utils import logging

from .tensor_slic_cast import TORCH_SLIC_DEFAULT_ITERATIONS, torch_slic


__all__ = [
    "BATCHED_SUPERPIXEL_METHODS",
    "SUPERPIXEL_METHODS",
    "compute_superpixels",
    "relabel_sequential_ids",
    "seeds_grid",
    "seeds_segment_count",
    "seeds_superpixels",
    "slic_superpixels",
    "torch_slic_superpixels",
]

try:
    from skimage.segmentation import slic as _skimage_slic
except ImportError:  # reported with an install hint when SLIC is actually requested
    _skimage_slic = None

logger = logging.get_logger(__name__)

SUPERPIXEL_METHODS = ("slic", "seeds", "torch_slic")
# the back-ends that segment a batch of same-size images in one call
BATCHED_SUPERPIXEL_METHODS = ("torch_slic",)

# Official SLIC retry rule: while SLIC returns fewer than `n_segments // 2` segments, multiply the compactness by 3
# and run it again. The official loop is unbounded; the bound keeps nearly uniform images from looping for long.
SLIC_MIN_SEGMENTS_DIVISOR = 2
SLIC_COMPACTNESS_GROWTH = 3.0
SLIC_MAX_RETRIES = 5

# Official SEEDS parameters (MoCo-v3 and linear-probe data loaders).
SEEDS_NUM_LEVELS = 1
SEEDS_PRIOR = 2
SEEDS_HISTOGRAM_BINS = 15
SEEDS_DOUBLE_STEP = False
SEEDS_ITERATIONS = 20
# OpenCV's own floors (seeds.cpp, `SuperpixelSEEDSImpl::initialize`): fewer than 10 superpixels or 2 block levels
# are raised to these values before the block grid is laid out.
SEEDS_MIN_SUPERPIXELS = 10
SEEDS_MIN_BLOCK_LEVELS = 2

_MAX_UINT8 = 255
_RGB_CHANNELS = 3


def _unit_float(image: np.ndarray) -> np.ndarray:
    """Floats in [0, 1]: uint8 pixels divided by 255 (in float64), floats as given."""
    return image / _MAX_UINT8 if image.dtype == np.uint8 else image


def _eight_bit(image: np.ndarray) -> np.ndarray:
    """uint8 pixels: as given, or floats in [0, 1] rounded (not truncated, so that u / 255 gives u back)."""
    return image if image.dtype == np.uint8 else np.round(image * _MAX_UINT8).astype(np.uint8)


def relabel_sequential_ids(labels: np.ndarray) -> np.ndarray:
    """
    Renumber the ids of a label map to `0..K-1`, keeping their order.

    Args:
        labels (`np.ndarray` of shape `(height, width)`):
            Non-negative integer segment ids, possibly with gaps.

    Returns:
        `np.ndarray` of shape `(height, width)` and dtype int64: the same partition with ids `0..K-1`, where `K` is
        the number of distinct ids.
    """
    _, contiguous = np.unique(labels, return_inverse=True)
    return contiguous.reshape(labels.shape).astype(np.int64, copy=False)


def slic_superpixels(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """
    SLIC superpixels as in the official CAST code (scikit-image, Lab conversion for RGB, labels from 0).

    If SLIC returns fewer than `n_segments // 2` segments, the compactness is multiplied by 3 and SLIC is run again,
    at most `SLIC_MAX_RETRIES` times.

    Args:
        image (`np.ndarray` of shape `(height, width, channels)`):
            uint8 pixels or floats in [0, 1], read as floats in [0, 1]. Converted to Lab when it has 3 channels.
        n_segments (`int`):
            Approximate number of superpixels.
        compactness (`float`):
            Balance between color and space proximity; higher gives more square superpixels.

    Returns:
        `np.ndarray` of shape `(height, width)` and dtype int64 with the raw SLIC labels.
    """
    if _skimage_slic is None:
        raise ImportError(
            'superpixel_method="slic" needs scikit-image, which is not installed: pip install scikit-image'
        )
    image = _unit_float(image)
    minimum_segments = n_segments // SLIC_MIN_SEGMENTS_DIVISOR
    current_compactness = float(compactness)
    for attempt in range(SLIC_MAX_RETRIES + 1):
        labels = _skimage_slic(
            image,
            n_segments=n_segments,
            compactness=current_compactness,
            channel_axis=-1,
            convert2lab=image.shape[-1] == _RGB_CHANNELS,
            start_label=0,
        )
        num_segments = np.unique(labels).size
        if num_segments >= minimum_segments:
            break
        if attempt < SLIC_MAX_RETRIES:
            current_compactness *= SLIC_COMPACTNESS_GROWTH
    else:
        logger.warning_once(
            f"SLIC returned {num_segments} superpixels, fewer than n_segments // 2 = {minimum_segments}, even after "
            f"raising the compactness to {current_compactness}; keeping that result."
        )
    return labels.astype(np.int64, copy=False)


def _import_opencv():
    try:
        import cv2
    except ImportError as error:
        raise ImportError(
            'superpixel_method="seeds" needs OpenCV with its contrib modules: pip install "cast-transformers[seeds]" '
            "(package opencv-contrib-python-headless)"
        ) from error
    if not hasattr(cv2, "ximgproc"):
        raise ImportError(
            'superpixel_method="seeds" needs cv2.ximgproc from the OpenCV contrib modules, but the installed OpenCV '
            "lacks them: replace opencv-python(-headless) with opencv-contrib-python-headless, e.g. "
            'pip install "cast-transformers[seeds]"'
        )
    return cv2


def seeds_grid(height: int, width: int, n_segments: int) -> tuple[int, int] | None:
    """
    The `(rows, columns)` grid of superpixels OpenCV SEEDS lays out for an image and a requested count, or None when
    that request is outside what SEEDS can do.

    This follows OpenCV's arithmetic (float32, integer divisions): it asks for `n_h = int(sqrt(n * height / width))`
    rows and `n_w = n_h * width // height` columns, then halves its block size until the blocks of every level are at
    least one pixel, dropping block levels. With fewer than 2 levels left (too many superpixels for the size), with no
    row or column (a very elongated image) or with an empty top-level grid, OpenCV crashes the process, hangs, or
    returns labels that differ between identical runs; all those cases give None here.
    """
    count = np.float32(max(n_segments, SEEDS_MIN_SUPERPIXELS))
    rows = int(np.sqrt(count * np.float32(height) / np.float32(width)))
    columns = rows * width // height
    if rows < 1 or columns < 1:
        return None
    # the block size of the lowest level for SEEDS_MIN_BLOCK_LEVELS levels (each level doubles it)
    level_scale = np.float32(1 << (SEEDS_MIN_BLOCK_LEVELS - 1))
    block_width = np.float32(width) / np.float32(columns) / level_scale
    block_height = np.float32(height) / np.float32(rows) / level_scale
    if block_width < 1 or block_height < 1:
        return None
    top_rows = (height // int(np.ceil(block_height))) >> (SEEDS_MIN_BLOCK_LEVELS - 1)
    top_columns = (width // int(np.ceil(block_width))) >> (SEEDS_MIN_BLOCK_LEVELS - 1)
    if top_rows < 1 or top_columns < 1:
        return None
    return top_rows, top_columns


def seeds_segment_count(height: int, width: int, n_segments: int) -> int:
    """
    The superpixel count to request from OpenCV SEEDS for an image: `n_segments` when SEEDS can place that many,
    else the largest count below it that SEEDS can place (with a warning: a small image gets fewer superpixels, as
    with SLIC).

    Raises:
        ValueError: when SEEDS can place no count up to `n_segments` on the image (images of a few pixels, or so
            elongated that SEEDS lays out no column or row); the message gives the smallest count that works, if any.
    """
    if seeds_grid(height, width, n_segments) is not None:
        return n_segments
    largest = min(n_segments, _largest_useful_count(height, width))
    for count in range(largest, SEEDS_MIN_SUPERPIXELS - 1, -1):
        if seeds_grid(height, width, count) is not None:
            logger.warning_once(
                f"superpixel_method='seeds': {n_segments} superpixels do not fit a {height}x{width} image (OpenCV "
                f"SEEDS would crash); using n_segments={count} for images of that size"
            )
            return count
    larger = next(
        (count for count in range(n_segments + 1, _largest_useful_count(height, width) + 1)
         if seeds_grid(height, width, count) is not None),
        None,
    )
    hint = f"SEEDS needs n_segments >= {larger} for it, or " if larger is not None else ""
    raise ValueError(
        f"superpixel_method='seeds' cannot segment an image of height {height} and width {width} into about "
        f"{n_segments} superpixels (OpenCV SEEDS would crash): {hint}use superpixel_method='slic' or resize the image"
    )


def _largest_useful_count(height: int, width: int) -> int:
    """A count above which OpenCV lays out no grid: it needs blocks of at least one pixel on two levels, so at most
    `height // 2` rows and `width // 2` columns."""
    return (height // 2 + 1) * (width // 2 + 1)


def seeds_superpixels(image: np.ndarray, n_segments: int) -> np.ndarray:
    """
    SEEDS superpixels as in the official CAST data loaders (OpenCV-contrib, Lab input, 1 level, prior 2, 15 histogram
    bins, no double step, 20 iterations).

    Args:
        image (`np.ndarray` of shape `(height, width, channels)`):
            uint8 pixels, or floats in [0, 1] (rounded to uint8). Converted to Lab when it has 3 channels.
        n_segments (`int`):
            Requested number of superpixels; lowered to what SEEDS can place on the image (see
            [`seeds_segment_count`]).

    Returns:
        `np.ndarray` of shape `(height, width)` and dtype int64 with the raw SEEDS labels.

    Raises:
        ValueError: when SEEDS cannot segment an image of this size at all (checked before calling OpenCV, which
            would crash the process).
    """
    cv2 = _import_opencv()
    height, width, num_channels = image.shape
    n_segments = seeds_segment_count(height, width, n_segments)
    image_uint8 = np.ascontiguousarray(_eight_bit(image))
    if num_channels == _RGB_CHANNELS:
        image_uint8 = cv2.cvtColor(image_uint8, cv2.COLOR_RGB2Lab)
    seeds = cv2.ximgproc.createSuperpixelSEEDS(
        width,
        height,
        num_channels,
        n_segments,
        SEEDS_NUM_LEVELS,
        SEEDS_PRIOR,
        SEEDS_HISTOGRAM_BINS,
        SEEDS_DOUBLE_STEP,
    )
    seeds.iterate(image_uint8, SEEDS_ITERATIONS)
    return seeds.getLabels().astype(np.int64)


def torch_slic_superpixels(
    images: list[np.ndarray],
    n_segments: int,
    compactness: float,
    device: str | torch.device | None = None,
    num_iterations: int = TORCH_SLIC_DEFAULT_ITERATIONS,
) -> list[np.ndarray]:
    """
    `torch_slic` superpixels of several images: one batched call per distinct image size, on `device`.

    Args:
        images (`list[np.ndarray]`, each of shape `(height, width, channels)`):
            uint8 pixels or floats in [0, 1].
        n_segments (`int`):
            Approximate number of superpixels per image.
        compactness (`float`):
            SLIC compactness.
        device (`str` or `torch.device`, *optional*, defaults to the CPU):
            Where the superpixels are computed.
        num_iterations (`int`, *optional*, defaults to `TORCH_SLIC_DEFAULT_ITERATIONS`):
            SLIC iterations.

    Returns:
        `list[np.ndarray]`: one int64 map of shape `(height, width)` with ids `0..K-1` per image, in input order.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault(image.shape[:2], []).append(index)
    results: list[np.ndarray | None] = [None] * len(images)
    for indices in by_size.values():
        batch = torch.from_numpy(np.stack([_unit_float(images[index]) for index in indices]))
        batch = batch.to(device=device, dtype=torch.float32).permute(0, 3, 1, 2)
        labels = torch_slic(batch, n_segments, compactness=compactness, num_iterations=num_iterations).cpu().numpy()
        for index, label_map in zip(indices, labels):
            results[index] = label_map
    return results


def compute_superpixels(image: np.ndarray, method: str, n_segments: int, compactness: float) -> np.ndarray:
    """
    Segment one image into superpixels with contiguous ids.

    An image whose pixels all have the same value is one superpixel (id 0) whatever the method: its segments would
    otherwise be an arbitrary grid carrying no image content.

    Args:
        image (`np.ndarray` of shape `(height, width, channels)`):
            uint8 pixels or floats in [0, 1].
        method (`str`):
            One of `SUPERPIXEL_METHODS` (`"slic"`, `"seeds"` or `"torch_slic"`, here on the CPU).
        n_segments (`int`):
            Approximate number of superpixels.
        compactness (`float`):
            SLIC compactness (unused by SEEDS).

    Returns:
        `np.ndarray` of shape `(height, width)` and dtype int64 with ids `0..K-1`.
    """
    height, width, num_channels = image.shape
    if np.all(image == image.reshape(-1, num_channels)[0]):
        return np.zeros((height, width), dtype=np.int64)
    if method == "slic":
        labels = slic_superpixels(image, n_segments=n_segments, compactness=compactness)
    elif method == "seeds":
        labels = seeds_superpixels(image, n_segments=n_segments)
    elif method == "torch_slic":
        return torch_slic_superpixels([image], n_segments=n_segments, compactness=compactness)[0]
    else:
        raise ValueError(f"`superpixel_method` must be one of {SUPERPIXEL_METHODS}, got {method!r}")
    return relabel_sequential_ids(labels)
