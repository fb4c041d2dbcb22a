# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Model cards: the one writer of every `README.md` this project produces.

`model_card` assembles a card from its metadata (YAML front matter read by the Hub: library, pipeline tag, tags,
datasets, base model, a model index of results) and its text. Two kinds are built on it:

- `named_model_card`: the card of a released model, from the `NAMED_MODELS` table (`hub_configs/<name>/README.md`
  and the folders `cast-convert` writes);
- `training_model_card`: the card of a model trained with the `Trainer` (the example scripts' output folders), with
  its training settings and final metrics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .registry import (
    CHECKPOINT_LAYOUTS,
    CONVERTER_COMMAND,
    OFFICIAL_HUB_REPOSITORY,
    OFFICIAL_REPOSITORY,
    NamedModel,
    ReportedResult,
    get_named_model,
    official_file_url,
)

__all__ = [
    "CAST_DESCRIPTION",
    "CITATION",
    "model_card",
    "named_model_card",
    "save_model_card",
    "training_model_card",
]

CARD_FILENAME = "README.md"
RESULTS_SOURCE = "Official CAST repository README"
CITATION = """@inproceedings{ke2024cast,
  title     = {Learning Hierarchical Image Segmentation For Recognition and By Recognition},
  author    = {Ke, Tsung-Wei and Mo, Sangwoo and Yu, Stella X.},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2024}
}"""
CAST_DESCRIPTION = (
    "CAST (Ke, Mo, Yu, ICLR 2024, *Learning Hierarchical Image Segmentation For Recognition and By Recognition*) "
    "is a Vision Transformer whose tokens are superpixels. Between groups of transformer blocks, graph pooling "
    "merges the tokens into fewer segments; composed across stages, these merges are a hierarchical "
    "segmentation learned from an image-level objective only."
)
_CITATION_SECTION = "## Citation\n\n```bibtex\n" + CITATION + "\n```"
# the model-index fields a result shares with `huggingface_hub.EvalResult` under the same name
_INDEX_FIELDS = ("task_type", "task_name", "dataset_type", "dataset_name", "metric_type", "metric_name")
# throughput and bookkeeping entries of the Trainer's metrics, left out of a card's results table
_BOOKKEEPING_METRICS = ("runtime", "per_second", "flos")
# Bare dataset names that are Hub dataset ids (a card's `datasets` must name real Hub datasets; namespaced ids such
# as "user/data" are taken as given, other names, e.g. "synthetic shapes", only appear in the text)
_HUB_DATASET_IDS = ("imagenet-1k",)
# The image the Hub's inference widget shows (the sample images of the Hub's own vision model cards)
WIDGET_IMAGE = "https://huggingface.co/datasets/mishig/sample_images/resolve/main/tiger.jpg"
_APACHE = "apache-2.0"


def model_card(
    title: str,
    paragraphs: Sequence[str],
    *,
    pipeline_tag: str,
    tags: Sequence[str],
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    results: Sequence[ReportedResult] = (),
    results_source: tuple[str, str] | None = None,
    model_name: str | None = None,
    license: str = _APACHE,
    **metadata: str,
) -> ModelCard:
    """
    A model card: YAML metadata, then `# title` and the `paragraphs` (markdown blocks; a section starts with its
    `## heading`).

    Args:
        pipeline_tag (`str`): the Hub task widget, e.g. "image-segmentation".
        tags, datasets (`Sequence[str]`): Hub tags and dataset ids (names that are not Hub dataset ids are left out
            of the metadata).
        base_model (`str`, *optional*): Hub id of the model this one was trained from.
        results (`Sequence[ReportedResult]`): numbers the card reports; those with `in_model_index` form the
            model index (named `model_name`, default `title`), and every metric type is listed in `metrics`.
        results_source (`tuple[str, str]`, *optional*): (name, url) the results are cited from.
        license (`str`, *optional*, defaults to "apache-2.0"): the license id; "other" with `license_name` and
            `license_link` in `metadata`.
        metadata: further `ModelCardData` fields. Every card gets the Hub widget's example image.
    """
    source_name, source_url = results_source or (None, None)
    eval_results = [
        EvalResult(
            **{name: getattr(result, name) for name in _INDEX_FIELDS}, metric_value=result.value,
            source_name=source_name, source_url=source_url,
        )
        for result in results
        if result.in_model_index
    ]
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=list(tags),
        datasets=[name for name in datasets if _is_hub_dataset(name)] or None,
        base_model=base_model,
        metrics=sorted({result.metric_type for result in results}) or None,
        model_name=(model_name or title) if eval_results else None,
        eval_results=eval_results or None,
        license=license,
        widget=[{"src": WIDGET_IMAGE, "example_title": "Tiger"}],
        **metadata,
    )
    body = "\n\n".join([f"# {title}", *paragraphs]) + "\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _is_hub_dataset(name: str) -> bool:
    if name in _HUB_DATASET_IDS:
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return "/" in name


def save_model_card(card: ModelCard, folder: str | os.PathLike) -> Path:
    """Write `card` as the folder's `README.md` (where the Hub reads it). Returns the path."""
    path = Path(folder) / CARD_FILENAME
    card.save(path)
    return path


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


# ---------------------------------------------------------------------------------------------- released models
_LICENSE = (
    "This card and the conversion code are Apache-2.0 (cast-transformers). The weights come from the authors' "
    f"release; the [official repository]({OFFICIAL_REPOSITORY}) is MIT licensed, but check the terms under which "
    "the authors distribute the weights before you use or redistribute them."
)


def named_model_card(name_or_entry: str | NamedModel) -> ModelCard:
    """The model card of a named model: YAML metadata (library_name, pipeline_tag, tags, datasets, license and a
    model-index of the results cited from the official README) and the text sections."""
    entry = name_or_entry if isinstance(name_or_entry, NamedModel) else get_named_model(name_or_entry)
    return model_card(
        f"{entry.name}: {entry.title}",
        [
            entry.summary,
            CAST_DESCRIPTION,
            "## How to use\n\n" + _usage(entry),
            "## Getting the weights\n\n" + _conversion_section(entry),
            "## Training data\n\n" + entry.training_data,
            "## Training recipe\n\n" + entry.training_recipe,
            "## Results\n\n" + _results_section(entry),
            "## Limitations\n\n" + "\n".join(_limitations(entry)),
            "## License\n\n" + _LICENSE,
            _CITATION_SECTION,
        ],
        pipeline_tag=entry.pipeline_tag,
        tags=entry.tags,
        datasets=entry.datasets,
        results=entry.results,
        results_source=(RESULTS_SOURCE, OFFICIAL_REPOSITORY),
        model_name=entry.name,
        license="other",
        license_name="cast-original-weights",
        license_link=OFFICIAL_REPOSITORY,
    )


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
        f'name = "{entry.name}"  # fetched from the official checkpoint and converted on first use, then cached\n'
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
    rows = [(result.dataset_name, result.metric_name, result.value) for result in entry.results]
    return (
        f"Reported in the [official repository's README]({OFFICIAL_REPOSITORY}) (not re-measured with this "
        f"conversion):\n\n{_table(('dataset', 'metric', 'value'), rows)}\n\n{entry.results_note}".rstrip()
    )


def _conversion_section(entry: NamedModel) -> str:
    if not entry.released:
        return "Converted locally from an official-format checkpoint with `cast-convert`."
    arch = ", ".join(f"`{arch}`" for arch in entry.official_arch)
    if entry.official_file is None:
        return (
            f"The authors published no checkpoint for {entry.name} (nothing in `{OFFICIAL_HUB_REPOSITORY}`): this "
            "folder defines the architecture only. A checkpoint of it trained with the official code (`arch` "
            f"{arch}) converts with `{CONVERTER_COMMAND} --checkpoint <file> --model-name {entry.name} --output-dir "
            f"{entry.name} --install-to-cache`."
        )
    return (
        f"The authors publish the weights as a {CHECKPOINT_LAYOUTS[entry.checkpoint_layout]}, `arch` {arch}, "
        f"without a config or safetensors file: `{official_file_url(entry)}`. On a connected machine, "
        f'`from_pretrained("{entry.name}")` downloads it once with `huggingface_hub` (resumable, with a progress '
        "bar), reads it with `torch.load(weights_only=True)` (no code from the file runs), converts the base encoder, "
        "checks it and installs the converted folder in the Hugging Face cache; later loads are offline. The same "
        "from the command line, or from a file you downloaded yourself:\n\n"
        "```bash\n"
        f"{CONVERTER_COMMAND} --model-name {entry.name} --download [--remove-original]\n"
        f"{CONVERTER_COMMAND} --checkpoint <official file> --model-name {entry.name} --output-dir {entry.name} "
        "--install-to-cache\n"
        "```\n\n"
        f"`--push-to-hub USER/{entry.name}` uploads the folder."
    )



def _limitations(entry: NamedModel) -> list[str]:
    return [
        "- **Superpixels.** CAST's tokens are superpixels: its features and segments depend on them. The weights were "
        'trained with OpenCV-SEEDS superpixels (`superpixel_method="seeds"`, needs `opencv-contrib-python`); SLIC '
        "gives similar but not identical maps, and other counts or resolutions than 196 superpixels at 224x224 move "
        "the inputs away from training.",
        "- **Segments are unlabeled.** Each level's segments are cluster indices; they carry no class names.",
        "- **Batch independence.** Padding tokens are masked here, so an image's output never depends on its "
        "batch-mates; the official implementation's batched outputs do, so batched official numbers can differ "
        "slightly.",
        *(f"- {text}" for text in entry.limitations),
    ]


# ---------------------------------------------------------------------------------------------- trained models
def training_model_card(
    training_args,
    *,
    title: str,
    summary: str,
    pipeline_tag: str,
    tags: Sequence[str],
    dataset: str,
    base_model: str | None = None,
    results: Mapping[str, float] | None = None,
    task_type: str | None = None,
    task_name: str | None = None,
    metrics: Mapping[str, float] | None = None,
    details: Sequence[str] = (),
    sections: Sequence[str] = (),
    start: str | None = None,
) -> ModelCard:
    """
    The card of a model trained with the `Trainer` (the example scripts' output folders).

    Args:
        training_args (`transformers.TrainingArguments`): the run's settings, listed under "Training" with `details`
            (further lines, e.g. the image processor's).
        title, summary (`str`): the card's heading and first paragraph (what the model is); `sections` follow.
        pipeline_tag, tags: Hub metadata; the tag "generated_from_trainer" is added.
        dataset (`str`): the training data's name.
        base_model (`str`, *optional*): the starting checkpoint; recorded as `base_model` when it is a Hub id (a
            local folder can only be named in the text).
        results (`Mapping[str, float]`, *optional*): final metrics for the model index (metric type to value), under
            `task_type` (default `pipeline_tag`) named `task_name`.
        metrics (`Mapping[str, float]`, *optional*): every final metric, for the results table (default `results`).
        start (`str`, *optional*): where training started, a Hub id or a local folder (default `base_model`); the
            card says "from scratch" only without one. A model trained from other weights takes their terms
            (license "other"), one trained from scratch is Apache-2.0 like this code.
    """
    start = start or base_model
    reported = [
        ReportedResult(
            task_type=task_type or pipeline_tag, task_name=task_name or pipeline_tag,
            dataset_type=dataset.replace(" ", "-"), dataset_name=dataset,
            metric_type=name, metric_name=name, value=float(value),
        )
        for name, value in (results or {}).items()
    ]
    table = {name: value for name, value in (metrics or results or {}).items()
             if not any(skipped in name for skipped in _BOOKKEEPING_METRICS)}
    origin = (f"Trained from the weights of `{start}`." if start else
              "Trained from scratch (random initialization): no pretrained weights were used.")
    paragraphs = [summary, CAST_DESCRIPTION, *sections,
                  "## Training\n\n" + origin + "\n\n" + _training_settings(training_args, details)]
    if table:
        paragraphs.append("## Results\n\n" + _table(("metric", "value"), [(name, _number(value)) for name, value in
                                                                          sorted(table.items())]))
    return model_card(
        title,
        [*paragraphs, _CITATION_SECTION],
        pipeline_tag=pipeline_tag,
        tags=[*tags, "generated_from_trainer"],
        datasets=[dataset.replace(" ", "-")],
        base_model=_hub_id(base_model),
        results=reported,
        **({"license": "other", "license_name": "same-as-base-model"} if start else {"license": _APACHE}),
    )


def _training_settings(training_args, details: Sequence[str]) -> str:
    schedule = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    if training_args.max_steps > 0:
        duration = f"{training_args.max_steps} steps"
    else:
        duration = f"{training_args.num_train_epochs:g} epochs"
    lines = [
        f"learning rate {training_args.learning_rate} ({schedule} schedule), {duration}, seed {training_args.seed}",
        f"batch size {training_args.per_device_train_batch_size} per device, gradient accumulation "
        f"{training_args.gradient_accumulation_steps}",
        *details,
    ]
    return "\n".join(f"- {line}" for line in lines)


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _hub_id(name_or_path: str | None) -> str | None:
    """`name_or_path` if it is a Hub repo id, None for a local folder (a card's `base_model` must be an id)."""
    if name_or_path is None or os.path.exists(name_or_path):
        return None
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        return None
    return name_or_path
