# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of `processing.image_processing_cast` (CastImageProcessor) and its superpixel back-ends.

Part 1 runs transformers' own `ImageProcessingTestMixin` (from the installed version's sdist) on the processor.
Part 2 checks what a CAST user relies on: outputs, superpixel ids, input formats, official SLIC parity, SEEDS,
user-supplied superpixels, serialization and the errors raised for bad input.
"""

import importlib.util
import json
import sys
import unittest

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data
from skimage import transform as skimage_transform
from transformers import AutoImageProcessor, PretrainedConfig
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


from conftest import SHARED_REFERENCE, run_remote_code, smooth_image  # conftest also sets HF_HUB_OFFLINE, import paths
from hf_common_tests import import_common
from processing import CastImageProcessor, superpixels_cast


common = import_common("test_image_processing_common")

SMALL_SIZE = {"height": 32, "width": 32}
SMALL_SEGMENTS = 8
# The official reference vectors (../shared beside the repository); only the parity test reads them.
REFERENCE_FILE = SHARED_REFERENCE / "small_224.safetensors"
# SLIC superpixel counts of the official small_224 case (astronaut, chelsea), see ../shared/reference/README.md.
OFFICIAL_SLIC_COUNTS = {"astronaut": 129, "chelsea": 169}


def _seeds_available() -> bool:
    if importlib.util.find_spec("cv2") is None:
        return False
    import cv2

    return hasattr(cv2, "ximgproc")


requires_seeds = pytest.mark.skipif(
    not _seeds_available(),
    reason='SEEDS needs OpenCV with contrib modules: pip install "cast-transformers[seeds]"',
)


def _small_processor(**kwargs) -> CastImageProcessor:
    kwargs.setdefault("size", SMALL_SIZE)
    kwargs.setdefault("n_segments", SMALL_SEGMENTS)
    return CastImageProcessor(**kwargs)


def _random_image(height: int = 40, width: int = 48, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Channels-last uint8 image with smooth color blobs (so superpixels follow content) plus noise."""
    return smooth_image(height, width, seed, channels=channels, cells=4, noise_std=8)


def _assert_same_outputs(first, second) -> None:
    np.testing.assert_array_equal(np.asarray(first["pixel_values"]), np.asarray(second["pixel_values"]))
    np.testing.assert_array_equal(np.asarray(first["superpixels"]), np.asarray(second["superpixels"]))


# ---------------------------------------------------------------------------------------------------------------
# Part 1: transformers' common image-processor tests
# ---------------------------------------------------------------------------------------------------------------


class _ProcessorOnlyConfig(PretrainedConfig):
    """Stand-in config so that `AutoImageProcessor` can resolve the processor without the modeling package."""

    model_type = "cast_image_processor_test"


class CastImageProcessingTester(common.ImageProcessingTester):
    def __init__(self, parent, **kwargs):
        kwargs.setdefault("min_resolution", 30)
        kwargs.setdefault("max_resolution", 64)
        kwargs.setdefault("size", SMALL_SIZE)
        kwargs.setdefault("n_segments", SMALL_SEGMENTS)
        kwargs.setdefault("compactness", 10.0)
        kwargs.setdefault("superpixel_method", "slic")
        kwargs.setdefault("patch_size", 8)
        kwargs.setdefault("do_resize", True)
        kwargs.setdefault("do_normalize", True)
        kwargs.setdefault("image_mean", IMAGENET_DEFAULT_MEAN)
        kwargs.setdefault("image_std", IMAGENET_DEFAULT_STD)
        kwargs.setdefault("segmentation_level", -1)
        # classes of the segmentation-head logits fed to the semantic post-processing tests
        kwargs.setdefault("num_labels", 5)
        super().__init__(parent, **kwargs)

    def _get_image_processing_classes(self):
        return {"pil": CastImageProcessor}


class CastImageProcessingTest(
    common.PostProcessSemanticSegmentationTestMixin, common.ImageProcessingTestMixin, unittest.TestCase
):
    image_processor_tester_class = CastImageProcessingTester
    test_cast_dtype = True  # runs test_cast_dtype_device: `.to(float16)` must cast pixels, not superpixel ids

    @classmethod
    def setUpClass(cls):
        AutoImageProcessor.register(
            _ProcessorOnlyConfig, image_processor_classes={"pil": CastImageProcessor}, exist_ok=True
        )

    @unittest.skip(
        reason="in-tree transformers policy for new models; CAST is an external package and torchvision is not a "
        "dependency (the PIL backend is the only one)"
    )
    def test_new_models_require_torchvision_backend(self):
        pass

    def test_cast_dtype_keeps_superpixels_int64(self):
        processor = CastImageProcessor(**self.image_processor_dict)
        images = self.image_processor_tester.prepare_image_inputs(equal_resolution=False, torchify=True)
        encoding = processor(images, return_tensors="pt").to(torch.float16)
        self.assertEqual(encoding["pixel_values"].dtype, torch.float16)
        self.assertEqual(encoding["superpixels"].dtype, torch.int64)


# ---------------------------------------------------------------------------------------------------------------
# Part 2: CAST-specific behavior
# ---------------------------------------------------------------------------------------------------------------


def test_processor_outputs_pixel_values_and_superpixels():
    processor = _small_processor()
    images = [_random_image(seed=0), _random_image(seed=1)]

    batch = processor(images, return_tensors="pt")

    assert list(batch.keys()) == ["pixel_values", "superpixels"] == processor.model_input_names
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["superpixels"].shape == (2, 32, 32)
    assert batch["superpixels"].dtype == torch.int64

    as_numpy = processor(images, return_tensors="np")
    assert as_numpy["pixel_values"].dtype == np.float32
    assert as_numpy["superpixels"].dtype == np.int64

    as_lists = processor(images)
    assert isinstance(as_lists["superpixels"], list) and len(as_lists["superpixels"]) == 2
    assert as_lists["superpixels"][0].shape == (32, 32)


def test_processor_pixel_values_are_resized_rescaled_normalized():
    image = _random_image(height=50, width=70)
    processor = _small_processor()

    pixel_values = processor(image, return_tensors="np")["pixel_values"][0]

    resized = np.asarray(Image.fromarray(image).resize((32, 32), Image.Resampling.BILINEAR)) / 255.0
    expected = (resized - np.array(IMAGENET_DEFAULT_MEAN)) / np.array(IMAGENET_DEFAULT_STD)
    np.testing.assert_allclose(pixel_values, np.moveaxis(expected, -1, 0), atol=1e-5)


def test_superpixels_ids_contiguous_from_zero():
    processor = _small_processor(size={"height": 64, "width": 64}, n_segments=24)
    images = [_random_image(height=64, width=64, seed=seed) for seed in range(3)]

    for label_map in processor(images, return_tensors="np")["superpixels"]:
        ids = np.unique(label_map)
        assert ids.size > 1
        np.testing.assert_array_equal(ids, np.arange(ids.size))


def test_superpixels_deterministic_across_calls_and_instances():
    images = [_random_image(seed=3), _random_image(height=36, width=60, seed=4)]

    first = _small_processor()(images, return_tensors="np")
    second = _small_processor()(images, return_tensors="np")

    _assert_same_outputs(first, second)


def test_processor_batch_matches_single_images():
    images = [_random_image(seed=5), _random_image(height=64, width=40, seed=6)]
    processor = _small_processor()

    batch = processor(images, return_tensors="np")

    for index, image in enumerate(images):
        alone = processor(image, return_tensors="np")
        np.testing.assert_array_equal(batch["pixel_values"][index], alone["pixel_values"][0])
        np.testing.assert_array_equal(batch["superpixels"][index], alone["superpixels"][0])


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_superpixels_photo_count_near_n_segments(name):
    processor = CastImageProcessor()  # defaults: 224x224, 196 SLIC segments
    image = getattr(skimage_data, name)()

    label_map = processor(image, return_tensors="np")["superpixels"][0]

    num_superpixels = label_map.max() + 1
    # The retry rule guarantees at least n_segments // 2; SLIC overshoots n_segments only slightly.
    assert processor.n_segments // 2 <= num_superpixels <= 1.25 * processor.n_segments
    assert np.unique(label_map).size == num_superpixels


@pytest.mark.parametrize("index, name", [(0, "astronaut"), (1, "chelsea")])
def test_slic_matches_official_reference(index, name):
    # The official small_224 case: skimage-resized (bilinear, anti-aliased) float image, SLIC 196 / compactness 10.
    image = skimage_transform.resize(getattr(skimage_data, name)(), (224, 224), order=1, anti_aliasing=True)
    processor = CastImageProcessor(do_resize=False, do_rescale=False)

    outputs = processor(image, return_tensors="np")

    assert outputs["superpixels"][0].max() + 1 == OFFICIAL_SLIC_COUNTS[name]
    if not REFERENCE_FILE.exists():
        pytest.skip(reason=f"official reference vectors not found at {REFERENCE_FILE}; counts checked only")
    from safetensors import safe_open

    with safe_open(str(REFERENCE_FILE), framework="np") as reference:
        np.testing.assert_array_equal(outputs["superpixels"][0], reference.get_tensor("inputs.superpixels")[index])
        np.testing.assert_allclose(
            outputs["pixel_values"][0], reference.get_tensor("inputs.pixel_values")[index], atol=1e-6
        )


def test_processor_grayscale_inputs_become_rgb():
    gray = _random_image(channels=1)[..., 0]
    processor = _small_processor()
    expected = processor(np.repeat(gray[..., None], 3, axis=-1), return_tensors="np")

    for grayscale_input in (Image.fromarray(gray), gray, gray[..., None], gray[None], torch.from_numpy(gray)):
        outputs = processor(grayscale_input, return_tensors="np")
        assert outputs["pixel_values"].shape == (1, 3, 32, 32)
        _assert_same_outputs(outputs, expected)


def test_processor_rgba_inputs_drop_alpha():
    rgb = _random_image()
    alpha = np.random.default_rng(7).integers(0, 256, size=rgb.shape[:2], dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
    processor = _small_processor()
    expected = processor(rgb, return_tensors="np")

    for rgba_input in (Image.fromarray(rgba), rgba, np.moveaxis(rgba, -1, 0)):
        _assert_same_outputs(processor(rgba_input, return_tensors="np"), expected)


def test_processor_sixteen_bit_inputs_match_eight_bit():
    rgb = _random_image()
    gray = rgb[..., 0]
    # 16-bit versions of the same pictures, with low bits that round away (v = 257 * u + r, |r| < 128)
    low_bits = np.random.default_rng(8).integers(0, 100, size=rgb.shape)
    rgb16 = (rgb.astype(np.uint32) * 257 + low_bits).clip(0, 65535).astype(np.uint16)
    gray16 = rgb16[..., 0]
    processor = _small_processor()
    expected_rgb = processor(rgb, return_tensors="np")
    expected_gray = processor(Image.fromarray(gray), return_tensors="np")

    _assert_same_outputs(processor(rgb16, return_tensors="np"), expected_rgb)
    _assert_same_outputs(
        processor(torch.from_numpy(np.moveaxis(rgb16, -1, 0).copy()), return_tensors="np"), expected_rgb
    )
    pil_sixteen_bit = Image.fromarray(gray16)
    assert pil_sixteen_bit.mode == "I;16"
    _assert_same_outputs(processor(pil_sixteen_bit, return_tensors="np"), expected_gray)
    pil_thirty_two_bit = Image.fromarray(gray16.astype(np.int32))
    assert pil_thirty_two_bit.mode == "I"
    _assert_same_outputs(processor(pil_thirty_two_bit, return_tensors="np"), expected_gray)


def test_processor_torch_and_channels_first_inputs_match_pil():
    image = _random_image()
    processor = _small_processor()
    expected = processor(Image.fromarray(image), return_tensors="np")

    channels_first = np.ascontiguousarray(np.moveaxis(image, -1, 0))
    for same_image in (image, channels_first, torch.from_numpy(channels_first), torch.from_numpy(image)):
        _assert_same_outputs(processor(same_image, return_tensors="np"), expected)
    # a 4-D torch batch is split into its images
    batch = processor(torch.from_numpy(np.stack([channels_first, channels_first])), return_tensors="np")
    assert batch["superpixels"].shape == (2, 32, 32)


def test_processor_float_images_with_do_rescale_false_match_uint8():
    image = _random_image()
    processor = _small_processor()

    as_float = processor(image.astype(np.float32) / 255, do_rescale=False, return_tensors="np")

    _assert_same_outputs(as_float, processor(image, return_tensors="np"))


def test_processor_fractional_float_images_are_resized_in_float_precision():
    """The float-image contract: floats are in [0, 255] with the defaults and in [0, 1] with `do_rescale=False`,
    fractional values included, on every path (resized, cropped or not). transformers' PIL conversion refuses
    fractional values above 1 and rounds [0, 1] floats to 8 bits when resizing."""
    image = _random_image()
    rng = np.random.default_rng(1)
    fractional = np.clip(image.astype(np.float32) + rng.uniform(-0.4, 0.4, image.shape).astype(np.float32), 0, 255)
    processor = _small_processor()
    as_uint8 = processor(image, return_tensors="np")

    in_255 = processor(fractional, return_tensors="np")
    in_unit = processor(fractional / 255, do_rescale=False, return_tensors="np")
    not_resized = processor(fractional[:32, :32], do_resize=False, return_tensors="np")

    # the same image in both units gives the same pixels and superpixels
    np.testing.assert_allclose(in_unit["pixel_values"], in_255["pixel_values"], atol=1e-5)
    np.testing.assert_array_equal(in_unit["superpixels"], in_255["superpixels"])
    # close to the 8-bit image it perturbs by 0.4 of an 8-bit step (PIL's 8-bit resize adds its own rounding of up
    # to about a step), and not rounded to it
    difference = np.abs(in_255["pixel_values"] - as_uint8["pixel_values"]) * np.reshape(processor.image_std, (3, 1, 1))
    assert 0 < difference.max() * 255 < 1.5
    assert not_resized["pixel_values"].shape == (1, 3, 32, 32)


@pytest.mark.parametrize("method", ["slic", pytest.param("seeds", marks=requires_seeds)])
@pytest.mark.parametrize("value", [0, 128, 255])
def test_superpixels_uniform_image_is_one_superpixel(method, value):
    image = np.full((40, 40, 3), value, dtype=np.uint8)

    outputs = _small_processor(superpixel_method=method)(image, return_tensors="np")

    np.testing.assert_array_equal(outputs["superpixels"], np.zeros((1, 32, 32), dtype=np.int64))
    assert np.ptp(outputs["pixel_values"][0], axis=(1, 2)).max() == 0


def test_processor_mixed_size_list_is_resized():
    images = [
        _random_image(height=30, width=90, seed=0),
        Image.fromarray(_random_image(height=64, width=33, seed=1)),
        torch.from_numpy(np.moveaxis(_random_image(height=45, width=45, seed=2), -1, 0).copy()),
    ]

    outputs = _small_processor()(images, return_tensors="pt")

    assert outputs["pixel_values"].shape == (3, 3, 32, 32)
    assert outputs["superpixels"].shape == (3, 32, 32)


def test_processor_center_crop_gives_crop_size():
    processor = _small_processor(
        size={"shortest_edge": 40}, do_center_crop=True, crop_size={"height": 32, "width": 32}
    )

    outputs = processor([_random_image(height=50, width=80), _random_image(height=80, width=50)], return_tensors="np")

    assert outputs["pixel_values"].shape == (2, 3, 32, 32)
    assert outputs["superpixels"].shape == (2, 32, 32)


def test_processor_save_pretrained_round_trip(tmp_path):
    processor = CastImageProcessor(
        size={"height": 64, "width": 64}, n_segments=50, compactness=20.0, superpixel_method="seeds", patch_size=16
    )

    processor.save_pretrained(tmp_path)
    reloaded = CastImageProcessor.from_pretrained(tmp_path)

    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    for name, value in {"n_segments": 50, "compactness": 20.0, "superpixel_method": "seeds", "patch_size": 16}.items():
        assert saved[name] == value
        assert getattr(reloaded, name) == value
    assert "superpixels" not in saved
    assert reloaded.to_dict() == processor.to_dict()


def test_processor_instances_do_not_share_mutable_defaults():
    first, second = CastImageProcessor(), CastImageProcessor()

    first.size["height"] = 8

    assert second.size["height"] == 224
    assert CastImageProcessor.size == {"height": 224, "width": 224}


@pytest.mark.parametrize("method", ["slic", "torch_slic"])
def test_processor_remote_code_round_trip(tmp_path, monkeypatch, method):
    # Saved with auto_map, the processor must load from its copied files alone (the Hub's trust_remote_code path).
    monkeypatch.setattr(CastImageProcessor, "_auto_class", "AutoImageProcessor")
    processor = _small_processor(compactness=12.5, superpixel_method=method)
    processor.save_pretrained(tmp_path / "processor")
    assert {"image_processing_cast.py", "superpixels_cast.py"} <= {
        path.name for path in (tmp_path / "processor").iterdir()
    }
    image = _random_image()
    np.save(tmp_path / "image.npy", image)
    script = (
        "import sys, numpy as np\n"
        "from transformers import AutoImageProcessor\n"
        "folder = sys.argv[1]\n"
        "processor = AutoImageProcessor.from_pretrained(folder + '/processor', trust_remote_code=True)\n"
        "assert type(processor).__module__.startswith('transformers_modules'), type(processor).__module__\n"
        "outputs = processor(np.load(folder + '/image.npy'), return_tensors='np')\n"
        "np.savez(folder + '/outputs.npz', **outputs)\n"
    )

    result = run_remote_code(script, str(tmp_path), workdir=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    remote = np.load(tmp_path / "outputs.npz")
    _assert_same_outputs(remote, processor(image, return_tensors="np"))


def test_processor_call_kwargs_accept_int_and_numpy_numbers():
    image = _random_image()
    processor = _small_processor()

    outputs = processor(image, n_segments=np.int64(SMALL_SEGMENTS), compactness=10, return_tensors="np")

    _assert_same_outputs(outputs, processor(image, return_tensors="np"))


@requires_seeds
def test_seeds_superpixels_contiguous_and_deterministic():
    processor = _small_processor(size={"height": 64, "width": 64}, n_segments=24, superpixel_method="seeds")
    images = [_random_image(height=64, width=64, seed=seed) for seed in range(2)]

    first = processor(images, return_tensors="np")
    second = processor(images, return_tensors="np")

    _assert_same_outputs(first, second)
    for label_map in first["superpixels"]:
        ids = np.unique(label_map)
        assert ids.size > 1
        np.testing.assert_array_equal(ids, np.arange(ids.size))


@requires_seeds
def test_seeds_photo_count_near_n_segments():
    processor = CastImageProcessor(superpixel_method="seeds")

    label_map = processor(skimage_data.astronaut(), return_tensors="np")["superpixels"][0]

    assert processor.n_segments // 2 <= label_map.max() + 1 <= processor.n_segments


def test_seeds_without_opencv_raises_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    processor = _small_processor(superpixel_method="seeds")

    with pytest.raises(ImportError, match=r'pip install "cast-transformers\[seeds\]"'):
        processor(_random_image())


def test_slic_without_scikit_image_raises_install_hint(monkeypatch):
    monkeypatch.setattr(superpixels_cast, "_skimage_slic", None)

    with pytest.raises(ImportError, match="pip install scikit-image"):
        _small_processor()(_random_image())


def test_slic_retry_rule_triples_compactness(monkeypatch):
    calls = []

    def fake_slic(image, n_segments, compactness, **kwargs):
        calls.append(compactness)
        num_labels = n_segments if compactness >= 90 else 2  # "enough" segments only from compactness 90 on
        return np.arange(image.shape[0] * image.shape[1]).reshape(image.shape[:2]) % num_labels

    monkeypatch.setattr(superpixels_cast, "_skimage_slic", fake_slic)
    image = np.random.default_rng(0).random((16, 16, 3))

    labels = superpixels_cast.slic_superpixels(image, n_segments=10, compactness=10.0)

    assert calls == [10.0, 30.0, 90.0]
    assert np.unique(labels).size == 10


def test_slic_retry_rule_is_bounded(monkeypatch):
    calls = []

    def fake_slic(image, n_segments, compactness, **kwargs):
        calls.append(compactness)
        return np.zeros(image.shape[:2], dtype=np.int64)

    monkeypatch.setattr(superpixels_cast, "_skimage_slic", fake_slic)

    superpixels_cast.slic_superpixels(np.random.default_rng(0).random((8, 8, 3)), n_segments=10, compactness=1.0)

    assert len(calls) == superpixels_cast.SLIC_MAX_RETRIES + 1


def test_user_superpixels_resized_nearest_and_relabeled():
    image = _random_image(height=16, width=16)
    quadrants = np.array([[3, 7], [10, 42]])
    label_map = np.kron(quadrants, np.ones((8, 8), dtype=np.int64))
    processor = _small_processor()

    outputs = processor(image, superpixels=label_map, return_tensors="np")

    expected = np.kron(np.array([[0, 1], [2, 3]]), np.ones((16, 16), dtype=np.int64))
    np.testing.assert_array_equal(outputs["superpixels"][0], expected)
    # the pixels do not depend on where the superpixels came from
    np.testing.assert_array_equal(outputs["pixel_values"], processor(image, return_tensors="np")["pixel_values"])


def test_user_superpixels_match_pil_nearest_for_uneven_scales():
    image = _random_image(height=20, width=12)
    label_map = np.random.default_rng(9).integers(0, 5, size=(20, 12)) * 100  # ids 0, 100, ..., 400

    outputs = _small_processor()(image, superpixels=torch.from_numpy(label_map), return_tensors="np")

    expected = np.asarray(
        Image.fromarray((label_map // 100).astype(np.int32)).resize((32, 32), Image.Resampling.NEAREST)
    )
    _, expected_contiguous = np.unique(expected, return_inverse=True)
    np.testing.assert_array_equal(outputs["superpixels"][0], expected_contiguous.reshape(32, 32))


def test_user_superpixels_vanished_ids_leave_no_gaps():
    image = _random_image(height=64, width=64)
    label_map = np.kron(np.array([[1, 2], [3, 4]]), np.ones((32, 32), dtype=np.int64))
    label_map[0, 0] = 9  # a one-pixel segment that nearest-neighbor downsampling (64 -> 32) never samples

    label_maps = _small_processor()(image, superpixels=[label_map], return_tensors="np")["superpixels"]

    np.testing.assert_array_equal(np.unique(label_maps), np.arange(4))


def test_second_positional_argument_is_segmentation_maps():
    """As in transformers' segmentation processors, `processor(images, maps)` reads label maps; superpixels are
    keyword-only so that such a call can never be mistaken for them."""
    image = _random_image(height=16, width=16)
    label_map = np.kron(np.eye(2, dtype=np.int64), np.ones((8, 8), dtype=np.int64))
    processor = _small_processor()
    outputs = processor(image, label_map, return_tensors="np")
    assert "labels" in outputs
    _assert_same_outputs(
        {k: v for k, v in outputs.items() if k != "labels"}, processor(image, return_tensors="np")
    )


def test_user_superpixels_batch_forms():
    images = [_random_image(height=16, width=16, seed=0), _random_image(height=16, width=16, seed=1)]
    maps = np.stack([np.kron(np.eye(2, dtype=np.int64), np.ones((8, 8), dtype=np.int64))] * 2)
    processor = _small_processor()

    from_array = processor(images, superpixels=maps, return_tensors="np")
    from_tensor = processor(images, superpixels=torch.from_numpy(maps), return_tensors="np")
    from_list = processor(images, superpixels=list(maps), return_tensors="np")

    _assert_same_outputs(from_array, from_tensor)
    _assert_same_outputs(from_array, from_list)
    assert from_array["superpixels"].shape == (2, 32, 32)


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_processor_rejects_non_finite_images(bad_value):
    image = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    image[3, 4, 1] = bad_value

    with pytest.raises(ValueError, match="`images` must hold finite pixel values"):
        _small_processor()(image, do_rescale=False)


@pytest.mark.parametrize(
    "image, error, message",
    [
        (
            np.full((40, 40, 3), -3, dtype=np.int16),
            ValueError,
            "`images` must hold non-negative pixel values, got minimum -3",
        ),
        (np.full((40, 40, 3), 70000, dtype=np.int32), ValueError, "integer `images` must be 8- or 16-bit"),
        (np.zeros((40, 40, 5), dtype=np.uint8), ValueError, r"`images` must have .* channels first or last"),
        (np.zeros((40, 40, 3), dtype=np.complex64), TypeError, "`images` must hold integer, boolean or floating"),
        ([], ValueError, "`images` must contain at least one image"),
        (np.zeros((2, 2, 40, 40, 3), dtype=np.uint8), ValueError, "entry of `images` must have 2"),
    ],
    ids=["negative", "above-16-bit", "five-channels", "complex", "empty-list", "five-dims"],
)
def test_processor_rejects_bad_images(image, error, message):
    with pytest.raises(error, match=message):
        _small_processor()(image)


def test_processor_rejects_mixed_sizes_without_resize():
    images = [_random_image(height=32, width=32), _random_image(height=40, width=32)]

    with pytest.raises(ValueError, match=r"with `do_resize=False`, `images` must all have the same \(height, width\)"):
        _small_processor()(images, do_resize=False)


def test_processor_rejects_unresized_images_not_multiple_of_patch_size():
    with pytest.raises(ValueError, match="`images` must have heights and widths that are multiples of `patch_size`=8"):
        _small_processor()(_random_image(height=30, width=32), do_resize=False)


@pytest.mark.parametrize("size", [{"height": 30, "width": 32}, {"height": 32, "width": 100}])
def test_processor_rejects_size_not_multiple_of_patch_size(size):
    with pytest.raises(
        ValueError, match=r"`size` must give an output height and width that are multiples of `patch_size`=8"
    ):
        CastImageProcessor(size=size)
    with pytest.raises(ValueError, match="`size` must give .* multiples of `patch_size`"):
        _small_processor()(_random_image(), size=size)


def test_processor_rejects_aspect_preserving_size_without_crop():
    images = [_random_image(height=40, width=80), _random_image(height=40, width=40)]

    with pytest.raises(ValueError, match="`size` must give every image the same output"):
        _small_processor(size={"shortest_edge": 32})(images)


def test_processor_rejects_crop_size_not_multiple_of_patch_size():
    with pytest.raises(ValueError, match="`crop_size` must give .* multiples of `patch_size`=16"):
        CastImageProcessor(do_center_crop=True, crop_size={"height": 40, "width": 40}, patch_size=16)


def test_processor_rejects_unknown_superpixel_method():
    with pytest.raises(
        ValueError, match=r"`superpixel_method` must be one of \('slic', 'seeds', 'torch_slic'\), got 'felzenszwalb'"
    ):
        CastImageProcessor(superpixel_method="felzenszwalb")
    with pytest.raises(ValueError, match="`superpixel_method` must be one of"):
        _small_processor()(_random_image(), superpixel_method="SLIC ")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n_segments": 0}, ValueError, "`n_segments` must be a positive integer, got 0"),
        ({"n_segments": 12.5}, TypeError, "`n_segments` must be an integer, got float 12.5"),
        ({"n_segments": True}, TypeError, "`n_segments` must be an integer, got bool"),
        ({"compactness": -1.0}, ValueError, "`compactness` must be a positive finite number, got -1.0"),
        ({"compactness": "10"}, TypeError, "`compactness` must be a number, got str"),
        ({"patch_size": 0}, ValueError, "`patch_size` must be a positive integer, got 0"),
        ({"superpixel_method": 1}, TypeError, "`superpixel_method` must be one of"),
        # issue 17 item 9: these were saved and failed later, inside transformers' resizing
        ({"size": {"height": 0, "width": 32}}, ValueError, r"`size\['height'\]` must be a positive integer, got 0"),
        ({"size": {"shortest_edge": -8}}, ValueError, r"`size\['shortest_edge'\]` must be a positive integer, got -8"),
        ({"size": {"height": 32.5, "width": 32}}, TypeError, r"`size\['height'\]` must be an integer, got float"),
        (
            {"do_center_crop": True, "crop_size": {"height": 32, "width": 0}},
            ValueError,
            r"`crop_size\['width'\]` must be a positive integer, got 0",
        ),
    ],
)
def test_processor_rejects_bad_superpixel_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        CastImageProcessor(**kwargs)
    with pytest.raises(error, match=message):
        _small_processor()(_random_image(), **kwargs)


def test_processor_checks_call_overrides_with_its_own_settings():
    # checked once per call, merged: an override of `patch_size` must fit the processor's 32x32 `size`
    with pytest.raises(ValueError, match=r"`size` must give an output height and width .* `patch_size`=12"):
        _small_processor()(_random_image(), patch_size=12)
    processor = _small_processor()
    processor.n_segments = 0  # attributes set after construction are checked by the next call
    with pytest.raises(ValueError, match="`n_segments` must be a positive integer, got 0"):
        processor(_random_image())


def test_processor_rejects_superpixels_in_constructor():
    with pytest.raises(ValueError, match="`superpixels` are per-image inputs"):
        CastImageProcessor(superpixels=np.zeros((8, 8), dtype=np.int64))


def test_processor_rejects_padding():
    with pytest.raises(ValueError, match="`do_pad=True` is not supported"):
        _small_processor()(_random_image(), do_pad=True, pad_size={"height": 64, "width": 64})


# ---------------------------------------------------------------------------------------------------------------
# Segmentation maps (class labels for training)
# ---------------------------------------------------------------------------------------------------------------


def _quadrant_labels(height: int = 16, width: int = 16, values=((0, 1), (2, 255))) -> np.ndarray:
    return np.kron(np.array(values, dtype=np.int64), np.ones((height // 2, width // 2), dtype=np.int64))


def test_segmentation_maps_become_int64_labels_at_output_size():
    images = [_random_image(height=16, width=16, seed=0), _random_image(height=40, width=24, seed=1)]
    maps = [_quadrant_labels(), _quadrant_labels(40, 24, ((4, 3), (2, 1)))]
    processor = _small_processor()

    outputs = processor(images, segmentation_maps=maps, return_tensors="pt")

    assert list(outputs.keys()) == ["pixel_values", "superpixels", "labels"]
    assert outputs["labels"].shape == (2, 32, 32)
    assert outputs["labels"].dtype == torch.int64
    block = np.ones((16, 16), dtype=np.int64)
    expected = [np.kron(np.array(values), block) for values in ([[0, 1], [2, 255]], [[4, 3], [2, 1]])]
    np.testing.assert_array_equal(outputs["labels"].numpy(), np.stack(expected))
    # the labels change neither the pixels nor the superpixels
    _assert_same_outputs(outputs, processor(images, return_tensors="pt"))
    as_lists = processor(images, segmentation_maps=maps)
    assert isinstance(as_lists["labels"], list) and as_lists["labels"][1].dtype == np.int64


def test_segmentation_maps_resized_nearest_keep_label_values():
    image = _random_image(height=20, width=12)
    label_map = np.random.default_rng(10).choice(np.array([0, 7, 19, 255]), size=(20, 12))

    labels = _small_processor()(image, segmentation_maps=label_map, return_tensors="np")["labels"][0]

    expected = np.asarray(Image.fromarray(label_map.astype(np.int32)).resize((32, 32), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(labels, expected)
    assert set(np.unique(labels)) <= {0, 7, 19, 255}


@pytest.mark.parametrize("mode", ["L", "P", "I", "I;16"])
def test_segmentation_maps_accept_pil_label_modes_numpy_and_torch(mode):
    image = _random_image(height=16, width=16)
    label_map = _quadrant_labels(values=((0, 1), (2, 200)))
    processor = _small_processor()
    expected = processor(image, segmentation_maps=label_map, return_tensors="np")["labels"]

    if mode == "I;16":
        pil_map = Image.fromarray(label_map.astype(np.uint16))
    else:
        pil_map = Image.fromarray(label_map.astype(np.uint8)).convert(mode)
    assert pil_map.mode == mode
    for same_map in (pil_map, torch.from_numpy(label_map), label_map.astype(np.uint8), [label_map], label_map[None]):
        labels = processor(image, segmentation_maps=same_map, return_tensors="np")["labels"]
        np.testing.assert_array_equal(labels, expected)


def test_segmentation_maps_follow_the_center_crop():
    # 32x64 image, shortest edge 32 (no resize), center crop 32x32: columns 16..47 remain
    image = _random_image(height=32, width=64)
    label_map = np.tile(np.arange(64, dtype=np.int64), (32, 1))
    processor = _small_processor(
        size={"shortest_edge": 32}, do_center_crop=True, crop_size={"height": 32, "width": 32}
    )

    outputs = processor(image, segmentation_maps=label_map, return_tensors="np")

    assert outputs["pixel_values"].shape[-2:] == outputs["labels"].shape[-2:] == (32, 32)
    np.testing.assert_array_equal(outputs["labels"][0], np.tile(np.arange(16, 48), (32, 1)))


def test_segmentation_maps_reduce_labels():
    image = _random_image(height=16, width=16)
    label_map = _quadrant_labels(values=((0, 1), (5, 255)))
    processor = _small_processor(do_reduce_labels=True)

    labels = processor(image, segmentation_maps=label_map, return_tensors="np")["labels"][0]

    np.testing.assert_array_equal(labels, np.kron(np.array([[255, 0], [4, 255]]), np.ones((16, 16), dtype=np.int64)))
    # per call, and off by default
    plain = _small_processor()(image, segmentation_maps=label_map, return_tensors="np")["labels"][0]
    np.testing.assert_array_equal(plain, np.kron(np.array([[0, 1], [5, 255]]), np.ones((16, 16), dtype=np.int64)))
    per_call = _small_processor()(image, segmentation_maps=label_map, do_reduce_labels=True, return_tensors="np")
    np.testing.assert_array_equal(per_call["labels"][0], labels)


def test_segmentation_maps_without_resize_keep_original_labels():
    image = _random_image(height=16, width=24)
    label_map = np.random.default_rng(11).integers(0, 4, size=(16, 24))

    labels = _small_processor()(image, segmentation_maps=label_map, do_resize=False, return_tensors="np")["labels"]

    np.testing.assert_array_equal(labels[0], label_map)


def test_processor_saves_do_reduce_labels(tmp_path):
    assert CastImageProcessor().do_reduce_labels is False
    CastImageProcessor(do_reduce_labels=True).save_pretrained(tmp_path)

    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["do_reduce_labels"] is True
    assert CastImageProcessor.from_pretrained(tmp_path).do_reduce_labels is True


# Bad maps of both kinds, read by the same helpers: (case, maps for one 16x16 image, error, message for
# `superpixels`, message for `segmentation_maps`); None where the case is not one for that argument.
BAD_MAPS = [
    (
        "float",
        np.zeros((16, 16), dtype=np.float32),
        TypeError,
        "`superpixels` must hold integer segment ids, got dtype float32",
        "`segmentation_maps` must hold integer class labels, got dtype float32",
    ),
    (
        "torch-float",
        torch.zeros(16, 16),
        TypeError,
        "`superpixels` must hold integer segment ids, got dtype torch.float32",
        "`segmentation_maps` must hold integer class labels, got dtype torch",
    ),
    (
        "bool",
        np.zeros((16, 16), dtype=bool),
        TypeError,
        "`superpixels` must hold integer segment ids, got dtype bool",
        "`segmentation_maps` must hold integer .* got dtype bool",
    ),
    (
        "one-dim",
        np.zeros(16, dtype=np.int64),
        ValueError,
        r"`superpixels` must be a 2-D .* got shape \(16,\)",
        r"`segmentation_maps` must be a 2-D .* got shape \(16,\)",
    ),
    ("four-dim", np.zeros((1, 1, 16, 16), dtype=np.int64), ValueError,
     r"`superpixels` must be a 2-D .* got shape \(1, 1, 16, 16\)", None),
    (
        "list-of-3d",
        [np.zeros((1, 16, 16), dtype=np.int64)],
        ValueError,
        r"`superpixels\[0\]` must be a 2-D \(height, width\) map",
        r"`segmentation_maps\[0\]` must be a 2-D \(height, width\) map",
    ),
    ("shape-mismatch", np.zeros((20, 20), dtype=np.int64), ValueError,
     r"`superpixels\[0\]` has shape \(20, 20\) but `images\[0\]` has \(height, width\) \(16, 16\)", None),
    ("shape", np.zeros((20, 16), dtype=np.int64), ValueError, None,
     r"`segmentation_maps\[0\]` has shape \(20, 16\) but `images\[0\]` has \(height, width\) \(16, 16\)"),
    (
        "count",
        np.zeros((2, 16, 16), dtype=np.int64),
        ValueError,
        "`superpixels` must hold one map per image, got 2 maps for 1 images",
        "`segmentation_maps` must hold one map per image, got 2 maps for 1 images",
    ),
    ("negative", np.full((16, 16), -3, dtype=np.int64), ValueError,
     "`superpixels` must be non-negative, got minimum -3", None),
    ("negative-label", np.full((16, 16), -1, dtype=np.int64), ValueError, None,
     "`segmentation_maps` must hold non-negative class labels, got minimum -1"),
    ("string", "segments.png", TypeError,
     "`superpixels` must be a numpy array, a torch tensor or a list of them, got str", None),
    ("string-path", "mask.png", TypeError, None,
     "`segmentation_maps` must be a PIL image, a numpy array, a torch tensor or a list"),
    (
        "nested-list",
        [[[0, 1], [1, 0]]],
        TypeError,
        "each map in `superpixels` must be a numpy array or a torch tensor, got list",
        "each map in `segmentation_maps` must be a PIL image, a numpy array or a",
    ),
    ("pil-float", Image.new("F", (16, 16)), TypeError, None,
     "`segmentation_maps` must hold integer class labels, got a PIL image"),
    ("pil-rgb", Image.new("RGB", (16, 16)), ValueError, None,
     "`segmentation_maps` PIL images must have one class label per pixel"),
]


def _bad_map_cases():
    for case, maps, error, *messages in BAD_MAPS:
        for argument, message in zip(("superpixels", "segmentation_maps"), messages, strict=True):
            if message is not None:
                yield pytest.param(argument, maps, error, message, id=f"{argument}-{case}")


@pytest.mark.parametrize("argument, maps, error, message", list(_bad_map_cases()))
def test_processor_rejects_bad_maps(argument, maps, error, message):
    with pytest.raises(error, match=message):
        _small_processor()(_random_image(height=16, width=16), **{argument: maps})


def test_processor_rejects_non_bool_do_reduce_labels():
    with pytest.raises(TypeError, match="`do_reduce_labels` must be a bool, got str 'yes'"):
        CastImageProcessor(do_reduce_labels="yes")
    with pytest.raises(TypeError, match="`do_reduce_labels` must be a bool, got int 1"):
        _small_processor()(_random_image(), segmentation_maps=np.zeros((40, 48), dtype=np.int64), do_reduce_labels=1)


def test_processor_outputs_do_not_depend_on_the_decoded_layout(monkeypatch):
    # the processor decodes channels-last images as channels-first views (no copy); contiguous copies give the same
    from processing import image_processing_cast

    images = [Image.fromarray(skimage_data.chelsea()), skimage_data.astronaut()[::3, ::2], Image.new("L", (50, 30), 90)]
    processor = CastImageProcessor(size={"height": 64, "width": 64}, n_segments=16, do_center_crop=True,
                                   crop_size={"height": 48, "width": 56})
    as_views = [processor(image, return_tensors="pt") for image in images]
    decode = image_processing_cast.decode_image
    monkeypatch.setattr(image_processing_cast, "decode_image", lambda *args, **kwargs: decode(
        *args, **{**kwargs, "contiguous": True}))

    for image, view_outputs in zip(images, as_views):
        copy_outputs = processor(image, return_tensors="pt")
        assert torch.equal(view_outputs["pixel_values"], copy_outputs["pixel_values"])
        assert torch.equal(view_outputs["superpixels"], copy_outputs["superpixels"])


def test_processor_torch_slic_segments_the_call_in_one_batch_like_single_calls():
    processor = _small_processor(size={"height": 64, "width": 64}, n_segments=24, superpixel_method="torch_slic")
    images = [_random_image(height=64, width=64, seed=seed) for seed in range(3)]
    batch = processor(images, return_tensors="np", device="cpu")
    for index, image in enumerate(images):
        _assert_same_outputs({key: value[index:index + 1] for key, value in batch.items()},
                             processor(image, return_tensors="np"))
    for label_map in batch["superpixels"]:
        ids = np.unique(label_map)
        np.testing.assert_array_equal(ids, np.arange(len(ids)))
        assert 12 <= len(ids) <= 24
    assert "device" not in processor.to_dict()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_processor_torch_slic_on_cuda_matches_the_cpu():
    processor = _small_processor(size={"height": 64, "width": 64}, n_segments=24, superpixel_method="torch_slic")
    images = [_random_image(height=64, width=64, seed=seed) for seed in range(2)]
    on_cuda = processor(images, return_tensors="np", device="cuda")["superpixels"]
    on_cpu = processor(images, return_tensors="np")["superpixels"]
    assert (on_cuda == on_cpu).mean() >= 0.99
