# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`cast-export`: write the ONNX graph (and optionally the `torch.export` program) of a CAST model folder, and verify
it with onnxruntime against the eager model on real photos.

One graph serves every image whose superpixel count fits the model's static token budget
(`config.max_superpixel_tokens`) at the processor's input size, and any batch size. Its inputs are `pixel_values`
(float32, `(batch, 3, height, width)`) and `superpixels` (int64, `(batch, height, width)`), as the folder's image
processor returns them; its outputs are named after the model's output fields, the pixel hierarchy included
(`hierarchy`, `hierarchy_scores`, and one `assignment_logits_<level>` per level for the models that return them).

A console script rather than an `optimum`-style export config: optimum would add a large dependency and knows no CAST
model type, and the graph needs a CAST-specific check anyway (superpixels computed by the processor, an exact
hierarchy, a budget); this command does both in one step, with onnx, onnxruntime and onnxscript only
(`pip install "cast-transformers[export]"`).

Exit status: 0 when the graph was written and agrees with eager, 1 when the verification fails, 2 for bad
arguments (including a folder that cannot be loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoImageProcessor

from modeling_cast import CastForImageClassification, CastForSemanticSegmentation, CastModel
from processing.image_inputs_cast import rgb_uint8_image

__all__ = [
    "CastExportModule",
    "build_parser",
    "export_onnx",
    "export_program",
    "main",
    "sample_photos",
    "verify_onnx",
]

PROGRAM = "cast-export"
EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_BAD_ARGUMENTS = 2
DEFAULT_ATOL = 1e-4
# Photos bundled with scikit-image (no download): a person, objects on a table and a cat, whose SLIC and SEEDS
# superpixel counts differ at the default processor settings.
SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea")
# The largest batch the exported graph promises to take (the batch dimension is dynamic up to it).
MAX_BATCH_SIZE = 1024
# Outputs whose values are integers: the verification asks for equality.
_EXACT_OUTPUTS = ("hierarchy",)
_ARCHITECTURES = {
    "CastModel": CastModel,
    "CastForImageClassification": CastForImageClassification,
    "CastForSemanticSegmentation": CastForSemanticSegmentation,
    # a pretraining checkpoint exports its base encoder (the MoCo heads only serve the training loss)
    "CastForPreTraining": CastModel,
}


class CastExportModule(nn.Module):
    """A CAST model with a tensors-in, tensors-out forward for the exporters: `(pixel_values, superpixels)` to a
    tuple of tensors, in the order of `output_names` (the hierarchy always included)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.return_assignments = not isinstance(model, CastForSemanticSegmentation)
        num_levels = len(model.config.num_segments)
        self.feature_names = ["pooler_output", "last_hidden_state"] if isinstance(model, CastModel) else ["logits"]
        assignments = [f"assignment_logits_{level}" for level in range(num_levels)] if self.return_assignments else []
        self.output_names = [*self.feature_names, "hierarchy", "hierarchy_scores", *assignments]

    def forward(self, pixel_values: torch.Tensor, superpixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        options = {"output_assignments": True} if self.return_assignments else {}
        outputs = self.model(
            pixel_values=pixel_values, superpixels=superpixels, output_hierarchy=True, return_dict=True, **options
        )
        features = tuple(outputs[name] for name in self.feature_names)
        assignments = tuple(outputs.assignment_logits) if self.return_assignments else ()
        return (*features, outputs.hierarchy, outputs.hierarchy_scores, *assignments)


def _dynamic_batch() -> dict[str, dict[int, torch.export.Dim]]:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH_SIZE)
    return {"pixel_values": {0: batch}, "superpixels": {0: batch}}


def export_program(
    model: nn.Module, pixel_values: torch.Tensor, superpixels: torch.Tensor
) -> torch.export.ExportedProgram:
    """`torch.export` program of `CastExportModule(model)` (in eval mode) with a dynamic batch dimension; the example
    batch must hold at least two images (a batch of one would be specialized)."""
    module = CastExportModule(model).eval()  # (the wrapper too: the exporters warn about a module in training mode)
    return torch.export.export(module, (pixel_values, superpixels), dynamic_shapes=_dynamic_batch(), strict=False)


def export_onnx(model: nn.Module, pixel_values: torch.Tensor, superpixels: torch.Tensor, path: Path) -> list[str]:
    """Write the ONNX graph of `CastExportModule(model)` to `path` with the dynamo exporter; returns the output
    names. Same example batch rule as [`export_program`]."""
    module = CastExportModule(model).eval()  # (the wrapper too: the exporters warn about a module in training mode)
    program = torch.onnx.export(
        module,
        (pixel_values, superpixels),
        dynamo=True,
        input_names=["pixel_values", "superpixels"],
        output_names=module.output_names,
        dynamic_shapes=_dynamic_batch(),
        verbose=False,  # (the exporter's progress lines would mix with the command's JSON report on stdout)
    )
    program.save(str(path))
    return module.output_names


def verify_onnx(
    path: Path, model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Run the ONNX graph at `path` with onnxruntime and the eager model on each `(pixel_values, superpixels)` batch;
    returns the largest absolute difference of every output over all batches (for `hierarchy`: the number of
    pixels whose segment differs)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    module = CastExportModule(model).eval()
    differences = dict.fromkeys(module.output_names, 0.0)
    for pixel_values, superpixels in batches:
        feed = {"pixel_values": pixel_values.numpy(), "superpixels": superpixels.numpy()}
        exported = session.run(module.output_names, feed)
        with torch.no_grad():
            eager = module(pixel_values, superpixels)
        for name, graph_value, eager_value in zip(module.output_names, exported, eager):
            eager_value = eager_value.numpy()
            if name in _EXACT_OUTPUTS:
                difference = float(np.count_nonzero(graph_value != eager_value))
            else:
                difference = float(np.abs(graph_value.astype(np.float64) - eager_value.astype(np.float64)).max())
            differences[name] = max(differences[name], difference)
    return differences


def sample_photos() -> list[np.ndarray]:
    """The photos of `SAMPLE_PHOTOS` (bundled with scikit-image), uint8 RGB."""
    import skimage.data

    return [rgb_uint8_image(getattr(skimage.data, name)()) for name in SAMPLE_PHOTOS]


def build_parser() -> argparse.ArgumentParser:
    """The `cast-export` argument parser."""
    description = (
        "Export a CAST model folder to ONNX (dynamo exporter, dynamic batch, fixed input size and token budget) and "
        "verify the graph with onnxruntime against the eager model on real photos."
    )
    parser = argparse.ArgumentParser(prog=PROGRAM, description=description)
    parser.add_argument("model", help="model folder (config.json, weights, preprocessor_config.json)")
    parser.add_argument("--output", required=True, type=Path, metavar="FILE", help="ONNX file to write")
    parser.add_argument(
        "--program", type=Path, metavar="FILE", help="also save the torch.export program there (.pt2)"
    )
    parser.add_argument(
        "--images",
        nargs="+",
        type=Path,
        metavar="IMAGE",
        help=f"photos to verify with (at least two; default: scikit-image's {', '.join(SAMPLE_PHOTOS)})",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=DEFAULT_ATOL,
        help=f"largest accepted difference of the float outputs (default: {DEFAULT_ATOL}); the hierarchy must be equal",
    )
    return parser


def _load(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[nn.Module, object]:
    try:
        config = AutoConfig.from_pretrained(args.model)
        architecture = (getattr(config, "architectures", None) or ["CastModel"])[0]
        if architecture not in _ARCHITECTURES:
            parser.error(f"{args.model}: expected a CAST model folder, got architecture {architecture!r}")
        model = _ARCHITECTURES[architecture].from_pretrained(args.model)
        processor = AutoImageProcessor.from_pretrained(args.model)
    except (OSError, ValueError) as error:
        parser.error(f"{args.model}: cannot load a CAST model and image processor ({error})")
    return model.float().eval(), processor


def _read_images(parser: argparse.ArgumentParser, paths: Sequence[Path] | None) -> list[np.ndarray]:
    if paths is None:
        return sample_photos()
    if len(paths) < 2:
        parser.error(f"--images: at least two images are needed (the graph is traced on two), got {len(paths)}")
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(rgb_uint8_image(image))
        except (OSError, UnidentifiedImageError) as error:
            parser.error(f"--images: cannot read {path} ({error})")
    return images


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cast-export` on `argv` (default: `sys.argv[1:]`) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.atol >= 0:
        parser.error(f"--atol must be >= 0, got {args.atol}")
    model, processor = _load(parser, args)
    inputs = processor(_read_images(parser, args.images), return_tensors="pt")
    pixel_values, superpixels = inputs["pixel_values"], inputs["superpixels"]
    try:
        with torch.no_grad():
            model(pixel_values=pixel_values, superpixels=superpixels)  # the eager input checks (budget included)
    except ValueError as error:
        parser.error(f"the images do not fit the model: {error}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.program is not None:
        torch.export.save(export_program(model, pixel_values[:2], superpixels[:2]), str(args.program))
    export_onnx(model, pixel_values[:2], superpixels[:2], args.output)
    # the whole batch, then every image alone: one graph for every batch size and superpixel count
    batches = [(pixel_values, superpixels)] + [
        (pixel_values[index : index + 1], superpixels[index : index + 1]) for index in range(len(pixel_values))
    ]
    differences = verify_onnx(args.output, model, batches)
    token_counts = (superpixels.flatten(1).amax(dim=1) + 1).tolist()
    report = {"onnx": str(args.output), "superpixel_counts": token_counts, "max_abs_difference": differences}
    print(json.dumps(report, indent=2))
    failed = [
        name
        for name, difference in differences.items()
        if (difference != 0 if name in _EXACT_OUTPUTS else difference > args.atol)
    ]
    if failed:
        print(f"{PROGRAM}: the ONNX graph disagrees with the eager model on {', '.join(failed)}", file=sys.stderr)
        return EXIT_MISMATCH
    print(f"{PROGRAM}: wrote {args.output}; onnxruntime agrees with eager on {len(batches)} batches", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
