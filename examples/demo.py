# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`make demo`: train a tiny CAST on part-whole images, save it, reload it like a Hub checkpoint and segment with it.

Everything runs offline on a CPU in a few minutes:

1. generate a small part-whole set (`processing/synthetic/part_whole.py`: objects made of parts, with object and part masks)
   and write it as an imagefolder (`--output_dir/part_whole/{train,test}`), then read it back with `datasets`;
2. train a tiny `CastForImageClassification` on the class labels only, with `Trainer`;
3. save it (safetensors, config, image processor, flat code files) and reload it with `AutoModel` and
   `pipeline("image-segmentation")`;
4. segment the held-out images, write one picture per image (the image and every hierarchy level, colored so that a
   segment keeps its parent's hue) and print the classification accuracy and segmentation metrics: region mIoU of
   objects and parts per level (oracle segment labels), boundary F-score and the quality of the superpixels.

    python examples/demo.py                              # defaults: about 4 minutes on 2 CPU cores
    python examples/demo.py --max_steps 1000 --train_samples 4000   # better segments, longer
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    default_data_collator,
    pipeline,
    set_seed,
)
from transformers.utils import logging as transformers_logging

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:  # run as `python examples/demo.py` from a source checkout
    sys.path.insert(0, str(_REPO_ROOT))

# importing modeling_cast registers the "cast" model type with the Auto classes and the pipelines
from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor  # noqa: E402
from modeling_cast.configuration_cast import superpixel_token_budget  # noqa: E402
from processing.evaluation.metrics import hierarchy_level_scores, superpixel_quality  # noqa: E402
from processing.synthetic.part_whole import (  # noqa: E402
    HELD_OUT_SEED_OFFSET,
    PART_WHOLE_CLASSES,
    load_part_whole_imagefolder,
    make_part_whole_dataset,
    write_part_whole_imagefolder,
)
from processing.visualization_cast import save_hierarchy_picture  # noqa: E402

__all__ = ["DemoArguments", "main"]

logger = logging.getLogger(__name__)


@dataclass
class DemoArguments:
    """Size of the demo; the defaults take about 4 minutes on 2 CPU cores."""

    output_dir: str = field(default="outputs/demo", metadata={"help": "Where the data, model and pictures go."})
    train_samples: int = field(default=1200, metadata={"help": "Generated training images."})
    eval_samples: int = field(default=24, metadata={"help": "Generated held-out images (metrics and pictures)."})
    pictures: int = field(default=6, metadata={"help": "Held-out images drawn as hierarchy pictures."})
    image_size: int = field(default=96, metadata={"help": "Image side, a multiple of 8."})
    n_segments: int = field(default=64, metadata={"help": "SLIC superpixels requested per image."})
    hidden_size: int = field(default=96, metadata={"help": "Width of the tiny CAST."})
    num_attention_heads: int = field(default=3, metadata={"help": "Attention heads."})
    depths: list[int] = field(default_factory=lambda: [2, 2, 2, 1], metadata={"help": "Transformer blocks per stage."})
    num_segments: list[int] = field(default_factory=lambda: [32, 16, 8, 4], metadata={"help": "Segments per level."})
    max_steps: int = field(default=600, metadata={"help": "Training steps."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size."})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW peak learning rate."})
    seed: int = field(default=0, metadata={"help": "Seed of the data and the initialization."})
    num_threads: int = field(default=1, metadata={"help": "torch threads (1 is fastest for tiny models on small CPUs)."})

    def __post_init__(self):
        for name in ("train_samples", "eval_samples", "max_steps", "batch_size", "num_threads", "n_segments"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.pictures <= self.eval_samples:
            raise ValueError(f"--pictures must be in [0, eval_samples], got {self.pictures}")


def _preprocess(dataset, processor: CastImageProcessor):
    """Superpixels and normalized pixels for every image, computed once (not at every training step)."""

    def process(batch: dict) -> dict:
        inputs = processor([image.convert("RGB") for image in batch["image"]], return_tensors="np")
        return {"pixel_values": inputs["pixel_values"], "superpixels": inputs["superpixels"], "labels": batch["label"]}

    processed = dataset.map(process, batched=True, batch_size=64, remove_columns=dataset.column_names)
    return processed.with_format("torch")


def _train(args: DemoArguments, train_dataset, processor: CastImageProcessor, model_dir: Path) -> dict:
    config = CastConfig(
        hidden_size=args.hidden_size,
        num_attention_heads=args.num_attention_heads,
        pooling_num_attention_heads=args.num_attention_heads,
        depths=list(args.depths),
        num_segments=list(args.num_segments),
        image_size=args.image_size,
        num_labels=len(PART_WHOLE_CLASSES),
        max_superpixel_tokens=superpixel_token_budget(args.n_segments, args.image_size),
        id2label=dict(enumerate(PART_WHOLE_CLASSES)),
        label2id={name: index for index, name in enumerate(PART_WHOLE_CLASSES)},
    )
    set_seed(args.seed)
    model = CastForImageClassification(config)
    training_args = TrainingArguments(
        output_dir=str(model_dir),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=0.05,
        warmup_steps=max(1, args.max_steps // 10),
        lr_scheduler_type="cosine",
        logging_steps=max(1, args.max_steps // 5),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=args.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=_preprocess(train_dataset, processor),
        processing_class=processor,
        data_collator=default_data_collator,
    )
    result = trainer.train()
    trainer.save_model()  # weights, config, image processor and the flat code files
    return result.metrics


def _segment_and_score(args: DemoArguments, model_dir: Path, test_dataset, pictures_dir: Path) -> dict:
    """Reload the saved folder like a Hub checkpoint, segment the held-out images, draw and score them."""
    processor = AutoImageProcessor.from_pretrained(model_dir)
    backbone = AutoModel.from_pretrained(model_dir).eval()  # CastModel: the hierarchy
    classifier = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    images = [image.convert("RGB") for image in test_dataset["image"]]
    object_masks = [np.asarray(mask, dtype=np.int64) for mask in test_dataset["object_mask"]]
    part_masks = [np.asarray(mask, dtype=np.int64) for mask in test_dataset["part_mask"]]

    inputs = processor(images, return_tensors="pt")
    with torch.no_grad():
        outputs = backbone(**inputs)
        logits = classifier(**inputs).logits
    hierarchies = processor.post_process_hierarchical_segmentation(
        outputs, target_sizes=[image.size[::-1] for image in images]
    )
    accuracy = float((logits.argmax(-1) == torch.tensor(test_dataset["label"])).float().mean())

    picture_paths = []
    for index in range(args.pictures):
        path = pictures_dir / f"test_{index:02d}_{PART_WHOLE_CLASSES[test_dataset[index]['label']]}.png"
        save_hierarchy_picture(images[index], hierarchies[index], path)
        picture_paths.append(path)

    levels = hierarchy_level_scores(hierarchies, {"object": object_masks, "part": part_masks})
    for scores, count in zip(levels, args.num_segments):
        scores["segments"] = count
    quality = superpixel_quality(inputs["superpixels"], part_masks)
    return {"accuracy": accuracy, "levels": levels, "superpixels": quality, "pictures": picture_paths}


def _pipeline_masks(model_dir: Path, image, path: Path) -> int:
    """`pipeline("image-segmentation")` on the saved folder: the coarsest level's segments as masks."""
    segmenter = pipeline("image-segmentation", model=str(model_dir))
    segments = segmenter(image)
    canvas = np.zeros((*np.asarray(segments[0]["mask"]).shape, 3), dtype=np.uint8)
    palette = np.random.default_rng(0).integers(60, 256, size=(len(segments), 3), dtype=np.uint8)
    for color, segment in zip(palette, segments):
        canvas[np.asarray(segment["mask"]) > 0] = color
    from PIL import Image

    Image.fromarray(canvas).save(path)
    return len(segments)


def main(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the metrics it prints."""
    (args,) = HfArgumentParser(DemoArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)
    datasets.disable_progress_bars()  # the four steps below say what happens; per-file bars only add noise
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(args.num_threads)
    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    data_dir, model_dir, pictures_dir = output_dir / "part_whole", output_dir / "cast-part-whole", output_dir / "pictures"
    pictures_dir.mkdir(parents=True, exist_ok=True)

    print(f"[1/4] generating {args.train_samples} + {args.eval_samples} part-whole images of {args.image_size} px")
    write_part_whole_imagefolder(make_part_whole_dataset(args.train_samples, args.image_size, args.seed), data_dir, "train")
    test_seed = args.seed + HELD_OUT_SEED_OFFSET
    write_part_whole_imagefolder(make_part_whole_dataset(args.eval_samples, args.image_size, test_seed), data_dir, "test")
    train_dataset = load_part_whole_imagefolder(data_dir, "train")
    test_dataset = load_part_whole_imagefolder(data_dir, "test")

    print(f"[2/4] training a tiny CAST on the class labels for {args.max_steps} steps (Trainer, CPU)")
    processor = CastImageProcessor(size={"height": args.image_size, "width": args.image_size}, n_segments=args.n_segments)
    train_metrics = _train(args, train_dataset, processor, model_dir)

    print("[3/4] reloading the saved model with AutoModel and pipeline('image-segmentation')")
    pipeline_picture = pictures_dir / "pipeline_coarsest_level.png"
    num_pipeline_segments = _pipeline_masks(model_dir, test_dataset[0]["image"].convert("RGB"), pipeline_picture)

    print("[4/4] segmenting the held-out images")
    results = _segment_and_score(args, model_dir, test_dataset, pictures_dir)
    elapsed = time.perf_counter() - started

    print(f"\ntraining loss {train_metrics['train_loss']:.3f} in {train_metrics['train_runtime']:.0f} s; "
          f"held-out classification accuracy {results['accuracy']:.3f} over {args.eval_samples} images "
          f"(chance {1 / len(PART_WHOLE_CLASSES):.2f})")
    print("\nsegmentation of the held-out images (region mIoU with oracle segment labels; boundary F at the BSDS "
          "tolerance):")
    print("| segments | object mIoU | part mIoU | object boundary F | part boundary F |")
    print("|---|---|---|---|---|")
    for scores in results["levels"]:
        print(f"| {scores['segments']} | {scores['object_miou']:.3f} | {scores['part_miou']:.3f} "
              f"| {scores['object_boundary_f']:.3f} | {scores['part_boundary_f']:.3f} |")
    quality = results["superpixels"]
    print(f"\nsuperpixels vs parts: {quality['mean_num_superpixels']:.0f} per image, boundary recall "
          f"{quality['boundary_recall']:.3f}, undersegmentation error {quality['undersegmentation_error']:.3f}, "
          f"achievable segmentation accuracy {quality['achievable_segmentation_accuracy']:.3f}")
    print("\nfiles:")
    print(f"  data (imagefolder):      {data_dir}")
    print(f"  model (from_pretrained): {model_dir}")
    print(f"  pipeline masks:          {pipeline_picture} ({num_pipeline_segments} segments)")
    for path in results["pictures"]:
        print(f"  hierarchy picture:       {path}")
    print(f"\ndone in {elapsed:.0f} s")
    results["pipeline_segments"] = num_pipeline_segments
    results["elapsed_s"] = elapsed
    return results


if __name__ == "__main__":
    main()
