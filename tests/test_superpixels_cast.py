"""Superpixel back-ends: the guard that keeps OpenCV SEEDS from crashing the process (issue 17 item 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

from processing.superpixels_cast import seeds_grid, seeds_segment_count


def _seeds_available() -> bool:
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2, "ximgproc")


requires_seeds = pytest.mark.skipif(
    not _seeds_available(), reason='SEEDS needs OpenCV with contrib modules: pip install "cast-transformers[seeds]"'
)


@requires_seeds
@pytest.mark.parametrize(
    "height, width, n_segments",
    [(224, 224, 196), (224, 224, 12000), (64, 64, 1000), (32, 32, 196), (16, 24, 30), (12, 64, 196), (8, 8, 10),
     (5, 6, 10), (48, 80, 50)],
)
def test_seeds_grid_is_the_grid_opencv_lays_out(height, width, n_segments):
    """Requests the guard lets through (all of them safe: checked in a subprocess sweep) give OpenCV's own count."""
    import cv2

    rows, columns = seeds_grid(height, width, n_segments)
    seeds = cv2.ximgproc.createSuperpixelSEEDS(width, height, 3, n_segments, 1, 2, 15, False)
    assert seeds.getNumberOfSuperpixels() == rows * columns


@pytest.mark.parametrize(
    "height, width, n_segments",
    # each crashed (segfault), hung or gave labels that changed between identical runs before the guard
    [(224, 224, 13000), (64, 64, 2000), (16, 16, 196), (24, 24, 196), (8, 8, 196), (8, 8, 30), (3, 8, 10),
     (20000, 24, 196), (24, 11, 10)],
)
def test_seeds_grid_refuses_the_requests_that_crash_opencv(height, width, n_segments):
    assert seeds_grid(height, width, n_segments) is None


def test_seeds_segment_count_lowers_the_count_to_what_fits_the_image():
    assert seeds_segment_count(224, 224, 196) == 196  # the released models' setting is untouched
    lowered = seeds_segment_count(16, 16, 196)
    assert 10 <= lowered < 196 and seeds_grid(16, 16, lowered) is not None
    assert seeds_grid(16, 16, lowered + 1) is None or seeds_segment_count(16, 16, lowered + 1) == lowered + 1


@pytest.mark.parametrize(
    "height, width, n_segments, match",
    [
        (4, 4, 196, r"cannot segment an image of height 4 and width 4 into about 196 superpixels.*'slic'"),
        (20000, 24, 196, r"height 20000 and width 24 .* SEEDS needs n_segments >= 835"),
    ],
)
def test_seeds_segment_count_refuses_images_seeds_cannot_segment(height, width, n_segments, match):
    with pytest.raises(ValueError, match=match):
        seeds_segment_count(height, width, n_segments)


_EXTREME_CASES = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    from processing import CastImageProcessor

    results = {}
    for name, height, width, options in json.loads(sys.argv[1]):
        image = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        processor = CastImageProcessor(superpixel_method="seeds", **options)
        try:
            runs = [processor(image, return_tensors="np")["superpixels"][0] for _ in range(2)]
        except ValueError as error:
            results[name] = "ValueError: " + str(error)
            continue
        results[name] = {
            "identical_runs": bool(np.array_equal(*runs)),
            "count": int(runs[0].max()) + 1,
            "contiguous": bool(np.array_equal(np.unique(runs[0]), np.arange(runs[0].max() + 1))),
        }
    print(json.dumps(results))
    """
)


@requires_seeds
def test_seeds_extreme_requests_never_kill_the_process():
    """The cases of issue 17, through the image processor, in a subprocess: a segfault or hang there fails this test
    instead of killing pytest."""
    unresized = {"do_resize": False, "patch_size": 4}
    cases = [
        ("n_segments 20000 at 224", 224, 224, {"n_segments": 20000}),
        ("n_segments 2000 at 64", 64, 64, {"size": {"height": 64, "width": 64}, "n_segments": 2000}),
        ("16 px", 16, 16, unresized),
        ("24 px", 24, 24, unresized),
        ("8 px", 8, 8, unresized),
        ("20000x24", 20000, 24, unresized),
    ]
    completed = subprocess.run(
        [sys.executable, "-c", _EXTREME_CASES, json.dumps(cases)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results.pop("20000x24").startswith("ValueError: superpixel_method='seeds' cannot segment an image")
    for name, result in results.items():
        assert result["identical_runs"] and result["contiguous"], (name, result)
        assert 1 < result["count"] <= {"n_segments 20000 at 224": 20000, "n_segments 2000 at 64": 2000}.get(name, 196)
    assert results["n_segments 20000 at 224"]["count"] > 3000  # lowered to what fits, not to a token count


# ---------------------------------------------------------------------------------------------------------------
# torch_slic through the processor: one batched call per image size, on a device, the same implementation

def test_torch_slic_superpixels_batches_by_size_and_keeps_the_order():
    import numpy as np
    import torch
    from conftest import smooth_image

    from processing.superpixels_cast import compute_superpixels, torch_slic_superpixels
    from processing.tensor_slic_cast import torch_slic

    images = [smooth_image(48, 64, 0), smooth_image(32, 32, 1), smooth_image(48, 64, 2)]
    labels = torch_slic_superpixels(images, n_segments=24, compactness=10.0, device="cpu")
    assert [label_map.shape for label_map in labels] == [(48, 64), (32, 32), (48, 64)]
    for image, label_map in zip(images, labels):
        assert label_map.dtype == np.int64
        single = torch_slic(torch.from_numpy(image / 255.0).float().permute(2, 0, 1)[None], 24)[0].numpy()
        np.testing.assert_array_equal(label_map, single)
        np.testing.assert_array_equal(compute_superpixels(image, "torch_slic", 24, 10.0), single)


def test_processor_torch_slic_and_model_package_share_one_implementation():
    """`processing/tensor_slic_cast.py` is a link to the model package's file, so both import the same code."""
    link = REPO_ROOT / "processing" / "tensor_slic_cast.py"
    assert link.is_symlink() and link.resolve() == (REPO_ROOT / "modeling_cast" / "tensor_slic_cast.py").resolve()
