"""Property-based tests (hypothesis) of the invariants users rely on (issue 17): the processor never crashes on a
valid image and returns contiguous ids; an image's outputs do not depend on its batch-mates; every level of the
hierarchy nests in the next; post-processed masks cover every pixel exactly once at any target size; save/load
round trips are exact; bad settings always give a ValueError/TypeError naming the argument.

Example counts are bounded and the runs derandomized, so the suite stays fast and CI sees the same examples every
time. Inputs are drawn as shapes, dtypes and seeds; the pixels and maps come from numpy generators."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from conftest import tiny_config_kwargs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeling_cast import CastConfig, CastModel
from processing import CastImageProcessor


FAST = settings(
    max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
MODEL_SIZE = 32
MANY_IDS = 200


def _seeds_available() -> bool:
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2, "ximgproc")


METHODS = ["slic", "seeds"] if _seeds_available() else ["slic"]


@functools.lru_cache(maxsize=1)
def _model() -> CastModel:
    torch.manual_seed(0)
    # a token budget above the largest id the generated maps hold (the "many" maps draw ids below 200)
    return CastModel(CastConfig(**tiny_config_kwargs(max_superpixel_tokens=MANY_IDS))).eval()


def _image(height: int, width: int, dtype: str, channels: int | None, seed: int) -> np.ndarray:
    """A valid image of that size and pixel type: smooth blobs plus noise, so superpixels have content to follow."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    unit = np.clip(rng.random((1, 1) + shape[2:]) + rng.normal(0, 0.2, size=shape), 0, 1)
    if dtype == "uint8":
        return np.rint(unit * 255).astype(np.uint8)
    if dtype == "uint16":
        return np.rint(unit * 65535).astype(np.uint16)
    if dtype == "bool":
        return unit > 0.5
    return unit.astype(dtype)  # floats in [0, 1]


images = st.tuples(
    st.integers(1, 80),
    st.integers(1, 80),
    st.sampled_from(["uint8", "uint16", "bool", "float32", "float64"]),
    st.sampled_from([None, 1, 3, 4]),
    st.integers(0, 2**16),
)


@FAST
@given(image=images, method=st.sampled_from(METHODS), n_segments=st.integers(1, 300))
def test_processor_never_crashes_on_a_valid_image_and_ids_are_contiguous(image, method, n_segments):
    height, width, dtype, channels, seed = image
    pixels = _image(height, width, dtype, channels, seed)
    processor = CastImageProcessor(
        size={"height": MODEL_SIZE, "width": MODEL_SIZE}, n_segments=n_segments, superpixel_method=method
    )
    layout = None if channels is None else "channels_last"
    outputs = processor(pixels, input_data_format=layout, do_rescale=not dtype.startswith("float"), return_tensors="np")
    pixel_values, superpixels = outputs["pixel_values"], outputs["superpixels"]
    assert pixel_values.shape == (1, 3, MODEL_SIZE, MODEL_SIZE) and pixel_values.dtype == np.float32
    assert np.isfinite(pixel_values).all()
    assert superpixels.shape == (1, MODEL_SIZE, MODEL_SIZE) and superpixels.dtype == np.int64
    np.testing.assert_array_equal(np.unique(superpixels), np.arange(superpixels.max() + 1))


@FAST
@given(
    cells=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    method=st.sampled_from(METHODS),
    n_segments=st.integers(1, 400),
    seed=st.integers(0, 2**16),
)
def test_processor_without_resizing_never_crashes_on_small_or_elongated_images(cells, method, n_segments, seed):
    """Unresized images reach the superpixel back-ends at their own size (SEEDS used to crash on those)."""
    height, width = cells[0] * 8, cells[1] * 8
    processor = CastImageProcessor(do_resize=False, n_segments=n_segments, superpixel_method=method)
    superpixels = processor(_image(height, width, "uint8", 3, seed), return_tensors="np")["superpixels"]
    assert superpixels.shape == (1, height, width)
    np.testing.assert_array_equal(np.unique(superpixels), np.arange(superpixels.max() + 1))


def _superpixel_map(kind: str, seed: int) -> torch.Tensor:
    """One model-size map: one id, blocks with contiguous ids, blocks whose ids have holes, or many small cells."""
    rng = np.random.default_rng(seed)
    if kind == "one id":
        return torch.zeros(MODEL_SIZE, MODEL_SIZE, dtype=torch.long)
    cell = {"blocks": 8, "holes": 8, "many": 2}[kind]
    grid = MODEL_SIZE // cell
    ids = rng.integers(0, {"blocks": 6, "holes": 6, "many": MANY_IDS}[kind], size=(grid, grid))
    if kind == "holes":
        ids = ids * 7 + 3  # ids with gaps, none of them 0
    return torch.from_numpy(np.kron(ids, np.ones((cell, cell), dtype=np.int64)))


batches = st.lists(
    st.tuples(st.sampled_from(["one id", "blocks", "holes", "many"]), st.integers(0, 2**16)), min_size=1, max_size=3
)


def _check_nested(hierarchy: torch.Tensor) -> None:
    """Each segment of a level lies inside exactly one segment of the next, coarser level."""
    for fine, coarse in zip(hierarchy[:-1], hierarchy[1:]):
        pairs = torch.unique(torch.stack([fine.flatten(), coarse.flatten()]), dim=1)
        assert pairs.shape[1] == torch.unique(fine).numel()


@settings(FAST, max_examples=12)
@given(batch=batches, position=st.integers(0, 2))
def test_outputs_do_not_depend_on_batch_mates_and_levels_nest(batch, position):
    model = _model()
    generator = torch.Generator().manual_seed(sum(seed for _, seed in batch))
    pixel_values = torch.randn(len(batch), 3, MODEL_SIZE, MODEL_SIZE, generator=generator)
    superpixels = torch.stack([_superpixel_map(kind, seed) for kind, seed in batch])
    with torch.no_grad():
        together = model(pixel_values, superpixels)
        index = position % len(batch)
        alone = model(pixel_values[index : index + 1], superpixels[index : index + 1])
    torch.testing.assert_close(together.pooler_output[index : index + 1], alone.pooler_output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        together.last_hidden_state[index : index + 1], alone.last_hidden_state, atol=1e-5, rtol=1e-5
    )
    assert torch.equal(together.hierarchy[index : index + 1], alone.hierarchy)
    for hierarchy in together.hierarchy:
        _check_nested(hierarchy)


@settings(FAST, max_examples=12)
@given(
    kind_seed=st.tuples(st.sampled_from(["one id", "blocks", "holes", "many"]), st.integers(0, 2**16)),
    target_size=st.tuples(st.integers(1, 120), st.integers(1, 120)),
    level=st.integers(-2, 1),
)
def test_post_processed_masks_cover_every_pixel_once_at_any_target_size(kind_seed, target_size, level):
    model = _model()
    processor = CastImageProcessor(size={"height": MODEL_SIZE, "width": MODEL_SIZE})
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, MODEL_SIZE, MODEL_SIZE), _superpixel_map(*kind_seed)[None])
    (panoptic,) = processor.post_process_panoptic_segmentation(outputs, target_sizes=[target_size], level=level)
    segmentation = panoptic["segmentation"]
    assert segmentation.shape == target_size
    ids = [segment["id"] for segment in panoptic["segments_info"]]
    assert len(ids) == len(set(ids)) and set(torch.unique(segmentation).tolist()) == set(ids)
    (levels,) = processor.post_process_hierarchical_segmentation(outputs, target_sizes=[target_size])
    assert levels.shape == (2, *target_size)
    _check_nested(levels)


processor_settings = st.fixed_dictionaries(
    {
        "n_segments": st.integers(1, 500),
        "compactness": st.floats(0.01, 100, allow_nan=False),
        "superpixel_method": st.sampled_from(METHODS),
        "patch_size": st.sampled_from([4, 8]),
        "segmentation_level": st.integers(-3, 3),
        "do_reduce_labels": st.booleans(),
        "size": st.sampled_from([{"height": 32, "width": 32}, {"height": 16, "width": 48}]),
    }
)


@settings(FAST, max_examples=10)
@given(processor_kwargs=processor_settings, config_seed=st.integers(0, 2**16))
def test_save_load_round_trips_are_exact(tmp_path_factory, processor_kwargs, config_seed):
    folder = tmp_path_factory.mktemp("round-trip")
    processor = CastImageProcessor(**processor_kwargs)
    processor.save_pretrained(folder)
    reloaded = CastImageProcessor.from_pretrained(folder)
    assert reloaded.to_dict() == processor.to_dict()
    image = _image(24, 40, "uint8", 3, config_seed)
    before, after = processor(image, return_tensors="np"), reloaded(image, return_tensors="np")
    np.testing.assert_array_equal(before["superpixels"], after["superpixels"])
    np.testing.assert_array_equal(before["pixel_values"], after["pixel_values"])
    rng = np.random.default_rng(config_seed)
    config = CastConfig(**tiny_config_kwargs(
        num_segments=sorted(rng.choice(np.arange(2, 20), size=2, replace=False).tolist(), reverse=True),
        assignment_temperature=float(rng.uniform(0.05, 1.0)),
    ))
    config.save_pretrained(folder)
    assert CastConfig.from_pretrained(folder).to_dict() == config.to_dict()


bad_settings = st.one_of(
    st.tuples(st.just("n_segments"), st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3), st.booleans())),
    st.tuples(st.just("patch_size"), st.one_of(st.integers(max_value=0), st.floats(), st.booleans())),
    st.tuples(
        st.just("compactness"),
        st.one_of(st.floats(max_value=0), st.just(float("nan")), st.just(float("inf")), st.text(max_size=3)),
    ),
    st.tuples(st.just("superpixel_method"), st.one_of(st.text(max_size=6), st.integers())),
    st.tuples(st.just("size"), st.fixed_dictionaries({"height": st.integers(max_value=0), "width": st.just(32)})),
)


@FAST
@given(bad=bad_settings)
def test_bad_settings_always_raise_errors_naming_the_argument(bad):
    name, value = bad
    if name == "superpixel_method" and value in METHODS:
        return  # a valid method drawn by chance
    with pytest.raises((ValueError, TypeError), match=f"`{name}"):
        CastImageProcessor(**{name: value})
    with pytest.raises((ValueError, TypeError), match=f"`{name}"):
        CastImageProcessor(size={"height": 32, "width": 32})(np.zeros((8, 8, 3), np.uint8), **{name: value})
