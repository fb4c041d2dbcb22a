# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Superpixel back-ends of the CAST image processor.

Every function takes one image of shape (height, width, channels), the un-normalised view the official CAST data
loaders segment: uint8 pixels, or floats in [0, 1]. Each back-end reads it in its own type (SLIC in floats, SEEDS in
uint8), so 8-bit images never make a float round trip into SEEDS. The maps returned are int64, of shape (height,
width). Two back-ends follow the official recipes:

- `"slic"`: scikit-image SLIC (the `datasets_slic.py` alternative of the official code), with its retry rule.
- `"seeds"`: OpenCV-contrib SEEDS (what the released checkpoints were trained with). OpenCV is optional and is
  imported only when this back-end is used.

Hub-flat: imports only numpy, the standard library and (inside `try` blocks) the optional back-ends.
"""

import numpy as np
from transformers.utils import logging


try:
    from skimage.segmentation import slic as _skimage_slic
except ImportError:  # reported with an install hint when SLIC is actually requested
    _skimage_slic = None


__all__ = [
    "SUPERPIXEL_METHODS",
    "compute_superpixels",
    "relabel_sequential_ids",
    "seeds_superpixels",
    "slic_superpixels",
]

logger = logging.get_logger(__name__)

SUPERPIXEL_METHODS = ("slic", "seeds")

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
            Balance between colour and space proximity; higher gives more square superpixels.

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


def seeds_superpixels(image: np.ndarray, n_segments: int) -> np.ndarray:
    """
    SEEDS superpixels as in the official CAST data loaders (OpenCV-contrib, Lab input, 1 level, prior 2, 15 histogram
    bins, no double step, 20 iterations).

    Args:
        image (`np.ndarray` of shape `(height, width, channels)`):
            uint8 pixels, or floats in [0, 1] (rounded to uint8). Converted to Lab when it has 3 channels.
        n_segments (`int`):
            Requested number of superpixels.

    Returns:
        `np.ndarray` of shape `(height, width)` and dtype int64 with the raw SEEDS labels.
    """
    cv2 = _import_opencv()
    height, width, num_channels = image.shape
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


def compute_superpixels(image: np.ndarray, method: str, n_segments: int, compactness: float) -> np.ndarray:
    """
    Segment one image into superpixels with contiguous ids.

    An image whose pixels all have the same value is one superpixel (id 0) whatever the method: its segments would
    otherwise be an arbitrary grid carrying no image content.

    Args:
        image (`np.ndarray` of shape `(height, width, channels)`):
            uint8 pixels or floats in [0, 1].
        method (`str`):
            One of `SUPERPIXEL_METHODS` (`"slic"` or `"seeds"`).
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
    else:
        raise ValueError(f"`superpixel_method` must be one of {SUPERPIXEL_METHODS}, got {method!r}")
    return relabel_sequential_ids(labels)
