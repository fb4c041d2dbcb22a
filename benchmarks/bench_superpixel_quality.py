# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Superpixel quality and speed of `torch_slic` against scikit-image SLIC (and OpenCV SEEDS when installed).

Run from the repository root:

    .venv/bin/python benchmarks/bench_superpixel_quality.py
    .venv/bin/python benchmarks/bench_superpixel_quality.py --n-segments 196 --size 224 --threads 2

Two image sets, each at `--size` x `--size`, every back-end asked for the same `--n-segments`:

1. Real photos (`skimage.data`: astronaut, chelsea, coffee, rocket, coins, camera, immunohistochemistry, hubble
   deep field). They have no human annotation, so the reference regions are a coarse Felzenszwalb segmentation
   (scikit-image, scale 400, min size 300): an algorithm unrelated to either SLIC, blind to both. The table also
   gives `torch_slic`'s recall of scikit-image SLIC's own boundaries.
2. Generated part-whole images (`processing.synthetic.part_whole`) with their part masks as ground truth.

Scores (`processing.evaluation.metrics.superpixel_quality`): boundary recall within the BSDS tolerance (0.0075 of
the diagonal; higher is better), undersegmentation error (lower is better) and the mean superpixel count. Speed:
the median over `--repeats` of the process CPU time per image (`time.process_time`, which a shared machine inflates
less than wall time), each back-end as the image processor runs it: scikit-image and SEEDS per image,
`torch_slic` on the whole batch at once. This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.evaluation.metrics import superpixel_quality  # noqa: E402
from processing.superpixels_cast import compute_superpixels, torch_slic_superpixels  # noqa: E402
from processing.synthetic.part_whole import render_part_whole_sample  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "coins", "camera", "immunohistochemistry", "hubble_deep_field")
COMPACTNESS = 10.0


def _photos(size: int) -> list[np.ndarray]:
    import skimage.data
    from skimage.color import gray2rgb
    from skimage.transform import resize

    photos = []
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        image = gray2rgb(image) if image.ndim == 2 else image[..., :3]
        photos.append((resize(image, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8))
    return photos


def _felzenszwalb_regions(images: list[np.ndarray]) -> list[np.ndarray]:
    from skimage.segmentation import felzenszwalb

    return [felzenszwalb(image, scale=400, sigma=0.8, min_size=300) for image in images]


def _methods() -> list[str]:
    methods = ["slic", "torch_slic"]
    if importlib.util.find_spec("cv2") is not None:
        import cv2

        if hasattr(cv2, "ximgproc"):
            methods.append("seeds")
    return methods


def _segment(method: str, images: list[np.ndarray], n_segments: int) -> list[np.ndarray]:
    if method == "torch_slic":
        return torch_slic_superpixels(images, n_segments, COMPACTNESS)
    return [compute_superpixels(image, method, n_segments, COMPACTNESS) for image in images]


def _cpu_ms_per_image(method: str, images: list[np.ndarray], n_segments: int, repeats: int) -> float:
    _segment(method, images[:1], n_segments)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        _segment(method, images, n_segments)
        times.append(time.process_time() - start)
    return statistics.median(times) / len(images) * 1000


def _table(title: str, images, references, n_segments: int, repeats: int) -> None:
    print(f"\n{title}: {len(images)} images, n_segments={n_segments}")
    print("| back-end | boundary recall | undersegmentation error | superpixels | CPU ms / image |")
    print("|---|---|---|---|---|")
    maps = {}
    for method in _methods():
        maps[method] = _segment(method, images, n_segments)
        quality = superpixel_quality(maps[method], references, ignore_index=None)
        speed = _cpu_ms_per_image(method, images, n_segments, repeats)
        print(
            f"| {method} | {quality['boundary_recall']:.3f} | {quality['undersegmentation_error']:.4f} | "
            f"{quality['mean_num_superpixels']:.0f} | {speed:.1f} |"
        )
    recall = superpixel_quality(maps["torch_slic"], maps["slic"], ignore_index=None)["boundary_recall"]
    print(f"torch_slic recalls {recall:.3f} of scikit-image SLIC's boundaries")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-segments", type=int, default=196)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--part-whole-images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    photos = _photos(args.size)
    _table("Real photos (skimage.data; reference: coarse Felzenszwalb regions)", photos,
           _felzenszwalb_regions(photos), args.n_segments, args.repeats)
    samples = [render_part_whole_sample(index, image_size=args.size, seed=0) for index in range(args.part_whole_images)]
    _table("Generated part-whole images (reference: part masks)", [sample.image for sample in samples],
           [sample.part_mask for sample in samples], args.n_segments, args.repeats)


if __name__ == "__main__":
    main()
