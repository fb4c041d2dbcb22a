# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Training-step benchmark: one optimizer step (forward, backward, AdamW) of CAST-S against ViT-S/16.

Run from the repository root:

    .venv/bin/python benchmarks/bench_train.py                      # batch 8, 224x224, CPU
    .venv/bin/python benchmarks/bench_train.py --rounds 3 --repeats 5 --threads 2
    .venv/bin/python benchmarks/bench_train.py --device cuda --bf16  # where a GPU is available
    .venv/bin/python benchmarks/bench_train.py --memory --batch-size 8  # memory of the pixel hierarchy only (no timing)

What is timed, for each model, in a fresh process of its own (so that the peak memory is the model's):

1. Inputs: `--batch-size` real photos from `skimage.data` (cycled) through `CastImageProcessor()` (SLIC, 196
   superpixels, 224x224), giving realistic superpixel counts; random labels of 1000 classes. Not timed.
2. Models: `CastForImageClassification` with the cast-small preset and `ViTForImageClassification` with the
   ViT-S/16 (DeiT-S) shape: 384 wide, 12 layers, 6 heads, MLP 1536, patch 16; both with 1000 classes, randomly
   initialized, default (sdpa) attention, in train mode.
3. One step = forward with labels (cross-entropy loss), backward, `torch.optim.AdamW.step()`, `zero_grad()`. The
   AdamW is torch's default on CPU (a for-loop over the parameters); `--optimizer fused` runs the fused one, which
   transformers' `Trainer` uses by default with torch >= 2.8.
   The median over `--repeats` steps after `--warmup` steps is reported (`time.perf_counter`, CUDA synchronized).
4. Peak memory: CPU, the process's peak resident set size (`resource.getrusage`, `ru_maxrss`) and its growth from
   just before the first step (model, inputs and processor loaded); CUDA, `torch.cuda.max_memory_allocated`.

With `--rounds N` the two models alternate N times (CAST, ViT, CAST, ViT, ...), which evens out load changes on a
shared machine; the steps of all rounds are pooled and their median and minimum reported (on a busy machine the
minimum is the least disturbed measurement). Nothing is asserted: this prints numbers.

With `--memory` nothing is timed: one CAST-S training step (forward with labels and backward; the optimizer's state
does not depend on it) runs twice in one process, without the pixel hierarchy (`output_hierarchy=False`, the
training default) and with it (`output_hierarchy=True`, what every training step computed before it became
optional), and the peak tensor memory of each is printed: on CPU from the allocator events that `torch.profiler`
records (`profile_memory=True`; the running sum of allocations and frees from the start of the step), on CUDA from
`torch.cuda.max_memory_allocated`, both above what was allocated before the step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

TARGET_RATIO = 0.7  # CAST-S step time <= 0.7x ViT-S/16 step time, batch 8, 224x224 (issue 13)
OFFICIAL_CAST_S_CPU_SECONDS = 1.5  # the official CAST-S step on a 2-core CPU (issue 5)
_NUM_CLASSES = 1000
_PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel")
_KIB = 1024
_MODELS = ("cast-small", "vit-small")


# `torch.optim.AdamW` keyword arguments of each implementation
_ADAMW_IMPLEMENTATIONS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224, help="input height and width (multiple of 16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per round (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before each round's timed steps")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two models this many times")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for forward and loss")
    parser.add_argument(
        "--optimizer",
        choices=sorted(_ADAMW_IMPLEMENTATIONS),
        default="for-loop",
        help="AdamW implementation, both models alike (default: for-loop, torch.optim.AdamW's own default on CPU; "
        "fused is what transformers' Trainer uses by default with torch >= 2.8, optim='adamw_torch_fused')",
    )
    parser.add_argument(
        "--memory", action="store_true", help="only compare CAST-S step memory without and with the pixel hierarchy"
    )
    parser.add_argument("--worker", choices=_MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.image_size % 16:
        parser.error(f"--image-size must be a multiple of 16 (ViT patch size), got {args.image_size}")
    if min(args.batch_size, args.repeats, args.rounds) < 1 or args.warmup < 0:
        parser.error("--batch-size, --repeats and --rounds must be >= 1, --warmup >= 0")
    return args


# ----------------------------------------------------------------------------------------------------------------
# worker: one model, one process


def _photos(count: int) -> list:
    import skimage.data

    photos = []
    for name in _PHOTO_NAMES:
        try:
            photos.append(getattr(skimage.data, name)())
        except Exception as error:  # a photo that needs a download (offline machine): use the others
            print(f"  (skipping skimage.data.{name}: {type(error).__name__})", file=sys.stderr)
    if not photos:
        raise RuntimeError("no skimage.data photo could be loaded")
    return [photos[index % len(photos)] for index in range(count)]


def _build(model_name: str, args: argparse.Namespace):
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    from modeling_cast import CastConfig, CastForImageClassification
    from processing import CastImageProcessor

    torch.manual_seed(0)
    processor = CastImageProcessor(size={"height": args.image_size, "width": args.image_size})
    inputs = dict(processor(_photos(args.batch_size), return_tensors="pt"))
    inputs["labels"] = torch.randint(_NUM_CLASSES, (args.batch_size,))
    if model_name == "cast-small":
        model = CastForImageClassification(CastConfig.from_preset("cast-small", num_labels=_NUM_CLASSES))
        counts = [int(s.max()) + 1 for s in inputs["superpixels"]]
    else:
        config = ViTConfig(
            hidden_size=384,
            num_hidden_layers=12,
            num_attention_heads=6,
            intermediate_size=1536,
            patch_size=16,
            image_size=args.image_size,
            num_labels=_NUM_CLASSES,
        )
        model = ViTForImageClassification(config)
        inputs.pop("superpixels")
        counts = None
    model = model.to(args.device).train()
    inputs = {key: value.to(args.device) for key, value in inputs.items()}
    return model, inputs, counts


def run_worker(args: argparse.Namespace) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, inputs, counts = _build(args.worker, args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **_ADAMW_IMPLEMENTATIONS[args.optimizer])
    cuda = args.device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def step() -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.repeats)]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "model": args.worker,
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "peak_rss_mib": peak_kib / _KIB,
        "step_rss_growth_mib": (peak_kib - baseline_kib) / _KIB,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / _KIB**2 if cuda else None,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "superpixels": counts,
        "threads": torch.get_num_threads(),
    }


def _cpu_step_memory(step) -> tuple[int, int]:
    """Peak of the tensor memory live while `step()` runs, above what was live before, and the bytes it allocates
    in all (CPU allocator events of `torch.profiler`, summed in time order)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    events = [event for event in profiler.profiler.kineto_results.events() if event.name() == "[memory]"]
    live = peak = allocated = 0
    for event in sorted(events, key=lambda event: event.start_ns()):
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
        allocated += max(event.nbytes(), 0)
    return peak, allocated


def run_memory(args: argparse.Namespace) -> dict:
    """Peak tensor memory of one CAST-S training step (forward with labels, backward) without and with the
    pixel hierarchy."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, inputs, counts = _build("cast-small", args)
    cuda = args.device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def step(output_hierarchy: bool) -> None:
        with autocast:
            loss = model(**inputs, output_hierarchy=output_hierarchy).loss
        loss.backward()

    step(False)  # first-call allocations (kernels, workspaces) out of the way
    result = {"superpixels": counts}
    for output_hierarchy, name in ((False, "without"), (True, "with")):
        model.zero_grad(set_to_none=True)  # gradients are allocated inside the step, as after optimizer.zero_grad
        if cuda:
            torch.cuda.synchronize()
            before = torch.cuda.memory_stats()
            torch.cuda.reset_peak_memory_stats()
            step(output_hierarchy)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - before["allocated_bytes.all.current"]
            key = "allocated_bytes.all.allocated"
            allocated = torch.cuda.memory_stats()[key] - before[key]
        else:
            peak, allocated = _cpu_step_memory(lambda: step(output_hierarchy))
        result[f"{name}_peak_mib"], result[f"{name}_allocated_mib"] = peak / _KIB**2, allocated / _KIB**2
    return result


def print_memory(args: argparse.Namespace) -> None:
    result = run_memory(args)
    print(
        f"Tensor memory of one CAST-S training step (forward + backward), batch {args.batch_size}, "
        f"{args.image_size}x{args.image_size}, device {args.device}{', bf16 autocast' if args.bf16 else ''}"
    )
    print(f"Superpixels per image: {result['superpixels']}")
    print(f"{'':52s} {'peak (MiB)':>11s} {'allocated (MiB)':>16s}")
    for name, label in (("without", "without the pixel hierarchy (training default)"),
                        ("with", "with the pixel hierarchy (output_hierarchy=True)")):
        print(f"  {label:50s} {result[f'{name}_peak_mib']:11.1f} {result[f'{name}_allocated_mib']:16.1f}")
    for measure in ("peak", "allocated"):
        saved = result[f"with_{measure}_mib"] - result[f"without_{measure}_mib"]
        print(
            f"  saved, {measure}: {saved:.1f} MiB per step ({100 * saved / result[f'with_{measure}_mib']:.1f}%), "
            f"{saved / args.batch_size:.2f} MiB per image"
        )


# ----------------------------------------------------------------------------------------------------------------
# driver


def _launch(model_name: str, argv: list[str]) -> dict:
    command = [sys.executable, os.path.abspath(__file__), *argv, "--worker", model_name]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker for {model_name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return
    if args.memory:
        print_memory(args)
        return

    print(
        f"One training step (forward + backward + AdamW), batch {args.batch_size}, "
        f"{args.image_size}x{args.image_size}, AdamW {args.optimizer}, "
        f"device {args.device}{', bf16 autocast' if args.bf16 else ''}"
    )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"load average before {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, list[dict]] = {name: [] for name in _MODELS}
    for round_index in range(args.rounds):
        for name in _MODELS:
            results[name].append(_launch(name, argv))
            last = results[name][-1]
            print(
                f"  round {round_index + 1} {name:10s}: median {last['median_s']:.3f} s "
                f"(min {last['min_s']:.3f}, max {last['max_s']:.3f}), threads {last['threads']}"
            )

    # all timed steps of all rounds together: the median is the typical step, the minimum the least disturbed one
    pooled = {name: [t for run in runs for t in run["times_s"]] for name, runs in results.items()}
    median = {name: statistics.median(times) for name, times in pooled.items()}
    best = {name: min(times) for name, times in pooled.items()}
    cast = results["cast-small"][-1]
    print(f"Superpixels per image (CAST inputs): {cast['superpixels']}")
    print()
    header = (
        f"{'model':10s} {'params (M)':>10s} {'median step (s)':>16s} {'min step (s)':>13s} {'peak RSS (MiB)':>15s} "
        f"{'RSS growth in steps (MiB)':>26s}"
    )
    print(header + (f" {'CUDA peak (MiB)':>16s}" if cast["cuda_peak_mib"] is not None else ""))
    for name, label in (("cast-small", "CAST-S"), ("vit-small", "ViT-S/16")):
        run = results[name][-1]
        line = (
            f"{label:10s} {run['parameters_m']:10.1f} {median[name]:16.3f} {best[name]:13.3f} "
            f"{max(r['peak_rss_mib'] for r in results[name]):15.0f} "
            f"{max(r['step_rss_growth_mib'] for r in results[name]):26.0f}"
        )
        if run["cuda_peak_mib"] is not None:
            line += f" {max(r['cuda_peak_mib'] for r in results[name]):16.0f}"
        print(line)
    ratio = median["cast-small"] / median["vit-small"]
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print()
    print(
        f"CAST-S / ViT-S/16 step time: {ratio:.2f}x on medians, "
        f"{best['cast-small'] / best['vit-small']:.2f}x on minima "
        f"({verdict} the target <= {TARGET_RATIO:.1f}x)"
    )
    if args.device == "cpu":
        print(
            f"CAST-S step: median {median['cast-small']:.3f} s, min {best['cast-small']:.3f} s "
            f"(the official CAST-S: about {OFFICIAL_CAST_S_CPU_SECONDS} s on a 2-core CPU)"
        )
    print(f"Load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
