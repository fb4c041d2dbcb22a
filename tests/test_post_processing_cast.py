# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.post_processing_cast`: the post-processing methods of `CastImageProcessor` (hierarchical,
semantic, panoptic and instance segmentation), their one validator and the helpers behind them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import smooth_image, tiny_config_kwargs
from transformers.modeling_outputs import SemanticSegmenterOutput

from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor, CastModel
from processing import post_processing_cast
from processing.post_processing_cast import nearest_resize

# Original sizes of the test images: taller, wider, smaller and larger than the 32x32 model input.
IMAGE_SIZES = [(40, 48), (30, 70), (64, 20)]
NUM_SEGMENTS = tiny_config_kwargs()["num_segments"]  # [6, 3]: level 0 (finest) and level 1 (coarsest)


def _processor(**kwargs) -> CastImageProcessor:
    return CastImageProcessor(size={"height": 32, "width": 32}, n_segments=12, **kwargs)


@pytest.fixture(scope="module")
def classifier_outputs():
    """Outputs of a tiny image classifier (2-D `logits` plus the hierarchy) for three images of different sizes."""
    torch.manual_seed(0)
    model = CastForImageClassification(CastConfig(**tiny_config_kwargs())).eval()
    images = [smooth_image(height, width, seed) for seed, (height, width) in enumerate(IMAGE_SIZES)]
    inputs = _processor()(images, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs)


def _assert_nested(fine: torch.Tensor, coarse: torch.Tensor) -> None:
    """Every id of `fine` covers pixels of exactly one id of `coarse`."""
    pairs = torch.unique(torch.stack([fine.flatten(), coarse.flatten()]), dim=1)
    assert pairs.shape[1] == torch.unique(fine).numel()


# ---------------------------------------------------------------------------------------------------------------
# post_process_hierarchical_segmentation
# ---------------------------------------------------------------------------------------------------------------


def test_hierarchical_segmentation_types_and_shapes_for_several_sizes(classifier_outputs):
    results = _processor().post_process_hierarchical_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES)

    assert isinstance(results, list) and len(results) == len(IMAGE_SIZES)
    for segmentation, (height, width) in zip(results, IMAGE_SIZES):
        assert isinstance(segmentation, torch.Tensor) and segmentation.dtype == torch.int64
        assert segmentation.shape == (len(NUM_SEGMENTS), height, width)
        for level, num_segments in enumerate(NUM_SEGMENTS):
            assert 0 <= segmentation[level].min() and segmentation[level].max() < num_segments


def test_hierarchical_segmentation_default_size_is_model_output(classifier_outputs):
    results = _processor().post_process_hierarchical_segmentation(classifier_outputs)

    for index, segmentation in enumerate(results):
        assert torch.equal(segmentation, classifier_outputs.hierarchy[index])


def test_hierarchical_segmentation_nesting_holds_at_original_resolution(classifier_outputs):
    results = _processor().post_process_hierarchical_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES)

    for segmentation in results:
        for fine, coarse in zip(segmentation[:-1], segmentation[1:]):
            _assert_nested(fine, coarse)


def test_hierarchical_segmentation_levels_select_and_order(classifier_outputs):
    processor = _processor()
    every_level = processor.post_process_hierarchical_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES)

    coarsest = processor.post_process_hierarchical_segmentation(
        classifier_outputs, target_sizes=IMAGE_SIZES, levels=-1
    )
    reordered = processor.post_process_hierarchical_segmentation(
        classifier_outputs, target_sizes=IMAGE_SIZES, levels=[1, 0]
    )

    for full, single, swapped in zip(every_level, coarsest, reordered):
        assert single.shape == (1, *full.shape[1:])
        assert torch.equal(single[0], full[-1])
        assert torch.equal(swapped, full.flip(0))


def test_hierarchical_segmentation_scores_describe_every_segment(classifier_outputs):
    processor = _processor()
    results = processor.post_process_hierarchical_segmentation(
        classifier_outputs, target_sizes=IMAGE_SIZES, return_scores=True
    )
    plain = processor.post_process_hierarchical_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES)

    for index, (result, segmentation, (height, width)) in enumerate(zip(results, plain, IMAGE_SIZES)):
        assert set(result) == {"segmentation", "segments_info"}
        assert torch.equal(result["segmentation"], segmentation)
        assert len(result["segments_info"]) == len(NUM_SEGMENTS)
        resized_scores = nearest_resize(classifier_outputs.hierarchy_scores[index], (height, width))
        for level, level_info in enumerate(result["segments_info"]):
            level_map = segmentation[level]
            assert [segment["id"] for segment in level_info] == torch.unique(level_map).tolist()
            assert sum(segment["area"] for segment in level_info) == height * width
            for segment in level_info:
                pixels = level_map == segment["id"]
                assert segment["level"] == level
                assert isinstance(segment["score"], float) and isinstance(segment["area"], int)
                assert segment["area"] == int(pixels.sum())
                assert segment["score"] == pytest.approx(float(resized_scores[level][pixels].double().mean()))
                assert 0.0 < segment["score"] <= 1.0


def test_hierarchical_segmentation_scores_report_non_negative_levels(classifier_outputs):
    result = _processor().post_process_hierarchical_segmentation(classifier_outputs, levels=-1, return_scores=True)[0]

    assert {segment["level"] for segment in result["segments_info"][0]} == {len(NUM_SEGMENTS) - 1}


def test_hierarchical_segmentation_accepts_plain_mappings_and_tensor_sizes(classifier_outputs):
    outputs = {"hierarchy": classifier_outputs.hierarchy}
    expected = _processor().post_process_hierarchical_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES)

    results = _processor().post_process_hierarchical_segmentation(outputs, target_sizes=torch.tensor(IMAGE_SIZES))

    for result, reference in zip(results, expected):
        assert torch.equal(result, reference)


def test_nearest_resize_repeats_pixels_for_integer_factors():
    maps = torch.arange(2 * 3 * 4).view(2, 3, 4)

    upscaled = nearest_resize(maps, (6, 12))

    assert torch.equal(upscaled, maps.repeat_interleave(2, dim=1).repeat_interleave(3, dim=2))
    assert torch.equal(nearest_resize(upscaled, (3, 4)), maps)


@pytest.mark.parametrize(
    "target_sizes, error, message",
    [
        (IMAGE_SIZES[:2], ValueError, r"`target_sizes` must hold one \(height, width\) per image, got 2 sizes"),
        (IMAGE_SIZES + [(8, 8)], ValueError, r"`target_sizes` must hold one .* got 4 sizes for a batch of 3"),
        ([(40, 48), (0, 5), (8, 8)], ValueError, r"each entry of `target_sizes` .* positive ints, got \(0, 5\)"),
        ([(40, 48), (30,), (8, 8)], ValueError, r"each entry of `target_sizes`"),
        ("40x48", TypeError, r"`target_sizes` must be a list of \(height, width\) pairs, got str"),
    ],
)
def test_hierarchical_segmentation_rejects_bad_target_sizes(classifier_outputs, target_sizes, error, message):
    with pytest.raises(error, match=message):
        _processor().post_process_hierarchical_segmentation(classifier_outputs, target_sizes=target_sizes)


@pytest.mark.parametrize(
    "levels, error, message",
    [
        (2, ValueError, r"`levels` must be in \[-2, 1\] for a hierarchy of 2 levels, got 2"),
        ([0, -3], ValueError, r"`levels` must be in \[-2, 1\] .* got -3"),
        ([], ValueError, r"`levels` must name at least one level"),
        (1.0, TypeError, r"`levels` must be an int or a list of ints, got float"),
        ([0, True], TypeError, r"`levels` must hold ints, got bool"),
    ],
)
def test_hierarchical_segmentation_rejects_bad_levels(classifier_outputs, levels, error, message):
    with pytest.raises(error, match=message):
        _processor().post_process_hierarchical_segmentation(classifier_outputs, levels=levels)


def test_hierarchical_segmentation_rejects_outputs_without_hierarchy(classifier_outputs):
    processor = _processor()
    with pytest.raises(ValueError, match=r"`outputs` must carry a `hierarchy`.*got an output with keys \['logits'\]"):
        processor.post_process_hierarchical_segmentation({"logits": classifier_outputs.logits})
    with pytest.raises(ValueError, match=r"`outputs` must carry `hierarchy_scores`"):
        processor.post_process_hierarchical_segmentation(
            {"hierarchy": classifier_outputs.hierarchy}, return_scores=True
        )
    with pytest.raises(TypeError, match=r"`outputs\['hierarchy'\]` must hold integer segment ids, got dtype"):
        processor.post_process_hierarchical_segmentation({"hierarchy": classifier_outputs.hierarchy.float()})
    with pytest.raises(ValueError, match=r"`outputs\['hierarchy'\]` must have shape \(batch_size, num_levels"):
        processor.post_process_hierarchical_segmentation({"hierarchy": classifier_outputs.hierarchy[0]})
    with pytest.raises(ValueError, match=r"must hold non-negative segment ids, got minimum -1"):
        processor.post_process_hierarchical_segmentation({"hierarchy": classifier_outputs.hierarchy - 1})


def test_post_processing_checks_the_hierarchy_once_per_call(classifier_outputs, monkeypatch):
    calls = []
    checked_hierarchy = post_processing_cast._checked_hierarchy

    def counting(outputs):
        calls.append(outputs)
        return checked_hierarchy(outputs)

    monkeypatch.setattr(post_processing_cast, "_checked_hierarchy", counting)
    processor = _processor()
    processor.post_process_hierarchical_segmentation(classifier_outputs, return_scores=True)
    processor.post_process_panoptic_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES)
    processor.post_process_instance_segmentation(classifier_outputs, level=0)

    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------------------------
# post_process_panoptic_segmentation / post_process_instance_segmentation
# ---------------------------------------------------------------------------------------------------------------


def test_panoptic_segmentation_partitions_image_at_coarsest_level(classifier_outputs):
    processor = _processor()
    # the pipeline's default threshold (0.9) and more must not drop any CAST segment
    results = processor.post_process_panoptic_segmentation(
        classifier_outputs, threshold=0.99, mask_threshold=0.99, overlap_mask_area_threshold=0.99,
        target_sizes=IMAGE_SIZES,
    )
    coarsest = processor.post_process_hierarchical_segmentation(
        classifier_outputs, target_sizes=IMAGE_SIZES, levels=-1, return_scores=True
    )

    coarsest_level = len(NUM_SEGMENTS) - 1
    for result, reference, (height, width) in zip(results, coarsest, IMAGE_SIZES):
        segmentation = result["segmentation"]
        assert segmentation.dtype == torch.int64 and segmentation.shape == (height, width)
        assert torch.equal(segmentation, reference["segmentation"][0])
        ids = [segment["id"] for segment in result["segments_info"]]
        assert ids == torch.unique(segmentation).tolist()
        masks = torch.stack([segmentation == segment_id for segment_id in ids])
        assert torch.equal(masks.sum(0), torch.ones(height, width, dtype=torch.int64))
        for segment, described in zip(result["segments_info"], reference["segments_info"][0]):
            assert set(segment) == {"id", "label_id", "was_fused", "score"}
            assert segment["label_id"] == (coarsest_level, segment["id"])
            assert segment["was_fused"] is False
            assert segment["score"] == described["score"]


def test_panoptic_segmentation_level_argument_and_processor_attribute(classifier_outputs):
    per_call = _processor().post_process_panoptic_segmentation(classifier_outputs, level=0)
    from_attribute = _processor(segmentation_level=0).post_process_panoptic_segmentation(classifier_outputs)
    finest = _processor().post_process_hierarchical_segmentation(classifier_outputs, levels=0)

    for call_result, attribute_result, expected in zip(per_call, from_attribute, finest):
        assert torch.equal(call_result["segmentation"], expected[0])
        assert torch.equal(call_result["segmentation"], attribute_result["segmentation"])
        assert call_result["segments_info"] == attribute_result["segments_info"]
        assert {segment["label_id"][0] for segment in call_result["segments_info"]} == {0}


def test_instance_segmentation_matches_panoptic(classifier_outputs):
    processor = _processor()
    panoptic = processor.post_process_panoptic_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES, level=0)

    instance = processor.post_process_instance_segmentation(classifier_outputs, target_sizes=IMAGE_SIZES, level=0)

    for instance_result, panoptic_result in zip(instance, panoptic):
        assert torch.equal(instance_result["segmentation"], panoptic_result["segmentation"])
        assert instance_result["segments_info"] == panoptic_result["segments_info"]


def test_panoptic_segmentation_of_backbone_outputs():
    torch.manual_seed(0)
    model = CastModel(CastConfig(**tiny_config_kwargs())).eval()
    inputs = _processor()(smooth_image(40, 48, seed=5), return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)

    result = _processor().post_process_panoptic_segmentation(outputs, target_sizes=[(40, 48)])[0]

    assert result["segmentation"].shape == (40, 48)
    assert [segment["id"] for segment in result["segments_info"]] == torch.unique(result["segmentation"]).tolist()


def test_panoptic_segmentation_rejects_bad_levels(classifier_outputs):
    with pytest.raises(ValueError, match=r"`level` must be in \[-2, 1\] for a hierarchy of 2 levels, got 2"):
        _processor().post_process_panoptic_segmentation(classifier_outputs, level=2)
    with pytest.raises(TypeError, match=r"`level` must be an int \(0 = finest level, -1 = coarsest\), got list"):
        _processor().post_process_instance_segmentation(classifier_outputs, level=[0])
    with pytest.raises(ValueError, match=r"`segmentation_level` must be in \[-2, 1\] .* got 5"):
        _processor(segmentation_level=5).post_process_panoptic_segmentation(classifier_outputs)


def test_panoptic_segmentation_rejects_bad_target_sizes(classifier_outputs):
    with pytest.raises(ValueError, match=r"`target_sizes` must hold one \(height, width\) per image"):
        _processor().post_process_panoptic_segmentation(classifier_outputs, target_sizes=[(8, 8)])


def test_panoptic_segmentation_of_segmentation_logits_gives_one_segment_per_class():
    logits = torch.full((2, 4, 8, 8), -5.0)
    logits[:, 3, :, :4] = 5.0  # class 3 on the left half, class 1 on the right half
    logits[:, 1, :, 4:] = 5.0
    outputs = SemanticSegmenterOutput(logits=logits)

    results = _processor().post_process_panoptic_segmentation(outputs, target_sizes=[(16, 16), (8, 12)])

    semantic = _processor().post_process_semantic_segmentation(outputs, target_sizes=[(16, 16), (8, 12)])
    for result, class_map in zip(results, semantic):
        assert torch.equal(result["segmentation"], class_map)
        assert [(segment["id"], segment["label_id"]) for segment in result["segments_info"]] == [(1, 1), (3, 3)]
        for segment in result["segments_info"]:
            assert segment["was_fused"] is False and 0.9 < segment["score"] <= 1.0


def test_panoptic_segmentation_explicit_level_selects_hierarchy_over_classes(classifier_outputs):
    outputs = {
        "logits": torch.zeros(3, 4, 32, 32),
        "hierarchy": classifier_outputs.hierarchy,
        "hierarchy_scores": classifier_outputs.hierarchy_scores,
    }

    classes = _processor().post_process_panoptic_segmentation(outputs)
    segments = _processor().post_process_panoptic_segmentation(outputs, level=0)

    assert [segment["label_id"] for segment in classes[0]["segments_info"]] == [0]  # all-zero logits: class 0
    assert torch.equal(segments[0]["segmentation"], classifier_outputs.hierarchy[0, 0])


# ---------------------------------------------------------------------------------------------------------------
# post_process_semantic_segmentation
# ---------------------------------------------------------------------------------------------------------------


def test_semantic_segmentation_of_logits_resizes_bilinearly_then_argmaxes():
    logits = torch.randn(3, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    outputs = SemanticSegmenterOutput(logits=logits)
    processor = _processor()

    resized = processor.post_process_semantic_segmentation(outputs, target_sizes=IMAGE_SIZES)
    native = processor.post_process_semantic_segmentation(outputs)
    with_scores = processor.post_process_semantic_segmentation(
        outputs, target_sizes=IMAGE_SIZES, return_segmentation_scores=True
    )

    for index, (class_map, (height, width)) in enumerate(zip(resized, IMAGE_SIZES)):
        expected_logits = torch.nn.functional.interpolate(
            logits[index : index + 1], size=(height, width), mode="bilinear", align_corners=False
        )[0]
        assert class_map.dtype == torch.int64 and class_map.shape == (height, width)
        assert torch.equal(class_map, expected_logits.argmax(0))
        assert torch.equal(native[index], logits[index].argmax(0))
        assert torch.equal(with_scores[index].segmentation, class_map)
        torch.testing.assert_close(with_scores[index].segmentation_scores, expected_logits)


def test_semantic_segmentation_rejects_outputs_without_segmentation_logits(classifier_outputs):
    message = r"per-pixel class `logits`.*`post_process_hierarchical_segmentation` or `post_process_panoptic"
    with pytest.raises(ValueError, match=message):
        _processor().post_process_semantic_segmentation(classifier_outputs)  # 2-D image-classification logits
    with pytest.raises(ValueError, match=message):
        _processor().post_process_semantic_segmentation({"hierarchy": classifier_outputs.hierarchy})


def test_semantic_segmentation_rejects_bad_target_sizes():
    outputs = SemanticSegmenterOutput(logits=torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"`target_sizes` must hold one \(height, width\) per image, got 3 sizes"):
        _processor().post_process_semantic_segmentation(outputs, target_sizes=[(4, 4)] * 3)


# ---------------------------------------------------------------------------------------------------------------
# segmentation_level: a serialized processor attribute
# ---------------------------------------------------------------------------------------------------------------


def test_segmentation_level_saved_in_preprocessor_config(tmp_path):
    _processor(segmentation_level=0).save_pretrained(tmp_path / "finest")
    _processor().save_pretrained(tmp_path / "default")

    assert json.loads((tmp_path / "finest" / "preprocessor_config.json").read_text())["segmentation_level"] == 0
    assert json.loads((tmp_path / "default" / "preprocessor_config.json").read_text())["segmentation_level"] == -1
    assert CastImageProcessor.from_pretrained(tmp_path / "finest").segmentation_level == 0


def test_segmentation_level_does_not_change_preprocessing():
    image = smooth_image(40, 48, seed=1)
    default = _processor()(image, return_tensors="np")

    per_call = _processor()(image, segmentation_level=0, return_tensors="np")

    for key in ("pixel_values", "superpixels"):
        np.testing.assert_array_equal(per_call[key], default[key])


@pytest.mark.parametrize("value", ["coarsest", 1.0, True, None])
def test_segmentation_level_rejects_non_integers(value):
    with pytest.raises(TypeError, match=r"`segmentation_level` must be an int"):
        _processor(segmentation_level=value)


# ---------------------------------------------------------------------------------------------------------------
# the batched path against a straightforward per-image reference
# ---------------------------------------------------------------------------------------------------------------


def _random_outputs(generator: torch.Generator, batch_size: int, num_segments: list[int], size: tuple[int, int]):
    """A random nested hierarchy (each level's ids are random parents of the level below, on blocks of pixels) and
    CAST-like scores (softmax maxima over a level's segments, hence at least 1 / segments)."""
    height, width = size
    levels, labels = [], None
    for count in num_segments:
        if labels is None:
            block = int(torch.randint(1, 5, (1,), generator=generator))
            grid = torch.randint(0, count, (batch_size, -(-height // block), -(-width // block)), generator=generator)
            labels = grid.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :height, :width]
        else:
            parents = torch.randint(0, count, (batch_size, int(labels.max()) + 1), generator=generator)
            labels = torch.gather(parents, 1, labels.flatten(1)).view(batch_size, height, width)
        levels.append(labels)
    hierarchy = torch.stack(levels, dim=1)
    logits = torch.randn(batch_size, len(num_segments), height, width, max(num_segments), generator=generator)
    scores = logits.softmax(dim=-1).amax(dim=-1)
    return {"hierarchy": hierarchy, "hierarchy_scores": scores}


def _reference_image(outputs: dict, index: int, size: tuple[int, int], levels: list[int]) -> dict:
    """One image, one level at a time: resize the ids and the scores, then count and average at the target size."""
    segmentation = nearest_resize(outputs["hierarchy"][index, levels], size).long()
    scores = nearest_resize(outputs["hierarchy_scores"][index, levels], size)
    segments_info = []
    for level_map, level_scores, level in zip(segmentation, scores, levels):
        info = []
        for segment_id in torch.unique(level_map).tolist():
            pixels = level_map == segment_id
            area = int(pixels.sum())
            score = float(level_scores[pixels].double().sum()) / area
            info.append({"id": segment_id, "level": level, "score": score, "area": area})
        segments_info.append(info)
    return {"segmentation": segmentation, "segments_info": segments_info}


@pytest.mark.parametrize("seed", range(6))
def test_batched_post_processing_equals_per_image_reference(seed):
    generator = torch.Generator().manual_seed(seed)
    batch_size = int(torch.randint(1, 5, (1,), generator=generator))
    input_size = tuple(int(side) for side in torch.randint(4, 40, (2,), generator=generator))
    num_segments = sorted(torch.randint(1, 70, (3,), generator=generator).tolist(), reverse=True)
    outputs = _random_outputs(generator, batch_size, num_segments, input_size)
    # down- and upscaling, odd factors, the input size itself, and a size repeated within the batch
    choices = [input_size, (1, 1), (3, 97), (41, 29), (2 * input_size[0] + 1, input_size[1])]
    target_sizes = [choices[int(index)] for index in torch.randint(0, len(choices), (batch_size,), generator=generator)]
    levels = [-1, 0] if seed % 2 else None
    level_indices = post_processing_cast.resolve_levels(levels, len(num_segments))

    results = _processor().post_process_hierarchical_segmentation(
        outputs, target_sizes=target_sizes, levels=levels, return_scores=True
    )
    plain = _processor().post_process_hierarchical_segmentation(outputs, target_sizes=target_sizes, levels=levels)

    for index, (result, segmentation, size) in enumerate(zip(results, plain, target_sizes)):
        expected = _reference_image(outputs, index, size, level_indices)
        assert torch.equal(result["segmentation"], expected["segmentation"])
        assert torch.equal(segmentation, expected["segmentation"])
        # exact: float64 adds these scores without rounding in either order
        assert result["segments_info"] == expected["segments_info"]


def test_batched_post_processing_handles_sparse_ids():
    # ids far above the pixel count (a user's map) are numbered densely inside, and reported as they are
    hierarchy = torch.tensor([[[[0, 5_000_000], [5_000_000, 7]]]])
    outputs = {"hierarchy": hierarchy, "hierarchy_scores": torch.tensor([[[[0.5, 0.25], [0.75, 1.0]]]])}

    result = _processor().post_process_hierarchical_segmentation(
        outputs, target_sizes=[(4, 2)], return_scores=True
    )[0]

    assert result["segments_info"] == [[
        {"id": 0, "level": 0, "score": 0.5, "area": 2},
        {"id": 7, "level": 0, "score": 1.0, "area": 2},
        {"id": 5_000_000, "level": 0, "score": 0.5, "area": 4},
    ]]


def test_segment_statistics_weights_count_every_output_pixel():
    generator = torch.Generator().manual_seed(0)
    outputs = _random_outputs(generator, 2, [9, 4], (7, 11))
    sizes = [(30, 5), (7, 11)]

    statistics = post_processing_cast.segment_statistics(outputs["hierarchy"], outputs["hierarchy_scores"], sizes)

    for image_statistics, (height, width) in zip(statistics, sizes):
        for level_statistics in image_statistics:
            assert sum(area for _, _, area in level_statistics) == height * width
            assert [segment_id for segment_id, _, _ in level_statistics] == sorted(
                segment_id for segment_id, _, _ in level_statistics
            )


def test_batched_logits_post_processing_equals_per_image_reference():
    generator = torch.Generator().manual_seed(0)
    outputs = SemanticSegmenterOutput(logits=torch.randn(5, 4, 9, 7, generator=generator))
    target_sizes = [(20, 11), (9, 7), (20, 11), (3, 30), (9, 7)]
    processor = _processor()

    semantic = processor.post_process_semantic_segmentation(
        outputs, target_sizes=target_sizes, return_segmentation_scores=True
    )
    panoptic = processor.post_process_panoptic_segmentation(outputs, target_sizes=target_sizes)

    for index, size in enumerate(target_sizes):
        logits = outputs.logits[index:index + 1]
        resized = logits[0] if size == (9, 7) else torch.nn.functional.interpolate(
            logits, size=size, mode="bilinear", align_corners=False
        )[0]
        assert torch.equal(semantic[index]["segmentation_scores"], resized)
        assert torch.equal(semantic[index]["segmentation"], resized.argmax(dim=0))
        classes, segments_info = post_processing_cast.class_segments(resized)
        assert torch.equal(panoptic[index]["segmentation"], classes)
        assert panoptic[index]["segments_info"] == segments_info
