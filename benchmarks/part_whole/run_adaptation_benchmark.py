# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Test-time adaptation on the part-whole benchmark: does adapting to each test image with the recognition objective
improve CAST's segments (the paper's claim), and a matched ViT's k-means segments?

Trains a small CAST classifier and the parameter-matched ViT with the part-whole benchmark's own code
(`run_part_whole_benchmark.build_models` / `_train`), then, on held-out images and on shifted images (another seed,
with lower contrast and added noise), scores every image before and after `modeling_cast.adaptation_cast
.adapt_to_images` under these conditions, all paired on the same images:

- `entropy`: the default objective (marginal entropy over the views), the one a user gets;
- `lr0`: learning rate 0, which must change nothing (checked exactly);
- `true_label`: cross-entropy to the image's true class (an upper bound for a recognition objective);
- `wrong_label`: cross-entropy to a wrong class (the next class): if segmentation follows recognition, as the
  paper's mechanism says, the object's grouping should get worse.

Metrics, per image, at the two coarsest levels: the primary one, best-segment IoU of the object (the IoU of the single
segment that best covers the whole object), then the recognizer-labeled object mIoU (a small CNN trained on the
ground-truth masked segments of a labeled split names every segment background or a class, as the recognition
benchmark does: `processing.evaluation.segment_recognizer`), the oracle-labeled object mIoU and the object boundary F of
`processing.evaluation.metrics`, and classification accuracy. Object metrics are NaN on part-soup images (no object)
and dropped there. Paired bootstrap 95% intervals of the mean change. A small sweep of the learning rate, the steps
and the views on separate tuning images (entropy objective, the trained CAST) is reported with them: it is what the
defaults of `adapt_to_images` rest on.

    HF_HUB_OFFLINE=1 nice -n 5 python benchmarks/part_whole/run_adaptation_benchmark.py

writes `results.json` and `results.md` to `--output_dir`; benchmarks/part_whole/ADAPTATION.md holds the reported run.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import HfArgumentParser
from transformers.utils import ModelOutput

_HERE = Path(__file__).resolve().parent
for folder in (_HERE.parents[1], _HERE):  # the repository (the package) and this folder (the benchmark's code)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from modeling_cast import CastImageProcessor  # noqa: E402
from modeling_cast.adaptation_cast import adapt_to_images  # noqa: E402
from processing.evaluation.metrics import boundary_f_score, oracle_segment_labels, region_mean_iou  # noqa: E402
from processing.evaluation.segment_recognizer import label_segment_maps, train_segment_recognizer  # noqa: E402
from processing.evaluation.segment_scores import best_segment_iou, bootstrap_interval, per_image_mean_iou  # noqa: E402
from processing.synthetic.part_whole import (  # noqa: E402
    HELD_OUT_SEED_OFFSET,
    MODES,
    PART_NAMES,
    PART_WHOLE_CLASSES,
    PARTS_OF_CLASS,
    classes_of_mode,
)
from run_part_whole_benchmark import (  # noqa: E402
    BenchmarkArguments,
    PartWholeTensors,
    _generate,
    _machine,
    _train,
    build_models,
    feature_hierarchy,
)

__all__ = ["AdaptationBenchmarkArguments", "ViTWithFeatures", "main", "results_markdown"]

logger = logging.getLogger(__name__)

_VIT_PATCH_SIZE = 8
_SHIFT_SEED_OFFSET = 2 * HELD_OUT_SEED_OFFSET
_TUNING_SEED_OFFSET = 3 * HELD_OUT_SEED_OFFSET
_RECOGNIZER_SEED_OFFSET = 4 * HELD_OUT_SEED_OFFSET  # the recognizer's labeled split: no test, tuning or training image
_MAX_UINT8 = 255.0
CONDITIONS = ("entropy", "lr0", "true_label", "wrong_label")
SCORED_CONDITIONS = ("entropy", "true_label", "wrong_label")
METRICS = ("best_segment_iou", "recognized_object_miou", "object_miou", "object_boundary_f")


@dataclass
class AdaptationBenchmarkArguments:
    """Size of the experiment; the defaults are the run of benchmarks/part_whole/ADAPTATION.md."""

    output_dir: str = field(default="outputs/adaptation_benchmark", metadata={"help": "Where the results go."})
    train_samples: int = field(default=4000, metadata={"help": "Generated training images."})
    eval_samples: int = field(default=40, metadata={"help": "Images of each test split (held-out, shifted)."})
    tuning_samples: int = field(default=20, metadata={"help": "Images of the adaptation sweep (own seed)."})
    image_size: int = field(default=48, metadata={"help": "Image side (a multiple of 8)."})
    n_segments: int = field(default=24, metadata={"help": "SLIC superpixels requested per image."})
    hidden_size: int = field(default=48, metadata={"help": "Width of both models."})
    num_attention_heads: int = field(default=2, metadata={"help": "Attention heads of both models."})
    depths: list[int] = field(default_factory=lambda: [1, 1, 1], metadata={"help": "CAST blocks per stage."})
    num_segments: list[int] = field(default_factory=lambda: [12, 6, 3], metadata={"help": "Segments per level."})
    max_steps: int = field(default=1500, metadata={"help": "Training steps of each model."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size."})
    # (2e-3, the earlier default, collapses both transformers to an input-independent prediction: loss ln(classes))
    learning_rate: float = field(default=1e-3, metadata={"help": "Training peak learning rate (AdamW)."})
    warmup_steps: int = field(default=150, metadata={"help": "Training warm-up steps."})
    adaptation_steps: int = field(default=3, metadata={"help": "Adaptation steps per image."})
    adaptation_learning_rate: float = field(default=1e-4, metadata={"help": "Adaptation learning rate (Adam)."})
    num_views: int = field(default=8, metadata={"help": "Augmented views per adaptation step."})
    parameters: str = field(default="all", metadata={"help": "What adapts: all or pooling_and_norms."})
    sweep_learning_rates: list[float] = field(
        default_factory=lambda: [1e-5, 1e-4, 1e-3], metadata={"help": "Learning rates of the tuning sweep."}
    )
    sweep_steps: list[int] = field(default_factory=lambda: [1, 10], metadata={"help": "Steps of the tuning sweep."})
    sweep_views: list[int] = field(default_factory=lambda: [4, 16], metadata={"help": "Views of the tuning sweep."})
    recognizer_samples: int = field(default=120, metadata={"help": "Labeled split the segment recognizer learns from."})
    recognizer_epochs: int = field(default=6, metadata={"help": "Epochs of the segment recognizer."})
    contrast: float = field(default=0.6, metadata={"help": "Contrast factor of the shifted split."})
    noise_std: float = field(default=20.0, metadata={"help": "Gaussian noise (0-255 units) of the shifted split."})
    lr0_samples: int = field(default=4, metadata={"help": "Images of each split the lr-0 control runs on."})
    bootstrap_samples: int = field(default=2000, metadata={"help": "Paired bootstrap resamples."})
    kmeans_iterations: int = field(default=30, metadata={"help": "Lloyd iterations of the ViT's k-means."})
    data_mode: str = field(
        default="recognition",
        metadata={"help": "Generator mode: recognition (the reported run: shared palette, part soup) or classic."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of data, models, views and k-means."})
    num_threads: int = field(default=2, metadata={"help": "torch threads."})

    def __post_init__(self):
        for name in ("train_samples", "eval_samples", "max_steps", "adaptation_steps", "num_views", "bootstrap_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.data_mode not in MODES:
            raise ValueError(f"--data_mode must be one of {MODES}, got {self.data_mode!r}")

    def training_arguments(self) -> BenchmarkArguments:
        """The part-whole benchmark's arguments for the same models and training."""
        return BenchmarkArguments(
            output_dir=self.output_dir, train_samples=self.train_samples, eval_samples=self.eval_samples,
            image_size=self.image_size, n_segments=self.n_segments, hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads, depths=list(self.depths),
            num_segments=list(self.num_segments), max_steps=self.max_steps, batch_size=self.batch_size,
            learning_rate=self.learning_rate, warmup_steps=self.warmup_steps, seed=self.seed,
            num_threads=self.num_threads, kmeans_iterations=self.kmeans_iterations, figure_images=0,
        )


class ViTWithFeatures(nn.Module):
    """A trained `ViTForImageClassification` whose output also carries the final-LayerNorm patch tokens, so the
    k-means segments read the *adapted* model's features (its own output has only the pre-LayerNorm hidden states)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit

    def forward(self, pixel_values: torch.Tensor) -> ModelOutput:
        tokens = self.vit.vit(pixel_values=pixel_values).last_hidden_state
        return ModelOutput(logits=self.vit.classifier(tokens[:, 0]), last_hidden_state=tokens)


@dataclass
class Truth:
    """What a split's segments are scored against: the object masks (0 background, class + 1 on the object), the
    uint8 images the recognizer reads (the shifted pixels for the shifted split) and the segment recognizer."""

    object_masks: list
    images: list
    recognizer: nn.Module


def _level_scores(segments: list[np.ndarray], truth: Truth) -> dict[str, np.ndarray]:
    """Per image, every metric of one level's segment maps; NaN on images without an object (part soup)."""
    references = [mask.astype(np.int64) for mask in truth.object_masks]
    recognized = per_image_mean_iou(
        [item[0] for item in label_segment_maps(truth.recognizer, truth.images, segments, PARTS_OF_CLASS)], references
    )
    scores = {metric: np.full(len(segments), np.nan) for metric in METRICS}
    for row, (segment_map, reference) in enumerate(zip(segments, references)):
        if not reference.any():
            continue
        scores["best_segment_iou"][row] = best_segment_iou(segment_map, reference)
        scores["recognized_object_miou"][row] = recognized[row]
        scores["object_miou"][row] = region_mean_iou([segment_map], [reference])["mean_iou"]
        labeled = oracle_segment_labels(segment_map, reference)
        scores["object_boundary_f"][row] = boundary_f_score([labeled], [reference])["f_score"]
    return scores


def _hierarchies(name: str, outputs, processor, args, image_indices) -> list[np.ndarray]:
    """Per image, the (levels, H, W) segmentation: CAST's hierarchy, or k-means of the ViT's patch tokens (seeded per
    image, so before and after differ only through the features)."""
    if name == "cast":
        return [item.numpy() for item in processor.post_process_hierarchical_segmentation(outputs)]
    grid = args.image_size // _VIT_PATCH_SIZE
    tokens = outputs["last_hidden_state"][:, 1:]
    features = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid, grid)
    upsampled = F.interpolate(features, size=(args.image_size, args.image_size), mode="bilinear", align_corners=False)
    return [
        feature_hierarchy(item, list(args.num_segments), args.kmeans_iterations,
                          torch.Generator().manual_seed(args.seed + int(index))).numpy()
        for item, index in zip(upsampled, image_indices)
    ]


def _score_outputs(name, outputs, labels, truth: Truth, processor, args, image_indices) -> dict[str, np.ndarray]:
    hierarchies = _hierarchies(name, outputs, processor, args, image_indices)
    levels = [_level_scores([hierarchy[level] for hierarchy in hierarchies], truth)
              for level in (len(args.num_segments) - 2, len(args.num_segments) - 1)]
    scores = {metric: np.stack([level[metric] for level in levels], axis=1) for metric in METRICS}  # (images, 2 levels)
    scores["accuracy"] = (outputs["logits"].argmax(-1) == labels).float().numpy()[:, None]
    return scores


def _run_condition(model, name, condition, data, args, learning_rate=None, steps=None, num_views=None, chunk: int = 4):
    """Adapt to every image of `data` under `condition` (the arguments' learning rate, steps and views unless given);
    returns (initial outputs, adapted outputs, seconds)."""
    pixel_values, superpixels, labels = data
    options = dict(
        steps=args.adaptation_steps if steps is None else steps,
        num_views=args.num_views if num_views is None else num_views, parameters=args.parameters, seed=args.seed,
        learning_rate=args.adaptation_learning_rate if learning_rate is None else learning_rate,
    )
    if condition == "lr0":
        options["learning_rate"] = 0.0
    if condition in ("true_label", "wrong_label"):
        options["objective"] = "cross_entropy"
    initial, adapted = [], []
    clock = time.perf_counter()
    for start in range(0, len(labels), chunk):
        stop = min(start + chunk, len(labels))
        extra = {}
        if condition == "true_label":
            extra["labels"] = labels[start:stop]
        elif condition == "wrong_label":
            extra["labels"] = (labels[start:stop] + 1) % len(classes_of_mode(args.data_mode))
        spixels = superpixels[start:stop] if name == "cast" else None
        result = adapt_to_images(model, pixel_values[start:stop], spixels, **options, **extra)
        initial.append(result.initial_outputs)
        adapted.append(result.outputs)
    seconds = time.perf_counter() - clock
    return _join(initial), _join(adapted), seconds


def _join(outputs: list) -> dict[str, torch.Tensor]:
    keys = [key for key in ("logits", "hierarchy", "last_hidden_state") if outputs[0].get(key) is not None]
    return {key: torch.cat([output[key] for output in outputs]) for key in keys}


def _evaluate_split(models, split, data, truth, processor, args) -> dict:
    pixel_values, superpixels, labels = data
    indices = np.arange(len(labels))
    report = {}
    for name, model in models.items():
        scores, timing = {}, {}
        for condition in CONDITIONS:
            if condition == "lr0":
                # an exactness check, on a few images: every output must equal the unadapted one bit for bit
                count = min(args.lr0_samples, len(labels))
                subset = tuple(item[:count] for item in data)
                initial, adapted, seconds = _run_condition(model, name, condition, subset, args)
                report.setdefault("lr0_identical", {})[name] = all(
                    torch.equal(initial[key], adapted[key]) for key in initial
                )
                logger.info(f"{split} {name} lr0 on {count} images: identical={report['lr0_identical'][name]}")
                continue
            initial, adapted, seconds = _run_condition(model, name, condition, data, args)
            timing[condition] = seconds / len(labels)
            if "before" not in scores:
                scores["before"] = _score_outputs(name, initial, labels, truth, processor, args, indices)
            scores[condition] = _score_outputs(name, adapted, labels, truth, processor, args, indices)
            logger.info(f"{split} {name} {condition}: {seconds:.0f} s")
        report[name] = {"scores": {key: {m: v.tolist() for m, v in value.items()} for key, value in scores.items()},
                        "seconds_per_image": timing, "summary": _summary(scores, args)}
    return report


def _summary(scores: dict, args) -> dict:
    summary = {}
    for metric in (*METRICS, "accuracy"):
        before = scores["before"][metric]
        # (NaN: an image without an object, e.g. part soup, has no whole to find; dropped from the means)
        entry = {"before": np.nanmean(before, axis=0).tolist()}
        for condition in SCORED_CONDITIONS:
            per_level = []
            for level in range(before.shape[1]):
                interval = bootstrap_interval(
                    scores[condition][metric][:, level], before[:, level], resamples=args.bootstrap_samples,
                    seed=args.seed,
                )
                per_level.append((interval["estimate"], interval["low"], interval["high"]))
            entry[condition] = per_level
        summary[metric] = entry
    return summary


_SWEEP_METRICS = ("best_segment_iou", "recognized_object_miou", "accuracy")


def _sweep(cast, data, truth: Truth, processor, args) -> dict:
    """Entropy adaptation of the trained CAST on the tuning images, one setting changed at a time from the arguments'
    (learning rate, then steps, then views): mean change of the primary metric, the recognized mIoU and accuracy,
    and the cost per image."""
    indices = np.arange(len(data[2]))
    settings = [("learning_rate", value) for value in args.sweep_learning_rates]
    settings += [("steps", value) for value in args.sweep_steps] + [("num_views", value) for value in args.sweep_views]
    results, before = {}, None
    for knob, value in settings:
        initial, adapted, seconds = _run_condition(cast, "cast", "entropy", data, args, **{knob: value})
        if before is None:
            before = _score_outputs("cast", initial, data[2], truth, processor, args, indices)
        after = _score_outputs("cast", adapted, data[2], truth, processor, args, indices)
        logger.info(f"sweep {knob}={value}: {seconds:.0f} s")
        results[f"{knob}={value}"] = {
            **{metric: np.nanmean(after[metric] - before[metric], axis=0).tolist() for metric in _SWEEP_METRICS},
            "seconds_per_image": seconds / len(indices),
        }
    return results


def _shift(pixel_values: torch.Tensor, processor: CastImageProcessor, args, seed: int) -> torch.Tensor:
    """Lower contrast and Gaussian noise in pixel units, applied to the normalized images (the superpixels are
    those of the clean image: the shift tests the networks, not SLIC)."""
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    mean = pixel_values.mean(dim=(-2, -1), keepdim=True)
    noise = torch.randn(pixel_values.shape, generator=generator) * (args.noise_std / _MAX_UINT8) / std
    return (mean + args.contrast * (pixel_values - mean) + noise).float()


def _to_uint8(pixel_values: torch.Tensor, processor: CastImageProcessor) -> list[np.ndarray]:
    """Normalized images back to (H, W, 3) uint8 pixels."""
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    pixels = ((pixel_values * std + mean) * _MAX_UINT8).round().clamp(0, _MAX_UINT8).to(torch.uint8)
    return list(pixels.permute(0, 2, 3, 1).numpy())


def main(argv: list[str] | None = None) -> dict:
    (args,) = HfArgumentParser(AdaptationBenchmarkArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.INFO, stream=sys.stdout, force=True)
    torch.set_num_threads(args.num_threads)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started, runtime = time.perf_counter(), {}
    training_args = args.training_arguments()
    processor = CastImageProcessor(size={"height": args.image_size, "width": args.image_size}, n_segments=args.n_segments)

    clock = time.perf_counter()
    mode = args.data_mode
    train = _generate(args.train_samples, args.image_size, args.seed, processor, mode=mode)
    splits = {
        "held_out": _generate(args.eval_samples, args.image_size, args.seed + HELD_OUT_SEED_OFFSET, processor, mode=mode),
        "shifted": _generate(args.eval_samples, args.image_size, args.seed + _SHIFT_SEED_OFFSET, processor, mode=mode),
    }
    tuning = _generate(args.tuning_samples, args.image_size, args.seed + _TUNING_SEED_OFFSET, processor, mode=mode)
    labeled = _generate(args.recognizer_samples, args.image_size, args.seed + _RECOGNIZER_SEED_OFFSET, processor, mode=mode)
    runtime["data"] = time.perf_counter() - clock
    logger.info(f"data in {runtime['data']:.0f} s")

    clock = time.perf_counter()
    recognizer, recognizer_info = train_segment_recognizer(
        labeled[3], num_object_labels=len(PART_WHOLE_CLASSES) + 1, num_part_labels=len(PART_NAMES),
        epochs=args.recognizer_epochs, seed=args.seed,
    )
    runtime["recognizer"] = time.perf_counter() - clock

    cast, vit = build_models(training_args, classes_of_mode(mode))
    report = {"arguments": asdict(args), "training": {}, "splits": {}, "recognizer": recognizer_info}
    for name, model in (("cast", cast), ("vit", vit)):
        clock = time.perf_counter()
        report["training"][name] = _train(model, PartWholeTensors(*train[:3], flip=True), training_args, name)
        runtime[f"train_{name}"] = time.perf_counter() - clock
        logger.info(f"trained {name} in {runtime[f'train_{name}']:.0f} s")
    models = {"cast": cast.eval(), "vit": ViTWithFeatures(vit).eval()}

    clock = time.perf_counter()
    tuning_data = (tuning[0].float(), tuning[1].long(), tuning[2])
    tuning_truth = Truth([s.object_mask for s in tuning[3]], [s.image for s in tuning[3]], recognizer)
    report["sweep"] = _sweep(cast, tuning_data, tuning_truth, processor, args)
    runtime["sweep"] = time.perf_counter() - clock
    for split, (pixel_values, superpixels, labels, samples) in splits.items():
        clock = time.perf_counter()
        pixel_values = pixel_values.float()
        images = [sample.image for sample in samples]
        if split == "shifted":
            pixel_values = _shift(pixel_values, processor, args, args.seed + _SHIFT_SEED_OFFSET)
            images = _to_uint8(pixel_values, processor)  # the recognizer reads the shifted pixels too
        data = (pixel_values, superpixels.long(), labels)
        truth = Truth([sample.object_mask for sample in samples], images, recognizer)
        report["splits"][split] = _evaluate_split(models, split, data, truth, processor, args)
        runtime[split] = time.perf_counter() - clock
    runtime["total"] = time.perf_counter() - started
    report.update(runtime_s=runtime, machine=_machine())
    (output_dir / "results.json").write_text(json.dumps(report, indent=1, default=float))
    markdown = results_markdown(report, args)
    (output_dir / "results.md").write_text(markdown)
    print(markdown)
    return report


def _interval(entry: tuple[float, float, float]) -> str:
    mean, low, high = entry
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def results_markdown(report: dict, args) -> str:
    """The tables of the report: per split and model, the mean before and the mean change with its interval."""
    coarse = f"{args.num_segments[-2]} / {args.num_segments[-1]} segments"
    lines = [
        f"Runtime {report['runtime_s']['total'] / 60:.1f} min ({', '.join(f'{k} {v:.0f} s' for k, v in report['runtime_s'].items())}).",
        "",
        f"Training: {json.dumps(report['training'])}; segment recognizer: {json.dumps(report['recognizer'])}.",
        "",
        f"Sweep (trained CAST, entropy, {args.tuning_samples} tuning images; one setting changed from learning rate "
        f"{args.adaptation_learning_rate}, {args.adaptation_steps} steps, {args.num_views} views; mean change at {coarse}):",
        "",
        "| setting | best-segment IoU change | recognized object mIoU change | accuracy change | seconds per image |",
        "|---|---|---|---|---|",
    ]
    for setting, entry in report["sweep"].items():
        lines.append(f"| {setting} | {' / '.join(f'{v:+.3f}' for v in entry['best_segment_iou'])} | "
                     f"{' / '.join(f'{v:+.3f}' for v in entry['recognized_object_miou'])} | "
                     f"{entry['accuracy'][0]:+.3f} | {entry['seconds_per_image']:.2f} |")
    for split, split_report in report["splits"].items():
        lines += ["", f"### {split} images (lr 0 identical to no adaptation: {split_report['lr0_identical']})", ""]
        lines += ["| model | metric | segments | before | " + " | ".join(SCORED_CONDITIONS) + " |",
                  "|---|---|---|---|" + "---|" * len(SCORED_CONDITIONS)]
        for name in ("cast", "vit"):
            summary = split_report[name]["summary"]
            for metric in (*METRICS, "accuracy"):
                levels = [args.num_segments[-2], args.num_segments[-1]] if metric != "accuracy" else ["-"]
                for index, level in enumerate(levels):
                    cells = [_interval(summary[metric][condition][index]) for condition in SCORED_CONDITIONS]
                    lines.append(f"| {name} | {metric} | {level} | {summary[metric]['before'][index]:.3f} | "
                                 + " | ".join(cells) + " |")
            seconds = split_report[name]["seconds_per_image"]["entropy"]
            lines.append(f"| {name} | seconds per image ({args.adaptation_steps} steps x {args.num_views} views) | | "
                         f"{seconds:.2f} | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
