# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`cast-convert`: an official CAST checkpoint file -> a safetensors model folder (+ local Hub cache, + Hub).

    cast-convert --checkpoint FILE --model-name cast-base --output-dir DIR [--install-to-cache] [--push-to-hub REPO_ID]
    cast-convert --model-name cast-base --download [--remove-original] [--output-dir DIR ...]

The file is read with `torch.load(weights_only=True)`; its layout (MoCo-v3, DeiT, bare state dict) is detected and
checked against the named model; the folder is written atomically (see `modeling_cast.conversion`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from transformers.utils import hub as transformers_hub
from transformers.utils import logging as transformers_logging

from modeling_cast.conversion.convert_cast_original_to_hf import (
    CheckpointError,
    OfficialCheckpoint,
    check_checkpoint_matches,
    check_output_dir,
    convert_official_checkpoint,
    convert_pretraining_checkpoint,
    detect_checkpoint_layout,
    infer_config,
    lacks_classifier,
    load_official_checkpoint,
    official_architecture,
    pretraining_entry,
    verify_against_reference,
    write_converted_folder,
)
from modeling_cast.hub.cache import install_to_cache
from modeling_cast.hub.fetch import download_official_checkpoint, fetch_named_model
from modeling_cast.hub.registry import (
    CHECKPOINT_LAYOUTS,
    CONVERTER_COMMAND,
    NAMED_MODELS,
    OFFICIAL_HUB_REPOSITORY,
    NamedModel,
    custom_named_model,
    empty_model,
    official_file_url,
)

__all__ = ["EXIT_CONVERSION_FAILED", "EXIT_OK", "build_parser", "main"]

EXIT_OK = 0
EXIT_CONVERSION_FAILED = 1  # (argparse exits with 2 for bad arguments)
_DESCRIPTION = (
    "Convert an official CAST checkpoint (.pth/.pth.tar in the MoCo-v3 or DeiT training layout, or a bare state "
    "dict) into a transformers model folder: model.safetensors, config.json, preprocessor_config.json, README.md "
    "(model card) and the code files for trust_remote_code. The file is read with torch.load(weights_only=True): "
    "pickles that need to run code are refused."
)
# what a --config file may hold beyond CastConfig values: a saved config.json works too
_SAVED_ONLY_KEYS = ("model_type", "architectures", "auto_map", "transformers_version")


def build_parser() -> argparse.ArgumentParser:
    """The `cast-convert` argument parser."""
    parser = argparse.ArgumentParser(prog=CONVERTER_COMMAND, description=_DESCRIPTION)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, metavar="FILE", help="official checkpoint file")
    source.add_argument(
        "--download", action="store_true",
        help=f"download the released model's official checkpoint from {OFFICIAL_HUB_REPOSITORY} into the Hugging "
        "Face cache (resumable; HF_ENDPOINT and HF_TOKEN apply), convert it and install it in the cache under NAME, "
        "as from_pretrained(NAME) does on first use; with --output-dir, write that folder as well",
    )
    parser.add_argument(
        "--model-name", required=True, metavar="NAME",
        help=f"named model: one of {', '.join(sorted(NAMED_MODELS))}; another name needs --config",
    )
    parser.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="model folder to write (optional with --download)"
    )
    parser.add_argument(
        "--remove-original", action="store_true",
        help="with --download: remove the downloaded training checkpoint from the cache once converted (default: "
        "keep it, as the Hub cache does)",
    )
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
    progress.add_argument(
        "--progress", dest="progress", action="store_true", default=None,
        help="always show the progress bars of writing the weights and uploading (default: on terminals only)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`cast-convert`: exit status 0 on success, 1 when the checkpoint cannot be converted, 2 for bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output_dir is None and not args.download:
        parser.error("--output-dir is required (it is optional only with --download)")
    if args.remove_original and not args.download:
        parser.error("--remove-original applies to --download only")
    try:
        with _progress_bars(args.progress):
            lines = _convert(args)
    except (ValueError, OSError) as error:  # CheckpointError, invalid names, file system and Hub errors
        print(f"{CONVERTER_COMMAND}: error: {error}", file=sys.stderr)
        return EXIT_CONVERSION_FAILED
    print("\n".join(lines))
    return EXIT_OK


def _convert(args: argparse.Namespace) -> list[str]:
    """Every step of a conversion; returns the summary lines."""
    # argument errors first: the checkpoint may be a 2 GB file
    if args.download:
        _released_entry(args)
    _check_name_and_config(args)
    if args.download and args.output_dir is None:
        return _fetch(args)
    inputs = {"--checkpoint": args.checkpoint, "--config": args.config, "--reference": args.reference}
    if args.install_to_cache:
        inputs["--cache-dir"] = args.cache_dir
    check_output_dir(Path(args.output_dir).absolute(), args.overwrite, inputs)
    if args.download:
        args.checkpoint = download_official_checkpoint(_released_entry(args), args.cache_dir)
    print(f"{CONVERTER_COMMAND}: reading {args.checkpoint}", file=sys.stderr)
    official = detect_checkpoint_layout(load_official_checkpoint(args.checkpoint))
    entry = _resolve_entry(args, official)
    check_checkpoint_matches(official, entry)
    print(f"{CONVERTER_COMMAND}: converting {len(official.state_dict)} tensors for {entry.name}", file=sys.stderr)
    if args.with_pretraining_heads:
        entry = pretraining_entry(official, entry)
        tensors, dropped = convert_pretraining_checkpoint(official, entry)
    else:
        tensors, dropped = convert_official_checkpoint(official, entry)
    folder = write_converted_folder(args.output_dir, entry, tensors, args.overwrite)
    lines = _summary(args, official, entry, tensors, dropped)
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
        lines.append(f"  pushed to the Hub: {_push_to_hub(folder, args.push_to_hub, private=args.private or None)}")
    return lines


def _released_entry(args: argparse.Namespace) -> NamedModel:
    """The released model --download fetches (refused for other names and for names without a published file)."""
    entry = NAMED_MODELS.get(args.model_name)
    if entry is None or entry.official_file is None:
        published = sorted(name for name, named in NAMED_MODELS.items() if named.official_file is not None)
        raise CheckpointError(
            f"--download fetches the official checkpoint of a released model ({', '.join(published)}); "
            f"{args.model_name!r} has none: pass its file with --checkpoint"
        )
    return entry


def _fetch(args: argparse.Namespace) -> list[str]:
    """--download without --output-dir: what from_pretrained(NAME) does on first use."""
    entry = _released_entry(args)
    snapshot = fetch_named_model(entry.name, args.cache_dir, keep_original=not args.remove_original)
    kept = "removed" if args.remove_original else "kept"
    return [
        f"{CONVERTER_COMMAND}: {official_file_url(entry)} -> {entry.name} ({entry.architecture})",
        f"  installed in the Hugging Face cache: {snapshot} (from_pretrained({entry.name!r}) now works offline)",
        f"  downloaded training checkpoint {kept} in the cache",
    ]


def _check_name_and_config(args: argparse.Namespace) -> None:
    """A named model takes no --config; any other --model-name needs one (checked before reading the checkpoint)."""
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


def _resolve_entry(args: argparse.Namespace, official: OfficialCheckpoint) -> NamedModel:
    """The table entry of --model-name, or for another name a custom entry from --config and the weights."""
    if args.model_name in NAMED_MODELS:
        return NAMED_MODELS[args.model_name]
    try:
        overrides = json.loads(args.config.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"--config {str(args.config)!r} is not a readable JSON file: {error}") from error
    if not isinstance(overrides, dict):
        raise CheckpointError(f"--config {str(args.config)!r} must hold a JSON object, got {type(overrides).__name__}")
    overrides = {key: value for key, value in overrides.items() if key not in _SAVED_ONLY_KEYS}
    try:
        config = infer_config(official.state_dict, **overrides)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"--config {str(args.config)!r} does not give a valid configuration: {error}") from error
    return custom_named_model(args.model_name, config, official_architecture(official), official.layout)


def _summary(args, official, entry, tensors, dropped) -> list[str]:
    data_bytes = sum(tensor.numel() * (4 if tensor.is_floating_point() else tensor.element_size())
                     for tensor in tensors.values())
    parameters = sum(parameter.numel() for parameter in empty_model(entry).parameters())
    arch = f", arch {official.arch!r}" if official.arch else ""
    lines = [
        f"{CONVERTER_COMMAND}: {args.checkpoint} ({CHECKPOINT_LAYOUTS[official.layout]}{arch}) -> {args.output_dir}",
        f"  model: {entry.name} ({entry.architecture}), {parameters:,} parameters in {len(tensors)} tensors "
        f"({data_bytes / 1e6:.1f} MB float32 safetensors)",
    ]
    total = sum(len(keys) for keys in dropped.values())
    lines.append(f"  dropped {total} entries of the checkpoint:" if total else "  dropped nothing")
    for reason, keys in sorted(dropped.items(), key=lambda item: -len(item[1])):
        examples = ", ".join(sorted(keys)[:3]) + (", ..." if len(keys) > 3 else "")
        lines.append(f"    {len(keys):5d}  {reason} [{examples}]")
    if lacks_classifier(entry, tensors):
        lines.append("  classifier: not in the checkpoint; from_pretrained(..., num_labels=K) creates it for "
                     "fine-tuning")
    return lines


def _push_to_hub(folder: Path, repo_id: str, private: bool | None) -> str:
    """Upload the folder (weights, configs, card and the flat remote code) in one commit, through transformers'
    shared Hub client. Returns the repo id."""
    api = transformers_hub.hf_api()
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message=f"Upload CAST model converted with {CONVERTER_COMMAND}"
    )
    return repo_id


@contextlib.contextmanager
def _progress_bars(progress: bool | None) -> Iterator[None]:
    """--progress / --no-progress: the progress bars transformers (writing the weights) and huggingface_hub
    (uploading) draw; by default only on a terminal. Both libraries' settings are restored afterwards."""
    show = sys.stderr.isatty() if progress is None else progress
    transformers_was_on, hub_was_on = transformers_logging.is_progress_bar_enabled(), not are_progress_bars_disabled()
    _set_progress_bars(show, show)
    try:
        yield
    finally:
        _set_progress_bars(transformers_was_on, hub_was_on)


def _set_progress_bars(transformers_on: bool, hub_on: bool) -> None:
    (transformers_logging.enable_progress_bar if transformers_on else transformers_logging.disable_progress_bar)()
    (enable_progress_bars if hub_on else disable_progress_bars)()


if __name__ == "__main__":
    sys.exit(main())
