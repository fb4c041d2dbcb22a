# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Convert official CAST weights (github.com/twke18/CAST, timm-based) to the `CastForImageClassification` layout.

Official layout facts (from this project's reference notes): every transformer block is stored twice, as
`blocks.{i}` and as a stage copy `blocks{s}.{i}` that keeps the global index; the ConvStem is a Sequential
`patch_embed.proj.{0..12}`; pooling stage s lives in `pool{s}.pool_block`; `pos_embed` is a fixed sin-cos table
and `pe_token` a frozen zero vector; MoCo-v3 training checkpoints prefix the backbone with
`module.base_encoder.` and replace `head` by the MoCo projector.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import torch

from .configuration_cast import CastConfig
from .graph_pooling_cast import sincos_position_embedding

__all__ = ["convert_state_dict", "infer_config", "ORIGINAL_TO_CONVERTED_KEY_MAPPING", "MOCO_BACKBONE_PREFIX"]

MOCO_BACKBONE_PREFIX = "module.base_encoder."
_STAGE_BLOCK = re.compile(r"^blocks(\d+)\.(\d+)\.(.+)$")
_SHARED_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_POOL = re.compile(r"^pool(\d+)\.pool_block\.(.+)$")

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
    """Build a `CastConfig` from official weights. Width, stage depths, stage count, label count and (for a square
    position table) the training image size are read from the weights; head counts and segment counts cannot be recovered from them, so they come from `kwargs` (the
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
    if "num_segments" not in kwargs and len(inferred["depths"]) != 4:
        raise ValueError(f"the weights have {len(inferred['depths'])} stages: pass `num_segments` (one per stage)")
    return CastConfig(**{**inferred, **kwargs})


def _expected_shapes(config: CastConfig, with_head: bool) -> dict[str, torch.Size]:
    from .modeling_cast import CastForImageClassification, CastModel  # imported late: modeling imports are heavy

    with torch.device("meta"):
        model = CastForImageClassification(config) if with_head else CastModel(config)
    prefix = "" if with_head else "cast."
    return {prefix + name: tensor.shape for name, tensor in model.state_dict().items()}


def convert_state_dict(original_state_dict: dict, config: CastConfig | None = None) -> dict[str, torch.Tensor]:
    """Map an official CAST state dict (bare, DeiT-style, or a MoCo-v3 training state dict with the
    `module.base_encoder.` prefix) to the `CastForImageClassification` layout (`cast.*` backbone keys plus
    `classifier.*` when the weights hold a linear classification head).

    Dropped on purpose: the duplicate `blocks.{i}` copies (checked equal to their stage copies), the zero
    `pe_token` (checked zero), the MoCo projector head, and the last pooling stage's feature MLPs (its pooled
    tokens reach no output). `pos_embed` must be the official fixed sin-cos table; it is kept as is.
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

    expected = _expected_shapes(config, with_head=_has_linear_head(state_dict))
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
        if stage == last_stage and rest.startswith(("fc1.", "fc2.")):
            return None
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
