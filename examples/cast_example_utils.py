# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Shared pieces of the CAST training examples: data loading (Hub dataset, image folder or a generated set of
colored shapes from `processing.synthetic.shapes`), configuration building and model cards."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import transformers

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:  # run as `python examples/<script>.py` from a source checkout
    sys.path.insert(0, str(_REPO_ROOT))

from modeling_cast import CAST_PRESETS, CastConfig  # noqa: E402
from modeling_cast.hub.cards import save_model_card, training_model_card  # noqa: E402
from processing.synthetic.shapes import SHAPE_NAMES, make_shapes_dataset  # noqa: E402

__all__ = [
    "DataTrainingArguments",
    "build_config",
    "load_image_datasets",
    "setup_logging",
    "train_and_evaluate",
    "write_model_card",
]

logger = logging.getLogger(__name__)

_SYNTHETIC_DATASET_NAME = "synthetic-shapes"


@dataclass
class DataTrainingArguments:
    """Where the images come from. Exactly one of `--dataset_name`, `--train_dir` or `--synthetic_samples`."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Dataset on the Hub (or a local dataset script/folder) for `datasets.load_dataset`."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of `--dataset_name`."})
    train_dir: str | None = field(
        default=None, metadata={"help": "Image folder (`imagefolder`: one sub-folder per class) for training."}
    )
    validation_dir: str | None = field(default=None, metadata={"help": "Image folder for evaluation."})
    synthetic_samples: int | None = field(
        default=None,
        metadata={
            "help": "Generate this many images of colored shapes (label = shape) instead of loading data "
            "(offline smoke tests)."
        },
    )
    synthetic_image_size: int = field(default=64, metadata={"help": "Side of the generated images."})
    synthetic_num_classes: int = field(
        default=3, metadata={"help": f"Shapes to draw, 2 to {len(SHAPE_NAMES)}: {', '.join(SHAPE_NAMES)}."}
    )
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images."})
    label_column_name: str = field(
        default="label", metadata={"help": "Column holding the class labels (classification)."}
    )
    train_val_split: float | None = field(
        default=0.15,
        metadata={"help": "Share of the training split held out for evaluation when there is no validation split."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Truncate the training set to this many examples (debugging, quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Truncate the evaluation set to this many examples."}
    )

    def __post_init__(self):
        sources = [
            name for name in ("dataset_name", "train_dir", "synthetic_samples") if getattr(self, name) is not None
        ]
        if len(sources) != 1:
            raise ValueError(
                f"give exactly one of --dataset_name, --train_dir or --synthetic_samples, got {sources or 'none'}"
            )
        if self.synthetic_samples is not None and self.synthetic_samples < 2:
            raise ValueError(f"--synthetic_samples must be >= 2, got {self.synthetic_samples}")
        if not 2 <= self.synthetic_num_classes <= len(SHAPE_NAMES):
            raise ValueError(
                f"--synthetic_num_classes must be in [2, {len(SHAPE_NAMES)}], got {self.synthetic_num_classes}"
            )
        if self.synthetic_image_size < 8:
            raise ValueError(f"--synthetic_image_size must be >= 8, got {self.synthetic_image_size}")
        if self.train_val_split is not None and not 0 <= self.train_val_split < 1:
            raise ValueError(f"--train_val_split must be in [0, 1), got {self.train_val_split}")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")

    @property
    def dataset_tag(self) -> str:
        """Dataset name for model cards."""
        if self.synthetic_samples is not None:
            return _SYNTHETIC_DATASET_NAME
        return self.dataset_name if self.dataset_name is not None else "imagefolder"


def setup_logging(training_args: transformers.TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def load_image_datasets(
    data_args: DataTrainingArguments, seed: int, cache_dir: str | None = None
) -> datasets.DatasetDict:
    """`train` (and `validation` when available or split off) from the Hub, image folders or generated shapes;
    columns renamed to `image` / `label`, truncated to `max_*_samples`."""
    if data_args.synthetic_samples is not None:
        train = make_shapes_dataset(
            data_args.synthetic_samples, data_args.synthetic_image_size, data_args.synthetic_num_classes, seed
        )
        validation = make_shapes_dataset(
            max(2, data_args.synthetic_samples // 4),
            data_args.synthetic_image_size,
            data_args.synthetic_num_classes,
            seed + 1,
        )
        dataset = datasets.DatasetDict({"train": train, "validation": validation})
    elif data_args.dataset_name is not None:
        dataset = datasets.load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=cache_dir)
    else:
        data_files = {"train": os.path.join(data_args.train_dir, "**")}
        if data_args.validation_dir is not None:
            data_files["validation"] = os.path.join(data_args.validation_dir, "**")
        dataset = datasets.load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)

    for column, standard in ((data_args.image_column_name, "image"), (data_args.label_column_name, "label")):
        if column != standard and column in dataset["train"].column_names:
            dataset = dataset.rename_column(column, standard)
    if "image" not in dataset["train"].column_names:
        raise ValueError(
            f"--image_column_name {data_args.image_column_name!r} not found; columns: {dataset['train'].column_names}"
        )
    if "validation" not in dataset and data_args.train_val_split:
        split = dataset["train"].train_test_split(data_args.train_val_split, seed=seed)
        dataset = datasets.DatasetDict({"train": split["train"], "validation": split["test"]})
    if data_args.max_train_samples is not None:
        dataset["train"] = dataset["train"].select(range(min(data_args.max_train_samples, len(dataset["train"]))))
    if data_args.max_eval_samples is not None and "validation" in dataset:
        dataset["validation"] = dataset["validation"].select(
            range(min(data_args.max_eval_samples, len(dataset["validation"])))
        )
    return dataset


def build_config(
    model_name_or_path: str | None, config_name: str | None, model_preset: str, config_overrides: str | None, **kwargs
) -> CastConfig:
    """The CAST configuration: from `config_name`, else `model_name_or_path`, else the preset; then the JSON
    `config_overrides` (e.g. '{"hidden_size": 192, "depths": [1, 1, 1, 1]}') and `kwargs`."""
    overrides = json.loads(config_overrides) if config_overrides else {}
    if not isinstance(overrides, dict):
        raise ValueError(f"--config_overrides must be a JSON object, got {config_overrides!r}")
    overrides.update(kwargs)
    source = config_name or model_name_or_path
    if source is not None:
        return CastConfig.from_pretrained(source, **overrides)
    if model_preset not in CAST_PRESETS:
        raise ValueError(f"--model_preset must be one of {sorted(CAST_PRESETS)}, got {model_preset!r}")
    return CastConfig.from_preset(model_preset, **overrides)



def train_and_evaluate(trainer: transformers.Trainer, training_args: transformers.TrainingArguments) -> dict:
    """`--do_train` (resuming from `--resume_from_checkpoint`; "last" picks the newest checkpoint-* of
    `--output_dir`), saving model, metrics and state; then `--do_eval`. Returns the evaluation metrics (empty
    without `--do_eval`)."""
    if training_args.do_train:
        resume = training_args.resume_from_checkpoint
        result = trainer.train(resume_from_checkpoint=True if resume == "last" else resume)
        trainer.save_model()
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    metrics = {}
    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return metrics

def write_model_card(
    trainer: transformers.Trainer,
    *,
    pipeline_tag: str,
    dataset: str,
    tags: list[str],
    base_model: str | None,
    start: str | None = None,
    task: str | None = None,
    task_name: str | None = None,
    metrics: dict[str, float] | None = None,
    description: str = "",
) -> None:
    """Write `README.md` in the output folder with the project's card writer (`modeling_cast.hub.cards`): Hub
    metadata (`pipeline_tag`, tags, `base_model` when it is a Hub id, a model index of `metrics` under the task
    `task`, default `pipeline_tag`, named `task_name`), the training settings and `description` (markdown).
    `start`: the weights training started from, a Hub id or a local folder (default `base_model`; None = from
    scratch)."""
    if not trainer.is_world_process_zero():
        return
    start = start or base_model
    origin = f"starting from `{start}`" if start else "from scratch"
    card = training_model_card(
        trainer.args,
        title=Path(trainer.args.output_dir).name,
        summary=f"A CAST model trained on {dataset} with the Hugging Face Trainer, {origin}.",
        pipeline_tag=pipeline_tag,
        tags=tags,
        dataset=dataset,
        base_model=base_model,
        start=start,
        results=metrics,
        task_type=task,
        task_name=task_name,
        sections=[description.strip()] if description else (),
    )
    save_model_card(card, trainer.args.output_dir)
