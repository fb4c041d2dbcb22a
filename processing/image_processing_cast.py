# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Image processor for CAST: resizing, normalisation and the superpixels CAST uses as its tokens.

CAST (Ke, Mo, Yu, ICLR 2024) pools its stem features per superpixel, so every image needs a superpixel map next to its
pixels. Pipelines cannot pass extra model inputs, hence the maps are computed here, on the resized image, and returned
as `superpixels` beside `pixel_values`.

Hub-flat: imports only numpy, PIL, torch, the public `transformers` API and its sibling `superpixels_cast`.
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
    is_valid_image,
)
from transformers.processing_utils import ImagesKwargs, Unpack
from transformers.utils import TensorType, logging

from .post_processing_cast import (
    class_segments,
    hierarchy_segments_info,
    nearest_resize,
    resize_logits,
    resolve_levels,
    resolve_target_sizes,
    segmentation_logits,
    validated_hierarchy,
    validated_scores,
)
from .superpixels_cast import SUPERPIXEL_METHODS, compute_superpixels, relabel_sequential_ids


__all__ = ["CastImageProcessor", "CastImageProcessorKwargs"]

logger = logging.get_logger(__name__)

_MAX_UINT8 = 255
_MAX_UINT16 = 65535
_UINT16_TO_UINT8 = 257  # 65535 / 255: a 16-bit value v is the 8-bit value round(v / 257)
_RGB_CHANNELS = 3
# PIL modes holding 16-bit samples ("I" is how Pillow opens 16-bit PNGs in several versions; read as 16-bit too).
_SIXTEEN_BIT_PIL_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_FLOAT_PIL_MODES = ("F",)
# Channel counts recognised when guessing the channel axis of an array.
_CONVERTIBLE_CHANNELS = (1, 2, 3, 4)
_KNOWN_CHANNELS = (1, 3, 4)
# Label reduction (`do_reduce_labels`) maps the background class 0 to the ignore label, SegFormer's convention; the
# ignore label is also the default `CastConfig.semantic_loss_ignore_index`.
_IGNORE_LABEL = 255
# PIL modes that hold one integer class label per pixel ("P" gives the palette indices, not the colours).
_LABEL_PIL_MODES = ("L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")
# Label maps are resized by PIL in its 32-bit integer mode.
_MAX_LABEL = np.iinfo(np.int32).max


class CastImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    n_segments (`int`, *optional*, defaults to `self.n_segments`):
        Approximate number of superpixels per image. The actual count varies per image.
    compactness (`float`, *optional*, defaults to `self.compactness`):
        SLIC compactness: higher values give more regular superpixels. Unused by SEEDS.
    superpixel_method (`str`, *optional*, defaults to `self.superpixel_method`):
        `"slic"` (scikit-image) or `"seeds"` (OpenCV-contrib, `pip install "cast-transformers[seeds]"`).
    patch_size (`int`, *optional*, defaults to `self.patch_size`):
        Stride of the model's convolutional stem. Output heights and widths must be multiples of it.
    superpixels (`np.ndarray`, `torch.Tensor` or a list of them, *optional*):
        Precomputed superpixel maps to use instead of computing them: one 2-D integer map per image, at that image's
        original size. They are resized with nearest-neighbour sampling and renumbered to `0..K-1`.
    segmentation_level (`int`, *optional*, defaults to `self.segmentation_level`):
        Level of the hierarchy whose segments panoptic/instance post-processing (and so
        `pipeline("image-segmentation")`) returns: 0 is the finest, negative values count from the coarsest (-1).
        Not used by preprocessing.
    do_reduce_labels (`bool`, *optional*, defaults to `self.do_reduce_labels`):
        Whether to reduce the labels of `segmentation_maps` by one, making the background class 0 the ignore label
        255 (for datasets such as ADE20k whose class 0 means "unlabelled").
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
    resized, un-normalised image) and then rescaled and normalised.

    The output holds `pixel_values` (float32, `(batch_size, 3, height, width)`) and `superpixels` (int64,
    `(batch_size, height, width)`, ids `0..K-1` per image, contiguous). Both are deterministic.

    Input images may be PIL images, numpy arrays or torch tensors, channels-first or channels-last, single or in
    (nested) lists, of different sizes when they are resized. Grayscale images are repeated to 3 channels, the alpha
    channel of RGBA or gray+alpha images is dropped, and 16-bit images (`uint16` arrays or tensors, PIL modes `"I;16"`
    and `"I"`) are scaled to 8 bits (`round(value / 257)`). Integer arrays of another dtype are read as 8-bit when all
    values are at most 255 and as 16-bit otherwise. Float images must be finite; like everywhere in `transformers`,
    float images in [0, 1] need `do_rescale=False`.

    An image of a single colour is one superpixel. With `do_convert_rgb=False`, images keep their channels and the
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
            Whether to normalise with `image_mean` and `image_std`.
        image_mean (`float` or `list[float]`, *optional*, defaults to `IMAGENET_DEFAULT_MEAN`):
            Per-channel mean used for normalisation.
        image_std (`float` or `list[float]`, *optional*, defaults to `IMAGENET_DEFAULT_STD`):
            Per-channel standard deviation used for normalisation.
        n_segments (`int`, *optional*, defaults to 196):
            Approximate number of superpixels per image (the official setting: 196 at 224x224).
        compactness (`float`, *optional*, defaults to 10.0):
            SLIC compactness. While SLIC returns fewer than `n_segments // 2` superpixels it is multiplied by 3 and
            SLIC re-run (the official rule), at most 5 times.
        superpixel_method (`str`, *optional*, defaults to `"slic"`):
            `"slic"` (scikit-image) or `"seeds"` (OpenCV-contrib SEEDS with the official parameters; the released
            checkpoints were trained with SEEDS).
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
        kwargs = _coerce_superpixel_kwargs(kwargs)
        _check_bool(kwargs.get("do_reduce_labels"), "do_reduce_labels")
        super().__init__(**kwargs)
        _check_level_type(self.segmentation_level, "segmentation_level")
        _validate_superpixel_settings(self.n_segments, self.compactness, self.superpixel_method, self.patch_size)
        _validate_output_size_settings(self.do_resize, self.size, self.do_center_crop, self.crop_size, self.patch_size)

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
                nearest-neighbour sampling and renumbered to `0..K-1`. Keyword-only, so that `processor(images, maps)`
                reads label maps as in transformers' segmentation processors.
            segmentation_maps (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them, *optional*):
                Per-pixel class labels for training or evaluation: one 2-D map of non-negative integers per image, at
                the image's original `(height, width)` (a 3-D array is a batch of maps; PIL images in mode `"L"`,
                `"P"` (palette indices), `"I"` or `"I;16"`). They follow the image's geometry (resize with
                nearest-neighbour sampling, then the center crop if enabled), are reduced when `do_reduce_labels`,
                and are returned as `labels`. The superpixels do not depend on them.
            kwargs ([`CastImageProcessorKwargs`], *optional*):
                Overrides of the processor's attributes for this call, and `return_tensors` (`"pt"` or `"np"`; by
                default lists of numpy arrays are returned).

        Returns:
            [`BatchFeature`] with `pixel_values` (float32, `(batch_size, channels, height, width)`), `superpixels`
            (int64, `(batch_size, height, width)`) and, with `segmentation_maps`, `labels` (int64,
            `(batch_size, height, width)`).
        """
        if superpixels is not None and not isinstance(superpixels, (np.ndarray, torch.Tensor, list, tuple)):
            raise TypeError(
                "`superpixels` must be a numpy array, a torch tensor or a list of them, "
                f"got {type(superpixels).__name__}"
            )
        if segmentation_maps is not None and not isinstance(
            segmentation_maps, (Image.Image, np.ndarray, torch.Tensor, list, tuple)
        ):
            raise TypeError(
                "`segmentation_maps` must be a PIL image, a numpy array, a torch tensor or a list of them, "
                f"got {type(segmentation_maps).__name__}"
            )
        kwargs = _coerce_superpixel_kwargs(kwargs)
        _check_bool(kwargs.get("do_reduce_labels"), "do_reduce_labels")
        # `image_like_kwargs` skips the settings validation, which knows only the declared processor arguments
        return super().preprocess(
            images, superpixels=superpixels, image_like_kwargs={"segmentation_maps": segmentation_maps}, **kwargs
        )

    def _validate_preprocess_kwargs(self, **kwargs) -> None:
        if kwargs.get("do_pad"):
            raise ValueError(
                "`do_pad=True` is not supported by CastImageProcessor: padding would add fake superpixels"
            )
        super()._validate_preprocess_kwargs(**kwargs)
        _validate_superpixel_settings(
            kwargs["n_segments"], kwargs["compactness"], kwargs["superpixel_method"], kwargs["patch_size"]
        )
        _validate_output_size_settings(
            kwargs["do_resize"], kwargs["size"], kwargs["do_center_crop"], kwargs["crop_size"], kwargs["patch_size"]
        )

    def _prepare_images_structure(self, images: ImageInput, expected_ndims: int = 3) -> list:
        # Unlike the default, also accept 2-D (grayscale) arrays and report bad inputs without printing them.
        return _flatten_images(self.fetch_images(images))

    def process_image(
        self,
        image: ImageInput,
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        **kwargs,
    ) -> np.ndarray:
        """
        Convert one input image to a channels-first numpy array: uint8 for 8- and 16-bit images, float32 for float
        images, 3 RGB channels when `do_convert_rgb`.
        """
        array, is_sixteen_bit, is_pil = _image_to_array(image, do_convert_rgb)
        array = _to_eight_bit_range(array, is_sixteen_bit)
        if is_pil:
            input_data_format = ChannelDimension.LAST
        array = _to_channels_first(array, input_data_format, do_convert_rgb)
        if do_convert_rgb:
            array = _channels_to_rgb(array)
        return array

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
            superpixels = _prepare_superpixel_maps(superpixels, image_sizes)
        if segmentation_maps is not None:
            segmentation_maps = _prepare_segmentation_maps(segmentation_maps, image_sizes)
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
        **kwargs,
    ) -> BatchFeature:
        """Resize, crop, segment, rescale and normalise channels-first images (superpixels: validated user maps);
        bring validated segmentation maps to the same output geometry."""
        if not do_resize and not do_center_crop:
            sizes = _distinct_sizes(images)
            if len(sizes) > 1:
                raise ValueError(
                    "with `do_resize=False`, `images` must all have the same (height, width) to be stacked, "
                    f"got {sizes}"
                )
        resizing_argument = "crop_size" if do_center_crop else ("size" if do_resize else "images")
        pixel_values, superpixel_outputs, label_outputs = [], [], []
        for index, image in enumerate(images):
            if do_resize:
                image = self.resize(image, size=size, resample=resample)
            resized_size = tuple(image.shape[-2:])
            if do_center_crop:
                image = self.center_crop(image, crop_size)
            _check_multiple_of_patch_size(tuple(image.shape[-2:]), patch_size, resizing_argument)

            if superpixels is None:
                unit_image = _unit_range_channels_last(image, do_rescale, rescale_factor)
                labels = compute_superpixels(unit_image, superpixel_method, n_segments, compactness)
            else:
                labels = self._fit_superpixel_map(superpixels[index], resized_size, do_center_crop, crop_size)
            if segmentation_maps is not None:
                label_outputs.append(
                    self._fit_segmentation_map(
                        segmentation_maps[index], resized_size, do_center_crop, crop_size, do_reduce_labels
                    )
                )

            if do_rescale:
                if np.issubdtype(image.dtype, np.floating) and image.size and image.max() <= 1:
                    logger.warning_once(
                        "It looks like you are trying to rescale already rescaled images (float pixels in [0, 1]). "
                        "If that is the case, pass `do_rescale=False`."
                    )
                image = self.rescale(image, rescale_factor)
            if do_normalize:
                image = self.normalize(image, image_mean, image_std)
            pixel_values.append(image.astype(np.float32, copy=False))
            superpixel_outputs.append(labels)
        # `size={"shortest_edge": ...}` keeps aspect ratios, so outputs may still differ in size.
        sizes = _distinct_sizes(pixel_values)
        if len(sizes) > 1:
            raise ValueError(
                f"`{resizing_argument}` must give every image the same output (height, width) so that they can be "
                f"stacked, got {sizes}; give a fixed height and width or a center crop"
            )
        data = {"pixel_values": pixel_values, "superpixels": superpixel_outputs}
        if segmentation_maps is not None:
            data["labels"] = label_outputs
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _fit_superpixel_map(
        self,
        label_map: np.ndarray,
        resized_size: tuple[int, int],
        do_center_crop: bool,
        crop_size: SizeDict | None,
    ) -> np.ndarray:
        """Bring a user-supplied map to the output size (nearest neighbour, like the image) and renumber its ids."""
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
        """Class labels at the output size: reduced if asked, resized nearest-neighbour like the image, cropped."""
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

        Resizing is nearest-neighbour with one index map for all levels, so the levels stay nested at any size: every
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
        hierarchy = validated_hierarchy(outputs)
        scores = validated_scores(outputs, hierarchy) if return_scores else None
        batch_size, num_levels = hierarchy.shape[:2]
        sizes = resolve_target_sizes(target_sizes, batch_size, tuple(hierarchy.shape[-2:]))
        level_indices = resolve_levels(levels, num_levels)
        results = []
        for index, size in enumerate(sizes):
            segmentation = nearest_resize(hierarchy[index, level_indices], size).long()
            if scores is None:
                results.append(segmentation)
                continue
            level_scores = nearest_resize(scores[index, level_indices], size)
            segments_info = [
                hierarchy_segments_info(level_map, level_score, level)
                for level_map, level_score, level in zip(segmentation, level_scores, level_indices)
            ]
            results.append({"segmentation": segmentation, "segments_info": segments_info})
        return results

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
        logits = segmentation_logits(outputs)
        if logits is None:
            raise ValueError(
                "`outputs` must carry per-pixel class `logits` of shape (batch_size, num_labels, height, width) "
                "from a segmentation head for semantic segmentation; the segments of CAST backbones and image "
                "classifiers come from `post_process_hierarchical_segmentation` or "
                "`post_process_panoptic_segmentation`"
            )
        sizes = resolve_target_sizes(target_sizes, logits.shape[0], tuple(logits.shape[-2:]))
        results = []
        for image_logits, size in zip(logits, sizes):
            resized = resize_logits(image_logits, size)
            segmentation = resized.argmax(dim=0)
            if return_segmentation_scores:
                results.append(
                    SemanticSegmentationPostProcessorOutput(
                        data={"segmentation": segmentation, "segmentation_scores": resized}
                    )
                )
            else:
                results.append(segmentation)
        return results

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
        logits = segmentation_logits(outputs)
        if logits is not None and level is None:
            sizes = resolve_target_sizes(target_sizes, logits.shape[0], tuple(logits.shape[-2:]))
            results = []
            for image_logits, size in zip(logits, sizes):
                segmentation, segments_info = class_segments(resize_logits(image_logits, size))
                results.append({"segmentation": segmentation, "segments_info": segments_info})
            return results

        argument = "level" if level is not None else "segmentation_level"
        level = self.segmentation_level if level is None else level
        _check_level_type(level, argument)
        num_levels = validated_hierarchy(outputs).shape[1]
        (level,) = resolve_levels(level, num_levels, argument=argument)
        results = []
        for result in self.post_process_hierarchical_segmentation(
            outputs, target_sizes=target_sizes, levels=[level], return_scores=True
        ):
            segments_info = [_panoptic_segment(segment) for segment in result["segments_info"][0]]
            results.append({"segmentation": result["segmentation"][0], "segments_info": segments_info})
        return results


def _panoptic_segment(segment: dict) -> dict:
    """A hierarchy segment as transformers' panoptic post-processing describes one. Its label id `(level, id)` is
    never a class id; a CAST config's `id2label` names it "level l segment k"."""
    return {
        "id": segment["id"],
        "label_id": (segment["level"], segment["id"]),
        "was_fused": False,
        "score": segment["score"],
    }


def _check_level_type(level, argument: str) -> None:
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise TypeError(
            f"`{argument}` must be an int (0 = finest level, -1 = coarsest), got {type(level).__name__} {level!r}"
        )


def _coerce_superpixel_kwargs(kwargs: dict) -> dict:
    """Type-check the CAST-specific arguments and turn numpy scalars and ints into the declared Python types."""
    kwargs = dict(kwargs)
    for name in ("n_segments", "patch_size"):
        value = kwargs.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}")
        kwargs[name] = int(value)
    compactness = kwargs.get("compactness")
    if compactness is not None:
        if isinstance(compactness, bool) or not isinstance(compactness, numbers.Real):
            raise TypeError(f"`compactness` must be a number, got {type(compactness).__name__} {compactness!r}")
        kwargs["compactness"] = float(compactness)
    method = kwargs.get("superpixel_method")
    if method is not None and not isinstance(method, str):
        raise TypeError(
            f"`superpixel_method` must be one of {SUPERPIXEL_METHODS}, got {type(method).__name__} {method!r}"
        )
    return kwargs


def _validate_superpixel_settings(n_segments: int, compactness: float, superpixel_method: str, patch_size: int):
    if n_segments < 1:
        raise ValueError(f"`n_segments` must be a positive integer, got {n_segments}")
    if not np.isfinite(compactness) or compactness <= 0:
        raise ValueError(f"`compactness` must be a positive finite number, got {compactness}")
    if superpixel_method not in SUPERPIXEL_METHODS:
        raise ValueError(f"`superpixel_method` must be one of {SUPERPIXEL_METHODS}, got {superpixel_method!r}")
    if patch_size < 1:
        raise ValueError(f"`patch_size` must be a positive integer, got {patch_size}")


def _validate_output_size_settings(
    do_resize: bool, size: SizeDict | None, do_center_crop: bool, crop_size: SizeDict | None, patch_size: int
) -> None:
    """Check the output sizes that are known before seeing any image (fixed height and width)."""
    if do_center_crop and crop_size is not None:
        name, output_size = "crop_size", crop_size
    elif do_resize and size is not None:
        name, output_size = "size", size
    else:
        return
    # Aspect-preserving sizes (`shortest_edge`, ...) are checked per image once resized.
    if output_size.height is not None and output_size.width is not None:
        _check_multiple_of_patch_size((output_size.height, output_size.width), patch_size, name)


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


def _flatten_images(images) -> list:
    """Flat list of single images from an image, a batch array or a (nested) list of them."""
    if is_valid_image(images):
        return _split_batch(images)
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("`images` must contain at least one image, got an empty list")
        flat = []
        for item in images:
            if isinstance(item, (list, tuple)):
                for nested_item in item:
                    flat.extend(_split_batch(nested_item))
            else:
                flat.extend(_split_batch(item))
        return flat
    raise TypeError(
        f"`images` must be PIL images, numpy arrays or torch tensors, or lists of them, got {type(images).__name__}"
    )


def _split_batch(image) -> list:
    if isinstance(image, Image.Image):
        return [image]
    if not is_valid_image(image):
        raise TypeError(
            "`images` must be PIL images, numpy arrays or torch tensors, or lists of them, "
            f"got a list item of type {type(image).__name__}"
        )
    if image.ndim in (2, 3):
        return [image]
    if image.ndim == 4:
        return list(image)
    raise ValueError(
        "each entry of `images` must have 2 (height, width) or 3 (with channels) dimensions, or 4 for a batch, "
        f"got shape {tuple(image.shape)}"
    )


def _image_to_array(image, do_convert_rgb: bool | None) -> tuple[np.ndarray, bool, bool]:
    """Numpy pixels of one image, whether they are 16-bit, and whether they came from PIL (channels last)."""
    if isinstance(image, Image.Image):
        if image.mode in _SIXTEEN_BIT_PIL_MODES:
            return np.asarray(image), True, True
        if image.mode not in _FLOAT_PIL_MODES and do_convert_rgb and image.mode != "RGB":
            # For RGBA/LA/P images this drops transparency rather than compositing onto a background.
            image = image.convert("RGB")
        return np.asarray(image), False, True
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dtype in (torch.float16, torch.bfloat16):
            image = image.float()
        return image.numpy(), False, False
    return np.asarray(image), False, False


def _to_eight_bit_range(array: np.ndarray, is_sixteen_bit: bool) -> np.ndarray:
    """uint8 pixels for integer images (16-bit ones scaled down), finite float32 pixels for float images."""
    if array.size == 0:
        raise ValueError(f"`images` must have a non-zero height and width, got an image of shape {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * _MAX_UINT8
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("`images` must hold finite pixel values, got NaN or infinite values")
        return array.astype(np.float32, copy=False)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"`images` must hold integer, boolean or floating-point pixels, got dtype {array.dtype}")
    if array.dtype == np.uint8:
        return array
    minimum, maximum = int(array.min()), int(array.max())
    if minimum < 0:
        raise ValueError(f"`images` must hold non-negative pixel values, got minimum {minimum}")
    if maximum > _MAX_UINT16:
        raise ValueError(
            f"integer `images` must be 8- or 16-bit (values at most {_MAX_UINT16}), got maximum {maximum}"
        )
    if is_sixteen_bit or array.dtype == np.uint16 or maximum > _MAX_UINT8:
        # round(v / 257) in integer arithmetic: a 16-bit image made from an 8-bit one (v = 257 * u) gives u back.
        return ((array.astype(np.uint32) + _UINT16_TO_UINT8 // 2) // _UINT16_TO_UINT8).astype(np.uint8)
    return array.astype(np.uint8)


def _to_channels_first(
    array: np.ndarray, input_data_format: str | ChannelDimension | None, do_convert_rgb: bool | None
) -> np.ndarray:
    if array.ndim == 2:
        return array[None]
    if array.ndim != 3:
        raise ValueError(f"each image in `images` must have 2 or 3 dimensions, got shape {array.shape}")
    if input_data_format is not None:
        channel_format = ChannelDimension(input_data_format)
    else:
        known_channels = _CONVERTIBLE_CHANNELS if do_convert_rgb else _KNOWN_CHANNELS
        if array.shape[0] in known_channels:
            # (3, H, 3)-like shapes are ambiguous; like transformers, assume channels first.
            channel_format = ChannelDimension.FIRST
        elif array.shape[-1] in known_channels:
            channel_format = ChannelDimension.LAST
        else:
            raise ValueError(
                f"each image in `images` must have {known_channels} channels first or last, got shape {array.shape}; "
                "pass `input_data_format` to say where the channels are"
            )
    if channel_format == ChannelDimension.LAST:
        array = np.moveaxis(array, -1, 0)
    return np.ascontiguousarray(array)


def _channels_to_rgb(array: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (3, H, W): gray is repeated, alpha is dropped."""
    num_channels = array.shape[0]
    if num_channels in (1, 2):
        return np.repeat(array[:1], _RGB_CHANNELS, axis=0)
    if num_channels in (3, 4):
        return array[:_RGB_CHANNELS]
    raise ValueError(
        f"`images` must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels to be converted to RGB, "
        f"got {num_channels}; pass `do_convert_rgb=False` to keep them"
    )


def _unit_range_channels_last(image: np.ndarray, do_rescale: bool, rescale_factor: float) -> np.ndarray:
    """The resized, un-normalised image as float64 (height, width, channels) in [0, 1], as superpixels expect it."""
    if np.issubdtype(image.dtype, np.integer):
        unit = image / _MAX_UINT8
    else:
        unit = image.astype(np.float64) * (rescale_factor if do_rescale else 1.0)
    return np.moveaxis(np.clip(unit, 0.0, 1.0), 0, -1)


def _maps_to_list(superpixels) -> list[np.ndarray]:
    """Flat list of 2-D maps from a map, a 3-D batch of maps or a list of maps (numpy or torch)."""
    if isinstance(superpixels, (np.ndarray, torch.Tensor)):
        array = _map_to_numpy(superpixels)
        if array.ndim == 2:
            return [array]
        if array.ndim == 3:
            return list(array)
        raise ValueError(
            "`superpixels` must be a 2-D (height, width) map or a 3-D (batch_size, height, width) batch of maps, "
            f"got shape {tuple(array.shape)}"
        )
    return [_map_to_numpy(label_map) for label_map in superpixels]


def _map_to_numpy(label_map) -> np.ndarray:
    if isinstance(label_map, torch.Tensor):
        if label_map.is_floating_point() or label_map.is_complex() or label_map.dtype == torch.bool:
            raise TypeError(f"`superpixels` must hold integer segment ids, got dtype {label_map.dtype}")
        return label_map.detach().cpu().numpy()
    if isinstance(label_map, np.ndarray):
        return label_map
    raise TypeError(
        f"each map in `superpixels` must be a numpy array or a torch tensor, got {type(label_map).__name__}"
    )


def _prepare_superpixel_maps(superpixels, image_sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Validate user-supplied maps against the images (at their original sizes)."""
    label_maps = _maps_to_list(superpixels)
    if len(label_maps) != len(image_sizes):
        raise ValueError(
            f"`superpixels` must hold one map per image, got {len(label_maps)} maps for {len(image_sizes)} images"
        )
    for index, (label_map, image_size) in enumerate(zip(label_maps, image_sizes, strict=True)):
        if label_map.ndim != 2:
            raise ValueError(
                f"`superpixels[{index}]` must be a 2-D (height, width) map, got shape {tuple(label_map.shape)}"
            )
        if not np.issubdtype(label_map.dtype, np.integer):
            raise TypeError(f"`superpixels` must hold integer segment ids, got dtype {label_map.dtype}")
        if tuple(label_map.shape) != tuple(image_size):
            raise ValueError(
                f"`superpixels[{index}]` has shape {tuple(label_map.shape)} but `images[{index}]` has (height, width) "
                f"{tuple(image_size)}; give each map at its image's original size"
            )
        minimum = int(label_map.min())
        if minimum < 0:
            raise ValueError(f"`superpixels` must be non-negative, got minimum {minimum}")
    return label_maps


def _check_bool(value, argument: str) -> None:
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{argument}` must be a bool, got {type(value).__name__} {value!r}")


def _segmentation_map_to_numpy(label_map) -> np.ndarray:
    """One class-label map as a numpy array (PIL images in a label mode, numpy arrays, torch tensors)."""
    if isinstance(label_map, Image.Image):
        if label_map.mode in ("1", "F"):
            raise TypeError(
                f"`segmentation_maps` must hold integer class labels, got a PIL image in mode {label_map.mode!r}"
            )
        if label_map.mode not in _LABEL_PIL_MODES:
            raise ValueError(
                f"`segmentation_maps` PIL images must have one class label per pixel (mode in {_LABEL_PIL_MODES}), "
                f"got mode {label_map.mode!r}"
            )
        return np.asarray(label_map)
    if isinstance(label_map, torch.Tensor):
        label_map = label_map.detach().cpu()
        if label_map.is_floating_point() or label_map.is_complex() or label_map.dtype == torch.bool:
            raise TypeError(f"`segmentation_maps` must hold integer class labels, got dtype {label_map.dtype}")
        return label_map.numpy()
    if isinstance(label_map, np.ndarray):
        return label_map
    raise TypeError(
        "each map in `segmentation_maps` must be a PIL image, a numpy array or a torch tensor, "
        f"got {type(label_map).__name__}"
    )


def _segmentation_maps_to_list(segmentation_maps) -> list[np.ndarray]:
    """Flat list of 2-D maps from a map, a 3-D batch of maps or a list of maps."""
    if isinstance(segmentation_maps, (np.ndarray, torch.Tensor)):
        array = _segmentation_map_to_numpy(segmentation_maps)
        if array.ndim == 2:
            return [array]
        if array.ndim == 3:
            return list(array)
        raise ValueError(
            "`segmentation_maps` must be a 2-D (height, width) map or a 3-D (batch_size, height, width) batch of "
            f"maps, got shape {tuple(array.shape)}"
        )
    if isinstance(segmentation_maps, Image.Image):
        return [_segmentation_map_to_numpy(segmentation_maps)]
    return [_segmentation_map_to_numpy(label_map) for label_map in segmentation_maps]


def _prepare_segmentation_maps(segmentation_maps, image_sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Validate class-label maps against the images (at their original sizes)."""
    label_maps = _segmentation_maps_to_list(segmentation_maps)
    if len(label_maps) != len(image_sizes):
        raise ValueError(
            f"`segmentation_maps` must hold one map per image, got {len(label_maps)} maps for {len(image_sizes)} "
            "images"
        )
    for index, (label_map, image_size) in enumerate(zip(label_maps, image_sizes, strict=True)):
        if label_map.ndim != 2:
            raise ValueError(
                f"`segmentation_maps[{index}]` must be a 2-D (height, width) map of class labels, "
                f"got shape {tuple(label_map.shape)}"
            )
        if not np.issubdtype(label_map.dtype, np.integer):
            raise TypeError(f"`segmentation_maps` must hold integer class labels, got dtype {label_map.dtype}")
        if tuple(label_map.shape) != tuple(image_size):
            raise ValueError(
                f"`segmentation_maps[{index}]` has shape {tuple(label_map.shape)} but `images[{index}]` has "
                f"(height, width) {tuple(image_size)}; give each map at its image's original size"
            )
        minimum, maximum = int(label_map.min()), int(label_map.max())
        if minimum < 0:
            raise ValueError(f"`segmentation_maps` must hold non-negative class labels, got minimum {minimum}")
        if maximum > _MAX_LABEL:
            raise ValueError(f"`segmentation_maps` labels must be at most {_MAX_LABEL}, got maximum {maximum}")
    return label_maps


def _reduce_labels(label_map: np.ndarray) -> np.ndarray:
    """SegFormer's label reduction: 0 (background) becomes the ignore label, every other label `l` becomes `l - 1`,
    and the ignore label stays itself."""
    label_map = label_map.astype(np.int64)
    reduced = label_map - 1
    reduced[(label_map == 0) | (label_map == _IGNORE_LABEL)] = _IGNORE_LABEL
    return reduced


def _resize_nearest(labels: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a map with ids `0..K-1` (K <= number of pixels, so int32 holds them)."""
    height, width = output_size
    resized = Image.fromarray(labels.astype(np.int32)).resize((width, height), resample=PILImageResampling.NEAREST)
    return np.asarray(resized).astype(np.int64)
