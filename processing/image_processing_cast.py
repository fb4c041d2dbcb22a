# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Image processor for CAST: resizing, normalization and the superpixels CAST uses as its tokens.

CAST (Ke, Mo, Yu, ICLR 2024) pools its stem features per superpixel, so every image needs a superpixel map next to its
pixels. Pipelines cannot pass extra model inputs, hence the maps are computed here, on the resized image, and returned
as `superpixels` beside `pixel_values`.

Hub-flat: imports only numpy, PIL, torch, the public `transformers` API and its siblings (`image_inputs_cast` decodes
the inputs, `superpixels_cast` segments them, `post_processing_cast` reads the outputs).
"""

import numbers

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_outputs import SemanticSegmentationPostProcessorOutput
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ChannelDimension,
    ImageInput,
    PILImageResampling,
    SizeDict,
)
from transformers.processing_utils import ImagesKwargs, Unpack
from transformers.utils import TensorType, logging

from .image_inputs_cast import MAX_UINT8, check_maps_match_images, decode_image, flatten_images, integer_maps
from .post_processing_cast import (
    check_level_type,
    check_outputs,
    class_maps,
    hierarchy_label_maps,
    level_segments,
    segmentation_logits,
)
from .superpixels_cast import (
    BATCHED_SUPERPIXEL_METHODS,
    SUPERPIXEL_METHODS,
    compute_superpixels,
    relabel_sequential_ids,
    torch_slic_superpixels,
)


__all__ = ["CastImageProcessor", "CastImageProcessorKwargs"]

logger = logging.get_logger(__name__)

# Label reduction (`do_reduce_labels`) maps the background class 0 to the ignore label, SegFormer's convention; the
# ignore label is also the default `CastConfig.semantic_loss_ignore_index`.
_IGNORE_LABEL = 255
# Label maps are resized by PIL in its 32-bit integer mode.
_MAX_LABEL = np.iinfo(np.int32).max
# The settings this processor checks itself (transformers checks the generic ones): once when they are set, and
# once per call, merged with the call's overrides.
_CHECKED_SETTINGS = (
    "n_segments",
    "compactness",
    "superpixel_method",
    "patch_size",
    "segmentation_level",
    "do_reduce_labels",
    "do_pad",
    "do_resize",
    "size",
    "do_center_crop",
    "crop_size",
)


class CastImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    n_segments (`int`, *optional*, defaults to `self.n_segments`):
        Approximate number of superpixels per image. The actual count varies per image.
    compactness (`float`, *optional*, defaults to `self.compactness`):
        SLIC compactness: higher values give more regular superpixels. Unused by SEEDS.
    superpixel_method (`str`, *optional*, defaults to `self.superpixel_method`):
        `"slic"` (scikit-image), `"seeds"` (OpenCV-contrib, `pip install "cast-transformers[seeds]"`) or
        `"torch_slic"` (batched SLIC in torch, the model's own back-end).
    device (`str` or `torch.device`, *optional*):
        Where `"torch_slic"` computes the superpixels (the CPU by default); the outputs are returned as usual.
    patch_size (`int`, *optional*, defaults to `self.patch_size`):
        Stride of the model's convolutional stem. Output heights and widths must be multiples of it.
    superpixels (`np.ndarray`, `torch.Tensor` or a list of them, *optional*):
        Precomputed superpixel maps to use instead of computing them: one 2-D integer map per image, at that image's
        original size. They are resized with nearest-neighbor sampling and renumbered to `0..K-1`.
    segmentation_level (`int`, *optional*, defaults to `self.segmentation_level`):
        Level of the hierarchy whose segments panoptic/instance post-processing (and so
        `pipeline("image-segmentation")`) returns: 0 is the finest, negative values count from the coarsest (-1).
        Not used by preprocessing.
    do_reduce_labels (`bool`, *optional*, defaults to `self.do_reduce_labels`):
        Whether to reduce the labels of `segmentation_maps` by one, making the background class 0 the ignore label
        255 (for datasets such as ADE20k whose class 0 means "unlabeled").
    """

    n_segments: int
    compactness: float
    superpixel_method: str
    patch_size: int
    superpixels: np.ndarray | torch.Tensor | list | tuple | None
    segmentation_level: int
    do_reduce_labels: bool


class CastImageProcessor(PilBackend):
    r"""
    Constructs a CAST image processor. Each image is converted to RGB, resized, segmented into superpixels (on the
    resized, un-normalized image) and then rescaled and normalized.

    The output holds `pixel_values` (float32, `(batch_size, 3, height, width)`) and `superpixels` (int64,
    `(batch_size, height, width)`, ids `0..K-1` per image, contiguous). Both are deterministic.

    Input images may be PIL images, numpy arrays or torch tensors, channels-first or channels-last, single or in
    (nested) lists, of different sizes when they are resized. Grayscale images are repeated to 3 channels, the alpha
    channel of RGBA or gray+alpha images is dropped, and 16-bit images (`uint16` arrays or tensors, PIL modes `"I;16"`
    and `"I"`) are scaled to 8 bits (`round(value / 257)`). Integer arrays of another dtype are read as 8-bit when all
    values are at most 255 and as 16-bit otherwise. Float images must be finite and are read in the units that
    `do_rescale` and `rescale_factor` imply, as everywhere in `transformers`: in [0, 255] with the defaults (fractional
    values allowed), in [0, 1] with `do_rescale=False`. A float copy of an 8-bit image gives exactly the 8-bit
    image's outputs; other float images are resized in float precision, never rounded to 8 bits.

    An image of a single color is one superpixel. With `do_convert_rgb=False`, images keep their channels and the
    superpixels are computed on all of them (converted to Lab only when there are 3).

    Args:
        do_convert_rgb (`bool`, *optional*, defaults to `True`):
            Whether to convert images to 3-channel RGB (see above).
        do_resize (`bool`, *optional*, defaults to `True`):
            Whether to resize images to `size`. Without resizing all images must have the same size.
        size (`dict[str, int]`, *optional*, defaults to `{"height": 224, "width": 224}`):
            Output size. Height and width must be multiples of `patch_size`.
        resample (`PILImageResampling`, *optional*, defaults to `PILImageResampling.BILINEAR`):
            Resampling filter for the images. Precomputed `superpixels` are always resized with `NEAREST`.
        do_center_crop (`bool`, *optional*, defaults to `False`):
            Whether to center-crop to `crop_size` after resizing (e.g. `size={"shortest_edge": 256}` with a 224 crop).
        crop_size (`dict[str, int]`, *optional*):
            Size of the center crop; height and width must be multiples of `patch_size`.
        do_rescale (`bool`, *optional*, defaults to `True`):
            Whether to multiply pixel values by `rescale_factor`.
        rescale_factor (`float`, *optional*, defaults to `1/255`):
            Scale factor of the rescaling.
        do_normalize (`bool`, *optional*, defaults to `True`):
            Whether to normalize with `image_mean` and `image_std`.
        image_mean (`float` or `list[float]`, *optional*, defaults to `IMAGENET_DEFAULT_MEAN`):
            Per-channel mean used for normalization.
        image_std (`float` or `list[float]`, *optional*, defaults to `IMAGENET_DEFAULT_STD`):
            Per-channel standard deviation used for normalization.
        n_segments (`int`, *optional*, defaults to 196):
            Approximate number of superpixels per image (the official setting: 196 at 224x224). SEEDS lowers it,
            with a warning, to what it can place on a small image, and refuses (`ValueError`) images it cannot
            segment at all (a few pixels, or extremely elongated), which would crash OpenCV.
        compactness (`float`, *optional*, defaults to 10.0):
            SLIC compactness. While SLIC returns fewer than `n_segments // 2` superpixels it is multiplied by 3 and
            SLIC re-run (the official rule), at most 5 times.
        superpixel_method (`str`, *optional*, defaults to `"slic"`):
            `"slic"` (scikit-image), `"seeds"` (OpenCV-contrib SEEDS with the official parameters; the released
            checkpoints were trained with SEEDS) or `"torch_slic"` (SLIC in torch: all images of a call that share
            a size in one batched call, on the call's `device`; the back-end a CAST model runs itself when it is
            given no superpixels).
        patch_size (`int`, *optional*, defaults to 8):
            Stride of the CAST convolutional stem; output heights and widths must be multiples of it.
        segmentation_level (`int`, *optional*, defaults to -1):
            Level of the model's hierarchy returned by [`~CastImageProcessor.post_process_panoptic_segmentation`] and
            [`~CastImageProcessor.post_process_instance_segmentation`], hence by `pipeline("image-segmentation")`: 0 is
            the finest level, -1 the coarsest. Those methods also take it per call as `level`.
        do_reduce_labels (`bool`, *optional*, defaults to `False`):
            Whether to reduce the class labels of `segmentation_maps` by one: 0 (background in datasets such as
            ADE20k) becomes the ignore label 255, every other label `l` becomes `l - 1`, and 255 stays 255.

    Example:

    ```python
    >>> import numpy as np
    >>> from processing import CastImageProcessor

    >>> processor = CastImageProcessor(size={"height": 64, "width": 64}, n_segments=16)
    >>> image = np.random.default_rng(0).integers(0, 256, size=(48, 80, 3), dtype=np.uint8)
    >>> inputs = processor(image, return_tensors="pt")
    >>> inputs["pixel_values"].shape, inputs["superpixels"].shape
    (torch.Size([1, 3, 64, 64]), torch.Size([1, 64, 64]))
    ```
    """

    valid_kwargs = CastImageProcessorKwargs
    model_input_names = ["pixel_values", "superpixels"]

    do_convert_rgb = True
    do_resize = True
    size = {"height": 224, "width": 224}
    resample = PILImageResampling.BILINEAR
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    n_segments = 196
    compactness = 10.0
    superpixel_method = "slic"
    patch_size = 8
    segmentation_level = -1
    do_reduce_labels = False

    def __init__(self, **kwargs: Unpack[CastImageProcessorKwargs]) -> None:
        if kwargs.get("superpixels") is not None:
            raise ValueError(
                "`superpixels` are per-image inputs: pass them when calling the processor, not to its constructor"
            )
        super().__init__(**kwargs)
        for name, value in _checked_settings(self._settings()).items():
            setattr(self, name, value)

    def preprocess(
        self,
        images: ImageInput,
        segmentation_maps: ImageInput | None = None,
        *,
        superpixels: np.ndarray | torch.Tensor | list | tuple | None = None,
        **kwargs: Unpack[CastImageProcessorKwargs],
    ) -> BatchFeature:
        r"""
        Preprocess an image or a batch of images into `pixel_values` and `superpixels` (and `labels` when
        `segmentation_maps` are given).

        Args:
            images (`ImageInput`):
                A PIL image, numpy array or torch tensor, or a (nested) list of them. Arrays may be `(height, width)`,
                channels-first or channels-last; 4-D arrays are batches.
            superpixels (`np.ndarray`, `torch.Tensor` or a list of them, *optional*, keyword-only):
                Precomputed superpixel maps used instead of computing them: one 2-D map of non-negative integer ids per
                image, at the image's original `(height, width)` (a 3-D array is a batch of maps). Resized with
                nearest-neighbor sampling and renumbered to `0..K-1`. Keyword-only, so that `processor(images, maps)`
                reads label maps as in transformers' segmentation processors.
            segmentation_maps (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them, *optional*):
                Per-pixel class labels for training or evaluation: one 2-D map of non-negative integers per image, at
                the image's original `(height, width)` (a 3-D array is a batch of maps; PIL images in mode `"L"`,
                `"P"` (palette indices), `"I"` or `"I;16"`). They follow the image's geometry (resize with
                nearest-neighbor sampling, then the center crop if enabled), are reduced when `do_reduce_labels`,
                and are returned as `labels`. The superpixels do not depend on them.
            kwargs ([`CastImageProcessorKwargs`], *optional*):
                Overrides of the processor's attributes for this call, and `return_tensors` (`"pt"` or `"np"`; by
                default lists of numpy arrays are returned).

        Returns:
            [`BatchFeature`] with `pixel_values` (float32, `(batch_size, channels, height, width)`), `superpixels`
            (int64, `(batch_size, height, width)`) and, with `segmentation_maps`, `labels` (int64,
            `(batch_size, height, width)`).
        """
        # The maps are read (types and dtypes) here and checked against the images once those are decoded.
        if superpixels is not None:
            superpixels = integer_maps(superpixels, "superpixels", what="segment ids")
        if segmentation_maps is not None:
            segmentation_maps = integer_maps(
                segmentation_maps, "segmentation_maps", what="class labels", accept_pil=True
            )
        kwargs = self._checked_call_settings(kwargs)
        # `image_like_kwargs` skips transformers' type validation, which knows only the declared processor arguments
        return super().preprocess(
            images, superpixels=superpixels, image_like_kwargs={"segmentation_maps": segmentation_maps}, **kwargs
        )

    def _settings(self) -> dict:
        return {name: getattr(self, name, None) for name in _CHECKED_SETTINGS}

    def _checked_call_settings(self, kwargs: dict) -> dict:
        """The call's arguments with its overrides of the checked settings coerced, after checking them merged with
        the processor's own settings (an override of `patch_size` must fit the processor's `size`, ...)."""
        overrides = {name: kwargs[name] for name in _CHECKED_SETTINGS if kwargs.get(name) is not None}
        if "size" in overrides or "crop_size" in overrides:
            # sizes as transformers will read them (dicts, ints and pairs become `SizeDict`s)
            standardized = self._standardize_kwargs(
                size=overrides.get("size"),
                crop_size=overrides.get("crop_size"),
                default_to_square=kwargs.get("default_to_square", self.default_to_square),
            )
            overrides.update({name: standardized[name] for name in ("size", "crop_size") if name in overrides})
        checked = _checked_settings({**self._settings(), **overrides})
        return {**kwargs, **{name: checked[name] for name in overrides}}

    def _prepare_images_structure(self, images: ImageInput, expected_ndims: int = 3) -> list:
        # Unlike the default, also accept 2-D (grayscale) arrays and report bad inputs without printing them.
        return flatten_images(self.fetch_images(images))

    def process_image(
        self,
        image: ImageInput,
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        **kwargs,
    ) -> np.ndarray:
        """
        Convert one input image to a channels-first numpy array (see `image_inputs_cast.decode_image`): uint8 for
        boolean, 8- and 16-bit images, float32 for float images, 3 RGB channels when `do_convert_rgb`.
        """
        # a channels-first view of channels-last pixels: resizing hands them to PIL channels-last again
        pixels = decode_image(
            image, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format, contiguous=False
        )
        return pixels if pixels.dtype == np.uint8 else pixels.astype(np.float32, copy=False)

    def _preprocess_image_like_inputs(
        self,
        images: ImageInput,
        superpixels: np.ndarray | torch.Tensor | list | tuple | None = None,
        segmentation_maps: ImageInput | None = None,
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        images = self._prepare_image_like_inputs(
            images, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format
        )
        image_sizes = [image.shape[-2:] for image in images]
        if superpixels is not None:
            # "be non-negative": the argument's name already says that it holds segment ids
            superpixels = check_maps_match_images(superpixels, image_sizes, "superpixels")
        if segmentation_maps is not None:
            segmentation_maps = check_maps_match_images(
                segmentation_maps, image_sizes, "segmentation_maps", what="class labels", maximum=_MAX_LABEL
            )
        return self._preprocess(
            images,
            superpixels=superpixels,
            segmentation_maps=segmentation_maps,
            return_tensors=return_tensors,
            **kwargs,
        )

    def _preprocess(
        self,
        images: list[np.ndarray],
        superpixels: list[np.ndarray] | None,
        segmentation_maps: list[np.ndarray] | None,
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | None,
        do_center_crop: bool,
        crop_size: SizeDict | None,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | tuple[float, ...],
        image_std: float | tuple[float, ...],
        n_segments: int,
        compactness: float,
        superpixel_method: str,
        patch_size: int,
        do_reduce_labels: bool = False,
        return_tensors: str | TensorType | None = None,
        device: str | torch.device | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Resize, crop, segment, rescale and normalize channels-first images (superpixels: validated user maps);
        bring validated segmentation maps to the same output geometry."""
        # batched back-ends segment the whole call at once, after the loop has resized every image
        batched = superpixels is None and superpixel_method in BATCHED_SUPERPIXEL_METHODS
        superpixel_views = []
        if not do_resize and not do_center_crop:
            sizes = _distinct_sizes(images)
            if len(sizes) > 1:
                raise ValueError(
                    "with `do_resize=False`, `images` must all have the same (height, width) to be stacked, "
                    f"got {sizes}"
                )
        resizing_argument = "crop_size" if do_center_crop else ("size" if do_resize else "images")
        # a fixed output size was checked with the settings; others depend on the image and are checked per image
        size_is_fixed = _fixed_output_size(do_resize, size, do_center_crop, crop_size) is not None
        pixel_values, superpixel_outputs, label_outputs = [], [], []
        for index, image in enumerate(images):
            if do_resize:
                image = self.resize(image, size=size, resample=resample)
            resized_size = tuple(image.shape[-2:])
            if do_center_crop:
                image = self.center_crop(image, crop_size)
            if not size_is_fixed:
                _check_multiple_of_patch_size(tuple(image.shape[-2:]), patch_size, resizing_argument)

            if batched:
                superpixel_views.append(_superpixel_view(image, do_rescale, rescale_factor))
                labels = None
            elif superpixels is None:
                superpixel_view = _superpixel_view(image, do_rescale, rescale_factor)
                labels = compute_superpixels(superpixel_view, superpixel_method, n_segments, compactness)
            else:
                labels = self._fit_superpixel_map(superpixels[index], resized_size, do_center_crop, crop_size)
            if segmentation_maps is not None:
                label_outputs.append(
                    self._fit_segmentation_map(
                        segmentation_maps[index], resized_size, do_center_crop, crop_size, do_reduce_labels
                    )
                )
            superpixel_outputs.append(labels)
            pixel_values.append(
                self._pixel_values(image, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            )
        # `size={"shortest_edge": ...}` keeps aspect ratios, so outputs may still differ in size.
        sizes = _distinct_sizes(pixel_values)
        if len(sizes) > 1:
            raise ValueError(
                f"`{resizing_argument}` must give every image the same output (height, width) so that they can be "
                f"stacked, got {sizes}; give a fixed height and width or a center crop"
            )
        if batched:
            superpixel_outputs = torch_slic_superpixels(superpixel_views, n_segments, compactness, device=device)
        data = {"pixel_values": pixel_values, "superpixels": superpixel_outputs}
        if segmentation_maps is not None:
            data["labels"] = label_outputs
        return BatchFeature(data=data, tensor_type=return_tensors)

    def resize(
        self, image: np.ndarray, size: SizeDict, resample: PILImageResampling | None = None, **kwargs
    ) -> np.ndarray:
        """Resize a channels-first image. Integer images and float images that are exact 8-bit values (`v` or
        `v / 255`) take transformers' PIL path, so a float copy of an 8-bit image gives exactly its results. Other
        float images would be quantized to 8 bits there (in [0, 1]) or refused (fractional values above 1): they are
        resized channel by channel in float precision (PIL mode "F", the same filter) instead."""
        if not np.issubdtype(image.dtype, np.floating) or _is_exact_eight_bit(image):
            return super().resize(image, size=size, resample=resample, **kwargs)
        # the output size as transformers computes it for this size dict, read off an 8-bit stand-in
        stand_in = np.zeros((1, *image.shape[-2:]), dtype=np.uint8)
        height, width = super().resize(stand_in, size=size, resample=resample, **kwargs).shape[-2:]
        resample = PILImageResampling.BILINEAR if resample is None else resample
        channels = [
            np.asarray(Image.fromarray(channel.astype(np.float32), mode="F").resize((width, height), resample=resample))
            for channel in image
        ]
        return np.stack(channels)

    def _pixel_values(
        self,
        image: np.ndarray,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | tuple[float, ...],
        image_std: float | tuple[float, ...],
    ) -> np.ndarray:
        """The model's float32 input from one resized and cropped image."""
        if do_rescale:
            if np.issubdtype(image.dtype, np.floating) and image.size and image.max() <= 1:
                logger.warning_once(
                    "It looks like you are trying to rescale already rescaled images (float pixels in [0, 1]). "
                    "If that is the case, pass `do_rescale=False`."
                )
            image = self.rescale(image, rescale_factor)
        if do_normalize:
            image = self.normalize(image, image_mean, image_std)
        return image.astype(np.float32, copy=False)

    def _fit_superpixel_map(
        self,
        label_map: np.ndarray,
        resized_size: tuple[int, int],
        do_center_crop: bool,
        crop_size: SizeDict | None,
    ) -> np.ndarray:
        """Bring a user-supplied map to the output size (nearest neighbor, like the image) and renumber its ids."""
        labels = relabel_sequential_ids(label_map)
        if labels.shape != resized_size:
            labels = _resize_nearest(labels, resized_size)
        if do_center_crop:
            labels = self.center_crop(labels[None], crop_size)[0]
        return relabel_sequential_ids(labels)

    def _fit_segmentation_map(
        self,
        label_map: np.ndarray,
        resized_size: tuple[int, int],
        do_center_crop: bool,
        crop_size: SizeDict | None,
        do_reduce_labels: bool,
    ) -> np.ndarray:
        """Class labels at the output size: reduced if asked, resized nearest-neighbor like the image, cropped."""
        labels = _reduce_labels(label_map) if do_reduce_labels else label_map.astype(np.int64)
        if labels.shape != resized_size:
            labels = _resize_nearest(labels, resized_size)
        if do_center_crop:
            labels = self.center_crop(labels[None], crop_size)[0]
        return np.ascontiguousarray(labels, dtype=np.int64)

    def post_process_hierarchical_segmentation(
        self,
        outputs,
        target_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        levels: int | list[int] | None = None,
        return_scores: bool = False,
    ) -> list[torch.Tensor] | list[dict]:
        r"""
        Turn the hierarchy of CAST outputs into label maps: for every image, the segment id of each pixel at the
        requested levels, at the requested size.

        Resizing is nearest-neighbor with one index map for all levels, so the levels stay nested at any size: every
        segment of a finer level lies inside exactly one segment of each coarser level.

        Args:
            outputs (`ModelOutput` or `Mapping`):
                Output of any CAST model (read by key): `hierarchy` (`torch.LongTensor` of shape `(batch_size,
                num_levels, height, width)`) and, with `return_scores=True`, `hierarchy_scores` (same shape).
            target_sizes (`list[tuple[int, int]]` or `torch.Tensor` of shape `(batch_size, 2)`, *optional*):
                `(height, width)` of each image's result, usually the original image size. By default the model's
                input size.
            levels (`int` or `list[int]`, *optional*):
                Levels to return, finest first by default (all of them); 0 is the finest level and negative values
                count from the coarsest (-1).
            return_scores (`bool`, *optional*, defaults to `False`):
                Whether to also describe every segment (see below).

        Returns:
            `list[torch.LongTensor]`: one tensor of shape `(num_requested_levels, height, width)` per image. With
            `return_scores=True`, one dict per image instead: `"segmentation"` (that tensor) and `"segments_info"`,
            one list per requested level of `{"id": int, "level": int, "score": float, "area": int}`, where `level`
            is the non-negative level index, `score` the mean `hierarchy_scores` (assignment probability) of the
            segment's pixels and `area` its pixel count, both at the target size.
        """
        checked = check_outputs(outputs, target_sizes, levels=levels, return_scores=return_scores)
        return hierarchy_label_maps(checked)

    def post_process_semantic_segmentation(
        self,
        outputs,
        target_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        return_segmentation_scores: bool = False,
    ) -> list[torch.Tensor] | list[SemanticSegmentationPostProcessorOutput]:
        r"""
        Turn the per-pixel class logits of a CAST segmentation head into class maps.

        Args:
            outputs (`ModelOutput` or `Mapping`):
                Output with `logits` of shape `(batch_size, num_labels, height, width)`. Backbone and image
                classification outputs have no such logits: use
                [`~CastImageProcessor.post_process_hierarchical_segmentation`] or
                [`~CastImageProcessor.post_process_panoptic_segmentation`] for their segments.
            target_sizes (`list[tuple[int, int]]` or `torch.Tensor` of shape `(batch_size, 2)`, *optional*):
                `(height, width)` of each result; logits are resized bilinearly before the argmax. By default the
                logits' size.
            return_segmentation_scores (`bool`, *optional*, defaults to `False`):
                Whether to also return the (resized) logits.

        Returns:
            `list[torch.LongTensor]`: one class map of shape `(height, width)` per image, or with
            `return_segmentation_scores=True` one `SemanticSegmentationPostProcessorOutput` per image with
            `segmentation` (that map) and `segmentation_scores` (`(num_labels, height, width)` logits).
        """
        checked = check_outputs(outputs, target_sizes, read="logits")
        return class_maps(checked, return_segmentation_scores)

    def post_process_panoptic_segmentation(
        self,
        outputs,
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
        label_ids_to_fuse: set[int] | None = None,
        target_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        level: int | None = None,
    ) -> list[dict]:
        r"""
        Segments of one level of the hierarchy (or, for a segmentation head, one segment per predicted class) in the
        format of transformers' panoptic post-processing, which `pipeline("image-segmentation")` consumes.

        Hierarchy segments have no class: segment `k` of level `l` gets the label id `(l, k)`, which a CAST config's
        `id2label` names `"level l segment k"`. The segments partition the image, so no segment is ever dropped:
        `threshold`, `mask_threshold`, `overlap_mask_area_threshold` and `label_ids_to_fuse` (which filter and merge
        the overlapping mask proposals of query-based models) have nothing to act on and are accepted only for
        compatibility with the pipeline. Filter `segments_info` by `score` to keep confident segments.

        Args:
            outputs (`ModelOutput` or `Mapping`):
                Output of a CAST model: `hierarchy` and `hierarchy_scores`, and for segmentation heads per-pixel
                class `logits` of shape `(batch_size, num_labels, height, width)`, whose classes are returned unless
                `level` is given.
            threshold (`float`, *optional*, defaults to 0.5):
                Unused (see above).
            mask_threshold (`float`, *optional*, defaults to 0.5):
                Unused (see above).
            overlap_mask_area_threshold (`float`, *optional*, defaults to 0.8):
                Unused (see above).
            label_ids_to_fuse (`set[int]`, *optional*):
                Unused: every class is already a single segment.
            target_sizes (`list[tuple[int, int]]` or `torch.Tensor` of shape `(batch_size, 2)`, *optional*):
                `(height, width)` of each result. By default the model's output size.
            level (`int`, *optional*, defaults to `self.segmentation_level`):
                Level of the hierarchy to return: 0 is the finest, -1 the coarsest. Given explicitly, it also selects
                the hierarchy over the classes of a segmentation head.

        Returns:
            `list[dict]`: per image, `"segmentation"` (`torch.LongTensor` of shape `(height, width)`: the segment id of
            every pixel; every pixel belongs to exactly one segment) and `"segments_info"`, one
            `{"id": int, "label_id": tuple[int, int] | int, "was_fused": False, "score": float}` per segment. The
            score is the mean assignment probability of the segment's pixels (for classes, the mean softmax
            probability of the predicted class).
        """
        return self._segments_of_level(outputs, target_sizes, level)

    def post_process_instance_segmentation(
        self,
        outputs,
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
        target_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        level: int | None = None,
    ) -> list[dict]:
        r"""
        Same as [`~CastImageProcessor.post_process_panoptic_segmentation`]: CAST segments do not overlap, so every
        segment of the chosen level is one instance. `threshold`, `mask_threshold` and `overlap_mask_area_threshold`
        are unused, for the same reason.
        """
        return self._segments_of_level(outputs, target_sizes, level)

    def _segments_of_level(self, outputs, target_sizes, level: int | None) -> list[dict]:
        if level is None and segmentation_logits(outputs) is not None:
            return level_segments(check_outputs(outputs, target_sizes, read="logits"))
        argument = "level" if level is not None else "segmentation_level"
        level = self.segmentation_level if level is None else level
        checked = check_outputs(
            outputs, target_sizes, levels=level, levels_argument=argument, single_level=True, return_scores=True
        )
        return level_segments(checked)


def _checked_settings(settings: dict) -> dict:
    """
    Coerce and check the processor's own settings (`_CHECKED_SETTINGS`; the call's overrides merged over the
    processor's attributes): types become the declared Python types (numpy numbers and ints are accepted for
    floats), values are checked, and a fixed output size must be a multiple of `patch_size`.
    """
    checked = dict(settings)
    for name in ("n_segments", "patch_size"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value}")
        checked[name] = int(value)
    compactness = settings["compactness"]
    if isinstance(compactness, bool) or not isinstance(compactness, numbers.Real):
        raise TypeError(f"`compactness` must be a number, got {type(compactness).__name__} {compactness!r}")
    if not np.isfinite(compactness) or compactness <= 0:
        raise ValueError(f"`compactness` must be a positive finite number, got {compactness}")
    checked["compactness"] = float(compactness)
    method = settings["superpixel_method"]
    if not isinstance(method, str):
        raise TypeError(
            f"`superpixel_method` must be one of {SUPERPIXEL_METHODS}, got {type(method).__name__} {method!r}"
        )
    if method not in SUPERPIXEL_METHODS:
        raise ValueError(f"`superpixel_method` must be one of {SUPERPIXEL_METHODS}, got {method!r}")
    check_level_type(settings["segmentation_level"], "segmentation_level")
    do_reduce_labels = settings["do_reduce_labels"]
    if do_reduce_labels is not None and not isinstance(do_reduce_labels, (bool, np.bool_)):
        raise TypeError(
            f"`do_reduce_labels` must be a bool, got {type(do_reduce_labels).__name__} {do_reduce_labels!r}"
        )
    for name in ("size", "crop_size"):
        _check_size_fields(settings[name], name)
    if settings["do_pad"]:
        raise ValueError("`do_pad=True` is not supported by CastImageProcessor: padding would add fake superpixels")
    fixed = _fixed_output_size(
        settings["do_resize"], settings["size"], settings["do_center_crop"], settings["crop_size"]
    )
    if fixed is not None:
        name, output_size = fixed
        _check_multiple_of_patch_size(output_size, checked["patch_size"], name)
    return checked


def _check_size_fields(size: SizeDict | None, argument: str) -> None:
    """Every length a size gives must be a positive integer: transformers would otherwise save `{"height": 0}` and
    fail later, inside resizing, with a message that names no argument."""
    if size is None:
        return
    for field, value in vars(size).items() if isinstance(size, SizeDict) else size.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{argument}[{field!r}]` must be an integer, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"`{argument}[{field!r}]` must be a positive integer, got {value}")


def _fixed_output_size(
    do_resize: bool, size: SizeDict | None, do_center_crop: bool, crop_size: SizeDict | None
) -> tuple[str, tuple[int, int]] | None:
    """The output (height, width) when the settings fix it, with the name of the setting that does; None when it
    depends on the image (aspect-preserving `size`, no resizing)."""
    if do_center_crop and crop_size is not None:
        name, output_size = "crop_size", crop_size
    elif do_resize and size is not None:
        name, output_size = "size", size
    else:
        return None
    if output_size.height is None or output_size.width is None:
        return None
    return name, (output_size.height, output_size.width)


def _check_multiple_of_patch_size(output_size: tuple[int, int], patch_size: int, argument: str) -> None:
    """`argument` is the input that decided the output size: `size`, `crop_size`, or `images` when not resizing."""
    height, width = output_size
    if height % patch_size == 0 and width % patch_size == 0:
        return
    if argument == "images":
        expectation = "with `do_resize=False`, `images` must have heights and widths"
    else:
        expectation = f"`{argument}` must give an output height and width"
    raise ValueError(
        f"{expectation} that are multiples of `patch_size`={patch_size} (the stride of the CAST stem), "
        f"got height {height} and width {width}"
    )


def _distinct_sizes(images: list[np.ndarray]) -> list[tuple[int, int]]:
    return sorted({tuple(image.shape[-2:]) for image in images})


def _is_exact_eight_bit(image: np.ndarray) -> bool:
    """Whether float pixels are 8-bit values, as integers in [0, 255] or divided by 255 in [0, 1] (to float32
    precision): transformers' PIL conversion then loses nothing."""
    if image.size == 0:
        return True
    low, high = float(image.min()), float(image.max())
    steps = image if high > 1 else image * MAX_UINT8
    return low >= 0 and high <= MAX_UINT8 and bool(np.allclose(steps, np.round(steps), rtol=0, atol=1e-3))


def _superpixel_view(image: np.ndarray, do_rescale: bool, rescale_factor: float) -> np.ndarray:
    """The resized, un-normalized image (height, width, channels) as the superpixel back-ends read it: uint8 pixels
    as they are, float pixels rescaled like `pixel_values` and clipped to [0, 1]."""
    if image.dtype != np.uint8:
        image = np.clip(image.astype(np.float64) * (rescale_factor if do_rescale else 1.0), 0.0, 1.0)
    return np.moveaxis(image, 0, -1)


def _reduce_labels(label_map: np.ndarray) -> np.ndarray:
    """SegFormer's label reduction: 0 (background) becomes the ignore label, every other label `l` becomes `l - 1`,
    and the ignore label stays itself."""
    label_map = label_map.astype(np.int64)
    reduced = label_map - 1
    reduced[(label_map == 0) | (label_map == _IGNORE_LABEL)] = _IGNORE_LABEL
    return reduced


def _resize_nearest(labels: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbor resize of a map with ids `0..K-1` (K <= number of pixels, so int32 holds them)."""
    height, width = output_size
    resized = Image.fromarray(labels.astype(np.int32)).resize((width, height), resample=PILImageResampling.NEAREST)
    return np.asarray(resized).astype(np.int64)
