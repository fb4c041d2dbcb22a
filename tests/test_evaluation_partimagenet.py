# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The paper's PartImageNet protocol (`processing/evaluation/partimagenet.py`, issue 18 item 6): its Jaccard and
labelling code on hand-made cases, and `benchmarks/part_whole/evaluate_partimagenet.py` end to end on a tiny fake
dataset in PartImageNet's layout, with a tiny randomly initialized CLIP and a tiny CAST built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import import_script, smooth_image, tiny_config_kwargs
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

from modeling_cast import CastConfig, CastImageProcessor, CastModel
from processing.evaluation.partimagenet import (
    ClipSegmentLabeler,
    PartImageNetAnnotations,
    crop_label_map,
    label_object_segments,
    label_part_segments,
    mean_over_images,
    per_image_jaccard,
    resize_and_center_crop,
    segment_objects,
)

pytest.importorskip("pycocotools", reason="PartImageNet annotations need pycocotools (in the test extra)")

script = import_script("benchmarks/part_whole", "evaluate_partimagenet")
CROP_SIZE = 32  # the tiny CLIP's input size, hence the protocol's crop
# PartImageNet's layout: parts (`name`) of objects (`supercategory`), objects in order of first appearance
CATEGORIES = [
    {"id": 1, "name": "Quadruped Head", "supercategory": "Quadruped"},
    {"id": 2, "name": "Quadruped Body", "supercategory": "Quadruped"},
    {"id": 3, "name": "Bird Head", "supercategory": "Bird"},
    {"id": 4, "name": "Bird Wing", "supercategory": "Bird"},
    {"id": 5, "name": "Bird Tail", "supercategory": "Bird"},
]
# (file name, height, width, [(category id, x0, y0, x1, y1) rectangles as polygons])
IMAGES = [
    ("n02084071_1.JPEG", 40, 48, [(2, 8, 10, 40, 34), (1, 30, 4, 44, 16)]),
    ("n01503061_7.JPEG", 56, 40, [(4, 4, 20, 36, 44), (3, 10, 6, 22, 18), (5, 2, 44, 12, 54)]),
    ("n01503061_9.JPEG", 44, 44, [(3, 0, 0, 20, 20)]),
]


# ---------------------------------------------------------------------------------------------------------------
# Jaccard and the paper's averaging
# ---------------------------------------------------------------------------------------------------------------


def test_per_image_jaccard_is_one_for_a_perfect_prediction():
    reference = np.array([[0, 0, 11], [1, 11, 11]])
    assert per_image_jaccard(reference.copy(), reference, num_classes=12) == 1.0


def test_per_image_jaccard_averages_present_classes_only():
    # class 0: intersection 2, union 4; class 11 (background): intersection 2, union 4; the 10 absent classes do
    # not count (torchmetrics >= 1.0), with absent_class_score=0 they do (torchmetrics < 1.0)
    reference = np.array([[0, 0, 0], [11, 11, 11]])
    prediction = np.array([[0, 0, 11], [11, 11, 0]])

    assert per_image_jaccard(prediction, reference, num_classes=12) == pytest.approx(0.5)
    assert per_image_jaccard(prediction, reference, num_classes=12, absent_class_score=0.0) == pytest.approx(1 / 12)


def test_per_image_jaccard_counts_a_predicted_class_missing_from_the_reference():
    # class 3 is predicted but absent from the reference: IoU 0, and it counts
    reference = np.array([[11, 11], [11, 11]])
    prediction = np.array([[3, 11], [11, 11]])
    assert per_image_jaccard(prediction, reference, num_classes=12) == pytest.approx((0 + 3 / 4) / 2)


def test_mean_over_images_weighs_images_equally():
    small = per_image_jaccard(np.array([[0]]), np.array([[1]]), num_classes=2)  # 0.0
    large = per_image_jaccard(np.zeros((10, 10), int), np.zeros((10, 10), int), num_classes=2)  # 1.0
    assert mean_over_images([small, large]) == pytest.approx(0.5)  # pooled pixels would give ~0.5 per class mix


@pytest.mark.parametrize(
    "prediction, reference, num_classes, error, match",
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), 12, ValueError, "same shape"),
        (np.full((2, 2), 12), np.zeros((2, 2), int), 12, ValueError, r"`prediction` values must be in \[0, 12\)"),
        (np.zeros((2, 2)), np.zeros((2, 2), int), 12, TypeError, "`prediction` must hold integer class labels"),
        (np.zeros((2, 2), int), np.zeros((2, 2), int), 0, ValueError, "`num_classes` must be a positive int"),
    ],
)
def test_per_image_jaccard_rejects_bad_inputs(prediction, reference, num_classes, error, match):
    with pytest.raises(error, match=match):
        per_image_jaccard(prediction, reference, num_classes)


# ---------------------------------------------------------------------------------------------------------------
# Segment labels and geometry
# ---------------------------------------------------------------------------------------------------------------


def test_part_segments_take_the_object_of_their_first_pixel():
    segments = np.array([[0, 0, 1], [2, 1, 1]])
    objects = np.array([[1, 0, 2], [2, 2, 2]])  # segment 0 starts on object 1, segment 1 on background (2)
    segment_ids = [0, 1, 2]

    assert segment_objects(segments, objects, segment_ids) == [1, 2, 2]
    labels = label_part_segments(segments, segment_ids, [4, None, 0], num_parts=5)
    np.testing.assert_array_equal(labels, [[4, 4, 5], [0, 5, 5]])
    np.testing.assert_array_equal(label_object_segments(segments, segment_ids, [1, 2, 0]), [[1, 1, 2], [0, 2, 2]])


def test_resize_and_center_crop_follows_torchvision_geometry():
    # a 60-wide, 40-high map: shorter side to 32 gives 48 x 32, the crop keeps columns 8..40
    columns = np.tile(np.arange(60), (40, 1))
    cropped = crop_label_map(columns, 32)
    assert cropped.shape == (32, 32)
    np.testing.assert_array_equal(cropped[0], np.floor((np.arange(8, 40) + 0.5) * 60 / 48).astype(int))
    assert resize_and_center_crop(Image.new("RGB", (40, 60)), 32, Image.Resampling.BICUBIC).size == (32, 32)


# ---------------------------------------------------------------------------------------------------------------
# The fake dataset, a tiny CLIP, a tiny CAST
# ---------------------------------------------------------------------------------------------------------------


def _polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture(scope="module")
def partimagenet_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("PartImageNet")
    images, annotations = [], []
    for image_id, (file_name, height, width, boxes) in enumerate(IMAGES):
        folder = root / "images" / "val" / file_name[:9]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_image(height, width, image_id)).save(folder / file_name, format="JPEG")
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for category_id, *box in boxes:
            x0, y0, x1, y1 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category_id, "iscrowd": 0,
                "segmentation": _polygon(*box), "area": (x1 - x0) * (y1 - y0), "bbox": [x0, y0, x1 - x0, y1 - y0],
            })
    (root / "annotations").mkdir()
    (root / "annotations" / "val.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES})
    )
    return root


def test_annotations_read_objects_parts_and_label_maps(partimagenet_dir):
    data = PartImageNetAnnotations(str(partimagenet_dir), "val")

    assert data.object_names == ["Quadruped", "Bird"]
    assert data.part_names == [category["name"] for category in CATEGORIES]
    assert data.parts_of_objects == [[(0, "Quadruped Head"), (1, "Quadruped Body")],
                                     [(2, "Bird Head"), (3, "Bird Wing"), (4, "Bird Tail")]]
    sample = data[0]
    assert sample.path.endswith("images/val/n02084071/n02084071_1.JPEG")
    assert sample.object_map.shape == sample.part_map.shape == (40, 48)
    # the head, painted after the body, overwrites it where they overlap; everything else is background
    assert sample.part_map[12, 35] == 0 and sample.part_map[20, 20] == 1 and sample.part_map[38, 2] == 5
    assert sample.object_map[12, 35] == 0 and sample.object_map[38, 2] == 2
    assert set(np.unique(data[1].object_map)) == {1, 2}


def test_annotations_name_what_is_missing(tmp_path, partimagenet_dir):
    with pytest.raises(ValueError, match=r"`data_dir` must hold PartImageNet's annotations/test.json"):
        PartImageNetAnnotations(str(partimagenet_dir), "test")


def _tiny_clip(folder: Path) -> None:
    # a character-level BPE vocabulary: every lowercase word tokenizes, each class name differently
    letters = [chr(code) for code in range(ord("a"), ord("z") + 1)]
    vocab = {token: index for index, token in enumerate(
        ["<|startoftext|>", "<|endoftext|>", *letters, *[letter + "</w>" for letter in letters]]
    )}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": CROP_SIZE},
                                            crop_size={"height": CROP_SIZE, "width": CROP_SIZE})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=40, eos_token_id=1, bos_token_id=0,
                         pad_token_id=1),
        vision_config=dict(image_size=CROP_SIZE, patch_size=8, hidden_size=16, intermediate_size=24,
                           num_hidden_layers=1, num_attention_heads=2),
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "clip").mkdir()
    _tiny_clip(root / "clip")
    torch.manual_seed(0)
    CastModel(CastConfig(**tiny_config_kwargs(num_segments=[16, 8]))).save_pretrained(root / "cast")
    CastImageProcessor(size={"height": CROP_SIZE, "width": CROP_SIZE}, n_segments=24).save_pretrained(root / "cast")
    return {"clip": str(root / "clip"), "cast": str(root / "cast")}


def test_evaluate_partimagenet_runs_end_to_end(partimagenet_dir, models, tmp_path):
    output_dir = tmp_path / "out"

    results = script.main([
        "--model_name_or_path", models["cast"], "--clip_model_name_or_path", models["clip"],
        "--data_dir", str(partimagenet_dir), "--output_dir", str(output_dir), "--device", "cpu",
    ])

    lines = [json.loads(line) for line in (output_dir / "per_image.jsonl").read_text().splitlines()]
    assert [line["file_name"] for line in lines] == [name for name, *_ in IMAGES]
    for line in lines:
        assert 0.0 <= line["object_jaccard"] <= 1.0 and 0.0 <= line["part_jaccard"] <= 1.0
    assert results["num_images"] == len(IMAGES)
    assert results["num_object_classes"] == 3 and results["num_part_classes"] == 6
    assert results["crop_size"] == CROP_SIZE
    assert results["object_miou"] == pytest.approx(100 * np.mean([line["object_jaccard"] for line in lines]))
    assert results["part_miou"] == pytest.approx(100 * np.mean([line["part_jaccard"] for line in lines]))
    assert json.loads((output_dir / "results.json").read_text())["object_miou"] == results["object_miou"]


def test_evaluate_partimagenet_names_a_missing_segment_count(partimagenet_dir, models, tmp_path):
    expected = r"`--object_segments` must be one of the model's segment counts \[16, 8\], got 4"
    with pytest.raises(ValueError, match=expected):
        script.main([
            "--model_name_or_path", models["cast"], "--clip_model_name_or_path", models["clip"],
            "--data_dir", str(partimagenet_dir), "--output_dir", str(tmp_path), "--object_segments", "4",
            "--device", "cpu",
        ])


def test_clip_labeler_averages_prompt_templates_and_rejects_bad_ones(partimagenet_dir, models):
    data = PartImageNetAnnotations(str(partimagenet_dir), "val")
    clip, processor = CLIPModel.from_pretrained(models["clip"]).eval(), CLIPProcessor.from_pretrained(models["clip"])
    one = ClipSegmentLabeler(clip, processor, data.object_names, data.parts_of_objects, ("a photo of a {}",))
    two = ClipSegmentLabeler(clip, processor, data.object_names, data.parts_of_objects, ("a photo of a {}", "a {}"))

    assert one.object_text.shape == two.object_text.shape == (len(data.object_names) + 1, clip.config.projection_dim)
    torch.testing.assert_close(two.object_text.norm(dim=-1), torch.ones(len(data.object_names) + 1))
    assert not torch.allclose(one.object_text, two.object_text)
    assert [features.shape[0] for features in two.part_text] == [2, 3]
    with pytest.raises(ValueError, match=r"`prompt_templates` must be one or more strings with a `\{\}`"):
        ClipSegmentLabeler(clip, processor, data.object_names, data.parts_of_objects, ("a photo",))
