"""Test-time adaptation (modeling_cast/adaptation_cast.py): episodic (everything restored), exact controls, batch
independence, views that carry the superpixel map along, and the argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import block_superpixels, tiny_config_kwargs
from transformers import ViTConfig, ViTForImageClassification

from modeling_cast import CastConfig, CastForImageClassification, CastForPreTraining, CastModel
from modeling_cast.adaptation_cast import adapt_to_images, augmented_views, changed_levels

SIZE = 32
VIEWS = 2  # few views keep the tests quick; the logic does not depend on their number


def _classifier(seed: int = 0) -> CastForImageClassification:
    torch.manual_seed(seed)
    return CastForImageClassification(CastConfig(**tiny_config_kwargs()))


def _inputs(batch_size: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch_size, 3, SIZE, SIZE, generator=generator)
    superpixels = block_superpixels(batch_size, SIZE, SIZE, seed=seed)
    # different superpixel counts per image: image 1 has 8 superpixels of 4 blocks each, image 2 only 2 halves
    if batch_size > 1:
        superpixels[1] = superpixels[1] // 2
    if batch_size > 2:
        superpixels[2] = (torch.arange(SIZE) >= SIZE // 2).long().view(1, -1).expand(SIZE, -1)
    return pixel_values, superpixels


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_adaptation_restores_weights_buffers_gradients_modes_optimizer_and_rng_exactly():
    model = _classifier()
    pixel_values, superpixels = _inputs()
    # a caller in the middle of training: train mode, BatchNorm statistics moved, an optimizer with state, gradients
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(pixel_values, superpixels, labels=torch.tensor([0, 1, 2])).loss.backward()
    optimizer.step()
    model.cast.embeddings.patch_embeddings.requires_grad_(False)
    state, optimizer_state = _state(model), optimizer.state_dict()
    optimizer_tensors = {key: value.clone() for key, value in optimizer.state[model.classifier.weight].items()}
    gradients = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    modes = {name: module.training for name, module in model.named_modules()}
    rng = torch.get_rng_state()

    result = model.adapt(pixel_values, superpixels, steps=2, learning_rate=1e-2, num_views=VIEWS)

    assert result.adapted.all() and torch.isfinite(result.losses).all()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == flags[name], name
        assert (parameter.grad is None) == (gradients[name] is None), name
        if parameter.grad is not None:
            assert torch.equal(parameter.grad, gradients[name]), name
    assert {name: module.training for name, module in model.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert optimizer.state_dict()["param_groups"] == optimizer_state["param_groups"]
    for key, value in optimizer.state[model.classifier.weight].items():
        assert torch.equal(value, optimizer_tensors[key]), key
    # the optimizer still holds the model's own parameter objects
    assert optimizer.param_groups[0]["params"][0] is next(model.parameters())


def test_learning_rate_zero_gives_outputs_identical_to_no_adaptation():
    model = _classifier().eval()
    pixel_values, superpixels = _inputs(batch_size=1)
    with torch.no_grad():
        reference = model(pixel_values, superpixels, output_assignments=True)
    for objective in ("entropy", "pseudo_label"):
        result = model.adapt(
            pixel_values, superpixels, steps=2, learning_rate=0.0, objective=objective, num_views=VIEWS, output_assignments=True
        )
        assert torch.equal(result.outputs.logits, reference.logits)
        assert torch.equal(result.outputs.hierarchy, reference.hierarchy)
        for adapted, original in zip(result.outputs.assignment_logits, reference.assignment_logits):
            assert torch.equal(adapted, original)
        assert result.changed_levels == [[]]
    # a batch: every image's row is its unadapted row (a batched forward differs only in float rounding)
    pixel_values, superpixels = _inputs()
    result = model.adapt(pixel_values, superpixels, steps=1, learning_rate=0.0, num_views=VIEWS)
    assert torch.equal(result.outputs.logits, result.initial_outputs.logits)
    with torch.no_grad():
        torch.testing.assert_close(result.outputs.logits, model(pixel_values, superpixels).logits)
    no_steps = model.adapt(pixel_values, superpixels, steps=0)
    assert torch.equal(no_steps.outputs.logits, result.outputs.logits) and torch.isnan(no_steps.losses).all()


def test_one_step_changes_the_assignment_logits():
    model = _classifier()
    pixel_values, superpixels = _inputs(batch_size=1)
    result = model.adapt(pixel_values, superpixels, steps=1, learning_rate=1e-2, num_views=VIEWS, output_assignments=True)
    before, after = result.initial_outputs.assignment_logits[0], result.outputs.assignment_logits[0]
    assert before.shape == after.shape and not torch.equal(before, after)
    assert not torch.equal(result.initial_outputs.logits, result.outputs.logits)


def test_batch_images_are_adapted_independently():
    """Each image's result equals adapting it alone (images with 16, 8 and 2 superpixels)."""
    model = _classifier()
    pixel_values, superpixels = _inputs()
    options = dict(steps=2, learning_rate=1e-2, num_views=VIEWS, output_assignments=True)
    batch = model.adapt(pixel_values, superpixels, **options)
    for index in range(3):
        alone = model.adapt(pixel_values[index : index + 1], superpixels[index : index + 1], **options)
        torch.testing.assert_close(batch.outputs.logits[index : index + 1], alone.outputs.logits)
        torch.testing.assert_close(batch.losses[index : index + 1], alone.losses)
        torch.testing.assert_close(batch.outputs.assignment_logits[0][index : index + 1], alone.outputs.assignment_logits[0])
        assert torch.equal(batch.outputs.hierarchy[index : index + 1], alone.outputs.hierarchy)


def test_adaptation_is_deterministic_for_a_seed():
    model = _classifier()
    pixel_values, superpixels = _inputs(batch_size=1)
    first, second = (model.adapt(pixel_values, superpixels, steps=2, learning_rate=1e-2, num_views=VIEWS, seed=3) for _ in range(2))
    assert torch.equal(first.outputs.logits, second.outputs.logits) and torch.equal(first.losses, second.losses)
    other = model.adapt(pixel_values, superpixels, steps=2, learning_rate=1e-2, num_views=VIEWS, seed=4)
    assert not torch.equal(first.losses, other.losses)


def test_label_objectives_pull_towards_their_label():
    """Cross-entropy to a label raises that label's probability; the pseudo-label is the unadapted prediction."""
    model = _classifier()
    pixel_values, superpixels = _inputs(batch_size=1)
    for label in (0, 2):
        result = model.adapt(
            pixel_values, superpixels, steps=3, learning_rate=1e-2, objective="cross_entropy", num_views=VIEWS,
            labels=torch.tensor([label]),
        )
        before = result.initial_outputs.logits.softmax(-1)[0, label]
        assert result.outputs.logits.softmax(-1)[0, label] > before
    pseudo = model.adapt(pixel_values, superpixels, steps=3, learning_rate=1e-2, objective="pseudo_label", num_views=VIEWS)
    predicted = pseudo.initial_outputs.logits.argmax(-1)
    assert pseudo.outputs.logits.softmax(-1)[0, predicted] > pseudo.initial_outputs.logits.softmax(-1)[0, predicted]
    skipped = model.adapt(pixel_values, superpixels, steps=3, objective="pseudo_label", pseudo_label_threshold=1.0)
    assert not skipped.adapted.any() and torch.equal(skipped.outputs.logits, skipped.initial_outputs.logits)


def test_pooling_and_norms_adapts_only_those_parameters():
    model = _classifier()
    pixel_values, superpixels = _inputs(batch_size=1)
    seen = {}

    def record(module, inputs, output):
        # the weights the last forward (on the original image, after adaptation) ran with
        seen["qkv"] = module.weight.detach().clone()

    handle = model.cast.encoder.stages[0].layers[0].attention.qkv.register_forward_hook(record)
    result = model.adapt(pixel_values, superpixels, steps=2, learning_rate=1e-2, parameters="pooling_and_norms", num_views=VIEWS)
    handle.remove()
    assert torch.equal(seen["qkv"], model.cast.encoder.stages[0].layers[0].attention.qkv.weight)
    assert not torch.equal(result.outputs.logits, result.initial_outputs.logits)


def test_moco_objective_adapts_a_pretraining_model_and_restores_it():
    torch.manual_seed(0)
    model = CastForPreTraining(CastConfig(**tiny_config_kwargs(pretraining_hidden_dim=16, pretraining_projection_dim=8)))
    pixel_values, superpixels = _inputs(batch_size=2)
    state = _state(model)
    result = model.adapt(pixel_values, superpixels, steps=2, learning_rate=1e-2, num_views=4)
    assert torch.isfinite(result.losses).all()
    assert not torch.equal(result.outputs.pooler_output, result.initial_outputs.pooler_output)
    assert all(torch.equal(tensor, state[name]) for name, tensor in model.state_dict().items())


def test_any_image_classifier_adapts_without_superpixels():
    """The matched ViT of the part-whole benchmark adapts with the same code (views without superpixel maps)."""
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=37, num_labels=3,
    )
    vit = ViTForImageClassification(config)
    pixel_values, _ = _inputs(batch_size=2)
    result = adapt_to_images(vit, pixel_values, steps=1, learning_rate=1e-2, num_views=VIEWS, output_hidden_states=True)
    assert len(result.outputs.hidden_states) == 2 and result.outputs.hidden_states[-1].shape[0] == 2
    assert not torch.equal(result.outputs.logits, result.initial_outputs.logits)
    assert result.changed_levels == []


def test_views_crop_and_flip_the_superpixel_map_along():
    pixel_values = torch.arange(SIZE, dtype=torch.float32).view(1, 1, 1, SIZE).expand(1, 3, SIZE, SIZE).clone()
    superpixels = (torch.arange(SIZE) // 4).view(1, 1, SIZE).expand(1, SIZE, SIZE).clone()  # 8 column bands
    # full-size "crops": each view is the image or its mirror, pixels and superpixels alike
    views, view_superpixels = augmented_views(pixel_values, superpixels, 8, (1.0, 1.0), torch.Generator().manual_seed(0))
    flipped = views[:, 0, 0, 0] == SIZE - 1
    assert flipped.any() and (~flipped).any()
    for view, ids, mirrored in zip(views, view_superpixels, flipped):
        expected = superpixels[0].flip(-1) if mirrored else superpixels[0]
        assert torch.equal(ids, expected)
        assert torch.equal(view, pixel_values[0].flip(-1) if mirrored else pixel_values[0])
    # crops lose superpixels: the ids are renumbered 0..K'-1, and each band keeps its pixels' values together
    views, view_superpixels = augmented_views(pixel_values, superpixels, 8, (0.3, 0.5), torch.Generator().manual_seed(1))
    for view, ids in zip(views, view_superpixels):
        present = torch.unique(ids)
        assert torch.equal(present, torch.arange(len(present))) and len(present) < 8
        for segment in present:
            band = view[0][ids == segment]
            assert band.max() - band.min() <= 4  # one band spans 4 source columns (plus bilinear blending)


def test_changed_levels_names_the_levels_that_differ():
    before = {"hierarchy": torch.zeros(2, 3, 4, 4, dtype=torch.long)}
    after = {"hierarchy": before["hierarchy"].clone()}
    after["hierarchy"][1, 2, 0, 0] = 1
    after["hierarchy"][1, 0, 3, 3] = 1
    assert changed_levels(before, after) == [[], [0, 2]]
    assert changed_levels({"logits": None}, after) == []


@pytest.mark.parametrize(
    "options, argument",
    [
        (dict(steps=-1), "`steps` must be >= 0"),
        (dict(objective="tent"), "`objective` must be one of"),
        (dict(objective="moco"), "`objective`='moco' needs a MoCo pretraining model"),
        (dict(objective="cross_entropy"), "`labels` must be an integer tensor of shape"),
        (dict(labels=torch.tensor([0, 1, 2])), "`labels` are used by `objective`='cross_entropy' only"),
        (dict(learning_rate=-1e-3), "`learning_rate` must be a number >= 0"),
        (dict(num_views=0), "`num_views` must be >= 1"),
        (dict(parameters="head"), "`parameters` must be one of"),
        (dict(crop_scale=(0.5, 2.0)), "`crop_scale` must be"),
        (dict(pseudo_label_threshold=1.5), "`pseudo_label_threshold` must be in"),
    ],
)
def test_bad_values_name_the_argument(options, argument):
    model = _classifier()
    pixel_values, superpixels = _inputs()
    state = _state(model)
    with pytest.raises(ValueError, match=argument):
        model.adapt(pixel_values, superpixels, **options)
    assert all(torch.equal(tensor, state[name]) for name, tensor in model.state_dict().items())


def test_objectives_the_model_cannot_compute_are_refused():
    pixel_values, superpixels = _inputs(batch_size=1)
    torch.manual_seed(0)
    backbone = CastModel(CastConfig(**tiny_config_kwargs()))
    flags = {name: p.requires_grad for name, p in backbone.named_parameters()}
    with pytest.raises(ValueError, match="`objective`='entropy' needs classification logits"):
        backbone.adapt(pixel_values, superpixels, steps=1)
    assert {name: p.requires_grad for name, p in backbone.named_parameters()} == flags and backbone.training
    pretraining = CastForPreTraining(CastConfig(**tiny_config_kwargs(pretraining_hidden_dim=16, pretraining_projection_dim=8)))
    with pytest.raises(ValueError, match="`objective`='entropy' needs classification logits"):
        pretraining.adapt(pixel_values, superpixels, objective="entropy")
    with pytest.raises(ValueError, match="`num_views` must be even and >= 4"):
        pretraining.adapt(pixel_values, superpixels, num_views=2)
    with pytest.raises(TypeError, match="`steps` must be an integer"):
        backbone.adapt(pixel_values, superpixels, steps=1.5)


# ---- the pipelines' `adaptation_steps` (processing/pipeline_cast.py)

PIPELINE_OPTIONS = {"learning_rate": 1e-2, "num_views": VIEWS}


@pytest.fixture(scope="module")
def pipeline_parts(tmp_path_factory):
    from PIL import Image

    from conftest import smooth_image
    from modeling_cast import CastImageProcessor

    folder = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    CastModel(CastConfig(**tiny_config_kwargs())).save_pretrained(folder)
    processor = CastImageProcessor(size={"height": SIZE, "width": SIZE}, n_segments=12)
    processor.save_pretrained(folder)
    return {
        "classifier": _classifier().eval(), "processor": processor, "backbone": str(folder),
        "image": Image.fromarray(smooth_image(40, 48, 0)),
    }


def test_hierarchical_pipeline_adapts_and_says_which_levels_changed(pipeline_parts):
    from transformers import pipeline

    model, image = pipeline_parts["classifier"], pipeline_parts["image"]
    segmenter = pipeline("hierarchical-segmentation", model=model, image_processor=pipeline_parts["processor"])
    state = _state(model)
    plain, off = segmenter(image), segmenter(image, adaptation_steps=0)
    assert "adaptation" not in plain and "adaptation" not in off
    assert all(torch.equal(a, b) for a, b in zip(plain["levels"], off["levels"]))
    adapted = segmenter(image, adaptation_steps=2, adaptation_options=PIPELINE_OPTIONS)
    again = segmenter(image, adaptation_steps=2, adaptation_options=PIPELINE_OPTIONS)
    changed = [level for level, (a, b) in enumerate(zip(plain["levels"], adapted["levels"])) if not torch.equal(a, b)]
    assert adapted["adaptation"]["steps"] == 2 and len(adapted["adaptation"]["losses"]) == 2
    # (the pipeline's levels are resized to the image: a changed token can stay invisible there, never the reverse)
    assert set(changed) <= set(adapted["adaptation"]["changed_levels"]) and changed
    assert adapted["adaptation"] == again["adaptation"]
    assert all(torch.equal(a, b) for a, b in zip(adapted["levels"], again["levels"]))
    assert all(torch.equal(tensor, state[name]) for name, tensor in model.state_dict().items())


def test_image_segmentation_pipeline_accepts_adaptation_steps(pipeline_parts):
    from transformers import pipeline

    from processing.pipeline_cast import CastImageSegmentationPipeline

    segmenter = pipeline("image-segmentation", model=pipeline_parts["classifier"], image_processor=pipeline_parts["processor"])
    assert isinstance(segmenter, CastImageSegmentationPipeline)
    image = pipeline_parts["image"]
    plain = segmenter(image)
    assert all("adaptation" not in segment for segment in plain)
    adapted = segmenter(image, adaptation_steps=1, adaptation_options=PIPELINE_OPTIONS)
    assert adapted and all(segment["adaptation"]["steps"] == 1 for segment in adapted)
    coverage = sum(np.array(segment["mask"]) // 255 for segment in adapted)
    assert (coverage == 1).all()


def test_pipelines_refuse_bad_adaptation_values(pipeline_parts):
    from transformers import pipeline

    image = pipeline_parts["image"]
    for task in ("hierarchical-segmentation", "image-segmentation"):
        segmenter = pipeline(task, model=pipeline_parts["backbone"])
        with pytest.raises(ValueError, match=r"`adaptation_steps` must be >= 0 \(0 = no adaptation\), got -1"):
            segmenter(image, adaptation_steps=-1)
        with pytest.raises(TypeError, match="`adaptation_steps` must be an integer"):
            segmenter(image, adaptation_steps=1.5)
        with pytest.raises(ValueError, match=r"`adaptation_options` accepts the keys .* got unknown keys \['stpes'\]"):
            segmenter(image, adaptation_steps=1, adaptation_options={"stpes": 3})
        # a backbone checkpoint has no recognition head to adapt with
        with pytest.raises(ValueError, match="`objective`='entropy' needs classification logits"):
            segmenter(image, adaptation_steps=1)
        with pytest.raises(ValueError, match="`objective` must be one of"):
            segmenter(image, adaptation_steps=1, adaptation_options={"objective": "tent"})
