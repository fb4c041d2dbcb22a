# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The CAST paper's PartImageNet protocol: open-vocabulary labels for unsupervised segments, scored per image.

Facts of the protocol, read from the official repository (twke18/CAST: `docs/GETTING_STARTED_PartImageNet.md`,
`notebooks/save_segmentation_cast.ipynb`, `notebooks/eval_ovseg_cast.ipynb`, `notebooks/utils.py`,
`notebooks/dataset.py`):

- Data: PartImageNet (OOD split), COCO-style `annotations/<split>.json` whose categories are parts (`name`, e.g.
  "Quadruped Head") of objects (`supercategory`, e.g. "Quadruped"): 11 objects, 40 parts; images under
  `images/<split>/<wnid>/<file_name>` (the WordNet id is the first 9 characters of the file name).
- Geometry: every image is resized (shorter side) and center-cropped to CLIP's input size, 224; the ground truth the
  same way with nearest-neighbor resizing. The segmentations are computed on that crop.
- Ground truth: background everywhere (label = number of classes), then each annotation's mask painted with its
  object (coarse map, 11 + 1 labels) or part (fine map, 40 + 1 labels); later annotations overwrite earlier ones.
- Segments: CAST's hierarchy level with 8 segments for objects, 16 for parts.
- Labels: CLIP ViT-B/16 (OpenAI weights, not fine-tuned on masked images, unlike OVSeg) sees, for each segment, the
  whole normalized crop with every pixel outside the segment set to 0.5; the text side is "a photo of a {name}" for
  each object name and "Background". An object segment takes the best-matching object or background; a part segment
  takes the object label of its first pixel (raster order) and, unless that is background, the best-matching part
  among that object's parts.
- Score: per image, the Jaccard index (IoU) of each class, averaged over the classes (torchmetrics'
  `JaccardIndex(task="multiclass", num_classes=12)` called per image; since torchmetrics 1.0 a class absent from
  both maps is left out of the mean); the reported number is the mean over images (x 100).

Where this module differs on purpose: an object's parts are the categories whose `supercategory` it is (the
official code matches the object name as a substring of part names, the same on PartImageNet), images are never
skipped (the official loop skips any image that raises), and CLIP runs in float32 through transformers'
`CLIPModel`/`CLIPProcessor` (the official code uses open_clip under CUDA autocast).

`pycocotools` (in the `partimagenet` extra) decodes the annotations' polygons and run-length encodings.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..image_inputs_cast import integer_array, load_image, rgb_uint8_image


__all__ = [
    "BACKGROUND_NAME",
    "DEFAULT_PROMPT_TEMPLATES",
    "MASK_FILL_VALUE",
    "OBJECT_SEGMENTS",
    "PART_SEGMENTS",
    "ClipSegmentLabeler",
    "PartImageNetAnnotations",
    "PartImageNetImage",
    "label_object_segments",
    "label_part_segments",
    "open_rgb",
    "segment_objects",
    "mean_over_images",
    "per_image_jaccard",
    "crop_label_map",
    "resize_and_center_crop",
]

OBJECT_SEGMENTS = 8  # the hierarchy level scored against objects (the official "level4" of cast_base)
PART_SEGMENTS = 16  # ... and against parts ("level3")
BACKGROUND_NAME = "Background"
DEFAULT_PROMPT_TEMPLATES = ("a photo of a {}",)
# the official notebook fills the outside of a segment with 0.5 after CLIP's normalization, not before
MASK_FILL_VALUE = 0.5
_WORDNET_ID_LENGTH = 9  # "n01440764_10029.JPEG" lies in the folder "n01440764"


# ---------------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------------


def per_image_jaccard(prediction, reference, num_classes: int, absent_class_score: float | None = None) -> float:
    """
    The Jaccard index of one image, averaged over classes, as torchmetrics'
    `JaccardIndex(task="multiclass", num_classes=num_classes)` computes it for a single image.

    Args:
        prediction (`np.ndarray` or `torch.Tensor` of shape `(height, width)`):
            Predicted class of every pixel, in `[0, num_classes)`.
        reference (same shape as `prediction`):
            True class of every pixel, in `[0, num_classes)`.
        num_classes (`int`):
            Number of classes, background included (12 for PartImageNet's objects, 41 for its parts).
        absent_class_score (`float`, *optional*):
            By default a class absent from both maps is left out of the mean (torchmetrics >= 1.0). Give a value
            (torchmetrics < 1.0 counted such classes as 0) to average over all `num_classes` classes instead.

    Returns:
        `float` in `[0, 1]`.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}")
    prediction = integer_array(prediction, "prediction", what="class labels").astype(np.int64)
    reference = integer_array(reference, "reference", what="class labels").astype(np.int64)
    if prediction.shape != reference.shape or prediction.ndim != 2:
        raise ValueError(
            f"`prediction` and `reference` must be 2-D maps of the same shape, got {prediction.shape} and "
            f"{reference.shape}"
        )
    for name, labels in (("prediction", prediction), ("reference", reference)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"`{name}` values must be in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]"
            )
    counts = np.bincount(reference.ravel() * num_classes + prediction.ravel(), minlength=num_classes**2)
    confusion = counts.reshape(num_classes, num_classes)
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    if absent_class_score is None:
        return float(np.mean(intersection[present] / union[present]))
    iou = np.full(num_classes, float(absent_class_score))
    iou[present] = intersection[present] / union[present]
    return float(iou.mean())


def mean_over_images(scores) -> float:
    """The paper's average: the mean of the per-image scores (every image counts the same, whatever its size)."""
    scores = np.asarray(list(scores), dtype=np.float64)
    if scores.size == 0:
        raise ValueError("`scores` must hold at least one per-image score, got none")
    return float(scores.mean())


# ---------------------------------------------------------------------------------------------------------------
# Segment labels
# ---------------------------------------------------------------------------------------------------------------


def label_object_segments(segments: np.ndarray, segment_ids: list[int], best_classes: list[int]) -> np.ndarray:
    """Paint each segment of `segments` (ids per pixel) with the class chosen for it: `best_classes[i]` for the
    segment `segment_ids[i]`."""
    labels = np.zeros(segments.shape, dtype=np.int64)
    for segment_id, best_class in zip(segment_ids, best_classes, strict=True):
        labels[segments == segment_id] = best_class
    return labels


def segment_objects(segments: np.ndarray, object_labels: np.ndarray, segment_ids: list[int]) -> list[int]:
    """The object label at the first pixel (raster order) of each segment, which the official protocol uses to pick
    the part vocabulary of a part segment."""
    flat_segments, flat_objects = segments.ravel(), object_labels.ravel()
    return [int(flat_objects[np.flatnonzero(flat_segments == segment_id)[0]]) for segment_id in segment_ids]


def label_part_segments(
    segments: np.ndarray, segment_ids: list[int], best_parts: list[int | None], num_parts: int
) -> np.ndarray:
    """Paint each part segment with its part label: `best_parts[i]` (a part label) for the segment
    `segment_ids[i]`, or the part background `num_parts` where `best_parts[i]` is None (its object label is
    background)."""
    labels = np.full(segments.shape, num_parts, dtype=np.int64)
    for segment_id, best_part in zip(segment_ids, best_parts, strict=True):
        if best_part is not None:
            labels[segments == segment_id] = best_part
    return labels


class ClipSegmentLabeler:
    """
    Labels segments with transformers' CLIP: each segment is the whole crop with the outside filled (see the module
    docstring), compared with one text embedding per name.

    Args:
        model (`transformers.CLIPModel`): in eval mode.
        processor (`transformers.CLIPProcessor`): its image processor and tokenizer.
        object_names (`list[str]`): the object classes, in label order.
        parts_of_objects (`list[list[tuple[int, str]]]`): for every object, its parts as `(global part index, name)`.
        prompt_templates (`tuple[str, ...]`, *optional*, defaults to `("a photo of a {}",)`): with several, a
            name's embedding is the normalized mean of its normalized prompt embeddings.
    """

    def __init__(self, model, processor, object_names, parts_of_objects, prompt_templates=DEFAULT_PROMPT_TEMPLATES):
        if not prompt_templates or any("{}" not in template for template in prompt_templates):
            raise ValueError(
                f"`prompt_templates` must be one or more strings with a `{{}}` for the name, got {prompt_templates!r}"
            )
        self.model, self.processor = model, processor
        self.templates = tuple(prompt_templates)
        self.parts_of_objects = parts_of_objects
        # the object vocabulary ends with the background, whose label is the number of objects
        self.object_text = self._text_features([*object_names, BACKGROUND_NAME])
        self.part_text = [self._text_features([name for _, name in parts]) for parts in parts_of_objects]

    @property
    def crop_size(self) -> int:
        crop_size = self.processor.image_processor.crop_size
        return int(crop_size["height"])

    @torch.no_grad()
    def _text_features(self, names: list[str]) -> torch.Tensor:
        if not names:
            return torch.zeros(0, self.model.config.projection_dim)
        prompts = [template.format(name) for name in names for template in self.templates]
        tokens = self.processor.tokenizer(prompts, padding=True, return_tensors="pt").to(self.model.device)
        features = torch.nn.functional.normalize(self.model.get_text_features(**tokens).pooler_output.float(), dim=-1)
        features = features.view(len(names), len(self.templates), -1).mean(1)
        return torch.nn.functional.normalize(features, dim=-1).cpu()

    @torch.no_grad()
    def _segment_features(self, pixel_values: torch.Tensor, segments: np.ndarray, segment_ids: list[int]):
        masks = torch.from_numpy(np.stack([segments == segment_id for segment_id in segment_ids]))[:, None]
        masked = torch.where(masks, pixel_values, torch.full_like(pixel_values, MASK_FILL_VALUE))
        features = self.model.get_image_features(pixel_values=masked.to(self.model.device)).pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu()

    def pixel_values(self, crop: Image.Image) -> torch.Tensor:
        """CLIP's normalized pixels of an image already at the crop size, `(1, 3, size, size)`."""
        return self.processor.image_processor(images=crop, return_tensors="pt")["pixel_values"].float()

    def label_objects(self, pixel_values: torch.Tensor, segments: np.ndarray) -> np.ndarray:
        """Object label (background = number of objects) of every pixel, from the segment map `segments`."""
        segment_ids = [int(segment_id) for segment_id in np.unique(segments)]
        similarity = self._segment_features(pixel_values, segments, segment_ids) @ self.object_text.T
        return label_object_segments(segments, segment_ids, similarity.argmax(-1).tolist())

    def label_parts(self, pixel_values: torch.Tensor, segments: np.ndarray, object_labels: np.ndarray) -> np.ndarray:
        """Part label (background = number of parts) of every pixel: each segment among its object's parts."""
        segment_ids = [int(segment_id) for segment_id in np.unique(segments)]
        objects = segment_objects(segments, object_labels, segment_ids)
        features = self._segment_features(pixel_values, segments, segment_ids)
        best_parts = []
        for feature, object_label in zip(features, objects):
            parts = self.parts_of_objects[object_label] if object_label < len(self.parts_of_objects) else []
            if not parts:
                best_parts.append(None)
                continue
            best_parts.append(parts[int((self.part_text[object_label] @ feature).argmax())][0])
        num_parts = sum(len(parts) for parts in self.parts_of_objects)
        return label_part_segments(segments, segment_ids, best_parts, num_parts)


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def resize_and_center_crop(image: Image.Image, size: int, resample: int) -> Image.Image:
    """torchvision's `Resize(size)` (shorter side to `size`, the other `int(size * long / short)`) then
    `CenterCrop(size)` (offsets rounded), as the official transforms do, on a PIL image."""
    width, height = image.size
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    resized = image.resize((new_width, new_height), resample=resample)
    left, top = int(round((new_width - size) / 2.0)), int(round((new_height - size) / 2.0))
    return resized.crop((left, top, left + size, top + size))


def crop_label_map(label_map: np.ndarray, size: int) -> np.ndarray:
    """A label map through the same geometry, nearest-neighbor (labels stay labels)."""
    as_image = Image.fromarray(label_map.astype(np.int32), mode="I")
    return np.asarray(resize_and_center_crop(as_image, size, Image.Resampling.NEAREST)).astype(np.int64)


@dataclass
class PartImageNetImage:
    image_id: int
    path: str
    object_map: np.ndarray  # (height, width) int64, background = number of objects
    part_map: np.ndarray  # (height, width) int64, background = number of parts


class PartImageNetAnnotations:
    """
    One split of PartImageNet in its released layout (`annotations/<split>.json`, `images/<split>/...`).

    Attributes:
        object_names (`list[str]`): the supercategories, in the order they first appear among the categories.
        part_names (`list[str]`): the categories' names, in the file's order (a part's label is its index).
        parts_of_objects (`list[list[tuple[int, str]]]`): every object's parts as `(part label, name)`.
    """

    def __init__(self, data_dir: str, split: str = "val"):
        try:
            from pycocotools.coco import COCO
        except ImportError as error:
            raise ImportError(
                "Reading PartImageNet annotations needs pycocotools: pip install pycocotools "
                "(or pip install 'cast-transformers[partimagenet]')"
            ) from error
        annotation_file = os.path.join(data_dir, "annotations", f"{split}.json")
        if not os.path.isfile(annotation_file):
            raise ValueError(
                f"`data_dir` must hold PartImageNet's annotations/{split}.json, no file at {annotation_file}"
            )
        self.image_dir = os.path.join(data_dir, "images", split)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            self.coco = COCO(annotation_file)
        categories = [self.coco.cats[category_id] for category_id in sorted(self.coco.cats)]
        self.object_names: list[str] = []
        for category in categories:
            if category["supercategory"] not in self.object_names:
                self.object_names.append(category["supercategory"])
        self.part_names = [category["name"] for category in categories]
        self._part_of_category = {category["id"]: index for index, category in enumerate(categories)}
        self._object_of_category = {
            category["id"]: self.object_names.index(category["supercategory"]) for category in categories
        }
        self.parts_of_objects = [
            [(index, category["name"]) for index, category in enumerate(categories)
             if category["supercategory"] == name]
            for name in self.object_names
        ]
        self.image_ids = sorted(self.coco.imgs)

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, file_name: str) -> str:
        candidates = [
            os.path.join(self.image_dir, file_name[:_WORDNET_ID_LENGTH], file_name),
            os.path.join(self.image_dir, file_name),
        ]
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"PartImageNet image {file_name!r} is in none of {candidates}")

    def __getitem__(self, index: int) -> PartImageNetImage:
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        object_map = np.full((info["height"], info["width"]), len(self.object_names), dtype=np.int64)
        part_map = np.full((info["height"], info["width"]), len(self.part_names), dtype=np.int64)
        for annotation in self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id)):
            mask = self.coco.annToMask(annotation) > 0
            object_map[mask] = self._object_of_category[annotation["category_id"]]
            part_map[mask] = self._part_of_category[annotation["category_id"]]
        return PartImageNetImage(image_id, self.image_path(info["file_name"]), object_map, part_map)


def open_rgb(path: str) -> Image.Image:
    """The image as 8-bit RGB (16-bit files scaled, not saturated), upright."""
    return Image.fromarray(rgb_uint8_image(load_image(path), argument="image", allow_float=False))
