# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The named CAST checkpoints: the models released with the paper, described by one table.

The table (`NAMED_MODELS`) holds, per name, the architecture (from `CAST_PRESETS`), the image-processor settings the
weights were trained with, the official `arch` strings that identify the original checkpoint, and the facts of its
model card (training data and recipe, results cited from the official README). Everything else is generated from it:

- `hub_configs/<name>/{config.json, preprocessor_config.json, README.md}`
  (`python -m modeling_cast.hub.named_models --output hub_configs`);
- the configuration, processor and card written by the converter (`cast-convert`);
- the local Hugging Face cache entry that makes `AutoModel.from_pretrained("cast-base")` work offline
  (`install_to_cache`), and the error that says how to get a missing one (`check_named_model`, `load_named`).

Weights never come from the network: the official files are PyTorch pickles without a config, so they are converted
locally and installed into the cache exactly as a Hub download would lay them out.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData, constants, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import validate_repo_id
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

from modeling_cast.configuration_cast import CAST_PRESETS, CastConfig

__all__ = [
    "CitedResult",
    "NAMED_MODELS",
    "NamedModel",
    "check_named_model",
    "custom_named_model",
    "explain_missing_named_models",
    "generate_hub_configs",
    "get_named_model",
    "hub_cache_dir",
    "install_to_cache",
    "load_named",
    "make_shareable",
    "model_class",
    "missing_model_message",
    "model_card",
    "named_config",
    "named_model_for_arch",
    "named_processor",
    "replace_entry",
    "write_named_model_files",
]

OFFICIAL_REPOSITORY = "https://github.com/twke18/CAST"
RESULTS_SOURCE = "Official CAST repository README"
CONVERTER_COMMAND = "cast-convert"
# How the authors' training scripts store a checkpoint (`cast-convert` detects it from the keys).
CHECKPOINT_LAYOUTS = {
    "moco": "MoCo-v3 training checkpoint (base and momentum encoders, predictor, optimizer and scaler state)",
    "deit": "DeiT training checkpoint (`model` state dict, optimizer and scheduler state, training arguments)",
    "moco-segmentation": "MoCo-v3 training checkpoint of the segmentation variant (with `block_fusion.*` weights)",
    "state-dict": "state dict (parameter names to tensors, bare or under a `state_dict` key)",
}

# Official input pipeline (MoCo-v3 recipe and linear probing): 224x224 views, 196 OpenCV-SEEDS superpixels computed on
# the un-normalised view, ImageNet mean/std.
TRAINING_RESOLUTION = 224
TRAINING_SUPERPIXELS = 196
# DeiT evaluation: resize the shorter side to 224 / 0.875 = 256 (bicubic), centre-crop 224.
DEIT_EVAL_RESIZE = 256

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_LFS_MIN_BYTES = 10 * 1024 * 1024  # the Hub stores files from 10 MiB on through LFS (blob name = sha256)
_HASH_CHUNK = 16 * 1024 * 1024
_GENERATED_FILES = ("config.json", "preprocessor_config.json", "README.md")
# `transformers_version` changes with every release; the generated hub_configs leave it out so they stay stable.
_UNSTABLE_CONFIG_KEYS = ("transformers_version",)

CITATION = """@inproceedings{ke2024cast,
  title     = {Learning Hierarchical Image Segmentation For Recognition and By Recognition},
  author    = {Ke, Tsung-Wei and Mo, Sangwoo and Yu, Stella X.},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2024}
}"""


@dataclass(frozen=True)
class CitedResult:
    """One number from the official README. `in_model_index=False` for numbers that describe another model (a
    baseline, or a fine-tuned descendant of the checkpoint): they appear in the card's text only."""

    task_type: str
    dataset_type: str
    dataset_name: str
    metric_type: str
    metric_name: str
    value: float
    in_model_index: bool = True


@dataclass(frozen=True)
class NamedModel:
    """A released CAST checkpoint: how to build it, how its inputs were prepared, and what its card says."""

    name: str
    title: str
    summary: str
    config_kwargs: dict
    architecture: str
    checkpoint_layout: str
    official_arch: tuple[str, ...]
    processor_kwargs: dict
    pipeline_tag: str
    tags: tuple[str, ...]
    datasets: tuple[str, ...]
    training_data: str
    training_recipe: str
    results: tuple[CitedResult, ...] = ()
    results_note: str = ""
    limitations: tuple[str, ...] = ()
    released: bool = True


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
    "contrastive loss with temperature 0.2. Each view is a 224x224 RandomResizedCrop (scale 0.08-1) with colour "
    "jitter, grayscale, blur, solarisation and flips; its 196 OpenCV-SEEDS superpixels are computed on the "
    "augmented, un-normalised view (1 level, prior 2, 15 histogram bins, 20 iterations), then ImageNet mean/std "
    "normalisation is applied. The released file is the MoCo-v3 training checkpoint; this model is its base encoder "
    "without the projector (the official linear-probing load). The momentum encoder, projector, predictor and "
    "optimizer state are training state and are not part of it."
)
_LINEAR_PROBE_NOTE = (
    "Linear probing (official protocol): a linear classifier on the frozen class-token feature, evaluated with "
    "Resize(256) + CenterCrop(224) and SEEDS superpixels. The ViT baseline is the official MoCo-v3 ViT trained with "
    "the same recipe."
)


def _moco_imagenet(name: str, preset: str, arch: str, title: str, results=(), results_note="") -> NamedModel:
    config = CAST_PRESETS[preset]
    depths = "/".join(str(depth) for depth in config["depths"])
    return NamedModel(
        name=name,
        title=title,
        summary=(
            f"CAST backbone ({config['hidden_size']} wide, {config['num_attention_heads']} heads, {depths} transformer "
            "blocks per stage, 64/32/16/8 segments) pretrained with MoCo-v3 on ImageNet-1k without labels. It returns "
            "an image feature (the class token) and a four-level hierarchical segmentation of the image."
        ),
        config_kwargs=dict(config),
        architecture="CastModel",
        checkpoint_layout="moco",
        official_arch=(arch,),
        processor_kwargs=_BACKBONE_PROCESSOR,
        pipeline_tag="image-segmentation",
        tags=_MOCO_TAGS,
        datasets=("imagenet-1k",),
        training_data=_MOCO_IMAGENET_DATA,
        training_recipe=_MOCO_RECIPE,
        results=tuple(results),
        results_note=results_note,
    )


def _linear_probe(model: str, value: float, in_model_index: bool = True) -> CitedResult:
    return CitedResult(
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
            results=(_linear_probe("CAST-S", 68.1), _linear_probe("ViT-S (baseline)", 67.9, in_model_index=False)),
            results_note=_LINEAR_PROBE_NOTE,
        ),
        _moco_imagenet(
            "cast-small-deep",
            "cast-small-deep",
            "cast_small_deep",
            "CAST-S-deep, MoCo-v3 on ImageNet-1k",
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
            results=(
                _linear_probe("CAST-B", 72.4),
                _linear_probe("ViT-B (baseline)", 72.5, in_model_index=False),
                CitedResult("image-segmentation", "partimagenet", "PartImageNet", "mean_iou",
                            "object region mIoU (open-vocabulary labelling of CAST-B segments)", 29.67),
                CitedResult("image-segmentation", "partimagenet", "PartImageNet", "mean_iou",
                            "part region mIoU (open-vocabulary labelling of CAST-B segments)", 13.21),
            ),
            results_note=(
                f"{_LINEAR_PROBE_NOTE} PartImageNet: the official notebook labels this model's segments with an "
                "open-vocabulary classifier and measures region mIoU for objects and parts."
            ),
        ),
        _moco_imagenet("cast-base-deep", "cast-base-deep", "cast_base_deep", "CAST-B-deep, MoCo-v3 on ImageNet-1k"),
        NamedModel(
            name="cast-small-deit",
            title="CAST-S, supervised (DeiT recipe) on ImageNet-1k",
            summary=(
                "CAST-S (384 wide, 12 heads, 3/3/3/2 blocks, 64/32/16/8 segments) trained as a 1000-class ImageNet-1k "
                "classifier with the DeiT recipe (the official DeiT variant of CAST, with a learned position "
                "embedding that has a class-token slot). It returns class logits and a four-level hierarchical "
                "segmentation of the image."
            ),
            config_kwargs={**CAST_PRESETS["cast-small"], "position_embedding_type": "learned", "num_labels": 1000},
            architecture="CastForImageClassification",
            checkpoint_layout="deit",
            # the DeiT script names the model with `--model cast_small`; the layout tells it from the MoCo backbone
            official_arch=("cast_small",),
            processor_kwargs=_CLASSIFIER_PROCESSOR,
            pipeline_tag="image-classification",
            tags=(*_COMMON_TAGS, "image-classification", "deit", "supervised"),
            datasets=("imagenet-1k",),
            training_data="ImageNet-1k training images with their 1000 class labels.",
            training_recipe=(
                "Supervised training with the official DeiT-based CAST scripts (`deit/main_suppix.py --model "
                "cast_small`, 196 SEEDS superpixels per image, ImageNet mean/std); see the official repository for "
                "the exact hyper-parameters. Evaluation: resize the shorter side to 256 (bicubic), centre-crop 224."
            ),
            results=(
                CitedResult("image-classification", "imagenet-1k", "ImageNet-1k", "accuracy",
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
            summary=(
                "The backbone of CAST's segmentation variant (CAST-S: 384 wide, 12 heads, 3/3/3/2 blocks, 64/32/16/8 "
                "segments, plus the level-fusion module that brings every stage back onto the superpixel tokens), "
                "pretrained with MoCo-v3 on COCO images without labels. It initialises semantic-segmentation "
                "fine-tuning; its classifier is not trained."
            ),
            config_kwargs=dict(CAST_PRESETS["cast-small"]),
            architecture="CastForSemanticSegmentation",
            checkpoint_layout="moco-segmentation",
            official_arch=("cast_seg_small_pretrain",),
            processor_kwargs=_BACKBONE_PROCESSOR,
            pipeline_tag="image-segmentation",
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
                CitedResult("image-segmentation", "pascal-voc", "PASCAL VOC", "mean_iou",
                            "semantic segmentation mIoU before fine-tuning", 38.4),
                CitedResult("image-segmentation", "pascal-voc", "PASCAL VOC", "mean_iou",
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
    if architecture == "CastForImageClassification":
        kwargs["num_labels"] = config.num_labels
    return NamedModel(
        name=name,
        title=f"{name}: CAST converted from an official-format checkpoint",
        summary=(
            f"A CAST model ({config.hidden_size} wide, {config.num_attention_heads} heads, depths {config.depths}, "
            f"segments {config.num_segments}) converted from a {CHECKPOINT_LAYOUTS[checkpoint_layout]}. "
            "It is not one of the models released with the paper."
        ),
        config_kwargs=kwargs,
        architecture=architecture,
        checkpoint_layout=checkpoint_layout,
        official_arch=(),
        processor_kwargs=_CLASSIFIER_PROCESSOR if architecture == "CastForImageClassification" else _BACKBONE_PROCESSOR,
        pipeline_tag="image-classification" if architecture == "CastForImageClassification" else "image-segmentation",
        tags=_COMMON_TAGS,
        datasets=(),
        training_data="Unknown: see the provenance of the original checkpoint.",
        training_recipe="Unknown: see the provenance of the original checkpoint.",
        released=False,
    )


def replace_entry(entry: NamedModel, **changes) -> NamedModel:
    """A copy of `entry` with some fields changed (e.g. the architecture written with the weights)."""
    return dataclasses.replace(entry, **changes)


def _entry(name_or_entry: str | NamedModel) -> NamedModel:
    return name_or_entry if isinstance(name_or_entry, NamedModel) else get_named_model(name_or_entry)


def named_config(name_or_entry: str | NamedModel) -> CastConfig:
    """The `CastConfig` of a named model, as saved with its weights (architectures and the full `auto_map`)."""
    from modeling_cast.modeling_cast import CAST_AUTO_MAP  # late: the modeling module is heavy and imports this package's config

    entry = _entry(name_or_entry)
    config = CastConfig(**entry.config_kwargs)
    config.architectures = [entry.architecture]
    config.auto_map = dict(CAST_AUTO_MAP)
    config.dtype = torch.float32  # converted weights are written in float32, like the official ones
    return config


def model_class(architecture: str) -> type:
    """The model class named `architecture` (e.g. "CastModel", "CastForPreTraining"), from the package's exports."""
    import modeling_cast

    if architecture not in modeling_cast.__all__:
        raise ValueError(f"`architecture` must be a CAST model class exported by modeling_cast, got {architecture!r}")
    return getattr(modeling_cast, architecture)


def named_processor(name_or_entry: str | NamedModel):
    """The `CastImageProcessor` with the settings the named model's weights were trained with."""
    import modeling_cast  # the package re-exports the processor (modeling_cast/* never imports processing/*)

    return modeling_cast.CastImageProcessor(**_entry(name_or_entry).processor_kwargs)


# ----------------------------------------------------------------------------------------------------- model cards
def _eval_results(entry: NamedModel) -> list[EvalResult]:
    return [
        EvalResult(
            task_type=result.task_type,
            dataset_type=result.dataset_type,
            dataset_name=result.dataset_name,
            metric_type=result.metric_type,
            metric_name=result.metric_name,
            metric_value=result.value,
            source_name=RESULTS_SOURCE,
            source_url=OFFICIAL_REPOSITORY,
        )
        for result in entry.results
        if result.in_model_index
    ]


def _usage(entry: NamedModel) -> str:
    if entry.architecture == "CastForImageClassification":
        auto_class = "AutoModelForImageClassification"
        model_lines = (
            "model = AutoModelForImageClassification.from_pretrained(name)\n"
            'outputs = model(**processor(images=image, return_tensors="pt"))\n'
            "outputs.logits.argmax(-1)  # ImageNet-1k class index\n"
            "outputs.hierarchy          # (1, 4, 224, 224) segment id of every pixel, finest level first\n\n"
            'predictions = pipeline("image-classification", model=name)(image)'
        )
    elif entry.architecture == "CastForSemanticSegmentation":
        auto_class = "AutoModelForSemanticSegmentation"
        model_lines = (
            "# fine-tune on your classes: the backbone and level fusion load, the classifier starts fresh\n"
            "model = AutoModelForSemanticSegmentation.from_pretrained(name, num_labels=21)\n"
            'outputs = model(**processor(images=image, return_tensors="pt"))\n'
            "outputs.hierarchy          # (1, 4, 224, 224) segment id of every pixel, finest level first\n\n"
            "# every level of the unsupervised hierarchy, with segment scores\n"
            'segments = pipeline("hierarchical-segmentation", model=name)(image)'
        )
    else:
        auto_class = "AutoModel"
        model_lines = (
            "model = AutoModel.from_pretrained(name)\n"
            'outputs = model(**processor(images=image, return_tensors="pt"))\n'
            "outputs.pooler_output      # (1, hidden_size) image feature\n"
            "outputs.hierarchy          # (1, 4, 224, 224) segment id of every pixel, finest level first\n\n"
            'segments = pipeline("image-segmentation", model=name)(image)  # the coarsest level\'s segments'
        )
    return (
        "Three entry points: the model class, the image processor (it computes the superpixels) and the pipeline.\n\n"
        "```python\n"
        'import modeling_cast  # pip install "cast-transformers[seeds]"; registers the "cast" model type\n'
        f"from transformers import AutoImageProcessor, {auto_class}, pipeline\n"
        "from PIL import Image\n\n"
        f'name = "{entry.name}"  # the local cache entry made by cast-convert --install-to-cache, or a Hub repo id\n'
        'image = Image.open("photo.jpg")\n'
        "processor = AutoImageProcessor.from_pretrained(name)\n"
        f"{model_lines}\n"
        "```\n\n"
        "Without the package, load a Hub copy of this folder with `trust_remote_code=True`: the code files and the "
        "full `auto_map` travel with it. `post_process_hierarchical_segmentation` on the processor gives every level "
        "at the original image size; `cast-segment IMAGE --model NAME --output-dir DIR` draws the levels."
    )


def _results_section(entry: NamedModel) -> str:
    if not entry.results:
        return "The official README reports no result for this model."
    rows = "\n".join(
        f"| {result.dataset_name} | {result.metric_name} | {result.value} |" for result in entry.results
    )
    return (
        f"Reported in the [official repository's README]({OFFICIAL_REPOSITORY}) (not re-measured with this "
        "conversion):\n\n| dataset | metric | value |\n| --- | --- | --- |\n"
        f"{rows}\n\n{entry.results_note}".rstrip()
    )


def _conversion_section(entry: NamedModel) -> str:
    if not entry.released:
        return "Converted locally from an official-format checkpoint with `cast-convert`."
    arch = ", ".join(f"`{arch}`" for arch in entry.official_arch)
    return (
        f"The authors publish the weights as a {CHECKPOINT_LAYOUTS[entry.checkpoint_layout]}, `arch` {arch}, "
        "without a config or safetensors file. Convert it locally (it is read with "
        "`torch.load(weights_only=True)`, so no code from the file runs):\n\n"
        "```bash\n"
        f"{CONVERTER_COMMAND} --checkpoint <official file> --model-name {entry.name} --output-dir {entry.name} "
        "--install-to-cache\n"
        "```\n\n"
        f'`--install-to-cache` makes `from_pretrained("{entry.name}")` work offline; `--push-to-hub USER/{entry.name}` '
        "uploads the folder."
    )


def _card_body(entry: NamedModel) -> str:
    limitations = (
        "- **Superpixels.** CAST's tokens are superpixels: its features and segments depend on them. The weights were "
        'trained with OpenCV-SEEDS superpixels (`superpixel_method="seeds"`, needs `opencv-contrib-python`); SLIC '
        "gives similar but not identical maps, and other counts or resolutions than 196 superpixels at 224x224 move "
        "the inputs away from training.",
        "- **Segments are unlabelled.** Each level's segments are cluster indices; they carry no class names.",
        "- **Batch independence.** Padding tokens are masked here, so an image's output never depends on its "
        "batch-mates; the official implementation's batched outputs do, so batched official numbers can differ "
        "slightly.",
        *(f"- {text}" for text in entry.limitations),
    )
    licence = (
        "This card and the conversion code are Apache-2.0 (cast-transformers). The weights come from the authors' "
        f"release; the [official repository]({OFFICIAL_REPOSITORY}) is MIT licensed, but check the terms under which "
        "the authors distribute the weights before you use or redistribute them."
    )
    sections = [
        f"# {entry.name}: {entry.title}",
        entry.summary,
        "CAST (Ke, Mo, Yu, ICLR 2024, *Learning Hierarchical Image Segmentation For Recognition and By Recognition*) "
        "is a Vision Transformer whose tokens are superpixels. Between groups of transformer blocks, graph pooling "
        "merges the tokens into fewer segments; composed across stages, these merges are a hierarchical "
        "segmentation learned from an image-level objective only.",
        "## How to use\n\n" + _usage(entry),
        "## Getting the weights\n\n" + _conversion_section(entry),
        "## Training data\n\n" + entry.training_data,
        "## Training recipe\n\n" + entry.training_recipe,
        "## Results\n\n" + _results_section(entry),
        "## Limitations\n\n" + "\n".join(limitations),
        "## Licence\n\n" + licence,
        "## Citation\n\n```bibtex\n" + CITATION + "\n```",
    ]
    return "\n\n".join(sections) + "\n"


def model_card(name_or_entry: str | NamedModel) -> ModelCard:
    """The model card of a named model: YAML metadata (library_name, pipeline_tag, tags, datasets, licence and a
    model-index of the results cited from the official README) and the text sections."""
    entry = _entry(name_or_entry)
    eval_results = _eval_results(entry)
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=entry.pipeline_tag,
        license="other",
        license_name="cast-original-weights",
        license_link=OFFICIAL_REPOSITORY,
        tags=list(entry.tags),
        datasets=list(entry.datasets) or None,
        metrics=sorted({result.metric_type for result in entry.results}) or None,
        model_name=entry.name if eval_results else None,
        eval_results=eval_results or None,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_card_body(entry)}")


# -------------------------------------------------------------------------------------------------- folder writing
def write_named_model_files(name_or_entry: str | NamedModel, folder: str | os.PathLike) -> list[Path]:
    """Write everything of a named model but its weights into `folder`: `config.json` (with `architectures` and the
    full `auto_map`), `preprocessor_config.json`, `README.md` and the flat code files that `trust_remote_code=True`
    loads. Returns the written paths."""
    from transformers.dynamic_module_utils import custom_object_save

    from modeling_cast.modeling_cast import CAST_AUTO_MAP

    entry = _entry(name_or_entry)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = named_config(entry)
    with torch.device("meta"):  # only the class matters: which code files travel with the weights
        model = model_class(entry.architecture)(config)
    custom_object_save(model, folder, config=config)
    # the full map, plus the saved class's own entry when it is not in it (e.g. AutoModelForPreTraining)
    config.auto_map = {**config.auto_map, **CAST_AUTO_MAP}
    config.save_pretrained(folder)
    named_processor(entry).save_pretrained(folder)
    model_card(entry).save(folder / "README.md")
    return sorted(folder.iterdir())


def _generated_files(entry: NamedModel) -> dict[str, str]:
    """The three files of `hub_configs/<name>/`, as text."""
    with tempfile.TemporaryDirectory() as tmp:
        write_named_model_files(entry, tmp)
        config = json.loads(Path(tmp, "config.json").read_text())
        for key in _UNSTABLE_CONFIG_KEYS:
            config.pop(key, None)
        return {
            "config.json": json.dumps(config, indent=2, sort_keys=True) + "\n",
            "preprocessor_config.json": Path(tmp, "preprocessor_config.json").read_text(),
            "README.md": Path(tmp, "README.md").read_text(),
        }


def generate_hub_configs(output_dir: str | os.PathLike, names: Sequence[str] | None = None) -> list[Path]:
    """Write `<output_dir>/<name>/{config.json, preprocessor_config.json, README.md}` for every named model (or
    `names`). Returns the written paths."""
    written = []
    for name in names or sorted(NAMED_MODELS):
        folder = Path(output_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, text in _generated_files(get_named_model(name)).items():
            (folder / filename).write_text(text)
            written.append(folder / filename)
    return written


# ---------------------------------------------------------------------------------------------- local Hub cache
def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache: `cache_dir`, else `HF_HUB_CACHE` (which honours `HF_HOME`)."""
    return Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)


def _file_digests(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, read in chunks."""
    sha256, git_sha1 = hashlib.sha256(), hashlib.sha1()
    git_sha1.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            sha256.update(chunk)
            git_sha1.update(chunk)
    return sha256.hexdigest(), git_sha1.hexdigest()


def _blob_name(path: Path, digests: tuple[str, str]) -> str:
    # Hub downloads name a blob by its etag: the sha256 for LFS files (weights, large files), the git sha1 otherwise
    is_lfs = path.suffix in _WEIGHT_SUFFIXES or path.stat().st_size >= _LFS_MIN_BYTES
    return digests[0] if is_lfs else digests[1]


def make_shareable(folder: Path) -> None:
    """Give a folder made by `tempfile.mkdtemp` (mode 0700) the permissions of an ordinary new folder."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def _link_or_copy(blob: Path, target: Path) -> None:
    try:
        os.symlink(os.path.relpath(blob, target.parent), target)
    except OSError:  # file systems without symlinks: huggingface_hub then stores copies in the snapshot too
        shutil.copyfile(blob, target)


def install_to_cache(
    folder: str | os.PathLike, name: str, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Place the files of a model folder in the local Hugging Face cache under the repo id `name`, laid out as a Hub
    download would (`models--<name>/{blobs, snapshots/<commit>, refs/main}`), so that `from_pretrained(name)` works
    with `HF_HUB_OFFLINE=1`. The commit hash is the sha1 of the files' names and contents (deterministic). Every
    step writes to a temporary name first, so an interrupted install never leaves a snapshot that resolves.
    Returns the snapshot folder."""
    try:
        validate_repo_id(name)
    except HFValidationError as error:
        raise ValueError(f"`name` {name!r} is not a valid Hugging Face repo id: {error}") from error
    files = sorted(path for path in Path(folder).iterdir() if path.is_file())
    if not any(path.name == "config.json" for path in files):
        raise ValueError(f"`folder` {str(folder)!r} holds no config.json: not a model folder")
    repo_dir = hub_cache_dir(cache_dir) / repo_folder_name(repo_id=name, repo_type="model")
    blobs_dir = repo_dir / "blobs"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    commit_hash = hashlib.sha1()
    blob_names = {}
    for path in files:
        blob_names[path.name] = _blob_name(path, _file_digests(path))
        commit_hash.update(f"{path.name}\0{blob_names[path.name]}\n".encode())
        blob = blobs_dir / blob_names[path.name]
        if not blob.exists():
            partial = blobs_dir / f"{blob.name}.incomplete"
            shutil.copyfile(path, partial)
            os.replace(partial, blob)
    commit = commit_hash.hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    if not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{commit}.incomplete-", dir=snapshot.parent))
        make_shareable(staging)
        for filename, blob_name in blob_names.items():
            _link_or_copy(blobs_dir / blob_name, staging / filename)
        os.replace(staging, snapshot)
    refs = repo_dir / "refs"
    refs.mkdir(exist_ok=True)
    partial_ref = refs / "main.incomplete"
    partial_ref.write_text(commit)
    os.replace(partial_ref, refs / "main")
    return snapshot


def missing_model_message(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """How to get a named model that is not in the local cache."""
    cache = hub_cache_dir(cache_dir)
    if name in NAMED_MODELS:
        entry = NAMED_MODELS[name]
        source = (
            f"The authors publish {name} as a PyTorch training checkpoint (`arch` {', '.join(entry.official_arch)}) "
            f"under their Hugging Face account (see {OFFICIAL_REPOSITORY}): download that file"
        )
    else:
        source = f"Named CAST models: {', '.join(sorted(NAMED_MODELS))}. Get the official checkpoint"
    return (
        f"CAST model {name!r} is not in the local Hugging Face cache ({cache}). {source} and convert it once:\n"
        f"    {CONVERTER_COMMAND} --checkpoint <official file> --model-name {name} --output-dir <DIR> "
        "--install-to-cache\n"
        f"Then `from_pretrained({name!r})` works offline. Alternatively pass the Hub repo id of a converted copy "
        f"(e.g. 'USER/{name}', with trust_remote_code=True when this package is not installed) or a local folder."
    )


def check_named_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder `from_pretrained(name)` would load offline: `name` itself if it is a local folder, else its
    snapshot in the local Hugging Face cache. Raises OSError saying how to get the model when it is missing."""
    if Path(name).is_dir():
        return Path(name)
    try:
        resolved = try_to_load_from_cache(name, "config.json", cache_dir=hub_cache_dir(cache_dir))
    except HFValidationError as error:
        raise ValueError(f"`name` {name!r} is neither a folder nor a valid Hugging Face repo id: {error}") from error
    if isinstance(resolved, str):
        return Path(resolved).parent
    raise OSError(missing_model_message(name, cache_dir))


def _is_released_name(name: str) -> bool:
    """`name` means a released model from the cache (or the Hub), not a local folder that happens to share it."""
    return name in NAMED_MODELS and not Path(name).is_dir()


def explain_missing_named_models(*auto_classes) -> None:
    """
    Make `auto_class.from_pretrained(name)` say how to get a released CAST model (`NAMED_MODELS`) that is neither a
    local folder nor in the cache, instead of transformers' generic "couldn't connect" / "can't load" error.

    `from_pretrained` of the Auto classes is wrapped once per class; every other name, and every other error, passes
    through unchanged. `import modeling_cast` applies it to `AutoConfig` (which `AutoModel*.from_pretrained` and
    `pipeline()` call first) and `AutoImageProcessor`.
    """
    for auto_class in auto_classes:
        original = auto_class.from_pretrained.__func__
        if getattr(original, "_explains_missing_cast_models", False):
            continue

        def from_pretrained(cls, pretrained_model_name_or_path, *args, _original=original, **kwargs):
            try:
                return _original(cls, pretrained_model_name_or_path, *args, **kwargs)
            except OSError as error:
                name = str(pretrained_model_name_or_path)
                if not _is_released_name(name):
                    raise
                raise OSError(f"{missing_model_message(name, kwargs.get('cache_dir'))}\n(transformers said: {error})") from error

        from_pretrained.__doc__, from_pretrained.__name__ = original.__doc__, original.__name__
        from_pretrained._explains_missing_cast_models = True
        auto_class.from_pretrained = classmethod(from_pretrained)


def load_named(name: str, auto_class=None, **kwargs):
    """`auto_class.from_pretrained(name, **kwargs)` (default `AutoModel`), with an error that says how to convert
    and install the model when `name` is neither a folder nor in the cache (nor reachable on the Hub)."""
    from transformers import AutoModel

    import modeling_cast  # noqa: F401  (registers the "cast" model type with the Auto classes)

    auto_class = auto_class or AutoModel
    try:
        return auto_class.from_pretrained(name, **kwargs)
    except OSError as error:
        if _is_released_name(name):
            raise  # the Auto classes already say how to get it (explain_missing_named_models)
        message = missing_model_message(name, kwargs.get("cache_dir"))
        raise OSError(f"{message}\n(transformers said: {error})") from error


# ---------------------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """`python -m modeling_cast.hub.named_models --output hub_configs`: regenerate the hub_configs folders."""
    parser = argparse.ArgumentParser(
        prog="python -m modeling_cast.hub.named_models",
        description="Write hub_configs/<name>/{config.json, preprocessor_config.json, README.md} for the named CAST "
        "models, from the table in modeling_cast/hub/named_models.py.",
    )
    parser.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="folder receiving one folder per name"
    )
    parser.add_argument("--name", action="append", choices=sorted(NAMED_MODELS), help="only this model (repeatable)")
    args = parser.parse_args(argv)
    written = generate_hub_configs(args.output, args.name)
    print(f"wrote {len(written)} files under {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
