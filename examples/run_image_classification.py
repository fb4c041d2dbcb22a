# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune CAST for image classification, or train a linear probe on a frozen backbone (the paper's
evaluation of self-supervised backbones), with `Trainer`.

    # full fine-tuning of a pre-trained backbone
    python examples/run_image_classification.py --model_name_or_path cast-small-moco --train_dir train/ \\
        --validation_dir val/ --output_dir cast-small-ft --do_train --do_eval --eval_strategy epoch
    # linear probing (official: SGD, momentum 0.9, no weight decay, backbone frozen and in eval mode)
    python examples/run_image_classification.py --model_name_or_path cast-small-moco --linear_probe \\
        --train_dir train/ --validation_dir val/ --output_dir cast-small-linear --do_train --do_eval \\
        --optim sgd --learning_rate 0.1 --weight_decay 0 --lr_scheduler_type cosine

Training images get a random resized crop and a horizontal flip, evaluation images the processor's resize and
center crop; superpixels are computed in the dataset transform (DataLoader workers), or with `--superpixels_on_device`
by the model itself on the training device (batched tensor SLIC). The output folder loads with
`CastForImageClassification.from_pretrained` and `pipeline("image-classification")`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
import transformers
from transformers import EvalPrediction, HfArgumentParser, Trainer, TrainingArguments, default_data_collator, set_seed

from cast_example_utils import (
    DataTrainingArguments,
    build_config,
    load_image_datasets,
    setup_logging,
    train_and_evaluate,
    write_model_card,
)

from modeling_cast import CastForImageClassification, CastImageProcessor
from processing.training.augmentation import ClassificationTransform, superpixels_on_device

logger = logging.getLogger(__name__)

_EVAL_RESIZE_RATIO = 256 / 224  # official evaluation: resize the shorter side to 256, center-crop 224


@dataclass
class ModelArguments:
    """Model, configuration, image processor and training mode."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Backbone or checkpoint to start from (e.g. the output of run_pretraining_moco.py, or a Hub "
            "id). Default: random initialization."
        },
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Configuration folder or file, if not the model's."}
    )
    model_preset: str = field(default="cast-small", metadata={"help": "Architecture when training from scratch."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "JSON object of configuration fields to override."}
    )
    image_processor_name: str | None = field(
        default=None, metadata={"help": "Image processor folder, if not the model's."}
    )
    image_size: int = field(
        default=224,
        metadata={"help": "Training crop side; evaluation resizes to image_size * 256/224 and center-crops."},
    )
    n_segments: int = field(default=196, metadata={"help": "Superpixels per image (official: 196 at 224x224)."})
    superpixel_method: str = field(default="slic", metadata={"help": "slic (scikit-image) or seeds (OpenCV-contrib)."})
    superpixels_on_device: bool = field(
        default=False,
        metadata={
            "help": "Compute the superpixels on the training device inside the model (batched tensor SLIC) instead "
            "of in the DataLoader workers."
        },
    )
    crop_min_scale: float = field(
        default=0.08, metadata={"help": "Smallest area share of the training random resized crops."}
    )
    linear_probe: bool = field(
        default=False,
        metadata={
            "help": "Train only the classifier: the backbone is frozen and kept in eval mode (official linear probing)."
        },
    )
    base_model_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id recorded as `base_model` in the model card (default: --model_name_or_path when it "
            "is not a local folder)."
        },
    )
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Re-initialize a classifier of another size."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloaded datasets and models."})

    def __post_init__(self):
        if self.image_size < 8:
            raise ValueError(f"--image_size must be >= 8, got {self.image_size}")
        if self.n_segments < 1:
            raise ValueError(f"--n_segments must be >= 1, got {self.n_segments}")
        if not 0 < self.crop_min_scale <= 1:
            raise ValueError(f"--crop_min_scale must be in (0, 1], got {self.crop_min_scale}")
        if (
            self.base_model_id is None
            and self.model_name_or_path is not None
            and not os.path.exists(self.model_name_or_path)
        ):
            self.base_model_id = self.model_name_or_path


class LinearProbeTrainer(Trainer):
    """Trainer that keeps the (frozen) backbone in eval mode while the classifier trains, as the official linear
    probing does: `Trainer` switches the whole model to train mode before every step, which would let the stem's
    BatchNorm statistics and the pooling dropout change the features."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.accelerator.unwrap_model(model).cast.eval()
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def freeze_backbone(model: CastForImageClassification) -> None:
    """Linear probing: only the classifier is trained."""
    model.cast.requires_grad_(False)
    model.cast.eval()
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    logger.info(f"Linear probing: training {trainable}")


def compute_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    # plain numpy: `evaluate.load("accuracy")` needs the Hub, these examples must also run offline
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


def parse_arguments(argv: list[str] | None) -> tuple[ModelArguments, DataTrainingArguments, TrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def _load_image_processor(model_args: ModelArguments, patch_size: int) -> CastImageProcessor:
    """The model's processor (or a new one), set to the official evaluation geometry: shorter side resized to
    `image_size * 256/224`, center crop `image_size`. Training crops come from the transform."""
    side = model_args.image_size
    geometry = {
        "size": {"shortest_edge": round(side * _EVAL_RESIZE_RATIO / patch_size) * patch_size},
        "do_center_crop": True,
        "crop_size": {"height": side, "width": side},
    }
    source = model_args.image_processor_name or model_args.model_name_or_path
    if source is not None and (
        model_args.image_processor_name is not None or os.path.isfile(os.path.join(source, "preprocessor_config.json"))
    ):
        return CastImageProcessor.from_pretrained(source, cache_dir=model_args.cache_dir, **geometry)
    return CastImageProcessor(
        n_segments=model_args.n_segments,
        superpixel_method=model_args.superpixel_method,
        patch_size=patch_size,
        **geometry,
    )


def main(argv: list[str] | None = None, callbacks: list[transformers.TrainerCallback] | None = None) -> Trainer:
    """Run fine-tuning or linear probing; `argv` defaults to the command line, `callbacks` are added to the
    Trainer's."""
    model_args, data_args, training_args = parse_arguments(argv)
    # images are turned into model inputs by the dataset transform: keep the raw columns for it
    training_args.remove_unused_columns = False
    setup_logging(training_args)
    logger.info(f"Training parameters {training_args}")
    set_seed(training_args.seed)

    dataset = load_image_datasets(data_args, training_args.seed, model_args.cache_dir)
    label_feature = dataset["train"].features.get("label")
    if label_feature is None or not hasattr(label_feature, "names"):
        raise ValueError(
            f"--label_column_name {data_args.label_column_name!r} must be a ClassLabel column of the training set"
        )
    id2label = dict(enumerate(label_feature.names))
    label2id = {name: index for index, name in id2label.items()}

    config = build_config(
        model_args.model_name_or_path,
        model_args.config_name,
        model_args.model_preset,
        model_args.config_overrides,
        num_labels=len(id2label),
        id2label=id2label,
        label2id=label2id,
    )
    image_processor = _load_image_processor(model_args, config.patch_size)
    if model_args.superpixels_on_device:
        superpixels_on_device(config, image_processor)
    if model_args.model_name_or_path is not None:
        model = CastForImageClassification.from_pretrained(
            model_args.model_name_or_path,
            config=config,
            cache_dir=model_args.cache_dir,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        )
    else:
        model = CastForImageClassification(config)
    # The convolutional stem computes in channels-last layout, so its weight gradients come out channels-last; weights
    # in the same layout keep DDP's gradient buckets aligned (no stride-mismatch copies, no warning).
    model = model.to(memory_format=torch.channels_last)
    if model_args.linear_probe:
        freeze_backbone(model)

    scale = (model_args.crop_min_scale, 1.0)
    in_workers = not model_args.superpixels_on_device
    train_transform = ClassificationTransform(image_processor, train=True, scale=scale, compute_superpixels=in_workers)
    eval_transform = ClassificationTransform(image_processor, train=False, compute_superpixels=in_workers)
    train_dataset = dataset["train"].with_transform(train_transform) if training_args.do_train else None
    eval_dataset = dataset["validation"].with_transform(eval_transform) if "validation" in dataset else None
    if training_args.do_eval and eval_dataset is None:
        raise ValueError(
            "--do_eval needs a validation split (--validation_dir, a dataset with one, or --train_val_split > 0)"
        )

    trainer_class = LinearProbeTrainer if model_args.linear_probe else Trainer
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=image_processor,
        data_collator=default_data_collator,
        compute_metrics=compute_accuracy,
        callbacks=callbacks,
    )

    metrics = train_and_evaluate(trainer, training_args)

    mode = "linear probing (frozen backbone)" if model_args.linear_probe else "full fine-tuning"
    origin = model_args.model_name_or_path or f"random initialization ({model_args.model_preset})"
    write_model_card(
        trainer,
        pipeline_tag="image-classification",
        dataset=data_args.dataset_tag,
        tags=["cast", "image-classification", "linear-probe" if model_args.linear_probe else "fine-tuned"],
        base_model=model_args.base_model_id,
        start=model_args.model_name_or_path,
        task="image-classification",
        task_name="Image Classification",
        metrics={"accuracy": metrics["eval_accuracy"]} if "eval_accuracy" in metrics else None,
        description=(
            f"## CAST image classification\n\nCAST (Ke, Mo, Yu, ICLR 2024) trained by {mode}, starting from {origin}."
        ),
    )
    return trainer


if __name__ == "__main__":
    main()
