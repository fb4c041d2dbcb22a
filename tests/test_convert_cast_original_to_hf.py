"""The official-to-transformers weight converter: layouts it accepts and the errors it raises."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import FIXTURES, block_superpixels
from safetensors.torch import load_file

from modeling_cast import CastConfig
from modeling_cast.conversion import convert_state_dict, infer_config

TINY_KWARGS = {"num_attention_heads": 6, "num_segments": [16, 8, 4, 2]}


@pytest.fixture(scope="module")
def official():
    data = load_file(str(FIXTURES / "tiny.safetensors"))
    return {k[len("state_dict."):]: v for k, v in data.items() if k.startswith("state_dict.")}


def test_convert_infers_architecture_from_weights(official):
    config = infer_config(official, **TINY_KWARGS)
    assert (config.hidden_size, config.depths, config.image_size, config.num_labels) == (96, [1, 1, 1, 1], 64, 10)


def test_convert_without_config_uses_inferred_one(official):
    converted = convert_state_dict(official)  # default head/segment counts fit the tiny weights' shapes
    assert converted["classifier.weight"].shape == (10, 96)
    assert "cast.encoder.stages.3.layers.0.attention.qkv.weight" in converted


def test_convert_drops_duplicates_and_unused_tensors(official):
    converted = convert_state_dict(official, infer_config(official, **TINY_KWARGS))
    assert not any(re.search(r"stages\.3\.pooling\.(feature|output)_", key) for key in converted)
    assert len(converted) == len(official) - 4 * 12 - 1 - 8  # blocks.* copies, pe_token, pool4 MLPs
    torch.testing.assert_close(converted["cast.embeddings.position_embeddings"], official["pos_embed"][0])


def test_convert_accepts_module_prefix_and_moco_prefix(official):
    config = infer_config(official, **TINY_KWARGS)
    reference = convert_state_dict(official, config)
    ddp = convert_state_dict({"module." + k: v for k, v in official.items()}, config)
    moco = {"module.base_encoder." + k: v for k, v in official.items() if not k.startswith("head")}
    moco.update({"module.momentum_encoder.cls_token": official["cls_token"], "module.predictor.0.weight": torch.ones(2, 2)})
    from_moco = convert_state_dict(moco, config)
    assert ddp.keys() == reference.keys()
    assert from_moco.keys() == {k for k in reference if not k.startswith("classifier.")}


def test_convert_accepts_stage_local_block_indices(official):
    """The official segmentation variant stores each stage's blocks once, numbered from 0 inside the stage."""
    local = {}
    for key, value in official.items():
        if re.match(r"blocks\.\d+\.", key):
            continue
        local[re.sub(r"^blocks(\d+)\.\d+\.", r"blocks\1.0.", key)] = value
    config = infer_config(official, **TINY_KWARGS)
    assert convert_state_dict(local, config).keys() == convert_state_dict(official, config).keys()


def _error(state_dict, match, config=None):
    with pytest.raises(ValueError, match=match):
        convert_state_dict(state_dict, config or infer_config(state_dict, **TINY_KWARGS))


def test_convert_rejects_unknown_key(official):
    _error({**official, "blocks1.0.attn.extra": torch.zeros(1)}, r"unexpected.*blocks1\.0\.attn\.extra")
    _error({**official, "decoder.weight": torch.zeros(1)}, r"no CAST counterpart.*decoder\.weight")


def test_convert_rejects_missing_key(official):
    broken = dict(official)
    del broken["pool2.pool_block.fc1.1.weight"]
    _error(broken, r"missing.*stages\.1\.pooling\.feature_projection\.weight")


def test_convert_rejects_wrong_shape(official):
    broken = {**official, "norm.weight": torch.ones(95)}
    _error(broken, r"shapes do not fit.*layernorm\.weight")


def test_convert_rejects_configuration_with_other_depths(official):
    config = CastConfig(hidden_size=96, num_attention_heads=6, depths=[2, 1, 1, 1], num_segments=[16, 8, 4, 2], image_size=64)
    _error(official, r"does not match the configuration", config)


def test_convert_rejects_diverging_duplicate_blocks(official):
    broken = {**official, "blocks.2.norm1.weight": official["blocks.2.norm1.weight"] + 1}
    _error(broken, r"blocks\.2\.norm1\.weight.*no identical stage copy")


def test_convert_rejects_learned_position_embedding(official):
    broken = {**official, "pos_embed": torch.randn(1, 65, 96)}
    with pytest.raises(ValueError, match=r"pos_embed.*not the fixed sin-cos.*position_embedding_type"):
        convert_state_dict(broken, infer_config(official, **TINY_KWARGS))


def test_convert_rejects_nonzero_pe_token(official):
    _error({**official, "pe_token": torch.ones(1, 1, 96)}, r"pe_token")


def test_convert_rejects_foreign_state_dict():
    with pytest.raises(ValueError, match=r"not an official CAST state dict"):
        infer_config({"encoder.layer.0.weight": torch.zeros(1)})


def test_convert_deit_variant_with_learned_position_table(official):
    """The official DeiT-supervised variant learns its position table, with a first row for the class token."""
    deit = {k: v for k, v in official.items() if k != "pe_token"}
    deit["pos_embed"] = torch.randn(1, 1 + 64, 96) * 0.02
    config = infer_config(deit, **TINY_KWARGS)
    assert config.position_embedding_type == "learned" and config.image_size == 64
    converted = convert_state_dict(deit, config)
    torch.testing.assert_close(converted["cast.embeddings.position_embeddings"], deit["pos_embed"][0])
    from modeling_cast import CastForImageClassification

    model = CastForImageClassification(config).eval()
    model.load_state_dict(converted, strict=True)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), block_superpixels(1, 64, 64)).logits
        # another grid size resizes the learned table
        other = model(torch.randn(1, 3, 48, 80), block_superpixels(1, 48, 80)).logits
    assert torch.isfinite(logits).all() and torch.isfinite(other).all()


def _segmentation_layout(official: dict, num_classes: int = 5) -> dict:
    """The official segmentation variant's layout (cast_seg.py): blocks stored once per stage with stage-local
    indices, no final norm, `block_fusion` (BatchNorm1d over the 4 fused stages, dropout, Linear) and a head."""
    layout = {}
    for key, value in official.items():
        if re.match(r"blocks\.\d+\.", key) or key.startswith(("norm.", "head.")):
            continue
        layout[re.sub(r"^blocks(\d+)\.\d+\.", r"blocks\1.0.", key)] = value
    width = 4 * 96
    layout.update(
        {
            "block_fusion.proj_blocks.0.norm.weight": torch.rand(width) + 0.5,
            "block_fusion.proj_blocks.0.norm.bias": torch.randn(width),
            "block_fusion.proj_blocks.0.norm.running_mean": torch.randn(width),
            "block_fusion.proj_blocks.0.norm.running_var": torch.rand(width) + 0.5,
            "block_fusion.proj_blocks.0.norm.num_batches_tracked": torch.tensor(3),
            "block_fusion.proj_blocks.2.weight": torch.randn(96, width) * 0.05,
            "block_fusion.proj_blocks.2.bias": torch.randn(96),
            "head.weight": torch.randn(num_classes, 96) * 0.05,
            "head.bias": torch.zeros(num_classes),
        }
    )
    return layout


def test_convert_segmentation_variant_loads_into_semantic_segmentation(official):
    from modeling_cast import CastForSemanticSegmentation

    layout = _segmentation_layout(official)
    config = infer_config(layout, **TINY_KWARGS)
    converted = convert_state_dict(layout, config)
    assert "fusion.norm.running_var" in converted and "classifier.weight" in converted
    assert "cast.encoder.stages.3.pooling.output_projection.weight" in converted  # the last stage pools here
    assert not any(key.startswith("cast.layernorm") for key in converted)
    model = CastForSemanticSegmentation(config).eval()
    model.load_state_dict(converted, strict=True)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), block_superpixels(1, 64, 64)).logits
    assert logits.shape == (1, 5, 64, 64) and torch.isfinite(logits).all()


def test_convert_segmentation_variant_moco_backbone_has_no_classifier(official):
    layout = {k: v for k, v in _segmentation_layout(official).items() if not k.startswith("head.")}
    converted = convert_state_dict(layout, infer_config(layout, **TINY_KWARGS))
    assert "fusion.projection.weight" in converted and not any(k.startswith("classifier.") for k in converted)


def _narrow_mlps(state_dict: dict, block_width: int, pooling_width: int) -> dict:
    """The official weights with every block MLP `block_width` wide and every pooling MLP `pooling_width` wide."""
    narrowed = {}
    for key, value in state_dict.items():
        if re.search(r"mlp\.fc1\.(weight|bias)$", key):
            value = value[:block_width]
        elif key.endswith("mlp.fc2.weight"):
            value = value[:, :block_width]
        elif re.search(r"pool_block\.(fc1\.1\.(weight|bias)|fc2\.0\.(weight|bias))$", key):
            value = value[:pooling_width]
        elif key.endswith("pool_block.fc2.1.weight"):
            value = value[:, :pooling_width]
        narrowed[key] = value.clone()
    return narrowed


def test_convert_infers_mlp_widths_from_fc1_weights(official):
    """Issue 17 item 10: weights with `mlp_ratio` 2 used to fail with a shape error (the ratio was not inferred)."""
    narrow = _narrow_mlps(official, block_width=192, pooling_width=144)
    config = infer_config(narrow, **TINY_KWARGS)
    assert (config.mlp_ratio, config.pooling_mlp_ratio) == (2, 1.5)
    converted = convert_state_dict(narrow, config)
    from modeling_cast import CastForImageClassification

    CastForImageClassification(config).load_state_dict(converted, strict=True)
    # the stock widths stay the stock ratios
    stock = infer_config(official, **TINY_KWARGS)
    assert (stock.mlp_ratio, stock.pooling_mlp_ratio) == (4, 4)


def test_convert_rejects_blocks_of_different_mlp_widths(official):
    mixed = dict(official)
    mixed.update({key: value for key, value in _narrow_mlps(official, 192, 384).items() if key.startswith("blocks2.")})
    with pytest.raises(ValueError, match=r"MLPs of widths \[192, 384\].*`mlp_ratio`"):
        infer_config(mixed, **TINY_KWARGS)
