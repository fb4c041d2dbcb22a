# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`transformers.pipeline` on saved tiny CAST checkpoints: "image-segmentation" (segments of one hierarchy level),
the registered "hierarchical-segmentation" task, "image-classification" and "image-feature-extraction"."""

from __future__ import annotations

import base64
import functools
import http.server
import logging
import os
import threading

import numpy as np
import pytest
import torch
from conftest import smooth_image, tiny_config_kwargs
from PIL import Image
from transformers import (
    ImageClassificationPipeline,
    ImageSegmentationPipeline,
    SegformerConfig,
    SegformerForSemanticSegmentation,
    SegformerImageProcessorPil,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
    pipeline,
)

from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor, CastModel
from processing.pipeline_cast import (
    CastImageClassificationPipeline,
    CastImageSegmentationPipeline,
    HierarchicalSegmentationPipeline,
    segment_masks,
)

IMAGE_SIZES = [(40, 48), (30, 70), (52, 36)]  # (height, width), none of them the 32x32 model input
NUM_LEVELS = len(tiny_config_kwargs()["num_segments"])


@pytest.fixture(scope="module")
def images():
    return [Image.fromarray(smooth_image(height, width, seed)) for seed, (height, width) in enumerate(IMAGE_SIZES)]


def _save(folder, model_class, **processor_kwargs):
    torch.manual_seed(0)
    model = model_class(CastConfig(**tiny_config_kwargs())).eval()
    model.save_pretrained(folder)
    CastImageProcessor(size={"height": 32, "width": 32}, n_segments=12, **processor_kwargs).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Folders of a tiny backbone and a tiny image classifier, each with its processor."""
    root = tmp_path_factory.mktemp("checkpoints")
    _save(root / "backbone", CastModel)
    _save(root / "classifier", CastForImageClassification)
    return {"backbone": str(root / "backbone"), "classifier": str(root / "classifier")}


@pytest.fixture(autouse=True)
def _quiet_transformers_logs(caplog):
    # the image-segmentation pipeline logs an error for every model outside transformers' static lists
    caplog.set_level(logging.CRITICAL, logger="transformers")


def _mask_array(mask: Image.Image) -> np.ndarray:
    assert mask.mode == "L"
    return np.asarray(mask)


def _expected_coarsest(folder: str, image: Image.Image) -> torch.Tensor:
    """The coarsest hierarchy level at the image's size, computed without the pipeline."""
    model = CastModel.from_pretrained(folder).eval()
    processor = CastImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        outputs = model(**processor(image, return_tensors="pt"))
    return processor.post_process_hierarchical_segmentation(
        outputs, target_sizes=[(image.height, image.width)], levels=-1
    )[0][0]


# ---------------------------------------------------------------------------------------------------------------
# image-segmentation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["backbone", "classifier"])
def test_image_segmentation_masks_cover_image_exactly_once(checkpoints, images, kind):
    segmenter = pipeline("image-segmentation", model=checkpoints[kind])
    image = images[0]

    segments = segmenter(image)

    expected = _expected_coarsest(checkpoints[kind], image)
    expected_ids = torch.unique(expected).tolist()
    assert len(segments) == len(expected_ids)
    masks = np.stack([_mask_array(segment["mask"]) for segment in segments])
    assert masks.shape == (len(expected_ids), image.height, image.width)
    assert set(np.unique(masks)) <= {0, 255}
    np.testing.assert_array_equal((masks // 255).sum(0), np.ones((image.height, image.width)))
    for segment, segment_id in zip(segments, expected_ids):
        assert segment["label"] == f"level {NUM_LEVELS - 1} segment {segment_id}"
        np.testing.assert_array_equal(_mask_array(segment["mask"]) == 255, (expected == segment_id).numpy())
        assert isinstance(segment["score"], float) and 0.0 < segment["score"] <= 1.0


def test_image_segmentation_threshold_never_drops_segments(checkpoints, images):
    segmenter = pipeline("image-segmentation", model=checkpoints["backbone"])

    default = segmenter(images[1])
    strict = segmenter(images[1], threshold=0.999, mask_threshold=0.999, overlap_mask_area_threshold=0.999)

    assert [segment["label"] for segment in strict] == [segment["label"] for segment in default]


def test_image_segmentation_batched_equals_unbatched(checkpoints, images):
    segmenter = pipeline("image-segmentation", model=checkpoints["classifier"])

    batched = segmenter(images, batch_size=2)
    unbatched = [segmenter(image) for image in images]

    assert len(batched) == len(images)
    for batch_segments, single_segments in zip(batched, unbatched):
        # hard outputs are identical; scores may differ in the last float bits (batched matrix products)
        assert [s["label"] for s in batch_segments] == [s["label"] for s in single_segments]
        assert [s["score"] for s in batch_segments] == pytest.approx([s["score"] for s in single_segments], rel=1e-6)
        for batch_segment, single_segment in zip(batch_segments, single_segments):
            np.testing.assert_array_equal(_mask_array(batch_segment["mask"]), _mask_array(single_segment["mask"]))


def test_image_segmentation_level_comes_from_the_processor(tmp_path, images):
    _save(tmp_path, CastModel, segmentation_level=0)
    segmenter = pipeline("image-segmentation", model=str(tmp_path))

    segments = segmenter(images[2])

    assert all(segment["label"].startswith("level 0 segment ") for segment in segments)
    masks = np.stack([_mask_array(segment["mask"]) // 255 for segment in segments])
    np.testing.assert_array_equal(masks.sum(0), np.ones((images[2].height, images[2].width)))


def test_image_segmentation_accepts_image_paths(checkpoints, images, tmp_path):
    path = tmp_path / "image.png"
    images[0].save(path)
    segmenter = pipeline("image-segmentation", model=checkpoints["backbone"])

    from_path = segmenter(str(path))
    from_image = segmenter(images[0])

    assert [s["label"] for s in from_path] == [s["label"] for s in from_image]
    for path_segment, image_segment in zip(from_path, from_image):
        np.testing.assert_array_equal(_mask_array(path_segment["mask"]), _mask_array(image_segment["mask"]))


def test_image_segmentation_semantic_subtask_explains_what_to_use(checkpoints, images):
    segmenter = pipeline("image-segmentation", model=checkpoints["backbone"])

    with pytest.raises(ValueError, match=r"per-pixel class `logits`.*post_process_hierarchical_segmentation"):
        segmenter(images[0], subtask="semantic")


def _assert_same_annotations(fast: list[dict], reference: list[dict]) -> None:
    assert [(s["label"], s["score"]) for s in fast] == [(s["label"], s["score"]) for s in reference]
    for fast_segment, reference_segment in zip(fast, reference):
        assert fast_segment["mask"].mode == reference_segment["mask"].mode == "L"
        assert fast_segment["mask"].size == reference_segment["mask"].size
        np.testing.assert_array_equal(np.asarray(fast_segment["mask"]), np.asarray(reference_segment["mask"]))


@pytest.mark.parametrize("subtask", [None, "panoptic", "instance"])
def test_image_segmentation_cast_pipeline_equals_transformers_pipeline(checkpoints, images, subtask):
    fast = pipeline("image-segmentation", model=checkpoints["backbone"])
    reference = pipeline(
        "image-segmentation", model=checkpoints["backbone"], pipeline_class=ImageSegmentationPipeline
    )
    assert isinstance(fast, CastImageSegmentationPipeline) and type(reference) is ImageSegmentationPipeline
    arguments = {} if subtask is None else {"subtask": subtask}

    for fast_segments, reference_segments in zip(
        fast(images, batch_size=2, **arguments), reference(images, batch_size=2, **arguments)
    ):
        _assert_same_annotations(fast_segments, reference_segments)


def test_image_segmentation_cast_models_draw_their_own_masks(checkpoints, images, monkeypatch):
    """CAST's pipeline never runs transformers' mask drawing for segment subtasks (other models keep transformers'
    own class altogether: `test_other_models_keep_transformers_pipelines_unchanged`)."""
    segmenter = pipeline("image-segmentation", model=checkpoints["classifier"])
    calls = []
    parent = ImageSegmentationPipeline.postprocess

    def recording(self, *args, **kwargs):
        calls.append(args)
        return parent(self, *args, **kwargs)

    monkeypatch.setattr(ImageSegmentationPipeline, "postprocess", recording)
    assert segmenter(images[0])
    assert not calls


@pytest.mark.parametrize("offset", [0, 250, 10_000])
def test_segment_masks_equal_transformers_masks(offset):
    # offset 250 puts ids on both sides of the 8-bit limit, 10 000 only above it
    generator = torch.Generator().manual_seed(offset)
    segmentation = torch.randint(0, 9, (23, 17), generator=generator) + offset
    ids = torch.unique(segmentation).tolist()

    masks = segment_masks(segmentation, ids)

    assert len(masks) == len(ids)
    for mask, segment_id in zip(masks, ids):
        expected = ((segmentation == segment_id) * 255).numpy().astype(np.uint8)
        assert mask.mode == "L"
        np.testing.assert_array_equal(np.asarray(mask), expected)


def test_config_id2label_names_segment_label_ids(checkpoints):
    config = CastConfig.from_pretrained(checkpoints["classifier"])

    assert config.id2label[(3, 5)] == "level 3 segment 5"
    assert config.id2label[1] == "LABEL_1"
    with pytest.raises(KeyError):
        config.id2label[config.num_labels]  # a missing class id is still an error
    config.num_labels = 5  # the setter rebuilds id2label: segment names must survive
    assert config.id2label[(0, 2)] == "level 0 segment 2"
    config.id2label = {0: "cat"}
    assert config.id2label[(1, 0)] == "level 1 segment 0"


# ---------------------------------------------------------------------------------------------------------------
# hierarchical-segmentation (registered by `import modeling_cast`)
# ---------------------------------------------------------------------------------------------------------------


def test_hierarchical_segmentation_returns_every_level_nested(checkpoints, images):
    segmenter = pipeline("hierarchical-segmentation", model=checkpoints["classifier"])
    assert isinstance(segmenter, HierarchicalSegmentationPipeline)
    image = images[1]

    result = segmenter(image)

    assert set(result) == {"levels", "segments_info"}
    assert len(result["levels"]) == NUM_LEVELS == len(result["segments_info"])
    for level, (label_map, level_info) in enumerate(zip(result["levels"], result["segments_info"])):
        assert label_map.dtype == torch.int64 and label_map.shape == (image.height, image.width)
        assert [segment["id"] for segment in level_info] == torch.unique(label_map).tolist()
        assert sum(segment["area"] for segment in level_info) == image.height * image.width
        for segment in level_info:
            assert set(segment) == {"id", "level", "score", "area"} and segment["level"] == level
    fine, coarse = result["levels"]
    pairs = torch.unique(torch.stack([fine.flatten(), coarse.flatten()]), dim=1)
    assert pairs.shape[1] == torch.unique(fine).numel()  # each fine segment lies in exactly one coarse segment
    assert torch.equal(result["levels"][-1], _expected_coarsest(checkpoints["classifier"], image))


def test_hierarchical_segmentation_batched_equals_unbatched(checkpoints, images):
    segmenter = pipeline("hierarchical-segmentation", model=checkpoints["backbone"])

    batched = segmenter(images, batch_size=2, levels=[-1, 0])
    unbatched = [segmenter(image, levels=[-1, 0]) for image in images]

    for batch_result, single_result in zip(batched, unbatched):
        assert len(batch_result["levels"]) == 2
        for batch_info, single_info in zip(batch_result["segments_info"], single_result["segments_info"]):
            assert [{**s, "score": None} for s in batch_info] == [{**s, "score": None} for s in single_info]
            assert [s["score"] for s in batch_info] == pytest.approx([s["score"] for s in single_info], rel=1e-6)
        for batch_map, single_map in zip(batch_result["levels"], single_result["levels"]):
            assert torch.equal(batch_map, single_map)


def test_hierarchical_segmentation_renders_levels_side_by_side(checkpoints, images):
    segmenter = pipeline("hierarchical-segmentation", model=checkpoints["backbone"])
    image = images[0]

    result = segmenter(image, render=True)
    batched = segmenter(images[:2], render=True, batch_size=2)

    picture = result["picture"]
    assert isinstance(picture, Image.Image) and picture.mode == "RGB"
    assert picture.height == image.height and picture.width >= (NUM_LEVELS + 1) * image.width
    assert batched[0]["picture"].tobytes() == picture.tobytes()
    assert batched[1]["picture"].height == images[1].height


def test_hierarchical_segmentation_render_options_draw_a_captioned_overlay(checkpoints, images):
    from processing.visualization_cast import draw_hierarchy, level_caption

    segmenter = pipeline("hierarchical-segmentation", model=checkpoints["backbone"])
    image = images[0]
    options = {"mode": "overlay", "captions": True}
    result = segmenter(image, render_options=options)  # render_options imply render=True
    expected = draw_hierarchy(image, torch.stack(result["levels"]).numpy(), **options)
    assert result["picture"].tobytes() == expected.tobytes()
    assert result["picture"].height > image.height  # the caption strip

    # a subset of levels is captioned with the model's level numbers, not its positions in the subset
    coarsest = segmenter(image, levels=[-1], render_options=options)
    level_map = coarsest["levels"][0].numpy()
    captions = [level_caption(NUM_LEVELS - 1, len(np.unique(level_map)))]
    expected = draw_hierarchy(image, level_map[None], mode="overlay", captions=captions)
    assert coarsest["picture"].tobytes() == expected.tobytes()


def test_hierarchical_segmentation_reads_16_bit_files_like_their_8_bit_versions(checkpoints, tmp_path):
    """Issue 17 item 2: transformers' image loading converts files to 8-bit RGB, saturating a 16-bit PNG (every
    pixel 255): the segmentation of a white image."""
    gray = smooth_image(40, 48, seed=3)[..., 0]
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")  # v = 257 u: u in 16 bits
    Image.fromarray(gray).save(tmp_path / "eight.png")
    with Image.open(tmp_path / "sixteen.png") as written:
        assert written.mode in ("I;16", "I"), written.mode
    segmenter = pipeline("hierarchical-segmentation", model=checkpoints["backbone"])

    sixteen = segmenter(str(tmp_path / "sixteen.png"), render=True)
    eight = segmenter(str(tmp_path / "eight.png"), render=True)
    from_pil = segmenter(Image.open(tmp_path / "sixteen.png"))

    for result in (sixteen, from_pil):
        for level, expected in zip(result["levels"], eight["levels"]):
            assert torch.equal(level, expected)
    assert sixteen["picture"].tobytes() == eight["picture"].tobytes()  # the picture shows the scaled pixels
    assert len(eight["segments_info"][0]) > 1  # not the one segment of a white image


@pytest.fixture(scope="module")
def sixteen_bit_files(tmp_path_factory):
    """A 16-bit gray PNG whose content lies well below 255 in 16 bits (transformers' loader turns it white), its
    8-bit equivalent (v = 257 u) and an all-white 8-bit PNG of the same size."""
    folder = tmp_path_factory.mktemp("sixteen_bit")
    gray = np.maximum(smooth_image(40, 48, seed=5)[..., 0], 1)  # every 16-bit value >= 257: all white once clipped
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "sixteen.png")
    Image.fromarray(gray).save(folder / "eight.png")
    Image.fromarray(np.full_like(gray, 255)).save(folder / "white.png")
    with Image.open(folder / "sixteen.png") as written:
        assert written.mode in ("I;16", "I"), written.mode
        assert np.asarray(written.convert("RGB")).min() == 255  # what transformers' `load_image` makes of it
    return {name: str(folder / f"{name}.png") for name in ("sixteen", "eight", "white")}


def _segment_masks(segments) -> list[tuple[str, bytes]]:
    return [(segment["label"], _mask_array(segment["mask"]).tobytes()) for segment in segments]


def test_image_segmentation_reads_16_bit_files_like_their_8_bit_versions(checkpoints, sixteen_bit_files):
    """Issue 17 item 2: transformers' "image-segmentation" pipeline opens files with its `load_image`, which
    saturates 16-bit ones; for CAST models `pipeline()` builds the CAST version, which keeps their depth."""
    segmenter = pipeline("image-segmentation", model=checkpoints["backbone"])
    assert type(segmenter) is CastImageSegmentationPipeline and isinstance(segmenter, ImageSegmentationPipeline)

    sixteen = _segment_masks(segmenter(sixteen_bit_files["sixteen"]))
    eight = _segment_masks(segmenter(sixteen_bit_files["eight"]))
    white = _segment_masks(segmenter(sixteen_bit_files["white"]))

    assert sixteen == eight
    assert sixteen != white


@pytest.fixture
def local_image_server(sixteen_bit_files):
    """An HTTP server on 127.0.0.1 serving the 16-bit files' folder (no network: the loopback interface only)."""
    folder = os.path.dirname(sixteen_bit_files["sixteen"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_image_segmentation_reads_16_bit_urls_and_base64_at_their_depth(
    checkpoints, sixteen_bit_files, local_image_server, monkeypatch
):
    """URLs and base64 strings of a 16-bit file give the file's segments (transformers' loader saturates both)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    segmenter = pipeline("image-segmentation", model=checkpoints["backbone"])
    expected = _segment_masks(segmenter(sixteen_bit_files["sixteen"]))
    with open(sixteen_bit_files["sixteen"], "rb") as file:
        encoded = base64.b64encode(file.read()).decode("ascii")

    assert _segment_masks(segmenter(f"{local_image_server}/sixteen.png")) == expected
    assert _segment_masks(segmenter(encoded)) == expected
    assert _segment_masks(segmenter(f"data:image/png;base64,{encoded}")) == expected
    with pytest.raises(ValueError, match="`image` must be an existing file, an http"):
        segmenter("no such file.png")


def test_image_classification_reads_16_bit_files_like_their_8_bit_versions(checkpoints, sixteen_bit_files):
    classifier = pipeline("image-classification", model=checkpoints["classifier"])
    assert type(classifier) is CastImageClassificationPipeline and isinstance(classifier, ImageClassificationPipeline)

    def scores(name):
        return {p["label"]: p["score"] for p in classifier(sixteen_bit_files[name], function_to_apply="none")}

    sixteen, eight, white = scores("sixteen"), scores("eight"), scores("white")

    assert sixteen == eight
    assert sixteen != pytest.approx(white, abs=1e-4)


@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    """Folders of a tiny Segformer and a tiny ViT classifier, each with its image processor."""
    root = tmp_path_factory.mktemp("other_models")
    torch.manual_seed(0)
    SegformerForSemanticSegmentation(
        SegformerConfig(num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[8], num_attention_heads=[1],
                        decoder_hidden_size=8, num_labels=2)
    ).save_pretrained(root / "segformer")
    SegformerImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(root / "segformer")
    ViTForImageClassification(
        ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=24, num_labels=2)
    ).save_pretrained(root / "vit")
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(root / "vit")
    return {"image-segmentation": str(root / "segformer"), "image-classification": str(root / "vit")}


@pytest.mark.parametrize(
    "task, transformers_class",
    [("image-segmentation", ImageSegmentationPipeline), ("image-classification", ImageClassificationPipeline)],
)
def test_other_models_keep_transformers_pipelines_unchanged(other_models, sixteen_bit_files, task, transformers_class):
    """`import modeling_cast` changes these tasks for CAST models only: other models get transformers' own class,
    which still reads a 16-bit file as the white image it makes of it."""
    runner = pipeline(task, model=other_models[task])
    assert type(runner) is transformers_class

    sixteen, white = runner(sixteen_bit_files["sixteen"]), runner(sixteen_bit_files["white"])

    if task == "image-segmentation":
        assert _segment_masks(sixteen) == _segment_masks(white)
    else:
        assert sixteen == white


def test_hierarchical_segmentation_rejects_bad_arguments(checkpoints, images):
    segmenter = pipeline("hierarchical-segmentation", model=checkpoints["backbone"])

    with pytest.raises(TypeError, match=r"unexpected arguments \['threshold'\]; it accepts `levels`, `render`"):
        segmenter(images[0], threshold=0.5)
    with pytest.raises(ValueError, match=r"`levels` must be in \[-2, 1\]"):
        segmenter(images[0], levels=4)
    with pytest.raises(TypeError, match=r"`render` must be a bool, got str"):
        segmenter(images[0], render="yes")
    with pytest.raises(ValueError, match=r"`render_options` accepts the keys .*, got unknown keys \['color'\]"):
        segmenter(images[0], render_options={"color": "red"})
    with pytest.raises(TypeError, match="`render_options` must be a dict"):
        segmenter(images[0], render_options="overlay")
    with pytest.raises(ValueError, match="`render_options` draw a picture, so they need `render=True`"):
        segmenter(images[0], render=False, render_options={"mode": "overlay"})


# ---------------------------------------------------------------------------------------------------------------
# image-classification and image-feature-extraction
# ---------------------------------------------------------------------------------------------------------------


def test_image_classification_pipeline_batched_equals_unbatched(checkpoints, images):
    classifier = pipeline("image-classification", model=checkpoints["classifier"])
    class_names = set(CastConfig.from_pretrained(checkpoints["classifier"]).id2label.values())

    batched = classifier(images, batch_size=2)
    unbatched = [classifier(image) for image in images]

    for batch_predictions, single_predictions in zip(batched, unbatched):
        assert [p["label"] for p in batch_predictions] == [p["label"] for p in single_predictions]
        assert [p["score"] for p in batch_predictions] == pytest.approx([p["score"] for p in single_predictions])
    for predictions in batched:
        assert {prediction["label"] for prediction in predictions} <= class_names
        assert sum(prediction["score"] for prediction in predictions) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["backbone", "classifier"])
def test_image_feature_extraction_pipeline_batched_equals_unbatched(checkpoints, images, kind):
    extractor = pipeline("image-feature-extraction", model=checkpoints[kind])
    hidden_size = tiny_config_kwargs()["hidden_size"]

    pooled_batched = extractor(images, batch_size=2, pool=True, return_tensors=True)
    pooled_unbatched = [extractor(image, pool=True, return_tensors=True) for image in images]
    tokens = extractor(images[0])

    for batch_features, single_features in zip(pooled_batched, pooled_unbatched):
        assert single_features.shape == (1, hidden_size)
        torch.testing.assert_close(batch_features, single_features)
    assert np.asarray(tokens).shape[0] == 1 and np.asarray(tokens).shape[-1] == hidden_size


@pytest.mark.parametrize("task", ["image-segmentation", "image-classification", "image-feature-extraction"])
def test_pipeline_loads_without_asking_to_run_custom_code(checkpoints, monkeypatch, task):
    """Saved folders carry remote code for users without this package; with it imported, building a standard
    pipeline must not stop at transformers' "run the custom code? [y/N]" prompt (it guesses a video processor from
    the image processor's auto_map unless CAST declares that it has none)."""
    prompts = []
    monkeypatch.setattr("builtins.input", lambda *args: prompts.append(args) or "n")
    folder = checkpoints["classifier" if task == "image-classification" else "backbone"]
    pipeline(task, model=folder)
    assert prompts == []


@pytest.mark.parametrize("task", ["image-segmentation", "hierarchical-segmentation", "image-classification"])
def test_half_precision_pipelines_run(tmp_path, task):
    """bf16 models in every pipeline: the processor returns float32 `pixel_values`, the model casts them."""
    model = CastForImageClassification(CastConfig(**tiny_config_kwargs())).eval()
    model.save_pretrained(tmp_path)
    CastImageProcessor(size={"height": 32, "width": 32}, n_segments=12).save_pretrained(tmp_path)
    runner = pipeline(task, model=str(tmp_path), dtype=torch.bfloat16)
    assert runner.model.dtype == torch.bfloat16
    assert runner(Image.fromarray(smooth_image(40, 48, 0)))


@pytest.mark.parametrize("task", ["image-segmentation", "hierarchical-segmentation"])
def test_segmentation_pipelines_load_a_classifier_folder_with_its_head_so_it_can_adapt(checkpoints, images, task):
    # A classifier's folder loads its head (test-time adaptation optimizes the prediction); a backbone folder still
    # loads the bare model; without adaptation the classifier's segments are the backbone's of the same weights.
    segmenter = pipeline(task, model=checkpoints["classifier"])
    assert type(segmenter.model) is CastForImageClassification
    assert type(pipeline(task, model=checkpoints["backbone"]).model) is CastModel

    adapted = segmenter(images[0], adaptation_steps=2)
    plain = segmenter(images[0])
    annotation = adapted[0] if task == "image-segmentation" else adapted
    assert annotation["adaptation"]["steps"] == 2 and len(annotation["adaptation"]["losses"]) == 2
    backbone = CastModel.from_pretrained(checkpoints["classifier"]).eval()
    reference = pipeline(task, model=backbone, image_processor=segmenter.image_processor)(images[0])
    if task == "image-segmentation":
        assert [(item["label"], _mask_array(item["mask"]).tobytes()) for item in plain] == [
            (item["label"], _mask_array(item["mask"]).tobytes()) for item in reference
        ]
    else:
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(plain["levels"], reference["levels"]))
