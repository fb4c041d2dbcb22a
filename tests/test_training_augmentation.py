"""MoCo-v3 view augmentations (PIL/numpy) and the dataset transforms that compute superpixels per view."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter, ImageOps
from transformers import default_data_collator

from processing import CastImageProcessor
from processing.training.augmentation import (
    ClassificationTransform,
    TwoViewTransform,
    ViewAugmentation,
    moco_v3_views,
    random_resized_crop_box,
    to_rgb_image,
)


def _photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    image = gradient + rng.integers(0, 60, size=(height, width, 3))
    image[height // 4 : height // 2, width // 4 : width // 2] = (200, 30, 60)
    return np.clip(image, 0, 255).astype(np.uint8)


def _processor(size: int = 32) -> CastImageProcessor:
    return CastImageProcessor(size={"height": size, "width": size}, n_segments=16)


def test_random_resized_crop_box_stays_inside_and_respects_scale():
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, width, height = random_resized_crop_box(64, 48, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= left and 0 <= top and left + width <= 64 and top + height <= 48
        assert 0.05 <= width * height / (64 * 48) <= 1.0


def test_random_resized_crop_box_falls_back_to_center_crop():
    # an area share of 1 with ratio 2:1 never fits a square image: the largest centerd 2:1 box is used
    assert random_resized_crop_box(40, 40, (1.0, 1.0), (2.0, 2.0), np.random.default_rng(0)) == (0, 10, 40, 20)
    assert random_resized_crop_box(40, 40, (1.0, 1.0), (1.0, 1.0), np.random.default_rng(0)) == (0, 0, 40, 40)


def test_view_augmentation_is_deterministic_given_generator():
    first, second = moco_v3_views(32)
    image = _photo()
    for view in (first, second):
        one = np.asarray(view(image, np.random.default_rng(7)))
        again = np.asarray(view(image, np.random.default_rng(7)))
        other = np.asarray(view(image, np.random.default_rng(8)))
        assert one.shape == (32, 32, 3) and one.dtype == np.uint8
        assert np.array_equal(one, again) and not np.array_equal(one, other)


def test_moco_v3_views_have_asymmetric_blur_and_solarization():
    first, second = moco_v3_views(224)
    assert (first.blur_probability, first.solarize_probability) == (1.0, 0.0)
    assert (second.blur_probability, second.solarize_probability) == (0.1, 0.2)
    for view in (first, second):
        assert (view.scale, view.jitter_probability, view.grayscale_probability, view.flip_probability) == (
            (0.08, 1.0),
            0.8,
            0.2,
            0.5,
        )
        assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.2, 0.1)
        assert view.blur_sigma == (0.1, 2.0) and view.size == (224, 224)


def _only(**probabilities) -> ViewAugmentation:
    settings = dict(
        size=(48, 64),
        scale=(1.0, 1.0),
        ratio=(64 / 48, 64 / 48),
        jitter_probability=0.0,
        grayscale_probability=0.0,
        blur_probability=0.0,
        solarize_probability=0.0,
        flip_probability=0.0,
    )
    settings.update(probabilities)
    return ViewAugmentation(**settings)


def test_view_operations_match_pil_primitives():
    image = Image.fromarray(_photo())
    rng = np.random.default_rng(0)
    assert np.array_equal(np.asarray(_only()(image, rng)), np.asarray(image))  # full crop at the same size
    assert np.array_equal(
        np.asarray(_only(solarize_probability=1.0)(image, rng)), np.asarray(ImageOps.solarize(image, 128))
    )
    assert np.array_equal(np.asarray(_only(flip_probability=1.0)(image, rng)), np.asarray(ImageOps.mirror(image)))
    gray = np.asarray(_only(grayscale_probability=1.0)(image, rng))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    # blur: PIL's Gaussian blur with the radius drawn from blur_sigma
    blurred = np.asarray(_only(blur_probability=1.0, blur_sigma=(1.5, 1.5))(image, rng))
    assert np.array_equal(blurred, np.asarray(image.filter(ImageFilter.GaussianBlur(radius=1.5))))
    jittered = np.asarray(_only(jitter_probability=1.0)(image, rng))
    assert jittered.shape == (48, 64, 3) and not np.array_equal(jittered, np.asarray(image))


def test_view_augmentation_rejects_bad_settings():
    with pytest.raises(ValueError, match="scale"):
        ViewAugmentation(scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="hue"):
        ViewAugmentation(hue=0.7)
    with pytest.raises(ValueError, match="blur_probability"):
        ViewAugmentation(blur_probability=1.5)
    with pytest.raises(TypeError, match="PIL image"):
        to_rgb_image([[0, 1]])
    with pytest.raises(ValueError, match="uint8"):
        to_rgb_image(np.zeros((4, 4, 3), dtype=np.float32))


def test_two_view_transform_outputs_and_per_view_superpixels():
    processor = _processor()
    transform = TwoViewTransform(processor)
    torch.manual_seed(0)
    batch = transform({"image": [Image.fromarray(_photo(seed=0)), _photo(seed=1)]})
    assert set(batch) == {"pixel_values", "superpixels", "pixel_values_2", "superpixels_2"}
    assert len(batch["pixel_values"]) == 2
    assert batch["pixel_values"][0].shape == (3, 32, 32) and batch["pixel_values"][0].dtype == torch.float32
    assert batch["superpixels"][0].shape == (32, 32) and batch["superpixels"][0].dtype == torch.int64
    assert not torch.equal(batch["pixel_values"][0], batch["pixel_values_2"][0])
    # the superpixels are those of the augmented view: recompute them from the view itself
    torch.manual_seed(0)
    seed = int(torch.randint(2**62, ()))
    view = transform.views[0](to_rgb_image(_photo(seed=0)), np.random.default_rng(seed))
    expected = processor(view, do_resize=False, return_tensors="pt")
    assert torch.equal(batch["superpixels"][0], expected["superpixels"][0])
    torch.testing.assert_close(batch["pixel_values"][0], expected["pixel_values"][0])
    # torch's seed drives the draws: the same seed gives the same views
    torch.manual_seed(0)
    again = transform({"image": [Image.fromarray(_photo(seed=0)), _photo(seed=1)]})
    assert torch.equal(again["pixel_values_2"][1], batch["pixel_values_2"][1])


class _RecordingTwoViewTransform(TwoViewTransform):
    def __call__(self, examples):
        output = super().__call__(examples)
        output["worker_pid"] = [torch.tensor(os.getpid()) for _ in output["pixel_values"]]
        return output


def test_two_view_transform_runs_in_dataloader_workers():
    images = [Image.fromarray(_photo(seed=seed)) for seed in range(4)]
    dataset = datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))
    dataset = dataset.with_transform(_RecordingTwoViewTransform(_processor()))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=default_data_collator)
    batches = list(loader)
    assert [tuple(batch["pixel_values_2"].shape) for batch in batches] == [(2, 3, 32, 32)] * 2
    pids = {int(pid) for batch in batches for pid in batch["worker_pid"]}
    assert os.getpid() not in pids and len(pids) == 2
    # the workers draw different augmentations (PyTorch seeds each worker differently)
    assert not torch.equal(batches[0]["pixel_values"][0], batches[1]["pixel_values"][0])


def test_classification_transform_train_and_eval():
    processor = CastImageProcessor(
        size={"shortest_edge": 40}, do_center_crop=True, crop_size={"height": 32, "width": 32}, n_segments=16
    )
    examples = {"image": [_photo(seed=0), _photo(seed=1)], "label": [2, 0]}
    train = ClassificationTransform(processor, train=True)(examples)
    evaluation = ClassificationTransform(processor, train=False)(examples)
    for output in (train, evaluation):
        assert output["labels"] == [2, 0]
        assert output["pixel_values"][0].shape == (3, 32, 32) and output["superpixels"][1].shape == (32, 32)
    expected = processor(examples["image"], return_tensors="pt")
    assert torch.equal(evaluation["pixel_values"][1], expected["pixel_values"][1])
    assert "labels" not in ClassificationTransform(processor, train=False)({"image": examples["image"]})
    with pytest.raises(KeyError, match="img"):
        ClassificationTransform(processor, train=False, image_column="img")(examples)
