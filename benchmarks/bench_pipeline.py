# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""End-to-end benchmark: CAST's `pipeline("image-segmentation")` against ViT's `pipeline("image-classification")`.

Run from the repository root:

    .venv/bin/python benchmarks/bench_pipeline.py                       # cast-small and cast-base, every method
    .venv/bin/python benchmarks/bench_pipeline.py --models cast-small --methods slic --batch-sizes 8
    .venv/bin/python benchmarks/bench_pipeline.py --profile cast-small:slic:8    # adds a cProfile table

Everything runs in one process with randomly initialized weights (timing does not depend on the values, except
through the realistic superpixel counts of the photos):

1. The same `skimage.data` photos, at their own sizes (451x300 to 1000x872, width x height), cycled to `--photos`
   images, go as PIL images through `pipeline("image-segmentation")` of a `CastModel` preset, once per superpixel
   method of `CastImageProcessor` and once as `in-model` (a processor that returns only `pixel_values`, so that the
   model computes `torch_slic` superpixels for the whole batch inside its forward), and through
   `pipeline("image-classification")` of a `ViTForImageClassification` of the matched size (ViT-S/16 for
   cast-small, ViT-B/16 for cast-base; 12 layers, 4x MLP, 1000 classes) with its PIL image processor. Rows report
   images per second (median of `--repeats` rounds after `--warmup`; the pipelines alternate within a round, so
   load from other processes hits all of them alike) and the ratio to the ViT pipeline in the same round.
2. A separate pass times the parts of the CAST pipeline: the superpixels (inside preprocessing), the rest of
   preprocessing (decoding, resizing, normalizing), the forward and the post-processing (segments and masks); the
   remainder is the pipeline's own work (batching, un-batching).
3. The superpixels alone: each back-end on the resized photos the processor segments, in ms per image, as the
   pipeline calls it (one image at a time for the processor's back-ends, the pipeline's batch in the model), and
   `torch_slic` on the whole set of photos in one call.
4. With CUDA available, the same pipelines on the GPU at `--gpu-batch-size` (64), and `torch_slic` alone on
   batches of `--slic-batch-size` (256) 224x224 images.

This is a script that prints numbers, not a test: nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Make the repository importable when the script is run as `python benchmarks/bench_pipeline.py`.
_REPO_ROOT = Path(__file__).resolve().parent.parent
for _path in (str(_REPO_ROOT), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import processing.image_processing_cast as cast_processing_module  # noqa: E402  (its superpixel call is timed)
from bench_model import _load_average, load_photos, vit_name  # noqa: E402
from modeling_cast import CastConfig, CastImageProcessor, CastModel  # noqa: E402
from processing.superpixels_cast import (  # noqa: E402
    SUPERPIXEL_METHODS,
    compute_superpixels,
    torch_slic_superpixels,
)
from transformers import (  # noqa: E402
    BatchFeature,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
    pipeline,
)
from transformers.utils import logging as transformers_logging  # noqa: E402

IN_MODEL = "in-model"  # the pipeline row whose superpixels the model computes (torch_slic in the forward)
PIPELINE_METHODS = (*SUPERPIXEL_METHODS, IN_MODEL)
TARGET_GPU_SLIC_RATE = 2000  # torch_slic images of 224x224 per second on a GPU
TARGET_GPU_SUPERPIXEL_SHARE = 0.10  # superpixels <= 10% of CAST-B end to end on a GPU
TARGET_RATIO = 1.0  # CAST-S segmentation pipeline >= ViT-S/16 classification pipeline at batch 8
TARGET_SUPERPIXEL_SHARE = 0.25  # superpixels <= 25% of the CAST-S pipeline's time
# `--tiny`: a CAST and a ViT small enough for a smoke test (seconds, not minutes)
_TINY_CAST = dict(
    hidden_size=32, num_attention_heads=4, pooling_num_attention_heads=4, depths=[1, 1], num_segments=[6, 3],
    mlp_ratio=2.0, image_size=32, max_superpixel_tokens=16,
)
_TINY_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32)
_TINY_PROCESSOR = dict(size={"height": 32, "width": 32}, n_segments=12)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["cast-small", "cast-base"], help="CAST presets to time")
    parser.add_argument(
        "--methods", nargs="+", default=list(PIPELINE_METHODS), help=f"superpixel methods ({PIPELINE_METHODS})"
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8], help="pipeline batch sizes (CPU)")
    parser.add_argument("--photos", type=int, default=16, help="images per pipeline call (photos cycled)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds before the timed ones")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads (default: torch's current)"
    )
    parser.add_argument("--gpu-batch-size", type=int, default=64, help="pipeline batch size of the CUDA rows")
    parser.add_argument("--slic-batch-size", type=int, default=256, help="batch of the CUDA torch_slic-alone rows")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA rows even when a GPU is available")
    parser.add_argument("--tiny", action="store_true", help="tiny models at 32x32 (a smoke test of the script)")
    parser.add_argument(
        "--profile", metavar="MODEL:METHOD:BATCH", default=None,
        help="also profile one CAST pipeline run with cProfile (e.g. cast-small:slic:8)",
    )
    parser.add_argument("--profile-rows", type=int, default=30, help="rows of the profile table")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - set(PIPELINE_METHODS))
    if unknown:
        parser.error(f"--methods must be among {PIPELINE_METHODS}, got {unknown}")
    counts = (args.repeats, args.photos, args.threads, args.gpu_batch_size, args.slic_batch_size, *args.batch_sizes)
    if min(counts) < 1 or args.warmup < 0:
        parser.error("--repeats, --photos, --threads, the batch sizes must be >= 1 and --warmup >= 0")
    return args


# ----------------------------------------------------------------------------------------------------------------
# models and pipelines


class PixelsOnlyProcessor(CastImageProcessor):
    """`CastImageProcessor` without superpixels: the same resizing and normalization (its own methods), so that a
    CAST model given only `pixel_values` computes the superpixels in its forward (the `in-model` rows). Only for
    the settings of this benchmark: resizing to a fixed size, no center crop."""

    def _preprocess(self, images, superpixels, segmentation_maps, size, resample, do_rescale, rescale_factor,
                    do_normalize, image_mean, image_std, return_tensors=None, **kwargs) -> BatchFeature:
        pixel_values = [
            self._pixel_values(self.resize(image, size=size, resample=resample), do_rescale, rescale_factor,
                               do_normalize, image_mean, image_std)
            for image in images
        ]
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)


def build_processor(method: str, options: dict) -> CastImageProcessor:
    if method == IN_MODEL:
        return PixelsOnlyProcessor(**options)
    return CastImageProcessor(superpixel_method=method, **options)


def build_pipelines(preset: str, methods: list[str], tiny: bool, device: str = "cpu") -> tuple[dict, object]:
    """The CAST segmentation pipeline of each method (one model shared by all) and the matched ViT classifier."""
    torch.manual_seed(0)
    if tiny:
        cast_config, vit_config = CastConfig(**_TINY_CAST), ViTConfig(**_TINY_VIT, patch_size=16)
        processor_options, vit_size = _TINY_PROCESSOR, _TINY_PROCESSOR["size"]
    else:
        cast_config = CastConfig.from_preset(preset)
        vit_config = ViTConfig(
            hidden_size=cast_config.hidden_size, num_hidden_layers=12,
            num_attention_heads=cast_config.num_attention_heads, intermediate_size=4 * cast_config.hidden_size,
            patch_size=16, image_size=224, num_labels=1000,
        )
        processor_options, vit_size = {}, {"height": 224, "width": 224}
    cast = CastModel(cast_config).eval()
    vit = ViTForImageClassification(vit_config).eval()
    segmenters = {
        method: pipeline(
            "image-segmentation", model=cast, device=device,
            image_processor=build_processor(method, processor_options),
        )
        for method in methods
    }
    classifier = pipeline(
        "image-classification", model=vit, device=device, image_processor=ViTImageProcessorPil(size=vit_size)
    )
    return segmenters, classifier


def available_methods(methods: list[str], photo: np.ndarray) -> list[str]:
    """The methods whose back-end is installed (SEEDS needs opencv-contrib)."""
    usable = []
    for method in methods:
        if method == IN_MODEL:
            usable.append(method)
            continue
        try:
            compute_superpixels(photo[:32, :32], method, 8, 10.0)
        except ImportError as error:
            print(f"  (skipping superpixel method {method!r}: {error})")
            continue
        usable.append(method)
    return usable


# ----------------------------------------------------------------------------------------------------------------
# timing


def time_rounds(runs: dict, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Warm every run up, then time them alternately, one of each per round. Returns the seconds of each run."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


class PartTimer:
    """Wall time of a pipeline's preprocess, _forward and postprocess (instance attributes that shadow the methods,
    removed on exit) and of its superpixels: the processor's back-ends (wrappers around the names
    `compute_superpixels` and `torch_slic_superpixels` of `processing.image_processing_cast`, restored on exit) and
    the model's own (`model.compute_superpixels`, shadowed likewise). Records every superpixel call."""

    _PROCESSOR_FUNCTIONS = ("compute_superpixels", "torch_slic_superpixels")

    def __init__(self, segmenter):
        self.segmenter = segmenter
        self.totals = dict.fromkeys(("superpixels", "model superpixels", "preprocess", "forward", "postprocess"), 0.0)
        self.superpixel_calls: list[tuple] = []
        self._originals: dict[str, object] = {}

    def _timed(self, part: str, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.totals[part] += time.perf_counter() - start

        return wrapper

    def __enter__(self) -> "PartTimer":
        for part, name in (("preprocess", "preprocess"), ("forward", "_forward"), ("postprocess", "postprocess")):
            setattr(self.segmenter, name, self._timed(part, getattr(self.segmenter, name)))
        for name in self._PROCESSOR_FUNCTIONS:
            self._originals[name] = original = getattr(cast_processing_module, name)
            setattr(cast_processing_module, name, self._recording("superpixels", original))
        model = self.segmenter.model
        model.compute_superpixels = self._recording("model superpixels", model.compute_superpixels)
        return self

    def _recording(self, part: str, function):
        timed = self._timed(part, function)

        def recording(*args, **kwargs):
            self.superpixel_calls.append((function, args, kwargs))
            return timed(*args, **kwargs)

        return recording

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(cast_processing_module, name, original)
        del self.segmenter.model.__dict__["compute_superpixels"]
        for name in ("preprocess", "_forward", "postprocess"):
            del self.segmenter.__dict__[name]


def split_parts(segmenter, photos: list[Image.Image], batch_size: int) -> tuple[dict[str, float], list[tuple]]:
    """ms per image of each part of one pipeline call, and the superpixel back-end calls it made."""
    with PartTimer(segmenter) as timer:
        start = time.perf_counter()
        segmenter(photos, batch_size=batch_size)
        total = time.perf_counter() - start
    parts = dict(timer.totals)
    parts["decode+resize+normalize"] = parts["preprocess"] - parts["superpixels"]
    parts["pipeline other"] = total - parts["preprocess"] - parts["forward"] - parts["postprocess"]
    # the model's own superpixels run inside the forward: count them as superpixels, not as forward
    parts["forward"] -= parts["model superpixels"]
    parts["superpixels"] += parts.pop("model superpixels")
    parts["total"] = total
    return {name: 1e3 * seconds / len(photos) for name, seconds in parts.items()}, timer.superpixel_calls


def _images_in_call(args: tuple) -> int:
    """Images one recorded superpixel call segments: a list of views (torch_slic), a batch tensor (the model) or
    one view."""
    first = args[0]
    if isinstance(first, list):
        return len(first)
    return first.shape[0] if isinstance(first, torch.Tensor) else 1


def superpixels_alone(calls: list[tuple], repeats: int) -> tuple[float, float]:
    """Median and minimum ms per image of the recorded superpixel calls, run again `repeats` times."""
    per_image = []
    with torch.inference_mode():
        for _ in range(repeats):
            for function, args, kwargs in calls:
                start = time.perf_counter()
                function(*args, **kwargs)
                per_image.append((time.perf_counter() - start) / _images_in_call(args))
    return 1e3 * statistics.median(per_image), 1e3 * min(per_image)


def torch_slic_batched(calls: list[tuple], repeats: int, device: str = "cpu") -> tuple[float, float] | None:
    """ms per image of `torch_slic` on all the recorded views (same size) in one call on `device`."""
    views = [call[1][0] for call in calls if call[0] is compute_superpixels]
    if not views:
        return None
    n_segments, compactness = calls[0][1][2], calls[0][1][3]
    torch_slic_superpixels(views, n_segments, compactness, device=device)
    per_image = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch_slic_superpixels(views, n_segments, compactness, device=device)
        per_image.append((time.perf_counter() - start) / len(views))
    return 1e3 * statistics.median(per_image), 1e3 * min(per_image)


def gpu_torch_slic_rate(batch_size: int, repeats: int, n_segments: int, compactness: float) -> float:
    """224x224 images per second of `torch_slic` on the GPU, on the `skimage.data` photos resized to 224x224 and
    repeated to fill the batch."""
    from modeling_cast.tensor_slic_cast import torch_slic

    photos = [np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR)) for _, image in load_photos(7)]
    batch = torch.from_numpy(np.stack([photos[index % len(photos)] for index in range(batch_size)]))
    batch = (batch.permute(0, 3, 1, 2).float() / 255).cuda()
    torch_slic(batch, n_segments, compactness=compactness)
    torch.cuda.synchronize()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch_slic(batch, n_segments, compactness=compactness)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return batch_size / statistics.median(seconds)


# ----------------------------------------------------------------------------------------------------------------
# main


def machine_facts(args) -> None:
    import transformers

    facts = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "numpy": np.__version__, "cpus": os.cpu_count(), "usable": len(os.sched_getaffinity(0)),
        "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
    }
    print("CAST image-segmentation pipeline vs ViT image-classification pipeline, end to end")
    print(" | ".join(f"{name} {value}" for name, value in facts.items()))
    print(f"load average (1/5/15 min) before the run: {_load_average()} -- other processes skew CPU timings")
    print(f"settings: models={args.models} methods={args.methods} batch sizes={args.batch_sizes} "
          f"photos={args.photos} warmup={args.warmup} repeats={args.repeats} (median)")


def run_device(
    args, photos: list[Image.Image], methods: list[str], device: str, batch_sizes: list[int], extras: dict
) -> list[dict]:
    """One row per (preset, method, batch size) on `device`; `extras` receives the batched `torch_slic` figures."""
    rows = []
    for preset in args.models:
        segmenters, classifier = build_pipelines(preset, methods, args.tiny, device)
        baseline = "tiny ViT" if args.tiny else vit_name(preset)
        for batch_size in batch_sizes:
            runs = {
                method: (lambda s=segmenter: s(photos, batch_size=batch_size))
                for method, segmenter in segmenters.items()
            }
            runs["vit"] = lambda: classifier(photos, batch_size=batch_size)
            times = time_rounds(runs, args.warmup, args.repeats)
            vit_rate = len(photos) / statistics.median(times["vit"])
            for method, segmenter in segmenters.items():
                parts, calls = split_parts(segmenter, photos, batch_size)
                alone = superpixels_alone(calls, 1)
                if device == "cpu" and method == "slic" and "torch_slic, all photos in one call" not in extras:
                    extras["torch_slic, all photos in one call"] = torch_slic_batched(calls, 1)
                rate = len(photos) / statistics.median(times[method])
                rows.append({
                    "model": preset, "method": method, "device": device, "batch": batch_size, "rate": rate,
                    "rate_min": len(photos) / max(times[method]), "rate_max": len(photos) / min(times[method]),
                    "baseline": baseline, "vit_rate": vit_rate, "ratio": rate / vit_rate, "parts": parts,
                    "superpixels_alone": alone,
                })
                print(f"  {preset} {method} {device} batch {batch_size}: {rate:.1f} img/s, {baseline} "
                      f"{vit_rate:.1f} img/s", flush=True)
        del segmenters, classifier
    return rows


def print_rows(rows: list[dict], extras: dict) -> None:
    print()
    print("End to end (images per second, median of the rounds; min-max over the rounds), CAST parts in ms/image")
    header = (f"{'model':<11} {'method':<10} {'dev':<4} {'batch':>5} {'CAST img/s':>10} {'min-max':>11} "
              f"{'ViT':<9} {'ViT img/s':>9} {'ratio':>6} | {'superpx':>7} {'decode..':>8} {'forward':>7} "
              f"{'postpr':>6} {'other':>6} {'total':>6} {'sp share':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        p = row["parts"]
        share = p["superpixels"] / p["total"]
        print(f"{row['model']:<11} {row['method']:<10} {row['device']:<4} {row['batch']:>5} {row['rate']:10.1f} "
              f"{row['rate_min']:5.1f}-{row['rate_max']:<5.1f} {row['baseline']:<9} {row['vit_rate']:9.1f} "
              f"{row['ratio']:6.2f} | {p['superpixels']:7.1f} {p['decode+resize+normalize']:8.1f} "
              f"{p['forward']:7.1f} {p['postprocess']:6.1f} {p['pipeline other']:6.1f} {p['total']:6.1f} "
              f"{100 * share:7.1f}%")
    print("ratio = CAST img/s / ViT img/s in the same rounds. The parts come from a separate pass (one call, wrapped")
    print("methods): superpx = superpixel back-end; decode.. = the rest of preprocessing; postpr = segments and masks;")
    print("other = the pipeline's batching and un-batching; sp share = superpx / total.")
    print()
    print("Superpixels alone (the back-ends on the resized photos, called as the pipeline calls them: the processor's")
    print("one image at a time, the model's on the pipeline's batch), ms per image:")
    seen = set()
    for row in rows:
        # the processor's back-ends see one image per call whatever the pipeline's batch; the model sees the batch
        key = (row["method"], row["device"], row["batch"] if row["method"] == IN_MODEL else None)
        if key in seen:
            continue
        seen.add(key)
        median, minimum = row["superpixels_alone"]
        batch = f"batch {row['batch']}" if row["method"] == IN_MODEL else "per image"
        print(f"  {row['method']:<10} {row['device']:<4} {batch:<9} median {median:6.1f} ms (min {minimum:.1f})")
    for name, figures in extras.items():
        if isinstance(figures, tuple):
            print(f"  {name}: median {figures[0]:.1f} ms per image (min {figures[1]:.1f})")
        elif figures is not None:
            print(f"  {name}: {figures:.0f} images per second (target >= {TARGET_GPU_SLIC_RATE})")


def print_targets(rows: list[dict]) -> None:
    print()
    print("Targets (informational, nothing is asserted):")
    for row in rows:
        share = row["parts"]["superpixels"] / row["parts"]["total"]
        if row["model"] == "cast-small" and row["batch"] == 8 and row["device"] == "cpu":
            print(f"  cast-small {row['method']} batch 8: CAST/ViT {row['ratio']:.2f} "
                  f"({'met' if row['ratio'] >= TARGET_RATIO else 'NOT met'}: >= {TARGET_RATIO}); superpixels "
                  f"{100 * share:.0f}% ({'met' if share <= TARGET_SUPERPIXEL_SHARE else 'NOT met'}: "
                  f"<= {100 * TARGET_SUPERPIXEL_SHARE:.0f}%)")
        if row["model"] == "cast-base" and row["device"] == "cuda":
            print(f"  cast-base {row['method']} cuda batch {row['batch']}: superpixels {100 * share:.0f}% "
                  f"({'met' if share <= TARGET_GPU_SUPERPIXEL_SHARE else 'NOT met'}: "
                  f"<= {100 * TARGET_GPU_SUPERPIXEL_SHARE:.0f}%)")


def profile_pipeline(args, photos: list[Image.Image]) -> None:
    preset, method, batch_text = (args.profile.split(":") + ["", "", ""])[:3]
    segmenters, _ = build_pipelines(preset, [method or "slic"], args.tiny)
    segmenter = next(iter(segmenters.values()))
    batch_size = int(batch_text or 8)
    segmenter(photos, batch_size=batch_size)
    profiler = cProfile.Profile()
    profiler.enable()
    segmenter(photos, batch_size=batch_size)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(args.profile_rows)
    print(f"\nProfile: {preset} {method or 'slic'} batch {batch_size}, one call on {len(photos)} photos (by own time)")
    print(stream.getvalue())


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    # the image-segmentation pipeline logs an error for every model outside transformers' static lists
    transformers_logging.set_verbosity_error()
    machine_facts(args)
    wall_start = time.perf_counter()
    named = load_photos(args.photos)
    photos = [Image.fromarray(image) for _, image in named]
    print(f"photos: {', '.join(f'{name} {image.shape[1]}x{image.shape[0]}' for name, image in named[:7])}")
    methods = available_methods(args.methods, named[0][1])
    extras: dict = {}
    rows = run_device(args, photos, methods, "cpu", args.batch_sizes, extras)
    if torch.cuda.is_available() and not args.no_cuda:
        gpu_photos = photos * -(-args.gpu_batch_size // len(photos))  # at least one full GPU batch
        rows += run_device(args, gpu_photos, methods, "cuda", [args.gpu_batch_size], extras)
        processor = CastImageProcessor()
        extras[f"torch_slic on cuda, batches of {args.slic_batch_size} at 224x224"] = gpu_torch_slic_rate(
            args.slic_batch_size, args.repeats, processor.n_segments, processor.compactness
        )
    print_rows(rows, extras)
    print_targets(rows)
    print(f"\nbenchmark wall time: {time.perf_counter() - wall_start:.0f} s; load average after: {_load_average()}")
    if args.profile:
        profile_pipeline(args, photos)
    return rows


if __name__ == "__main__":
    main()
