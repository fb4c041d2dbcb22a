# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""LoRA adapters (PEFT) on a tiny CAST classifier: the recipe of docs/training.md ("LoRA and other PEFT adapters")
reloads onto a fresh base with the trained model's logits, and the naive recipe does not (issue 17 item 11).

CAST's stem and graph pooling hold BatchNorms, whose running statistics every training-mode forward updates; an
adapter that saves only the LoRA weights (and the classifier) loses those updates."""

from __future__ import annotations

import pytest
import torch
from conftest import smooth_image, tiny_config_kwargs
from torch import nn

from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor

peft = pytest.importorskip("peft", reason="PEFT adapters need `pip install peft` (the test extra has it)")

TRAIN_STEPS = 6
LEARNING_RATE = 1e-2
NUM_IMAGES = 4
# what "the same logits" means after a save and reload: float32 noise only
RELOAD_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def batch():
    processor = CastImageProcessor(size={"height": 32, "width": 32}, n_segments=12)
    images = [smooth_image(32, 32, seed) for seed in range(NUM_IMAGES)]
    inputs = processor(images, return_tensors="pt")
    inputs["labels"] = torch.arange(NUM_IMAGES) % tiny_config_kwargs()["num_labels"]
    return dict(inputs)


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    CastForImageClassification(CastConfig(**tiny_config_kwargs())).save_pretrained(folder)
    return folder


def _batch_norm_names(model: nn.Module) -> list[str]:
    # the documented recipe's list, verbatim
    return [name for name, module in model.named_modules() if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))]


def _set_batch_norms_to_eval(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.eval()


def _train_adapter(base_folder, batch, adapter_folder, *, save_batch_norms: bool, frozen_statistics: bool):
    """LoRA on qkv/proj for a few steps; returns the trained model's eval logits after saving the adapter."""
    model = CastForImageClassification.from_pretrained(base_folder)
    modules_to_save = ["classifier", *(_batch_norm_names(model) if save_batch_norms else [])]
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["qkv", "proj"], modules_to_save=modules_to_save)
    model = peft.get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    torch.manual_seed(1)
    for _ in range(TRAIN_STEPS):
        model.train()
        if frozen_statistics:
            _set_batch_norms_to_eval(model)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(adapter_folder)
    with torch.no_grad():
        return model(**batch).logits


def _reloaded_logits(base_folder, batch, adapter_folder) -> torch.Tensor:
    fresh_base = CastForImageClassification.from_pretrained(base_folder)
    model = peft.PeftModel.from_pretrained(fresh_base, adapter_folder).eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(scope="module")
def untrained_logits(base_folder, batch):
    with torch.no_grad():
        return CastForImageClassification.from_pretrained(base_folder).eval()(**batch).logits


@pytest.mark.parametrize(
    "save_batch_norms, frozen_statistics",
    [(True, False), (False, True)],
    ids=["batch-norms-in-modules-to-save", "batch-norms-in-eval-mode"],
)
def test_lora_adapter_reloads_with_the_trained_logits(
    base_folder, batch, untrained_logits, tmp_path, save_batch_norms, frozen_statistics
):
    trained = _train_adapter(
        base_folder, batch, tmp_path, save_batch_norms=save_batch_norms, frozen_statistics=frozen_statistics
    )

    reloaded = _reloaded_logits(base_folder, batch, tmp_path)

    assert (trained - untrained_logits).abs().max() > 1e-2  # the adapter learned something
    torch.testing.assert_close(reloaded, trained, rtol=0, atol=RELOAD_TOLERANCE)


def test_naive_lora_adapter_drifts_because_batch_norm_statistics_are_not_saved(base_folder, batch, tmp_path):
    """The failure the recipe prevents: LoRA weights and classifier saved, BatchNorm statistics left behind."""
    trained = _train_adapter(base_folder, batch, tmp_path, save_batch_norms=False, frozen_statistics=False)

    reloaded = _reloaded_logits(base_folder, batch, tmp_path)

    assert (reloaded - trained).abs().max() > 1e-3
