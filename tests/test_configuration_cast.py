"""CastConfig: presets, JSON round trip, strict validation."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from modeling_cast import CAST_PRESETS, CastConfig, CastForImageClassification, CastModel


def test_config_defaults_are_cast_base():
    config = CastConfig()
    assert (config.hidden_size, config.num_attention_heads) == (768, 12)
    assert config.depths == [3, 3, 3, 2] and config.num_segments == [64, 32, 16, 8]
    assert config.num_hidden_layers == 11 and config.patch_size == 8


def test_config_json_round_trip(tmp_path):
    config = CastConfig(hidden_size=384, depths=(6, 3, 3, 3), image_size=(160, 224), num_labels=7)
    config.save_pretrained(tmp_path)
    loaded = CastConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.depths == [6, 3, 3, 3] and loaded.image_size == [160, 224] and loaded.num_labels == 7


# Backbone parameter counts (head excluded). cast-small equals the count of distinct trainable tensors of the
# official cast_small state dict (small_224 reference: duplicate `blocks.*`, head, the fixed `pos_embed`/`pe_token`
# and the unused last-stage pooling MLPs left out); the others follow from the same layout.
@pytest.mark.parametrize(
    ("name", "count"),
    [("cast-small", 26_468_016), ("cast-small-deep", 33_565_872), ("cast-base", 105_697_632), ("cast-base-deep", 134_049_120)],
)
def test_config_presets_build_on_meta_with_expected_size(name, count):
    config = CastConfig.from_preset(name)
    assert config.hidden_size == CAST_PRESETS[name]["hidden_size"]
    with torch.device("meta"):
        model = CastModel(config)
    assert sum(p.numel() for p in model.parameters()) == count


def test_config_preset_unknown_name():
    with pytest.raises(ValueError, match=r"`name` must be one of"):
        CastConfig.from_preset("cast-huge")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"depths": [1, 1], "num_segments": [4, 2, 1]}, ValueError, r"`depths` and `num_segments`"),
        ({"num_segments": [64, 64, 16, 8]}, ValueError, r"`num_segments` must be strictly decreasing"),
        ({"num_segments": [8, 16, 32, 64]}, ValueError, r"`num_segments` must be strictly decreasing"),
        ({"depths": [3, 0, 3, 2]}, ValueError, r"`depths` must be >= 1"),
        ({"depths": [3.5, 3, 3, 2]}, TypeError, r"`depths` must be a non-empty list of ints"),
        ({"depths": []}, TypeError, r"`depths` must be a non-empty list"),
        ({"hidden_size": 100}, ValueError, r"`hidden_size` must be divisible by `num_attention_heads`"),
        ({"hidden_size": 96, "num_attention_heads": 6, "pooling_num_attention_heads": 7}, ValueError, "pooling_num_attention_heads"),
        ({"hidden_size": 36, "num_attention_heads": 6, "pooling_num_attention_heads": 6}, ValueError, "divisible by 8"),
        ({"hidden_size": "768"}, TypeError, r"`hidden_size` must be an int"),
        ({"patch_size": 12}, ValueError, r"`patch_size` must be one of"),
        ({"image_size": 100}, ValueError, r"`image_size` must be"),
        ({"hidden_act": "relu"}, ValueError, r"`hidden_act` must be one of"),
        ({"assignment_temperature": 0.0}, ValueError, r"`assignment_temperature` must be > 0"),
        ({"pooling_dropout_prob": 1.5}, ValueError, r"`pooling_dropout_prob` must be in \[0, 1\)"),
        ({"superpixel_n_segments": 0}, ValueError, r"`superpixel_n_segments` must be >= 1, got 0"),
        ({"superpixel_n_segments": 19.5}, TypeError, r"`superpixel_n_segments` must be an int"),
        ({"superpixel_iterations": -1}, ValueError, r"`superpixel_iterations` must be >= 0"),
        ({"superpixel_compactness": 0}, ValueError, r"`superpixel_compactness` must be a positive finite number"),
        ({"superpixel_compactness": float("inf")}, ValueError, r"`superpixel_compactness` must be a positive"),
        ({"superpixel_rescale_factor": -1.0}, ValueError, r"`superpixel_rescale_factor` must be a positive"),
        ({"superpixel_image_mean": [0.5, 0.5]}, ValueError, r"`superpixel_image_mean` must have one value per channel"),
        ({"superpixel_image_std": [0.5, 0.0, 0.5]}, ValueError, r"`superpixel_image_std` must be positive"),
        ({"superpixel_image_std": "0.5"}, TypeError, r"`superpixel_image_std` must be a list of finite numbers"),
    ],
)
def test_config_rejects_inconsistent_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        CastConfig(**kwargs)


def test_config_validators_run_again_before_saving(tmp_path):
    """@strict runs the same validators before `save_pretrained` writes a config that was edited after construction."""
    config = CastConfig()
    config.num_segments = [8, 16, 32, 64]
    with pytest.raises(StrictDataclassClassValidationError, match=r"`num_segments` must be strictly decreasing"):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_config_num_labels_zero_gives_identity_head():
    with torch.device("meta"):
        model = CastForImageClassification(CastConfig(num_labels=0, hidden_size=96, num_attention_heads=6))
    assert isinstance(model.classifier, torch.nn.Identity)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-3, ValueError), (196.0, TypeError), ("196", TypeError)])
def test_config_rejects_bad_token_budgets(value, error):
    with pytest.raises(error, match="max_superpixel_tokens"):
        CastConfig(max_superpixel_tokens=value)


def test_superpixel_token_budget_adds_half_and_never_exceeds_the_stem_grid():
    from modeling_cast.configuration_cast import superpixel_token_budget

    assert superpixel_token_budget(64, 96) == 96  # 64 asked, 144 grid cells
    assert superpixel_token_budget(24, 48) == 36  # 36 asked + half would be 36; the grid has 36 cells
    assert superpixel_token_budget(196, 224) == 294
    assert superpixel_token_budget(1000, 64, patch_size=8) == 64


def test_config_in_model_superpixel_settings_round_trip(tmp_path):
    config = CastConfig(
        superpixel_n_segments=64, superpixel_compactness=20, superpixel_iterations=4,
        superpixel_image_mean=(0.5, 0.5, 0.5), superpixel_image_std=[0.25, 0.25, 0.25],
        superpixel_rescale_factor=1 / 255,
    )
    config.save_pretrained(tmp_path)
    loaded = CastConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.superpixel_image_mean == [0.5, 0.5, 0.5] and loaded.superpixel_iterations == 4


def test_config_warns_when_the_first_stage_has_more_segments_than_the_token_budget(caplog):
    """The official segmentation recipe's 320 first-level segments against a 196-token budget: segments that no
    image can fill, named with both fields and the number left empty."""
    with caplog.at_level("WARNING"):
        CastConfig(num_segments=[320, 160, 80, 40], max_superpixel_tokens=197)
    assert "`num_segments[0]`=320 is more than the static token budget `max_superpixel_tokens`=197" in caplog.text
    assert "at least 123 first-level segments stay empty" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        CastConfig(num_segments=[320, 160, 80, 40], max_superpixel_tokens=480)
    assert "max_superpixel_tokens" not in caplog.text
