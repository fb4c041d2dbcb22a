# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The CAST paper's claim in miniature: trained only to classify, does CAST segment objects and parts better than a ViT?

Both models are trained from scratch on the same generated part-whole images (`processing/synthetic/part_whole.py`: four object
classes that differ only in their parts), with the same steps, batch, optimizer and schedule, on image labels alone:

* CAST (`CastForImageClassification`) with superpixel tokens and graph pooling;
* a ViT (`transformers.ViTForImageClassification`, patch 8) of the same width and depth, its MLP width chosen so that
  both have the same number of trainable parameters (within a fraction of a percent).

Then the held-out images are segmented at the same segment counts: CAST by its hierarchy (`num_segments` segments per
level); the ViT as the paper does it, by spherical k-means of its last-layer patch features upsampled (bilinear) to
pixels, the coarser levels clustering the finer level's centroids (so its levels nest like CAST's). Segments are
scored against the object masks (background vs the object's class) and the part masks with the region mIoU of the
paper's PartImageNet protocol (per-image Jaccard averaged over images), each segment taking the ground-truth label it
overlaps most (an *oracle* labeling; the paper uses an open-vocabulary classifier), and with the boundary F-score
(BSDS tolerance) of the labeled maps. The same two models before training are scored too, as a control.

    python benchmarks/part_whole/run_part_whole_benchmark.py --output_dir outputs/part_whole_benchmark

writes `results.json`, `results.md` (tables, runtime, machine) and `figure_grid.png` (held-out images: CAST levels
above, ground-truth parts and ViT levels below) into `--output_dir`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw
from torch.nn import functional as F
from transformers import HfArgumentParser, Trainer, TrainingArguments, ViTConfig, ViTForImageClassification
from transformers import default_data_collator, set_seed

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:  # run as `python benchmarks/part_whole/run_part_whole_benchmark.py` from a source checkout
    sys.path.insert(0, str(_REPO_ROOT))

from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor  # noqa: E402
from modeling_cast.configuration_cast import superpixel_token_budget  # noqa: E402
from processing.evaluation.metrics import hierarchy_level_scores, superpixel_quality  # noqa: E402
from processing.synthetic.part_whole import (  # noqa: E402
    HELD_OUT_SEED_OFFSET,
    PART_NAMES,
    PART_WHOLE_CLASSES,
    render_part_whole_sample,
)
from processing.visualization_cast import draw_hierarchy  # noqa: E402

__all__ = [
    "BenchmarkArguments",
    "build_models",
    "feature_hierarchy",
    "main",
    "matched_vit_intermediate_size",
    "spherical_kmeans",
]

logger = logging.getLogger(__name__)

_VIT_PATCH_SIZE = 8  # the CAST stem's stride: both models see 8x8-pixel cells
_FIGURE_GAP = 3
_LABEL_WIDTH = 44


@dataclass
class BenchmarkArguments:
    """Size of the experiment. The defaults are the configuration reported in benchmarks/part_whole/RESULTS.md."""

    output_dir: str = field(default="outputs/part_whole_benchmark", metadata={"help": "Where results and the figure go."})
    train_samples: int = field(default=4000, metadata={"help": "Generated training images."})
    eval_samples: int = field(default=200, metadata={"help": "Generated held-out images (another seed)."})
    image_size: int = field(default=96, metadata={"help": "Image side (a multiple of 8)."})
    n_segments: int = field(default=64, metadata={"help": "SLIC superpixels requested per image (CAST's tokens)."})
    hidden_size: int = field(default=96, metadata={"help": "Width of both models."})
    num_attention_heads: int = field(default=3, metadata={"help": "Attention heads of both models."})
    depths: list[int] = field(default_factory=lambda: [2, 2, 2, 1], metadata={"help": "CAST blocks per stage; the ViT gets their sum."})
    num_segments: list[int] = field(
        default_factory=lambda: [32, 16, 8, 4], metadata={"help": "Segments per CAST level = ViT k-means clusters per level."}
    )
    max_steps: int = field(default=1500, metadata={"help": "Optimizer steps for each model."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size of both models."})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW peak learning rate (both models)."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (both models)."})
    warmup_steps: int = field(default=150, metadata={"help": "Linear warm-up steps before the cosine decay."})
    seed: int = field(default=0, metadata={"help": "Seed of the data, the initializations and the k-means."})
    num_threads: int = field(
        default=2,
        metadata={"help": "torch threads (the ViT's 144-token batches gain from 2; more gains little at this size)."},
    )
    kmeans_iterations: int = field(default=30, metadata={"help": "Lloyd iterations of the ViT's spherical k-means."})
    object_level: int = field(default=-1, metadata={"help": "Level scored in the headline object columns (-1: coarsest)."})
    part_level: int = field(default=-2, metadata={"help": "Level scored in the headline part columns."})
    eval_batch_size: int = field(default=50, metadata={"help": "Batch size when segmenting the held-out images."})
    figure_images: int = field(default=6, metadata={"help": "Held-out images shown in figure_grid.png."})
    untrained_baselines: bool = field(default=True, metadata={"help": "Also score both models before training."})

    def __post_init__(self):
        for name in ("train_samples", "eval_samples", "n_segments", "max_steps", "batch_size", "num_threads",
                     "kmeans_iterations", "eval_batch_size", "hidden_size", "num_attention_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 32 or self.image_size % _VIT_PATCH_SIZE:
            raise ValueError(f"--image_size must be a multiple of {_VIT_PATCH_SIZE} and >= 32, got {self.image_size}")
        if len(self.depths) != len(self.num_segments):
            raise ValueError(f"--depths and --num_segments need one entry per stage, got {self.depths} and {self.num_segments}")
        for name in ("object_level", "part_level"):
            level = getattr(self, name)
            if not -len(self.num_segments) <= level < len(self.num_segments):
                raise ValueError(f"--{name} must index one of the {len(self.num_segments)} levels, got {level}")
        if not 0 <= self.figure_images <= self.eval_samples:
            raise ValueError(f"--figure_images must be in [0, eval_samples], got {self.figure_images}")


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


class PartWholeTensors(torch.utils.data.Dataset):
    """Preprocessed part-whole images in memory: `pixel_values` (stored as float16), `superpixels` and `labels`.
    Training copies are flipped horizontally at random (image and superpixels together); the ViT's Trainer drops
    `superpixels`, which its forward does not take."""

    def __init__(self, pixel_values: torch.Tensor, superpixels: torch.Tensor, labels: torch.Tensor, flip: bool):
        self.pixel_values, self.superpixels, self.labels, self.flip = pixel_values, superpixels, labels, flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pixel_values, superpixels = self.pixel_values[index].float(), self.superpixels[index].long()
        if self.flip and bool(torch.rand(()) < 0.5):
            pixel_values, superpixels = pixel_values.flip(-1), superpixels.flip(-1)
        return {"pixel_values": pixel_values, "superpixels": superpixels, "labels": self.labels[index]}


def _generate(
    num_samples: int, image_size: int, seed: int, processor: CastImageProcessor, chunk: int = 256, mode: str = "classic"
):
    """Render samples and run the image processor (superpixels included) once, in chunks to bound memory."""
    pixel_values, superpixels, labels, samples = [], [], [], []
    for start in range(0, num_samples, chunk):
        indices = range(start, min(start + chunk, num_samples))
        batch = [render_part_whole_sample(index, image_size, seed, mode) for index in indices]
        inputs = processor([sample.image for sample in batch], return_tensors="pt")
        pixel_values.append(inputs["pixel_values"].half())
        superpixels.append(inputs["superpixels"].to(torch.int16))
        labels.extend(sample.label for sample in batch)
        samples.extend(batch)
    return torch.cat(pixel_values), torch.cat(superpixels), torch.tensor(labels), samples


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


def _trainable_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def _vit_config(args: BenchmarkArguments, intermediate_size: int, classes=PART_WHOLE_CLASSES) -> ViTConfig:
    return ViTConfig(
        hidden_size=args.hidden_size,
        num_hidden_layers=sum(args.depths),
        num_attention_heads=args.num_attention_heads,
        intermediate_size=intermediate_size,
        image_size=args.image_size,
        patch_size=_VIT_PATCH_SIZE,
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id={name: index for index, name in enumerate(classes)},
    )


def matched_vit_intermediate_size(args: BenchmarkArguments, target_parameters: int, classes=PART_WHOLE_CLASSES) -> int:
    """The ViT MLP width that brings its trainable parameter count closest to `target_parameters` (the count is
    linear in the width, so two small models give the line)."""
    with torch.device("meta"):
        base = _trainable_parameters(ViTForImageClassification(_vit_config(args, 1, classes)))
        slope = _trainable_parameters(ViTForImageClassification(_vit_config(args, 2, classes))) - base
    return max(1, round((target_parameters - base) / slope) + 1)


def build_models(args, classes=PART_WHOLE_CLASSES) -> tuple[CastForImageClassification, ViTForImageClassification]:
    """A CAST classifier and a ViT of the same width, depth and (trainable) parameter count for `classes`, seeded
    with `args.seed` (`args`: any object with the fields of [`BenchmarkArguments`] that a model reads)."""
    cast_config = CastConfig(
        hidden_size=args.hidden_size,
        num_attention_heads=args.num_attention_heads,
        pooling_num_attention_heads=args.num_attention_heads,
        depths=list(args.depths),
        num_segments=list(args.num_segments),
        image_size=args.image_size,
        num_labels=len(classes),
        max_superpixel_tokens=superpixel_token_budget(args.n_segments, args.image_size),
        id2label=dict(enumerate(classes)),
        label2id={name: index for index, name in enumerate(classes)},
    )
    set_seed(args.seed)
    cast = CastForImageClassification(cast_config)
    intermediate_size = matched_vit_intermediate_size(args, _trainable_parameters(cast), classes)
    set_seed(args.seed)
    vit = ViTForImageClassification(_vit_config(args, intermediate_size, classes))
    return cast, vit


def _train(model, dataset, args: BenchmarkArguments, name: str, callbacks=None, data_collator=default_data_collator) -> dict:
    training_args = TrainingArguments(
        output_dir=os.path.join(args.output_dir, f"trainer_{name}"),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        lr_scheduler_type="cosine",
        optim="adamw_torch",
        logging_steps=max(1, args.max_steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=args.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=training_args, train_dataset=dataset, data_collator=data_collator, callbacks=callbacks
    )
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"train_runtime_s": result.metrics["train_runtime"], "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None}


# ---------------------------------------------------------------------------------------------------------------
# The ViT baseline's segmentation: spherical k-means of upsampled patch features
# ---------------------------------------------------------------------------------------------------------------


def spherical_kmeans(
    features: torch.Tensor,
    num_clusters: int,
    iterations: int = 30,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    k-means on the unit sphere (cosine similarity) of `features` (N, C), with k-means++ seeding from `generator`.

    Returns:
        `(assignments, centroids)`: `(N,)` cluster ids in `[0, num_clusters)` and `(num_clusters, C)` unit vectors. A
        cluster left empty keeps its previous centroid.
    """
    points = F.normalize(features.double(), dim=1)
    num_points = points.shape[0]
    weights = torch.ones(num_points, dtype=points.dtype) if weights is None else weights.double()
    num_clusters = min(num_clusters, num_points)
    first = int(torch.multinomial(weights, 1, generator=generator))
    centroids = points[first : first + 1]
    distance = (1 - points @ centroids.T).squeeze(1).clamp(min=0)
    for _ in range(1, num_clusters):
        probabilities = distance * weights
        if float(probabilities.sum()) <= 0:  # fewer distinct points than clusters: duplicate seeds stay empty
            probabilities = weights
        chosen = int(torch.multinomial(probabilities, 1, generator=generator))
        centroids = torch.cat([centroids, points[chosen : chosen + 1]])
        distance = torch.minimum(distance, (1 - points @ points[chosen]).clamp(min=0))
    assignments = (points @ centroids.T).argmax(dim=1)
    for _ in range(iterations):
        sums = torch.zeros_like(centroids).index_add_(0, assignments, points * weights[:, None])
        filled = sums.norm(dim=1) > 0
        centroids = torch.where(filled[:, None], F.normalize(sums, dim=1), centroids)
        updated = (points @ centroids.T).argmax(dim=1)
        if torch.equal(updated, assignments):
            break
        assignments = updated
    return assignments, centroids.float()


def feature_hierarchy(
    pixel_features: torch.Tensor, num_segments: list[int], iterations: int, generator: torch.Generator
) -> torch.Tensor:
    """
    A nested segmentation from per-pixel features `(C, H, W)`: spherical k-means of the pixels into `num_segments[0]`
    clusters, then of each level's centroids (weighted by their pixel counts) into the next count.

    Returns:
        `torch.LongTensor` of shape `(len(num_segments), H, W)`, finest level first (CAST's `hierarchy` layout).
    """
    channels, height, width = pixel_features.shape
    assignments, centroids = spherical_kmeans(pixel_features.reshape(channels, -1).T, num_segments[0], iterations, generator=generator)
    levels = [assignments]
    for count in num_segments[1:]:
        sizes = torch.bincount(levels[-1], minlength=centroids.shape[0]).double()
        # empty clusters get a tiny weight: they must be assigned somewhere but must not attract a seed
        parents, centroids = spherical_kmeans(centroids, count, iterations, weights=sizes.clamp(min=1e-6), generator=generator)
        levels.append(parents[levels[-1]])
    return torch.stack(levels).view(len(num_segments), height, width)


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _segment(cast, vit, dataset: PartWholeTensors, processor, args: BenchmarkArguments) -> dict:
    """Classify and segment every held-out image with both models; returns predictions and hierarchies."""
    cast.eval()
    vit.eval()
    generator = torch.Generator().manual_seed(args.seed)
    grid = args.image_size // _VIT_PATCH_SIZE
    cast_predictions, vit_predictions, cast_hierarchies, vit_hierarchies = [], [], [], []
    for start in range(0, len(dataset), args.eval_batch_size):
        stop = min(start + args.eval_batch_size, len(dataset))
        pixel_values = dataset.pixel_values[start:stop].float()
        superpixels = dataset.superpixels[start:stop].long()
        cast_outputs = cast(pixel_values=pixel_values, superpixels=superpixels)
        cast_predictions.append(cast_outputs.logits.argmax(-1))
        cast_hierarchies.extend(processor.post_process_hierarchical_segmentation(cast_outputs))
        vit_outputs = vit(pixel_values=pixel_values, output_hidden_states=True)
        vit_predictions.append(vit_outputs.logits.argmax(-1))
        # the last layer's patch tokens after the final LayerNorm (what the classifier's class token attends to)
        patch_tokens = vit.vit.layernorm(vit_outputs.hidden_states[-1])[:, 1:]
        patch_features = patch_tokens.transpose(1, 2).reshape(len(pixel_values), -1, grid, grid)
        upsampled = F.interpolate(patch_features, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)
        for features in upsampled:
            vit_hierarchies.append(feature_hierarchy(features, list(args.num_segments), args.kmeans_iterations, generator))
    return {
        "cast_predictions": torch.cat(cast_predictions), "vit_predictions": torch.cat(vit_predictions),
        "cast": torch.stack(cast_hierarchies).numpy(), "vit": torch.stack(vit_hierarchies).numpy(),
    }


def _evaluate(cast, vit, dataset, samples, processor, args) -> dict:
    segmented = _segment(cast, vit, dataset, processor, args)
    object_masks = [sample.object_mask.astype(np.int64) for sample in samples]
    part_masks = [sample.part_mask.astype(np.int64) for sample in samples]
    labels = dataset.labels
    results = {}
    for name in ("cast", "vit"):
        results[name] = {
            "accuracy": float((segmented[f"{name}_predictions"] == labels).float().mean()),
            "levels": hierarchy_level_scores(segmented[name], {"object": object_masks, "part": part_masks}),
        }
    return results, segmented


# ---------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------


def _headline_rows(results: dict, args: BenchmarkArguments) -> list[str]:
    rows = []
    for run, label in (("trained", "trained"), ("untrained", "untrained (control)")):
        if run not in results:
            continue
        for name, title in (("cast", "CAST"), ("vit", "ViT + k-means")):
            result = results[run][name]
            objects, parts = result["levels"][args.object_level], result["levels"][args.part_level]
            rows.append(
                f"| {title}, {label} | {result['parameters']:,} | {result['accuracy']:.3f} | {objects['object_miou']:.3f} "
                f"| {parts['part_miou']:.3f} | {objects['object_boundary_f']:.3f} | {parts['part_boundary_f']:.3f} |"
            )
    return rows


def results_markdown(report: dict, args: BenchmarkArguments) -> str:
    """The tables of `results.md`: headline at the chosen levels, then every level."""
    counts = list(args.num_segments)
    object_count, part_count = counts[args.object_level], counts[args.part_level]
    lines = [
        f"Held-out images: {args.eval_samples}; object columns at {object_count} segments per image, part columns at "
        f"{part_count}. Region mIoU: oracle segment labels, per-image Jaccard averaged over images. Boundary F: BSDS "
        "tolerance (0.0075 of the diagonal) on the labeled maps.",
        "",
        "| model | trainable parameters | accuracy | object mIoU | part mIoU | object boundary F | part boundary F |",
        "|---|---|---|---|---|---|---|",
        *_headline_rows(report["results"], args),
        "",
        "Every level (trained models; segments = mean distinct segments per image):",
        "",
        "| segments requested | CAST segments | ViT segments | CAST object mIoU | ViT object mIoU | CAST part mIoU "
        "| ViT part mIoU | CAST object bF | ViT object bF | CAST part bF | ViT part bF |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    trained = report["results"]["trained"]
    for level, count in enumerate(counts):
        cast_level, vit_level = trained["cast"]["levels"][level], trained["vit"]["levels"][level]
        lines.append(
            f"| {count} | {cast_level['mean_segments']:.1f} | {vit_level['mean_segments']:.1f} "
            f"| {cast_level['object_miou']:.3f} | {vit_level['object_miou']:.3f} "
            f"| {cast_level['part_miou']:.3f} | {vit_level['part_miou']:.3f} "
            f"| {cast_level['object_boundary_f']:.3f} | {vit_level['object_boundary_f']:.3f} "
            f"| {cast_level['part_boundary_f']:.3f} | {vit_level['part_boundary_f']:.3f} |"
        )
    quality = report["token_quality"]
    lines += [
        "",
        "Input tokens against the part masks (what each model can at best delineate):",
        "",
        "| tokens | count per image | boundary recall | undersegmentation error | achievable segmentation accuracy |",
        "|---|---|---|---|---|",
    ]
    for name, title in (("superpixels", "CAST: SLIC superpixels"), ("patches", "ViT: 8x8 patches")):
        item = quality[name]
        lines.append(
            f"| {title} | {item['mean_num_superpixels']:.1f} | {item['boundary_recall']:.3f} "
            f"| {item['undersegmentation_error']:.3f} | {item['achievable_segmentation_accuracy']:.3f} |"
        )
    runtime = report["runtime_s"]
    machine = report["machine"]
    lines += [
        "",
        "Runtime (seconds): " + ", ".join(f"{name} {value:.0f}" for name, value in runtime.items()),
        "",
        f"Machine: {machine['cpu_count']} CPUs ({machine['processor']}), torch {machine['torch']} with "
        f"{machine['torch_threads']} thread(s), transformers {machine['transformers']}, Python {machine['python']}.",
    ]
    return "\n".join(lines) + "\n"


def _part_colors(part_mask: np.ndarray) -> np.ndarray:
    palette = np.random.default_rng(len(PART_NAMES)).integers(40, 256, size=(len(PART_NAMES), 3)).astype(np.uint8)
    palette[0] = 0
    return palette[part_mask]


def save_figure_grid(samples, segmented: dict, count: int, path: Path) -> Path:
    """For each of the first `count` held-out images: a CAST row (image, then its levels, finest first) above a ViT
    row (ground-truth parts, then the ViT's k-means levels at the same segment counts). Every panel is captioned
    (what it shows, and for a level its segment count) and every row is titled with its model."""
    strips = []
    for index in range(count):
        rows = (
            ("CAST", "image", samples[index].image, segmented["cast"][index]),
            ("ViT", "true parts", _part_colors(samples[index].part_mask), segmented["vit"][index]),
        )
        for title, first_caption, first_panel, hierarchy in rows:
            captions = [first_caption] + [
                f"L{level}: {len(np.unique(labels))} seg." for level, labels in enumerate(np.asarray(hierarchy))
            ]
            strip = draw_hierarchy(first_panel, hierarchy, gap=_FIGURE_GAP, captions=captions)
            labeled = Image.new("RGB", (strip.width + _LABEL_WIDTH, strip.height), "white")
            labeled.paste(strip, (_LABEL_WIDTH, 0))
            ImageDraw.Draw(labeled).text((4, strip.height // 2 - 6), title, fill="black")
            strips.append(labeled)
    width = max(strip.width for strip in strips)
    picture = Image.new("RGB", (width, sum(strip.height + _FIGURE_GAP for strip in strips)), "white")
    top = 0
    for strip in strips:
        picture.paste(strip, (0, top))
        top += strip.height + _FIGURE_GAP
    picture.save(path)
    return path


def _machine() -> dict:
    processor = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        processor = names[0] if names else processor
    return {
        "cpu_count": os.cpu_count(), "processor": processor, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; returns the report written to `results.json`."""
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.INFO)
    torch.set_num_threads(args.num_threads)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runtime, started = {}, time.perf_counter()

    processor = CastImageProcessor(size={"height": args.image_size, "width": args.image_size}, n_segments=args.n_segments)
    clock = time.perf_counter()
    train_data = _generate(args.train_samples, args.image_size, args.seed, processor)
    eval_data = _generate(args.eval_samples, args.image_size, args.seed + HELD_OUT_SEED_OFFSET, processor)
    train_set = PartWholeTensors(*train_data[:3], flip=True)
    eval_set, eval_samples = PartWholeTensors(*eval_data[:3], flip=False), eval_data[3]
    runtime["data_and_superpixels"] = time.perf_counter() - clock
    logger.info(f"{len(train_set)} training and {len(eval_set)} held-out images in {runtime['data_and_superpixels']:.0f} s")

    cast, vit = build_models(args)
    untrained = (copy.deepcopy(cast), copy.deepcopy(vit)) if args.untrained_baselines else None
    report = {"arguments": asdict(args), "results": {}, "training": {}}
    for name, model in (("cast", cast), ("vit", vit)):
        clock = time.perf_counter()
        report["training"][name] = _train(model, train_set, args, name)
        runtime[f"train_{name}"] = time.perf_counter() - clock
        logger.info(f"trained {name} in {runtime[f'train_{name}']:.0f} s: {report['training'][name]}")

    clock = time.perf_counter()
    runs = {"trained": (cast, vit)}
    if untrained is not None:
        runs["untrained"] = untrained
    for run, (cast_model, vit_model) in runs.items():
        results, segmented = _evaluate(cast_model, vit_model, eval_set, eval_samples, processor, args)
        results["cast"]["parameters"] = _trainable_parameters(cast_model)
        results["vit"]["parameters"] = _trainable_parameters(vit_model)
        report["results"][run] = results
        if run == "trained":
            figure_segments = segmented
    patches = np.arange((args.image_size // _VIT_PATCH_SIZE) ** 2).reshape(args.image_size // _VIT_PATCH_SIZE, -1)
    patches = patches.repeat(_VIT_PATCH_SIZE, 0).repeat(_VIT_PATCH_SIZE, 1)
    part_masks = [sample.part_mask.astype(np.int64) for sample in eval_samples]
    report["token_quality"] = {
        "superpixels": superpixel_quality(eval_set.superpixels.long(), part_masks),
        "patches": superpixel_quality([patches] * len(part_masks), part_masks),
    }
    runtime["evaluation"] = time.perf_counter() - clock

    figure = save_figure_grid(eval_samples, figure_segments, args.figure_images, output_dir / "figure_grid.png") if args.figure_images else None
    runtime["total"] = time.perf_counter() - started
    report.update(runtime_s=runtime, machine=_machine(), command=" ".join(["python", *sys.argv]) if argv is None else None)
    (output_dir / "results.json").write_text(json.dumps(report, indent=1, default=float))
    markdown = results_markdown(report, args)
    (output_dir / "results.md").write_text(markdown)
    print(markdown)
    print(f"results: {output_dir / 'results.json'}, {output_dir / 'results.md'}" + (f", figure: {figure}" if figure else ""))
    return report


if __name__ == "__main__":
    main()
