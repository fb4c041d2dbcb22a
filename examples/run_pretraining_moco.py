# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Self-supervised pre-training of CAST with MoCo v3 (the paper's recipe) on any image dataset, with `Trainer`.

    python examples/run_pretraining_moco.py --train_dir path/to/images --output_dir cast-small-moco \\
        --model_preset cast-small --per_device_train_batch_size 64 --num_train_epochs 100 \\
        --learning_rate 1.5e-4 --weight_decay 0.1 --warmup_ratio 0.1 --lr_scheduler_type cosine \\
        --dataloader_num_workers 8 --bf16

Two augmented views of every image (official MoCo-v3 augmentations, `processing.training.augmentation`) get their
superpixels from `CastImageProcessor` inside the dataset transform, i.e. in the DataLoader workers (with
`--superpixels_on_device`, the model computes them on the training device instead: batched tensor SLIC). The momentum
encoder follows the base encoder through `MomentumUpdateCallback` (cosine schedule, once per optimizer step). The
output folder loads with `CastForPreTraining.from_pretrained` (to continue), `CastModel.from_pretrained` (features)
and `CastForImageClassification.from_pretrained` (fine-tuning or linear probing).

The same script runs on several processes/machines: `accelerate launch` or `torchrun` (see the README, "Train").
Offline smoke test: `--synthetic_samples 32 --config_overrides '{"hidden_size": 32, ...}'`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import torch
import transformers
from transformers import HfArgumentParser, Trainer, TrainingArguments, default_data_collator, set_seed

from cast_example_utils import (
    DataTrainingArguments,
    build_config,
    load_image_datasets,
    setup_logging,
    train_and_evaluate,
    write_model_card,
)

from modeling_cast import CastForPreTraining, CastImageProcessor, MomentumUpdateCallback
from processing.training.augmentation import TwoViewTransform, moco_v3_views, superpixels_on_device

logger = logging.getLogger(__name__)

_CARD_DESCRIPTION = """## CAST MoCo-v3 pre-training

Self-supervised CAST (Ke, Mo, Yu, ICLR 2024) trained with the MoCo-v3 recipe of the paper. Load the backbone with
`CastModel.from_pretrained` (image features: `pooler_output`; hierarchical segmentation: `hierarchy`), fine-tune or
linearly probe it with `CastForImageClassification.from_pretrained`, or continue pre-training with
`CastForPreTraining.from_pretrained` (the momentum encoder is part of the weights). Outside this package, load with
`trust_remote_code=True`."""


@dataclass
class ModelArguments:
    """Model, configuration and image processor."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from these weights (a CastForPreTraining folder, or a CAST backbone: the momentum "
            "encoder then starts as its copy). Default: random initialization."
        },
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Configuration folder or file, if not the model's."}
    )
    model_preset: str = field(
        default="cast-small",
        metadata={
            "help": "Architecture when training from scratch: cast-small, cast-small-deep, cast-base, cast-base-deep."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "JSON object of configuration fields to override, e.g. '{\"pretraining_temperature\": 0.2}'."
        },
    )
    image_processor_name: str | None = field(
        default=None, metadata={"help": "Image processor folder, if not the model's."}
    )
    image_size: int = field(default=224, metadata={"help": "Side of the augmented views (the official recipe: 224)."})
    n_segments: int = field(default=196, metadata={"help": "Superpixels per view (official: 196 at 224x224)."})
    superpixel_method: str = field(
        default="slic",
        metadata={"help": "slic (scikit-image) or seeds (OpenCV-contrib; the released checkpoints used SEEDS)."},
    )
    superpixels_on_device: bool = field(
        default=False,
        metadata={
            "help": "Compute the superpixels on the training device inside the model (batched tensor SLIC) instead "
            "of in the DataLoader workers."
        },
    )
    crop_min_scale: float = field(
        default=0.08, metadata={"help": "Smallest area share of the random resized crops (official: 0.08)."}
    )
    base_momentum: float | None = field(
        default=None,
        metadata={"help": "Momentum at the start of training (default: config.pretraining_momentum = 0.99)."},
    )
    momentum_cosine: bool = field(
        default=True, metadata={"help": "Raise the momentum to 1 on a cosine schedule (official --moco-m-cos)."}
    )
    sync_batchnorm: bool = field(
        default=False,
        metadata={
            "help": "Convert BatchNorms to SyncBatchNorm, as the official multi-GPU training (CUDA, several "
            "processes only)."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloaded datasets and models."})

    def __post_init__(self):
        if self.image_size < 8:
            raise ValueError(f"--image_size must be >= 8, got {self.image_size}")
        if self.n_segments < 1:
            raise ValueError(f"--n_segments must be >= 1, got {self.n_segments}")
        if not 0 < self.crop_min_scale <= 1:
            raise ValueError(f"--crop_min_scale must be in (0, 1], got {self.crop_min_scale}")
        if self.base_momentum is not None and not 0 <= self.base_momentum <= 1:
            raise ValueError(f"--base_momentum must be in [0, 1], got {self.base_momentum}")


def parse_arguments(argv: list[str] | None) -> tuple[ModelArguments, DataTrainingArguments, TrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def _load_image_processor(model_args: ModelArguments, patch_size: int) -> CastImageProcessor:
    source = model_args.image_processor_name or model_args.model_name_or_path
    if source is not None and os.path.isfile(os.path.join(source, "preprocessor_config.json")):
        return CastImageProcessor.from_pretrained(source)
    if source is not None and model_args.image_processor_name is not None:
        return CastImageProcessor.from_pretrained(source, cache_dir=model_args.cache_dir)
    return CastImageProcessor(
        size={"height": model_args.image_size, "width": model_args.image_size},
        n_segments=model_args.n_segments,
        superpixel_method=model_args.superpixel_method,
        patch_size=patch_size,
    )


def main(argv: list[str] | None = None, callbacks: list[transformers.TrainerCallback] | None = None) -> Trainer:
    """Run the pre-training; `argv` defaults to the command line, `callbacks` are added to the Trainer's."""
    model_args, data_args, training_args = parse_arguments(argv)
    # The views are built from raw images by the dataset transform: keep the `image` column for it.
    training_args.remove_unused_columns = False
    # Like the official loader, drop the last incomplete batch: BatchNorm needs several images, and every
    # process must contribute keys of the same batch size.
    training_args.dataloader_drop_last = True
    setup_logging(training_args)
    logger.info(f"Training parameters {training_args}")
    set_seed(training_args.seed)

    dataset = load_image_datasets(data_args, training_args.seed, model_args.cache_dir)
    config = build_config(
        model_args.model_name_or_path, model_args.config_name, model_args.model_preset, model_args.config_overrides
    )
    image_processor = _load_image_processor(model_args, config.patch_size)
    if model_args.superpixels_on_device:
        superpixels_on_device(config, image_processor)
    if model_args.model_name_or_path is not None:
        model = CastForPreTraining.from_pretrained(
            model_args.model_name_or_path, config=config, cache_dir=model_args.cache_dir
        )
    else:
        model = CastForPreTraining(config)
    # The convolutional stem computes in channels-last layout, so its weight gradients come out channels-last; weights
    # in the same layout keep DDP's gradient buckets aligned (no stride-mismatch copies, no warning).
    model = model.to(memory_format=torch.channels_last)
    if model_args.sync_batchnorm:
        if not (torch.cuda.is_available() and training_args.world_size > 1):
            raise ValueError(
                "--sync_batchnorm needs CUDA and several processes (torch's SyncBatchNorm has no CPU kernel)"
            )
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    views = moco_v3_views(model_args.image_size, scale=(model_args.crop_min_scale, 1.0))
    transform = TwoViewTransform(
        image_processor, views=views, image_column="image", compute_superpixels=not model_args.superpixels_on_device
    )
    train_dataset = dataset["train"].with_transform(transform) if training_args.do_train else None
    eval_dataset = dataset["validation"].with_transform(transform) if "validation" in dataset else None
    if training_args.do_eval and eval_dataset is None:
        raise ValueError(
            "--do_eval needs a validation split (--validation_dir, a dataset with one, or --train_val_split > 0)"
        )

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=image_processor,
        data_collator=default_data_collator,
        callbacks=[
            MomentumUpdateCallback(model_args.base_momentum, cosine=model_args.momentum_cosine),
            *(callbacks or []),
        ],
    )

    metrics = train_and_evaluate(trainer, training_args)

    write_model_card(
        trainer,
        pipeline_tag="image-feature-extraction",
        dataset=data_args.dataset_tag,
        tags=["cast", "moco-v3", "self-supervised", "image-feature-extraction"],
        base_model=model_args.model_name_or_path if _is_hub_id(model_args.model_name_or_path) else None,
        start=model_args.model_name_or_path,
        task_name="Self-supervised pre-training (MoCo v3)",
        metrics={"contrastive_loss": metrics["eval_loss"]} if "eval_loss" in metrics else None,
        description=_CARD_DESCRIPTION,
    )
    return trainer


def _is_hub_id(name: str | None) -> bool:
    """A Hub repository id (recorded as `base_model`), not a local folder."""
    return name is not None and not os.path.exists(name)


if __name__ == "__main__":
    main()
