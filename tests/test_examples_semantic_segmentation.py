# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""End-to-end test of `examples/run_semantic_segmentation.py`: fine-tune a tiny CAST on generated images with known
per-pixel classes, then use the saved folder with `pipeline("image-segmentation")`.

The generated data (`synthetic_shapes`) are about 77% background; predicting the majority class everywhere gives a
mean IoU of about 0.19 over the four classes, which is the chance level the trained model must clearly beat.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_config_kwargs
from huggingface_hub import ModelCard
from PIL import Image
from transformers import UperNetForSemanticSegmentation, pipeline

from modeling_cast import CastBackbone, CastConfig, CastForImageClassification, CastImageProcessor, CastModel
from processing.evaluation.metrics import mean_iou


IMAGE_SIZE = 64
N_SEGMENTS = 48
TRAIN_SAMPLES = 64
SEED = 0


def _load_example():
    path = REPO_ROOT / "examples" / "run_semantic_segmentation.py"
    spec = importlib.util.spec_from_file_location("run_semantic_segmentation", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


example = _load_example()


def _save_backbone(folder: Path) -> Path:
    """A randomly initialized tiny CAST backbone (the stand-in for a pretrained checkpoint) with its processor."""
    torch.manual_seed(SEED)
    config = CastConfig(**tiny_config_kwargs(image_size=IMAGE_SIZE, num_segments=[16, 8], num_labels=0))
    CastModel(config).save_pretrained(folder)
    CastImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, n_segments=N_SEGMENTS).save_pretrained(folder)
    return folder


def _common_arguments(output_dir: Path) -> list[str]:
    return [
        "--output_dir", str(output_dir), "--use_cpu", "--report_to", "none", "--save_strategy", "no",
        "--dataloader_num_workers", "0", "--seed", str(SEED), "--per_device_eval_batch_size", "16",
    ]


def _fine_tune(tmp_path_factory, name: str, *head_arguments: str):
    """Train the example for 80 steps on the generated shapes from a fresh tiny backbone; the output folder and
    metrics."""
    root = tmp_path_factory.mktemp(name)
    backbone = _save_backbone(root / "backbone")
    output_dir = root / "cast-shapes"
    arguments = [
        *head_arguments,
        "--model_name_or_path", str(backbone), "--synthetic_samples", str(TRAIN_SAMPLES),
        "--image_size", str(IMAGE_SIZE), "--n_segments", str(N_SEGMENTS),
        "--do_train", "--do_eval", "--max_steps", "80", "--per_device_train_batch_size", "8",
        "--learning_rate", "3e-3", "--warmup_steps", "5", "--logging_steps", "10",
        *_common_arguments(output_dir),
    ]
    # One intra-op thread: the tiny model gains nothing from more, and on a busy machine threads that wait for each
    # other make each step many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = example.main(arguments)
    finally:
        torch.set_num_threads(threads)
    return output_dir, metrics


def test_superpixels_on_device_trains_without_superpixels_in_the_batches(tmp_path):
    backbone = _save_backbone(tmp_path / "backbone")
    arguments = [
        "--model_name_or_path", str(backbone), "--synthetic_samples", "8", "--image_size", str(IMAGE_SIZE),
        "--n_segments", str(N_SEGMENTS), "--do_train", "--max_steps", "2", "--per_device_train_batch_size", "4",
        "--superpixels_on_device", *_common_arguments(tmp_path / "run"),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        example.main(arguments)
    finally:
        torch.set_num_threads(threads)
    config = CastConfig.from_pretrained(tmp_path / "run")
    assert config.superpixel_n_segments == N_SEGMENTS
    transform = example._transform(CastImageProcessor.from_pretrained(backbone), flip=False, compute_superpixels=False)
    data = example.synthetic_shapes(2, IMAGE_SIZE, seed=5)
    assert sorted(transform({"image": data["image"], "annotation": data["annotation"]})) == ["labels", "pixel_values"]


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    return _fine_tune(tmp_path_factory, "semantic_training")


def _chance_mean_iou() -> float:
    """Mean IoU of predicting the majority class (background) everywhere on the evaluation images."""
    data = example.synthetic_shapes(TRAIN_SAMPLES // 4, IMAGE_SIZE, SEED + 1)  # how the example makes them
    processor = CastImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, n_segments=N_SEGMENTS)
    labels = processor(data["image"], segmentation_maps=data["annotation"], return_tensors="np")["labels"]
    return mean_iou(np.zeros_like(labels), labels, num_labels=len(example.SYNTHETIC_ID2LABEL))["mean_iou"]


def test_fine_tuning_beats_chance_mean_iou(fine_tuned):
    output_dir, metrics = fine_tuned
    chance = _chance_mean_iou()

    assert 0.15 < chance < 0.25
    assert metrics["eval_mean_iou"] > max(0.6, chance + 0.35), metrics
    assert metrics["eval_overall_accuracy"] > 0.9, metrics
    losses = [entry["loss"] for entry in json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
              if "loss" in entry]
    assert losses[-1] < 0.5 * losses[0]


def _assert_pipeline_segments_new_image_at_its_size(output_dir: Path) -> None:
    data = example.synthetic_shapes(1, 96, seed=123)
    image = data["image"][0]
    truth = np.asarray(data["annotation"][0])
    assert image.size != (IMAGE_SIZE, IMAGE_SIZE)

    segments = pipeline("image-segmentation", model=str(output_dir))(image)

    names = set(example.SYNTHETIC_ID2LABEL.values())
    assert segments and {segment["label"] for segment in segments} <= names
    masks = {segment["label"]: np.asarray(segment["mask"]) // 255 for segment in segments}
    coverage = sum(masks.values())
    assert coverage.shape == (image.height, image.width)
    assert (coverage == 1).all()
    # the masks follow the shapes: most pixels get their true class
    label_ids = {name: index for index, name in example.SYNTHETIC_ID2LABEL.items()}
    predicted = sum(label_ids[name] * mask for name, mask in masks.items())
    assert (predicted == truth).mean() > 0.8


def test_saved_folder_segments_new_image_at_its_size(fine_tuned, caplog):
    output_dir, _ = fine_tuned
    caplog.set_level(logging.CRITICAL, logger="transformers")  # "not supported for image-segmentation"
    _assert_pipeline_segments_new_image_at_its_size(output_dir)


def test_saved_folder_has_processor_and_card(fine_tuned):
    output_dir, metrics = fine_tuned

    card = ModelCard.load(output_dir / "README.md")
    assert card.data.pipeline_tag == "image-segmentation"
    assert card.data.library_name == "transformers"
    assert card.data.eval_results[0].metric_type == "mean_iou"
    assert card.data.eval_results[0].metric_value == pytest.approx(metrics["eval_mean_iou"], abs=1e-4)
    assert "backbone" in card.text  # the base model (a local folder, so named in the text only)
    processor = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert processor["n_segments"] == N_SEGMENTS and processor["size"] == {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    config = json.loads((output_dir / "config.json").read_text())
    assert config["architectures"] == ["CastForSemanticSegmentation"]
    assert config["id2label"] == {str(index): name for index, name in example.SYNTHETIC_ID2LABEL.items()}


def test_folder_data_with_reduced_labels_evaluates(tmp_path):
    backbone = _save_backbone(tmp_path / "backbone")
    data = example.synthetic_shapes(2, IMAGE_SIZE, seed=5)
    for folder in ("images", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for index, (image, annotation) in enumerate(zip(data["image"], data["annotation"])):
        image.save(tmp_path / "data" / "images" / f"{index}.jpg")
        # ADE20k-style palette masks whose 0 means "unlabeled": classes are stored as 1..4
        mask = Image.fromarray(np.asarray(annotation) + 1).convert("P")
        mask.save(tmp_path / "data" / "masks" / f"{index}.png")
    (tmp_path / "data" / "id2label.json").write_text(json.dumps(example.SYNTHETIC_ID2LABEL))

    metrics = example.main(
        [
            "--model_name_or_path", str(backbone), "--validation_dir", str(tmp_path / "data"),
            "--do_reduce_labels", "--do_eval", "--num_segments", "12", "6", "--token_pooling_resolution", "pixel",
            *_common_arguments(tmp_path / "out"),
        ]
    )

    assert 0.0 <= metrics["eval_mean_iou"] <= 1.0
    assert set(metrics) >= {"eval_loss", "eval_overall_accuracy", "eval_iou_background"}
    assert not (tmp_path / "out" / "README.md").exists()  # nothing trained, nothing saved


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([], "give either `--synthetic_samples N` or data folders"),
        (["--synthetic_samples", "4", "--train_dir", "."], "give either `--synthetic_samples N` or data folders"),
        (["--synthetic_samples", "0"], "`--synthetic_samples` must be a positive integer, got 0"),
        (["--synthetic_samples", "4", "--token_pooling_resolution", "pixels"], "`token_pooling_resolution` must be"),
        (["--train_dir", "missing-folder"], "`--train_dir` 'missing-folder' does not exist"),
        (["--synthetic_samples", "4", "--head", "segformer"], "`--head` must be one of \\('cast', 'upernet'\\)"),
        (["--synthetic_samples", "4", "--out_features", "stem"], "`--out_features` only applies to `--head upernet`"),
    ],
    ids=["no-data", "two-sources", "zero-samples", "pooling", "missing-folder", "head", "out-features"],
)
def test_example_rejects_bad_arguments(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        example.main(["--model_name_or_path", "unused", *arguments, *_common_arguments(tmp_path)])


# ------------------------------------------------------------------------------------------------------------------
# `--head upernet`: transformers' UperNet decoder on CastBackbone feature maps, trained the same way


@pytest.fixture(scope="module")
def upernet_fine_tuned(tmp_path_factory):
    return _fine_tune(tmp_path_factory, "upernet_training", "--head", "upernet", "--upernet_hidden_size", "32")


def test_upernet_fine_tuning_beats_chance_mean_iou(upernet_fine_tuned):
    output_dir, metrics = upernet_fine_tuned
    chance = _chance_mean_iou()

    # UperNet's logits come from the stem grid (H / 8) and are upsampled bilinearly, so at 64x64 its boundaries are
    # coarser than the CAST head's per-superpixel ones: clearly above chance (0.19 mIoU, 0.77 accuracy), lower bars
    assert metrics["eval_mean_iou"] > max(0.5, chance + 0.3), metrics
    assert metrics["eval_overall_accuracy"] > 0.85, metrics
    losses = [entry["loss"] for entry in json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
              if "loss" in entry]
    assert losses[-1] < 0.5 * losses[0]


def test_upernet_saved_folder_reloads_and_segments_at_the_original_size(upernet_fine_tuned, caplog):
    output_dir, _ = upernet_fine_tuned
    caplog.set_level(logging.CRITICAL, logger="transformers")
    config = json.loads((output_dir / "config.json").read_text())
    assert config["architectures"] == ["UperNetForSemanticSegmentation"]
    assert config["backbone_config"]["model_type"] == "cast"
    assert config["backbone_config"]["out_features"] == ["stem", "stage1", "stage2"]
    model = UperNetForSemanticSegmentation.from_pretrained(output_dir)
    assert type(model.backbone) is CastBackbone
    _assert_pipeline_segments_new_image_at_its_size(output_dir)


@pytest.mark.parametrize("source", [CastModel, CastForImageClassification], ids=["backbone", "classifier"])
def test_upernet_starts_from_the_cast_encoder_of_any_folder(source, tmp_path):
    torch.manual_seed(SEED)
    cast = source(CastConfig(**tiny_config_kwargs(image_size=IMAGE_SIZE, num_segments=[16, 8])))
    cast.save_pretrained(tmp_path)
    arguments = example.ModelArguments(model_name_or_path=str(tmp_path), head="upernet", upernet_hidden_size=16,
                                       out_features=["stage1", "stage2"])

    processor = CastImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, n_segments=N_SEGMENTS)
    model = example._load_model(arguments, dict(example.SYNTHETIC_ID2LABEL), processor)

    assert type(model) is UperNetForSemanticSegmentation and model.config.num_labels == 4
    assert model.backbone.out_features == ["stage1", "stage2"]
    assert model.config.backbone_config.superpixel_n_segments == N_SEGMENTS  # as many as the processor's
    expected = (cast if isinstance(cast, CastModel) else cast.cast).state_dict()
    for name, tensor in model.backbone.cast.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
