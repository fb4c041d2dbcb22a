# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Model folders of the named CAST models: the generated `hub_configs/<name>/` files, and everything but the
conversion itself of the folders `cast-convert` writes."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from modeling_cast.modeling_cast import CastPreTrainedModel

from .cards import CARD_FILENAME, named_model_card, save_model_card
from .registry import NAMED_MODELS, NamedModel, get_named_model, named_config, named_processor

__all__ = ["generate_hub_configs", "hub_config_files", "write_model_folder"]

CONFIG_FILENAME = "config.json"
PROCESSOR_FILENAME = "preprocessor_config.json"
HUB_CONFIG_FILES = (CARD_FILENAME, CONFIG_FILENAME, PROCESSOR_FILENAME)
# `transformers_version` changes with every release; the generated hub_configs leave it out so they stay stable.
_UNSTABLE_CONFIG_KEYS = ("transformers_version",)


def write_model_folder(
    entry: NamedModel,
    folder: str | os.PathLike,
    model: CastPreTrainedModel | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> list[Path]:
    """
    Write a named model's folder: `config.json` (with `architectures` and the full `auto_map`),
    `preprocessor_config.json` and `README.md`, plus, given the `model` (built from `named_config(entry)`, weights
    loaded), its weights and the flat code files that `trust_remote_code=True` loads, through `save_pretrained`
    (`state_dict`: only these tensors, see `PreTrainedModel.save_pretrained`). Returns the written paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model is None:
        named_config(entry).save_pretrained(folder)
    else:
        model.save_pretrained(folder, state_dict=state_dict)
    named_processor(entry).save_pretrained(folder)
    save_model_card(named_model_card(entry), folder)
    return sorted(folder.iterdir())


def hub_config_files(entry: NamedModel) -> dict[str, str]:
    """The files of `hub_configs/<name>/`, as text (the configuration with sorted keys, without the version)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_model_folder(entry, tmp)
        config = json.loads(Path(tmp, CONFIG_FILENAME).read_text())
        for key in _UNSTABLE_CONFIG_KEYS:
            config.pop(key, None)
        files = {name: Path(tmp, name).read_text() for name in HUB_CONFIG_FILES}
    files[CONFIG_FILENAME] = json.dumps(config, indent=2, sort_keys=True) + "\n"
    return files


def generate_hub_configs(output_dir: str | os.PathLike, names: Sequence[str] | None = None) -> list[Path]:
    """Write `<output_dir>/<name>/{config.json, preprocessor_config.json, README.md}` for every named model (or
    `names`). Returns the written paths."""
    written = []
    for name in names or sorted(NAMED_MODELS):
        folder = Path(output_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, text in hub_config_files(get_named_model(name)).items():
            (folder / filename).write_text(text)
            written.append(folder / filename)
    return written
