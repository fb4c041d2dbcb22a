# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`cast-segment`: segment image files with a CAST checkpoint and write pictures, label maps and segment scores.

For every input image `<stem>.<ext>` the output directory receives:

- `<stem>_hierarchy.png`: the image and every level of its hierarchy side by side (see `processing.visualization_cast`);
- `<stem>_overlay.png`: the same levels blended over the photo, each panel captioned with its level and segment count;
- `<stem>_level<l>.png`: the label map of level `l` at the image's original size (level 0 is the finest), 8-bit when
  the level has at most 256 segments, else 16-bit;
- `<stem>_level<l>_color.png`: the same label map for people: an indexed-palette PNG whose pixel values are still the
  segment ids and whose palette holds the picture's colors (an RGB PNG when the ids do not fit in a palette);
- `<stem>_segments.json`: image size, model, and per level the id, score (mean assignment probability) and area of
  every segment; with `--adaptation-steps N`, also `"adaptation"`: the steps, the levels that changed and the losses.

`--adaptation-steps N` adapts the model to every image first (test-time adaptation with the checkpoint's recognition
objective, `modeling_cast.adaptation_cast`), which needs a classifier or pretraining checkpoint; the model is restored
after each image.

Images that cannot be read or segmented are reported on stderr, one line each, and skipped; the others are still
written. Exit status: 0 when every image was segmented, 1 when some failed, 2 for bad arguments (including a model
that cannot be loaded).

The console script is installed as `modeling_cast:segment_main`, because the "cast" model type must be registered
with the Auto classes (by `import modeling_cast`) before a checkpoint is loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, AutoModelForPreTraining
from transformers.utils import logging as transformers_logging

from processing.image_inputs_cast import rgb_uint8_image
from processing.visualization_cast import hierarchy_colors, hierarchy_label_maps, save_hierarchy_picture


__all__ = ["build_parser", "load_cast_model", "main"]

PROGRAM = "cast-segment"
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_BAD_ARGUMENTS = 2
_UINT8_LABELS = 256  # label maps with at most this many ids fit in 8 bits
_UINT16_LABELS = 65536
_DEVICES = ("cpu", "cuda")
CAST_MODEL_TYPE = "cast"
# the heads whose recognition objective test-time adaptation uses, by the architecture a checkpoint was saved as
_ADAPTABLE_ARCHITECTURES = {
    "CastForImageClassification": AutoModelForImageClassification,
    "CastForPreTraining": AutoModelForPreTraining,
}


def build_parser() -> argparse.ArgumentParser:
    """The `cast-segment` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Segment images with a CAST model. For each IMAGE, writes to --output-dir the pictures "
            "<stem>_hierarchy.png (the image and every level side by side) and <stem>_overlay.png (the levels over "
            "the photo, captioned), one label map <stem>_level<l>.png per level (level 0 is the finest; ids are "
            "segment ids, at the image's original size) with its color view <stem>_level<l>_color.png, and "
            "<stem>_segments.json (score and area of every segment). Unreadable images are reported and skipped; "
            "the exit status is then 1."
        ),
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to segment")
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH_OR_NAME",
        help="a CAST model folder, or the name of a checkpoint in the local Hugging Face cache",
    )
    parser.add_argument("--output-dir", required=True, type=Path, metavar="DIR", help="where to write the outputs")
    parser.add_argument(
        "--level",
        type=int,
        metavar="N",
        help=(
            "write the label map and segment list of level N only (0 = finest, negative values count from the "
            "coarsest, -1 = coarsest); the picture always shows every level. Default: all levels"
        ),
    )
    parser.add_argument(
        "--n-segments",
        type=_positive_int,
        metavar="K",
        help="approximate number of superpixels per image (default: the image processor's n_segments)",
    )
    parser.add_argument("--device", choices=_DEVICES, default="cpu", help="where to run the model (default: cpu)")
    parser.add_argument(
        "--adaptation-steps",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help=(
            "test-time adaptation: N optimizer steps on augmented views of each image with the checkpoint's "
            "recognition objective before segmenting it (needs a classifier or pretraining checkpoint; default: 0, off)"
        ),
    )
    parser.add_argument(
        "--adaptation-seed", type=_non_negative_int, default=0, metavar="S", help="seed of the adaptation's views"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cast-segment` on the command-line arguments `argv` (default: `sys.argv[1:]`) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    model, processor = _load_checked_model(parser, args)
    segmenter = _Segmenter(model, processor, args)
    failures = []
    stems = _unique_stems([Path(image) for image in args.images])
    for image_path, stem in tqdm(
        stems, desc=PROGRAM, unit="image", file=sys.stderr, disable=None if len(stems) > 1 else True
    ):
        reason = segmenter.segment_file(image_path, stem)
        if reason is not None:
            failures.append((image_path, reason))
            tqdm.write(f"{PROGRAM}: error: {image_path}: {reason}", file=sys.stderr)

    if failures:
        print(
            f"{PROGRAM}: {len(stems) - len(failures)} of {len(stems)} image(s) segmented; {len(failures)} failed:",
            file=sys.stderr,
        )
        for image_path, reason in failures:
            print(f"  {image_path}: {reason}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"{PROGRAM}: {len(stems)} image(s) segmented into {args.output_dir}", file=sys.stderr)
    return EXIT_OK


def _load_checked_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple:
    """Check the arguments that need the model, load it onto `args.device` and create the output directory; bad
    arguments end the program with status 2 (`parser.error`)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    try:
        model, processor = load_cast_model(args.model, with_head=args.adaptation_steps > 0)
    except ValueError as error:
        parser.error(f"--model {args.model}: {error}")
    num_levels = len(model.config.num_segments)
    if args.level is not None and not -num_levels <= args.level < num_levels:
        parser.error(
            f"--level must be in [{-num_levels}, {num_levels - 1}] for this {num_levels}-level model, got {args.level}"
        )
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--output-dir {args.output_dir}: cannot create the directory ({error})")
    model.to(args.device).eval()
    return model, processor


class _Segmenter:
    """Segments one image file at a time and writes its outputs; returns a failure reason instead of raising."""

    def __init__(self, model, processor, args: argparse.Namespace):
        self.model = model
        self.processor = processor
        self.output_dir = args.output_dir
        self.model_name = args.model
        self.device = args.device
        self.processor_overrides = {} if args.n_segments is None else {"n_segments": args.n_segments}
        num_levels = len(model.config.num_segments)
        self.levels = list(range(num_levels)) if args.level is None else [args.level % num_levels]
        self.adaptation_steps, self.adaptation_seed = args.adaptation_steps, args.adaptation_seed
        self.adaptation: dict | None = None  # the summary of the last image's adaptation

    def segment_file(self, image_path: Path, stem: str) -> str | None:
        try:
            image = _read_image(image_path)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            return f"cannot read the image ({error})"
        try:
            # decoded once, as the image processor decodes images (16-bit files are scaled, not saturated)
            pixels = rgb_uint8_image(image)
            segmentation, segments_info, num_superpixels = self._segment(pixels)
        except ValueError as error:
            return f"cannot segment the image ({error})"
        try:
            self._write_outputs(image_path, stem, pixels, segmentation, segments_info, num_superpixels)
        except (OSError, ValueError) as error:
            return f"cannot write the outputs ({error})"
        return None

    def _segment(self, pixels: np.ndarray) -> tuple[torch.Tensor, list[list[dict]], int]:
        inputs = self.processor(
            images=pixels, input_data_format="channels_last", return_tensors="pt", **self.processor_overrides
        )
        num_superpixels = int(inputs["superpixels"].max()) + 1
        if self.adaptation_steps:
            result = self.model.adapt(**inputs.to(self.device), steps=self.adaptation_steps, seed=self.adaptation_seed)
            outputs = result.outputs
            self.adaptation = {
                "steps": self.adaptation_steps,
                "changed_levels": result.changed_levels[0],
                "losses": result.losses[0].tolist(),
            }
        else:
            with torch.inference_mode():
                outputs = self.model(**inputs.to(self.device))
        result = self.processor.post_process_hierarchical_segmentation(
            outputs, target_sizes=[pixels.shape[:2]], return_scores=True
        )[0]
        return result["segmentation"].cpu(), result["segments_info"], num_superpixels

    def _write_outputs(
        self,
        image_path: Path,
        stem: str,
        pixels: np.ndarray,
        segmentation: torch.Tensor,
        segments_info: list[list[dict]],
        num_superpixels: int,
    ) -> None:
        picture_name, overlay_name = f"{stem}_hierarchy.png", f"{stem}_overlay.png"
        save_hierarchy_picture(pixels, segmentation, self.output_dir / picture_name)
        save_hierarchy_picture(pixels, segmentation, self.output_dir / overlay_name, mode="overlay", captions=True)
        color_maps = _color_label_maps(segmentation.numpy())
        levels = []
        for level in self.levels:
            label_map_name, color_map_name = f"{stem}_level{level}.png", f"{stem}_level{level}_color.png"
            num_ids = max(self.model.config.num_segments[level], int(segmentation[level].max()) + 1)
            _label_map_image(segmentation[level].numpy(), num_ids).save(self.output_dir / label_map_name)
            color_maps[level].save(self.output_dir / color_map_name)
            levels.append(
                {
                    "level": level,
                    "num_segments": len(segments_info[level]),
                    "label_map": label_map_name,
                    "color_label_map": color_map_name,
                    "segments": [_json_segment(segment) for segment in segments_info[level]],
                }
            )
        height, width = pixels.shape[:2]
        summary = {
            "image": str(image_path),
            "model": self.model_name,
            "image_size": {"height": height, "width": width},
            "num_superpixels": num_superpixels,
            "picture": picture_name,
            "overlay_picture": overlay_name,
            "levels": levels,
        }
        if self.adaptation is not None:
            summary["adaptation"] = self.adaptation
        with open(self.output_dir / f"{stem}_segments.json", "w", encoding="utf-8") as file:
            json.dump(summary, file, indent=2)
            file.write("\n")


def _load_model_and_processor(name: str, auto_class=AutoModel) -> tuple:
    """Load the backbone (any CAST checkpoint: heads are not needed) and its processor; also return the names of
    backbone weights the checkpoint lacks and `(name, checkpoint shape, config shape)` of those whose shapes do not
    fit the config. transformers' load report and progress bars are silenced because a classifier checkpoint would
    report its unused head on every run; so that no error points to that hidden report, mismatched shapes are
    loaded as a report (`ignore_mismatched_sizes`) and returned, and the caller refuses the model."""
    verbosity = transformers_logging.get_verbosity()
    progress_bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        model, loading_info = auto_class.from_pretrained(name, output_loading_info=True, ignore_mismatched_sizes=True)
        processor = AutoImageProcessor.from_pretrained(name)
    finally:
        transformers_logging.set_verbosity(verbosity)
        if progress_bars:
            transformers_logging.enable_progress_bar()
    return model, processor, set(loading_info["missing_keys"]), list(loading_info["mismatched_keys"])


def load_cast_model(name: str, with_head: bool = False) -> tuple:
    """The CAST backbone and image processor of a folder or installed name, for segmenting (with `with_head`, the
    checkpoint's classifier or pretraining model instead, whose objective test-time adaptation needs). Raises
    `ValueError` saying why when it cannot be loaded, is not a CAST model (or has no such head), or its weights do
    not give a trained model (shapes that do not fit its config, weights missing): its segments would be random."""
    auto_class = AutoModel
    if with_head:
        try:
            config = AutoConfig.from_pretrained(name)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot load a CAST model config ({error})") from None
        architectures = getattr(config, "architectures", None) or []
        heads = [_ADAPTABLE_ARCHITECTURES[head] for head in architectures if head in _ADAPTABLE_ARCHITECTURES]
        if not heads:
            raise ValueError(
                f"test-time adaptation needs a classifier or pretraining checkpoint ({sorted(_ADAPTABLE_ARCHITECTURES)}) "
                f"for its recognition objective, got architectures {architectures}"
            )
        auto_class = heads[0]
    try:
        model, processor, missing_keys, mismatched = _load_model_and_processor(name, auto_class)
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"cannot load a CAST model and image processor ({error})") from None
    if getattr(model.config, "model_type", None) != CAST_MODEL_TYPE:
        raise ValueError(f"expected a CAST model, got model type {model.config.model_type!r}")
    if mismatched:
        weight, checkpoint_shape, config_shape = min(mismatched)
        raise ValueError(
            f"its weights do not fit its config.json: {len(mismatched)} weight(s) have other shapes, e.g. {weight!r} "
            f"is {tuple(checkpoint_shape)} in the checkpoint but {tuple(config_shape)} for the config (was the "
            "config edited, or saved for other weights?)"
        )
    if missing_keys:
        raise ValueError(
            f"the checkpoint lacks {len(missing_keys)} weight(s) of the CAST {'model' if with_head else 'backbone'} "
            f"(e.g. {min(missing_keys)!r}), so its segmentation would be random"
        )
    return model, processor


def _read_image(image_path: Path) -> Image.Image:
    """Open and fully load an image file (truncated files fail here, not later), upright as viewers show it. Its
    pixels are decoded by `processing.image_inputs_cast`."""
    with Image.open(image_path) as opened:
        opened.load()
        return ImageOps.exif_transpose(opened)


def _label_map_image(labels: np.ndarray, num_ids: int) -> Image.Image:
    """An 8-bit PNG-able image of a label map when its ids fit, else a 16-bit one."""
    if num_ids <= _UINT8_LABELS:
        return Image.fromarray(labels.astype(np.uint8), mode="L")
    if num_ids <= _UINT16_LABELS:
        return Image.fromarray(labels.astype(np.uint16), mode="I;16")
    raise ValueError(f"a label map with {num_ids} segment ids does not fit in a 16-bit PNG")


def _color_label_maps(hierarchy: np.ndarray) -> list[Image.Image]:
    """Every level in the picture's colors: indexed-palette images that keep the ids when every id fits in a palette,
    else RGB images (ids above 255 cannot be palette indices)."""
    if hierarchy.max() < _UINT8_LABELS:
        return hierarchy_label_maps(hierarchy)
    return [Image.fromarray(colors) for colors in hierarchy_colors(hierarchy)]


def _json_segment(segment: dict) -> dict:
    """JSON-ready copy of one `segments_info` entry (tensors and numpy scalars become Python numbers)."""
    return {key: value.item() if hasattr(value, "item") else value for key, value in segment.items()}


def _unique_stems(image_paths: list[Path]) -> list[tuple[Path, str]]:
    """Output name stem of every image; repeated stems (`a/x.png`, `b/x.jpg`) get `-2`, `-3`, ... so none is lost."""
    taken = {image_path.stem or image_path.name for image_path in image_paths}
    used: set[str] = set()
    stems = []
    for image_path in image_paths:
        stem = image_path.stem or image_path.name
        if stem in used:
            copy = 2
            while f"{stem}-{copy}" in used or f"{stem}-{copy}" in taken:
                copy += 1
            stem = f"{stem}-{copy}"
        used.add(stem)
        stems.append((image_path, stem))
    return stems


def _int_at_least(minimum: int, expectation: str):
    """An argparse `type` that accepts integers >= `minimum`; its errors say `expected <expectation>`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expectation}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expectation}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "a non-negative integer")
