"""The batched tensor SLIC (`torch_slic`): ids, determinism, batching, the budget, bad input, export, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.transform import resize

from modeling_cast.tensor_slic_cast import rgb_to_lab, slic_grid, torch_slic

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _photos(size: int = 96) -> torch.Tensor:
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    return torch.stack([torch.from_numpy(resize(photo, (size, size))).permute(2, 0, 1).float() for photo in photos])


def _assert_contiguous(labels: torch.Tensor) -> None:
    for label_map in labels:
        ids = torch.unique(label_map)
        assert torch.equal(ids, torch.arange(len(ids))), ids


def test_torch_slic_ids_are_contiguous_and_close_to_the_requested_count():
    labels = torch_slic(_photos(224), 196)
    assert labels.dtype == torch.int64 and labels.shape == (3, 224, 224)
    _assert_contiguous(labels)
    counts = [int(label_map.max()) + 1 for label_map in labels]
    assert all(0.85 * 196 <= count <= 196 for count in counts), counts


def test_torch_slic_is_deterministic_and_batch_independent():
    images = _photos()
    batched = torch_slic(images, 64)
    assert torch.equal(batched, torch_slic(images, 64))
    for index in range(len(images)):
        assert torch.equal(torch_slic(images[index:index + 1], 64)[0], batched[index])


def test_torch_slic_superpixels_are_spatially_coherent():
    """The connectivity rule: nearly every id is one 4-connected region (fragments are absorbed by neighbors)."""
    labels = torch_slic(_photos(224), 196).numpy()
    connected = total = 0
    for label_map in labels:
        for segment in range(label_map.max() + 1):
            _, components = scipy.ndimage.label(label_map == segment)
            connected += components == 1
            total += 1
    assert connected / total >= 0.95, connected / total


def test_torch_slic_uniform_image_is_one_superpixel_also_in_a_batch():
    images = torch.cat([torch.full((1, 3, 64, 64), 0.3), _photos(64)[:1]])
    labels = torch_slic(images, 32)
    assert not labels[0].any()
    assert int(labels[1].max()) > 10


def test_torch_slic_tiny_images_and_other_channel_counts():
    tiny = torch.rand(2, 3, 4, 6)
    labels = torch_slic(tiny, 4)
    assert labels.shape == (2, 4, 6)
    _assert_contiguous(labels)
    gray = torch_slic(_photos(64).mean(1, keepdim=True), 16)
    _assert_contiguous(gray)
    assert int(gray.max()) > 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_segments": 0}, ValueError, r"`n_segments` must be >= 1, got 0"),
        ({"n_segments": -5}, ValueError, r"`n_segments` must be >= 1"),
        ({"n_segments": 8.0}, TypeError, r"`n_segments` must be an int"),
        ({"n_segments": 8, "compactness": 0.0}, ValueError, r"`compactness` must be a positive finite number"),
        ({"n_segments": 8, "num_iterations": -1}, ValueError, r"`num_iterations` must be >= 0"),
        ({"n_segments": 8, "max_segments": 0}, ValueError, r"`max_segments` must be >= 1"),
        ({"n_segments": 200}, ValueError, r"`n_segments`=200 lays out a .* grid of seeds, larger than the images"),
    ],
)
def test_torch_slic_rejects_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        torch_slic(torch.rand(1, 3, 8, 8), **kwargs)


@pytest.mark.parametrize(
    ("images", "match"),
    [(np.zeros((1, 3, 8, 8)), r"`images` must be a torch.Tensor"), (torch.zeros(3, 8, 8), r"`images` must be a floating")],
)
def test_torch_slic_rejects_bad_images(images, match):
    with pytest.raises((TypeError, ValueError), match=match):
        torch_slic(images, 4)


def test_slic_grid_respects_the_budget():
    assert slic_grid(224, 224, 196) == (14, 14)
    assert slic_grid(224, 224, 220) == (15, 15)  # rounding may exceed the request ...
    rows, columns = slic_grid(224, 224, 220, max_segments=196)  # ... never the budget
    assert rows * columns <= 196
    rows, columns = slic_grid(64, 256, 64, max_segments=10)
    assert rows * columns <= 10 and columns > rows


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(8, 40),
    width=st.integers(8, 40),
    n_segments=st.integers(1, 60),
    max_segments=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_torch_slic_never_exceeds_the_budget(height, width, n_segments, max_segments, seed):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, height, width, generator=generator)
    try:
        labels = torch_slic(images, n_segments, max_segments=max_segments, num_iterations=3)
    except ValueError as error:  # only the documented refusal: a grid larger than the image
        assert "grid of seeds, larger than the images" in str(error)
        return
    assert int(labels.max()) < max_segments
    _assert_contiguous(labels)


def test_rgb_to_lab_matches_scikit_image():
    from skimage.color import rgb2lab

    image = np.random.default_rng(0).random((5, 7, 3))
    ours = rgb_to_lab(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, rgb2lab(image), atol=1e-3)


def test_torch_slic_exports_with_static_shapes():
    class Segmenter(torch.nn.Module):
        def forward(self, images):
            return torch_slic(images, 16, num_iterations=2)

    images = _photos(32)
    program = torch.export.export(Segmenter(), (images,), strict=False)
    other = _photos(32).flip(-1)
    assert torch.equal(program.module()(other), torch_slic(other, 16, num_iterations=2))


@requires_cuda
def test_torch_slic_cuda_agrees_with_cpu():
    images = _photos(224)
    on_cpu = torch_slic(images, 196)
    on_cuda = torch_slic(images.cuda(), 196)
    assert on_cuda.device.type == "cuda"
    _assert_contiguous(on_cuda.cpu())
    assert torch.equal(on_cuda, torch_slic(images.cuda(), 196))  # deterministic on the device too
    assert (on_cuda.cpu() == on_cpu).float().mean() >= 0.99
