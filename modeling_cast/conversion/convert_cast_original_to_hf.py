# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Convert official CAST weights (github.com/twke18/CAST, timm-based) to the `CastForImageClassification` layout.

Official layout facts (from this project's reference notes): every transformer block is stored twice, as
`blocks.{i}` and as a stage copy `blocks{s}.{i}` that keeps the global index; the ConvStem is a Sequential
`patch_embed.proj.{0..12}`; pooling stage s lives in `pool{s}.pool_block`; `pos_embed` is a fixed sin-cos table
and `pe_token` a frozen zero vector; MoCo-v3 training checkpoints prefix the backbone with
`module.base_encoder.` and replace `head` by the MoCo projector.

For `cast-convert` (`modeling_cast.commands.convert`): reading an official checkpoint file with
`torch.load(weights_only=True)`, detecting its layout (MoCo-v3, DeiT, bare state dict), checking it against a named
model of `modeling_cast.hub.registry`, converting it with `convert_state_dict`, writing the model folder atomically
(`save_pretrained` of the model built on the `meta` device with the converted weights assigned) and comparing the
result with official reference outputs.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from modeling_cast.configuration_cast import CastConfig
from modeling_cast.hub.cache import make_shareable
from modeling_cast.hub.folders import write_model_folder
from modeling_cast.hub.registry import (
    CONVERTER_COMMAND,
    NamedModel,
    empty_model,
    model_class,
    named_config,
    named_model_for_arch,
)
from modeling_cast.modeling_cast import (
    CastForImageClassification,
    CastForSemanticSegmentation,
    CastModel,
    sincos_position_embedding,
)
from modeling_cast.pretraining_cast import CastForPreTraining

__all__ = [
    "convert_state_dict",
    "infer_config",
    "ORIGINAL_TO_CONVERTED_KEY_MAPPING",
    "MOCO_BACKBONE_PREFIX",
    # `cast-convert`
    "CheckpointError",
    "OfficialCheckpoint",
    "check_checkpoint_matches",
    "check_output_dir",
    "convert_official_checkpoint",
    "convert_pretraining_checkpoint",
    "detect_checkpoint_layout",
    "lacks_classifier",
    "load_official_checkpoint",
    "official_architecture",
    "pretraining_entry",
    "verify_against_reference",
    "write_converted_folder",
]

MOCO_BACKBONE_PREFIX = "module.base_encoder."
_STAGE_BLOCK = re.compile(r"^blocks(\d+)\.(\d+)\.(.+)$")
_SHARED_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_POOL = re.compile(r"^pool(\d+)\.pool_block\.(.+)$")
# the first layers of the block and pooling MLPs, whose output sizes are the MLP widths
_BLOCK_FC1 = re.compile(r"^blocks\d+\.\d+\.mlp\.fc1\.weight$")
_POOL_FC1 = re.compile(r"^pool\d+\.pool_block\.fc1\.1\.weight$")

# Regex table applied to keys of one transformer block (after `blocks{s}.{i}.`), of one pooling block (after
# `pool{s}.pool_block.`), or of the model root.
ORIGINAL_TO_CONVERTED_KEY_MAPPING = {
    "block": {
        r"^norm1\.": "layernorm_before.",
        r"^attn\.": "attention.",
        r"^norm2\.": "layernorm_after.",
        r"^mlp\.": "mlp.",
    },
    "pool": {
        r"^centroid_fc\.norm\.": "grouping_norm.",
        r"^centroid_fc\.attn\.": "grouping_attention.",
        r"^centroid_fc\.bias$": "centering_bias",
        r"^fc1\.0\.": "feature_norm.",
        r"^fc1\.1\.": "feature_projection.",
        r"^fc2\.0\.": "output_norm.",
        r"^fc2\.1\.": "output_projection.",
    },
    "root": {
        r"^patch_embed\.proj\.(0|3|6|9)\.": lambda m: f"embeddings.patch_embeddings.layers.{int(m.group(1)) // 3}.0.",
        r"^patch_embed\.proj\.(1|4|7|10)\.": lambda m: f"embeddings.patch_embeddings.layers.{int(m.group(1)) // 3}.1.",
        r"^patch_embed\.proj\.12\.": "embeddings.patch_embeddings.projection.",
        r"^cls_token$": "embeddings.cls_token",
        r"^norm\.": "layernorm.",
    },
    # official segmentation variant: BatchNorm1d (wrapped) -> Dropout -> Linear over the fused stages
    "fusion": {
        r"^block_fusion\.proj_blocks\.0\.norm\.": "fusion.norm.",
        r"^block_fusion\.proj_blocks\.2\.": "fusion.projection.",
    },
}


def _rename(key: str, table: dict) -> str | None:
    for pattern, replacement in table.items():
        match = re.match(pattern, key)
        if match:
            new = replacement(match) if callable(replacement) else replacement
            return new + key[match.end():]
    return None


def _strip_prefix(state_dict: dict) -> dict:
    if any(key.startswith(MOCO_BACKBONE_PREFIX) for key in state_dict):
        # MoCo-v3 training checkpoint: keep the base encoder; momentum encoder and predictor are training state
        return {key[len(MOCO_BACKBONE_PREFIX):]: value for key, value in state_dict.items() if key.startswith(MOCO_BACKBONE_PREFIX)}
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _stage_block_indices(state_dict: dict) -> dict[int, list[int]]:
    indices: dict[int, set] = defaultdict(set)
    for key in state_dict:
        match = _STAGE_BLOCK.match(key)
        if match:
            indices[int(match.group(1))].add(int(match.group(2)))
    return {stage: sorted(found) for stage, found in sorted(indices.items())}


def _has_linear_head(state_dict: dict) -> bool:
    weight = state_dict.get("head.weight")
    return weight is not None and weight.ndim == 2


def infer_config(original_state_dict: dict, **kwargs) -> CastConfig:
    """Build a `CastConfig` from official weights. Width, stage depths, stage count, MLP widths (`mlp_ratio`,
    `pooling_mlp_ratio`), label count and (for a square position table) the training image size are read from the
    weights; head counts and segment counts cannot be recovered from them, so they come from `kwargs` (the
    official defaults, 12 heads and 64/32/16/8 segments, otherwise)."""
    state_dict = _strip_prefix(original_state_dict)
    if "cls_token" not in state_dict:
        raise ValueError("`original_state_dict` has no `cls_token`: not an official CAST state dict")
    stages = _stage_block_indices(state_dict)
    if not stages:
        raise ValueError("`original_state_dict` has no `blocks{stage}.{index}.*` keys: not an official CAST state dict")
    inferred = {
        "hidden_size": int(state_dict["cls_token"].shape[-1]),
        "depths": [len(found) for found in stages.values()],
    }
    rows = state_dict["pos_embed"].shape[1] if "pos_embed" in state_dict else 0
    patch_size = kwargs.get("patch_size", CastConfig.patch_size)
    for class_slots, embedding_type in ((0, "sincos"), (1, "learned")):  # DeiT variant: a class-token row first
        side = math.isqrt(max(rows - class_slots, 0))
        if side and side * side == rows - class_slots:
            inferred.update(image_size=side * patch_size, position_embedding_type=embedding_type)
            break
    if _has_linear_head(state_dict):
        inferred["num_labels"] = int(state_dict["head.weight"].shape[0])
    hidden_size = inferred["hidden_size"]
    for name, pattern in (("mlp_ratio", _BLOCK_FC1), ("pooling_mlp_ratio", _POOL_FC1)):
        ratio = _mlp_ratio(state_dict, pattern, hidden_size, name)
        if ratio is not None:
            inferred[name] = ratio
    if "num_segments" not in kwargs and len(inferred["depths"]) != 4:
        raise ValueError(f"the weights have {len(inferred['depths'])} stages: pass `num_segments` (one per stage)")
    return CastConfig(**{**inferred, **kwargs})


def _mlp_ratio(state_dict: dict, pattern: re.Pattern, hidden_size: int, name: str) -> int | float | None:
    """The MLP width ratio that the `fc1` weights matching `pattern` give (None without such weights): one width for
    all of them, since the config holds one ratio; an integer ratio when the width is a multiple of `hidden_size`."""
    widths = {int(value.shape[0]) for key, value in state_dict.items() if pattern.match(key)}
    if not widths:
        return None
    if len(widths) > 1:
        raise ValueError(f"the weights have MLPs of widths {sorted(widths)}, but `{name}` gives them all one width")
    (width,) = widths
    ratio = width // hidden_size if width % hidden_size == 0 else width / hidden_size
    # the model builds int(hidden_size * ratio) features: a ratio that does not give the width back cannot be used
    if int(hidden_size * ratio) != width:
        raise ValueError(f"MLP width {width} is not int({hidden_size} * r) for any float `{name}` r")
    return ratio


def _is_segmentation_layout(state_dict: dict) -> bool:
    """The official segmentation variant (`cast_seg.py`) fuses every stage in `block_fusion`."""
    return any(key.startswith("block_fusion.") for key in state_dict)


def _expected_shapes(config: CastConfig, state_dict: dict) -> dict[str, torch.Size]:
    """Names and shapes the converted weights must have: those of the head model the layout holds
    (`CastForSemanticSegmentation`, `CastForImageClassification`) or of the backbone alone, `cast.`-prefixed."""
    with torch.device("meta"):
        if _is_segmentation_layout(state_dict):
            model = CastForSemanticSegmentation(config)
        else:
            model = CastForImageClassification(config) if _has_linear_head(state_dict) else CastModel(config)
    prefix = "cast." if isinstance(model, CastModel) else ""
    shapes = {prefix + name: tensor.shape for name, tensor in model.state_dict().items()}
    if not _has_linear_head(state_dict):  # MoCo checkpoints: the projector head is not a classifier
        shapes = {name: shape for name, shape in shapes.items() if not name.startswith("classifier.")}
    return shapes


def convert_state_dict(original_state_dict: dict, config: CastConfig | None = None) -> dict[str, torch.Tensor]:
    """Map an official CAST state dict (bare, DeiT-style, segmentation variant, or a MoCo-v3 training state dict
    with the `module.base_encoder.` prefix) to this package's layout: `cast.*` backbone keys, plus `classifier.*`
    when the weights hold a linear head, plus `fusion.*` for the segmentation variant (load those into
    `CastForSemanticSegmentation`, the others into `CastForImageClassification` or, without a head, `CastModel`).

    Dropped on purpose: the duplicate `blocks.{i}` copies (checked equal to their stage copies), the zero
    `pe_token` (checked zero), the MoCo projector head, and, outside the segmentation variant, the last pooling
    stage's feature MLPs (its pooled tokens reach no output). A sin-cos `pos_embed` must be the official fixed
    table; it is kept as is.
    Raises ValueError on unknown keys, missing keys, or shapes that do not fit `config` (inferred when None).
    """
    state_dict = _strip_prefix(original_state_dict)
    if config is None:
        config = infer_config(state_dict)
    stages = _stage_block_indices(state_dict)
    last_stage = config.num_stages
    converted: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        target = _convert_key(key, value, state_dict, stages, last_stage, config)
        if target is _UNKNOWN:
            unknown.append(key)
        elif target is not None:
            converted[target] = value.reshape(-1, value.shape[-1]) if key == "pos_embed" else value
            origin[target] = key
    if unknown:
        raise ValueError(f"`original_state_dict` has {len(unknown)} keys with no CAST counterpart: {sorted(unknown)[:20]}")

    expected = _expected_shapes(config, state_dict)
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(f"{origin[key]} -> {key}" for key in set(converted) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"`original_state_dict` does not match the configuration {config.depths=} {config.num_segments=}: "
            f"missing {missing[:20]}, unexpected {unexpected[:20]}"
        )
    wrong = [f"{k}: {tuple(converted[k].shape)} vs expected {tuple(expected[k])}" for k in expected if converted[k].shape != expected[k]]
    if wrong:
        raise ValueError(f"`original_state_dict` shapes do not fit the configuration: {wrong[:20]}")
    return converted


_UNKNOWN = object()


def _convert_key(key, value, state_dict, stages, last_stage, config):
    """Target name of one official key, None to drop it, or _UNKNOWN."""
    match = _STAGE_BLOCK.match(key)
    if match:
        stage, index, rest = int(match.group(1)), int(match.group(2)), match.group(3)
        renamed = _rename(rest, ORIGINAL_TO_CONVERTED_KEY_MAPPING["block"])
        if renamed is None:
            return _UNKNOWN
        local = stages[stage].index(index)
        return f"cast.encoder.stages.{stage - 1}.layers.{local}.{renamed}"
    match = _SHARED_BLOCK.match(key)
    if match:
        twins = [f"blocks{stage}.{match.group(1)}.{match.group(2)}" for stage in stages]
        twin = next((name for name in twins if name in state_dict), None)
        if twin is None or not torch.equal(state_dict[twin], value):
            raise ValueError(f"`original_state_dict` key {key!r} has no identical stage copy `blocks{{s}}.{match.group(1)}.*`")
        return None
    match = _POOL.match(key)
    if match:
        stage, rest = int(match.group(1)), match.group(2)
        if stage == last_stage and rest.startswith(("fc1.", "fc2.")) and not _is_segmentation_layout(state_dict):
            return None  # only the segmentation variant reads the last stage's pooled class token
        renamed = _rename(rest, ORIGINAL_TO_CONVERTED_KEY_MAPPING["pool"])
        return _UNKNOWN if renamed is None else f"cast.encoder.stages.{stage - 1}.pooling.{renamed}"
    if key == "pe_token":
        if torch.count_nonzero(value):
            raise ValueError("`original_state_dict['pe_token']` is not zero: this CAST variant is not supported")
        return None
    if key == "pos_embed":
        if config.position_embedding_type == "sincos":
            _check_position_embedding(value, config)
        return "cast.embeddings.position_embeddings"
    if key.startswith("head."):
        return "classifier." + key[len("head."):] if _has_linear_head(state_dict) else None
    renamed = _rename(key, ORIGINAL_TO_CONVERTED_KEY_MAPPING["fusion"])
    if renamed is not None:
        return renamed
    renamed = _rename(key, ORIGINAL_TO_CONVERTED_KEY_MAPPING["root"])
    return _UNKNOWN if renamed is None else "cast." + renamed


def _check_position_embedding(value: torch.Tensor, config: CastConfig) -> None:
    """With `position_embedding_type="sincos"` the official table must be the fixed sin-cos embedding of the
    training grid (it is kept as is, so the converted model adds exactly the values the official one adds)."""
    height, width = ([config.image_size] * 2 if isinstance(config.image_size, int) else config.image_size)
    grid = (height // config.patch_size, width // config.patch_size)
    expected = sincos_position_embedding(*grid, config.hidden_size)
    if value.shape[-2:] != expected.shape or not torch.allclose(value.float(), expected, atol=1e-3):
        raise ValueError(
            f"`original_state_dict['pos_embed']` of shape {tuple(value.shape)} is not the fixed sin-cos embedding of "
            f"the {grid[0]}x{grid[1]} grid (image_size={config.image_size}); a learned table needs position_embedding_type='learned'"
        )


# =====================================================================================================================
# `cast-convert`: official checkpoint file -> model folder. Everything below only reads files, detects their layout
# and writes folders; the key mapping above stays the single place that knows official key names.
# =====================================================================================================================

# The DeiT training scripts store their argparse namespace next to the weights: a plain attribute container, allowed
# explicitly. Nothing else beyond torch's own weights-only allowlist (tensors, containers, numbers, strings).
SAFE_CHECKPOINT_GLOBALS = [argparse.Namespace]
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format; only it can be memory-mapped
_REFERENCE_ATOL = 1e-4
_MOCO_PREFIXES = {
    "module.base_encoder.head.": "MoCo projector head of the base encoder (pretraining only; the backbone's feature "
    "is its class token)",
    "module.momentum_encoder.": "MoCo momentum encoder (the key encoder, a moving average of the base encoder, used "
    "only during pretraining)",
    "module.predictor.": "MoCo predictor head (pretraining only)",
}
_TRAINING_STATE = "training state (optimizer, scaler, scheduler, counters, arguments): not needed for inference"
_DEIT_EMA = "exponential moving average copy of the weights (`model_ema`): the reported results use `model`"
_BACKBONE_ARCHITECTURE = CastModel.__name__
_CLASSIFIER_ARCHITECTURE = CastForImageClassification.__name__
_SEGMENTATION_ARCHITECTURE = CastForSemanticSegmentation.__name__
_PRETRAINING_ARCHITECTURE = CastForPreTraining.__name__
_MOMENTUM_ENCODER_PREFIX = "module.momentum_encoder."
# MoCo-v3 heads of the training checkpoint -> `CastForPreTraining` modules (same `nn.Sequential` numbering)
_PRETRAINING_HEADS = {
    "module.base_encoder.head.": "projector.",
    "module.momentum_encoder.head.": "momentum_projector.",
    "module.predictor.": "predictor.",
}


class CheckpointError(ValueError):
    """An official checkpoint file that cannot be converted: unreadable, refused, or not matching the named model."""


@dataclass
class OfficialCheckpoint:
    """The weights found in an official checkpoint file.

    Attributes:
        layout (`str`): one of `modeling_cast.hub.registry.CHECKPOINT_LAYOUTS` ("moco", "deit", "moco-segmentation", "state-dict").
        state_dict (`dict[str, torch.Tensor]`): the model's weights, wrapper prefixes removed (MoCo: the base
            encoder without its projector head).
        arch (`str`, *optional*): the official architecture name stored with the weights (`arch`, or the DeiT
            `args.model`).
        dropped (`dict[str, list[str]]`): entries of the file that are not converted, by reason.
        training_state_dict (`dict[str, torch.Tensor]`, *optional*): MoCo-v3 checkpoints only: the whole training
            state dict (both encoders, projectors and predictor), for `--with-pretraining-heads`.
    """

    layout: str
    state_dict: dict[str, torch.Tensor]
    arch: str | None = None
    dropped: dict[str, list[str]] = field(default_factory=dict)
    training_state_dict: dict[str, torch.Tensor] | None = None

    @property
    def is_segmentation(self) -> bool:
        """Weights of the official segmentation variant (`block_fusion.*`), for `CastForSemanticSegmentation`."""
        return _is_segmentation_layout(self.state_dict)


def load_official_checkpoint(path: str | os.PathLike) -> dict:
    """Read an official `.pth`/`.pth.tar` file with `torch.load(weights_only=True)`: no code stored in the file ever
    runs. Zip-format files (torch >= 1.6) are memory-mapped, so a 2 GB training checkpoint costs little memory;
    legacy-format files are read into memory.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, or its pickle needs code execution (refused).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"`--checkpoint` {str(path)!r} is not a file")
    with open(path, "rb") as handle:
        is_zip = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    try:
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as error:
        needed = _refused_global(str(error))
        if needed is None:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is truncated or corrupt, or not a PyTorch checkpoint "
                f"(unpickling failed: {_unpickler_detail(str(error))})"
            ) from error
        raise CheckpointError(
            f"refused to load checkpoint {str(path)!r}: its pickle needs to run code (it references `{needed}`), "
            f"and {CONVERTER_COMMAND} never executes code from a checkpoint (it loads with torch.load(weights_only=True)). "
            "Official CAST checkpoints hold only tensors, numbers and strings; this file is not one of them or was "
            "modified. If you trust its source, re-save its state dict as plain tensors and convert that."
        ) from error
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError) as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt, or not a PyTorch checkpoint "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from error
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, expected a dict (a state dict or a "
            "training checkpoint)"
        )
    return dict(checkpoint)


def _refused_global(message: str) -> str | None:
    """The Python object a weights-only load refused to build, or None when the load failed for another reason.
    A name under `torch.` that torch does not have is a cut-off name from a truncated file, not a refusal (looked up
    on the already imported `torch` only: nothing named by the file is ever imported)."""
    found = re.search(r"(?i)unsupported global:? (?:GLOBAL )?([\w.]+)", message)
    if found is None:
        return None
    name = found.group(1)
    if name.startswith("torch."):
        owner = torch
        for part in name.split(".")[1:]:
            owner = getattr(owner, part, None)
            if owner is None:
                return None
    return name


def _unpickler_detail(message: str) -> str:
    found = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\n\s*\n|$)", message, flags=re.DOTALL)
    detail = " ".join((found.group(1) if found else message).split())
    return detail.split(" Please use")[0][:200]  # torch's advice to allow-list globals does not apply here


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def _tensor_dict(mapping: Mapping, where: str) -> dict[str, torch.Tensor]:
    not_tensors = sorted(str(key) for key, value in mapping.items() if not isinstance(value, torch.Tensor))
    if not mapping or not_tensors:
        raise CheckpointError(f"{where} must map parameter names to tensors; entries that are not: {not_tensors[:10]}")
    return dict(mapping)


def detect_checkpoint_layout(checkpoint: Mapping) -> OfficialCheckpoint:
    """Find the model weights in an official checkpoint and say which training script wrote it.

    - MoCo-v3 (`state_dict` with `module.base_encoder.*` keys, plus `arch`): keeps the base encoder without its
      projector head; the momentum encoder, predictor and optimizer/scaler state are dropped.
    - DeiT (`model` holding a state dict, `args.model` naming the architecture): keeps `model`.
    - A bare state dict, or one under `state_dict` (e.g. a linear-probing checkpoint).
    A MoCo-v3 checkpoint of the segmentation variant (`block_fusion.*` keys) has the layout "moco-segmentation".
    """
    top_level = sorted(str(key) for key in checkpoint)
    if isinstance(checkpoint.get("state_dict"), Mapping):
        state_dict = _tensor_dict(checkpoint["state_dict"], "checkpoint['state_dict']")
        dropped = {_TRAINING_STATE: [key for key in top_level if key != "state_dict"]}
        arch = checkpoint.get("arch") if isinstance(checkpoint.get("arch"), str) else None
        if any(key.startswith(MOCO_BACKBONE_PREFIX) for key in state_dict):
            backbone, moco_dropped = _split_moco_state_dict(state_dict)
            layout = "moco-segmentation" if _is_segmentation_layout(backbone) else "moco"
            return OfficialCheckpoint(layout, backbone, arch, {**moco_dropped, **_nonempty(dropped)}, state_dict)
        return OfficialCheckpoint("state-dict", _strip_prefix(state_dict), arch, _nonempty(dropped))
    if isinstance(checkpoint.get("model"), Mapping):
        state_dict = _tensor_dict(checkpoint["model"], "checkpoint['model']")
        arch = getattr(checkpoint.get("args"), "model", None)
        dropped = {
            _DEIT_EMA: [key for key in top_level if key == "model_ema"],
            _TRAINING_STATE: [key for key in top_level if key not in ("model", "model_ema")],
        }
        return OfficialCheckpoint("deit", _strip_prefix(state_dict), arch if isinstance(arch, str) else None,
                                  _nonempty(dropped))
    if checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        return OfficialCheckpoint("state-dict", _strip_prefix(dict(checkpoint)))
    raise CheckpointError(
        "not an official CAST checkpoint: expected a MoCo-v3 checkpoint (`state_dict` with `module.base_encoder.*` "
        f"keys), a DeiT checkpoint (`model`) or a bare state dict, got top-level keys {top_level[:20]}"
    )


def _nonempty(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    return {reason: keys for reason, keys in groups.items() if keys}


def _split_moco_state_dict(state_dict: dict) -> tuple[dict, dict[str, list[str]]]:
    """(base encoder without its projector, dropped keys by reason)."""
    backbone, dropped, unknown = {}, defaultdict(list), []
    for key, value in state_dict.items():
        reason = next((why for prefix, why in _MOCO_PREFIXES.items() if key.startswith(prefix)), None)
        if reason is not None:
            dropped[reason].append(key)
        elif key.startswith(MOCO_BACKBONE_PREFIX):
            backbone[key[len(MOCO_BACKBONE_PREFIX):]] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"MoCo-v3 checkpoint['state_dict'] has {len(unknown)} keys outside the base encoder, momentum encoder "
            f"and predictor: {sorted(unknown)[:20]}"
        )
    return backbone, dict(dropped)


def check_checkpoint_matches(official: OfficialCheckpoint, entry: NamedModel) -> None:
    """Refuse a checkpoint whose layout, variant or `arch` does not belong to the named model `entry`."""
    if official.is_segmentation != (entry.architecture == _SEGMENTATION_ARCHITECTURE):
        found = "has" if official.is_segmentation else "has no"
        raise CheckpointError(
            f"the checkpoint {found} `block_fusion.*` weights (CAST's segmentation variant, e.g. arch "
            f"'cast_seg_small_pretrain' = cast-small-coco), but --model-name {entry.name} is a {entry.architecture}"
        )
    if official.layout != "state-dict" and entry.released and official.layout != entry.checkpoint_layout:
        other = named_model_for_arch(official.arch, official.layout) if official.arch else None
        hint = f"; it looks like {other}: use --model-name {other}" if other else ""
        raise CheckpointError(
            f"the checkpoint is a {official.layout} checkpoint but {entry.name} is converted from a "
            f"{entry.checkpoint_layout} checkpoint{hint}"
        )
    if official.arch is not None and entry.released and official.arch not in entry.official_arch:
        other = named_model_for_arch(official.arch, official.layout)
        hint = (
            f"; that is {other}: use --model-name {other}" if other else
            "; for a model outside the released ones, pass another --model-name and its architecture with --config"
        )
        raise CheckpointError(
            f"the checkpoint's arch {official.arch!r} does not match --model-name {entry.name} (expected "
            f"{' or '.join(repr(arch) for arch in entry.official_arch)}){hint}"
        )


def _drop_reason(key: str, config: CastConfig, is_segmentation: bool) -> str | None:
    """Why `convert_state_dict` leaves out an official key (None: it converts it)."""
    if _SHARED_BLOCK.match(key):
        return "duplicate copies of the stage blocks (`blocks.{i}.*`), checked identical to `blocks{s}.{i}.*`"
    if key == "pe_token":
        return "frozen all-zero class-token position (`pe_token`), checked zero"
    match = _POOL.match(key)
    last_stage = match and int(match.group(1)) == config.num_stages
    if last_stage and match.group(2).startswith(("fc1.", "fc2.")) and not is_segmentation:
        return "feature MLP of the last pooling stage (its pooled tokens reach no output; frozen in training)"
    return None


def official_architecture(official: OfficialCheckpoint) -> str:
    """The model class the weights of `official` make: the segmentation head for the segmentation variant, the
    classifier for a linear head outside MoCo-v3 (whose head is the projector), else the backbone."""
    if official.is_segmentation:
        return _SEGMENTATION_ARCHITECTURE
    has_head = _has_linear_head(_strip_prefix(official.state_dict)) and official.layout != "moco"
    return _CLASSIFIER_ARCHITECTURE if has_head else _BACKBONE_ARCHITECTURE


def _convert_for(entry: NamedModel, state_dict: dict, config: CastConfig) -> dict[str, torch.Tensor]:
    try:
        return convert_state_dict(state_dict, config)
    except ValueError as error:
        raise CheckpointError(f"the checkpoint does not fit {entry.name} ({_describe(config)}): {error}") from error


def _dropped_by_conversion(state_dict: dict, config: CastConfig, is_segmentation: bool) -> dict[str, list[str]]:
    dropped = defaultdict(list)
    for key in _strip_prefix(state_dict):
        reason = _drop_reason(key, config, is_segmentation)
        if reason is not None:
            dropped[reason].append(key)
    return dropped


def convert_official_checkpoint(official: OfficialCheckpoint, entry: NamedModel):
    """Convert the weights of `official` for the named model `entry` (architecture and shapes from its config).

    Returns `(tensors, dropped)`: the state dict of `entry.architecture` and the official keys left out, by reason.
    Raises CheckpointError when the weights do not fit the named configuration.
    """
    config = named_config(entry)
    converted = _convert_for(entry, official.state_dict, config)
    dropped = defaultdict(list, {reason: list(keys) for reason, keys in official.dropped.items()})
    for reason, keys in _dropped_by_conversion(official.state_dict, config, official.is_segmentation).items():
        dropped[reason] += keys
    has_classifier = "classifier.weight" in converted
    if entry.architecture == _BACKBONE_ARCHITECTURE:
        if has_classifier:
            reason = f"linear classification head (`head.*`): {entry.name} is a backbone"
            dropped[reason] += ["head.weight", "head.bias"]
        converted = {key[len("cast."):]: value for key, value in converted.items() if key.startswith("cast.")}
    elif entry.architecture == _CLASSIFIER_ARCHITECTURE and not has_classifier:
        raise CheckpointError(
            f"{entry.name} is a classifier with {config.num_labels} classes, but the checkpoint has no linear head "
            f"`head.weight` of shape ({config.num_labels}, {config.hidden_size})"
        )
    return converted, dict(dropped)


def pretraining_entry(official: OfficialCheckpoint, entry: NamedModel) -> NamedModel:
    """The table entry for converting a MoCo-v3 checkpoint into the whole `CastForPreTraining` (base encoder,
    projector, predictor, momentum encoder), with the projector widths read from the weights."""
    if official.layout != "moco" or official.training_state_dict is None:
        raise CheckpointError(
            f"--with-pretraining-heads needs a MoCo-v3 training checkpoint, got a {official.layout} checkpoint"
        )
    raw = official.training_state_dict
    first, last = (raw.get(f"module.base_encoder.head.{index}.weight") for index in (0, 6))
    if first is None or last is None:
        raise CheckpointError("the MoCo-v3 checkpoint has no 3-layer projector `module.base_encoder.head.{0,6}.weight`")
    widths = {"pretraining_hidden_dim": int(first.shape[0]), "pretraining_projection_dim": int(last.shape[0])}
    return replace(
        entry, architecture=_PRETRAINING_ARCHITECTURE, config_kwargs={**entry.config_kwargs, **widths}
    )


def convert_pretraining_checkpoint(official: OfficialCheckpoint, entry: NamedModel):
    """Convert a MoCo-v3 training checkpoint into `CastForPreTraining` weights (`entry` from `pretraining_entry`), so
    that pretraining can resume from it: `cast.*` (base encoder) and `momentum_cast.*` through `convert_state_dict`,
    the projectors and the predictor by their module numbers. Returns `(tensors, dropped)` like
    `convert_official_checkpoint`."""
    config = named_config(entry)
    raw = official.training_state_dict
    momentum = {MOCO_BACKBONE_PREFIX + key[len(_MOMENTUM_ENCODER_PREFIX):]: value for key, value in raw.items()
                if key.startswith(_MOMENTUM_ENCODER_PREFIX)}
    tensors = _convert_for(entry, official.state_dict, config)
    tensors.update({"momentum_" + key: value for key, value in _convert_for(entry, momentum, config).items()})
    for key, value in raw.items():
        prefix = next((prefix for prefix in _PRETRAINING_HEADS if key.startswith(prefix)), None)
        if prefix is not None:
            tensors[_PRETRAINING_HEADS[prefix] + key[len(prefix):]] = value
    dropped = defaultdict(list, {reason: list(keys) for reason, keys in official.dropped.items()
                                 if reason not in _MOCO_PREFIXES.values()})
    for prefix, state_dict in (("", official.state_dict), (_MOMENTUM_ENCODER_PREFIX, momentum)):
        for reason, keys in _dropped_by_conversion(state_dict, config, official.is_segmentation).items():
            dropped[reason] += [prefix + key for key in keys]
    return tensors, dict(dropped)


def _describe(config: CastConfig) -> str:
    return (
        f"hidden_size={config.hidden_size}, depths={config.depths}, "
        f"position_embedding_type={config.position_embedding_type!r}"
    )


def lacks_classifier(entry: NamedModel, tensors: Mapping[str, torch.Tensor]) -> bool:
    """A pretrained segmentation backbone (e.g. cast-small-coco): its per-superpixel classifier is not in the
    checkpoint; `from_pretrained(..., num_labels=K)` creates it when fine-tuning starts."""
    return entry.architecture == _SEGMENTATION_ARCHITECTURE and "classifier.weight" not in tensors


def _model_with_weights(entry: NamedModel, tensors: Mapping[str, torch.Tensor]):
    """`entry`'s model built on the `meta` device with `tensors` assigned (no copy; floating-point tensors in
    float32, as the official weights), checked strictly: every weight present (but the classifier of a backbone
    that `lacks_classifier`), nothing unexpected, every shape right. Returns `(model, state_dict to save)`."""
    model = empty_model(entry)
    untrained = set()
    if lacks_classifier(entry, tensors):
        untrained = {name for name in model.state_dict() if name.startswith("classifier.")}
    weights = {name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in tensors.items()}
    try:
        # strict=False only to allow the untrained classifier: the key lists are checked below
        incompatible = model.load_state_dict(weights, strict=False, assign=True)
    except RuntimeError as error:  # shapes that do not fit
        raise CheckpointError(f"the converted weights do not fit the model: {' '.join(str(error).split())}") from error
    missing = sorted(set(incompatible.missing_keys) - untrained)
    unexpected = sorted(incompatible.unexpected_keys)
    if missing or unexpected:
        raise CheckpointError(
            f"the converted weights do not fit the model: missing {missing[:20]}, unexpected {unexpected[:20]}"
        )
    return model, {name: tensor for name, tensor in model.state_dict().items() if name not in untrained}


def write_converted_folder(
    output_dir: str | os.PathLike, entry: NamedModel, tensors: Mapping[str, torch.Tensor], overwrite: bool = False
) -> Path:
    """Write a complete model folder (weights, config, processor config, card, code) atomically: everything goes to
    a hidden temporary sibling that replaces `output_dir` only once complete and checked, so an interrupted or
    failed run leaves no folder that loads. Returns `output_dir`."""
    output_dir = Path(output_dir).absolute()
    check_output_dir(output_dir, overwrite)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.incomplete-", dir=output_dir.parent))
    try:
        make_shareable(staging)
        model, state_dict = _model_with_weights(entry, tensors)
        write_model_folder(entry, staging, model, state_dict)
        _replace_folder(staging, output_dir)
    except BaseException:  # also KeyboardInterrupt: never leave a half-written folder behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def check_output_dir(output_dir: Path, overwrite: bool, inputs: Mapping[str, Path | None] | None = None) -> None:
    """Refuse an `--output-dir` that is a file, or a folder with content unless `overwrite` (nothing the user has
    is replaced without being asked), or a folder holding one of the `inputs` (option name -> path), which replacing
    the folder would delete."""
    for option, path in (inputs or {}).items():
        if path is None:
            continue
        # resolved, so that symbolic links and `..` cannot hide an input inside the folder
        resolved_input, resolved_output = Path(path).resolve(), output_dir.resolve()
        if resolved_input == resolved_output or resolved_output in resolved_input.parents:
            raise CheckpointError(
                f"`{option}` {str(path)!r} lies inside `--output-dir` {str(output_dir)!r}, which the conversion "
                "replaces as a whole: write the model to another folder (nothing you gave is deleted)"
            )
    if output_dir.exists() and not output_dir.is_dir():
        raise CheckpointError(f"`--output-dir` {str(output_dir)!r} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise CheckpointError(f"`--output-dir` {str(output_dir)!r} is not empty: pass --overwrite to replace it")


def _replace_folder(staging: Path, output_dir: Path) -> None:
    if output_dir.is_dir() and not any(output_dir.iterdir()):
        output_dir.rmdir()
    if not output_dir.exists():
        os.replace(staging, output_dir)
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.previous-", dir=output_dir.parent))
    os.replace(output_dir, previous / output_dir.name)
    os.replace(staging, output_dir)
    shutil.rmtree(previous, ignore_errors=True)


def verify_against_reference(folder: str | os.PathLike, reference: str | os.PathLike, architecture: str) -> dict:
    """Run the converted model on the inputs of a reference file (`inputs.pixel_values`, `inputs.superpixels`) and
    compare with its official outputs (`outputs.pooled`, and `outputs.logits` for classifiers). Returns the max
    absolute difference per output; raises CheckpointError above 1e-4."""
    if architecture not in (_BACKBONE_ARCHITECTURE, _CLASSIFIER_ARCHITECTURE, _PRETRAINING_ARCHITECTURE):
        raise CheckpointError(f"--reference compares backbone features and logits; {architecture} is not supported")
    expected = load_file(str(reference))
    model = model_class(architecture).from_pretrained(folder).eval()
    backbone = model if architecture == _BACKBONE_ARCHITECTURE else model.cast
    inputs = {"pixel_values": expected["inputs.pixel_values"], "superpixels": expected["inputs.superpixels"]}
    differences = {}
    with torch.no_grad():
        differences["pooled"] = (backbone(**inputs).pooler_output - expected["outputs.pooled"]).abs().max().item()
        if architecture == _CLASSIFIER_ARCHITECTURE and "outputs.logits" in expected:
            differences["logits"] = (model(**inputs).logits - expected["outputs.logits"]).abs().max().item()
        if architecture == _PRETRAINING_ARCHITECTURE and "outputs.projector" in expected:
            projection = model.projector(backbone(**inputs).pooler_output)
            differences["projector"] = (projection - expected["outputs.projector"]).abs().max().item()
            if "outputs.predictor" in expected:
                prediction = model.predictor(projection)
                differences["predictor"] = (prediction - expected["outputs.predictor"]).abs().max().item()
    failed = {name: value for name, value in differences.items() if not value <= _REFERENCE_ATOL}
    if failed:
        raise CheckpointError(f"converted model differs from the reference outputs in {reference}: max |diff| {failed}")
    return differences
