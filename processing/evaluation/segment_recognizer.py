# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""A recognizer that labels unsupervised segments, in place of the oracle labeling.

The CAST paper scores PartImageNet segments by naming each with an open-vocabulary classifier (CLIP on the masked
segment): a segment that does not look like a whole object (or part) gets a wrong name, and a wrong name zeroes its
IoU. The oracle labeling of `metrics.oracle_segment_labels` instead gives each segment its best label, so it never
involves recognition and rewards many scattered segments. This module is the small-scale stand-in for that
classifier: a little CNN trained on *ground-truth* masked segments of a labeled split (whole objects with their
class, the background, and every part with its part id), then applied to predicted segments. It labels each segment
as background or an object class, then labels the segments of an object class with one of that class's parts.

Segments are shown to the network as their bounding-box crop resized to `crop_size`, pixels outside the segment
set to zero, plus the mask as a fourth channel.

```python
>>> from processing.evaluation.segment_recognizer import SegmentRecognizer
>>> recognizer = SegmentRecognizer(num_object_labels=5, num_part_labels=17)
>>> recognizer.crop_size
16
```
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


__all__ = ["SegmentRecognizer", "label_segment_maps", "label_segments", "masked_segment_crops", "train_segment_recognizer"]

_MAX_UINT8 = 255.0
_CROP_MARGIN = 0.1  # the crop extends this fraction of the box beyond it: the outline stays visible


class SegmentRecognizer(nn.Module):
    """A small CNN with two heads over masked segment crops: `object_logits` (0 = background, `c + 1` = object
    class `c`) and `part_logits` (part ids, 0 = background).

    Args:
        num_object_labels (`int`): background plus the object classes.
        num_part_labels (`int`): background plus the part ids.
        crop_size (`int`, *optional*, defaults to 16): side of the crops, a multiple of 8.
        width (`int`, *optional*, defaults to 16): channels of the first convolution (doubled twice).
    """

    def __init__(self, num_object_labels: int, num_part_labels: int, crop_size: int = 16, width: int = 16):
        super().__init__()
        for name, value, minimum in (("num_object_labels", num_object_labels, 2), ("num_part_labels", num_part_labels, 2),
                                     ("crop_size", crop_size, 8), ("width", width, 1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
        if crop_size % 8:
            raise ValueError(f"`crop_size` must be a multiple of 8, got {crop_size}")
        self.crop_size = crop_size
        layers, channels = [], 4
        for out_channels in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.object_head = nn.Linear(channels, num_object_labels)
        self.part_head = nn.Linear(channels, num_part_labels)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`crops` (batch, 4, crop_size, crop_size) -> (object logits, part logits)."""
        features = self.features(crops)
        return self.object_head(features), self.part_head(features)


def masked_segment_crops(image: np.ndarray, masks, crop_size: int = 16) -> torch.Tensor:
    """
    Crops of one image's segments: the bounding box (plus a margin) of each mask, resized bilinearly to
    `crop_size`, RGB scaled to [0, 1] and zero outside the mask, with the mask as a fourth channel.

    Args:
        image (`np.ndarray` of shape `(height, width, 3)`, uint8): the image.
        masks (`np.ndarray` of shape `(num_segments, height, width)`, bool, or a list of such masks): non-empty.

    Returns:
        `torch.FloatTensor` of shape `(num_segments, 4, crop_size, crop_size)`.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"`image` must be a (height, width, 3) array, got shape {image.shape}")
    pixels = torch.from_numpy(image.astype(np.float32) / _MAX_UINT8).permute(2, 0, 1)
    height, width = image.shape[:2]
    crops = []
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width) or not mask.any():
            raise ValueError(f"every mask must be a non-empty ({height}, {width}) map, got shape {mask.shape}")
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        margin_rows = int(np.ceil((rows[-1] - rows[0] + 1) * _CROP_MARGIN))
        margin_cols = int(np.ceil((cols[-1] - cols[0] + 1) * _CROP_MARGIN))
        top, bottom = max(0, rows[0] - margin_rows), min(height, rows[-1] + 1 + margin_rows)
        left, right = max(0, cols[0] - margin_cols), min(width, cols[-1] + 1 + margin_cols)
        inside = torch.from_numpy(mask[top:bottom, left:right]).float()[None]
        stacked = torch.cat([pixels[:, top:bottom, left:right] * inside, inside])[None]
        crops.append(F.interpolate(stacked, size=(crop_size, crop_size), mode="bilinear", align_corners=False)[0])
    return torch.stack(crops)


def _ground_truth_segments(image, object_mask, part_mask, object_label: int | None):
    """The labeled masks of one training image: background, the whole object (when there is one) and each part."""
    masks, object_targets, part_targets = [], [], []
    background = part_mask == 0
    if background.any():
        masks.append(background)
        object_targets.append(0)
        part_targets.append(0)
    if object_label is not None and (object_mask > 0).any():
        masks.append(object_mask > 0)
        object_targets.append(object_label + 1)
        part_targets.append(-100)  # a whole object is no single part: no part target
    for part_id in np.unique(part_mask[part_mask > 0]):
        masks.append(part_mask == part_id)
        object_targets.append(-100)  # a part alone is not the object
        part_targets.append(int(part_id))
    return masks, object_targets, part_targets


def train_segment_recognizer(
    samples,
    num_object_labels: int,
    num_part_labels: int,
    epochs: int = 6,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    crop_size: int = 16,
    seed: int = 0,
) -> tuple[SegmentRecognizer, dict]:
    """
    Train a [`SegmentRecognizer`] on the ground-truth segments of a labeled split.

    Args:
        samples (iterable of objects with `image`, `object_mask`, `part_mask` and `label`): e.g. part-whole samples.
            Images whose object mask is empty (part soup) contribute their background and parts only.
        num_object_labels (`int`): background plus the object classes (the object head's size).
        num_part_labels (`int`): background plus the part ids.
        epochs, batch_size, learning_rate: AdamW training with a cosine schedule.
        crop_size (`int`, *optional*, defaults to 16): crop side.
        seed (`int`, *optional*, defaults to 0): seed of the initialization and the batch order.

    Returns:
        `(recognizer, info)`: the trained recognizer in eval mode, and `{"num_segments": int, "final_loss": float}`.
    """
    crops, object_targets, part_targets = [], [], []
    for sample in samples:
        has_object = bool((sample.object_mask > 0).any())
        masks, objects, parts = _ground_truth_segments(
            sample.image, sample.object_mask, sample.part_mask, int(sample.label) if has_object else None
        )
        crops.append(masked_segment_crops(sample.image, masks, crop_size))
        object_targets += objects
        part_targets += parts
    if not crops:
        raise ValueError("`samples` must hold at least one sample")
    crops = torch.cat(crops)
    object_targets, part_targets = torch.tensor(object_targets), torch.tensor(part_targets)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    recognizer = SegmentRecognizer(num_object_labels, num_part_labels, crop_size)
    steps = epochs * -(-len(crops) // batch_size)
    optimizer = torch.optim.AdamW(recognizer.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    recognizer.train()
    loss = torch.zeros(())
    for _ in range(epochs):
        order = torch.randperm(len(crops), generator=generator)
        for start in range(0, len(crops), batch_size):
            batch = order[start : start + batch_size]
            batch_crops = crops[batch]
            flip = torch.rand(len(batch), generator=generator) < 0.5  # mirror invariance, as the objects are mirrored
            batch_crops = torch.where(flip[:, None, None, None], batch_crops.flip(-1), batch_crops)
            object_logits, part_logits = recognizer(batch_crops)
            loss = _masked_cross_entropy(object_logits, object_targets[batch]) + _masked_cross_entropy(part_logits, part_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    recognizer.eval()
    return recognizer, {"num_segments": len(crops), "final_loss": float(loss.detach())}


def _masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # a batch may hold no target for one head (ignore_index only): its loss is then 0, not NaN
    if bool((targets != -100).any()):
        return F.cross_entropy(logits, targets, ignore_index=-100)
    return logits.sum() * 0.0


def label_segments(
    recognizer: SegmentRecognizer, image: np.ndarray, segments, parts_of_class: dict[int, tuple[int, ...]]
) -> tuple[np.ndarray, np.ndarray]:
    """
    Label every segment of one image: background or an object class first, then, for a segment labeled with
    object class `c`, the most likely of `parts_of_class[c]`.

    Args:
        recognizer ([`SegmentRecognizer`]): trained.
        image (`np.ndarray` of shape `(height, width, 3)`, uint8).
        segments (`np.ndarray` of shape `(height, width)`): non-negative segment ids.
        parts_of_class (`dict[int, tuple[int, ...]]`): object class -> its part ids.

    Returns:
        `(object_map, part_map)`: int64 `(height, width)` maps; `object_map` holds 0 (background) or `c + 1`,
        `part_map` 0 or a part id (the same convention as the part-whole masks).
    """
    return label_segment_maps(recognizer, [image], [segments], parts_of_class)[0]


@torch.no_grad()
def label_segment_maps(
    recognizer: SegmentRecognizer, images, segment_maps, parts_of_class: dict[int, tuple[int, ...]], batch_size: int = 512
) -> list[tuple[np.ndarray, np.ndarray]]:
    """[`label_segments`] for many images, with the crops of all of them classified in batches (one small
    forward pass per segment would cost far more than the network)."""
    crops, layouts = [], []
    for image, segments in zip(images, segment_maps):
        segments = np.asarray(segments)
        ids, index = np.unique(segments, return_inverse=True)
        index = index.reshape(segments.shape)
        crops.append(masked_segment_crops(image, [index == position for position in range(len(ids))], recognizer.crop_size))
        layouts.append(index)
    crops = torch.cat(crops)
    logits = [recognizer(crops[start : start + batch_size]) for start in range(0, len(crops), batch_size)]
    object_logits, part_logits = torch.cat([item[0] for item in logits]), torch.cat([item[1] for item in logits])
    object_labels = object_logits.argmax(-1).numpy()
    part_labels = np.zeros(len(object_labels), dtype=np.int64)
    for position, object_label in enumerate(object_labels):
        if object_label > 0:
            allowed = list(parts_of_class[int(object_label) - 1])
            part_labels[position] = allowed[int(part_logits[position, allowed].argmax())]
    results, offset = [], 0
    for index in layouts:
        count = int(index.max()) + 1
        objects, parts = object_labels[offset : offset + count].astype(np.int64), part_labels[offset : offset + count]
        results.append((objects[index], parts[index]))
        offset += count
    return results
