# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Turning CAST model outputs into segmentations: the tensor work behind `CastImageProcessor.post_process_*`.

CAST outputs hold `hierarchy` (int64 `(batch_size, num_levels, height, width)`: the segment id of every input pixel at
each level, finest level first) and `hierarchy_scores` (float, same shape: each pixel's assignment probability). A
segmentation head would instead (or also) hold per-pixel class `logits` `(batch_size, num_labels, height, width)`.
Outputs are read by key, so any mapping or `ModelOutput` works and the model package is never imported. Every
`post_process_*` method checks its inputs once, with [`check_outputs`], and then builds its results from the
[`CheckedOutputs`].

Hub-flat: imports only torch, the public `transformers` API, the standard library and its sibling
`image_inputs_cast`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers.image_processing_outputs import SemanticSegmentationPostProcessorOutput

from .image_inputs_cast import check_integer_dtype, check_non_negative


__all__ = [
    "CheckedOutputs",
    "check_level_type",
    "check_outputs",
    "class_maps",
    "class_segments",
    "get_output",
    "hierarchy_label_maps",
    "level_segments",
    "nearest_resize",
    "resolve_levels",
    "resolve_target_sizes",
    "segment_statistics",
    "segmentation_logits",
]

_SEGMENTATION_LOGITS_NDIM = 4  # (batch_size, num_labels, height, width); image classifiers have 2-D logits
_HIERARCHY_NDIM = 4  # (batch_size, num_levels, height, width)


@dataclass(frozen=True)
class CheckedOutputs:
    """
    What post-processing reads from one model output, checked once by [`check_outputs`].

    Args:
        target_sizes (`list[tuple[int, int]]`): `(height, width)` of every image's result.
        hierarchy (`torch.Tensor` of shape `(batch_size, num_levels, height, width)`, *optional*): integer segment
            ids (read from hierarchies).
        scores (`torch.Tensor` of the shape of `hierarchy`, *optional*): float assignment probabilities, when asked.
        levels (`list[int]`, *optional*): the requested levels as non-negative indices (read from hierarchies).
        logits (`torch.Tensor` of shape `(batch_size, num_labels, height, width)`, *optional*): class logits of a
            segmentation head (read from logits).
    """

    target_sizes: list[tuple[int, int]]
    hierarchy: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    levels: list[int] | None = None
    logits: torch.Tensor | None = None


def get_output(outputs, name: str):
    """`outputs[name]` for mappings and `ModelOutput`s (None when absent), else the attribute `name`."""
    if isinstance(outputs, Mapping):
        return outputs.get(name)
    return getattr(outputs, name, None)


def segmentation_logits(outputs) -> torch.Tensor | None:
    """Per-pixel class logits `(batch_size, num_labels, height, width)` of a segmentation head, or None."""
    logits = get_output(outputs, "logits")
    if isinstance(logits, torch.Tensor) and logits.ndim == _SEGMENTATION_LOGITS_NDIM:
        return logits
    return None


def check_outputs(
    outputs,
    target_sizes=None,
    *,
    read: str = "hierarchy",
    levels=None,
    levels_argument: str = "levels",
    single_level: bool = False,
    return_scores: bool = False,
) -> CheckedOutputs:
    """
    The one validator of every `post_process_*` method: reads and checks, once, what the method needs.

    Args:
        outputs (`ModelOutput` or `Mapping`):
            Output of a CAST model, read by key.
        target_sizes (`list[tuple[int, int]]` or `torch.Tensor` of shape `(batch_size, 2)`, *optional*):
            `(height, width)` of each result; by default the size of the hierarchy (or logits).
        read (`str`, *optional*, defaults to `"hierarchy"`):
            `"hierarchy"` (`hierarchy`, and `hierarchy_scores` with `return_scores`) or `"logits"` (per-pixel class
            logits of a segmentation head).
        levels (`int` or `list[int]`, *optional*):
            Levels of the hierarchy to return (all by default); negative values count from the coarsest.
        levels_argument (`str`, *optional*, defaults to `"levels"`):
            Name of the argument `levels` came in, for error messages.
        single_level (`bool`, *optional*, defaults to `False`):
            Whether `levels` must be one int (panoptic and instance segmentation).
        return_scores (`bool`, *optional*, defaults to `False`):
            Whether `hierarchy_scores` are needed.
    """
    if read == "logits":
        logits = segmentation_logits(outputs)
        if logits is None:
            raise ValueError(
                "`outputs` must carry per-pixel class `logits` of shape (batch_size, num_labels, height, width) "
                "from a segmentation head for semantic segmentation; the segments of CAST backbones and image "
                "classifiers come from `post_process_hierarchical_segmentation` or "
                "`post_process_panoptic_segmentation`"
            )
        sizes = resolve_target_sizes(target_sizes, logits.shape[0], tuple(logits.shape[-2:]))
        return CheckedOutputs(target_sizes=sizes, logits=logits)
    if single_level:
        check_level_type(levels, levels_argument)
    hierarchy = _checked_hierarchy(outputs)
    scores = _checked_scores(outputs, hierarchy) if return_scores else None
    batch_size, num_levels = hierarchy.shape[:2]
    sizes = resolve_target_sizes(target_sizes, batch_size, tuple(hierarchy.shape[-2:]))
    level_indices = resolve_levels(levels, num_levels, argument=levels_argument)
    return CheckedOutputs(target_sizes=sizes, hierarchy=hierarchy, scores=scores, levels=level_indices)


def hierarchy_label_maps(checked: CheckedOutputs) -> list[torch.Tensor] | list[dict]:
    """
    Label maps of the checked levels at the target sizes, one `(num_levels, height, width)` tensor per image; when
    the scores were checked (`return_scores`), one dict per image with `"segmentation"` and `"segments_info"` (per
    level, per segment: id, level, mean score, pixel count).

    The whole batch is handled at once: images that share a target size are resized together, and the statistics
    of every segment of every level and image come from two `bincount`s at the model's resolution (see
    [`segment_statistics`]), not from the resized maps.
    """
    hierarchy = checked.hierarchy[:, checked.levels]
    segmentations = _resize_label_maps(hierarchy, checked.target_sizes)
    if checked.scores is None:
        return segmentations
    statistics = segment_statistics(hierarchy, checked.scores[:, checked.levels], checked.target_sizes)
    return [
        {
            "segmentation": segmentation,
            "segments_info": [
                [
                    {"id": segment_id, "level": level, "score": score, "area": area}
                    for segment_id, score, area in level_statistics
                ]
                for level_statistics, level in zip(image_statistics, checked.levels)
            ],
        }
        for segmentation, image_statistics in zip(segmentations, statistics)
    ]


def segment_statistics(
    hierarchy: torch.Tensor, scores: torch.Tensor, target_sizes: list[tuple[int, int]]
) -> list[list[list[tuple[int, float, int]]]]:
    """
    `(id, mean score, pixel count)` of every segment present in the nearest-resized maps of a batch, per image and
    level, by increasing id, computed without resizing.

    Nearest resizing ([`nearest_resize`]) copies each source pixel to the output pixels whose rows and columns read
    it, so a source pixel weighs (output rows reading its row) x (output columns reading its column). One weighted
    `bincount` over all images and levels gives the areas, another the score sums. The sums equal those over the
    resized maps exactly whenever float64 adds them without rounding, which holds for CAST's scores (softmax maxima,
    at least 1 / number of segments) on images below 2**24 pixels; otherwise they differ in the last bits.

    Args:
        hierarchy (`torch.Tensor` of shape `(batch_size, num_levels, height, width)`):
            Non-negative integer segment ids.
        scores (`torch.Tensor` of the shape of `hierarchy`):
            Float scores of the pixels.
        target_sizes (`list[tuple[int, int]]`):
            `(height, width)` each image is resized to.
    """
    batch_size, num_levels, height, width = hierarchy.shape
    weights = torch.stack([_replication_weights((height, width), size, hierarchy.device) for size in target_sizes])
    weights = weights[:, None].expand(-1, num_levels, -1, -1)
    num_ids, id_values = int(hierarchy.max()) + 1, None
    if num_ids > height * width:
        # sparse ids (user maps): number them densely first, so that the bins below stay few
        id_values, hierarchy = torch.unique(hierarchy, return_inverse=True)
        num_ids = id_values.numel()
    # one id range per (image, level): segment k of map m becomes m * num_ids + k
    map_offsets = torch.arange(batch_size * num_levels, device=hierarchy.device).view(batch_size, num_levels, 1, 1)
    ids = (hierarchy.long() + map_offsets * num_ids).flatten()
    total = batch_size * num_levels * num_ids
    areas = torch.bincount(ids, weights=weights.flatten(), minlength=total).long().view(-1, num_ids)
    score_sums = torch.bincount(ids, weights=(scores.double() * weights).flatten(), minlength=total).view(-1, num_ids)
    present = areas > 0
    # one transfer to Python for the whole batch, then per-map slices of flat lists
    per_map_counts = present.sum(dim=1).tolist()
    flat_ids = present.nonzero()[:, 1]
    flat_ids = (flat_ids if id_values is None else id_values[flat_ids]).tolist()
    flat_areas = areas[present]
    flat_scores = (score_sums[present] / flat_areas).tolist()
    flat_areas = flat_areas.tolist()
    results, start = [], 0
    for image in range(batch_size):
        image_statistics = []
        for count in per_map_counts[image * num_levels:(image + 1) * num_levels]:
            end = start + count
            image_statistics.append(list(zip(flat_ids[start:end], flat_scores[start:end], flat_areas[start:end])))
            start = end
        results.append(image_statistics)
    return results


def class_maps(
    checked: CheckedOutputs, return_segmentation_scores: bool = False
) -> list[torch.Tensor] | list[SemanticSegmentationPostProcessorOutput]:
    """Class maps from checked logits (resized bilinearly, then the argmax), with the resized logits if asked."""
    results = []
    for resized in _resize_by_size(checked.logits, checked.target_sizes, _resize_logits):
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


def level_segments(checked: CheckedOutputs) -> list[dict]:
    """
    Panoptic-style results: per image, `"segmentation"` `(height, width)` and `"segments_info"`. From logits, one
    segment per predicted class ([`class_segments`]); from a hierarchy, the segments of its one checked level, whose
    label id `(level, id)` is never a class id (a CAST config's `id2label` names it "level l segment k").
    """
    if checked.logits is not None:
        results = []
        for resized in _resize_by_size(checked.logits, checked.target_sizes, _resize_logits):
            segmentation, segments_info = class_segments(resized)
            results.append({"segmentation": segmentation, "segments_info": segments_info})
        return results
    return [
        {
            "segmentation": result["segmentation"][0],
            "segments_info": [
                {"id": segment["id"], "label_id": (segment["level"], segment["id"]), "was_fused": False,
                 "score": segment["score"]}
                for segment in result["segments_info"][0]
            ],
        }
        for result in hierarchy_label_maps(checked)
    ]


def check_level_type(level, argument: str) -> None:
    """TypeError unless `level` is an int (a level index of the hierarchy)."""
    if not _is_int(level):
        raise TypeError(
            f"`{argument}` must be an int (0 = finest level, -1 = coarsest), got {type(level).__name__} {level!r}"
        )


def _checked_hierarchy(outputs) -> torch.Tensor:
    """The `hierarchy` of `outputs`, checked: a 4-D integer tensor `(batch_size, num_levels, height, width)`."""
    hierarchy = get_output(outputs, "hierarchy")
    if hierarchy is None:
        raise ValueError(
            "`outputs` must carry a `hierarchy` (the output of a CAST model: `(batch_size, num_levels, height, "
            f"width)` segment ids), got an output with keys {_keys(outputs)}"
        )
    if not isinstance(hierarchy, torch.Tensor):
        raise TypeError(f"`outputs['hierarchy']` must be a torch.Tensor, got {type(hierarchy).__name__}")
    check_integer_dtype(hierarchy, "outputs['hierarchy']", "segment ids")
    if hierarchy.ndim != _HIERARCHY_NDIM or 0 in hierarchy.shape:
        raise ValueError(
            "`outputs['hierarchy']` must have shape (batch_size, num_levels, height, width) with no empty "
            f"dimension, got {tuple(hierarchy.shape)}"
        )
    check_non_negative(hierarchy, "outputs['hierarchy']", "segment ids")
    return hierarchy


def _checked_scores(outputs, hierarchy: torch.Tensor) -> torch.Tensor:
    """The `hierarchy_scores` of `outputs`, checked against `hierarchy`."""
    scores = get_output(outputs, "hierarchy_scores")
    if scores is None:
        raise ValueError(
            "`outputs` must carry `hierarchy_scores` to score segments (CAST models return them), got an output "
            f"with keys {_keys(outputs)}"
        )
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise TypeError(
            "`outputs['hierarchy_scores']` must be a floating-point torch.Tensor, got "
            f"{getattr(scores, 'dtype', type(scores).__name__)}"
        )
    if scores.shape != hierarchy.shape:
        raise ValueError(
            f"`outputs['hierarchy_scores']` must have the shape of `outputs['hierarchy']` {tuple(hierarchy.shape)}, "
            f"got {tuple(scores.shape)}"
        )
    return scores


def resolve_target_sizes(target_sizes, batch_size: int, default_size: tuple[int, int]) -> list[tuple[int, int]]:
    """One `(height, width)` per image: `default_size` for all when `target_sizes` is None."""
    if target_sizes is None:
        return [tuple(default_size)] * batch_size
    if isinstance(target_sizes, torch.Tensor):
        target_sizes = target_sizes.tolist()
    elif hasattr(target_sizes, "tolist") and not isinstance(target_sizes, (list, tuple)):
        target_sizes = target_sizes.tolist()  # numpy arrays
    if not isinstance(target_sizes, Sequence) or isinstance(target_sizes, str):
        raise TypeError(
            f"`target_sizes` must be a list of (height, width) pairs, got {type(target_sizes).__name__}"
        )
    if len(target_sizes) != batch_size:
        raise ValueError(
            f"`target_sizes` must hold one (height, width) per image, got {len(target_sizes)} sizes for a batch of "
            f"{batch_size}"
        )
    sizes = []
    for size in target_sizes:
        if (
            not isinstance(size, Sequence)
            or len(size) != 2
            or not all(_is_int(side) and side > 0 for side in size)
        ):
            raise ValueError(f"each entry of `target_sizes` must be a (height, width) of positive ints, got {size!r}")
        sizes.append((int(size[0]), int(size[1])))
    return sizes


def resolve_levels(levels, num_levels: int, argument: str = "levels") -> list[int]:
    """Non-negative level indices from None (all), an int or a list of ints (negative ints count from the end)."""
    if levels is None:
        return list(range(num_levels))
    single = _is_int(levels)
    if not single and not (isinstance(levels, Sequence) and not isinstance(levels, str)):
        raise TypeError(f"`{argument}` must be an int or a list of ints, got {type(levels).__name__}")
    requested = [levels] if single else list(levels)
    if not requested:
        raise ValueError(f"`{argument}` must name at least one level, got an empty list")
    resolved = []
    for level in requested:
        if not _is_int(level):
            raise TypeError(f"`{argument}` must hold ints, got {type(level).__name__} {level!r}")
        if not -num_levels <= level < num_levels:
            raise ValueError(
                f"`{argument}` must be in [{-num_levels}, {num_levels - 1}] for a hierarchy of {num_levels} levels, "
                f"got {level}"
            )
        resolved.append(int(level) % num_levels)
    return resolved


def nearest_resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbor resize of `(..., height, width)` maps to `size`, sampling at pixel centers: output row `i`
    reads input row `floor((i + 0.5) * in_height / out_height)`, likewise for columns (so upscaling by an integer
    factor repeats every pixel exactly).

    One index map serves every leading slice, so levels resized together stay nested: two pixels that share a fine
    segment read the same source pixel's ids at every level.
    """
    in_height, in_width = maps.shape[-2:]
    out_height, out_width = size
    if (in_height, in_width) == (out_height, out_width):
        return maps
    rows = _center_indices(in_height, out_height, maps.device)
    cols = _center_indices(in_width, out_width, maps.device)
    # columns first, on the input's few rows; then rows, each a contiguous copy (3-4x faster than the other order)
    return maps.index_select(-1, cols).index_select(-2, rows)


def _resize_label_maps(maps: torch.Tensor, target_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Nearest resize of `(batch_size, ...)` integer maps to one size per image, as int64."""
    # the copies run on the narrowest integer type that holds the ids: int64 only for the final maps
    maps = maps.to(_narrowest_integer_dtype(int(maps.max())))
    return _resize_by_size(maps, target_sizes, lambda group, size: nearest_resize(group, size).long())


def _resize_by_size(maps: torch.Tensor, target_sizes: list[tuple[int, int]], resize) -> list[torch.Tensor]:
    """`resize(group, size)` of `(batch_size, ...)` maps to one size per image: one call per distinct size, on all
    the images that share it; returns one tensor per image."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(target_sizes):
        by_size.setdefault(size, []).append(index)
    results: list[torch.Tensor | None] = [None] * len(target_sizes)
    for size, indices in by_size.items():
        group = maps if len(indices) == len(target_sizes) else maps[indices]
        resized = resize(group, size)
        for position, index in enumerate(indices):
            results[index] = resized[position]
    return results


def _narrowest_integer_dtype(largest: int) -> torch.dtype:
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if largest <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def _replication_weights(in_size: tuple[int, int], out_size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Float64 `(in_height, in_width)`: how many output pixels of [`nearest_resize`] to `out_size` copy each input
    pixel."""
    row_counts = torch.bincount(_center_indices(in_size[0], out_size[0], device), minlength=in_size[0])
    col_counts = torch.bincount(_center_indices(in_size[1], out_size[1], device), minlength=in_size[1])
    return (row_counts[:, None] * col_counts[None, :]).double()


def _resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of class logits `(batch_size, num_labels, height, width)` (the transformers convention)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def class_segments(logits: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
    """One segment per predicted class of `(num_labels, height, width)` logits: the class map and, per class
    present, its id (= the class), label id and mean winning probability."""
    winning, classes = logits.float().softmax(dim=0).max(dim=0)
    segments = [
        {"id": class_id, "label_id": class_id, "was_fused": False, "score": score}
        for class_id, score, _ in _segment_statistics(classes, winning)
    ]
    return classes, segments


def _segment_statistics(segmentation: torch.Tensor, scores: torch.Tensor) -> list[tuple[int, float, int]]:
    """`(id, mean score, pixel count)` of every id present in a map of non-negative ids, by increasing id."""
    ids = segmentation.flatten()
    num_ids = int(ids.max()) + 1
    areas = torch.bincount(ids, minlength=num_ids)
    score_sums = torch.bincount(ids, weights=scores.flatten().double(), minlength=num_ids)
    present = torch.nonzero(areas).flatten()
    mean_scores = (score_sums[present] / areas[present]).tolist()
    return list(zip(present.tolist(), mean_scores, areas[present].tolist()))


def _center_indices(in_length: int, out_length: int, device: torch.device) -> torch.Tensor:
    # output pixel i covers [i, i + 1) * in/out in input pixels; take the input pixel under its center
    positions = (torch.arange(out_length, device=device, dtype=torch.float64) + 0.5) * (in_length / out_length)
    return positions.floor().long().clamp_(0, in_length - 1)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _keys(outputs) -> list[str]:
    if isinstance(outputs, Mapping):
        return list(outputs.keys())
    return sorted(name for name in vars(outputs) if not name.startswith("_")) if hasattr(outputs, "__dict__") else []
