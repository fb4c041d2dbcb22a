# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The released CAST models, described by one table, and what `from_pretrained` says when one is missing.

The table (`NAMED_MODELS`) holds, per name, the architecture (from `CAST_PRESETS`), the official `arch` strings and
checkpoint layout that identify the original file, and the facts of its model card (training data and recipe,
results cited from the official README). The rest of `modeling_cast.hub` is generated from it: the model cards
(`cards`), the `hub_configs/` folders and the converter's folders (`folders`).

The official files are PyTorch training pickles without a config, published in the authors' Hub repository
(`OFFICIAL_HUB_REPOSITORY`). The `from_pretrained` wrapper that `import modeling_cast` installs on the Auto classes
and the CAST classes (`explain_missing_models`) loads a released name from the local Hugging Face cache, fetches,
converts and installs it there on first use when the machine is online (`fetch`), and otherwise raises one message
saying how to get it (`missing_model_message`). `cast-convert` does the same from files.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import torch
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from safetensors import SafetensorError
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

import modeling_cast
from modeling_cast.configuration_cast import CAST_PRESETS, CastConfig
from modeling_cast.modeling_cast import (
    CAST_CUSTOM_PIPELINES,
    CastForImageClassification,
    CastForSemanticSegmentation,
    CastModel,
    CastPreTrainedModel,
    cast_auto_map,
)
from modeling_cast.pretraining_cast import CastForPreTraining

from .cache import hub_cache_dir

__all__ = [
    "CHECKPOINT_LAYOUTS",
    "CONVERTER_COMMAND",
    "MissingModelError",
    "NAMED_MODELS",
    "NamedModel",
    "OFFICIAL_HUB_REPOSITORY",
    "OFFICIAL_REPOSITORY",
    "ReportedResult",
    "check_named_model",
    "custom_named_model",
    "empty_model",
    "explain_missing_models",
    "get_named_model",
    "missing_model_message",
    "model_class",
    "named_config",
    "named_model_for_arch",
    "named_processor",
    "official_file_url",
]

OFFICIAL_REPOSITORY = "https://github.com/twke18/CAST"
# The authors' Hugging Face repository holding the released training checkpoints (official README, model zoo).
OFFICIAL_HUB_REPOSITORY = "twke/CAST"
CONVERTER_COMMAND = "cast-convert"
# How the authors' training scripts store a checkpoint (`cast-convert` detects it from the keys).
CHECKPOINT_LAYOUTS = {
    "moco": "MoCo-v3 training checkpoint (base and momentum encoders, predictor, optimizer and scaler state)",
    "deit": "DeiT training checkpoint (`model` state dict, optimizer and scheduler state, training arguments)",
    "moco-segmentation": "MoCo-v3 training checkpoint of the segmentation variant (with `block_fusion.*` weights)",
    "state-dict": "state dict (parameter names to tensors, bare or under a `state_dict` key)",
}

# Official input pipeline (MoCo-v3 recipe and linear probing): 224x224 views, 196 OpenCV-SEEDS superpixels computed on
# the un-normalized view, ImageNet mean/std.
TRAINING_RESOLUTION = 224
TRAINING_SUPERPIXELS = 196
# DeiT evaluation: resize the shorter side to 224 / 0.875 = 256 (bicubic), center-crop 224.
DEIT_EVAL_RESIZE = 256

_CLASSIFIER_ARCHITECTURE = "CastForImageClassification"
_MODEL_CLASSES = {
    model_class.__name__: model_class
    for model_class in (CastModel, CastForImageClassification, CastForSemanticSegmentation, CastForPreTraining)
}


@dataclass(frozen=True)
class ReportedResult:
    """One number a model card reports: cited from the official README for the released models, or measured by the
    run that trained a model. `in_model_index=False` for numbers that describe another model (a baseline, or a
    fine-tuned descendant of the checkpoint): they appear in the card's text only."""

    task_type: str
    dataset_type: str
    dataset_name: str
    metric_type: str
    metric_name: str
    value: float
    in_model_index: bool = True
    task_name: str | None = None


@dataclass(frozen=True)
class NamedModel:
    """A released CAST checkpoint: how to build it, where its weights come from, and what its card says. The image
    processor settings and the card's pipeline tag follow from the architecture (a classifier is evaluated like DeiT,
    everything else like the MoCo-v3 backbone)."""

    name: str
    title: str
    config_kwargs: dict
    architecture: str
    summary: str
    checkpoint_layout: str
    official_arch: tuple[str, ...]
    tags: tuple[str, ...]
    datasets: tuple[str, ...]
    training_data: str
    training_recipe: str
    results: tuple[ReportedResult, ...] = ()
    results_note: str = ""
    limitations: tuple[str, ...] = ()
    released: bool = True
    # path of the official checkpoint in OFFICIAL_HUB_REPOSITORY; None when the authors published no file
    official_file: str | None = None

    @property
    def is_classifier(self) -> bool:
        return self.architecture == _CLASSIFIER_ARCHITECTURE

    @property
    def processor_kwargs(self) -> dict:
        """The `CastImageProcessor` settings the weights were trained (and are evaluated) with."""
        return dict(_CLASSIFIER_PROCESSOR if self.is_classifier else _BACKBONE_PROCESSOR)

    @property
    def pipeline_tag(self) -> str:
        return "image-classification" if self.is_classifier else "image-segmentation"


_BACKBONE_PROCESSOR = {
    "superpixel_method": "seeds",
    "n_segments": TRAINING_SUPERPIXELS,
    "size": {"height": TRAINING_RESOLUTION, "width": TRAINING_RESOLUTION},
    "image_mean": list(IMAGENET_DEFAULT_MEAN),
    "image_std": list(IMAGENET_DEFAULT_STD),
}
_CLASSIFIER_PROCESSOR = {
    **_BACKBONE_PROCESSOR,
    "size": {"shortest_edge": DEIT_EVAL_RESIZE},
    "resample": PILImageResampling.BICUBIC,
    "do_center_crop": True,
    "crop_size": {"height": TRAINING_RESOLUTION, "width": TRAINING_RESOLUTION},
}

_COMMON_TAGS = ("cast", "vision", "superpixels", "hierarchical-segmentation", "vision-transformer")
_MOCO_TAGS = (*_COMMON_TAGS, "self-supervised", "moco-v3", "image-feature-extraction")

_MOCO_IMAGENET_DATA = (
    "ImageNet-1k training images, **without labels**: MoCo-v3 is self-supervised."
)
_MOCO_RECIPE = (
    "MoCo-v3 with the official CAST scripts: 100 epochs on ImageNet-1k, batch 256, AdamW (lr 1.5e-4 x batch/256, "
    "weight decay 0.1, 10 warm-up epochs then half-cycle cosine), mixed precision. Two encoders (base and momentum, "
    "momentum 0.99 raised to 1 on a cosine schedule), a 3-layer projector (4096 hidden, 256 out) and a predictor, "
    "contrastive loss with temperature 0.2. Each view is a 224x224 RandomResizedCrop (scale 0.08-1) with color "
    "jitter, grayscale, blur, solarization and flips; its 196 OpenCV-SEEDS superpixels are computed on the "
    "augmented, un-normalized view (1 level, prior 2, 15 histogram bins, 20 iterations), then ImageNet mean/std "
    "normalization is applied. The released file is the MoCo-v3 training checkpoint; this model is its base encoder "
    "without the projector (the official linear-probing load). The momentum encoder, projector, predictor and "
    "optimizer state are training state and are not part of it."
)
_LINEAR_PROBE_NOTE = (
    "Linear probing (official protocol): a linear classifier on the frozen class-token feature, evaluated with "
    "Resize(256) + CenterCrop(224) and SEEDS superpixels. The ViT baseline is the official MoCo-v3 ViT trained with "
    "the same recipe."
)


def _moco_imagenet(
    name: str, preset: str, arch: str, title: str, official_file: str | None, results=(), results_note=""
) -> NamedModel:
    config = CAST_PRESETS[preset]
    depths = "/".join(str(depth) for depth in config["depths"])
    return NamedModel(
        name=name,
        title=title,
        config_kwargs=dict(config),
        architecture="CastModel",
        summary=(
            f"CAST backbone ({config['hidden_size']} wide, {config['num_attention_heads']} heads, {depths} transformer "
            "blocks per stage, 64/32/16/8 segments) pretrained with MoCo-v3 on ImageNet-1k without labels. It returns "
            "an image feature (the class token) and a four-level hierarchical segmentation of the image."
        ),
        checkpoint_layout="moco",
        official_arch=(arch,),
        tags=_MOCO_TAGS,
        datasets=("imagenet-1k",),
        training_data=_MOCO_IMAGENET_DATA,
        training_recipe=_MOCO_RECIPE,
        results=tuple(results),
        results_note=results_note,
        official_file=official_file,
    )


def _linear_probe(model: str, value: float, in_model_index: bool = True) -> ReportedResult:
    return ReportedResult(
        task_type="image-classification",
        dataset_type="imagenet-1k",
        dataset_name="ImageNet-1k",
        metric_type="accuracy",
        metric_name=f"{model} linear-probe top-1 accuracy (MoCo-v3, batch 256, 100 epochs)",
        value=value,
        in_model_index=in_model_index,
    )


NAMED_MODELS: dict[str, NamedModel] = {
    entry.name: entry
    for entry in (
        _moco_imagenet(
            "cast-small",
            "cast-small",
            "cast_small",
            "CAST-S, MoCo-v3 on ImageNet-1k",
            "snapshots/moco/imagenet1k/cast_small/checkpoint_0099.pth.tar",
            results=(_linear_probe("CAST-S", 68.1), _linear_probe("ViT-S (baseline)", 67.9, in_model_index=False)),
            results_note=_LINEAR_PROBE_NOTE,
        ),
        _moco_imagenet(
            "cast-small-deep",
            "cast-small-deep",
            "cast_small_deep",
            "CAST-S-deep, MoCo-v3 on ImageNet-1k",
            "snapshots/moco/imagenet1k/cast_small_deep/checkpoint_0099.pth.tar",
            results=(
                _linear_probe("CAST-S-deep", 69.1),
                _linear_probe("CAST-S", 68.1, in_model_index=False),
                _linear_probe("ViT-S (baseline)", 67.9, in_model_index=False),
            ),
            results_note=_LINEAR_PROBE_NOTE,
        ),
        _moco_imagenet(
            "cast-base",
            "cast-base",
            "cast_base",
            "CAST-B, MoCo-v3 on ImageNet-1k",
            "snapshots/moco/imagenet1k/cast_base/checkpoint_0099.pth.tar",
            results=(
                _linear_probe("CAST-B", 72.4),
                _linear_probe("ViT-B (baseline)", 72.5, in_model_index=False),
                ReportedResult("image-segmentation", "partimagenet", "PartImageNet", "mean_iou",
                               "object region mIoU (open-vocabulary labeling of CAST-B segments)", 29.67),
                ReportedResult("image-segmentation", "partimagenet", "PartImageNet", "mean_iou",
                               "part region mIoU (open-vocabulary labeling of CAST-B segments)", 13.21),
            ),
            results_note=(
                f"{_LINEAR_PROBE_NOTE} PartImageNet: the official notebook labels this model's segments with an "
                "open-vocabulary classifier and measures region mIoU for objects and parts."
            ),
        ),
        # the authors published no cast-base-deep checkpoint: the card and the missing-model message say so
        _moco_imagenet(
            "cast-base-deep", "cast-base-deep", "cast_base_deep", "CAST-B-deep, MoCo-v3 on ImageNet-1k", None
        ),
        NamedModel(
            name="cast-small-deit",
            title="CAST-S, supervised (DeiT recipe) on ImageNet-1k",
            config_kwargs={**CAST_PRESETS["cast-small"], "position_embedding_type": "learned", "num_labels": 1000},
            architecture="CastForImageClassification",
            summary=(
                "CAST-S (384 wide, 12 heads, 3/3/3/2 blocks, 64/32/16/8 segments) trained as a 1000-class ImageNet-1k "
                "classifier with the DeiT recipe (the official DeiT variant of CAST, with a learned position "
                "embedding that has a class-token slot). It returns class logits and a four-level hierarchical "
                "segmentation of the image."
            ),
            checkpoint_layout="deit",
            official_file="snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth",
            # the DeiT script names the model with `--model cast_small`; the layout tells it from the MoCo backbone
            official_arch=("cast_small",),
            tags=(*_COMMON_TAGS, "image-classification", "deit", "supervised"),
            datasets=("imagenet-1k",),
            training_data="ImageNet-1k training images with their 1000 class labels.",
            training_recipe=(
                "Supervised training with the official DeiT-based CAST scripts (`deit/main_suppix.py --model "
                "cast_small`, 196 SEEDS superpixels per image, ImageNet mean/std); see the official repository for "
                "the exact hyper-parameters. Evaluation: resize the shorter side to 256 (bicubic), center-crop 224."
            ),
            results=(
                ReportedResult("image-classification", "imagenet-1k", "ImageNet-1k", "accuracy",
                               "top-1 accuracy (DeiT supervised)", 80.4),
            ),
            limitations=(
                "Class names: the checkpoint stores class indices only, and ImageNet's label names are not available "
                "offline, so `config.id2label` keeps the generic names `LABEL_0` ... `LABEL_999` (ImageNet-1k class "
                "index order). Set `model.config.id2label` yourself to get names from the pipeline.",
                "The official DeiT data loader ran SEEDS with 5 histogram bins and 15 iterations, while "
                '`superpixel_method="seeds"` here uses the MoCo-v3 loader\'s settings (15 bins, 20 iterations): '
                "superpixels, and so predictions, can differ slightly from the official evaluation.",
            ),
        ),
        NamedModel(
            name="cast-small-coco",
            title="CAST-S segmentation backbone, MoCo-v3 on COCO",
            config_kwargs=dict(CAST_PRESETS["cast-small"]),
            architecture="CastForSemanticSegmentation",
            summary=(
                "The backbone of CAST's segmentation variant (CAST-S: 384 wide, 12 heads, 3/3/3/2 blocks, 64/32/16/8 "
                "segments, plus the level-fusion module that brings every stage back onto the superpixel tokens), "
                "pretrained with MoCo-v3 on COCO images without labels. It initializes semantic-segmentation "
                "fine-tuning; its classifier is not trained."
            ),
            checkpoint_layout="moco-segmentation",
            # epoch 149: the "before fine-tuning" model of the VOC results (checkpoint_0399 is the final one)
            official_file="snapshots/moco/coco/cast_small/checkpoint_0149.pth.tar",
            official_arch=("cast_seg_small_pretrain",),
            tags=(*_COMMON_TAGS, "self-supervised", "moco-v3", "semantic-segmentation"),
            datasets=("coco",),
            training_data="COCO training images, **without labels** (MoCo-v3 is self-supervised).",
            training_recipe=(
                "MoCo-v3 with the official CAST scripts (`cast_seg_small_pretrain`: the segmentation variant in its "
                "pretraining mode, where the fused superpixel tokens are averaged and fed to the MoCo projector), "
                "224x224 views with 196 OpenCV-SEEDS superpixels per view, ImageNet mean/std. For fine-tuning, the "
                "official recipe uses 320/160/80/40 segments per stage."
            ),
            results=(
                ReportedResult("image-segmentation", "pascal-voc", "PASCAL VOC", "mean_iou",
                               "semantic segmentation mIoU before fine-tuning", 38.4),
                ReportedResult("image-segmentation", "pascal-voc", "PASCAL VOC", "mean_iou",
                               "semantic segmentation mIoU after fine-tuning (a fine-tuned model, not this checkpoint)",
                               67.6, in_model_index=False),
            ),
            limitations=(
                "The checkpoint holds no semantic classifier: `AutoModelForSemanticSegmentation.from_pretrained(name, "
                "num_labels=K)` creates one for fine-tuning; until it is trained, the class logits mean nothing (the "
                "hierarchy does).",
            ),
        ),
    )
}


def get_named_model(name: str) -> NamedModel:
    """The table entry of a released checkpoint. Raises ValueError naming the known names."""
    if name not in NAMED_MODELS:
        raise ValueError(f"`name` must be one of the released CAST models {sorted(NAMED_MODELS)}, got {name!r}")
    return NAMED_MODELS[name]


def named_model_for_arch(arch: str, checkpoint_layout: str) -> str | None:
    """Name of the released model an official checkpoint's `arch` string (and layout) belongs to, or None."""
    for entry in NAMED_MODELS.values():
        if arch in entry.official_arch and entry.checkpoint_layout == checkpoint_layout:
            return entry.name
    return None


def custom_named_model(name: str, config: CastConfig, architecture: str, checkpoint_layout: str) -> NamedModel:
    """A table entry for a checkpoint that is not one of the released models (e.g. a model trained with the official
    code at another size): official preprocessing, a card without results."""
    if checkpoint_layout not in CHECKPOINT_LAYOUTS:
        raise ValueError(f"`checkpoint_layout` must be one of {sorted(CHECKPOINT_LAYOUTS)}, got {checkpoint_layout!r}")
    kwargs = {key: value for key, value in config.to_diff_dict().items() if key in CastConfig.__dataclass_fields__}
    if architecture == _CLASSIFIER_ARCHITECTURE:
        kwargs["num_labels"] = config.num_labels
    return NamedModel(
        name=name,
        title=f"{name}: CAST converted from an official-format checkpoint",
        config_kwargs=kwargs,
        architecture=architecture,
        summary=(
            f"A CAST model ({config.hidden_size} wide, {config.num_attention_heads} heads, depths {config.depths}, "
            f"segments {config.num_segments}) converted from a {CHECKPOINT_LAYOUTS[checkpoint_layout]}. "
            "It is not one of the models released with the paper."
        ),
        checkpoint_layout=checkpoint_layout,
        official_arch=(),
        tags=_COMMON_TAGS,
        datasets=(),
        training_data="Unknown: see the provenance of the original checkpoint.",
        training_recipe="Unknown: see the provenance of the original checkpoint.",
        released=False,
    )


def _entry(name_or_entry: str | NamedModel) -> NamedModel:
    return name_or_entry if isinstance(name_or_entry, NamedModel) else get_named_model(name_or_entry)


def named_config(name_or_entry: str | NamedModel) -> CastConfig:
    """The `CastConfig` of a named model, as saved with its weights (architectures and the full `auto_map`)."""
    entry = _entry(name_or_entry)
    config = CastConfig(**entry.config_kwargs)
    config.architectures = [entry.architecture]
    config.auto_map = cast_auto_map()
    config.custom_pipelines = CAST_CUSTOM_PIPELINES  # saved folders carry the pipeline's code (model.save_pretrained)
    config.dtype = torch.float32  # converted weights are written in float32, like the official ones
    return config


def model_class(architecture: str) -> type[CastPreTrainedModel]:
    """The model class named `architecture` (e.g. "CastModel", "CastForPreTraining")."""
    if architecture not in _MODEL_CLASSES:
        raise ValueError(f"`architecture` must be a CAST model class exported by modeling_cast, got {architecture!r}")
    return _MODEL_CLASSES[architecture]


def empty_model(name_or_entry: str | NamedModel) -> CastPreTrainedModel:
    """The named model's architecture on the `meta` device: no memory and no initialization, for shapes, parameter
    counts and loading converted weights with `load_state_dict(..., assign=True)`."""
    entry = _entry(name_or_entry)
    with torch.device("meta"):
        return model_class(entry.architecture)(named_config(entry))


def named_processor(name_or_entry: str | NamedModel):
    """The `CastImageProcessor` with the settings the named model's weights were trained with."""
    # the package re-exports the processor: modeling_cast/* imports processing/* only in its __init__
    return modeling_cast.CastImageProcessor(**_entry(name_or_entry).processor_kwargs)


# ------------------------------------------------------------------------------------------------- missing models
class MissingModelError(OSError):
    """A CAST model that is neither a local folder nor in the local cache; the message says how to get it."""


def official_file_url(entry: NamedModel) -> str:
    """Where the official checkpoint of `entry` lies: `<Hub repository>/<path>`."""
    return f"{OFFICIAL_HUB_REPOSITORY}/{entry.official_file}"


def missing_model_message(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """How to get a named model that is not in the local cache (offline, or a name without a published file)."""
    convert = (
        f"convert it once:\n    {CONVERTER_COMMAND} --checkpoint <official file> --model-name {name} "
        "--output-dir <DIR> --install-to-cache\n"
    )
    if name in NAMED_MODELS and NAMED_MODELS[name].official_file is not None:
        entry = NAMED_MODELS[name]
        source = (
            f"Online (HF_HUB_OFFLINE unset), `from_pretrained({name!r})` downloads the official checkpoint "
            f"{official_file_url(entry)} (`arch` {', '.join(entry.official_arch)}), converts it and installs it in "
            f"the cache by itself, as does `{CONVERTER_COMMAND} --model-name {name} --download`. Without a "
            f"connection here, download that file elsewhere and {convert}"
        )
    elif name in NAMED_MODELS:
        source = (
            f"The authors published no checkpoint for {name} (nothing in {OFFICIAL_HUB_REPOSITORY}, see "
            f"{OFFICIAL_REPOSITORY}). With a checkpoint of that architecture trained with the official code, "
            + convert
        )
    else:
        source = f"Named CAST models: {', '.join(sorted(NAMED_MODELS))}. Get the official checkpoint and {convert}"
    return (
        f"CAST model {name!r} is not in the local Hugging Face cache ({hub_cache_dir(cache_dir)}). {source}"
        f"Then `from_pretrained({name!r})` works offline. Alternatively pass the Hub repo id of a converted copy "
        f"(e.g. 'USER/{name}', with trust_remote_code=True when this package is not installed) or a local folder."
    )


def check_named_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder `from_pretrained(name)` would load offline: `name` itself if it is a local folder, else its
    snapshot in the local Hugging Face cache. Raises MissingModelError (an OSError) saying how to get the model
    when it is missing."""
    if Path(name).is_dir():
        return Path(name)
    try:
        resolved = try_to_load_from_cache(name, "config.json", cache_dir=hub_cache_dir(cache_dir))
    except HFValidationError as error:
        raise ValueError(f"`name` {name!r} is neither a folder nor a valid Hugging Face repo id: {error}") from error
    if isinstance(resolved, str):
        return Path(resolved).parent
    raise MissingModelError(missing_model_message(name, cache_dir))


def explain_missing_models(*classes: type, any_name: bool = False) -> None:
    """
    Make `cls.from_pretrained(name)` load the released CAST models by name and say how to get a CAST model it cannot
    find, instead of transformers' generic "couldn't connect" / "can't load" error.

    A released name (`NAMED_MODELS`) that is not a local folder is always read from the local Hugging Face cache
    (the Hub has no repository of that name to ask); when it is not there and the machine is online
    (`HF_HUB_OFFLINE` unset, no `local_files_only=True`), the official checkpoint is downloaded, converted and
    installed first (`modeling_cast.hub.fetch.fetch_named_model`; `keep_original_checkpoint=False` removes the
    downloaded training pickle afterwards). A missing model raises `MissingModelError` with `missing_model_message`,
    and a corrupt or truncated safetensors file a ValueError naming the argument.

    The Auto classes load every model type, so for them (`any_name=False`) only the released names are handled;
    the CAST classes load CAST models only, so there (`any_name=True`) every missing name is explained. Every other
    error passes through unchanged, and an error an inner call already explained is not explained twice. `import
    modeling_cast` applies it to the Auto model classes, `AutoConfig` (which `pipeline()` calls first),
    `AutoImageProcessor` and the CAST classes. Each class is wrapped once. transformers' PEFT adapter lookup (with
    peft installed) reads released names from the cache only.
    """
    for cls in classes:
        original = cls.from_pretrained.__func__
        if not getattr(original, "_explains_missing_cast_models", False):
            cls.from_pretrained = classmethod(_explaining(original, any_name))
    _keep_adapter_lookups_local()


# With peft installed, `pipeline()` and the Auto model classes look for a PEFT adapter (`adapter_config.json`) before
# anything else, asking the Hub without `local_files_only`. The Hub has no repository named like a released model,
# so online that lookup fails with "not a valid model identifier" before the cache is read. A released name is a
# converted folder in the local cache, never an adapter: its lookup is answered from the cache.
_ADAPTER_LOOKUP_MODULES = ("transformers.pipelines", "transformers.models.auto.auto_factory")


def _keep_adapter_lookups_local() -> None:
    for module_name in _ADAPTER_LOOKUP_MODULES:
        module = importlib.import_module(module_name)
        original = module.find_adapter_config_file
        if not getattr(original, "_local_for_released_cast_models", False):
            module.find_adapter_config_file = _local_for_released_names(original)


def _local_for_released_names(original: Callable) -> Callable:
    @functools.wraps(original)
    def find_adapter_config_file(model_id, *args, **kwargs):
        if model_id is not None and str(model_id) in NAMED_MODELS and not Path(str(model_id)).is_dir():
            kwargs["local_files_only"] = True
        return original(model_id, *args, **kwargs)

    find_adapter_config_file._local_for_released_cast_models = True
    return find_adapter_config_file


def _load_released_from_cache(name: str, kwargs: dict) -> dict:
    """The keyword arguments that load the released model `name` from the local cache, after fetching it when it is
    missing there and the machine is online."""
    keep_original = kwargs.pop("keep_original_checkpoint", True)
    cache_dir = kwargs.get("cache_dir")
    cached = isinstance(try_to_load_from_cache(name, "config.json", cache_dir=hub_cache_dir(cache_dir)), str)
    if not cached and not kwargs.get("local_files_only") and not huggingface_hub.is_offline_mode():
        from .fetch import fetch_named_model  # conversion tooling, imported only when a model is fetched

        fetch_named_model(name, cache_dir, token=kwargs.get("token"), keep_original=keep_original)
    return {**kwargs, "local_files_only": True}


def _explaining(original: Callable, any_name: bool) -> Callable:
    @functools.wraps(original)
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        name = str(pretrained_model_name_or_path)
        try:
            if name in NAMED_MODELS and not Path(name).is_dir():
                kwargs = _load_released_from_cache(name, kwargs)
            return original(cls, pretrained_model_name_or_path, *args, **kwargs)
        except MissingModelError:
            raise
        except SafetensorError as error:
            raise ValueError(
                f"`pretrained_model_name_or_path` {name!r} holds a corrupt or truncated safetensors checkpoint: "
                f"{error}"
            ) from error
        except OSError as error:
            if Path(name).is_dir() or not (any_name or name in NAMED_MODELS):
                raise
            message = missing_model_message(name, kwargs.get("cache_dir"))
            raise MissingModelError(f"{message}\n(transformers said: {error})") from error

    from_pretrained._explains_missing_cast_models = True
    return from_pretrained
