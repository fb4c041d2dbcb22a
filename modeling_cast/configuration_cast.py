# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""CAST model configuration.

CAST: Ke, Mo, Yu, "Learning Hierarchical Image Segmentation For Recognition and By Recognition", ICLR 2024.
Defaults reproduce the official `cast_base` architecture (MoCo-v3 ImageNet backbone).
"""

from __future__ import annotations

import math

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig
from transformers.backbone_utils import BackboneConfigMixin
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.utils import logging

__all__ = ["CastConfig", "CastLabelNames", "CAST_PRESETS", "superpixel_token_budget"]

# Architecture of the checkpoints released with the paper (official repository README and model builders).
CAST_PRESETS: dict[str, dict] = {
    "cast-small": {"hidden_size": 384, "num_attention_heads": 12, "depths": [3, 3, 3, 2]},
    "cast-small-deep": {"hidden_size": 384, "num_attention_heads": 12, "depths": [6, 3, 3, 3]},
    "cast-base": {"hidden_size": 768, "num_attention_heads": 12, "depths": [3, 3, 3, 2]},
    "cast-base-deep": {"hidden_size": 768, "num_attention_heads": 12, "depths": [6, 3, 3, 3]},
}

_STEM_CONVOLUTIONS = 4  # the ConvStem has four 3x3 convolutions (C/8, C/4, C/2, C channels)
_SUPPORTED_ACTIVATIONS = ("gelu",)  # exact (erf) GELU, as in the official blocks
_POSITION_EMBEDDING_TYPES = ("sincos", "learned")
_TOKEN_POOLING_RESOLUTIONS = ("grid", "pixel")
# fields that size modules: a float or a string there would fail deep inside torch
_INT_FIELDS = (
    "hidden_size", "num_attention_heads", "pooling_num_attention_heads", "num_channels", "patch_size",
    "max_superpixel_tokens",
)


class CastLabelNames(dict):
    """The `id2label` map of a [`CastConfig`]: class names by class id, plus names for the unsupervised segments.

    Every CAST checkpoint segments images through its hierarchy, also when it has no classes (or classes of whole
    images). [`CastImageProcessor`] gives the segment `k` of level `l` the label id `(l, k)`, which is never a class
    id, so that `pipeline("image-segmentation")` (which reads `config.id2label[label_id]`) labels it
    `"level l segment k"`. Class ids keep their names and any other missing key still raises `KeyError`.
    """

    def __missing__(self, key):
        if isinstance(key, tuple) and len(key) == 2 and all(isinstance(index, int) for index in key):
            level, segment = key
            return f"level {level} segment {segment}"
        raise KeyError(key)


logger = logging.get_logger(__name__)

def superpixel_token_budget(n_segments: int, image_size: int, patch_size: int = 8) -> int:
    """A `max_superpixel_tokens` for a processor that asks for `n_segments` superpixels of `image_size`-square images:
    half as many again (scikit-image SLIC returned up to about 15% more than asked on generated part-whole images),
    but never more than the stem grid's cells, which bound the tokens of any superpixel map. A budget far above the
    tokens an image has only costs time: the padding runs through the first stage."""
    grid_cells = (image_size // patch_size) ** 2
    return min(grid_cells, n_segments + n_segments // 2)


@strict
class CastConfig(BackboneConfigMixin, PretrainedConfig):
    r"""
    Configuration of a CAST model ([`CastModel`], [`CastForImageClassification`]). Instantiating it with the
    defaults gives the architecture of the official `cast_base` checkpoint.

    Args:
        hidden_size (`int`, *optional*, defaults to 768):
            Width of the tokens. Must be divisible by `num_attention_heads`, `pooling_num_attention_heads`, 8 (the
            ConvStem's first width is `hidden_size / 8`) and 4 (the 2-D sin-cos position embedding).
        num_attention_heads (`int`, *optional*, defaults to 12):
            Attention heads in each transformer block.
        depths (`list[int]`, *optional*, defaults to `[3, 3, 3, 2]`):
            Transformer blocks per stage. Each stage ends with a graph pooling step.
        num_segments (`list[int]`, *optional*, defaults to `[64, 32, 16, 8]`):
            Segments kept by the graph pooling of each stage; strictly decreasing. The last stage's pooling only
            assigns tokens to segments (it yields the coarsest level of the hierarchy).
        mlp_ratio (`float`, *optional*, defaults to 4.0):
            Width of the block MLPs relative to `hidden_size`.
        qkv_bias (`bool`, *optional*, defaults to `True`):
            Whether the fused query/key/value projections have a bias.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the block and pooling MLPs (exact GELU).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after attention and MLP projections in the blocks.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the block, grouping and final LayerNorms.
        image_size (`int` or `list[int]`, *optional*, defaults to 224):
            Training resolution. The position embedding is computed for the actual input grid, so other sizes that
            are multiples of `patch_size` also work.
        num_channels (`int`, *optional*, defaults to 3):
            Input channels.
        patch_size (`int`, *optional*, defaults to 8):
            Total stride of the convolutional stem (a power of two between 2 and 16; the official stem uses 8).
        initializer_range (`float`, *optional*, defaults to 0.01):
            Standard deviation of the normal initialization of the classifier head (the official linear-probing
            initialization) and of the grouping centering bias.
        batch_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the stem BatchNorms.
        pooling_num_attention_heads (`int`, *optional*, defaults to 12):
            Heads of the attention inside graph pooling (fixed to 12 in the official code, whatever the block heads).
        pooling_mlp_ratio (`float`, *optional*, defaults to 4.0):
            Width of the pooling feature MLP relative to `hidden_size`.
        pooling_layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the two LayerNorms of the pooling feature MLP.
        pooling_dropout_prob (`float`, *optional*, defaults to 0.1):
            Dropout inside the pooling feature MLP (training only).
        assignment_temperature (`float`, *optional*, defaults to 0.2):
            Temperature of the soft assignment: logits are cosine similarities divided by it.
        position_embedding_type (`str`, *optional*, defaults to `"sincos"`):
            `"sincos"`: the fixed 2-D sin-cos embedding of the MoCo-v3 checkpoints. `"learned"`: a learned table of
            the training grid with a class-token slot (the official DeiT-supervised variant), resized bicubically
            for other grids.
        token_pooling_resolution (`str`, *optional*, defaults to `"grid"`):
            Where superpixel tokens are averaged. `"grid"`: on the stem grid, each cell taking the superpixel id of its
            top-left pixel (official classification and pretraining models). `"pixel"`: at the superpixel map's own
            resolution, with the stem features resized bilinearly and the position table bicubically (official
            segmentation variant; every superpixel keeps a token, at a higher memory cost).
        max_superpixel_tokens (`int`, *optional*, defaults to 196):
            Static token budget: every forward pass runs on exactly this many superpixel tokens, an image's own (its
            largest superpixel id found on the pooling grid, plus one) followed by padding that takes part in nothing
            (results never depend on it). A fixed count lets the model export (`torch.export`, ONNX) and compile
            without graph breaks or recompilation. The default fits [`CastImageProcessor`]'s default 196 superpixels
            at 224x224 (SEEDS returns exactly 196, SLIC at most 196 on the photos measured); an image with more tokens
            raises a `ValueError` naming this field. A larger budget costs time in the first stage's blocks.
        superpixel_n_segments (`int`, *optional*, defaults to 196):
            Superpixels the model computes itself, when a forward pass gets `pixel_values` without `superpixels`:
            the approximate count asked of its tensor back-end (`torch_slic`, see `tensor_slic_cast.py`), which runs
            on the model's device as part of the forward (exportable and compilable). The seed grid is laid out with
            at most `max_superpixel_tokens` seeds, so these superpixels always fit the token budget.
        superpixel_compactness (`float`, *optional*, defaults to 10.0):
            SLIC compactness of the in-model superpixels (higher gives more square superpixels).
        superpixel_iterations (`int`, *optional*, defaults to 5):
            SLIC iterations of the in-model superpixels (0 gives the seed grid, refined by color once).
        superpixel_image_mean (`list[float]`, *optional*, defaults to `IMAGENET_DEFAULT_MEAN`):
            Per-channel mean that the image processor subtracted from `pixel_values`: the in-model superpixels are
            computed on the un-normalized image, `(pixel_values * std + mean) * superpixel_rescale_factor`, clipped
            to [0, 1] (as the processor's own back-ends read it).
        superpixel_image_std (`list[float]`, *optional*, defaults to `IMAGENET_DEFAULT_STD`):
            Per-channel standard deviation that the image processor divided `pixel_values` by.
        superpixel_rescale_factor (`float`, *optional*, defaults to 1.0):
            Factor that brings the un-normalized values to [0, 1]: 1.0 when the processor rescaled the pixels
            (`do_rescale=True`, its default), `1 / 255` when it normalized 0-255 values (`do_rescale=False`).
        fusion_dropout_prob (`float`, *optional*, defaults to 0.2):
            Dropout of [`CastForSemanticSegmentation`]'s level-fusion projection.
        semantic_loss_ignore_index (`int`, *optional*, defaults to 255):
            Label value ignored by the semantic segmentation loss.
        pretraining_projection_dim (`int`, *optional*, defaults to 256):
            Output width of the MoCo-v3 projector and predictor ([`CastForPreTraining`]).
        pretraining_hidden_dim (`int`, *optional*, defaults to 4096):
            Hidden width of the MoCo-v3 projector and predictor MLPs.
        pretraining_temperature (`float`, *optional*, defaults to 0.2):
            Temperature of the MoCo-v3 contrastive loss.
        pretraining_momentum (`float`, *optional*, defaults to 0.99):
            Base momentum of the momentum encoder (raised to 1 on a cosine schedule during training).
        out_features (`list[str]`, *optional*):
            [`CastBackbone`] only: the stages whose feature maps it returns, among `stage_names` (`"stem"`, the
            superpixel tokens, then `"stage1"` ... `"stageN"`, the tokens after each stage's blocks), in that order.
            By default the last stage, or the stages of `out_indices`. Validated and kept aligned with `out_indices`
            by transformers' backbone conventions (`BackboneConfigMixin`).
        out_indices (`list[int]`, *optional*):
            [`CastBackbone`] only: the same choice as indices into `stage_names` (negative ones count from the end).
        reshape_hidden_states (`bool`, *optional*, defaults to `True`):
            [`CastBackbone`] only: feature maps of shape `(batch_size, hidden_size, height / patch_size,
            width / patch_size)` if True; if False, `(batch_size, 1 + (height / patch_size) * (width / patch_size),
            hidden_size)`: the stage's class token followed by the grid cells in raster order, the token layout that
            transformers' DPT and Depth Anything necks read from ViT-like backbones.

    Example:

    ```python
    >>> from modeling_cast import CastConfig, CastModel
    >>> config = CastConfig(hidden_size=384, depths=[3, 3, 3, 2])  # cast-small
    >>> model = CastModel(config)
    ```
    """

    model_type = "cast"
    keys_to_ignore_at_inference = [
        "hidden_states", "attentions", "hierarchy", "hierarchy_scores", "assignment_logits", "seed_indices"
    ]

    hidden_size: int = 768
    num_attention_heads: int = 12
    depths: list[int] | tuple[int, ...] = (3, 3, 3, 2)
    num_segments: list[int] | tuple[int, ...] = (64, 32, 16, 8)
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    layer_norm_eps: float = 1e-6
    image_size: int | list[int] | tuple[int, int] = 224
    num_channels: int = 3
    patch_size: int = 8
    initializer_range: float = 0.01
    batch_norm_eps: float = 1e-5
    pooling_num_attention_heads: int = 12
    pooling_mlp_ratio: float | int = 4.0
    pooling_layer_norm_eps: float = 1e-5
    pooling_dropout_prob: float | int = 0.1
    assignment_temperature: float = 0.2
    position_embedding_type: str = "sincos"
    token_pooling_resolution: str = "grid"
    max_superpixel_tokens: int = 196
    superpixel_n_segments: int = 196
    superpixel_compactness: float | int = 10.0
    superpixel_iterations: int = 5
    superpixel_image_mean: list[float] | tuple[float, ...] = tuple(IMAGENET_DEFAULT_MEAN)
    superpixel_image_std: list[float] | tuple[float, ...] = tuple(IMAGENET_DEFAULT_STD)
    superpixel_rescale_factor: float | int = 1.0
    fusion_dropout_prob: float | int = 0.2
    semantic_loss_ignore_index: int = 255
    pretraining_projection_dim: int = 256
    pretraining_hidden_dim: int = 4096
    pretraining_temperature: float = 0.2
    pretraining_momentum: float = 0.99
    reshape_hidden_states: bool = True

    def __post_init__(self, **kwargs):
        # lists, not tuples: a JSON round trip must compare equal
        self.depths = list(self.depths)
        self.num_segments = list(self.num_segments)
        if not isinstance(self.image_size, int):
            self.image_size = list(self.image_size)
        if isinstance(self.superpixel_image_mean, (list, tuple)):
            self.superpixel_image_mean = list(self.superpixel_image_mean)
        if isinstance(self.superpixel_image_std, (list, tuple)):
            self.superpixel_image_std = list(self.superpixel_image_std)
        # The validators run here as well as by @strict (which runs every `validate_*` method after `__init__` and
        # before `save_pretrained` writes a config): @strict re-raises a validator's ValueError/TypeError wrapped in
        # its own error classes, which are neither, while the constructor promises plain ValueError/TypeError.
        self.validate_architecture()
        self.validate_hyperparameters()
        # `stage_names` is derived from `depths` (a property); a config written by another tool may still hold it
        kwargs.pop("stage_names", None)
        self.set_output_features_output_indices(
            out_features=kwargs.pop("out_features", None), out_indices=kwargs.pop("out_indices", None)
        )
        super().__post_init__(**kwargs)
        self._drop_registered_pipelines()

    def _drop_registered_pipelines(self) -> None:
        # A saved folder's `custom_pipelines` entry makes `pipeline(task, model=folder)` demand trust_remote_code for
        # that task. Where a CAST class serves the task in this process (`import modeling_cast` registers
        # "hierarchical-segmentation" and CAST-aware "image-segmentation"/"image-classification"), the entry only
        # repeats it: it is dropped so the registered class serves. Entries for tasks that transformers' own classes
        # serve are kept: remote code then runs the CAST versions (16-bit files keep their depth).
        custom_pipelines = getattr(self, "custom_pipelines", None)
        if not custom_pipelines:
            return
        from transformers.pipelines import PIPELINE_REGISTRY

        registered = PIPELINE_REGISTRY.supported_tasks
        kept = {
            task: info
            for task, info in custom_pipelines.items()
            # transformers' built-in entries name their class as a dotted string; CAST's are classes with the flag
            if not getattr(registered.get(task, {}).get("impl"), "serves_cast_models", False)
        }
        if kept:
            self.custom_pipelines = kept
        else:
            del self.custom_pipelines

    def __setattr__(self, name, value):
        # Whoever sets `id2label` (from_pretrained, the `num_labels` setter, a user), segment label ids keep names.
        if name == "id2label" and isinstance(value, dict) and not isinstance(value, CastLabelNames):
            value = CastLabelNames(value)
        super().__setattr__(name, value)

    @property
    def num_hidden_layers(self) -> int:
        """Total number of transformer blocks (derived from `depths`)."""
        return sum(self.depths)

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def stage_names(self) -> list[str]:
        """The backbone stages (transformers' convention): `"stem"` (the superpixel tokens) and `"stage1"` ...
        `"stageN"` (derived from `depths`, so never stored)."""
        return ["stem"] + [f"stage{index}" for index in range(1, self.num_stages + 1)]

    def validate_architecture(self) -> None:
        """Part of `@strict`-powered validation: the values that shape the model's modules and tokens.

        Field types are checked here only for the fields whose misuse would otherwise fail obscurely: @strict's own
        per-field type checks need evaluated annotations, and this module's are strings
        (`from __future__ import annotations`), so @strict checks no field types of this class.
        """
        super().validate_architecture()
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"`{name}` must be an int, got {value!r} ({type(value).__name__})")
        if not isinstance(self.reshape_hidden_states, bool):
            raise TypeError(f"`reshape_hidden_states` must be a bool, got {self.reshape_hidden_states!r}")
        _check_int_list("depths", self.depths, minimum=1)
        _check_int_list("num_segments", self.num_segments, minimum=1)
        if len(self.depths) != len(self.num_segments):
            raise ValueError(
                f"`depths` and `num_segments` must have one entry per stage, got {len(self.depths)} depths "
                f"{self.depths} and {len(self.num_segments)} segment counts {self.num_segments}"
            )
        if any(fine <= coarse for fine, coarse in zip(self.num_segments, self.num_segments[1:])):
            raise ValueError(f"`num_segments` must be strictly decreasing, got {self.num_segments}")
        positive_ints = ("hidden_size", "num_attention_heads", "pooling_num_attention_heads", "num_channels")
        for name in (*positive_ints, "max_superpixel_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.num_segments[0] > self.max_superpixel_tokens:
            # Allowed (an image with fewer superpixels than segments gets empty segments, and tests build such
            # models on purpose), but for a recipe it is a sizing mistake: e.g. the official segmentation fine-tuning
            # (320 segments) on the default 196-token budget leaves at least 124 first-level segments empty for every
            # image, silently.
            logger.warning_once(  # (the validators run twice per config)
                f"`num_segments[0]`={self.num_segments[0]} is more than the static token budget "
                f"`max_superpixel_tokens`={self.max_superpixel_tokens}: at least "
                f"{self.num_segments[0] - self.max_superpixel_tokens} first-level segments stay empty for every image. "
                f"Give the model at least as many tokens as segments (and the image processor at least as many "
                f"superpixels), e.g. `max_superpixel_tokens=superpixel_token_budget(n_segments, image_size)`."
            )
        for name, divisor in (
            ("num_attention_heads", self.num_attention_heads),
            ("pooling_num_attention_heads", self.pooling_num_attention_heads),
        ):
            if self.hidden_size % divisor:
                raise ValueError(
                    f"`hidden_size` must be divisible by `{name}` ({divisor}), got hidden_size={self.hidden_size}"
                )
        if self.hidden_size % 8:
            raise ValueError(
                f"`hidden_size` must be divisible by 8 (the stem widths are hidden_size/8, /4, /2), "
                f"got {self.hidden_size}"
            )
        valid_patch_sizes = [2**i for i in range(1, _STEM_CONVOLUTIONS + 1)]
        if self.patch_size not in valid_patch_sizes:
            raise ValueError(f"`patch_size` must be one of {valid_patch_sizes} (stem stride), got {self.patch_size}")
        sizes = [self.image_size] * 2 if isinstance(self.image_size, int) else self.image_size
        if len(sizes) != 2 or any(s < self.patch_size or s % self.patch_size for s in sizes):
            raise ValueError(
                f"`image_size` must be an int or (height, width), each a positive multiple of patch_size="
                f"{self.patch_size}, got {self.image_size}"
            )
        for name, allowed in (
            ("position_embedding_type", _POSITION_EMBEDDING_TYPES),
            ("token_pooling_resolution", _TOKEN_POOLING_RESOLUTIONS),
            ("hidden_act", _SUPPORTED_ACTIVATIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}")

    def validate_hyperparameters(self) -> None:
        """Part of `@strict`-powered validation: ratios, epsilons, temperatures, dropouts and MoCo settings."""
        for name in ("pretraining_projection_dim", "pretraining_hidden_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.pretraining_momentum <= 1:
            raise ValueError(f"`pretraining_momentum` must be in [0, 1], got {self.pretraining_momentum}")
        for name in ("mlp_ratio", "pooling_mlp_ratio", "layer_norm_eps", "pooling_layer_norm_eps",
                     "batch_norm_eps", "assignment_temperature", "initializer_range", "pretraining_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "pooling_dropout_prob", "fusion_dropout_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)}")
        self.validate_superpixel_settings()

    def validate_superpixel_settings(self) -> None:
        """Part of `@strict`-powered validation: the settings of the superpixels the model computes itself."""
        for name, minimum in (("superpixel_n_segments", 1), ("superpixel_iterations", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}")
            if value < minimum:
                raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
        for name in ("superpixel_compactness", "superpixel_rescale_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"`{name}` must be a number, got {type(value).__name__} {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"`{name}` must be a positive finite number, got {value}")
        for name in ("superpixel_image_mean", "superpixel_image_std"):
            values = getattr(self, name)
            if not isinstance(values, list) or not all(
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                for value in values
            ):
                raise TypeError(f"`{name}` must be a list of finite numbers, got {values!r}")
            if len(values) != self.num_channels:
                raise ValueError(
                    f"`{name}` must have one value per channel (num_channels={self.num_channels}), got {values}"
                )
        if min(self.superpixel_image_std) <= 0:
            raise ValueError(f"`superpixel_image_std` must be positive, got {self.superpixel_image_std}")

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "CastConfig":
        """Build the configuration of a released architecture (`cast-small`, `cast-small-deep`, `cast-base`,
        `cast-base-deep`); keyword arguments override preset values."""
        if name not in CAST_PRESETS:
            raise ValueError(f"`name` must be one of {sorted(CAST_PRESETS)}, got {name!r}")
        return cls(**{**CAST_PRESETS[name], **kwargs})


def _check_int_list(name: str, values: list, minimum: int) -> None:
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"`{name}` must be a non-empty list of ints, got {values!r}")
    if min(values) < minimum:
        raise ValueError(f"every entry of `{name}` must be >= {minimum}, got {values}")
