"""CastBackbone (modeling_cast/backbone_cast.py): transformers' backbone conventions on CastConfig, AutoBackbone from a
config and from every kind of CAST folder, feature maps painted from segment tokens onto the stem grid, batch
independence, gradients into the grouping, export, and remote code."""

from __future__ import annotations

import itertools
import json
import textwrap

import pytest
import torch
from conftest import FIXTURES, block_superpixels, run_remote_code, tiny_config_kwargs
from safetensors.torch import load_file
from transformers import AutoBackbone, AutoConfig, DepthAnythingConfig, DepthAnythingForDepthEstimation

from modeling_cast import (
    CastBackbone,
    CastConfig,
    CastForImageClassification,
    CastForPreTraining,
    CastForSemanticSegmentation,
    CastModel,
)
from modeling_cast.backbone_cast import soft_token_assignments
from modeling_cast.conversion import convert_state_dict, infer_config

IMAGE_SIZE = 32
STAGE_NAMES = ["stem", "stage1", "stage2"]  # of the tiny two-stage config
ALL_OUT_FEATURES = [list(choice) for size in (1, 2, 3) for choice in itertools.combinations(STAGE_NAMES, size)]


def _config(**overrides) -> CastConfig:
    return CastConfig(**tiny_config_kwargs(**overrides))


def _backbone(**overrides) -> CastBackbone:
    torch.manual_seed(0)
    return CastBackbone(_config(**overrides)).eval()


def _inputs(batch_size: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    return pixel_values, block_superpixels(batch_size, IMAGE_SIZE, IMAGE_SIZE, seed=seed)


def _mixed_counts() -> tuple[torch.Tensor, torch.Tensor]:
    """Three images with 16, 4 and 9 superpixel tokens (blocks of 8, 16 and 8 pixels with ids cut to 9)."""
    pixel_values = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    superpixels = torch.stack(
        [
            block_superpixels(1, IMAGE_SIZE, IMAGE_SIZE, block=8, seed=1)[0],
            block_superpixels(1, IMAGE_SIZE, IMAGE_SIZE, block=16, seed=2)[0],
            block_superpixels(1, IMAGE_SIZE, IMAGE_SIZE, block=8, seed=3)[0] % 9,
        ]
    )
    return pixel_values, superpixels


# ------------------------------------------------------------------------------------------------------------------
# configuration


def test_config_stage_names_follow_the_stages_and_default_to_the_last():
    config = _config(depths=[1, 1, 1], num_segments=[6, 4, 2])
    assert config.stage_names == ["stem", "stage1", "stage2", "stage3"]
    assert config.out_features == ["stage3"] and config.out_indices == [3]


def test_config_aligns_out_indices_and_out_features_and_round_trips(tmp_path):
    config = _config(out_indices=[0, -1])
    assert config.out_features == ["stem", "stage2"]
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["out_features"] == ["stem", "stage2"] and "stage_names" not in saved  # derived, never stored
    reloaded = CastConfig.from_pretrained(tmp_path, out_features=["stage1"])
    assert reloaded.out_features == ["stage1"] and reloaded.out_indices == [1]


def test_config_without_backbone_fields_loads_as_before(tmp_path):
    """A config.json written before the backbone fields existed (converted checkpoints, hub_configs) loads unchanged."""
    saved = _config().to_dict()
    for key in ("out_features", "out_indices", "reshape_hidden_states"):
        saved.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = CastConfig.from_pretrained(tmp_path)
    assert config.out_features == ["stage2"] and config.reshape_hidden_states is True
    assert {key: value for key, value in config.to_dict().items() if key in saved} == saved


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"out_features": ["stage3"]}, r"out_features must be a subset of stage_names: \['stem', 'stage1', 'stage2'\]"),
        ({"out_features": ["stage2", "stem"]}, "out_features must be in the same order as stage_names"),
        ({"out_features": ["stem", "stem"]}, "out_features must not contain any duplicates"),
        ({"out_indices": [3]}, "out_indices must be valid indices for stage_names"),
        ({"out_features": ["stem"], "out_indices": [1]}, "out_features and out_indices should correspond"),
    ],
    ids=["unknown-stage", "order", "duplicates", "index-out-of-range", "disagree"],
)
def test_config_rejects_bad_out_features(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _config(**kwargs)


def test_from_pretrained_rejects_bad_out_features(tmp_path):
    CastModel(_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="out_features must be a subset of stage_names"):
        CastBackbone.from_pretrained(tmp_path, out_features=["layer4"])


def test_config_rejects_non_bool_reshape_hidden_states():
    with pytest.raises(TypeError, match="`reshape_hidden_states` must be a bool, got 'no'"):
        _config(reshape_hidden_states="no")


# ------------------------------------------------------------------------------------------------------------------
# AutoBackbone and weights


def test_auto_backbone_from_config():
    backbone = AutoBackbone.from_config(_config(out_features=["stem", "stage2"]))
    assert type(backbone) is CastBackbone
    assert backbone.stage_names == STAGE_NAMES
    assert backbone.channels == [32, 32] and backbone.num_features == [32, 32, 32]
    assert backbone.out_feature_channels == dict.fromkeys(STAGE_NAMES, 32)


def _tiny_pretraining(config: CastConfig) -> CastForPreTraining:
    config.pretraining_hidden_dim, config.pretraining_projection_dim = 16, 8
    return CastForPreTraining(config)


@pytest.mark.parametrize(
    "source",
    [CastModel, CastForImageClassification, _tiny_pretraining, CastForSemanticSegmentation, CastBackbone],
    ids=["backbone", "classifier", "pretraining", "segmentation", "cast-backbone"],
)
def test_auto_backbone_from_saved_folder_loads_every_encoder_weight(source, tmp_path):
    torch.manual_seed(0)
    model = source(_config())
    model.save_pretrained(tmp_path)

    backbone, info = AutoBackbone.from_pretrained(tmp_path, out_features=["stage1"], output_loading_info=True)

    assert type(backbone) is CastBackbone and backbone.out_features == ["stage1"]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    encoder = model if isinstance(model, CastModel) else model.cast
    expected = encoder.state_dict()
    for name, tensor in backbone.cast.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_backbone_saved_folder_carries_its_code_and_auto_map(tmp_path):
    _backbone().save_pretrained(tmp_path)
    assert (tmp_path / "backbone_cast.py").exists() and (tmp_path / "modeling_cast.py").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["CastBackbone"]
    assert config["auto_map"]["AutoBackbone"] == "backbone_cast.CastBackbone"
    # every CAST folder names the backbone too, and carries its file
    CastForImageClassification(_config()).save_pretrained(tmp_path / "classifier")
    assert (tmp_path / "classifier" / "backbone_cast.py").exists()
    assert json.loads((tmp_path / "classifier" / "config.json").read_text())["auto_map"]["AutoBackbone"]


def _official_tiny_folder(folder):
    """The official tiny checkpoint of the golden vectors, converted to a CAST classifier folder, and its inputs."""
    data = load_file(str(FIXTURES / "tiny.safetensors"))
    meta = json.loads((FIXTURES / "tiny.json").read_text())["constructor_args"]
    state_dict = {key[len("state_dict."):]: value for key, value in data.items() if key.startswith("state_dict.")}
    config = infer_config(state_dict, num_attention_heads=meta["num_heads"], num_segments=meta["num_clusters"])
    model = CastForImageClassification(config).eval()
    model.load_state_dict(convert_state_dict(state_dict, config), strict=True)
    model.save_pretrained(folder)
    return model, data["inputs.pixel_values"], data["inputs.superpixels"]


def test_backbone_of_converted_official_checkpoint_paints_its_stage_tokens(tmp_path):
    """Every weight of a converted official checkpoint loads, and the stage-1 map holds, in each stem cell, the stage-1
    token of the superpixel at the cell's top-left pixel (read from the classifier's own hidden states)."""
    model, pixel_values, superpixels = _official_tiny_folder(tmp_path)
    backbone, info = CastBackbone.from_pretrained(tmp_path, out_features=["stage1"], output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        feature_map = backbone.eval()(pixel_values, superpixels).feature_maps[0]
        hidden_states = model(pixel_values, superpixels, output_hidden_states=True).hidden_states
    stage1_tokens = hidden_states[model.config.depths[0]][:, 1:]  # output of the first stage's last block
    patch = model.config.patch_size
    cell_tokens = superpixels[:, ::patch, ::patch]
    for image in range(pixel_values.shape[0]):
        expected = stage1_tokens[image][cell_tokens[image]]  # (h, w, C)
        torch.testing.assert_close(feature_map[image].permute(1, 2, 0), expected, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------------------------
# feature maps


@pytest.mark.parametrize("out_features", ALL_OUT_FEATURES, ids=lambda names: "+".join(names))
def test_feature_maps_have_stem_grid_shape_and_channels(out_features):
    backbone = _backbone(out_features=out_features)
    pixel_values, superpixels = _inputs()
    with torch.no_grad():
        outputs = backbone(pixel_values, superpixels)
    grid = IMAGE_SIZE // backbone.config.patch_size
    assert len(outputs.feature_maps) == len(out_features) == len(backbone.channels)
    for feature_map, channels in zip(outputs.feature_maps, backbone.channels):
        assert feature_map.shape == (2, channels, grid, grid)
    assert outputs.hidden_states is None and outputs.attentions is None


def test_token_layout_puts_the_class_token_first():
    backbone = _backbone(out_features=["stem", "stage2"], reshape_hidden_states=False)
    pixel_values, superpixels = _inputs()
    with torch.no_grad():
        tokens = backbone(pixel_values, superpixels).feature_maps
        backbone.config.reshape_hidden_states = True
        maps = backbone(pixel_values, superpixels).feature_maps
    grid = IMAGE_SIZE // backbone.config.patch_size
    for token_map, grid_map in zip(tokens, maps):
        assert token_map.shape == (2, 1 + grid * grid, 32)
        torch.testing.assert_close(token_map[:, 1:], grid_map.flatten(2).transpose(1, 2), rtol=0, atol=0)


def test_coarse_stage_map_is_the_soft_mixture_of_its_segments_on_each_superpixel():
    """stage3 holds the segments of level 2: each cell's features are those segments' tokens weighted by the soft
    membership of the cell's superpixel token (an explicit sum here), so the map is constant on every superpixel and
    changes only across superpixel boundaries: segment-shaped, not blocky."""
    backbone = _backbone(out_features=["stage3"], depths=[1, 1, 1], num_segments=[6, 4, 2])
    pixel_values, superpixels = _inputs(seed=3)
    with torch.no_grad():
        feature_map = backbone(pixel_values, superpixels).feature_maps[0]  # (B, C, h, w)
        encoding = backbone.cast.encode(pixel_values, superpixels)
    level1, level2 = (grouping.assignment_logits.softmax(-1) for grouping in encoding.groupings[:2])
    segment_tokens = encoding.stage_hidden_states[2][:, 1:]  # the segments of level 2
    cell_tokens = superpixels[:, ::8, ::8]
    for image in range(2):
        for row, column in itertools.product(range(4), repeat=2):
            token = cell_tokens[image, row, column]
            expected = sum(
                level1[image, token, fine] * level2[image, fine, coarse] * segment_tokens[image, coarse]
                for fine in range(6)
                for coarse in range(4)
            )
            torch.testing.assert_close(feature_map[image, :, row, column], expected, rtol=1e-5, atol=1e-5)
    # block superpixels of 8 pixels: one token per cell, all distinct, so no two cells are forced equal
    assert len({tuple(column.tolist()) for column in feature_map[0].flatten(1).T.round(decimals=5)}) > 1


def test_soft_memberships_are_distributions_over_real_segments():
    backbone = _backbone()
    pixel_values, superpixels = _mixed_counts()
    with torch.no_grad():
        encoding = backbone.cast.encode(pixel_values, superpixels)
    memberships = soft_token_assignments([grouping.assignment_logits for grouping in encoding.groupings])
    token_mask = encoding.superpixel_tokens.token_mask
    for membership, grouping in zip(memberships, encoding.groupings):
        torch.testing.assert_close(membership.sum(-1)[token_mask], torch.ones(int(token_mask.sum())))
        empty = ~grouping.segment_mask.unsqueeze(1).expand_as(membership)
        assert not membership[empty & token_mask.unsqueeze(-1)].any()


def test_feature_maps_of_an_image_do_not_depend_on_its_batch_mates():
    backbone = _backbone(out_features=STAGE_NAMES)
    pixel_values, superpixels = _mixed_counts()
    counts = (superpixels[:, ::8, ::8].flatten(1).amax(1) + 1).tolist()
    assert len(set(counts)) == 3, counts
    with torch.no_grad():
        batched = backbone(pixel_values, superpixels).feature_maps
        for image in range(3):
            alone = backbone(pixel_values[image : image + 1], superpixels[image : image + 1]).feature_maps
            for batch_map, alone_map in zip(batched, alone):
                torch.testing.assert_close(batch_map[image : image + 1], alone_map, rtol=1e-5, atol=1e-5)


def test_pixel_resolution_pooling_paints_the_same_grid():
    backbone = _backbone(out_features=STAGE_NAMES, token_pooling_resolution="pixel", max_superpixel_tokens=64)
    pixel_values, superpixels = _inputs()
    with torch.no_grad():
        maps = backbone(pixel_values, superpixels).feature_maps
    assert all(feature_map.shape == (2, 32, 4, 4) for feature_map in maps)


def test_hidden_states_attentions_and_tuple_output_as_any_backbone():
    backbone = _backbone(out_features=["stage1", "stage2"], attn_implementation="eager")
    pixel_values, superpixels = _inputs()
    with torch.no_grad():
        outputs = backbone(pixel_values, superpixels, output_hidden_states=True, output_attentions=True)
        as_tuple = backbone(
            pixel_values, superpixels, output_hidden_states=True, output_attentions=True, return_dict=False
        )
    num_blocks = backbone.config.num_hidden_layers
    assert len(outputs.hidden_states) == num_blocks + 1 and len(outputs.attentions) == num_blocks
    # (an eager forward given superpixels runs the batch's own tokens: its largest id on the stem grid plus one)
    num_tokens = int(superpixels[:, :: backbone.config.patch_size, :: backbone.config.patch_size].max()) + 1
    assert outputs.hidden_states[0].shape == (2, 1 + num_tokens, 32)
    assert len(as_tuple) == 3
    for expected, value in zip(outputs.to_tuple(), as_tuple):
        for expected_tensor, tensor in zip(expected, value):
            assert torch.equal(expected_tensor, tensor)


def test_gradients_of_a_coarse_map_reach_the_grouping():
    """The soft painting passes a dense head's gradients on to the grouping of the levels below the stage."""
    backbone = _backbone(out_features=["stage2"]).train()
    pixel_values, superpixels = _inputs()
    backbone(pixel_values, superpixels).feature_maps[0].square().mean().backward()
    grouping = backbone.cast.encoder.stages[0].pooling
    for parameter in (grouping.centering_bias, grouping.grouping_attention.qkv.weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------------------------
# export and remote code


def test_torch_export_one_program_serves_every_superpixel_count_and_batch_size():
    backbone = _backbone(out_features=STAGE_NAMES)
    pixel_values, superpixels = _mixed_counts()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(
        backbone,
        (pixel_values[:2], superpixels[:2]),
        dynamic_shapes={"pixel_values": {0: batch}, "superpixels": {0: batch}},
        strict=False,
    )
    for images in (slice(0, 3), slice(1, 2), slice(2, 3)):
        with torch.no_grad():
            eager = backbone(pixel_values[images], superpixels[images]).feature_maps
        exported = program.module()(pixel_values[images], superpixels[images]).feature_maps
        for exported_map, eager_map in zip(exported, eager):
            torch.testing.assert_close(exported_map, eager_map, rtol=1e-4, atol=1e-4)


REMOTE_BACKBONE_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from transformers import AutoBackbone, AutoConfig, DepthAnythingConfig, DepthAnythingForDepthEstimation
    folder, inputs_path = sys.argv[1:3]
    inputs = torch.load(inputs_path, weights_only=True)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    backbone_class = type(AutoBackbone.from_config(config, trust_remote_code=True))
    backbone = backbone_class.from_pretrained(folder, out_features=["stem", "stage2"]).eval()
    with torch.no_grad():
        maps = backbone(**inputs).feature_maps
    torch.save([feature_map for feature_map in maps], inputs_path + ".out")
    print(type(backbone).__module__)
    """
)


def test_remote_code_builds_the_backbone_without_the_package(tmp_path):
    torch.manual_seed(0)
    model = CastForImageClassification(_config())
    model.save_pretrained(tmp_path / "checkpoint")
    pixel_values, superpixels = _inputs()
    torch.save({"pixel_values": pixel_values, "superpixels": superpixels}, tmp_path / "inputs.pt")

    result = run_remote_code(REMOTE_BACKBONE_SCRIPT, "checkpoint", "inputs.pt", workdir=tmp_path)

    assert result.returncode == 0, result.stderr[-4000:]
    assert "transformers_modules" in result.stdout
    backbone = CastBackbone.from_pretrained(tmp_path / "checkpoint", out_features=["stem", "stage2"]).eval()
    with torch.no_grad():
        expected = backbone(pixel_values, superpixels).feature_maps
    for remote, local in zip(torch.load(tmp_path / "inputs.pt.out", weights_only=True), expected):
        torch.testing.assert_close(remote, local, rtol=0, atol=0)


def test_auto_config_of_a_backbone_folder_is_cast(tmp_path):
    _backbone().save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), CastConfig)


# ------------------------------------------------------------------------------------------------------------------
# transformers' dense heads on CastBackbone (they pass only `pixel_values`: the superpixels come from the model)


def _depth_anything() -> DepthAnythingForDepthEstimation:
    torch.manual_seed(0)
    backbone_config = _config(out_features=STAGE_NAMES, reshape_hidden_states=False)
    config = DepthAnythingConfig(
        backbone_config=backbone_config, patch_size=backbone_config.patch_size, reassemble_hidden_size=32,
        reassemble_factors=[4, 2, 1], neck_hidden_sizes=[8, 16, 32], fusion_hidden_size=16, head_hidden_size=8,
    )
    return DepthAnythingForDepthEstimation(config)


def test_backbone_computes_superpixels_when_given_only_pixel_values():
    backbone = _backbone(out_features=STAGE_NAMES, superpixel_n_segments=12)
    pixel_values, _ = _inputs()
    with torch.no_grad():
        computed = backbone(pixel_values).feature_maps
        given = backbone(pixel_values, backbone.cast.compute_superpixels(pixel_values)).feature_maps
    for computed_map, given_map in zip(computed, given):
        assert torch.equal(computed_map, given_map)


def test_depth_anything_predicts_depth_at_the_input_size_and_reloads(tmp_path):
    model = _depth_anything().eval()
    assert type(model.backbone) is CastBackbone
    pixel_values, _ = _inputs()
    with torch.no_grad():
        depth = model(pixel_values).predicted_depth
    assert depth.shape == (2, IMAGE_SIZE, IMAGE_SIZE)
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values).predicted_depth, depth, rtol=0, atol=0)
