# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The "hierarchical-segmentation" pipeline: every level of a CAST model's segmentation hierarchy for each image; and
[`CastImageSegmentationPipeline`], transformers' "image-segmentation" pipeline with the masks of CAST segments drawn
in one pass each.

`import modeling_cast` registers it, after which (with a saved CAST checkpoint folder and an image file)

```python
import modeling_cast  # registers the task
from transformers import pipeline

segmenter = pipeline("hierarchical-segmentation", model="path/to/cast-checkpoint")
result = segmenter("photo.jpg", render=True)  # result["levels"], result["segments_info"], result["picture"]
```

It also holds the CAST versions of transformers' "image-segmentation" and "image-classification" pipelines, which
differ in how they open image files (and in a faster drawing of the segmentation masks): transformers' `load_image` converts every file to 8-bit RGB, which
saturates 16-bit files (every pixel of a 16-bit PNG becomes 255), while CAST's image processor scales them.
`import modeling_cast` makes `pipeline(task, model=...)` build them for CAST models only
([`model_dispatching_pipeline`]); saved folders name them in `custom_pipelines` for remote code.

This module uses only `transformers`' public pipeline API and the image processor's post-processing; it never imports
the model package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.pipelines import ImageClassificationPipeline, ImageSegmentationPipeline, Pipeline

from .image_inputs_cast import MAX_UINT8, load_image


__all__ = [
    "CastImageClassificationPipeline",
    "CastImageSegmentationPipeline",
    "HierarchicalSegmentationPipeline",
    "is_cast_model",
    "model_dispatching_pipeline",
    "segment_masks",
]

_CAST_MODEL_TYPE = "cast"
# the subtasks whose segments come from `post_process_panoptic_segmentation` / `..._instance_segmentation`
_SEGMENT_SUBTASKS = {None: "panoptic", "panoptic": "panoptic", "instance": "instance"}


class HierarchicalSegmentationPipeline(Pipeline):
    """
    Hierarchical image segmentation with any CAST checkpoint (backbone, classifier or segmentation model).

    For every image it returns a dict with
    - `"levels"`: one `torch.LongTensor` of shape `(height, width)` per requested level, finest first by default, at
      the original image size: the segment id of every pixel. Every segment of a finer level lies inside exactly one
      segment of each coarser level.
    - `"segments_info"`: one list per level of `{"id": int, "level": int, "score": float, "area": int}`: the segment
      id, its (non-negative) level, its mean assignment probability and its pixel count.
    - `"picture"` (only with `render=True`): a `PIL.Image.Image` showing the levels side by side, drawn by
      `processing.visualization_cast.draw_hierarchy`.

    Call arguments (besides the images, given as PIL images, paths or URLs, one or a list):
        levels (`int` or `list[int]`, *optional*): levels to return (0 = finest, -1 = coarsest); all by default.
        render (`bool`, *optional*, defaults to `False`): also draw the levels.
        render_options (`dict`, *optional*): drawing options of `draw_hierarchy` for the picture, e.g.
            `{"mode": "overlay", "captions": True}` (segments over the photo, each panel captioned with its level
            and segment count); with `captions=True` the captions name the model's level numbers, also for a subset
            of `levels`. Implies `render=True`.
        timeout (`float`, *optional*): seconds to wait for images fetched from the web.
        adaptation_steps (`int`, *optional*, defaults to 0): test-time adaptation steps per image (0 = off): the
            model adapts to each image with its recognition objective before segmenting it, and is restored after
            (see `modeling_cast.adaptation_cast.adapt_to_images`). The result then has `"adaptation"`:
            `{"steps", "changed_levels", "losses"}` (the levels where some pixel changed segment). Needs a model
            with a recognition head (a classifier or pretraining model, e.g. passed as `model=` object).
        adaptation_options (`dict`, *optional*): the other adaptation arguments (`objective`, `learning_rate`,
            `num_views`, `parameters`, `crop_scale`, `pseudo_label_threshold`, `seed`).
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False
    # a registered task served by this class needs no `custom_pipelines` entry in a loaded config
    serves_cast_models = True

    def _sanitize_parameters(
        self, levels=None, render=None, render_options=None, timeout=None, adaptation_steps=None,
        adaptation_options=None, **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}; it accepts `levels`, `render`, "
                "`render_options`, `timeout`, `adaptation_steps` and `adaptation_options`"
            )
        forward_kwargs = _adaptation_parameters(adaptation_steps, adaptation_options)
        preprocess_kwargs, postprocess_kwargs = {}, {}
        if timeout is not None:
            preprocess_kwargs["timeout"] = timeout
        if render is not None:
            if not isinstance(render, bool):
                raise TypeError(f"`render` must be a bool, got {type(render).__name__} {render!r}")
        if render_options is not None:
            _check_render_options(render_options)
            if render is False:
                raise ValueError("`render_options` draw a picture, so they need `render=True` (or no `render`), got "
                                 "`render=False`")
            render = True
            postprocess_kwargs["render_options"] = dict(render_options)
        if render is not None:
            preprocess_kwargs["render"] = render
            postprocess_kwargs["render"] = render
        if levels is not None:
            postprocess_kwargs["levels"] = levels
        return preprocess_kwargs, forward_kwargs, postprocess_kwargs

    def __call__(self, inputs, **kwargs: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """Segment one image (a PIL image, path or URL), or a list of them; see the class docstring for the
        arguments and outputs."""
        return super().__call__(inputs, **kwargs)

    def preprocess(self, image, render: bool = False, timeout: float | None = None) -> dict[str, Any]:
        # 16-bit files keep their depth: the image processor scales them (transformers' loader would saturate them)
        image = load_image(image, timeout=timeout)
        inputs = self.image_processor(images=[image], return_tensors="pt").to(self.dtype)
        inputs["target_size"] = [(image.height, image.width)]
        if render:
            # carried through the forward pass so that the picture can show the original image
            inputs["image"] = image
        return inputs

    def _forward(
        self, model_inputs: dict[str, Any], adaptation_steps: int = 0, adaptation_options: dict | None = None
    ) -> dict[str, Any]:
        target_size = model_inputs.pop("target_size")
        image = model_inputs.pop("image", None)
        outputs, adaptation = _run_model(self.model, model_inputs, adaptation_steps, adaptation_options)
        # only what post-processing reads: tensors that the pipeline can un-batch, plus the carried values
        return {
            "hierarchy": outputs.get("hierarchy"),
            "hierarchy_scores": outputs.get("hierarchy_scores"),
            "target_size": target_size,
            "image": image,
            "adaptation": adaptation,
        }

    def postprocess(
        self, model_outputs: dict[str, Any], levels=None, render: bool = False, render_options: dict | None = None
    ) -> dict[str, Any]:
        result = self.image_processor.post_process_hierarchical_segmentation(
            model_outputs, target_sizes=model_outputs["target_size"], levels=levels, return_scores=True
        )[0]
        output = {"levels": list(result["segmentation"]), "segments_info": result["segments_info"]}
        if model_outputs.get("adaptation") is not None:
            output["adaptation"] = model_outputs["adaptation"]
        if render:
            level_indices = [level_info[0]["level"] for level_info in result["segments_info"]]
            output["picture"] = _render(
                model_outputs["image"], result["segmentation"], level_indices, render_options or {}
            )
        return output


class CastImageSegmentationPipeline(ImageSegmentationPipeline):
    """
    transformers' "image-segmentation" pipeline for CAST models, keeping the bit depth of image files: a 16-bit file
    gives the segments of its 8-bit scaled version (transformers' loader saturates it to white). Everything else,
    arguments and outputs included, is transformers' [`ImageSegmentationPipeline`], except that the masks of the
    panoptic and instance subtasks (the default) are drawn by [`segment_masks`]: transformers compares the int64
    segmentation with every segment id, multiplies by 255 into a new int64 map and converts that to 8 bits, three
    full-size passes per segment that took more time than the model's post-processing itself. The masks, labels and
    scores are identical. One more call argument, `adaptation_steps` (and `adaptation_options`), adapts the model
    to the image first, as in [`HierarchicalSegmentationPipeline`]: every returned segment dict then also has
    `"adaptation"`: `{"steps", "changed_levels", "losses"}`.
    """

    serves_cast_models = True

    def preprocess(self, image, subtask=None, timeout=None):
        # `subtask` selects OneFormer's task inputs in transformers' version; CAST's post-processing checks it
        image = load_image(image, timeout=timeout)
        inputs = self.image_processor(images=[image], return_tensors="pt").to(self.dtype)
        inputs["target_size"] = [(image.height, image.width)]
        return inputs

    def _sanitize_parameters(self, adaptation_steps=None, adaptation_options=None, **kwargs):
        preprocess_kwargs, forward_kwargs, postprocess_kwargs = super()._sanitize_parameters(**kwargs)
        forward_kwargs = {**forward_kwargs, **_adaptation_parameters(adaptation_steps, adaptation_options)}
        return preprocess_kwargs, forward_kwargs, postprocess_kwargs

    def _forward(self, model_inputs, adaptation_steps: int = 0, adaptation_options: dict | None = None):
        if not adaptation_steps:
            return super()._forward(model_inputs)
        target_size = model_inputs.pop("target_size")
        model_outputs, adaptation = _run_model(self.model, model_inputs, adaptation_steps, adaptation_options)
        model_outputs["target_size"] = target_size
        model_outputs["adaptation"] = adaptation
        return model_outputs

    def postprocess(
        self, model_outputs, subtask=None, threshold=0.9, mask_threshold=0.5, overlap_mask_area_threshold=0.5
    ):
        annotation = self._annotation(model_outputs, subtask, threshold, mask_threshold, overlap_mask_area_threshold)
        adaptation = model_outputs.get("adaptation")
        if adaptation is not None:
            annotation = [dict(segment, adaptation=adaptation) for segment in annotation]
        return annotation

    def _annotation(self, model_outputs, subtask, threshold, mask_threshold, overlap_mask_area_threshold):
        method = _SEGMENT_SUBTASKS.get(subtask)
        if method is None:  # semantic: transformers' own drawing
            return super().postprocess(model_outputs, subtask, threshold, mask_threshold, overlap_mask_area_threshold)
        post_process = getattr(self.image_processor, f"post_process_{method}_segmentation")
        result = post_process(
            model_outputs,
            threshold=threshold,
            mask_threshold=mask_threshold,
            overlap_mask_area_threshold=overlap_mask_area_threshold,
            target_sizes=model_outputs["target_size"],
        )[0]
        segments = result["segments_info"]
        masks = segment_masks(result["segmentation"], [segment["id"] for segment in segments])
        id2label = self.model.config.id2label
        return [
            {"score": segment["score"], "label": id2label[segment["label_id"]], "mask": mask}
            for segment, mask in zip(segments, masks)
        ]


class CastImageClassificationPipeline(ImageClassificationPipeline):
    """
    transformers' "image-classification" pipeline for CAST models, keeping the bit depth of image files (see
    [`CastImageSegmentationPipeline`]). Arrays and tensors go to the image processor as they are, as in transformers.
    """

    serves_cast_models = True

    def preprocess(self, image, timeout=None):
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            image = load_image(image, timeout=timeout)
        return self.image_processor(images=image, return_tensors="pt").to(self.dtype)


# `adapt_to_images` arguments a pipeline call may set (labels are per image, not a pipeline setting)
_ADAPTATION_OPTIONS = (
    "objective", "learning_rate", "num_views", "parameters", "crop_scale", "pseudo_label_threshold", "seed"
)


def _adaptation_parameters(adaptation_steps, adaptation_options) -> dict[str, Any]:
    """The forward parameters of the adaptation call arguments, checked (the option values are checked by the
    adaptation itself, before it changes anything)."""
    if adaptation_steps is None and adaptation_options is None:
        return {}
    steps = 0 if adaptation_steps is None else adaptation_steps
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"`adaptation_steps` must be an integer, got {type(steps).__name__} {steps!r}")
    if steps < 0:
        raise ValueError(f"`adaptation_steps` must be >= 0 (0 = no adaptation), got {steps}")
    options = {} if adaptation_options is None else adaptation_options
    if not isinstance(options, dict):
        raise TypeError(f"`adaptation_options` must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(_ADAPTATION_OPTIONS))
    if unknown:
        raise ValueError(f"`adaptation_options` accepts the keys {list(_ADAPTATION_OPTIONS)}, got unknown keys {unknown}")
    return {"adaptation_steps": steps, "adaptation_options": dict(options)}


def _run_model(model, model_inputs: dict[str, Any], steps: int, options: dict | None) -> tuple[Any, dict | None]:
    """The model's outputs, adapted to the image first when `steps` > 0, and the adaptation summary (or None)."""
    if not steps:
        return model(**model_inputs), None
    if not callable(getattr(model, "adapt", None)):
        raise ValueError(f"`adaptation_steps` needs a CAST model (with `adapt`), got {type(model).__name__}")
    # pipelines run the forward without gradients; adaptation needs them, on tensors made outside that context
    with torch.inference_mode(False), torch.enable_grad():
        inputs = {key: value.clone() if isinstance(value, torch.Tensor) else value for key, value in model_inputs.items()}
        result = model.adapt(**inputs, steps=steps, **(options or {}))
    summary = {
        "steps": steps,
        "changed_levels": result.changed_levels[0] if result.changed_levels else [],
        "losses": result.losses[0].tolist(),
    }
    return result.outputs, summary


def is_cast_model(model) -> bool:
    """Whether `model` (a loaded model, also one loaded as remote code) is a CAST model."""
    return getattr(getattr(model, "config", None), "model_type", None) == _CAST_MODEL_TYPE


def model_dispatching_pipeline(transformers_class: type[Pipeline], cast_class: type[Pipeline]) -> type[Pipeline]:
    """
    A stand-in for `transformers_class` in transformers' task registry that builds a `cast_class` pipeline for CAST
    models and exactly a `transformers_class` pipeline for every other model.

    `pipeline(task, ...)` reads the registered class's loading flags (`_load_image_processor`, ...), which the
    stand-in inherits unchanged, then calls it with the loaded model. Its `__new__` returns an instance of one of the
    two classes, already initialized (Python runs `__init__` itself only for instances of the class called), so
    other models get transformers' own class, not a subclass.
    """

    def __new__(cls, *args, **kwargs):
        model = kwargs["model"] if "model" in kwargs else (args[0] if args else None)
        chosen = cast_class if is_cast_model(model) else transformers_class
        return chosen(*args, **kwargs)

    return type(
        f"CastDispatching{transformers_class.__name__}",
        (transformers_class,),
        {
            "__new__": __new__,
            "__module__": __name__,
            "__doc__": (
                f"Builds [`{cast_class.__name__}`] for CAST models, [`{transformers_class.__name__}`] otherwise."
            ),
            "serves_cast_models": True,
        },
    )


# the options of `draw_hierarchy` that make sense for a pipeline picture (`highlight` is per image)
_RENDER_OPTIONS = ("mode", "captions", "alpha", "show_boundaries", "boundary_color", "gap", "gap_color")


def _check_render_options(render_options) -> None:
    if not isinstance(render_options, dict):
        raise TypeError(
            f"`render_options` must be a dict of `draw_hierarchy` options, got {type(render_options).__name__}"
        )
    unknown = sorted(set(render_options) - set(_RENDER_OPTIONS))
    if unknown:
        raise ValueError(f"`render_options` accepts the keys {list(_RENDER_OPTIONS)}, got unknown keys {unknown}")


def _render(
    image: Image.Image, segmentation: torch.Tensor, level_indices: list[int], render_options: dict[str, Any]
) -> Image.Image:
    # imported on use: drawing is optional and lives beside this module
    from .visualization_cast import draw_hierarchy, level_caption

    # the drawing expects the levels finest first, as the model orders them
    order = np.argsort(level_indices, kind="stable")
    levels = segmentation[torch.from_numpy(order)].numpy()
    if render_options.get("captions") is True:
        # name the model's levels, not the positions in a subset of them
        captions = [level_caption(level_indices[index], len(np.unique(level))) for index, level in zip(order, levels)]
        render_options = dict(render_options, captions=captions)
    return draw_hierarchy(image, levels, **render_options)


def segment_masks(segmentation: torch.Tensor, segment_ids: list[int]) -> list[Image.Image]:
    """
    One PIL mask (mode `"L"`: 255 on the segment's pixels, 0 elsewhere) per id of a `(height, width)` map of
    non-negative ids, as `ImageSegmentationPipeline` draws them.

    Maps whose ids fit in 8 bits (every CAST level up to 256 segments) become one 8-bit image, and each mask is one
    lookup-table pass over it in PIL (`Image.point`); larger ids compare the map with each id in numpy and write the
    mask directly as 8 bits.
    """
    labels = segmentation.cpu().numpy()
    if labels.size and int(labels.max()) <= MAX_UINT8:
        label_image = Image.fromarray(labels.astype(np.uint8))
        return [label_image.point(_indicator_table(segment_id)) for segment_id in segment_ids]
    masks = []
    for segment_id in segment_ids:
        mask = np.equal(labels, segment_id).view(np.uint8)
        masks.append(Image.fromarray(np.multiply(mask, MAX_UINT8, dtype=np.uint8)))
    return masks


def _indicator_table(segment_id: int) -> list[int]:
    # PIL's 256-entry lookup table of an 8-bit image: 255 for the segment's id, 0 for every other value
    table = [0] * (MAX_UINT8 + 1)
    if 0 <= segment_id <= MAX_UINT8:
        table[segment_id] = MAX_UINT8
    return table
