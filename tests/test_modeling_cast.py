"""CastModel / CastForImageClassification: transformers' common model tests plus CAST-specific behavior."""

from __future__ import annotations

import unittest

import pytest
import torch
from torch import nn
from parameterized import parameterized
from conftest import block_superpixels, tiny_config_kwargs
from hf_common_tests import CastModelTestMixin, CastModelTesterBase, import_common

from modeling_cast import (
    CastConfig,
    CastForImageClassification,
    CastForPreTraining,
    CastForSemanticSegmentation,
    CastImageProcessor,
    CastModel,
)

common = import_common("test_modeling_common")
config_common = import_common("test_configuration_common")

# The mixin decides "base model" / "classification" from transformers' static mapping names, which cannot know a
# model registered from outside; extend them inside this test module only.
common.MODEL_MAPPING_NAMES = {**common.MODEL_MAPPING_NAMES, "cast": "CastModel"}
common.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES = {
    **common.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    "cast": "CastForImageClassification",
}
common.MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES = {
    **common.MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES,
    "cast": "CastForSemanticSegmentation",
}


class CastModelTester(CastModelTesterBase):
    def __init__(self, parent, use_labels=True, **kwargs):
        super().__init__(parent, **kwargs)
        self.use_labels = use_labels

    def prepare_config_and_inputs(self):
        pixel_values = common.floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        superpixels = block_superpixels(self.batch_size, self.image_size, self.image_size)
        labels = common.ids_tensor([self.batch_size], self.num_labels) if self.use_labels else None
        return self.get_config(), pixel_values, superpixels, labels

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, superpixels, _ = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values, "superpixels": superpixels}


class CastModelTest(CastModelTestMixin, common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (CastModel, CastForImageClassification, CastForSemanticSegmentation)
    additional_model_inputs = ["superpixels"]
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = CastModelTester(self)
        self.config_tester = config_common.ConfigTester(
            self, config_class=CastConfig, has_text_modality=False, hidden_size=48, num_attention_heads=4
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    @parameterized.expand(common.TEST_EAGER_MATCHES_SDPA_INFERENCE_PARAMETERIZATION)
    def test_eager_matches_sdpa_inference(
        self, name, dtype, padding_side, use_attention_mask, output_attentions, enable_kernels
    ):
        if dtype in ("fp16", "bf16"):
            self.skipTest(
                reason="in half precision the kernels' rounding differences can flip CAST's discrete choices "
                "(farthest-point seeds, hard assignments), after which whole segments differ; float32 is compared, "
                "and test_model_half_precision_runs checks half precision"
            )
        common._test_eager_matches_sdpa_inference(
            self, name, dtype, padding_side, use_attention_mask, output_attentions, enable_kernels
        )


# ----------------------------------------------------------------------------------------------------------------
# CAST-specific behavior


def _tiny_model(cls=CastForImageClassification, **overrides):
    torch.manual_seed(0)
    return cls(CastConfig(**tiny_config_kwargs(**overrides))).eval()


def test_model_outputs_shapes_and_hierarchy_nesting():
    model = _tiny_model(image_size=64, num_segments=[8, 4], max_superpixel_tokens=64)
    pixel_values = torch.randn(2, 3, 64, 64)
    superpixels = block_superpixels(2, 64, 64)
    with torch.no_grad():
        out = model(pixel_values, superpixels, output_assignments=True)
    assert out.logits.shape == (2, 3)
    assert out.hierarchy.shape == (2, 2, 64, 64) and out.hierarchy.dtype == torch.int64
    assert [t.shape for t in out.assignment_logits] == [(2, 64, 8), (2, 8, 4)]
    assert [t.shape for t in out.seed_indices] == [(2, 8), (2, 4)]
    for level, count in enumerate([8, 4]):
        assert int(out.hierarchy[:, level].min()) >= 0 and int(out.hierarchy[:, level].max()) < count
    # nesting: every fine segment lies inside exactly one coarse segment
    for image in range(2):
        fine, coarse = out.hierarchy[image, 0].flatten(), out.hierarchy[image, 1].flatten()
        for segment in fine.unique():
            assert coarse[fine == segment].unique().numel() == 1


def test_model_superpixel_pixels_share_segment():
    """All pixels of a superpixel get the same segment at every level."""
    model = _tiny_model(image_size=64, num_segments=[8, 4])
    superpixels = block_superpixels(1, 64, 64)
    with torch.no_grad():
        hierarchy = model(torch.randn(1, 3, 64, 64), superpixels).hierarchy
    for segment_id in superpixels.unique():
        inside = superpixels[0] == segment_id
        assert hierarchy[0, :, inside].unique(dim=1).shape[1] == 1


def _mixed_count_batch():
    """Three 64x64 images with 64, 32 and 13 superpixel tokens: the first stage has 192 rows, 109 of them real."""
    superpixels = block_superpixels(3, 64, 64)
    superpixels[1] //= 2
    superpixels[2] //= 5
    return torch.randn(3, 3, 64, 64), superpixels


def test_model_batch_independence_with_different_superpixel_counts():
    model = _tiny_model(image_size=64, num_segments=[8, 4])
    pixel_values, superpixels = _mixed_count_batch()
    with torch.no_grad():
        batched = model(pixel_values, superpixels, output_assignments=True)
        for image in range(3):
            alone = model(pixel_values[image : image + 1], superpixels[image : image + 1], output_assignments=True)
            torch.testing.assert_close(batched.logits[image : image + 1], alone.logits, atol=1e-5, rtol=1e-5)
            assert torch.equal(batched.hierarchy[image : image + 1], alone.hierarchy)
            count = alone.assignment_logits[0].shape[1]
            torch.testing.assert_close(
                batched.assignment_logits[0][image : image + 1, :count], alone.assignment_logits[0], atol=1e-5, rtol=1e-5
            )
            assert torch.equal(batched.seed_indices[0][image : image + 1], alone.seed_indices[0])


def test_model_non_square_input():
    model = _tiny_model(image_size=[160, 224], num_segments=[16, 4])
    pixel_values = torch.randn(2, 3, 160, 224)
    superpixels = block_superpixels(2, 160, 224, block=16)
    with torch.no_grad():
        out = model(pixel_values, superpixels)
        other = model(torch.randn(1, 3, 224, 160), block_superpixels(1, 224, 160, block=16))
    assert out.hierarchy.shape == (2, 2, 160, 224)
    assert other.hierarchy.shape == (1, 2, 224, 160)
    assert torch.isfinite(out.logits).all() and torch.isfinite(other.logits).all()


def test_model_uniform_image_has_valid_hierarchy():
    """One superpixel (a uniform image) is fewer than the segment count: the image gets one segment per level,
    every pixel is in segment 0 at every level, alone or in a batch."""
    model = _tiny_model()
    superpixels = torch.zeros(2, 32, 32, dtype=torch.long)
    superpixels[1] = block_superpixels(1, 32, 32)[0]
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(pixel_values, superpixels, output_assignments=True)
        alone = model(pixel_values[:1], superpixels[:1], output_assignments=True)
    assert torch.isfinite(out.logits).all() and torch.isfinite(alone.logits).all()
    assert int(out.hierarchy[0].max()) == 0 and int(alone.hierarchy.max()) == 0
    torch.testing.assert_close(out.logits[:1], alone.logits, atol=1e-5, rtol=1e-5)
    assert int(out.hierarchy[1, 0].unique().numel()) > 1  # the other image is unaffected
    lowest = torch.finfo(out.assignment_logits[0].dtype).min
    assert (alone.assignment_logits[0][0, 0, 1:] == lowest).all()  # empty segments: nothing assigned


def test_model_fewer_superpixels_than_segments():
    model = _tiny_model(num_segments=[12, 3], max_superpixel_tokens=8)  # (no padding rows, whose logits are 0)
    superpixels = block_superpixels(1, 32, 32) // 2  # 8 superpixels, 12 segments wanted
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), superpixels, output_assignments=True)
    assert torch.isfinite(out.logits).all()
    assert out.seed_indices[0][0, :8].unique().numel() == 8  # every distinct token is a seed before any repeats
    assert out.hierarchy[0, 0].unique().numel() <= 8
    lowest = torch.finfo(out.assignment_logits[0].dtype).min
    assert (out.assignment_logits[0][0, :, 8:] == lowest).all() and (out.assignment_logits[0][0, :, :8] > lowest).all()
    assert (out.assignment_logits[1][0, 8:] == 0).all()  # empty segments are padding one level up


def test_model_empty_and_vanished_superpixels():
    """Ids that never hit the stem grid: below the image's largest surviving id they become empty tokens; above
    it, their pixels take the segment of the grid cell they lie in."""
    model = _tiny_model(max_superpixel_tokens=16)
    superpixels = block_superpixels(1, 32, 32)
    superpixels[0, 3, 3:6] = 16  # a sliver off the sampling lattice with an id above every surviving id
    superpixels[0, 9, 9] = superpixels[0, 8, 8].clone()  # keep the grid intact
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), superpixels, output_assignments=True)
    assert out.assignment_logits[0].shape[1] == 16  # id 16 has no token
    cell_segment = out.hierarchy[0, :, 0, 0]
    assert torch.equal(out.hierarchy[0, :, 3, 3], cell_segment)


def test_model_eager_and_sdpa_agree():
    pixel_values = torch.randn(2, 3, 64, 64)
    superpixels = block_superpixels(2, 64, 64)
    superpixels[1] //= 3  # padding in the batch exercises the attention masks
    outputs = {}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = CastForImageClassification(
            CastConfig(**tiny_config_kwargs(image_size=64, num_segments=[8, 4]), attn_implementation=implementation)
        ).eval()
        with torch.no_grad():
            outputs[implementation] = model(pixel_values, superpixels)
    torch.testing.assert_close(outputs["eager"].logits, outputs["sdpa"].logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(outputs["eager"].hierarchy, outputs["sdpa"].hierarchy)


@pytest.mark.parametrize("cls", [CastModel, CastForImageClassification, CastForSemanticSegmentation])
def test_model_builds_the_pixel_hierarchy_only_when_asked(cls):
    """`output_hierarchy` defaults to eval mode; asked for in training, or declined in eval, it is obeyed, and the
    head's own outputs do not change."""
    model = _tiny_model(cls, pooling_dropout_prob=0.0, fusion_dropout_prob=0.0)
    inputs = {"pixel_values": torch.randn(2, 3, 32, 32), "superpixels": block_superpixels(2, 32, 32)}
    main = "pooler_output" if cls is CastModel else "logits"
    with torch.no_grad():
        evaluated, declined = model(**inputs), model(**inputs, output_hierarchy=False)
        model.train()
        trained, asked = model(**inputs), model(**inputs, output_hierarchy=True)
    assert evaluated.hierarchy.shape == (2, 2, 32, 32) and evaluated.hierarchy_scores.shape == (2, 2, 32, 32)
    assert declined.hierarchy is None and declined.hierarchy_scores is None and "hierarchy" not in trained
    assert asked.hierarchy.shape == (2, 2, 32, 32)
    assert torch.equal(evaluated[main], declined[main]) and torch.equal(trained[main], asked[main])


def test_model_return_dict_false_matches_to_tuple():
    model = _tiny_model()
    inputs = {"pixel_values": torch.randn(2, 3, 32, 32), "superpixels": block_superpixels(2, 32, 32)}
    with torch.no_grad():
        as_dict = model(**inputs, output_assignments=True)
        as_tuple = model(**inputs, output_assignments=True, return_dict=False)
    assert len(as_tuple) == len(as_dict.to_tuple())
    for left, right in zip(as_tuple, as_dict.to_tuple()):
        if isinstance(left, tuple):
            assert all(torch.equal(a, b) for a, b in zip(left, right))
        else:
            assert torch.equal(left, right)


def test_model_gradients_reach_trainable_parameters():
    model = _tiny_model().train()
    out = model(torch.randn(2, 3, 32, 32), block_superpixels(2, 32, 32), labels=torch.tensor([0, 2]))
    out.loss.backward()
    last = f"cast.encoder.stages.{len(model.config.depths) - 1}.pooling."
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # only the last stage's grouping (argmax-only, see test class) may receive no gradient
    assert without_grad and all(name.startswith(last) for name in without_grad), without_grad


def test_model_deterministic_in_eval():
    model = _tiny_model()
    inputs = {"pixel_values": torch.randn(2, 3, 32, 32), "superpixels": block_superpixels(2, 32, 32)}
    with torch.no_grad():
        first, second = model(**inputs), model(**inputs)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.hierarchy, second.hierarchy)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [CastModel, CastForImageClassification, CastForSemanticSegmentation])
def test_model_half_precision_runs(cls, dtype):
    model = _tiny_model(cls, image_size=64, num_segments=[8, 4]).to(dtype)
    superpixels = block_superpixels(2, 64, 64)
    superpixels[1] //= 3
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64, dtype=dtype), superpixels)
    main = out.logits if cls is not CastModel else out.pooler_output
    assert main.dtype == dtype and torch.isfinite(main).all()
    assert out.hierarchy.dtype == torch.int64 and out.hierarchy.shape == (2, 2, 64, 64)


def test_model_float64_runs():
    model = _tiny_model().double()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32, dtype=torch.float64), block_superpixels(1, 32, 32))
    assert out.logits.dtype == torch.float64


@pytest.mark.parametrize(
    ("pixel_values", "superpixels", "error", "match"),
    [
        ([[0.0]], torch.zeros(1, 32, 32, dtype=torch.long), TypeError, "pixel_values"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.long), torch.zeros(1, 32, 32, dtype=torch.long), TypeError, "floating"),
        (torch.zeros(1, 1, 32, 32), torch.zeros(1, 32, 32, dtype=torch.long), ValueError, r"pixel_values.*shape"),
        (torch.zeros(1, 3, 36, 32), torch.zeros(1, 36, 32, dtype=torch.long), ValueError, "multiples of patch_size"),
        (torch.zeros(1, 3, 8, 8), None, ValueError, r"pixel_values.*too small.*superpixel_n_segments"),
        (torch.zeros(1, 3, 32, 32), torch.zeros(1, 32, 32), TypeError, "superpixels.*integer"),
        (torch.zeros(1, 3, 32, 32), torch.zeros(2, 32, 32, dtype=torch.long), ValueError, r"superpixels.*shape"),
        (torch.zeros(1, 3, 32, 32), torch.full((1, 32, 32), -1), ValueError, r"superpixels.*ids"),
        (torch.zeros(1, 3, 32, 32), torch.full((1, 32, 32), 32 * 32), ValueError, r"superpixels.*ids"),
        (torch.full((1, 3, 32, 32), float("nan")), torch.zeros(1, 32, 32, dtype=torch.long), ValueError, "finite"),
    ],
)
def test_model_rejects_bad_inputs(pixel_values, superpixels, error, match):
    model = _tiny_model()
    with pytest.raises(error, match=match):
        model(pixel_values=pixel_values, superpixels=superpixels)


# ----------------------------------------------------------------------------------------------------------------
# static shapes: the token budget, torch.compile without graph breaks or recompiles, any input dtype

STATIC_HEADS = [CastModel, CastForImageClassification, CastForSemanticSegmentation, CastForPreTraining]


def _static_model(cls, **overrides):
    kwargs = dict(image_size=64, num_segments=[8, 4], max_superpixel_tokens=64)
    if cls is CastForPreTraining:
        kwargs.update(pretraining_projection_dim=16, pretraining_hidden_dim=24)
    return _tiny_model(cls, **{**kwargs, **overrides})


def _static_inputs(cls, batch_size, divisor, seed):
    superpixels = block_superpixels(batch_size, 64, 64, seed=seed) // divisor
    inputs = {"pixel_values": torch.randn(batch_size, 3, 64, 64), "superpixels": superpixels}
    if cls is CastForPreTraining:
        inputs.update(pixel_values_2=inputs["pixel_values"].flip(-1), superpixels_2=superpixels.flip(-1))
    return inputs


def test_model_superpixels_over_the_token_budget_raise():
    model = _static_model(CastModel, max_superpixel_tokens=40)
    with pytest.raises(ValueError, match=r"64 superpixel tokens.*`max_superpixel_tokens`=40"):
        model(**_static_inputs(CastModel, 1, 1, 0))
    # an id above the budget off the pooling grid has no token and is allowed
    superpixels = block_superpixels(1, 64, 64) // 2
    superpixels[0, 3, 3] = 50
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64), superpixels).hierarchy.shape == (1, 2, 64, 64)


def test_model_padding_to_the_budget_changes_nothing():
    """A compiled graph runs every image at the static budget (here 96 token rows for 64 tokens); an eager forward
    computes only the batch's own rows. Same seeds, hierarchy and logits, and the same documented output shapes."""
    inputs = _static_inputs(CastForImageClassification, 2, 1, 0)
    model = _static_model(CastForImageClassification, max_superpixel_tokens=96)
    torch._dynamo.reset()
    static = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        eager = model(**inputs, output_assignments=True, output_hidden_states=True)
        padded = static(**inputs, output_assignments=True, output_hidden_states=True)
    assert eager.hidden_states[0].shape[1] == 1 + 64 and padded.hidden_states[0].shape[1] == 1 + 96
    assert torch.equal(eager.hierarchy, padded.hierarchy)
    assert all(torch.equal(a, b) for a, b in zip(eager.seed_indices, padded.seed_indices))
    torch.testing.assert_close(eager.logits, padded.logits, atol=1e-5, rtol=1e-5)
    for out in (eager, padded):
        assert out.assignment_logits[0].shape[1] == 96 and not out.assignment_logits[0][:, 64:].any()
    torch.testing.assert_close(eager.assignment_logits[0], padded.assignment_logits[0], atol=1e-5, rtol=1e-5)


def test_model_eager_forward_keeps_the_first_level_segments_candidates():
    """With fewer tokens than first-level segments, the eager forward keeps that many rows (farthest point sampling
    needs them): the same result as at the full budget, and the surplus segments stay empty."""
    model = _static_model(CastModel, num_segments=[24, 4])
    superpixels = block_superpixels(1, 64, 64) // 4  # 16 tokens, 24 segments
    pixel_values = torch.randn(1, 3, 64, 64)
    torch._dynamo.reset()
    static = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        eager = model(pixel_values, superpixels, output_assignments=True, output_hidden_states=True)
        padded = static(pixel_values, superpixels, output_assignments=True)
    assert eager.hidden_states[0].shape[1] == 1 + 24
    assert torch.equal(eager.hierarchy, padded.hierarchy)
    assert all(torch.equal(a, b) for a, b in zip(eager.seed_indices, padded.seed_indices))


def test_model_first_stage_row_wise_layers_see_only_real_rows(monkeypatch):
    """An eager forward on images with different token counts runs the first stage's norms, projections and MLPs
    on the images' own rows only (the attention runs padded); the outputs equal those of a forward that runs every
    layer padded, in eval mode exactly, and so do the gradients in training."""
    import modeling_cast.modeling_cast as modeling

    model = _static_model(CastForImageClassification, pooling_dropout_prob=0.0)  # (no dropout anywhere)
    pixel_values, superpixels = _mixed_count_batch()
    first_stage = model.cast.encoder.stages[0]
    rows_seen = []
    for module in (first_stage.layers[0].mlp.fc1, first_stage.pooling.feature_projection, first_stage.pooling.grouping_attention.qkv):
        module.register_forward_hook(lambda module, args, output: rows_seen.append(args[0].shape[:-1].numel()))
    with torch.no_grad():
        packed = model(pixel_values, superpixels, output_assignments=True)
    # block MLP and pooled features: [class token + tokens] rows; the grouping attention: token rows
    assert rows_seen == [3 + 109, 109, 3 + 109]

    monkeypatch.setattr(modeling, "_MIN_PADDING_TO_PACK", 2.0)  # never pack
    rows_seen.clear()
    with torch.no_grad():
        padded = model(pixel_values, superpixels, output_assignments=True)
    assert rows_seen == [3 * 65, 3 * 64, 3 * 65]
    assert torch.equal(packed.logits, padded.logits) and torch.equal(packed.hierarchy, padded.hierarchy)
    assert all(torch.equal(a, b) for a, b in zip(packed.assignment_logits, padded.assignment_logits))

    model.train()
    gradients = []
    for threshold, checkpointing in ((0.05, False), (2.0, False), (0.05, True)):  # packed, padded, packed + checkpoints
        monkeypatch.setattr(modeling, "_MIN_PADDING_TO_PACK", threshold)
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.zero_grad()
        model(pixel_values, superpixels, labels=torch.tensor([0, 1, 2])).loss.backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    for other in gradients[1:]:
        assert other.keys() == gradients[0].keys()
        for name in gradients[0]:
            torch.testing.assert_close(other[name], gradients[0][name], atol=1e-6, rtol=1e-5, msg=name)


def _stem_layer_by_layer(stem, pixel_values):
    hidden_states = pixel_values
    for layer in stem.layers:  # convolution, BatchNorm, ReLU: the modules as they are
        hidden_states = layer(hidden_states)
    return hidden_states


def test_stem_eval_forward_folds_batch_norm_and_follows_weight_changes():
    """In eval mode the stem folds each BatchNorm into its convolution (cached): the same features as the modules
    run one by one, also after the statistics or weights change in place, after loading another state dict and
    after a dtype change."""
    model = _tiny_model(CastModel)
    stem = model.embeddings.patch_embeddings
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in stem.layers:  # statistics far from the initial 0 / 1, so that folding matters
            norm = layer[1]
            norm.running_mean.copy_(torch.randn(norm.num_features, generator=generator))
            norm.running_var.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
            norm.weight.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
    pixel_values = torch.randn(2, 3, 32, 32, generator=generator)

    def check():
        with torch.no_grad():
            folded = stem.features(pixel_values.to(stem.projection.weight.dtype))
            assert stem._folded_layers is not None  # the folded path ran
            expected = _stem_layer_by_layer(stem, pixel_values.to(stem.projection.weight.dtype))
        torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-5)
        return folded

    before = check()
    with torch.no_grad():
        stem.layers[1][1].running_var.mul_(4.0)
        stem.layers[2][0].weight.mul_(-1.0)
    after = check()
    assert not torch.allclose(before, after)
    other = _tiny_model(CastModel)
    other.embeddings.patch_embeddings.layers[0][1].running_mean.fill_(0.3)
    model.load_state_dict(other.state_dict())
    check()
    model.double()
    assert check().dtype == torch.float64


def test_stem_eval_forward_after_training_steps_uses_the_new_statistics():
    """Training-mode forwards update the BatchNorm statistics in place without bumping their version counters; the
    next eval-mode forward must fold the new statistics, not the ones cached before training."""
    model = _tiny_model(CastModel)
    stem = model.embeddings.patch_embeddings
    pixel_values = torch.randn(2, 3, 32, 32) * 3 + 1  # (far from the initial statistics 0 / 1)
    with torch.no_grad():
        before = stem.features(pixel_values)  # caches the folded weights
        model.train()
        stem.features(pixel_values)  # updates every running mean and variance
        stem.eval()  # (only the stem: the mode is set, as Trainer does between training and evaluation)
        after = stem.features(pixel_values)
        expected = _stem_layer_by_layer(stem, pixel_values)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, after)
    # the statistics also change without a mode change: a training-mode forward of the BatchNorm alone
    with torch.no_grad():
        stem.layers[0][1].train()(torch.randn(2, stem.layers[0][1].num_features, 4, 4) + 5)
        stem.layers[0][1].training = False  # (no `eval()` call, which would drop the cache anyway)
        torch.testing.assert_close(stem.features(pixel_values), _stem_layer_by_layer(stem, pixel_values))


def test_stem_runs_wrapped_or_hooked_layers_as_they_are():
    """Folding bypasses the layers' modules, so it applies only to plain ones: a forward hook on a stem convolution
    still fires in eval mode (so do global module hooks, and a full backward hook), a LoRA adapter on one (PEFT)
    still changes the features, and a convolution subclass still runs its own forward."""
    peft = pytest.importorskip("peft")
    pixel_values = torch.randn(1, 3, 32, 32)

    model = _tiny_model(CastModel)
    calls = []
    model.embeddings.patch_embeddings.layers[3][0].register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        model(pixel_values, block_superpixels(1, 32, 32))
    assert calls == [1]

    # hooks registered for every module (torch.nn.modules.module.register_module_forward_hook) see the stem's layers
    model = _tiny_model(CastModel)
    stem_layers = {module for layer in model.embeddings.patch_embeddings.layers for module in layer}
    seen = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda module, args, output: seen.append(module) if module in stem_layers else None
    )
    try:
        with torch.no_grad():
            model(pixel_values, block_superpixels(1, 32, 32))
    finally:
        handle.remove()
    assert stem_layers <= set(seen)
    # a full backward hook on a stem convolution fires for a forward that needs input gradients in eval mode
    model.requires_grad_(False)
    backward_calls = []
    model.embeddings.patch_embeddings.layers[3][0].register_full_backward_hook(
        lambda *args: backward_calls.append(1)
    )
    pixels = pixel_values.clone().requires_grad_(True)
    model(pixels, block_superpixels(1, 32, 32)).last_hidden_state.sum().backward()
    assert backward_calls == [1]

    lora = peft.get_peft_model(
        _tiny_model(CastModel),
        peft.LoraConfig(target_modules=["embeddings.patch_embeddings.layers.3.0"], init_lora_weights=False),
    ).eval()
    stem = lora.base_model.model.embeddings.patch_embeddings
    with torch.no_grad():
        adapted = stem.features(pixel_values)
        with lora.disable_adapter():
            plain = stem.features(pixel_values)
    assert not torch.allclose(adapted, plain)

    class ShiftedConv2d(nn.Conv2d):
        def forward(self, hidden_states):
            return super().forward(hidden_states) + 1.0

    model = _tiny_model(CastModel)
    stem = model.embeddings.patch_embeddings
    with torch.no_grad():
        plain = stem.features(pixel_values)
        original = stem.layers[3][0]
        shifted = ShiftedConv2d(original.in_channels, original.out_channels, 3, padding=1, bias=False)
        shifted.weight.copy_(original.weight)
        stem.layers[3][0] = shifted
        shifted_features = stem.features(pixel_values)
        torch.testing.assert_close(shifted_features, _stem_layer_by_layer(stem, pixel_values))
    assert not torch.allclose(shifted_features, plain)


def test_stem_in_eval_mode_still_trains_and_passes_input_gradients():
    """Folding is for inference only: in eval mode with gradients the stem's weights get them (test-time adaptation
    trains in eval mode), and after an inference-mode call the cached folded weights serve a forward that needs
    gradients for its inputs."""
    model = _tiny_model()
    pixel_values, superpixels = torch.randn(2, 3, 32, 32), block_superpixels(2, 32, 32)
    model(pixel_values, superpixels).logits.sum().backward()
    first_convolution = model.cast.embeddings.patch_embeddings.layers[0][0]
    assert first_convolution.weight.grad is not None and first_convolution.weight.grad.abs().sum() > 0

    with torch.inference_mode():
        reference = model(pixel_values, superpixels).logits
    model.requires_grad_(False)
    pixels = pixel_values.clone().requires_grad_(True)
    logits = model(pixels, superpixels).logits
    torch.testing.assert_close(logits, reference, atol=1e-6, rtol=1e-6)
    logits.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_embeddings_of_empty_tokens_are_zero():
    """A token id without cells (below the image's largest id) has zero embedding, as the mean of nothing: the
    stem's projection, applied after the averaging, must not give it the projection's bias."""
    model = _tiny_model(CastModel, max_superpixel_tokens=32)
    superpixels = block_superpixels(1, 32, 32)
    superpixels[superpixels == 5] = 4  # id 5 is then empty
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), superpixels, output_hidden_states=True)
        embeddings = model.embeddings(torch.randn(1, 3, 32, 32), model.embeddings.map_superpixels(superpixels, 16))
    assert torch.equal(embeddings[0, 1 + 5], torch.zeros_like(embeddings[0, 1 + 5]))
    assert (embeddings[0, 1:1 + 5].abs().sum(-1) > 0).all() and (embeddings[0, 1 + 6:].abs().sum(-1) > 0).all()
    assert torch.isfinite(out.last_hidden_state).all()


@pytest.mark.parametrize("cls", STATIC_HEADS)
def test_model_compiles_to_one_graph_without_breaks(cls):
    model = _static_model(cls)
    explanation = torch._dynamo.explain(model)(**_static_inputs(cls, 2, 3, 0))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@pytest.mark.parametrize("cls", STATIC_HEADS)
def test_model_fullgraph_compile_runs_a_batch(cls):
    torch._dynamo.reset()
    model = _static_model(cls)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    inputs = _static_inputs(cls, 2, 3, 0)
    with torch.no_grad():
        out, eager = compiled(**inputs), model(**inputs)
    assert torch.equal(out.hierarchy, eager.hierarchy)
    features = "pooler_output" if cls in (CastModel, CastForPreTraining) else "logits"
    torch.testing.assert_close(out[features], eager[features], atol=1e-5, rtol=1e-5)


def test_model_compiled_once_for_every_superpixel_count_and_batch_size():
    """Batches with other superpixel counts reuse the graph; a dynamic batch dimension covers other batch sizes."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model = _static_model(CastForImageClassification)
    counter = CompileCounter()
    compiled = torch.compile(model, fullgraph=True, backend=counter)
    for batch_size, divisor, seed in [(2, 1, 0), (2, 3, 1), (3, 2, 2), (5, 7, 3)]:
        inputs = _static_inputs(CastForImageClassification, batch_size, divisor, seed)
        torch._dynamo.mark_dynamic(inputs["pixel_values"], 0)
        torch._dynamo.mark_dynamic(inputs["superpixels"], 0)
        with torch.no_grad():
            assert torch.equal(compiled(**inputs).hierarchy, model(**inputs).hierarchy)
    assert counter.frame_count == 1


# superpixels inside the model: without `superpixels`, every head computes them with the tensor back-end

# few SLIC iterations keep the compiled and exported graphs small (the loop is unrolled)
IN_MODEL = dict(superpixel_n_segments=48, superpixel_iterations=2)


def _pixel_inputs(cls, batch_size, seed):
    generator = torch.Generator().manual_seed(seed)
    inputs = {"pixel_values": torch.randn(batch_size, 3, 64, 64, generator=generator)}
    if cls is CastForPreTraining:
        inputs["pixel_values_2"] = inputs["pixel_values"].flip(-1)
    return inputs


@pytest.mark.parametrize("cls", STATIC_HEADS)
def test_model_without_superpixels_equals_passing_its_own(cls):
    model = _static_model(cls, **IN_MODEL)
    inputs = _pixel_inputs(cls, 2, 0)
    explicit = {"superpixels": model.compute_superpixels(inputs["pixel_values"])}
    if cls is CastForPreTraining:
        explicit["superpixels_2"] = model.compute_superpixels(inputs["pixel_values_2"])
    with torch.no_grad():
        computed, given = model(**inputs), model(**inputs, **explicit)
    assert torch.equal(computed.hierarchy, given.hierarchy)
    features = "pooler_output" if cls in (CastModel, CastForPreTraining) else "logits"
    assert torch.equal(computed[features], given[features])
    if cls is CastForPreTraining:
        assert torch.equal(computed.logits, given.logits)


def test_model_computed_superpixels_fit_the_token_budget_and_follow_the_config():
    """The seed grid is laid out within `max_superpixel_tokens`, the un-normalization reads the config's mean/std."""
    model = _static_model(CastModel, max_superpixel_tokens=20, superpixel_n_segments=64, superpixel_iterations=3)
    pixel_values = torch.randn(3, 3, 64, 64)
    superpixels = model.compute_superpixels(pixel_values)
    assert superpixels.dtype == torch.int64 and superpixels.shape == (3, 64, 64)
    assert int(superpixels.amax()) < 20
    with torch.no_grad():
        assert model(pixel_values=pixel_values).hierarchy.shape == (3, 2, 64, 64)
    from modeling_cast.tensor_slic_cast import torch_slic

    config = model.config
    mean, std = torch.tensor(config.superpixel_image_mean), torch.tensor(config.superpixel_image_std)
    images = (pixel_values * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)).clamp(0, 1)
    expected = torch_slic(images, 64, compactness=10.0, num_iterations=3, max_segments=20)
    assert torch.equal(superpixels, expected)


def test_model_without_superpixels_compiles_to_one_graph():
    model = _static_model(CastForImageClassification, **IN_MODEL)
    explanation = torch._dynamo.explain(model)(**_pixel_inputs(CastForImageClassification, 2, 0))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_model_without_superpixels_exports_and_serves_other_images():
    model = _static_model(CastForImageClassification, **IN_MODEL)
    program = torch.export.export(model, (), _pixel_inputs(CastForImageClassification, 2, 0), strict=False)
    inputs = _pixel_inputs(CastForImageClassification, 2, 1)
    with torch.no_grad():
        exported, eager = program.module()(**inputs), model(**inputs)
    assert torch.equal(exported.hierarchy, eager.hierarchy)
    torch.testing.assert_close(exported.logits, eager.logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", STATIC_HEADS)
def test_model_half_precision_accepts_float32_inputs(cls, dtype):
    """A half-precision model takes the processor's float32 pixels; grouping and composition stay in float32."""
    model = _static_model(cls).to(dtype)
    with torch.no_grad():
        out = model(**_static_inputs(cls, 2, 3, 0), output_hierarchy=True)
    assert out.hierarchy.dtype == torch.int64 and out.hierarchy_scores.dtype == torch.float32
    features = "pooler_output" if cls in (CastModel, CastForPreTraining) else "logits"
    assert out[features].dtype == dtype and torch.isfinite(out[features].float()).all()
    if cls is not CastForSemanticSegmentation and cls is not CastForPreTraining:
        with torch.no_grad():
            logits = model(**_static_inputs(cls, 2, 3, 0), output_assignments=True).assignment_logits
        assert all(level.dtype == torch.float32 for level in logits)


@pytest.mark.parametrize("head", [CastModel, CastForImageClassification, CastForSemanticSegmentation])
def test_model_empty_batch_raises_a_value_error_naming_the_batch_size(head):
    model = head(CastConfig(**tiny_config_kwargs())).eval()
    pixel_values, superpixels = torch.zeros(0, 3, 32, 32), torch.zeros(0, 32, 32, dtype=torch.long)
    with pytest.raises(ValueError, match="`pixel_values` must hold at least one image, got batch size 0"):
        model(pixel_values, superpixels)


def test_half_precision_hierarchy_agrees_with_float32_on_real_photos():
    """Issue 13's agreement criterion: a seeded cast-small on four `skimage.data` photos (SLIC defaults), segment ids
    matched one to one per image and level: float16 agrees with float32 on at least 95% of the pixels at every level,
    bfloat16 on at least 90% at the finest (rounding in the blocks moves farthest-point choices at coarser levels;
    docs/export.md gives every level)."""
    import skimage.data

    from processing.evaluation.metrics import matched_pixel_agreement

    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    inputs = CastImageProcessor()(images=photos, return_tensors="pt")
    torch.manual_seed(0)
    model = CastModel(CastConfig.from_preset("cast-small")).eval()
    hierarchies = {}
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        with torch.inference_mode():
            hierarchies[dtype] = model.to(dtype)(**inputs).hierarchy  # float32 pixel_values: the model casts them

    def agreement(dtype, level):
        reference, other = hierarchies[torch.float32][:, level], hierarchies[dtype][:, level]
        return sum(matched_pixel_agreement(r, o) for r, o in zip(reference, other)) / len(photos)

    num_levels = hierarchies[torch.float32].shape[1]
    assert min(agreement(torch.float16, level) for level in range(num_levels)) >= 0.95
    assert agreement(torch.bfloat16, 0) >= 0.90
