# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Test-time adaptation: refine a model on each test image with a recognition objective, then segment it again.

The CAST paper adapts its model to a test image with the objective it was trained with, and reports that the
intermediate hierarchical segmentation improves together with the recognition. [`adapt_to_images`] does that
episodically: for every image of a batch it takes a few optimizer steps on augmented views of that image alone
(random crops and flips, with the image's own superpixel map cropped and flipped along: no new superpixels), runs the
adapted model once on the original image, and puts every weight back. The caller's model (parameters, buffers such
as BatchNorm statistics, `requires_grad` flags, gradients, training flag), any optimizer holding its parameters and
torch's global random number generators are exactly as before afterwards; the views come from a private generator
seeded by `seed`, so a result is a pure function of the image, the model and the arguments.

Objectives (`objective`):
- `"entropy"`: the entropy of the class prediction averaged over the views (marginal entropy, as MEMO, Zhang et al.
  2022): the views must agree on one confident class.
- `"pseudo_label"`: cross-entropy of every view to the class the unadapted model predicts on the original image;
  images whose prediction is less confident than `pseudo_label_threshold` are left unadapted.
- `"cross_entropy"`: cross-entropy of every view to given `labels` (a known class: an upper bound, or a control).
- `"moco"`: the MoCo-v3 loss of a pretraining model (`CastForPreTraining`) between pairs of views: each pair's query
  against the other pairs' momentum keys, the loss the model was pretrained with (other crops of the same image
  serve as negatives, so it needs at least two pairs). The momentum encoder stays fixed during adaptation.

The first three need classification logits (a classifier head), `"moco"` a momentum encoder. The model runs in
eval mode throughout (dropout off, running statistics used and never updated), so a view's loss depends on that view
alone.

Works for any image classifier that takes `pixel_values` (e.g. transformers' ViT, as the part-whole benchmark's
matched baseline) when `superpixels` is None. Hub-flat: imports only the standard library and torch, so it travels as
remote code with the model files.
"""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ADAPTATION_OBJECTIVES",
    "ADAPTED_PARAMETERS",
    "AdaptationOutput",
    "adapt_to_images",
    "augmented_views",
    "changed_levels",
]

ADAPTATION_OBJECTIVES = ("entropy", "pseudo_label", "cross_entropy", "moco")
_CLASSIFICATION_OBJECTIVES = ("entropy", "pseudo_label", "cross_entropy")
# "all": every trainable parameter; "pooling_and_norms": the graph pooling blocks (the grouping itself) and every
# normalization layer's affine parameters, a tenth of the weights of a small CAST
ADAPTED_PARAMETERS = ("all", "pooling_and_norms")
_NORM_TYPES = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
_CLASSIFICATION_LOGITS_NDIM = 2
_MIN_MOCO_VIEWS = 4  # two pairs: one positive and at least one negative key per query

# Defaults: kept by the sweep of learning rate, steps and views in benchmarks/part_whole/ADAPTATION.md (no setting
# beat them there; weak evidence: the classifiers of that run were still at chance).
DEFAULT_STEPS = 3
DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_NUM_VIEWS = 8
DEFAULT_CROP_SCALE = (0.5, 1.0)


@dataclass
class AdaptationOutput:
    """
    Result of [`adapt_to_images`].

    Args:
        outputs (`ModelOutput`):
            The adapted model's output on the original images (eval mode), one row per image: each image's row comes
            from the model adapted to that image alone. Same class and fields as the model's own forward.
        initial_outputs (`ModelOutput`):
            The unadapted model's output on the same inputs, for comparison.
        losses (`torch.FloatTensor` of shape `(batch_size, steps)`):
            The objective at every step, before that step's update (NaN for images left unadapted).
        adapted (`torch.BoolTensor` of shape `(batch_size,)`):
            Whether each image was adapted (False where `"pseudo_label"` found the prediction below the threshold).
        changed_levels (`list[list[int]]`):
            Per image, the levels of the hierarchy where some pixel changed segment (empty when the outputs carry no
            hierarchy).
    """

    outputs: Any
    initial_outputs: Any
    losses: torch.Tensor
    adapted: torch.Tensor
    changed_levels: list[list[int]] = field(default_factory=list)


def adapt_to_images(
    model: nn.Module,
    pixel_values: torch.Tensor,
    superpixels: torch.Tensor | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    objective: str | None = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    num_views: int = DEFAULT_NUM_VIEWS,
    parameters: str = "all",
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    labels: torch.Tensor | None = None,
    pseudo_label_threshold: float = 0.0,
    seed: int = 0,
    **forward_kwargs: Any,
) -> AdaptationOutput:
    """
    Adapt `model` to each image of a batch independently and return its outputs on the images (see the module
    docstring for the objectives and what is restored).

    Args:
        model (`nn.Module`):
            A CAST classifier (`CastForImageClassification`) or pretraining model (`CastForPreTraining`), or any
            image classifier taking `pixel_values` when `superpixels` is None.
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            The images, as the image processor returns them.
        superpixels (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            Their superpixel maps (required by CAST models); cropped and flipped with the pixels for every view.
        steps (`int`, *optional*, defaults to 3):
            Optimizer steps per image; 0 returns the unadapted outputs.
        objective (`str`, *optional*):
            One of `"entropy"`, `"pseudo_label"`, `"cross_entropy"` (needs `labels`) and `"moco"`; by default
            `"entropy"` for a classifier and `"moco"` for a pretraining model.
        learning_rate (`float`, *optional*, defaults to 1e-4):
            Adam's learning rate (0 changes nothing).
        num_views (`int`, *optional*, defaults to 8):
            Augmented views per step (even and at least 4 for `"moco"`).
        parameters (`str`, *optional*, defaults to `"all"`):
            What adapts: `"all"` trainable parameters, or `"pooling_and_norms"` (graph pooling blocks and the affine
            parameters of every normalization layer).
        crop_scale (`tuple[float, float]`, *optional*, defaults to `(0.5, 1.0)`):
            Range of a view's share of the image area (square crops, resized back to the input size).
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            The class of every image, for `"cross_entropy"` only.
        pseudo_label_threshold (`float`, *optional*, defaults to 0.0):
            For `"pseudo_label"`: the least top-class probability with which an image is adapted.
        seed (`int`, *optional*, defaults to 0):
            Seed of the views; every image uses it afresh, so its result does not depend on its batch-mates.
        forward_kwargs:
            Passed to the final forward passes (e.g. `output_hidden_states=True`).

    Returns:
        [`AdaptationOutput`].
    """
    objective = _check_arguments(
        model, pixel_values, superpixels, steps, objective, learning_rate, num_views, parameters, crop_scale, labels,
        pseudo_label_threshold, seed,
    )
    if hasattr(model, "momentum_cast"):
        # a pretraining model computes its loss only from two views; the passes on the image itself need none
        forward_kwargs.setdefault("return_loss", False)
    images = [_image_inputs(pixel_values, superpixels, index) for index in range(pixel_values.shape[0])]
    rows = []
    with _episode(model) as restore:
        selected = _adapted_parameters(model, parameters)
        for index, inputs in enumerate(images):
            image_labels = None if labels is None else labels[index : index + 1]
            rows.append(
                _adapt_one(
                    model, inputs, selected, objective, steps, learning_rate, num_views, crop_scale, image_labels,
                    pseudo_label_threshold, seed, forward_kwargs,
                )
            )
            restore()
    initial, adapted_outputs, losses, adapted = zip(*rows)
    initial_outputs, outputs = _concatenate(initial), _concatenate(adapted_outputs)
    return AdaptationOutput(
        outputs=outputs,
        initial_outputs=initial_outputs,
        losses=torch.stack(losses),
        adapted=torch.tensor(adapted),
        changed_levels=changed_levels(initial_outputs, outputs),
    )


def changed_levels(before, after) -> list[list[int]]:
    """Per image, the levels whose segment id changed at some pixel between two outputs with a `hierarchy`."""
    first, second = _get(before, "hierarchy"), _get(after, "hierarchy")
    if first is None or second is None:
        return []
    differs = (first != second).flatten(2).any(dim=-1)  # (B, L)
    return [torch.nonzero(row).flatten().tolist() for row in differs]


def augmented_views(
    pixel_values: torch.Tensor,
    superpixels: torch.Tensor | None,
    num_views: int,
    crop_scale: tuple[float, float],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`num_views` random square crops (area share in `crop_scale`) of one image `(1, C, H, W)`, each resized back to
    `(H, W)` and flipped horizontally with probability 1/2. The superpixel map `(1, H, W)` is cropped, resized
    (nearest) and flipped along, then renumbered 0..K'-1 (a crop loses superpixels; contiguous ids keep every token
    real). Returns `(num_views, C, H, W)` and `(num_views, H, W)`."""
    _, _, height, width = pixel_values.shape
    draws = torch.rand(num_views, 4, generator=generator)
    view_pixels, view_superpixels = [], []
    for scale, top_draw, left_draw, flip in draws.tolist():
        side = math.sqrt(crop_scale[0] + scale * (crop_scale[1] - crop_scale[0]))
        crop_height, crop_width = max(1, round(side * height)), max(1, round(side * width))
        top, left = int(top_draw * (height - crop_height + 1)), int(left_draw * (width - crop_width + 1))
        # nearest neighbor at the output pixels' centers, as the bilinear resize samples them
        rows = top + ((2 * torch.arange(height) + 1) * crop_height) // (2 * height)
        cols = left + ((2 * torch.arange(width) + 1) * crop_width) // (2 * width)
        if flip < 0.5:
            cols = cols.flip(0)
        crop = pixel_values[:, :, top : top + crop_height, left : left + crop_width]
        resized = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
        view_pixels.append(resized.flip(-1) if flip < 0.5 else resized)
        if superpixels is not None:
            nearest = superpixels[0][rows.to(superpixels.device)][:, cols.to(superpixels.device)]
            view_superpixels.append(torch.unique(nearest, return_inverse=True)[1].view(height, width))
    stacked_superpixels = torch.stack(view_superpixels) if superpixels is not None else None
    return torch.cat(view_pixels), stacked_superpixels


def _adapt_one(
    model, inputs, selected, objective, steps, learning_rate, num_views, crop_scale, labels, threshold, seed,
    forward_kwargs,
):
    """Adapt to one image; returns (initial output, adapted output, losses (steps,), adapted?)."""
    with torch.no_grad():
        initial = model(**inputs, **forward_kwargs)
    if objective in _CLASSIFICATION_OBJECTIVES:
        logits = _get(initial, "logits")
        if not isinstance(logits, torch.Tensor) or logits.ndim != _CLASSIFICATION_LOGITS_NDIM:
            raise ValueError(
                f"`objective`={objective!r} needs classification logits of shape (batch_size, num_labels), but "
                f"{type(model).__name__} returns {'none' if logits is None else tuple(logits.shape)}: use a "
                "classifier (e.g. load the checkpoint with AutoModelForImageClassification), or `objective='moco'` "
                "for a pretraining model"
            )
    losses = torch.full((steps,), float("nan"))
    if objective == "pseudo_label":
        probabilities = _get(initial, "logits").float().softmax(-1)
        if float(probabilities.max()) < threshold:
            return initial, initial, losses, False
        labels = probabilities.argmax(-1)
    if steps == 0:
        return initial, initial, losses, True
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(selected, lr=learning_rate)
    for step in range(steps):
        views = augmented_views(inputs["pixel_values"], inputs.get("superpixels"), num_views, crop_scale, generator)
        loss = _objective_loss(model, objective, views, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach().float().cpu()
    with torch.no_grad():
        adapted = model(**inputs, **forward_kwargs)
    return initial, adapted, losses, True


def _objective_loss(model, objective: str, views, labels) -> torch.Tensor:
    view_pixels, view_superpixels = views
    inputs = {"pixel_values": view_pixels}
    if view_superpixels is not None:
        inputs["superpixels"] = view_superpixels
    if objective == "moco":
        # pairs of consecutive views; the model's own symmetric MoCo-v3 loss over the pairs
        return model(
            pixel_values=view_pixels[0::2], superpixels=view_superpixels[0::2], pixel_values_2=view_pixels[1::2],
            superpixels_2=view_superpixels[1::2], output_hierarchy=False, gather_keys=False,
        ).loss
    if view_superpixels is not None:
        inputs["output_hierarchy"] = False  # the pixel maps feed no loss
    logits = _get(model(**inputs), "logits").float()
    if objective == "entropy":
        marginal = logits.softmax(-1).mean(0)
        return -(marginal * marginal.clamp_min(torch.finfo(marginal.dtype).tiny).log()).sum()
    targets = labels.to(logits.device).expand(logits.shape[0])
    return F.cross_entropy(logits, targets)


@contextmanager
def _episode(model: nn.Module):
    """Eval mode, snapshots of every parameter, buffer, gradient and `requires_grad` flag, and a fork of torch's
    global RNGs; yields a function that restores the weights (called after every image), and restores everything on
    exit, also after an error. Values are copied in place, so optimizers holding the parameters keep them."""
    parameters = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    saved_parameters = {name: tensor.detach().clone() for name, tensor in parameters.items()}
    saved_buffers = {name: tensor.detach().clone() for name, tensor in buffers.items()}
    saved_gradients = {name: tensor.grad for name, tensor in parameters.items()}
    saved_flags = {name: tensor.requires_grad for name, tensor in parameters.items()}
    saved_modes = {name: module.training for name, module in model.named_modules()}

    def restore() -> None:
        with torch.no_grad():
            for name, tensor in parameters.items():
                tensor.copy_(saved_parameters[name])
            for name, tensor in buffers.items():
                tensor.copy_(saved_buffers[name])

    devices = sorted({tensor.device.index or 0 for tensor in parameters.values() if tensor.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            model.eval()
            for tensor in parameters.values():
                tensor.grad = None
            yield restore
    finally:
        restore()
        for name, tensor in parameters.items():
            tensor.requires_grad_(saved_flags[name])
            tensor.grad = saved_gradients[name]
        for name, module in model.named_modules():
            module.training = saved_modes[name]


def _adapted_parameters(model: nn.Module, parameters: str) -> list[nn.Parameter]:
    """Select the parameters that adapt and make them (only them) require gradients."""
    if parameters == "all":
        chosen = {id(tensor) for tensor in model.parameters() if tensor.requires_grad}
    else:
        chosen = set()
        for module in model.modules():
            # (by name: remote code has its own copy of the CAST classes)
            if type(module).__name__ == "CastGraphPooling" or isinstance(module, _NORM_TYPES):
                chosen.update(id(tensor) for tensor in module.parameters() if tensor.requires_grad)
    selected = []
    for tensor in model.parameters():
        tensor.requires_grad_(id(tensor) in chosen)
        if id(tensor) in chosen:
            selected.append(tensor)
    if not selected:
        raise ValueError(f"`parameters`={parameters!r} selects no trainable parameter of {type(model).__name__}")
    return selected


def _image_inputs(pixel_values, superpixels, index: int) -> dict[str, torch.Tensor]:
    inputs = {"pixel_values": pixel_values[index : index + 1]}
    if superpixels is not None:
        inputs["superpixels"] = superpixels[index : index + 1]
    return inputs


def _get(outputs, key: str):
    return outputs.get(key) if hasattr(outputs, "get") else getattr(outputs, key, None)


def _concatenate(outputs: tuple) -> Any:
    """One output for the batch from one output per image: tensors (and tuples of tensors) joined on the batch axis."""
    first = outputs[0]
    joined = {}
    for key in first.keys():
        values = [output[key] for output in outputs]
        if isinstance(values[0], torch.Tensor) and values[0].ndim > 0:
            joined[key] = torch.cat(values)
        elif isinstance(values[0], tuple):
            joined[key] = tuple(torch.cat(parts) for parts in zip(*values))
        else:
            joined[key] = values[0]
    return type(first)(**joined)


def _check_arguments(
    model, pixel_values, superpixels, steps, objective, learning_rate, num_views, parameters, crop_scale, labels,
    threshold, seed,
) -> str:
    """Validate once, before anything runs; returns the objective (the head's default when None)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"`pixel_values` must be a tensor of shape (batch_size, channels, height, width), got {shape}")
    if superpixels is not None and (
        not isinstance(superpixels, torch.Tensor) or tuple(superpixels.shape) != (pixel_values.shape[0], *pixel_values.shape[2:])
    ):
        shape = tuple(superpixels.shape) if isinstance(superpixels, torch.Tensor) else type(superpixels).__name__
        raise ValueError(
            f"`superpixels` must have shape (batch_size, height, width) = "
            f"{(pixel_values.shape[0], *pixel_values.shape[2:])}, got {shape}"
        )
    for name, value in (("steps", steps), ("num_views", num_views), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}")
    if steps < 0:
        raise ValueError(f"`steps` must be >= 0 (0 = no adaptation), got {steps}")
    if num_views < 1:
        raise ValueError(f"`num_views` must be >= 1, got {num_views}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) or not learning_rate >= 0:
        raise ValueError(f"`learning_rate` must be a number >= 0, got {learning_rate!r}")
    if parameters not in ADAPTED_PARAMETERS:
        raise ValueError(f"`parameters` must be one of {ADAPTED_PARAMETERS}, got {parameters!r}")
    if (
        not isinstance(crop_scale, (tuple, list)) or len(crop_scale) != 2
        or not all(isinstance(value, numbers.Real) for value in crop_scale)
        or not 0 < crop_scale[0] <= crop_scale[1] <= 1
    ):
        raise ValueError(f"`crop_scale` must be (min, max) with 0 < min <= max <= 1, got {crop_scale!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
        raise ValueError(f"`pseudo_label_threshold` must be in [0, 1], got {threshold!r}")
    has_momentum_encoder = hasattr(model, "momentum_cast")
    if objective is None:
        objective = "moco" if has_momentum_encoder else "entropy"
    if objective not in ADAPTATION_OBJECTIVES:
        raise ValueError(f"`objective` must be one of {ADAPTATION_OBJECTIVES}, got {objective!r}")
    if objective == "moco":
        if not has_momentum_encoder:
            raise ValueError(
                f"`objective`='moco' needs a MoCo pretraining model with a momentum encoder (CastForPreTraining), got "
                f"{type(model).__name__}"
            )
        if superpixels is None:
            raise ValueError("`objective`='moco' adapts a CAST pretraining model, which needs `superpixels`")
        if num_views < _MIN_MOCO_VIEWS or num_views % 2:
            raise ValueError(
                f"`num_views` must be even and >= {_MIN_MOCO_VIEWS} for `objective`='moco' (pairs of views, another "
                f"pair's key as negative), got {num_views}"
            )
    elif has_momentum_encoder:
        raise ValueError(
            f"`objective`={objective!r} needs classification logits, which {type(model).__name__} does not compute: "
            "use `objective`='moco'"
        )
    if objective == "cross_entropy":
        if not isinstance(labels, torch.Tensor) or labels.shape != (pixel_values.shape[0],) or labels.is_floating_point():
            got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(
                f"`labels` must be an integer tensor of shape (batch_size,) = ({pixel_values.shape[0]},) for "
                f"`objective`='cross_entropy', got {got}"
            )
    elif labels is not None:
        raise ValueError(f"`labels` are used by `objective`='cross_entropy' only, got `objective`={objective!r}")
    return objective
