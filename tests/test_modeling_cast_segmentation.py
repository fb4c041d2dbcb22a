"""CastForSemanticSegmentation: loss conventions, padding, pixel-resolution pooling, Auto classes and pipeline."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import block_superpixels, tiny_config_kwargs
from PIL import Image
from torch.nn import functional as F
from transformers import (
    AutoModelForImageSegmentation,
    AutoModelForSemanticSegmentation,
    Trainer,
    TrainingArguments,
    pipeline,
)

from modeling_cast import (
    CastConfig,
    CastForImageClassification,
    CastForSemanticSegmentation,
    CastImageProcessor,
)
from modeling_cast.modeling_cast import CastMaskedBatchNorm

NUM_CLASSES = 3


def _model(**overrides) -> CastForSemanticSegmentation:
    torch.manual_seed(0)
    kwargs = tiny_config_kwargs(image_size=64, num_segments=[8, 4], num_labels=NUM_CLASSES)
    kwargs.update(overrides)
    return CastForSemanticSegmentation(CastConfig(**kwargs))


def _batch(batch_size: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    superpixels = block_superpixels(batch_size, 64, 64, seed=seed)
    superpixels[-1] //= 3  # different superpixel counts: padding in the batch
    labels = torch.randint(0, NUM_CLASSES, (batch_size, 64, 64), generator=generator)
    labels[0, :12] = 255  # ignored pixels
    return torch.randn(batch_size, 3, 64, 64, generator=generator), superpixels, labels


def test_semantic_loss_equals_pixel_cross_entropy_with_ignore_index():
    model = _model().train()
    pixel_values, superpixels, labels = _batch()
    out = model(pixel_values, superpixels, labels=labels)
    assert out.logits.shape == (2, NUM_CLASSES, 64, 64)
    expected = F.cross_entropy(out.logits, labels, ignore_index=255)
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)


def test_semantic_logits_follow_superpixels():
    model = _model().eval()
    pixel_values, superpixels, _ = _batch()
    with torch.no_grad():
        logits = model(pixel_values, superpixels).logits
    for segment in superpixels[0].unique()[:5]:
        inside = logits[0][:, superpixels[0] == segment]
        assert torch.equal(inside, inside[:, :1].expand_as(inside))


def test_semantic_batch_independence():
    model = _model().eval()
    pixel_values, superpixels, _ = _batch(3)
    with torch.no_grad():
        batched = model(pixel_values, superpixels).logits
        for image in range(3):
            alone = model(pixel_values[image : image + 1], superpixels[image : image + 1]).logits
            torch.testing.assert_close(batched[image : image + 1], alone, atol=1e-5, rtol=1e-5)


def test_semantic_pixel_resolution_pooling_keeps_every_superpixel():
    model = _model(token_pooling_resolution="pixel").eval()
    superpixels = block_superpixels(1, 64, 64)
    superpixels[0, 3, 3:6] = 64  # a sliver that the stem grid would lose
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), superpixels).logits
    sliver = logits[0, :, 3, 3]
    assert torch.isfinite(logits).all()
    assert not torch.equal(sliver, logits[0, :, 0, 0])  # the sliver has its own token, not its grid cell's


def test_semantic_labels_are_validated():
    model = _model()
    pixel_values, superpixels, labels = _batch()
    with pytest.raises(ValueError, match=r"`labels` must have shape"):
        model(pixel_values, superpixels, labels=labels[:, :32])
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 3\)"):
        model(pixel_values, superpixels, labels=torch.full_like(labels, 7))
    with pytest.raises(TypeError, match=r"`labels` must be an integer tensor"):
        model(pixel_values, superpixels, labels=labels.float())


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, pixel_values, superpixels, labels):
        self.items = list(zip(pixel_values, superpixels, labels))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        pixel_values, superpixels, labels = self.items[index]
        return {"pixel_values": pixel_values, "superpixels": superpixels, "labels": labels}


def test_semantic_gradient_accumulation_matches_hand_computed_update(tmp_path):
    """Trainer with 2 accumulation steps of 1 image: the update is the mean of the two per-image loss gradients
    (the loss is a plain mean, so Trainer scales it by the accumulation steps)."""
    no_dropout = {"pooling_dropout_prob": 0.0, "fusion_dropout_prob": 0.0}
    pixel_values, superpixels, labels = _batch()
    reference = _model(**no_dropout).train()
    gradients = None
    for image in range(2):
        loss = reference(pixel_values[image : image + 1], superpixels[image : image + 1], labels=labels[image : image + 1]).loss
        grads = torch.autograd.grad(loss, [p for p in reference.parameters()], allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, reference.parameters())]
        gradients = grads if gradients is None else [a + b for a, b in zip(gradients, grads)]
    expected = [p.detach() - 0.5 * g for p, g in zip(reference.parameters(), gradients)]  # lr 1, mean of two

    model = _model(**no_dropout)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=1, gradient_accumulation_steps=2, max_steps=1,
        learning_rate=1.0, optim="sgd", lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0,
        use_cpu=True, report_to=[], save_strategy="no",
    )
    # the order of the two images does not matter: the expected update is symmetric in them
    trainer = Trainer(model=model, args=args, train_dataset=_Pairs(pixel_values, superpixels, labels))
    trainer.train()
    for (name, parameter), target in zip(model.named_parameters(), expected):
        torch.testing.assert_close(parameter.detach(), target, atol=1e-5, rtol=1e-4, msg=name)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("semantic")
    model = _model(id2label={0: "sky", 1: "grass", 2: "cat"}).eval()
    model.save_pretrained(root / "segmenter")
    CastImageProcessor(size={"height": 64, "width": 64}, n_segments=24).save_pretrained(root / "segmenter")
    torch.manual_seed(0)
    CastForImageClassification(CastConfig(**tiny_config_kwargs(image_size=64, num_segments=[8, 4]))).save_pretrained(
        root / "classifier"
    )
    return root


def test_semantic_auto_classes_pick_the_saved_architecture(saved):
    assert type(AutoModelForSemanticSegmentation.from_pretrained(saved / "segmenter")) is CastForSemanticSegmentation
    assert type(AutoModelForImageSegmentation.from_pretrained(saved / "segmenter")) is CastForSemanticSegmentation
    # a classifier keeps its head (what `adaptation_steps` optimizes); the segments come from its backbone's hierarchy
    assert type(AutoModelForImageSegmentation.from_pretrained(saved / "classifier")) is CastForImageClassification


def test_semantic_pipeline_returns_class_masks_at_original_size(saved, caplog):
    caplog.set_level(logging.CRITICAL, logger="transformers")
    image = Image.fromarray((np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8))
    segments = pipeline("image-segmentation", model=str(saved / "segmenter"))(image)
    assert segments and {s["label"] for s in segments} <= {"sky", "grass", "cat"}
    coverage = sum(np.array(s["mask"]) // 255 for s in segments)
    assert coverage.shape == (50, 70) and (coverage == 1).all()


def test_masked_batch_norm_matches_batch_norm_on_the_marked_rows():
    """Training statistics and running-statistics updates over the marked rows equal nn.BatchNorm1d's on those rows
    alone; unmarked rows come out as zeros; eval uses the running statistics."""
    torch.manual_seed(0)
    features = torch.randn(10, 6)
    row_mask = torch.tensor([True, False, True, True, False, True, True, True, False, True])
    for momentum in (0.1, None):
        masked, reference = CastMaskedBatchNorm(6, momentum=momentum), torch.nn.BatchNorm1d(6, momentum=momentum)
        with torch.no_grad():
            masked.weight.uniform_(0.5, 2)
            masked.bias.uniform_(-1, 1)
        reference.load_state_dict(masked.state_dict())
        for _ in range(2):
            output = masked(features, row_mask)
            torch.testing.assert_close(output[row_mask], reference(features[row_mask]), atol=1e-6, rtol=1e-5)
            assert not output[~row_mask].any()
        for name, buffer in reference.state_dict().items():
            torch.testing.assert_close(masked.state_dict()[name], buffer, atol=1e-6, rtol=1e-5)
        masked.eval(), reference.eval()
        torch.testing.assert_close(masked(features, row_mask)[row_mask], reference(features[row_mask]))
