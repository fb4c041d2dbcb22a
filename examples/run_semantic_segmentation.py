# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune CAST for semantic segmentation with the Hugging Face Trainer.

Any CAST checkpoint initializes the model: a backbone ([`CastModel`]), an image classifier or a segmentation model.
Its encoder weights are loaded, and the level fusion and per-superpixel classifier of [`CastForSemanticSegmentation`]
are new (or kept, for a segmentation checkpoint with the same classes). The data are either folders of images and
masks or a built-in generator of images with known per-pixel classes, so the script runs offline:

    python examples/run_semantic_segmentation.py \\
        --model_name_or_path path/to/cast-backbone --synthetic_samples 64 --image_size 64 --n_segments 48 \\
        --output_dir outputs/cast-shapes --do_train --do_eval --max_steps 80 --per_device_train_batch_size 8 \\
        --learning_rate 3e-3 --warmup_steps 5 --use_cpu --report_to none --save_strategy no

`--head upernet` trains transformers' `UperNetForSemanticSegmentation` on [`CastBackbone`] feature maps instead (the
CAST encoder weights of the checkpoint, a new UperNet decoder; `--upernet_hidden_size`, `--out_features`):

    python examples/run_semantic_segmentation.py --head upernet --upernet_hidden_size 64 \\
        --model_name_or_path path/to/cast-backbone --synthetic_samples 64 --image_size 64 --n_segments 48 \\
        --output_dir outputs/cast-upernet-shapes --do_train --do_eval --max_steps 80 \\
        --per_device_train_batch_size 8 --learning_rate 3e-3 --warmup_steps 5 --use_cpu --report_to none

Folder layout for `--train_dir` / `--validation_dir`: `images/<name>.<ext>` and `masks/<name>.png`, one mask per
image with the same stem, holding one integer class per pixel (PIL mode "L", "P" or "I"); the class names come from
`--id2label_file` (JSON `{"0": "road", ...}`, by default `id2label.json` in the training folder).

At the end the folder holds the model (with its flat code files, so it also loads with `trust_remote_code=True`),
the image processor and a model card whose metadata say `pipeline_tag: image-segmentation`, so
`pipeline("image-segmentation", model=output_dir)` returns one mask per predicted class at the image's size.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image
from transformers import (
    AutoConfig,
    EvalPrediction,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    UperNetConfig,
    UperNetForSemanticSegmentation,
    default_data_collator,
)
from transformers.utils import logging

# the repository root, so that the script also runs from a checkout where the package is not installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# importing modeling_cast registers the "cast" model type with the Auto classes
from modeling_cast import CastBackbone, CastForSemanticSegmentation, CastImageProcessor  # noqa: E402
from modeling_cast.hub.cards import save_model_card, training_model_card  # noqa: E402
from processing.evaluation.metrics import mean_iou  # noqa: E402
from processing.training.augmentation import processor_outputs, superpixels_on_device  # noqa: E402
# the built-in data, under the names this script has always exported
from processing.synthetic.shapes import SEGMENTATION_ID2LABEL as SYNTHETIC_ID2LABEL  # noqa: E402
from processing.synthetic.shapes import make_segmentation_shapes as synthetic_shapes  # noqa: E402


__all__ = [
    "DataTrainingArguments",
    "ModelArguments",
    "SYNTHETIC_ID2LABEL",
    "load_segmentation_folder",
    "main",
    "synthetic_shapes",
    "write_model_card",
]

logger = logging.get_logger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TOKEN_POOLING_RESOLUTIONS = ("grid", "pixel")
# `cast`: CastForSemanticSegmentation (official level fusion, a class per superpixel); `upernet`: transformers'
# UperNet decoder on CastBackbone's per-stage feature maps
HEADS = ("cast", "upernet")

# ---------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ModelArguments:
    """Which checkpoint to start from and how to shape the segmentation model."""

    model_name_or_path: str = field(
        metadata={"help": "A CAST checkpoint (folder or Hub name): backbone, image classifier or segmentation model."}
    )
    num_segments: list[int] | None = field(
        default=None,
        metadata={
            "help": "Segments per stage of the segmentation model, e.g. `320 160 80 40` (official fine-tuning); "
            "by default those of the checkpoint."
        },
    )
    token_pooling_resolution: str | None = field(
        default=None,
        metadata={
            "help": "`grid` (pool superpixel tokens from the stem grid) or `pixel` (from pixels, the official "
            "segmentation variant); by default that of the checkpoint."
        },
    )

    head: str = field(
        default="cast",
        metadata={
            "help": "`cast`: CastForSemanticSegmentation (every stage fused onto the superpixels, a class per "
            "superpixel); `upernet`: transformers' UperNetForSemanticSegmentation on CastBackbone feature maps."
        },
    )
    out_features: list[str] | None = field(
        default=None,
        metadata={"help": "`--head upernet`: the CastBackbone stages UperNet reads (by default all: stem stage1 ...)."},
    )
    upernet_hidden_size: int = field(
        default=512, metadata={"help": "`--head upernet`: channels of the UperNet decoder (512 in UperNet)."}
    )

    def __post_init__(self):
        resolution = self.token_pooling_resolution
        if resolution is not None and resolution not in TOKEN_POOLING_RESOLUTIONS:
            raise ValueError(
                f"`token_pooling_resolution` must be one of {TOKEN_POOLING_RESOLUTIONS}, "
                f"got {self.token_pooling_resolution!r}"
            )
        if self.head not in HEADS:
            raise ValueError(f"`--head` must be one of {HEADS}, got {self.head!r}")
        if self.upernet_hidden_size < 1:
            raise ValueError(f"`--upernet_hidden_size` must be a positive integer, got {self.upernet_hidden_size}")
        if self.out_features is not None and self.head != "upernet":
            raise ValueError(f"`--out_features` only applies to `--head upernet`, got --head {self.head!r}")


@dataclass
class DataTrainingArguments:
    """Where the data come from and how the image processor prepares them."""

    train_dir: str | None = field(
        default=None, metadata={"help": "Folder with `images/` and `masks/` (same file stems) for training."}
    )
    validation_dir: str | None = field(default=None, metadata={"help": "Same layout, for evaluation."})
    id2label_file: str | None = field(
        default=None,
        metadata={"help": "JSON `{class id: name}`; by default `id2label.json` in `--train_dir`."},
    )
    synthetic_samples: int | None = field(
        default=None,
        metadata={
            "help": "Train on N generated images of colored shapes (classes background, disc, square, triangle) "
            "and evaluate on N // 4 others, instead of folders."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep at most this many training images."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep at most this many evaluation images."})
    image_size: int | None = field(
        default=None, metadata={"help": "Square size images are resized to; by default the checkpoint processor's."}
    )
    n_segments: int | None = field(
        default=None, metadata={"help": "Superpixels per image; by default the checkpoint processor's."}
    )
    do_reduce_labels: bool = field(
        default=False,
        metadata={"help": "Masks use 0 for 'unlabeled' (ADE20k): make it 255 (ignored) and shift the others down."},
    )
    horizontal_flip: bool = field(default=True, metadata={"help": "Flip training images and masks at random."})
    superpixels_on_device: bool = field(
        default=False,
        metadata={
            "help": "Compute the superpixels on the training device inside the model (batched tensor SLIC) instead "
            "of in the DataLoader workers."
        },
    )

    def __post_init__(self):
        if (self.synthetic_samples is None) == (self.train_dir is None and self.validation_dir is None):
            raise ValueError(
                "give either `--synthetic_samples N` or data folders (`--train_dir`, `--validation_dir`), not both "
                f"or neither; got synthetic_samples={self.synthetic_samples}, train_dir={self.train_dir!r}, "
                f"validation_dir={self.validation_dir!r}"
            )
        for name in ("synthetic_samples", "max_train_samples", "max_eval_samples", "image_size", "n_segments"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`--{name}` must be a positive integer, got {value}")
        for name in ("train_dir", "validation_dir", "id2label_file"):
            path = getattr(self, name)
            if path is not None and not os.path.exists(path):
                raise ValueError(f"`--{name}` {path!r} does not exist")
        if self.synthetic_samples is None and self.id2label_file is None:
            folder = self.train_dir or self.validation_dir
            default = os.path.join(folder, "id2label.json")
            if not os.path.isfile(default):
                raise ValueError(f"give `--id2label_file` (class names), or put `id2label.json` in {folder!r}")
            self.id2label_file = default


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def load_segmentation_folder(folder: str) -> Dataset:
    """A dataset with `image` and `annotation` columns (decoded lazily) from `folder/images` and `folder/masks`."""
    image_folder, mask_folder = Path(folder) / "images", Path(folder) / "masks"
    if not image_folder.is_dir() or not mask_folder.is_dir():
        raise ValueError(f"{folder!r} must contain `images/` and `masks/` folders")
    masks = {path.stem: path for path in mask_folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS}
    images = sorted(path for path in image_folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS)
    missing = [path.name for path in images if path.stem not in masks]
    if not images or missing:
        raise ValueError(
            f"every image in {str(image_folder)!r} needs a mask with the same stem in {str(mask_folder)!r}; "
            f"found {len(images)} images, missing masks for {missing[:5]}"
        )
    columns = {"image": [str(path) for path in images], "annotation": [str(masks[path.stem]) for path in images]}
    return Dataset.from_dict(columns, features=Features({"image": ImageFeature(), "annotation": ImageFeature()}))


def _datasets(data_args: DataTrainingArguments, seed: int) -> tuple[Dataset | None, Dataset | None, dict[int, str]]:
    features = Features({"image": ImageFeature(), "annotation": ImageFeature()})
    if data_args.synthetic_samples is not None:
        size = data_args.image_size or 64
        train = Dataset.from_dict(synthetic_shapes(data_args.synthetic_samples, size, seed), features=features)
        num_eval = max(data_args.synthetic_samples // 4, 1)
        # a different seed: evaluation images are never training images
        evaluation = Dataset.from_dict(synthetic_shapes(num_eval, size, seed + 1), features=features)
        return train, evaluation, dict(SYNTHETIC_ID2LABEL)
    train = load_segmentation_folder(data_args.train_dir) if data_args.train_dir else None
    evaluation = load_segmentation_folder(data_args.validation_dir) if data_args.validation_dir else None
    with open(data_args.id2label_file, encoding="utf-8") as file:
        id2label = {int(key): str(value) for key, value in json.load(file).items()}
    if sorted(id2label) != list(range(len(id2label))):
        raise ValueError(f"`--id2label_file` must name classes 0..K-1, got ids {sorted(id2label)}")
    return train, evaluation, id2label


def _transform(image_processor: CastImageProcessor, flip: bool, compute_superpixels: bool = True):
    def transform(batch: dict) -> dict:
        images = list(batch["image"])  # the image processor decodes every mode
        masks = list(batch["annotation"])
        if flip:
            for index in range(len(images)):
                if random.random() < 0.5:
                    images[index] = images[index].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                    masks[index] = masks[index].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return processor_outputs(image_processor, images, compute_superpixels, segmentation_maps=masks)

    return transform


# ---------------------------------------------------------------------------------------------------------------
# Model, metrics, card
# ---------------------------------------------------------------------------------------------------------------


def _load_model(
    model_args: ModelArguments, id2label: dict[int, str], image_processor: CastImageProcessor
) -> CastForSemanticSegmentation | UperNetForSemanticSegmentation:
    overrides = {
        "id2label": id2label,
        "label2id": {name: index for index, name in id2label.items()},
    }
    if model_args.num_segments is not None:
        overrides["num_segments"] = list(model_args.num_segments)
    if model_args.token_pooling_resolution is not None:
        overrides["token_pooling_resolution"] = model_args.token_pooling_resolution
    config = AutoConfig.from_pretrained(model_args.model_name_or_path, **overrides)
    if config.model_type != "cast":
        raise ValueError(f"`--model_name_or_path` must be a CAST checkpoint, got model_type {config.model_type!r}")
    if model_args.head == "upernet":
        return _load_upernet(model_args, config, image_processor)
    # backbone and classifier checkpoints load their encoder (prefix "cast"); the fusion and classifier are new,
    # and a segmentation checkpoint with other classes gets a new classifier
    return CastForSemanticSegmentation.from_pretrained(
        model_args.model_name_or_path, config=config, ignore_mismatched_sizes=True
    )


def _load_upernet(
    model_args: ModelArguments, cast_config, image_processor: CastImageProcessor
) -> UperNetForSemanticSegmentation:
    """UperNet on the CAST encoder of the checkpoint: the classes move to the UperNet config, the backbone reads
    `--out_features` (by default every stage), and its weights are the checkpoint's (any CAST folder)."""
    id2label = dict(cast_config.id2label)
    cast_config.out_features = model_args.out_features or list(cast_config.stage_names)
    # UperNet passes only `pixel_values` to its backbone, which then computes the superpixels itself: as many as the
    # image processor asks for, on the images it recovers with the processor's normalization
    superpixels_on_device(cast_config, image_processor)
    config = UperNetConfig(
        backbone_config=cast_config,
        hidden_size=model_args.upernet_hidden_size,
        # the auxiliary FCN head reads the third feature map, which a two-stage CAST may not have
        use_auxiliary_head=False,
        loss_ignore_index=cast_config.semantic_loss_ignore_index,
        id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
    )
    model = UperNetForSemanticSegmentation(config)
    # UperNet builds its backbone from the config alone (random weights): load the checkpoint's encoder into it
    model.backbone = CastBackbone.from_pretrained(model_args.model_name_or_path, config=config.backbone_config)
    return model


def _load_image_processor(model_args: ModelArguments, data_args: DataTrainingArguments) -> CastImageProcessor:
    overrides = {"do_reduce_labels": data_args.do_reduce_labels}
    if data_args.image_size is not None:
        overrides["size"] = {"height": data_args.image_size, "width": data_args.image_size}
    if data_args.n_segments is not None:
        overrides["n_segments"] = data_args.n_segments
    try:
        return CastImageProcessor.from_pretrained(model_args.model_name_or_path, **overrides)
    except OSError:
        logger.warning(f"no image processor in {model_args.model_name_or_path!r}: using CastImageProcessor defaults")
        return CastImageProcessor(**overrides)


def _predicted_classes(logits, labels: torch.Tensor) -> torch.Tensor:
    """Keep only the argmax of the logits between evaluation steps (a class map instead of K score maps)."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.argmax(dim=1)


def _metrics_function(id2label: dict[int, str], ignore_index: int):
    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        metrics = mean_iou(prediction.predictions, prediction.label_ids, len(id2label), ignore_index=ignore_index)
        scalars = {name: metrics[name] for name in ("mean_iou", "mean_accuracy", "overall_accuracy")}
        for index, iou in enumerate(metrics["per_category_iou"]):
            scalars[f"iou_{id2label[index]}"] = float(iou)
        return scalars

    return compute_metrics


def write_model_card(
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    config,
    image_processor: CastImageProcessor,
    metrics: dict,
) -> Path:
    """README.md with `pipeline_tag: image-segmentation`, the base model, the data, the training settings and the
    final metrics (the mean IoU in the model index), written by the project's card writer."""
    output_dir = training_args.output_dir
    dataset_name = (
        "synthetic shapes" if data_args.synthetic_samples is not None else Path(data_args.train_dir or "").name
    )
    mean_iou = metrics.get("eval_mean_iou", math.nan)
    image_size = {name: value for name, value in dict(image_processor.size).items() if value is not None}
    classes = ", ".join(f"{index}: {name}" for index, name in sorted(config.id2label.items()))
    cast_config = getattr(config, "backbone_config", None) or config
    if model_args.head == "upernet":
        architecture = (
            "UperNet semantic segmentation model on a CAST backbone: the tokens of the stages "
            f"{cast_config.out_features} are painted back onto the stem grid through the superpixel hierarchy and "
            "UperNet's pyramid decoder scores every pixel."
        )
    else:
        architecture = (
            "CAST semantic segmentation model: every stage of the superpixel hierarchy is fused back onto the "
            "superpixel tokens, a linear classifier scores each superpixel and the scores are painted onto its pixels."
        )
    summary = (
        f"{architecture} Fine-tuned with `examples/run_semantic_segmentation.py` of cast-transformers from "
        f"`{model_args.model_name_or_path}` on {dataset_name}.\n\n"
        f"- Classes ({config.num_labels}): {classes}\n"
        f"- Segments per stage: {cast_config.num_segments}; token pooling: `{cast_config.token_pooling_resolution}`"
    )
    usage = f"""## How to use

```python
import modeling_cast  # registers CAST with the Auto classes (or pass trust_remote_code=True)
from transformers import pipeline

segmenter = pipeline("image-segmentation", model="{Path(output_dir).name}")
masks = segmenter("image.png")  # one {{"label", "mask"}} per predicted class, at the image's size
```"""
    card = training_model_card(
        training_args,
        title=Path(output_dir).name,
        summary=summary,
        pipeline_tag="image-segmentation",
        tags=["cast", "superpixels", "semantic-segmentation", "vision"],
        dataset=dataset_name,
        base_model=model_args.model_name_or_path,
        start=model_args.model_name_or_path,
        results={"mean_iou": round(float(mean_iou), 4)} if not math.isnan(mean_iou) else None,
        task_name="Semantic segmentation",
        metrics=metrics,
        details=[f"image processor: size {image_size}, about {image_processor.n_segments} superpixels per image"],
        sections=[usage],
    )
    return save_model_card(card, output_dir)


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run fine-tuning and/or evaluation; returns the final metrics (`train_*` and `eval_*`)."""
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    if argv is None:
        argv = sys.argv[1:]
    if len(argv) == 1 and argv[0].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if training_args.remove_unused_columns:
        # the transform reads the raw `image` and `annotation` columns, which the model's signature does not name
        logger.info("setting `remove_unused_columns=False`: the on-the-fly transform needs the raw columns")
        training_args.remove_unused_columns = False

    train_dataset, eval_dataset, id2label = _datasets(data_args, training_args.seed)
    if training_args.do_train and train_dataset is None:
        raise ValueError("`--do_train` needs `--train_dir` or `--synthetic_samples`")
    if training_args.do_eval and eval_dataset is None:
        raise ValueError("`--do_eval` needs `--validation_dir` or `--synthetic_samples`")
    if train_dataset is not None and data_args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(data_args.max_train_samples, len(train_dataset))))
    if eval_dataset is not None and data_args.max_eval_samples is not None:
        eval_dataset = eval_dataset.select(range(min(data_args.max_eval_samples, len(eval_dataset))))

    image_processor = _load_image_processor(model_args, data_args)
    model = _load_model(model_args, id2label, image_processor)
    # UperNet's backbone always computes its superpixels itself (the head passes only pixel_values), set up in
    # `_load_upernet`; the CAST head does so with --superpixels_on_device
    if data_args.superpixels_on_device and model_args.head != "upernet":
        superpixels_on_device(model.config, image_processor)
    in_workers = not (data_args.superpixels_on_device or model_args.head == "upernet")
    if train_dataset is not None:
        train_dataset = train_dataset.with_transform(
            _transform(image_processor, data_args.horizontal_flip, compute_superpixels=in_workers)
        )
    if eval_dataset is not None:
        eval_dataset = eval_dataset.with_transform(_transform(image_processor, flip=False, compute_superpixels=in_workers))

    # the label the loss ignores (UperNet's config names it `loss_ignore_index`)
    ignore_index = getattr(model.config, "semantic_loss_ignore_index", None)
    if ignore_index is None:
        ignore_index = model.config.loss_ignore_index
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=image_processor,
        data_collator=default_data_collator,
        compute_metrics=_metrics_function(id2label, ignore_index),
        preprocess_logits_for_metrics=_predicted_classes,
    )
    if not (training_args.do_train or training_args.do_eval):
        logger.warning("neither `--do_train` nor `--do_eval` was given: nothing to do")
    metrics = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        metrics.update(result.metrics)
    if training_args.do_eval:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    if training_args.do_train:
        trainer.save_model()  # model, flat code files and (processing_class) the image processor
        card = write_model_card(
            training_args, model_args, data_args, model.config, image_processor, metrics
        )
        logger.info(f"saved the fine-tuned model and its card to {card.parent}")
    return metrics


if __name__ == "__main__":
    main()
