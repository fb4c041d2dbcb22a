# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""CPU inference benchmark: CAST (`CastModel`) against a ViT/16 of the same width (`transformers.ViTModel`).

Run from the repository root:

    .venv/bin/python benchmarks/bench_model.py
    .venv/bin/python benchmarks/bench_model.py --models cast-base --batch-sizes 8 --repeats 10
    .venv/bin/python benchmarks/bench_model.py --profile cast-base:8     # adds a torch.profiler op table
    .venv/bin/python benchmarks/bench_model.py --compiled --exported     # adds compiled / exported / onnxruntime rows
    .venv/bin/python benchmarks/bench_model.py --dtype-agreement        # float16 / bfloat16 hierarchy vs float32

Everything runs in one process, on CPU, in eval mode under `torch.inference_mode()`, with randomly initialized
weights (timing does not depend on the values, except through the realistic superpixel counts of the inputs):

1. Real photos from `skimage.data`, cycled to fill the largest batch, go once through `CastImageProcessor()`
   (SLIC, 196 segments, 224x224); the processor's own time per image is reported too.
2. Each CAST preset is compared with `ViTModel(ViTConfig(hidden_size=same, 12 layers, same heads, 4x MLP,
   patch 16), add_pooling_layer=False)`; both use the default attention implementation (sdpa).
3. Forward times are the median of `--repeats` runs after `--warmup` runs (`time.perf_counter`). A separate pass
   times the convolutional stem, farthest point sampling (FPS), graph pooling and the transformer blocks.
4. Multiply-adds are counted once per model with `torch.utils.flop_counter.FlopCounterMode` (eager attention
   during the count, because the flop counter has no formula for the CPU sdpa kernel). With `--compiled` or
   `--exported` they are also counted at the static token budget (a superpixel map with exactly
   `max_superpixel_tokens` tokens), which is what those graphs run for every image.

This is a script that prints numbers, not a test: nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# Make the repository importable when the script is run as `python benchmarks/bench_model.py`.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import modeling_cast.modeling_cast as cast_modeling_module  # noqa: E402  (the module whose FPS name is wrapped)
from modeling_cast import CastConfig, CastModel  # noqa: E402
from processing import CastImageProcessor  # noqa: E402
from processing.evaluation.metrics import matched_pixel_agreement  # noqa: E402
from transformers import ViTConfig, ViTModel  # noqa: E402

# Color photos bundled with scikit-image (no download needed), cycled to fill a batch.
_PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel")

# Forward-time goals of issue 13 (eager and compiled alike): CAST / ViT of the same width, per (preset, batch size).
TARGET_RATIOS = {("cast-small", 1): 0.75, ("cast-small", 8): 0.75, ("cast-base", 8): 0.65}
TARGET_FPS_SHARE = 0.03  # farthest point sampling < 3% of the CAST forward


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["cast-small", "cast-base"], help="CAST presets to time")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8], help="batch sizes to time")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forwards before each measurement")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads (default: torch's current)"
    )
    parser.add_argument("--image-size", type=int, default=224, help="input height and width (multiple of 16)")
    parser.add_argument("--no-flops", action="store_true", help="skip the multiply-add count")
    parser.add_argument(
        "--profile",
        metavar="MODEL:BATCH",
        default=None,
        help="also profile the CAST forward of this preset and batch size (e.g. cast-base:8) with torch.profiler",
    )
    parser.add_argument("--profile-rows", type=int, default=25, help="rows of the profiler table")
    parser.add_argument(
        "--compiled", action="store_true",
        help="add torch.compile rows (fullgraph CAST, dynamic batch; ViT compiled alike): cold compile s, warm ms",
    )
    parser.add_argument(
        "--exported", action="store_true",
        help="add rows for the torch.export program and the ONNX graph under onnxruntime (the `export` extra)",
    )
    parser.add_argument(
        "--dtype-agreement", action="store_true",
        help="report per level the share of pixels whose segment agrees with float32 for float16 and bfloat16 "
        "models (seeded CAST, ids matched one to one), instead of timing",
    )
    args = parser.parse_args(argv)
    if args.image_size % 16:
        parser.error(f"--image-size must be a multiple of 16 (ViT patch size), got {args.image_size}")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1 or min(args.batch_sizes) < 1:
        parser.error("--repeats, --threads and --batch-sizes must be >= 1 and --warmup >= 0")
    return args


# ----------------------------------------------------------------------------------------------------------------
# inputs


def load_photos(count: int) -> list[np.ndarray]:
    import skimage.data

    photos = []
    for name in _PHOTO_NAMES:
        try:
            photos.append((name, getattr(skimage.data, name)()))
        except Exception as error:  # a photo that needs a download (offline machine): skip it
            print(f"  (skipping skimage.data.{name}: {type(error).__name__})")
    if not photos:
        raise RuntimeError("no skimage.data photo could be loaded")
    return [photos[i % len(photos)] for i in range(count)]


def build_inputs(batch_size: int, image_size: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    processor = CastImageProcessor(size={"height": image_size, "width": image_size})
    named = load_photos(batch_size)
    images = [image for _, image in named]

    # processor time per image: one untimed call per distinct photo, then the median of a few single-image calls
    distinct = {name: image for name, image in named}
    for image in distinct.values():
        processor(image, return_tensors="pt")
    per_image = []
    for _ in range(3):
        for image in distinct.values():
            start = time.perf_counter()
            processor(image, return_tensors="pt")
            per_image.append(time.perf_counter() - start)
    start = time.perf_counter()
    inputs = processor(images, return_tensors="pt")
    batch_seconds = time.perf_counter() - start

    superpixels = inputs["superpixels"]
    counts = [int(s.max()) + 1 for s in superpixels]
    print(f"Processor (CastImageProcessor(), SLIC n_segments={processor.n_segments}, {image_size}x{image_size}):")
    print(f"  per image: median {1e3 * statistics.median(per_image):.1f} ms "
          f"(min {1e3 * min(per_image):.1f}, max {1e3 * max(per_image):.1f}) over {len(per_image)} single-image calls")
    print(f"  batch of {batch_size}: {1e3 * batch_seconds:.1f} ms ({1e3 * batch_seconds / batch_size:.1f} ms/image)")
    print(f"  photos: {', '.join(name for name, _ in named)}")
    print(f"  superpixels per image: {counts}")
    return {"pixel_values": inputs["pixel_values"], "superpixels": superpixels}, [name for name, _ in named]


def slice_inputs(inputs: dict[str, torch.Tensor], batch_size: int) -> dict[str, torch.Tensor]:
    return {key: value[:batch_size].contiguous() for key, value in inputs.items()}


# ----------------------------------------------------------------------------------------------------------------
# models


def build_models(preset: str) -> tuple[CastModel, ViTModel, CastConfig, ViTConfig]:
    cast_config = CastConfig.from_preset(preset)
    cast = CastModel(cast_config).eval()
    vit_config = ViTConfig(
        hidden_size=cast_config.hidden_size,
        num_hidden_layers=12,
        num_attention_heads=cast_config.num_attention_heads,
        intermediate_size=4 * cast_config.hidden_size,
        patch_size=16,
        image_size=224,
    )
    vit = ViTModel(vit_config, add_pooling_layer=False).eval()
    # Frozen parameters: no effect on inference-mode timings, but FlopCounterMode's module tracker fails on
    # outputs that are views of trainable parameters made in inference mode (CAST returns `cls_token.expand(...)`).
    cast.requires_grad_(False)
    vit.requires_grad_(False)
    return cast, vit, cast_config, vit_config


def vit_name(preset: str) -> str:
    return {"cast-small": "ViT-S/16", "cast-base": "ViT-B/16"}.get(preset.replace("-deep", ""), "ViT/16")


def count_parameters(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


# ----------------------------------------------------------------------------------------------------------------
# timing


def time_forwards(forwards: list, warmup: int, repeats: int) -> list[list[float]]:
    """Warm each forward up, then time the forwards alternately (one of each per round), so that load from other
    processes on the machine hits all of them alike. Returns the times (seconds) of each forward."""
    for forward in forwards:
        for _ in range(warmup):
            forward()
    times = [[] for _ in forwards]
    for _ in range(repeats):
        for forward, record in zip(forwards, times):
            start = time.perf_counter()
            forward()
            record.append(time.perf_counter() - start)
    return times


class SectionTimer:
    """Accumulates wall time spent in selected modules (forward hooks), in the stem's convolutions (a wrapper around
    the stem's `features` method) and in CAST's farthest point sampling (a wrapper around the name
    `modeling_cast.modeling_cast.farthest_point_sampling`); the wrappers are removed on exit."""

    def __init__(self, model: CastModel):
        self.model = model
        self.totals: dict[str, float] = {}
        self._handles = []
        self._starts: dict[int, list[float]] = {}
        self._original_fps = None
        self._stem = model.embeddings.patch_embeddings

    def _timed(self, name: str, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - start

        return timed

    def _watch(self, name: str, module: torch.nn.Module) -> None:
        key = id(module)

        def pre_hook(*_):
            self._starts.setdefault(key, []).append(time.perf_counter())

        def post_hook(*_):
            elapsed = time.perf_counter() - self._starts[key].pop()
            self.totals[name] = self.totals.get(name, 0.0) + elapsed

        self._handles.append(module.register_forward_pre_hook(pre_hook))
        self._handles.append(module.register_forward_hook(post_hook))

    def __enter__(self) -> "SectionTimer":
        # the embeddings call the stem's `features` (the convolutions) and apply its 1x1 projection to the tokens
        self._stem.features = self._timed("stem", self._stem.features)
        self._watch("embeddings", self.model.embeddings)
        for stage in self.model.encoder.stages:
            self._watch("pooling", stage.pooling)
            for layer in stage.layers:
                self._watch("blocks", layer)
        self._watch("encoder", self.model.encoder)

        self._original_fps = cast_modeling_module.farthest_point_sampling
        cast_modeling_module.farthest_point_sampling = self._timed("fps", self._original_fps)
        return self

    def __exit__(self, *exc) -> None:
        cast_modeling_module.farthest_point_sampling = self._original_fps
        del self._stem.features  # (the instance attribute shadowed the method)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def reset(self) -> None:
        self.totals.clear()


def section_shares(cast: CastModel, inputs: dict, warmup: int, repeats: int) -> dict[str, float]:
    """Fraction of the CAST forward spent in each section, from a separate pass with hooks and the FPS wrapper."""
    with SectionTimer(cast) as timer:
        for _ in range(warmup):
            cast(**inputs)
        timer.reset()
        total = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            cast(**inputs)
            total += time.perf_counter() - start
        sections = dict(timer.totals)
    if cast_modeling_module.farthest_point_sampling is not timer._original_fps:
        raise RuntimeError("the farthest_point_sampling wrapper was not restored")
    shares = {name: seconds / total for name, seconds in sections.items()}
    shares["embeddings_other"] = shares.get("embeddings", 0.0) - shares.get("stem", 0.0)
    shares["encoder_other"] = shares.get("encoder", 0.0) - shares.get("blocks", 0.0) - shares.get("pooling", 0.0)
    shares["after_encoder"] = 1.0 - shares.get("embeddings", 0.0) - shares.get("encoder", 0.0)
    shares["pooling_without_fps"] = shares.get("pooling", 0.0) - shares.get("fps", 0.0)
    return shares


@contextlib.contextmanager
def eager_attention(*models):
    previous = [model.config._attn_implementation for model in models]
    for model in models:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        for model, implementation in zip(models, previous):
            model.set_attn_implementation(implementation)


def count_flops(forward) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        forward()
    return counter.get_total_flops()


def budget_superpixels(config: CastConfig, batch_size: int, image_size: int) -> torch.LongTensor:
    """A superpixel map with exactly `max_superpixel_tokens` tokens per image (ids in raster order of the stem grid
    cells, the last id taking the remaining cells): an eager forward on it runs the rows that compiled and exported
    graphs run for every image, so its multiply-adds are theirs."""
    cells_per_row = image_size // config.patch_size
    cell = torch.arange(image_size) // config.patch_size
    cell_index = cell.view(-1, 1) * cells_per_row + cell.view(1, -1)
    ids = cell_index.clamp(max=config.max_superpixel_tokens - 1)
    return ids.expand(batch_size, -1, -1).contiguous()


def stage_rows(cast: CastModel, inputs: dict) -> str:
    """The token rows each stage runs in an eager forward: the first stage the batch's largest superpixel token
    count (at least `num_segments[0]`), of which each image's own count are real (its row-wise layers run on those
    only); compiled and exported graphs run the static budget `max_superpixel_tokens` instead."""
    config = cast.config
    stride = 1 if config.token_pooling_resolution == "pixel" else config.patch_size
    counts = (inputs["superpixels"][:, ::stride, ::stride].flatten(1).amax(dim=1) + 1).tolist()
    rows = min(config.max_superpixel_tokens, max(max(counts), config.num_segments[0]))
    return (f"first stage {rows} token rows per image, {sum(counts)} of {rows * len(counts)} real (compiled and "
            f"exported: {config.max_superpixel_tokens}); then {list(config.num_segments[:-1])}")


# ----------------------------------------------------------------------------------------------------------------
# main


def machine_facts(args) -> None:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print("=" * 100)
    print("CAST vs ViT CPU inference benchmark")
    print("=" * 100)
    print(f"python {platform.python_version()} | torch {torch.__version__} | "
          f"transformers {__import__('transformers').__version__} | numpy {np.__version__}")
    print(f"cpu: {platform.machine()} {platform.processor() or ''} | os.cpu_count()={os.cpu_count()} | "
          f"usable cpus={affinity} | capability={torch.backends.cpu.get_cpu_capability()} | "
          f"mkldnn={torch.backends.mkldnn.is_available()}")
    print(f"load average (1/5/15 min) before the run: {_load_average()} -- other processes skew CPU timings")
    print(f"threads: intra-op={torch.get_num_threads()} (requested {args.threads}) | "
          f"inter-op={torch.get_num_interop_threads()}")
    print(f"settings: models={args.models} batch sizes={args.batch_sizes} warmup={args.warmup} "
          f"repeats={args.repeats} (median) image={args.image_size}x{args.image_size}")
    goals = ", ".join(f"{preset} batch {batch} <= {ratio}x" for (preset, batch), ratio in TARGET_RATIOS.items())
    print(f"targets: CAST/ViT forward time {goals}; FPS share < {TARGET_FPS_SHARE:.0%} of CAST forward")
    print()


def _load_average() -> str:
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def profile_cast(preset: str, batch_size: int, inputs: dict, rows: int, warmup: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    cast = CastModel(CastConfig.from_preset(preset)).eval().requires_grad_(False)
    batch = slice_inputs(inputs, batch_size)
    with torch.inference_mode():
        for _ in range(max(warmup, 1)):
            cast(**batch)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            for _ in range(3):
                cast(**batch)
    print()
    print(f"Profile: {preset} batch {batch_size}, 3 forwards, sorted by self CPU time (top {rows})")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=60))


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    machine_facts(args)
    wall_start = time.perf_counter()

    largest = max(args.batch_sizes)
    inputs, _ = build_inputs(largest, args.image_size)
    print()
    if args.dtype_agreement:
        for preset in args.models:
            print_dtype_agreement(preset, inputs)
        return

    rows = []
    for preset in args.models:
        torch.manual_seed(0)
        cast, vit, _, _ = build_models(preset)  # outside inference mode, as users build them
        with torch.inference_mode():
            print(f"{preset}: CAST {count_parameters(cast):.1f}M params (attn={cast.config._attn_implementation}) | "
                  f"{vit_name(preset)} {count_parameters(vit):.1f}M params (attn={vit.config._attn_implementation}, "
                  f"{(args.image_size // 16) ** 2} patch tokens)")
            for batch_size in args.batch_sizes:
                batch = slice_inputs(inputs, batch_size)
                # the ViT is configured for 224x224 (as its checkpoints are); other sizes interpolate its positions
                vit_inputs = {"pixel_values": batch["pixel_values"]}
                if args.image_size != 224:
                    vit_inputs["interpolate_pos_encoding"] = True
                cast_times, vit_times = time_forwards(
                    [lambda: cast(**batch), lambda: vit(**vit_inputs)], args.warmup, args.repeats
                )
                shares = section_shares(cast, batch, warmup=1, repeats=max(1, args.repeats // 2))
                macs_ratio = cast_gmacs = vit_gmacs = None
                if not args.no_flops:
                    with eager_attention(cast, vit):
                        cast_gmacs = count_flops(lambda: cast(**batch)) / 2e9 / batch_size
                        vit_gmacs = count_flops(lambda: vit(**vit_inputs)) / 2e9 / batch_size
                    macs_ratio = cast_gmacs / vit_gmacs
                row = {
                    "model": preset,
                    "vit": vit_name(preset),
                    "batch": batch_size,
                    "cast_ms": 1e3 * statistics.median(cast_times),
                    "cast_min": 1e3 * min(cast_times),
                    "cast_spread": 1e3 * (max(cast_times) - min(cast_times)),
                    "vit_ms": 1e3 * statistics.median(vit_times),
                    "vit_min": 1e3 * min(vit_times),
                    "vit_spread": 1e3 * (max(vit_times) - min(vit_times)),
                    "shares": shares,
                    "cast_gmacs": cast_gmacs,
                    "vit_gmacs": vit_gmacs,
                    "macs_ratio": macs_ratio,
                    "tokens": stage_rows(cast, batch),
                }
                rows.append(row)
                print(f"  batch {batch_size}: CAST {row['cast_ms']:.1f} ms, {row['vit']} {row['vit_ms']:.1f} ms "
                      f"(CAST: {row['tokens']})", flush=True)
            del cast, vit
    print()
    print_table(rows)
    print_targets(rows)
    if args.compiled or args.exported:
        print_static_rows(args, inputs)
    print(f"\nbenchmark wall time: {time.perf_counter() - wall_start:.0f} s; load average after: {_load_average()}")

    if args.profile:
        preset, _, batch_text = args.profile.partition(":")
        profile_batch = int(batch_text or largest)
        if profile_batch > largest:
            inputs, _ = build_inputs(profile_batch, args.image_size)
        profile_cast(preset, profile_batch, inputs, args.profile_rows, args.warmup)


def print_table(rows: list[dict]) -> None:
    def pct(value: float) -> str:
        return f"{100 * value:5.1f}%"

    header = (f"{'model':<12} {'batch':>5} {'CAST ms':>9} {'ViT ms':>9} {'CAST/ViT':>9} {'MAC ratio':>9} "
              f"{'FPS':>7} {'stem':>7} {'pool':>7} {'pool-FPS':>8} {'blocks':>7} {'other':>7}")
    print("Forward time (median) and share of the CAST forward per section")
    print(header)
    print("-" * len(header))
    for row in rows:
        s = row["shares"]
        other = s["embeddings_other"] + s["encoder_other"] + s["after_encoder"]
        macs = f"{row['macs_ratio']:9.2f}" if row["macs_ratio"] is not None else f"{'-':>9}"
        print(f"{row['model']:<12} {row['batch']:>5} {row['cast_ms']:9.1f} {row['vit_ms']:9.1f} "
              f"{row['cast_ms'] / row['vit_ms']:9.2f} {macs} {pct(s.get('fps', 0.0)):>7} {pct(s.get('stem', 0.0)):>7} "
              f"{pct(s.get('pooling', 0.0)):>7} {pct(s['pooling_without_fps']):>8} {pct(s.get('blocks', 0.0)):>7} "
              f"{pct(other):>7}")
    print()
    print("ViT is the same-width ViT/16 baseline (12 layers, 196 patch tokens). MAC ratio = CAST / ViT multiply-adds")
    print("(FlopCounterMode, eager attention). Shares come from a separate pass with forward hooks and an FPS wrapper:")
    print("stem = its convolutions; pool includes FPS; other = superpixel pooling of the stem features and their 1x1 "
          "projection, masks, final norm and the hierarchy.")
    print()
    print(f"{'model':<12} {'batch':>5} {'CAST GMAC/img':>14} {'ViT GMAC/img':>13} {'CAST min ms':>12} "
          f"{'ViT min ms':>11} {'min ratio':>9} {'CAST max-min':>13} {'ViT max-min':>12}  detail of 'other'")
    for row in rows:
        s = row["shares"]
        gm = (f"{row['cast_gmacs']:14.2f} {row['vit_gmacs']:13.2f}" if row["cast_gmacs"] is not None
              else f"{'-':>14} {'-':>13}")
        print(f"{row['model']:<12} {row['batch']:>5} {gm} {row['cast_min']:12.1f} {row['vit_min']:11.1f} "
              f"{row['cast_min'] / row['vit_min']:9.2f} {row['cast_spread']:13.1f} {row['vit_spread']:12.1f}  "
              f"embed-other {100 * s['embeddings_other']:.1f}%, encoder-other {100 * s['encoder_other']:.1f}%, "
              f"after-encoder {100 * s['after_encoder']:.1f}%")
    print("(max-min: spread of the timed repeats in ms; a large spread means other load on the machine)")


def print_targets(rows: list[dict]) -> None:
    print()
    print("Targets (informational, nothing is asserted):")
    for row in rows:
        ratio = row["cast_ms"] / row["vit_ms"]
        fps = row["shares"].get("fps", 0.0)
        marks = []
        target = TARGET_RATIOS.get((row["model"], row["batch"]))
        if target is not None:
            # the multiply-add ratio is the floor that removing every per-call overhead would reach
            floor = f", MAC ratio {row['macs_ratio']:.2f}" if row["macs_ratio"] is not None else ""
            marks.append(f"CAST/ViT {ratio:.2f} {'<=' if ratio <= target else '>'} {target} "
                         f"({'met' if ratio <= target else 'NOT met'}{floor})")
        marks.append(f"FPS share {100 * fps:.1f}% ({'met' if fps < TARGET_FPS_SHARE else 'NOT met'})")
        print(f"  {row['model']} batch {row['batch']}: " + "; ".join(marks))


# ----------------------------------------------------------------------------------------------------------------
# compiled, exported and onnxruntime rows; half-precision agreement


def _cold_and_warm(forward, warmup: int, repeats: int) -> tuple[float, float]:
    """Seconds of the first call (compilation included) and the median ms of `repeats` later calls."""
    start = time.perf_counter()
    forward()
    cold = time.perf_counter() - start
    return cold, 1e3 * statistics.median(time_forwards([forward], warmup, repeats)[0])


def print_static_rows(args, inputs: dict) -> None:
    """One row per (preset, batch, route): cold seconds (compile or export included) and warm ms, with the
    equally run ViT (compiled for the compiled row, eager otherwise) and the ratio."""
    for preset in args.models:
        torch.manual_seed(0)
        cast, vit, cast_config, _ = build_models(preset)
        print()
        if not args.no_flops:
            pixels = inputs["pixel_values"][:1]
            with eager_attention(cast, vit), torch.inference_mode():
                budget_macs = count_flops(lambda: cast(pixels, budget_superpixels(cast_config, 1, args.image_size)))
                vit_macs = count_flops(lambda: vit(pixel_values=pixels))
            print(f"{preset}: MAC ratio at the static budget of {cast_config.max_superpixel_tokens} tokens (the "
                  f"rows compiled and exported graphs run): {budget_macs / vit_macs:.2f}")
        print(f"{'model':<12} {'batch':>5} {'route':<16} {'cold s':>8} {'CAST ms':>9} {'ViT ms':>9} {'CAST/ViT':>9}")
        for batch_size in args.batch_sizes:
            batch = slice_inputs(inputs, batch_size)
            vit_pixels = batch["pixel_values"]
            routes = []
            with torch.inference_mode():
                _, vit_ms = _cold_and_warm(lambda: vit(pixel_values=vit_pixels), args.warmup, args.repeats)
            if args.compiled:
                torch._dynamo.reset()
                # a dynamic batch dimension: a second batch size reuses the graph
                for tensor in batch.values():
                    torch._dynamo.mark_dynamic(tensor, 0)
                compiled_cast, compiled_vit = torch.compile(cast, fullgraph=True), torch.compile(vit)
                with torch.inference_mode():
                    cold, cast_ms = _cold_and_warm(lambda: compiled_cast(**batch), args.warmup, args.repeats)
                    _, compiled_vit_ms = _cold_and_warm(
                        lambda: compiled_vit(pixel_values=vit_pixels), args.warmup, args.repeats
                    )
                routes.append(("torch.compile", cold, cast_ms, compiled_vit_ms))
            if args.exported:
                routes.extend(_exported_routes(cast, batch, args))
            for route, cold, cast_ms, baseline_ms in [(r[0], r[1], r[2], r[3] if len(r) > 3 else vit_ms) for r in routes]:
                print(f"{preset:<12} {batch_size:>5} {route:<16} {cold:8.1f} {cast_ms:9.1f} {baseline_ms:9.1f} "
                      f"{cast_ms / baseline_ms:9.2f}", flush=True)
        del cast, vit
    print("(cold: the first call, compilation or export included; ViT: compiled ViT for the compiled row, eager ViT")
    print(" for the exported rows; onnxruntime runs on the CPU execution provider with its default threads)")


def _exported_routes(cast: CastModel, batch: dict, args) -> list[tuple]:
    import tempfile

    from modeling_cast.commands.export import CastExportModule, export_onnx

    routes = []
    example = slice_inputs(batch, 2) if batch["pixel_values"].shape[0] >= 2 else {
        key: value.expand(2, *value.shape[1:]).contiguous() for key, value in batch.items()
    }
    start = time.perf_counter()
    program = torch.export.export(
        CastExportModule(cast).eval(), (example["pixel_values"], example["superpixels"]),
        dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch", min=1, max=1024)},
                        "superpixels": {0: torch.export.Dim("batch", min=1, max=1024)}},
        strict=False,
    ).module()
    export_seconds = time.perf_counter() - start
    with torch.inference_mode():
        _, program_ms = _cold_and_warm(lambda: program(batch["pixel_values"], batch["superpixels"]), args.warmup,
                                       args.repeats)
    routes.append(("torch.export", export_seconds, program_ms))
    try:
        import onnxruntime
    except ImportError:
        print("  (onnxruntime missing: pip install 'cast-transformers[export]'; no onnxruntime row)")
        return routes
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cast.onnx"
        start = time.perf_counter()
        export_onnx(cast, example["pixel_values"], example["superpixels"], path)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        onnx_seconds = time.perf_counter() - start
    feed = {"pixel_values": batch["pixel_values"].numpy(), "superpixels": batch["superpixels"].numpy()}
    _, onnx_ms = _cold_and_warm(lambda: session.run(None, feed), args.warmup, args.repeats)
    routes.append(("onnxruntime", onnx_seconds, onnx_ms))
    return routes


def print_dtype_agreement(preset: str, inputs: dict) -> None:
    """Per level, the mean over the photos of the matched pixel agreement of float16 and bfloat16 with float32."""
    torch.manual_seed(0)
    model = CastModel(CastConfig.from_preset(preset)).eval()
    hierarchies = {}
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        with torch.inference_mode():
            # the processor's float32 pixels go in as they are: the model casts them to its dtype
            hierarchies[dtype] = model.to(dtype)(**inputs).hierarchy
    num_images, num_levels = hierarchies[torch.float32].shape[:2]
    print(f"{preset} (seeded, random weights), {num_images} photos: matched pixel agreement with float32 per level")
    for dtype in (torch.float16, torch.bfloat16):
        per_level = [
            statistics.mean(
                matched_pixel_agreement(hierarchies[torch.float32][image, level], hierarchies[dtype][image, level])
                for image in range(num_images)
            )
            for level in range(num_levels)
        ]
        print(f"  {str(dtype).replace('torch.', ''):<9} " + " / ".join(f"{value:.3f}" for value in per_level))


if __name__ == "__main__":
    main()
