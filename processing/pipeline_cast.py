# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The "hierarchical-segmentation" pipeline: every level of a CAST model's segmentation hierarchy for each image.

`import modeling_cast` registers it, after which (with a saved CAST checkpoint folder and an image file)

```python
import modeling_cast  # registers the task
from transformers import pipeline

segmenter = pipeline("hierarchical-segmentation", model="path/to/cast-checkpoint")
result = segmenter("photo.jpg", render=True)  # result["levels"], result["segments_info"], result["picture"]
```

This module uses only `transformers`' public pipeline API and the image processor's post-processing; it never imports
the model package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.pipelines import ImageSegmentationPipeline, Pipeline

from .image_inputs_cast import load_image


__all__ = ["CastImageSegmentationPipeline", "HierarchicalSegmentationPipeline"]


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
    transformers' `pipeline("image-segmentation")` with one more call argument for CAST models, `adaptation_steps`
    (and `adaptation_options`), as in [`HierarchicalSegmentationPipeline`]: with steps, every returned segment dict
    also has `"adaptation"`: `{"steps", "changed_levels", "losses"}`. Without them it is transformers' pipeline
    unchanged, for every model. `import modeling_cast` makes it the task's implementation; remote code without the
    package runs transformers' own class, which has no adaptation.
    """

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

    def postprocess(self, model_outputs, **kwargs):
        annotation = super().postprocess(model_outputs, **kwargs)
        adaptation = model_outputs.get("adaptation")
        if adaptation is not None:
            annotation = [dict(segment, adaptation=adaptation) for segment in annotation]
        return annotation


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
