# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Training-time augmentations for CAST in PIL and numpy (no torchvision, which has no CPU wheel here).

* [`ViewAugmentation`]: one MoCo-v3 view (random resized crop, color jitter, grayscale, Gaussian blur,
  solarization, horizontal flip); [`moco_v3_views`] gives the two asymmetric views of the official recipe.
* [`TwoViewTransform`]: a `datasets.Dataset.with_transform` callable that produces `pixel_values`, `superpixels`,
  `pixel_values_2` and `superpixels_2`. Superpixels are computed by [`CastImageProcessor`] on each augmented view
  (as the official pipeline does), so they run wherever the dataset is read: in the DataLoader workers when
  `dataloader_num_workers > 0`, never in the training loop.
* [`ClassificationTransform`]: random resized crop + flip for training, the processor's resize/crop for evaluation,
  with labels.

Every random choice comes from a `numpy.random.Generator`, so a view is a pure function of the image and the
generator. The transforms draw one seed per image from torch's global RNG: PyTorch seeds it differently in every
DataLoader worker, `transformers.set_seed` makes runs repeatable and `Trainer` checkpoints restore it.

The color operations use the same PIL primitives as torchvision's PIL backend (`ImageEnhance`, HSV hue shift,
`ImageFilter.GaussianBlur`, `ImageOps.solarize`), so the distributions match the official MoCo-v3 pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from transformers.utils import logging

from ..image_inputs_cast import rgb_uint8_image


__all__ = [
    "ClassificationTransform",
    "processor_outputs",
    "superpixels_on_device",
    "TwoViewTransform",
    "ViewAugmentation",
    "moco_v3_views",
    "random_resized_crop_box",
    "to_rgb_image",
]

logger = logging.get_logger(__name__)

_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before its center-crop fallback
_SOLARIZE_THRESHOLD = 128  # ImageOps.solarize's default, used by MoCo v3
_HUE_STEPS = 256  # the uint8 hue channel of PIL's HSV mode wraps around at 256
_SEED_BOUND = 2**62


def to_rgb_image(image) -> Image.Image:
    """
    A PIL image in RGB mode, decoded as the image processor decodes images (`image_inputs_cast.rgb_uint8_image`):
    from a PIL image of any mode (16-bit ones scaled to 8 bits) or an integer or boolean array or tensor `(height,
    width)` or `(height, width, channels)`. Float pixels are refused: their scale (`[0, 1]` or `[0, 255]`) is the
    image processor's `do_rescale` setting, which the augmentations, working on 8-bit pictures, do not have.
    """
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    return Image.fromarray(rgb_uint8_image(image, allow_float=False))


def random_resized_crop_box(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """(left, top, crop_width, crop_height) of a random crop covering `scale` of the area with aspect ratio (w/h) in
    `ratio` (log-uniform), with torchvision's sampling rule and its center-crop fallback."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(_CROP_ATTEMPTS):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_width = round(math.sqrt(target_area * aspect))
        crop_height = round(math.sqrt(target_area / aspect))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(rng.integers(0, height - crop_height + 1))
            left = int(rng.integers(0, width - crop_width + 1))
            return left, top, crop_width, crop_height
    # fallback: the largest centerd crop whose aspect ratio lies in `ratio`
    image_ratio = width / height
    if image_ratio < min(ratio):
        crop_width, crop_height = width, round(width / min(ratio))
    elif image_ratio > max(ratio):
        crop_width, crop_height = round(height * max(ratio)), height
    else:
        crop_width, crop_height = width, height
    return (width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height


def _adjust_hue(image: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue by `shift` of a full turn (in [-0.5, 0.5])."""
    hue, saturation, value = image.convert("HSV").split()
    hue_array = np.asarray(hue, dtype=np.uint8)
    # uint8 arithmetic wraps around, which is what a rotation on the hue circle needs
    shifted = (hue_array + np.uint8(int(shift * 255) % _HUE_STEPS)).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(shifted, "L"), saturation, value)).convert("RGB")


@dataclass
class ViewAugmentation:
    """One augmented view: random resized crop to `size`, color jitter (brightness, contrast, saturation, hue in
    a random order) with probability `jitter_probability`, grayscale, Gaussian blur, solarization and horizontal
    flip, each with its own probability. The defaults are MoCo v3's first view.

    Args:
        size (`tuple[int, int]`): output (height, width).
        scale (`tuple[float, float]`): range of the crop's share of the image area.
        ratio (`tuple[float, float]`): range of the crop's aspect ratio (width / height), sampled log-uniformly.
        jitter_probability (`float`): probability of the color jitter.
        brightness, contrast, saturation (`float`): jitter factors are drawn from `[max(0, 1 - x), 1 + x]`.
        hue (`float`): the hue shift is drawn from `[-hue, hue]` (fraction of a turn, at most 0.5).
        grayscale_probability, blur_probability, solarize_probability, flip_probability (`float`): probabilities.
        blur_sigma (`tuple[float, float]`): range of the Gaussian blur's standard deviation, in pixels.
    """

    size: tuple[int, int] = (224, 224)
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter_probability: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_probability: float = 0.2
    blur_probability: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_probability: float = 0.0
    flip_probability: float = 0.5

    def __post_init__(self):
        self.size = tuple(self.size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"`size` must be (height, width) with positive entries, got {self.size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"`scale` must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"`ratio` must satisfy 0 < min <= max, got {self.ratio}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"`hue` must be in [0, 0.5], got {self.hue}")
        for name in (
            "jitter_probability",
            "grayscale_probability",
            "blur_probability",
            "solarize_probability",
            "flip_probability",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)}")

    def _jitter(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        operations = []
        for enhancer, strength in (
            (ImageEnhance.Brightness, self.brightness),
            (ImageEnhance.Contrast, self.contrast),
            (ImageEnhance.Color, self.saturation),
        ):
            if strength > 0:
                factor = rng.uniform(max(0.0, 1 - strength), 1 + strength)
                operations.append(lambda img, enhancer=enhancer, factor=factor: enhancer(img).enhance(factor))
        if self.hue > 0:
            shift = rng.uniform(-self.hue, self.hue)
            operations.append(lambda img, shift=shift: _adjust_hue(img, shift))
        for index in rng.permutation(len(operations)):
            image = operations[index](image)
        return image

    def __call__(self, image, rng: np.random.Generator) -> Image.Image:
        """Augment `image` (see [`to_rgb_image`]) with the random draws of `rng`; returns an RGB PIL image."""
        image = to_rgb_image(image)
        left, top, crop_width, crop_height = random_resized_crop_box(*image.size, self.scale, self.ratio, rng)
        height, width = self.size
        box = (left, top, left + crop_width, top + crop_height)
        image = image.resize((width, height), Image.Resampling.BILINEAR, box=box)
        if rng.random() < self.jitter_probability:
            image = self._jitter(image, rng)
        if rng.random() < self.grayscale_probability:
            image = image.convert("L").convert("RGB")
        if rng.random() < self.blur_probability:
            image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(*self.blur_sigma)))
        if rng.random() < self.solarize_probability:
            image = ImageOps.solarize(image, threshold=_SOLARIZE_THRESHOLD)
        if rng.random() < self.flip_probability:
            image = ImageOps.mirror(image)
        return image


def moco_v3_views(
    size: int | Sequence[int] = 224, scale: tuple[float, float] = (0.08, 1.0)
) -> tuple[ViewAugmentation, ViewAugmentation]:
    """The two asymmetric MoCo-v3 views: blur always on the first and with probability 0.1 on the second, which is
    also solarized with probability 0.2; everything else is shared."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    first = ViewAugmentation(size=size, scale=scale, blur_probability=1.0, solarize_probability=0.0)
    second = ViewAugmentation(size=size, scale=scale, blur_probability=0.1, solarize_probability=0.2)
    return first, second


def _processor_output_size(image_processor) -> tuple[int, int]:
    """(height, width) that the processor produces: its crop size when it center-crops, else its fixed size."""
    size = image_processor.crop_size if image_processor.do_center_crop else image_processor.size
    height, width = _size_entry(size, "height"), _size_entry(size, "width")
    if height is None or width is None:
        raise ValueError(
            "the image processor must produce a fixed (height, width) (`size` or `crop_size` with height and width) "
            f"to size the augmented crops, got size={image_processor.size} crop_size={image_processor.crop_size}"
        )
    return height, width


def _size_entry(size, name: str):
    return size.get(name) if isinstance(size, dict) else getattr(size, name, None)


def _draw_generator() -> np.random.Generator:
    # one seed per image from torch's RNG: per-worker seeding, set_seed and Trainer's RNG checkpoints all apply
    return np.random.default_rng(int(torch.randint(_SEED_BOUND, ())))


def processor_outputs(image_processor, images: list, compute_superpixels: bool = True, **kwargs) -> dict:
    """The processor's outputs for `images` (`return_tensors="pt"`), or, with `compute_superpixels=False`, its
    pixel values (and labels) alone: the processor is then handed constant maps as user superpixels, which cost it
    nothing to segment, and they are left out, so that the model computes the superpixels on its own device."""
    if compute_superpixels:
        return dict(image_processor(images, return_tensors="pt", **kwargs))
    constant = [np.zeros(_image_size(image), dtype=np.int64) for image in images]
    outputs = dict(image_processor(images, superpixels=constant, return_tensors="pt", **kwargs))
    del outputs["superpixels"]
    return outputs


def superpixels_on_device(config, image_processor) -> None:
    """Set up `config` for `--superpixels_on_device`: the model computes the superpixels itself on the training
    device (the batched tensor SLIC), from `pixel_values` made by `image_processor`, so its un-normalization and
    superpixel count follow that processor. The DataLoader workers then only decode, augment and normalize."""
    if image_processor.superpixel_method != "torch_slic":
        logger.info(
            f"--superpixels_on_device: the model computes torch_slic superpixels on the training device instead of the "
            f"processor's {image_processor.superpixel_method!r} in the DataLoader workers"
        )
    config.superpixel_n_segments = image_processor.n_segments
    config.superpixel_compactness = float(image_processor.compactness)
    config.superpixel_image_mean = [float(value) for value in np.broadcast_to(image_processor.image_mean, (config.num_channels,))]
    config.superpixel_image_std = [float(value) for value in np.broadcast_to(image_processor.image_std, (config.num_channels,))]
    # pixels reach [0, 1] before normalization when the processor rescales; otherwise they stay 0-255
    config.superpixel_rescale_factor = 1.0 if image_processor.do_rescale else float(image_processor.rescale_factor)
    config.validate_superpixel_settings()


def _image_size(image) -> tuple[int, int]:
    """(height, width) of a PIL image (the transforms work on PIL images)."""
    width, height = image.size
    return height, width


class TwoViewTransform:
    """`datasets.Dataset.with_transform` callable producing two MoCo-v3 views of every image, with superpixels.

    Returns `pixel_values`, `superpixels`, `pixel_values_2` and `superpixels_2`: one tensor per example, which
    `default_data_collator` stacks into the inputs of [`CastForPreTraining`]. Use it with
    `TrainingArguments(remove_unused_columns=False)`, since the model has no `image` argument.

    Args:
        image_processor ([`CastImageProcessor`]): computes superpixels on each augmented view, then rescales and
            normalizes it; its `size` (or `crop_size`) sets the view size.
        views (`tuple[ViewAugmentation, ViewAugmentation]`, *optional*): defaults to [`moco_v3_views`] at the
            processor's size.
        image_column (`str`, *optional*, defaults to `"image"`): column holding the images.
        compute_superpixels (`bool`, *optional*, defaults to `True`): `False` leaves `superpixels` and
            `superpixels_2` out, for a model that computes them on the training device.
    """

    def __init__(
        self,
        image_processor,
        views: tuple[ViewAugmentation, ViewAugmentation] | None = None,
        image_column: str = "image",
        compute_superpixels: bool = True,
    ):
        self.image_processor = image_processor
        self.compute_superpixels = compute_superpixels
        self.views = views if views is not None else moco_v3_views(_processor_output_size(image_processor))
        if len(self.views) != 2:
            raise ValueError(f"`views` must hold two augmentations, got {len(self.views)}")
        self.image_column = image_column

    def _process(self, images: list[Image.Image]) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        # the views already have their final size: no resizing or cropping, only superpixels and normalization
        batch = processor_outputs(
            self.image_processor, images, self.compute_superpixels, do_resize=False, do_center_crop=False
        )
        superpixels = list(batch["superpixels"]) if self.compute_superpixels else None
        return list(batch["pixel_values"]), superpixels

    def __call__(self, examples: dict[str, list]) -> dict[str, list[torch.Tensor]]:
        if self.image_column not in examples:
            raise KeyError(f"image column {self.image_column!r} not found; columns: {sorted(examples)}")
        first_views, second_views = [], []
        for image in examples[self.image_column]:
            rng = _draw_generator()
            image = to_rgb_image(image)
            first_views.append(self.views[0](image, rng))
            second_views.append(self.views[1](image, rng))
        pixel_values, superpixels = self._process(first_views)
        pixel_values_2, superpixels_2 = self._process(second_views)
        output = {"pixel_values": pixel_values, "pixel_values_2": pixel_values_2}
        if self.compute_superpixels:
            output.update(superpixels=superpixels, superpixels_2=superpixels_2)
        return output


class ClassificationTransform:
    """`datasets.Dataset.with_transform` callable for image classification: `pixel_values`, `superpixels`, `labels`.

    Training (`train=True`): random resized crop to the processor's output size and horizontal flip (the official
    linear-probing augmentation), then superpixels and normalization. Evaluation: the processor's own resize and
    center crop (e.g. `size={"shortest_edge": 256}` with a 224 crop, as the official evaluation).

    Args:
        image_processor ([`CastImageProcessor`]): the processor of the model.
        train (`bool`): training or evaluation transform.
        scale (`tuple[float, float]`, *optional*, defaults to `(0.08, 1.0)`): crop area range when training.
        image_column, label_column (`str`): dataset columns; the label column may be absent (no `labels` then).
        compute_superpixels (`bool`, *optional*, defaults to `True`): `False` leaves `superpixels` out, for a model
            that computes them on the training device.
    """

    def __init__(
        self,
        image_processor,
        train: bool,
        scale: tuple[float, float] = (0.08, 1.0),
        image_column: str = "image",
        label_column: str = "label",
        compute_superpixels: bool = True,
    ):
        self.image_processor = image_processor
        self.compute_superpixels = compute_superpixels
        self.train = train
        self.image_column = image_column
        self.label_column = label_column
        self.augmentation = None
        if train:
            self.augmentation = ViewAugmentation(
                size=_processor_output_size(image_processor),
                scale=scale,
                jitter_probability=0.0,
                grayscale_probability=0.0,
                blur_probability=0.0,
                solarize_probability=0.0,
            )

    def __call__(self, examples: dict[str, list]) -> dict[str, list]:
        if self.image_column not in examples:
            raise KeyError(f"image column {self.image_column!r} not found; columns: {sorted(examples)}")
        images = [to_rgb_image(image) for image in examples[self.image_column]]
        if self.augmentation is not None:
            images = [self.augmentation(image, _draw_generator()) for image in images]
            batch = processor_outputs(
                self.image_processor, images, self.compute_superpixels, do_resize=False, do_center_crop=False
            )
        else:
            batch = processor_outputs(self.image_processor, images, self.compute_superpixels)
        output = {"pixel_values": list(batch["pixel_values"])}
        if self.compute_superpixels:
            output["superpixels"] = list(batch["superpixels"])
        if self.label_column in examples:
            output["labels"] = list(examples[self.label_column])
        return output
