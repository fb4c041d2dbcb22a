# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Evaluate any CAST folder on PartImageNet the paper's way (open-vocabulary labels for CAST's segments).

Every image is resized and center-cropped to CLIP's input size; CAST segments the crop; the hierarchy level with 8
segments is labelled object by object and the one with 16 segments part by part, each segment by CLIP on the crop
with everything outside the segment blanked; per-image Jaccard over the 11 objects + background (and over the 40
parts + background) is averaged over the images. The protocol's facts and where they come from are in
`processing/evaluation/partimagenet.py`.

    pip install pycocotools
    python benchmarks/part_whole/evaluate_partimagenet.py --model_name_or_path cast-base \\
        --data_dir data/PartImageNet --split val --output_dir outputs/partimagenet_cast_base

writes `results.json` (the two means, the settings, the runtime) and `per_image.jsonl` (one line per image) into
`--output_dir`. `--clip_model_name_or_path` defaults to `openai/clip-vit-base-patch16`, the OpenAI ViT-B/16 weights
the paper used (through open_clip).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, CLIPModel, CLIPProcessor, HfArgumentParser

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:  # run as `python benchmarks/part_whole/evaluate_partimagenet.py` from a checkout
    sys.path.insert(0, str(_REPO_ROOT))

import modeling_cast  # noqa: E402,F401  (registers CAST with the Auto classes)
from processing.evaluation.partimagenet import (  # noqa: E402
    DEFAULT_PROMPT_TEMPLATES,
    OBJECT_SEGMENTS,
    PART_SEGMENTS,
    ClipSegmentLabeler,
    PartImageNetAnnotations,
    crop_label_map,
    mean_over_images,
    open_rgb,
    per_image_jaccard,
    resize_and_center_crop,
)

__all__ = ["PartImageNetArguments", "main"]

logger = logging.getLogger(__name__)

DEFAULT_CLIP = "openai/clip-vit-base-patch16"


@dataclass
class PartImageNetArguments:
    model_name_or_path: str = field(metadata={"help": "A CAST folder or released name (any CAST head)."})
    data_dir: str = field(metadata={"help": "PartImageNet root holding annotations/<split>.json and images/<split>/."})
    output_dir: str = field(metadata={"help": "Where results.json and per_image.jsonl are written."})
    split: str = field(default="val", metadata={"help": "The annotation file's name: val, test or train."})
    clip_model_name_or_path: str = field(default=DEFAULT_CLIP, metadata={"help": "CLIPModel + CLIPProcessor folder."})
    object_segments: int = field(default=OBJECT_SEGMENTS, metadata={"help": "Segments of the level scored on objects."})
    part_segments: int = field(default=PART_SEGMENTS, metadata={"help": "Segments of the level scored on parts."})
    prompt_templates: list[str] = field(
        default_factory=lambda: list(DEFAULT_PROMPT_TEMPLATES),
        metadata={"help": "Text prompts with {} for the class name; several are averaged."},
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate the first N images only."})
    device: str = field(default="cuda" if torch.cuda.is_available() else "cpu", metadata={"help": "Torch device."})

    def __post_init__(self):
        for name in ("object_segments", "part_segments"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"`--{name}` must be a positive number of segments, got {value}")
        if self.max_eval_samples is not None and self.max_eval_samples < 1:
            raise ValueError(f"`--max_eval_samples` must be positive, got {self.max_eval_samples}")


def level_with_segments(num_segments: list[int], count: int, argument: str) -> int:
    """The hierarchy level (0 = finest) whose stage keeps `count` segments."""
    if count not in num_segments:
        raise ValueError(f"`--{argument}` must be one of the model's segment counts {num_segments}, got {count}")
    return num_segments.index(count)


class CastSegmenter:
    """The hierarchy of a CAST folder at two levels, on a square crop."""

    def __init__(self, model_name_or_path: str, device: str, levels: tuple[int, int]):
        self.model = AutoModel.from_pretrained(model_name_or_path).to(device).eval()
        self.processor = AutoImageProcessor.from_pretrained(model_name_or_path)
        self.levels = list(levels)

    @torch.no_grad()
    def __call__(self, crop: Image.Image) -> np.ndarray:
        """`(2, size, size)` segment ids of the crop at the two levels."""
        inputs = self.processor(images=crop, return_tensors="pt").to(self.model.device)
        outputs = self.model(**inputs, output_hierarchy=True)
        maps = self.processor.post_process_hierarchical_segmentation(
            outputs, target_sizes=[(crop.height, crop.width)], levels=self.levels
        )[0]
        return maps.cpu().numpy()


def evaluate(args: PartImageNetArguments) -> dict:
    annotations = PartImageNetAnnotations(args.data_dir, args.split)
    clip = CLIPModel.from_pretrained(args.clip_model_name_or_path).to(args.device).eval()
    labeler = ClipSegmentLabeler(
        clip, CLIPProcessor.from_pretrained(args.clip_model_name_or_path), annotations.object_names,
        annotations.parts_of_objects, tuple(args.prompt_templates),
    )
    num_segments = list(modeling_cast.CastConfig.from_pretrained(args.model_name_or_path).num_segments)
    levels = (
        level_with_segments(num_segments, args.object_segments, "object_segments"),
        level_with_segments(num_segments, args.part_segments, "part_segments"),
    )
    segmenter = CastSegmenter(args.model_name_or_path, args.device, levels)
    num_objects, num_parts = len(annotations.object_names) + 1, len(annotations.part_names) + 1
    size = labeler.crop_size
    count = len(annotations) if args.max_eval_samples is None else min(args.max_eval_samples, len(annotations))
    os.makedirs(args.output_dir, exist_ok=True)
    started = time.perf_counter()
    per_image = []
    with open(os.path.join(args.output_dir, "per_image.jsonl"), "w", encoding="utf-8") as lines:
        for index in range(count):
            sample = annotations[index]
            image = open_rgb(sample.path)
            # the official inputs: bilinear resize for CAST, bicubic for CLIP, the same crop for both
            object_segments, part_segments = segmenter(resize_and_center_crop(image, size, Image.Resampling.BILINEAR))
            pixel_values = labeler.pixel_values(resize_and_center_crop(image, size, Image.Resampling.BICUBIC))
            object_labels = labeler.label_objects(pixel_values, object_segments)
            part_labels = labeler.label_parts(pixel_values, part_segments, object_labels)
            object_reference = crop_label_map(sample.object_map, size)
            part_reference = crop_label_map(sample.part_map, size)
            scores = {
                "image_id": sample.image_id,
                "file_name": os.path.basename(sample.path),
                "object_jaccard": per_image_jaccard(object_labels, object_reference, num_objects),
                "part_jaccard": per_image_jaccard(part_labels, part_reference, num_parts),
            }
            per_image.append(scores)
            lines.write(json.dumps(scores) + "\n")
            if (index + 1) % 100 == 0:
                logger.info("%d/%d images: object mIoU %.2f", index + 1, count,
                            100 * mean_over_images(s["object_jaccard"] for s in per_image))
    results = {
        "object_miou": 100 * mean_over_images(s["object_jaccard"] for s in per_image),
        "part_miou": 100 * mean_over_images(s["part_jaccard"] for s in per_image),
        "num_images": len(per_image),
        "num_object_classes": num_objects,
        "num_part_classes": num_parts,
        "crop_size": size,
        "seconds": round(time.perf_counter() - started, 1),
        "arguments": asdict(args),
    }
    with open(os.path.join(args.output_dir, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    logger.info("object mIoU %.2f, part mIoU %.2f on %d images", results["object_miou"], results["part_miou"],
                results["num_images"])
    return results


def main(argv: list[str] | None = None) -> dict:
    (args,) = HfArgumentParser(PartImageNetArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.INFO)
    return evaluate(args)


if __name__ == "__main__":
    main()
