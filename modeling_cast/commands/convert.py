# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`cast-convert`: an official CAST checkpoint file -> a safetensors model folder (+ local Hub cache, + Hub).

    cast-convert --checkpoint FILE --model-name cast-base --output-dir DIR [--install-to-cache] [--push-to-hub REPO_ID]

The file is read with `torch.load(weights_only=True)`; its layout (MoCo-v3, DeiT, bare state dict) is detected and
checked against the named model; the folder is written atomically (see `modeling_cast.conversion`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from modeling_cast.conversion.convert_cast_original_to_hf import (
    _SEGMENTATION_ARCHITECTURE,
    EXIT_CONVERSION_FAILED,
    EXIT_OK,
    PROGRAM,
    CheckpointError,
    OfficialCheckpoint,
    _check_output_dir,
    _expected_model_shapes,
    _has_linear_head,
    _strip_prefix,
    check_checkpoint_matches,
    convert_official_checkpoint,
    convert_pretraining_checkpoint,
    detect_checkpoint_layout,
    infer_config,
    load_official_checkpoint,
    pretraining_entry,
    push_folder_to_hub,
    verify_against_reference,
    write_converted_folder,
)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The `cast-convert` argument parser."""
    from modeling_cast.hub.named_models import NAMED_MODELS

    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Convert an official CAST checkpoint (.pth/.pth.tar in the MoCo-v3 or DeiT training layout, or a bare "
            "state dict) into a transformers model folder: model.safetensors, config.json, preprocessor_config.json, "
            "README.md (model card) and the code files for trust_remote_code. The file is read with "
            "torch.load(weights_only=True): pickles that need to run code are refused."
        ),
    )
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="FILE", help="official checkpoint file")
    parser.add_argument(
        "--model-name", required=True, metavar="NAME",
        help=f"named model: one of {', '.join(sorted(NAMED_MODELS))}; another name needs --config",
    )
    parser.add_argument("--output-dir", required=True, type=Path, metavar="DIR", help="model folder to write")
    parser.add_argument(
        "--config", type=Path, metavar="JSON",
        help="CastConfig values (e.g. num_attention_heads, num_segments) of a model that is not a named one; the "
        "rest is read from the weights",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --output-dir if it is not empty")
    parser.add_argument(
        "--with-pretraining-heads", action="store_true",
        help="MoCo-v3 checkpoints: convert the whole CastForPreTraining (base and momentum encoders, projectors, "
        "predictor) so that pretraining can resume; its backbone still loads with AutoModel",
    )
    parser.add_argument(
        "--install-to-cache", action="store_true",
        help="also place the folder in the local Hugging Face cache under NAME, so from_pretrained(NAME) works "
        "offline",
    )
    parser.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="hub cache to install into (default: HF_HUB_CACHE)"
    )
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the folder to this Hub repository")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create a private repository")
    parser.add_argument(
        "--reference", type=Path, metavar="SAFETENSORS",
        help="official outputs to compare with (inputs.pixel_values, inputs.superpixels, outputs.pooled, and when "
        "present outputs.logits, outputs.projector, outputs.predictor); the conversion fails above 1e-4",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show progress")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    return parser


def _check_name_and_config(args) -> None:
    """A named model takes no --config; any other --model-name needs one (checked before reading the checkpoint)."""
    from modeling_cast.hub.named_models import NAMED_MODELS

    if args.model_name in NAMED_MODELS and args.config is not None:
        raise CheckpointError(
            f"--config is for models outside the named ones; {args.model_name} has a fixed configuration"
        )
    if args.model_name not in NAMED_MODELS and args.config is None:
        raise CheckpointError(
            f"--model-name {args.model_name!r} is not a named model ({', '.join(sorted(NAMED_MODELS))}): pass its "
            "architecture with --config (a JSON object of CastConfig values, at least num_attention_heads and "
            "num_segments, which the weights do not determine)"
        )


def _resolve_entry(args, official: OfficialCheckpoint):
    """(table entry, configuration) for --model-name, or a custom entry from --config for other names."""
    from modeling_cast.hub.named_models import NAMED_MODELS, custom_named_model, named_config

    _check_name_and_config(args)
    if args.model_name in NAMED_MODELS:
        entry = NAMED_MODELS[args.model_name]
        return entry, named_config(entry)
    try:
        overrides = json.loads(args.config.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"--config {str(args.config)!r} is not a readable JSON file: {error}") from error
    if not isinstance(overrides, dict):
        raise CheckpointError(f"--config {str(args.config)!r} must hold a JSON object, got {type(overrides).__name__}")
    saved_only = ("model_type", "architectures", "auto_map", "transformers_version")  # a config.json works too
    overrides = {key: value for key, value in overrides.items() if key not in saved_only}
    try:
        config = infer_config(official.state_dict, **overrides)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"--config {str(args.config)!r} does not give a valid configuration: {error}") from error
    has_head = _has_linear_head(_strip_prefix(official.state_dict)) and official.layout != "moco"
    architecture = "CastForImageClassification" if has_head else "CastModel"
    if official.is_segmentation:
        architecture = _SEGMENTATION_ARCHITECTURE
    entry = custom_named_model(args.model_name, config, architecture, official.layout)
    return entry, named_config(entry)


def _summary(args, official, entry, tensors, dropped, parameters) -> list[str]:
    from modeling_cast.hub.named_models import CHECKPOINT_LAYOUTS

    data_bytes = sum(tensor.numel() * (4 if tensor.is_floating_point() else tensor.element_size())
                     for tensor in tensors.values())
    arch = f", arch {official.arch!r}" if official.arch else ""
    lines = [
        f"{PROGRAM}: {args.checkpoint} ({CHECKPOINT_LAYOUTS[official.layout]}{arch}) -> {args.output_dir}",
        f"  model: {entry.name} ({entry.architecture}), {parameters:,} parameters in {len(tensors)} tensors "
        f"({data_bytes / 1e6:.1f} MB float32 safetensors)",
    ]
    total = sum(len(keys) for keys in dropped.values())
    lines.append(f"  dropped {total} entries of the checkpoint:" if total else "  dropped nothing")
    for reason, keys in sorted(dropped.items(), key=lambda item: -len(item[1])):
        examples = ", ".join(sorted(keys)[:3]) + (", ..." if len(keys) > 3 else "")
        lines.append(f"    {len(keys):5d}  {reason} [{examples}]")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """`cast-convert`: exit status 0 on success, 1 when the checkpoint cannot be converted, 2 for bad arguments."""
    from modeling_cast.hub.named_models import install_to_cache, named_config

    args = build_parser().parse_args(argv)
    try:
        # argument errors first: the checkpoint may be a 2 GB file
        _check_name_and_config(args)
        _check_output_dir(Path(args.output_dir).absolute(), args.overwrite)
        print(f"{PROGRAM}: reading {args.checkpoint}", file=sys.stderr)
        official = detect_checkpoint_layout(load_official_checkpoint(args.checkpoint))
        entry, config = _resolve_entry(args, official)
        check_checkpoint_matches(official, entry)
        print(f"{PROGRAM}: converting {len(official.state_dict)} tensors for {entry.name}", file=sys.stderr)
        if args.with_pretraining_heads:
            entry = pretraining_entry(official, entry)
            config = named_config(entry)
            tensors, dropped = convert_pretraining_checkpoint(official, entry, config)
        else:
            tensors, dropped = convert_official_checkpoint(official, entry, config)
        folder = write_converted_folder(args.output_dir, entry, tensors, args.overwrite, args.progress)
        lines = _summary(args, official, entry, tensors, dropped, _expected_model_shapes(entry, config)[1])
        if entry.architecture == _SEGMENTATION_ARCHITECTURE and "classifier.weight" not in tensors:
            lines.append("  classifier: not in the checkpoint; from_pretrained(..., num_labels=K) creates it for "
                         "fine-tuning")
        # release the memory-mapped checkpoint before loading anything else
        tensors = official.state_dict = official.training_state_dict = None
        if args.reference is not None:
            differences = verify_against_reference(folder, args.reference, entry.architecture)
            lines.append(f"  reference {args.reference}: max |diff| " +
                         ", ".join(f"{name} {value:.2e}" for name, value in differences.items()))
        if args.install_to_cache:
            snapshot = install_to_cache(folder, args.model_name, args.cache_dir)
            lines.append(f"  installed in the Hugging Face cache: {snapshot} "
                         f"(from_pretrained({args.model_name!r}) now works offline)")
        if args.push_to_hub:
            repo_id = push_folder_to_hub(folder, args.push_to_hub, private=args.private or None)
            lines.append(f"  pushed to the Hub: {repo_id}")
    except (ValueError, OSError) as error:  # CheckpointError, invalid names, file system and Hub errors
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return EXIT_CONVERSION_FAILED
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
