# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The part-whole benchmark that can tell (issue 18): is a whole object, made of differently colored parts among
distractors of the same colors, found by the segments of a model trained only to recognize it?

Data: the recognition mode of `processing.synthetic.part_whole` (five classes: four objects and part soup; the
object's parts, a patchwork background and loose distractor parts share one palette of appearances). CAST and a ViT of
the same width, depth and parameter count (`run_part_whole_benchmark.build_models`) are trained on class labels
alone, for several seeds, and scored at checkpoints along the way; learning-free controls and zero-cost ablations are
scored on the same held-out images.

Criteria (fixed before any number, see RESULTS.md): primary, the best-segment IoU of the object at the two coarsest
levels; secondary, recognizer-labeled object and part mIoU, per-image Hungarian mIoU, oracle mIoU, boundary F,
connected components per segment. Every per-image score is saved (`per_image.csv`), with paired bootstrap 95%
intervals over images within each seed and over seeds (`results.json`, `results.md`).

    python benchmarks/part_whole/run_recognition_benchmark.py --output_dir outputs/part_whole_recognition
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from transformers import HfArgumentParser, TrainerCallback

_HERE = Path(__file__).resolve().parent
for _path in (_HERE.parents[1], _HERE):  # a source checkout: the project and the sibling benchmark script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import run_part_whole_benchmark as classic  # noqa: E402

from modeling_cast import CastConfig, CastForPreTraining, CastImageProcessor, MomentumUpdateCallback  # noqa: E402
from processing.evaluation.color_baselines import color_kmeans_hierarchy, color_merge_hierarchy, grid_hierarchy  # noqa: E402
from processing.evaluation.metrics import boundary_f_score, hungarian_mean_iou, oracle_segment_labels, region_mean_iou  # noqa: E402
from processing.evaluation.segment_recognizer import label_segment_maps, train_segment_recognizer  # noqa: E402
from processing.evaluation.segment_scores import (  # noqa: E402
    best_segment_iou,
    bootstrap_interval,
    connected_components_per_segment,
    per_image_mean_iou,
)
from processing.synthetic.part_whole import (  # noqa: E402
    HELD_OUT_SEED_OFFSET,
    PART_NAMES,
    PARTS_OF_CLASS,
    RECOGNITION_CLASSES,
    SOUP_LABEL,
)

__all__ = ["RecognitionBenchmarkArguments", "main", "score_hierarchies"]

logger = logging.getLogger(__name__)

_RECOGNIZER_SEED_OFFSET = 2 * HELD_OUT_SEED_OFFSET  # the recognizer's labeled split: neither training nor held out
PRIMARY = "best_iou"


@dataclass
class RecognitionBenchmarkArguments:
    """Size of the experiment; the defaults are the run reported in benchmarks/part_whole/RESULTS.md."""

    output_dir: str = field(default="outputs/part_whole_recognition", metadata={"help": "Where results go."})
    train_samples: int = field(default=1200, metadata={"help": "Generated training images (recognition mode)."})
    eval_samples: int = field(default=60, metadata={"help": "Held-out images (another seed); 1 in 5 is part soup."})
    recognizer_samples: int = field(default=200, metadata={"help": "Labeled split the segment recognizer learns from."})
    recognizer_epochs: int = field(default=6, metadata={"help": "Epochs of the segment recognizer."})
    image_size: int = field(default=64, metadata={"help": "Image side (a multiple of 8)."})
    n_segments: int = field(default=48, metadata={"help": "SLIC superpixels requested per image."})
    hidden_size: int = field(default=64, metadata={"help": "Width of both models."})
    num_attention_heads: int = field(default=2, metadata={"help": "Attention heads of both models."})
    depths: list[int] = field(default_factory=lambda: [1, 1, 1, 1], metadata={"help": "CAST blocks per stage."})
    num_segments: list[int] = field(default_factory=lambda: [32, 16, 8, 4], metadata={"help": "Segments per level."})
    max_steps: int = field(default=300, metadata={"help": "Optimizer steps of each classifier."})
    checkpoint_steps: list[int] = field(
        default_factory=lambda: [100, 200], metadata={"help": "Steps (besides the last) at which the models are scored."}
    )
    batch_size: int = field(default=16, metadata={"help": "Training batch size."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW peak learning rate."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    warmup_steps: int = field(default=30, metadata={"help": "Linear warm-up steps before the cosine decay."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds of the initialization and order."})
    target_accuracy: float = field(default=0.8, metadata={"help": "Held-out accuracy that counts as recognition."})
    moco_steps: int = field(default=60, metadata={"help": "Steps of the MoCo-v3 arm (CastForPreTraining); 0: none."})
    moco_batch_size: int = field(default=16, metadata={"help": "Batch size of the MoCo-v3 arm."})
    num_threads: int = field(default=2, metadata={"help": "torch threads."})
    kmeans_iterations: int = field(default=10, metadata={"help": "Lloyd iterations of the feature k-means."})
    bootstrap_resamples: int = field(default=2000, metadata={"help": "Bootstrap resamples per interval."})
    figure_images: int = field(default=6, metadata={"help": "Held-out images in figure_grid.png."})
    controls_every_seed: bool = field(
        default=False,
        metadata={"help": "Score the untrained models and the ViT superpixel-pooling ablation for every seed (default: "
                          "the first seed only; they need no training, and the ViT's k-means is the slow part)."},
    )

    def __post_init__(self):
        for name in ("train_samples", "eval_samples", "recognizer_samples", "recognizer_epochs", "max_steps",
                     "batch_size", "num_threads", "kmeans_iterations", "bootstrap_resamples", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 32 or self.image_size % 8:
            raise ValueError(f"--image_size must be a multiple of 8 and >= 32, got {self.image_size}")
        if len(self.depths) != len(self.num_segments) or len(self.num_segments) < 3:
            raise ValueError(f"--depths and --num_segments need one entry per stage and >= 3 stages, got {self.depths} "
                             f"and {self.num_segments}")
        if any(not 0 < step < self.max_steps for step in self.checkpoint_steps):
            raise ValueError(f"--checkpoint_steps must lie in (0, max_steps={self.max_steps}), got {self.checkpoint_steps}")
        if not self.seeds:
            raise ValueError("--seeds must name at least one seed")
        if self.eval_samples < 2 * len(RECOGNITION_CLASSES):
            raise ValueError(f"--eval_samples must be >= {2 * len(RECOGNITION_CLASSES)}, got {self.eval_samples}")


# ---------------------------------------------------------------------------------------------------------------
# Scoring: every metric of every held-out image at every level
# ---------------------------------------------------------------------------------------------------------------


def score_hierarchies(hierarchies, samples, recognizer=None, full: bool = True) -> dict[str, np.ndarray]:
    """
    Per-image scores of segment hierarchies `(num_levels, H, W)` (finest first) against part-whole samples.

    Returns `{metric_level: array of shape (num_images,)}` with NaN where a metric does not apply (object metrics on
    part soup, soup metrics on objects). Levels are counted from the coarsest: `L-1` is the coarsest, `L-2` the next.
    `best_iou` (primary) and `oracle_object_miou` are given at every level; with `full`, also `recognized_object_miou`,
    `hungarian_object_miou`, `object_boundary_f`, `components` at the two coarsest levels, `oracle_part_miou` and
    `recognized_part_miou` at the second and third coarsest, and `soup_whole_iou` (part soup: best-segment IoU
    with all the scattered parts, where higher is *worse*) at the coarsest.
    """
    num_levels = np.asarray(hierarchies[0]).shape[0]
    is_object = np.array([sample.label != SOUP_LABEL for sample in samples])
    scores = {}

    def put(name, values, where):
        scores[name] = np.where(where, np.asarray(values, dtype=np.float64), np.nan)

    for back in range(1, num_levels + 1):
        level = num_levels - back
        segments = [np.asarray(hierarchy)[level] for hierarchy in hierarchies]
        labeled = None
        if full and recognizer is not None and back <= 3:
            labeled = label_segment_maps(recognizer, [s.image for s in samples], segments, PARTS_OF_CLASS)
        put(f"best_iou_L-{back}", [best_segment_iou(seg, s.object_mask) if o else np.nan
                                   for seg, s, o in zip(segments, samples, is_object)], is_object)
        put(f"oracle_object_miou_L-{back}", region_mean_iou(segments, [s.object_mask for s in samples])["per_image_iou"],
            is_object)
        if not full:
            continue
        if back <= 2:
            objects = [s.object_mask for s in samples]
            put(f"hungarian_object_miou_L-{back}", hungarian_mean_iou(segments, objects, per_image=True)["per_image_iou"],
                is_object)
            put(f"object_boundary_f_L-{back}", [boundary_f_score(oracle_segment_labels(seg, s.object_mask), s.object_mask)
                                                ["f_score"] for seg, s in zip(segments, samples)], is_object)
            put(f"components_L-{back}", [connected_components_per_segment(seg) for seg in segments], np.ones_like(is_object))
            if labeled is not None:
                put(f"recognized_object_miou_L-{back}", per_image_mean_iou([item[0] for item in labeled], objects),
                    is_object)
        if back == 1:
            put("soup_whole_iou_L-1", [best_segment_iou(seg, s.part_mask) if not o else np.nan
                                       for seg, s, o in zip(segments, samples, is_object)], ~is_object)
        if 2 <= back <= 3:
            parts = [s.part_mask for s in samples]
            put(f"oracle_part_miou_L-{back}", region_mean_iou(segments, parts)["per_image_iou"], is_object)
            if labeled is not None:
                put(f"recognized_part_miou_L-{back}", per_image_mean_iou([item[1] for item in labeled], parts), is_object)
    return scores


# ---------------------------------------------------------------------------------------------------------------
# Segmenters: the models, their zero-cost ablations and the controls
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _cast_hierarchies(cast_model, eval_set, processor, args, generator, with_token_kmeans: bool = False):
    """CAST's hierarchy, its accuracy, and (`with_token_kmeans`) the ablation whose coarsest level clusters the
    last stage's tokens by spherical k-means instead of the frozen last pooling."""
    cast_model.eval()
    hierarchies, ablation, correct = [], [], 0
    for start in range(0, len(eval_set), 50):
        pixel_values = eval_set.pixel_values[start : start + 50].float()
        superpixels = eval_set.superpixels[start : start + 50].long()
        outputs = cast_model(pixel_values=pixel_values, superpixels=superpixels)
        correct += int((outputs.logits.argmax(-1) == eval_set.labels[start : start + 50]).sum())
        batch = processor.post_process_hierarchical_segmentation(outputs)
        hierarchies.extend(item.numpy() for item in batch)
        if with_token_kmeans:
            backbone = cast_model.cast(pixel_values=pixel_values, superpixels=superpixels, output_hierarchy=False)
            tokens = backbone.last_hidden_state[:, 1:]  # the last stage's segment tokens (level L-2 ids)
            for item, image_tokens in zip(batch, tokens):
                second = item[-2]
                sizes = torch.bincount(second.reshape(-1), minlength=image_tokens.shape[0]).double()
                present = sizes > 0
                assignments, _ = classic.spherical_kmeans(image_tokens[present], args.num_segments[-1],
                                                          args.kmeans_iterations, weights=sizes[present], generator=generator)
                mapping = torch.zeros(image_tokens.shape[0], dtype=torch.long)
                mapping[present] = assignments
                ablation.append(torch.cat([item[:-1], mapping[second][None]]).numpy())
    return hierarchies, ablation, correct / len(eval_set)


@torch.no_grad()
def _vit_hierarchies(vit, eval_set, args, generator, with_superpixel_pooling: bool = False):
    """The ViT's k-means hierarchy of upsampled patch features (the paper's baseline), its accuracy, and
    (`with_superpixel_pooling`) the ablation that pools the same features on CAST's superpixels before clustering."""
    vit.eval()
    grid = args.image_size // 8
    hierarchies, pooled, correct = [], [], 0
    for start in range(0, len(eval_set), 50):
        pixel_values = eval_set.pixel_values[start : start + 50].float()
        outputs = vit(pixel_values=pixel_values, output_hidden_states=True)
        correct += int((outputs.logits.argmax(-1) == eval_set.labels[start : start + 50]).sum())
        patch_tokens = vit.vit.layernorm(outputs.hidden_states[-1])[:, 1:]
        features = patch_tokens.transpose(1, 2).reshape(len(pixel_values), -1, grid, grid)
        upsampled = F.interpolate(features, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)
        for offset, pixel_features in enumerate(upsampled):
            hierarchies.append(classic.feature_hierarchy(pixel_features, list(args.num_segments), args.kmeans_iterations,
                                                         generator).numpy())
            if with_superpixel_pooling:
                superpixels = eval_set.superpixels[start + offset].long().reshape(-1)
                flat = pixel_features.reshape(pixel_features.shape[0], -1).T
                count = int(superpixels.max()) + 1
                sizes = torch.bincount(superpixels, minlength=count).double()
                means = torch.zeros(count, flat.shape[1]).index_add_(0, superpixels, flat) / sizes.clamp(min=1)[:, None].float()
                levels, weights, current = [], sizes.clamp(min=1e-6), means
                parent = torch.arange(count)
                for num in args.num_segments:
                    assignments, current = classic.spherical_kmeans(current, num, args.kmeans_iterations, weights=weights,
                                                                    generator=generator)
                    parent = assignments[parent]
                    weights = torch.bincount(parent, weights=sizes, minlength=current.shape[0]).clamp(min=1e-6)
                    levels.append(parent[superpixels].reshape(pixel_values.shape[-2:]))
                pooled.append(torch.stack(levels).numpy())
    return hierarchies, pooled, correct / len(eval_set)


def _score_untrained(cast, vit, eval_set, eval_samples, processor, args, generator, recognizer, record, seed) -> None:
    """Both models before training, and CAST before training without its position embedding."""
    hierarchies, _, accuracy = _cast_hierarchies(cast, eval_set, processor, args, generator)
    record("CAST, untrained", seed, 0, score_hierarchies(hierarchies, eval_samples, recognizer), accuracy)
    hierarchies, _, accuracy = _cast_hierarchies(_without_position_embedding(cast), eval_set, processor, args, generator)
    record("CAST, untrained, no position embedding", seed, 0, score_hierarchies(hierarchies, eval_samples, recognizer),
           accuracy)
    hierarchies, _, accuracy = _vit_hierarchies(vit, eval_set, args, generator)
    record("ViT + k-means, untrained", seed, 0, score_hierarchies(hierarchies, eval_samples, recognizer), accuracy)


def _control_hierarchies(samples, superpixels, counts) -> dict[str, list]:
    size = samples[0].image.shape[:2]
    one = np.zeros((len(counts), *size), dtype=np.int64)
    return {
        "one segment": [one for _ in samples],
        "regular grid": [grid_hierarchy(size, counts) for _ in samples],
        "pixel Lab k-means": [color_kmeans_hierarchy(s.image, counts, seed=index) for index, s in enumerate(samples)],
        "color merge of the superpixels (Ward)": [color_merge_hierarchy(s.image, sp.numpy(), counts)
                                                  for s, sp in zip(samples, superpixels)],
    }


def _without_position_embedding(cast_model):
    """A copy whose sin-cos position table is zero: the untrained tokens are then stem features only."""
    model = copy.deepcopy(cast_model)
    embeddings = model.cast.embeddings
    if embeddings.learned_positions:
        raise ValueError("the no-position control expects CAST's fixed sin-cos table")
    embeddings.position_embeddings.zero_()
    return model


# ---------------------------------------------------------------------------------------------------------------
# Training: classifiers scored at checkpoints, and the MoCo-v3 arm
# ---------------------------------------------------------------------------------------------------------------


class _ScoreAtSteps(TrainerCallback):
    """Calls `score(model, step)` at the given optimizer steps (the model goes back to training mode after)."""

    def __init__(self, steps, score):
        self.steps, self.score = set(steps), score

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps:
            self.score(model, state.global_step)
            model.train()


def _two_views(features: list[dict]) -> dict[str, torch.Tensor]:
    """Two augmented views per image for MoCo-v3, cheap enough for a CPU: a random resized crop (scale 0.5-1) and
    flip applied to the image and, nearest-neighbor, to its superpixels (so SLIC is not rerun), and a brightness and
    contrast jitter of the pixels. Not the official augmentation (processing.training.augmentation)."""
    pixel_values = torch.stack([item["pixel_values"] for item in features])
    superpixels = torch.stack([item["superpixels"] for item in features])
    batch = {}
    for suffix in ("", "_2"):
        views, maps = [], []
        for image, segments in zip(pixel_values, superpixels):
            size = image.shape[-1]
            side = int(size * float(torch.empty(()).uniform_(0.7, 1.0)))  # area 0.5-1
            top, left = (int(torch.randint(0, size - side + 1, ())) for _ in range(2))
            crop = image[:, top : top + side, left : left + side][None]
            crop_map = segments[top : top + side, left : left + side][None, None].float()
            view = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]
            view_map = F.interpolate(crop_map, size=(size, size), mode="nearest")[0, 0].long()
            if bool(torch.rand(()) < 0.5):
                view, view_map = view.flip(-1), view_map.flip(-1)
            view = view * float(torch.empty(()).uniform_(0.6, 1.4)) + float(torch.empty(()).uniform_(-0.4, 0.4))
            views.append(view)
            maps.append(view_map)
        batch[f"pixel_values{suffix}"], batch[f"superpixels{suffix}"] = torch.stack(views), torch.stack(maps)
    return batch


def _train_args(args: RecognitionBenchmarkArguments, seed: int, max_steps: int, batch_size: int):
    """The fields `run_part_whole_benchmark._train` reads."""
    return replace(
        classic.BenchmarkArguments(output_dir=args.output_dir, depths=list(args.depths), num_segments=list(args.num_segments),
                                   image_size=args.image_size),
        max_steps=max_steps, batch_size=batch_size, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        warmup_steps=min(args.warmup_steps, max_steps - 1), seed=seed,
    )


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; returns the report written to `results.json`."""
    (args,) = HfArgumentParser(RecognitionBenchmarkArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.INFO)
    torch.set_num_threads(args.num_threads)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runtime, started = {}, time.perf_counter()
    counts = list(args.num_segments)

    processor = CastImageProcessor(size={"height": args.image_size, "width": args.image_size}, n_segments=args.n_segments)
    clock = time.perf_counter()
    train_data = classic._generate(args.train_samples, args.image_size, 0, processor, mode="recognition")
    eval_data = classic._generate(args.eval_samples, args.image_size, HELD_OUT_SEED_OFFSET, processor, mode="recognition")
    classic_eval = classic._generate(args.eval_samples, args.image_size, HELD_OUT_SEED_OFFSET, processor, mode="classic")
    labeled_data = classic._generate(args.recognizer_samples, args.image_size, _RECOGNIZER_SEED_OFFSET, processor,
                                     mode="recognition")
    train_set = classic.PartWholeTensors(*train_data[:3], flip=True)
    eval_set, eval_samples = classic.PartWholeTensors(*eval_data[:3], flip=False), eval_data[3]
    runtime["data_and_superpixels"] = time.perf_counter() - clock

    clock = time.perf_counter()
    recognizer, recognizer_info = train_segment_recognizer(
        labeled_data[3], num_object_labels=len(RECOGNITION_CLASSES), num_part_labels=len(PART_NAMES),
        epochs=args.recognizer_epochs, seed=0,
    )
    objects = [s for s in eval_samples if s.label != SOUP_LABEL]  # how well it names whole ground-truth objects
    gt_objects = [item[0] for item in label_segment_maps(recognizer, [s.image for s in objects],
                                                          [s.object_mask for s in objects], PARTS_OF_CLASS)]
    recognizer_info["ground_truth_object_miou"] = float(np.nanmean(per_image_mean_iou(
        gt_objects, [s.object_mask for s in objects])))
    runtime["recognizer"] = time.perf_counter() - clock
    logger.info(f"recognizer: {recognizer_info}")

    per_image, summaries = [], {}

    def record(method: str, seed, step, scores: dict, accuracy=None):
        summaries.setdefault(method, {}).setdefault(str(seed), {})[str(step)] = {
            "accuracy": accuracy, **{name: float(np.nanmean(values)) if np.isfinite(values).any() else None
                                     for name, values in scores.items()}}
        for index in range(len(next(iter(scores.values())))):
            per_image.append({"method": method, "seed": seed, "step": step, "image": index,
                              "label": int(eval_samples[index].label),
                              **{name: values[index] for name, values in scores.items()}})

    clock = time.perf_counter()
    controls = _control_hierarchies(eval_samples, eval_set.superpixels, counts)
    for method, hierarchies in controls.items():
        record(method, None, None, score_hierarchies(hierarchies, eval_samples, recognizer))
    classic_controls = {}
    for method, hierarchies in _control_hierarchies(classic_eval[3], classic_eval[1], counts).items():
        scores = score_hierarchies(hierarchies, classic_eval[3], full=False)
        classic_controls[method] = {name: float(np.nanmean(values)) for name, values in scores.items()}
    runtime["controls"] = time.perf_counter() - clock
    logger.info(f"controls scored in {runtime['controls']:.0f} s")

    training, figure = {}, {}
    final = {"CAST": {}, "ViT + k-means": {}}
    for seed in args.seeds:
        cast, vit = classic.build_models(replace(classic.BenchmarkArguments(
            hidden_size=args.hidden_size, num_attention_heads=args.num_attention_heads, depths=list(args.depths),
            num_segments=counts, image_size=args.image_size, n_segments=args.n_segments), seed=seed), RECOGNITION_CLASSES)
        generator = torch.Generator().manual_seed(seed)
        clock = time.perf_counter()
        first = seed == args.seeds[0]
        if first or args.controls_every_seed:
            _score_untrained(cast, vit, eval_set, eval_samples, processor, args, generator, recognizer, record, seed)
        runtime[f"untrained_seed{seed}"] = time.perf_counter() - clock
        for name, model in (("CAST", cast), ("ViT + k-means", vit)):
            def score(model, step, name=name):
                if name == "CAST":
                    levels, _, accuracy = _cast_hierarchies(model, eval_set, processor, args, generator)
                else:
                    levels, _, accuracy = _vit_hierarchies(model, eval_set, args, generator)
                record(name, seed, step, score_hierarchies(levels, eval_samples, recognizer, full=False), accuracy)
                logger.info(f"{name} seed {seed} step {step}: accuracy {accuracy:.3f}")

            clock = time.perf_counter()
            training[f"{name} seed {seed}"] = classic._train(
                model, train_set, _train_args(args, seed, args.max_steps, args.batch_size), f"{name[:4]}_{seed}",
                callbacks=[_ScoreAtSteps(args.checkpoint_steps, score)],
            )
            runtime[f"train_{name}_seed{seed}"] = time.perf_counter() - clock
        clock = time.perf_counter()
        hierarchies, token_kmeans, accuracy = _cast_hierarchies(cast, eval_set, processor, args, generator, True)
        final["CAST"][seed] = score_hierarchies(hierarchies, eval_samples, recognizer)
        record("CAST", seed, args.max_steps, final["CAST"][seed], accuracy)
        record("CAST, k-means of last-stage tokens (ablation)", seed, args.max_steps,
               score_hierarchies(token_kmeans, eval_samples, recognizer), accuracy)
        vit_levels, pooled, accuracy = _vit_hierarchies(vit, eval_set, args, generator, first or args.controls_every_seed)
        final["ViT + k-means"][seed] = score_hierarchies(vit_levels, eval_samples, recognizer)
        record("ViT + k-means", seed, args.max_steps, final["ViT + k-means"][seed], accuracy)
        if pooled:
            record("ViT features pooled on the superpixels (ablation)", seed, args.max_steps,
                   score_hierarchies(pooled, eval_samples, recognizer), accuracy)
        if first:
            figure = {"cast": np.stack(hierarchies), "vit": np.stack(vit_levels)}
        runtime[f"final_scoring_seed{seed}"] = time.perf_counter() - clock

    moco = None
    if args.moco_steps:
        clock = time.perf_counter()
        config = CastConfig(hidden_size=args.hidden_size, num_attention_heads=args.num_attention_heads,
                            pooling_num_attention_heads=args.num_attention_heads, depths=list(args.depths),
                            num_segments=counts, image_size=args.image_size, num_labels=0,
                            pretraining_projection_dim=64, pretraining_hidden_dim=256,
                            max_superpixel_tokens=classic.superpixel_token_budget(args.n_segments, args.image_size))
        torch.manual_seed(args.seeds[0])
        moco_model = CastForPreTraining(config)
        moco_training = classic._train(
            moco_model, train_set, _train_args(args, args.seeds[0], args.moco_steps, args.moco_batch_size), "moco",
            callbacks=[MomentumUpdateCallback()], data_collator=_two_views,
        )
        moco_model.eval()
        levels = []
        with torch.no_grad():
            for start in range(0, len(eval_set), 50):
                outputs = moco_model.cast(pixel_values=eval_set.pixel_values[start : start + 50].float(),
                                          superpixels=eval_set.superpixels[start : start + 50].long())
                levels.extend(item.numpy() for item in processor.post_process_hierarchical_segmentation(outputs))
        record("CAST, MoCo-v3 (no labels)", args.seeds[0], args.moco_steps, score_hierarchies(levels, eval_samples, recognizer))
        moco = {"training": moco_training}
        runtime["moco"] = time.perf_counter() - clock

    clock = time.perf_counter()
    intervals = _intervals(final, per_image, args)
    runtime["bootstrap"] = time.perf_counter() - clock
    runtime["total"] = time.perf_counter() - started
    report = {
        "arguments": asdict(args), "runtime_s": runtime, "machine": classic._machine(),
        "recognizer": recognizer_info, "classic_data_controls": classic_controls, "summaries": summaries,
        "intervals": intervals, "training": training, "moco": moco,
        "reached_target_accuracy": {name: {str(seed): summaries[name][str(seed)][str(args.max_steps)]["accuracy"]
                                           >= args.target_accuracy for seed in args.seeds} for name in final},
        "command": " ".join(["python", *sys.argv]) if argv is None else None,
    }
    (output_dir / "results.json").write_text(json.dumps(report, indent=1, default=float))
    _write_csv(per_image, output_dir / "per_image.csv")
    markdown = results_markdown(report, args)
    (output_dir / "results.md").write_text(markdown)
    print(markdown)
    if args.figure_images:
        classic.save_figure_grid(eval_samples, figure, args.figure_images, output_dir / "figure_grid.png")
    return report


def _intervals(final: dict, per_image: list[dict], args) -> dict:
    """Paired bootstrap intervals of the primary metric at the two coarsest levels: each method's mean, CAST minus
    each other method, within every seed and over seeds (images resampled jointly for all seeds and arms)."""
    intervals = {}
    for back in (1, 2):
        metric = f"{PRIMARY}_L-{back}"
        cast = np.stack([final["CAST"][seed][metric] for seed in args.seeds])
        vit = np.stack([final["ViT + k-means"][seed][metric] for seed in args.seeds])
        merge = np.array([row[metric] for row in per_image if row["method"] == "color merge of the superpixels (Ward)"])
        merge = np.broadcast_to(merge, cast.shape)
        resamples = args.bootstrap_resamples
        entry = {
            "CAST": bootstrap_interval(cast, resamples=resamples),
            "ViT + k-means": bootstrap_interval(vit, resamples=resamples),
            "color merge of the superpixels (Ward)": bootstrap_interval(merge[:1], resamples=resamples),
            "CAST - ViT": bootstrap_interval(cast, vit, resamples=resamples),
            "CAST - color merge": bootstrap_interval(cast, merge, resamples=resamples),
            "per seed": {str(seed): {"CAST - ViT": bootstrap_interval(cast[row], vit[row], resamples=resamples),
                                     "CAST - color merge": bootstrap_interval(cast[row], merge[row], resamples=resamples)}
                         for row, seed in enumerate(args.seeds)},
        }
        intervals[metric] = entry
    return intervals


def _write_csv(rows: list[dict], path: Path) -> None:
    names = list(dict.fromkeys(name for row in rows for name in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: ("" if row.get(name) is None or (isinstance(row.get(name), float) and np.isnan(row[name]))
                                    else row[name]) for name in names})


def _mean_over_seeds(summary: dict, metric: str):
    """Mean over seeds of a method's last scored step (controls: their one entry)."""
    values = []
    for steps in summary.values():
        last = steps[max(steps, key=lambda step: -1 if step == "None" else int(step))]
        if last.get(metric) is not None:
            values.append(last[metric])
    return float(np.mean(values)) if values else None


def results_markdown(report: dict, args) -> str:
    """The tables of results.md: primary metric with intervals, secondary metrics, dose-response, classic data."""
    summaries, counts = report["summaries"], list(args.num_segments)
    fmt = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
    interval = lambda item: f"{item['estimate']:.3f} [{item['low']:.3f}, {item['high']:.3f}]"  # noqa: E731
    lines = [f"Held-out images: {args.eval_samples} (1 in 5 part soup, scored by the soup column only); seeds "
             f"{args.seeds}; levels L-1 = {counts[-1]} segments, L-2 = {counts[-2]}, L-3 = {counts[-3]}.", "",
             "Primary: best-segment IoU of the object, mean over seeds, paired bootstrap 95% interval over images:", "",
             "| | L-1 | L-2 |", "|---|---|---|"]
    for name in ("CAST", "ViT + k-means", "color merge of the superpixels (Ward)", "CAST - ViT", "CAST - color merge"):
        lines.append(f"| {name} | {interval(report['intervals'][f'{PRIMARY}_L-1'][name])} "
                     f"| {interval(report['intervals'][f'{PRIMARY}_L-2'][name])} |")
    lines += ["", "Within each seed (CAST - ViT, CAST - color merge; L-1 then L-2):", "", "| seed | CAST - ViT L-1 | "
              "CAST - merge L-1 | CAST - ViT L-2 | CAST - merge L-2 |", "|---|---|---|---|---|"]
    for seed in args.seeds:
        cells = [interval(report["intervals"][f"{PRIMARY}_L-{back}"]["per seed"][str(seed)][pair])
                 for back in (1, 2) for pair in ("CAST - ViT", "CAST - color merge")]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    columns = ["accuracy", "best_iou_L-1", "best_iou_L-2", "recognized_object_miou_L-1", "recognized_object_miou_L-2",
               "recognized_part_miou_L-2", "recognized_part_miou_L-3", "hungarian_object_miou_L-1",
               "oracle_object_miou_L-1", "oracle_object_miou_L-2", "oracle_part_miou_L-2", "object_boundary_f_L-1",
               "components_L-1", "soup_whole_iou_L-1"]
    lines += ["", "Every method (means over seeds at the last step; untrained models at step 0):", "",
              "| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, summary in summaries.items():
        lines.append(f"| {method} | " + " | ".join(fmt(_mean_over_seeds(summary, column)) for column in columns) + " |")
    lines += ["", "Dose-response (mean over seeds per step):", "", "| model | step | accuracy | best_iou_L-1 | best_iou_L-2 "
              "| oracle_object_miou_L-1 |", "|---|---|---|---|---|---|"]
    for method in ("CAST", "ViT + k-means"):
        steps = sorted({int(step) for seed_steps in summaries[method].values() for step in seed_steps})
        untrained = summaries[f"{method}, untrained"]
        for step in [0, *steps]:
            source = untrained if step == 0 else summaries[method]
            values = [source[seed][str(step)] for seed in source if str(step) in source[seed]]
            cells = [fmt(float(np.mean([v[key] for v in values]))) for key in
                     ("accuracy", "best_iou_L-1", "best_iou_L-2", "oracle_object_miou_L-1")]
            lines.append(f"| {method} | {step} | " + " | ".join(cells) + " |")
    lines += ["", "The controls on the classic data (same held-out indices, classic mode) against the recognition data:",
              "", "| control | classic best_iou_L-1 | recognition best_iou_L-1 | classic best_iou_L-2 | recognition "
              "best_iou_L-2 | classic oracle_object_miou_L-1 | recognition oracle_object_miou_L-1 |",
              "|---|---|---|---|---|---|---|"]
    for method, scores in report["classic_data_controls"].items():
        new = summaries[method]["None"]["None"]
        lines.append(f"| {method} | {fmt(scores['best_iou_L-1'])} | {fmt(new['best_iou_L-1'])} | "
                     f"{fmt(scores['best_iou_L-2'])} | {fmt(new['best_iou_L-2'])} | "
                     f"{fmt(scores['oracle_object_miou_L-1'])} | {fmt(new['oracle_object_miou_L-1'])} |")
    runtime, machine = report["runtime_s"], report["machine"]
    lines += ["", f"Recognizer: {report['recognizer']}", "",
              "Runtime (seconds): " + ", ".join(f"{name} {value:.0f}" for name, value in runtime.items()), "",
              f"Machine: {machine['cpu_count']} CPUs ({machine['processor']}), torch {machine['torch']} with "
              f"{machine['torch_threads']} thread(s), transformers {machine['transformers']}, Python {machine['python']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
