# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""PyTorch CAST model.

CAST (Ke, Mo, Yu, ICLR 2024) is a Vision Transformer whose tokens are superpixels. After the transformer blocks
of each stage, graph pooling groups the tokens into fewer segments; composing the groupings across stages gives
a hierarchical segmentation of the image.

Shape legend for comments: B = batch, N = tokens of a stage (class token excluded), K = segments kept by that
stage's pooling, C = hidden size, L = levels (stages), H/W = input pixels, h/w = stem grid (H / patch_size).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as torch_module

from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.dynamic_module_utils import custom_object_save
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput, SemanticSegmenterOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple, is_tracing, logging
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .adaptation_cast import AdaptationOutput, adapt_to_images
from .configuration_cast import CastConfig
from .tensor_slic_cast import slic_grid, torch_slic
from .graph_pooling_cast import (
    PackedRows,
    SuperpixelTokens,
    compose_hierarchy,
    compose_token_labels,
    farthest_point_sampling,
    gather_rows,
    map_superpixels_to_tokens,
    segment_mean,
)

logger = logging.get_logger(__name__)

__all__ = [
    "CastPreTrainedModel",
    "CastModel",
    "CastForImageClassification",
    "CastForSemanticSegmentation",
    "CastForImageSegmentation",
    "CastModelOutput",
    "CastImageClassifierOutput",
    "CastSemanticSegmenterOutput",
]

# Auto classes written into every saved config, so that a saved folder loads each CAST class with
# `trust_remote_code=True` where this package is not installed (the flat code files travel with it).
CAST_AUTO_MAP = {
    "AutoConfig": "configuration_cast.CastConfig",
    "AutoModel": "modeling_cast.CastModel",
    "AutoModelForImageClassification": "modeling_cast.CastForImageClassification",
    "AutoModelForSemanticSegmentation": "modeling_cast.CastForSemanticSegmentation",
    # the image-segmentation pipeline loads through this class first: it picks the checkpoint's own architecture
    "AutoModelForImageSegmentation": "modeling_cast.CastForImageSegmentation",
    # transformers' dense heads (UperNet, DPT, ...) build their backbone through this class
    "AutoBackbone": "backbone_cast.CastBackbone",
}


def cast_auto_map(auto_map: dict[str, str] | None = None) -> dict[str, str]:
    """The `auto_map` of a saved CAST folder: every CAST auto class, with the entries `auto_map` already holds
    taking precedence (those transformers writes for the saved class, e.g. `AutoModelForPreTraining`, or a Hub
    repository's prefixed ones)."""
    return {**CAST_AUTO_MAP, **(auto_map or {})}


# transformers' `custom_pipelines` entry (the format `Pipeline.save_pretrained` writes): a saved folder carries the
# "hierarchical-segmentation" pipeline's code, so `pipeline("hierarchical-segmentation", model=folder,
# trust_remote_code=True)` works where this package is not installed.
# The "image-segmentation" and "image-classification" entries name the CAST versions of transformers' pipelines, which
# keep the bit depth of 16-bit files; where `import modeling_cast` already serves those tasks the config drops them.
CAST_CUSTOM_PIPELINES = {
    "hierarchical-segmentation": {
        "impl": "pipeline_cast.HierarchicalSegmentationPipeline",
        "pt": ["AutoModelForImageSegmentation"],
        "type": "image",
    },
    "image-segmentation": {
        "impl": "pipeline_cast.CastImageSegmentationPipeline",
        "pt": ["AutoModelForImageSegmentation", "AutoModelForSemanticSegmentation"],
        "type": "multimodal",
    },
    "image-classification": {
        "impl": "pipeline_cast.CastImageClassificationPipeline",
        "pt": ["AutoModelForImageClassification"],
        "type": "image",
    },
}


def _drop_false_unsupported_model_error(record) -> bool:
    # `pipeline("image-segmentation")` checks the model's class name against transformers' static name tables, which
    # no registered or remote-code model can join, and logs "The model 'CastModel' is not supported for
    # image-segmentation" although it runs. Only that message, for CAST classes, is dropped; it lives here because
    # remote code imports this file, not the package.
    return not str(record.msg).startswith("The model 'Cast")


logging.get_logger("transformers.pipelines.base").addFilter(_drop_false_unsupported_model_error)


# The official class token is initialized from N(0, 1e-6^2) (MoCo-v3 ViT recipe, kept by CAST).
_CLASS_TOKEN_INIT_STD = 1e-6
# The learned position table of the official DeiT variant starts from a truncated N(0, 0.02^2) (timm's default).
_LEARNED_POSITION_INIT_STD = 0.02


@dataclass
class _CastHierarchyFields:
    """The pixel hierarchy fields of CAST's outputs, declared once. Mixed in *before* a transformers output class,
    they follow that class's fields (a dataclass orders fields from the last base to the first)."""

    hierarchy: torch.LongTensor | None = None
    hierarchy_scores: torch.FloatTensor | None = None


@dataclass
class _CastSegmentationFields(_CastHierarchyFields):
    """The hierarchy fields followed by the per-level grouping fields."""

    assignment_logits: tuple[torch.FloatTensor, ...] | None = None
    seed_indices: tuple[torch.LongTensor, ...] | None = None


@dataclass
class CastModelOutput(_CastSegmentationFields, BaseModelOutputWithPooling):
    r"""
    Output of [`CastModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1 + num_segments[-2], hidden_size)`):
            Class token followed by the tokens of the last stage, after its transformer blocks and the final
            LayerNorm. (With a single stage: the superpixel tokens.)
        pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The class token after the final LayerNorm: the image feature that the classifier reads.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            Input of the first transformer block and output of every block, each of shape
            `(batch_size, 1 + num_tokens, hidden_size)`; the token count shrinks from stage to stage. In the first
            stage it is the batch's superpixel token count in an eager forward (padding rows that every image would
            mask are not computed; those beyond an image's own count carry no meaning), and the static budget
            `config.max_superpixel_tokens` in compiled, exported or traced graphs.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True` (eager attention)):
            Attention probabilities of every transformer block, `(batch_size, num_heads, 1 + num_tokens, 1 + num_tokens)`.
        hierarchy (`torch.LongTensor` of shape `(batch_size, num_levels, height, width)`, *optional*, returned when
            `output_hierarchy=True` (the default in eval mode)):
            Hierarchical segmentation: the segment id of every input pixel at each level, finest level first
            (level `l` has ids in `[0, num_segments[l])`). Every segment of a level lies inside exactly one segment
            of the next coarser level.
        hierarchy_scores (`torch.FloatTensor` of shape `(batch_size, num_levels, height, width)`, *optional*, returned
            with `hierarchy`):
            Confidence of `hierarchy`: for every pixel and level, the soft-assignment probability with which the
            pixel's superpixel token (finest level) or its segment of the level below (coarser levels) was
            assigned to its segment. Averaged over a segment's pixels it scores the segment.
        assignment_logits (`tuple(torch.FloatTensor)`, *optional*, returned when `output_assignments=True`):
            One tensor per level of shape `(batch_size, num_tokens_l, num_segments[l])`: the grouping logits
            (cosine similarity / `assignment_temperature`) of each token of level `l` to the segments of level
            `l + 1`, in at least float32. At the first level, `num_tokens_l` is the static token budget
            `config.max_superpixel_tokens`; rows beyond an image's own count are padding and set to 0. An image
            with fewer distinct tokens than segments has empty segments, whose columns hold the dtype's lowest value
            (and whose rows, one level up, are 0).
        seed_indices (`tuple(torch.LongTensor)`, *optional*, returned when `output_assignments=True`):
            One tensor per level of shape `(batch_size, num_segments[l])`: the token indices chosen by farthest
            point sampling as segment seeds.
    """


@dataclass
class CastImageClassifierOutput(_CastSegmentationFields, ImageClassifierOutput):
    r"""
    Output of [`CastForImageClassification`]: the fields of transformers' [`ImageClassifierOutput`], then the
    segmentation that [`CastModelOutput`] documents: `hierarchy` and `hierarchy_scores` (when `output_hierarchy=True`,
    the default in eval mode), `assignment_logits` and `seed_indices` (when `output_assignments=True`).

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `labels` is provided):
            Classification (or regression if `config.num_labels == 1`) loss.
        logits (`torch.FloatTensor` of shape `(batch_size, config.num_labels)`):
            Classification scores (before softmax).
    """


@dataclass
class CastSemanticSegmenterOutput(_CastHierarchyFields, SemanticSegmenterOutput):
    r"""
    Output of [`CastForSemanticSegmentation`]: the fields of transformers' [`SemanticSegmenterOutput`], then
    `hierarchy` and `hierarchy_scores` (see [`CastModelOutput`]; when `output_hierarchy=True`, the default in eval
    mode).

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `labels` is provided):
            Cross-entropy over the labeled pixels (label `config.semantic_loss_ignore_index` is ignored).
        logits (`torch.FloatTensor` of shape `(batch_size, config.num_labels, height, width)`):
            Class scores at the input resolution: each superpixel's scores painted onto its pixels, so predictions
            follow superpixel boundaries exactly.
    """


@dataclass
class CastEncoding:
    """Everything a head may read from the backbone (internal): each stage's `[class token, tokens]` after its
    blocks, each stage's grouping, the superpixel-to-token mapping, the pixel hierarchy when asked, and the
    `[class token, superpixel tokens]` that enter the first stage."""

    stage_hidden_states: list[torch.FloatTensor]
    groupings: list["CastGroupingOutput"]
    superpixel_tokens: SuperpixelTokens
    hierarchy: torch.LongTensor | None = None
    hierarchy_scores: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None


@dataclass
class CastGroupingOutput:
    """Result of one graph pooling step (internal)."""

    assignment_logits: torch.FloatTensor
    seed_indices: torch.LongTensor
    segment_tokens: torch.FloatTensor | None = None
    class_token: torch.FloatTensor | None = None
    segment_mask: torch.BoolTensor | None = None


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    attn_weights = torch.matmul(query, key.transpose(-2, -1)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attn_weights = attn_weights.masked_fill(~attention_mask, torch.finfo(attn_weights.dtype).min)
        else:
            attn_weights = attn_weights + attention_mask
    # softmax in at least float32 (half precision overflows), without degrading float64 runs
    softmax_dtype = torch.promote_types(query.dtype, torch.float32)
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=softmax_dtype).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class CastAttention(nn.Module):
    """Multi-head self-attention with a fused query/key/value projection (timm layout: q, k, v, heads contiguous)."""

    def __init__(self, config: CastConfig, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = config.hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.dropout_prob = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.proj_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        packed_rows: PackedRows | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`hidden_states` (B, N, C), or with `packed_rows` the real rows (M, C) of such a batch: the projections
        then run on those rows only and the output is packed alike; the attention itself runs padded."""
        qkv = self.qkv(hidden_states)
        if packed_rows is not None:
            qkv = packed_rows.unpack(qkv)
        batch_size, num_tokens = qkv.shape[:2]
        hidden_size = qkv.shape[-1] // 3
        qkv = qkv.view(batch_size, num_tokens, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout_prob if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(batch_size, num_tokens, hidden_size)
        if packed_rows is not None:
            attn_output = packed_rows.pack(attn_output)
        return self.proj_dropout(self.proj(attn_output)), attn_weights


class CastMLP(nn.Module):
    def __init__(self, config: CastConfig):
        super().__init__()
        intermediate_size = int(config.hidden_size * config.mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.activation(self.fc1(hidden_states)))
        return self.dropout(self.fc2(hidden_states))


class CastLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: CastConfig):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = CastAttention(config, config.num_attention_heads, config.qkv_bias)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CastMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        packed_rows: PackedRows | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        """`hidden_states` (B, N, C) in and out; with `packed_rows`, everything but the attention itself runs on the
        real rows only (padding rows come out zero). Padded in and out, although the next block packs the same rows
        again: each block's output is what `output_hidden_states` records."""
        if packed_rows is not None:
            rows = packed_rows.pack(hidden_states)
            attention_output, _ = self.attention(self.layernorm_before(rows), attention_mask, packed_rows, **kwargs)
            rows = rows + attention_output
            return packed_rows.unpack(rows + self.mlp(self.layernorm_after(rows)))
        attention_output, _ = self.attention(self.layernorm_before(hidden_states), attention_mask, **kwargs)
        hidden_states = hidden_states + attention_output
        return hidden_states + self.mlp(self.layernorm_after(hidden_states))


def _global_call_hooks_registered() -> bool:
    """Whether hooks registered for every module's call are set (`register_module_forward_hook`,
    `register_module_forward_pre_hook`, `register_module_full_backward_hook` and its pre-hook)."""
    names = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
             "_global_backward_pre_hooks")
    return any(getattr(torch_module, name, None) for name in names)


def _runs_plain(module: nn.Module, module_class: type[nn.Module]) -> bool:
    """Whether calling `module` would only run `module_class.forward`: its exact class, no forward set on the
    instance (as Accelerate's hooks do), and no hooks that the call would run: neither its own forward and backward
    hooks nor the global ones (`torch.nn.modules.module.register_module_forward_hook` and the like)."""
    return (
        type(module) is module_class
        and "forward" not in module.__dict__
        and not (
            module._forward_hooks
            or module._forward_pre_hooks
            or module._backward_hooks
            or module._backward_pre_hooks
            or _global_call_hooks_registered()
        )
    )


class CastConvStem(nn.Module):
    """Convolutional stem: four 3x3 conv-BN-ReLU (widths C/8, C/4, C/2, C; the first log2(patch_size) with stride
    2) and a 1x1 projection with bias."""

    def __init__(self, config: CastConfig):
        super().__init__()
        num_strided = int(math.log2(config.patch_size))
        widths = [config.num_channels] + [config.hidden_size // factor for factor in (8, 4, 2, 1)]
        self.layers = nn.ModuleList()
        for index, (in_channels, out_channels) in enumerate(zip(widths, widths[1:])):
            stride = 2 if index < num_strided else 1
            self.layers.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(out_channels, eps=config.batch_norm_eps),
                    nn.ReLU(inplace=True),
                )
            )
        self.projection = nn.Conv2d(config.hidden_size, config.hidden_size, kernel_size=1)
        # (cache key, [(weight, bias) per layer]): the eval-mode convolutions with their BatchNorms folded in
        self._folded_layers = None

    def train(self, mode: bool = True) -> "CastConvStem":
        self._folded_layers = None  # (rebuilt on the next eval-mode forward, from the weights as they are then)
        return super().train(mode)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The projected stem feature map, (B, C, h, w)."""
        return self.projection(self.features(pixel_values))

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The feature map before the 1x1 projection, (B, C, h, w). [`CastEmbeddings`] averages it over each
        superpixel first and projects the averages (the projection is affine, so the order does not change the
        result, and it then runs on the tokens rather than on every grid cell)."""
        # channels-last runs the convolutions markedly faster on CPU (oneDNN) and GPU (cuDNN), and makes the
        # later (B, C, h, w) -> (B, h*w, C) flattening a free view
        hidden_states = pixel_values.contiguous(memory_format=torch.channels_last)
        folded = self._eval_folded_layers(pixel_values)
        if folded is not None:
            for layer, (weight, bias) in zip(self.layers, folded):
                convolution = layer[0]
                hidden_states = F.conv2d(hidden_states, weight, bias, convolution.stride, convolution.padding).relu_()
            return hidden_states
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states

    def _eval_folded_layers(self, pixel_values: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """In eval mode a BatchNorm is a fixed per-channel affine map, which folds into the convolution before it:
        each layer is then one convolution and a ReLU, without the BatchNorm's pass over the feature map (about a
        quarter of the stem's time on CPU at batch 8). The folded weights are cached; the cache is dropped whenever
        the mode is set (`train()`, `eval()`) and rebuilt when a weight or statistic changes (an in-place update bumps
        a tensor's version, a training-mode BatchNorm forward counts `num_batches_tracked` up, `to()` gives new
        storage). In-place edits through `.data` bump no version: call `eval()` after them. None, for the layers as
        they are, where folding would be wrong or lose something: in training mode (batch statistics), when the
        stem's parameters need gradients, in traced, compiled or exported graphs (which must not keep Python state;
        the compilers fuse the BatchNorm themselves), and when a layer's modules are not the plain PyTorch ones
        (wrapped by PEFT or Accelerate, given a forward of their own, or watched by hooks, which must run)."""
        if self.training or is_tracing(pixel_values):
            return None
        tensors = []
        for convolution, norm, _ in self.layers:
            if not (_runs_plain(convolution, nn.Conv2d) and _runs_plain(norm, nn.BatchNorm2d)):
                return None
            if norm.running_mean is None:  # (no running statistics: BatchNorm normalizes with the batch's own)
                return None
            tensors += [convolution.weight, norm.weight, norm.bias, norm.running_mean, norm.running_var]
            tensors.append(norm.num_batches_tracked)
        # (inference tensors have no version counter to key a cache by; meta tensors, e.g. weights offloaded by
        # Accelerate between calls, have no values to fold)
        if any(tensor.is_inference() or tensor.is_meta for tensor in tensors):
            return None
        if torch.is_grad_enabled() and any(tensor.requires_grad for tensor in tensors):
            return None
        key = tuple((tensor.data_ptr(), tensor._version, tensor.dtype, tensor.device) for tensor in tensors)
        if self._folded_layers is None or self._folded_layers[0] != key:
            # ordinary tensors even when called under `torch.inference_mode()`, so that later calls with gradients
            # enabled for the inputs may use them
            with torch.inference_mode(False), torch.no_grad():
                folded = []
                for convolution, norm, _ in self.layers:
                    scale = norm.weight.float() * torch.rsqrt(norm.running_var.float() + norm.eps)
                    weight = convolution.weight.float() * scale.view(-1, 1, 1, 1)
                    bias = norm.bias.float() - norm.running_mean.float() * scale
                    # (weights in channels-last too: oneDNN otherwise reorders them on every call, ~2 ms at batch 1)
                    weight = weight.to(convolution.weight.dtype).contiguous(memory_format=torch.channels_last)
                    folded.append((weight, bias.to(convolution.weight.dtype)))
            self._folded_layers = (key, folded)
        return self._folded_layers[1]


_SINCOS_TEMPERATURE = 10000.0


def sincos_position_embedding(height: int, width: int, hidden_size: int, device=None) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding of an (height, width) grid in raster order, (height * width, C), float32.

    Reproduces the official layout literally: the row of flat cell index m = r * width + c encodes
    a = m // height and b = m % height ([sin(a w), cos(a w), sin(b w), cos(b w)], w_d = 10000^(-d / (C/4))).
    For a square grid that is (row, column); for other grids it is the official (scrambled) code, which
    converted checkpoints were trained with.
    """
    quarter = hidden_size // 4
    omega = torch.arange(quarter, dtype=torch.float32, device=device) / quarter
    omega = 1.0 / (_SINCOS_TEMPERATURE**omega)
    flat_index = torch.arange(height * width, device=device)
    first = torch.outer((flat_index // height).to(torch.float32), omega)
    second = torch.outer((flat_index % height).to(torch.float32), omega)
    return torch.cat([first.sin(), first.cos(), second.sin(), second.cos()], dim=1)


class CastEmbeddings(nn.Module):
    """The class token and the superpixel tokens: stem features plus a position embedding, averaged over each
    superpixel's cells of the stem grid (or its pixels, with `token_pooling_resolution="pixel"`)."""

    def __init__(self, config: CastConfig):
        super().__init__()
        self.pixel_pooling = config.token_pooling_resolution == "pixel"
        # size of a pooling cell in pixels: a stem grid cell, or a pixel of the superpixel map
        self.pooling_stride = 1 if self.pixel_pooling else config.patch_size
        self.patch_embeddings = CastConvStem(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        image_size = config.image_size if isinstance(config.image_size, list) else [config.image_size] * 2
        self.training_grid = tuple(size // config.patch_size for size in image_size)
        self.learned_positions = config.position_embedding_type == "learned"
        if self.learned_positions:
            # official DeiT variant: a learned table of the training grid, its first row the class token's
            num_rows = 1 + self.training_grid[0] * self.training_grid[1]
            self.position_embeddings = nn.Parameter(torch.zeros(num_rows, config.hidden_size))
        else:
            # Fixed sin-cos table of the training grid, kept as a (frozen) buffer so that converted checkpoints use
            # exactly the table the official model was run with; other grids get the table computed for them.
            table = sincos_position_embedding(*self.training_grid, config.hidden_size)
            self.register_buffer("position_embeddings", table, persistent=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def map_superpixels(
        self, superpixels: torch.Tensor, num_tokens: int, with_pixel_tokens: bool = False
    ) -> SuperpixelTokens:
        """The token of every pooling cell (and, if asked, of every pixel) of `superpixels` (B, H, W), int64, with
        `num_tokens` token rows per image."""
        return map_superpixels_to_tokens(
            superpixels, self.pooling_stride, num_tokens, with_pixel_tokens=with_pixel_tokens
        )

    def position_embedding(self, height: int, width: int, resize_training_table: bool = False) -> torch.Tensor:
        """Position embedding of a (height, width) grid in raster order, (height * width, C).

        The training grid uses the stored table. Other stem grids get the sin-cos table computed for them (or, for a
        learned table, the table resized bicubically). `resize_training_table` always resizes the training table
        bicubically, as the official segmentation variant does for pixel-resolution pooling.
        """
        table = self.position_embeddings[1:] if self.learned_positions else self.position_embeddings
        if (height, width) == self.training_grid:
            return table
        if self.learned_positions or resize_training_table:
            grid = table.reshape(1, *self.training_grid, -1).permute(0, 3, 1, 2)
            resized = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
            return resized.permute(0, 2, 3, 1).reshape(height * width, -1)
        return sincos_position_embedding(height, width, table.shape[-1], device=table.device)

    def forward(self, pixel_values: torch.Tensor, superpixel_tokens: SuperpixelTokens) -> torch.Tensor:
        """The class token followed by the superpixel tokens of `superpixel_tokens`' mapping, (B, 1 + N, C)."""
        stem = self.patch_embeddings
        # Like ViT and DINOv2, accept float32 processor output in a half-precision model: cast to the stem's dtype.
        features = stem.features(pixel_values.to(stem.projection.weight.dtype))
        if self.pixel_pooling:
            # official segmentation variant: average at the superpixel map's resolution, so no superpixel vanishes
            height, width = superpixel_tokens.pooling_ids.shape[-2:]
            features = F.interpolate(features, size=(height, width), mode="bilinear", align_corners=False)
            position = self.position_embedding(height, width, resize_training_table=True)
        else:
            position = self.position_embedding(*features.shape[-2:])
        # A token is the mean of (projected stem features + position) over its cells. The 1x1 projection is affine
        # and the bilinear resize and the mean are averages, so the token is the projection of the mean features
        # plus the mean position: the projection runs on N tokens instead of h * w cells (a quarter as many with
        # 196 superpixels on a 28x28 grid). Tokens without cells (empty ids, padding) stay zero, as the mean of
        # nothing would be.
        pooling_ids = superpixel_tokens.pooling_ids.flatten(1)
        cell_counts = superpixel_tokens.cell_counts
        mean_features = segment_mean(features.flatten(2).transpose(1, 2), pooling_ids, cell_counts)
        position = position.to(features.dtype).expand(features.shape[0], -1, -1)
        mean_position = segment_mean(position, pooling_ids, cell_counts)
        projection = stem.projection
        projected = F.linear(mean_features, projection.weight.flatten(1), projection.bias)
        tokens = (projected + mean_position) * (cell_counts > 0).unsqueeze(-1).to(projected.dtype)
        tokens = self.dropout(tokens)
        class_token = self.cls_token
        if self.learned_positions:
            class_token = class_token + self.position_embeddings[:1]
        return torch.cat([class_token.expand(features.shape[0], -1, -1), tokens], dim=1)


class CastGraphPooling(nn.Module):
    """Graph pooling: groups N tokens into K segments around farthest-point-sampled seeds.

    A centering block (LayerNorm, attention, subtraction of the token mean, learned bias) makes grouping features;
    their cosine similarity to the seeds' features, divided by a temperature, gives the assignment logits. If
    `pool_features`, the tokens (after a LayerNorm-Linear-GELU feature MLP) are averaged with the soft assignment
    and projected back (LayerNorm-Linear) into K segment tokens, with a residual from the seed tokens; the class
    token goes through the same MLPs with its own residual.
    """

    def __init__(self, config: CastConfig, num_segments: int, pool_features: bool):
        super().__init__()
        self.num_segments = num_segments
        self.assignment_scale = 1.0 / config.assignment_temperature
        self.grouping_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.grouping_attention = CastAttention(config, config.pooling_num_attention_heads, qkv_bias=True)
        self.centering_bias = nn.Parameter(torch.zeros(config.hidden_size))
        self.pool_features = pool_features
        if pool_features:
            pooled_size = int(config.hidden_size * config.pooling_mlp_ratio)
            self.feature_norm = nn.LayerNorm(config.hidden_size, eps=config.pooling_layer_norm_eps)
            self.feature_projection = nn.Linear(config.hidden_size, pooled_size)
            self.activation = ACT2FN[config.hidden_act]
            self.dropout = nn.Dropout(config.pooling_dropout_prob)
            self.output_norm = nn.LayerNorm(pooled_size, eps=config.pooling_layer_norm_eps)
            self.output_projection = nn.Linear(pooled_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        token_mask: torch.Tensor,
        seed_candidate_mask: torch.Tensor,
        attention_mask: torch.Tensor | None,
        packed_rows: PackedRows | None = None,
        packed_tokens: PackedRows | None = None,
    ) -> CastGroupingOutput:
        """`hidden_states` (B, 1 + N, C): the class token followed by the tokens to group; `token_mask` (B, N): True
        for an image's own tokens; `seed_candidate_mask` (B, N): tokens that may become
        seeds; `attention_mask`: the attention-implementation form of `token_mask`; `packed_rows`, `packed_tokens`:
        the real rows of `hidden_states` and of its tokens, where the row-wise layers then run (see [`CastStage`]).

        Masks are applied whether or not they hold a False entry: a branch on their values would need a host read
        and would give a traced graph that holds only one of the two paths."""
        class_token, tokens = hidden_states[:, :1], hidden_states[:, 1:]
        # An image with fewer distinct tokens than segments gets empty segments (`segment_mask` False): nothing is
        # assigned to them and the next stage treats them as padding. (Never the case where the official code runs.)
        seed_indices, segment_mask = farthest_point_sampling(tokens, seed_candidate_mask, self.num_segments)

        if packed_tokens is None:
            attention_output, _ = self.grouping_attention(self.grouping_norm(tokens), attention_mask)
        else:
            attention_output, _ = self.grouping_attention(
                self.grouping_norm(packed_tokens.pack(tokens)), attention_mask, packed_tokens
            )
            attention_output = packed_tokens.unpack(attention_output)
        grouping = tokens + attention_output
        # Grouping in at least float32: cosine similarities / 0.2 in half precision move the argmax of close
        # segments, i.e. the hierarchy itself.
        grouping = grouping.to(torch.promote_types(grouping.dtype, torch.float32))
        weights = token_mask.unsqueeze(-1).to(grouping.dtype)
        token_mean = (grouping * weights).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True).clamp(min=1)
        grouping = grouping - token_mean + self.centering_bias

        seed_grouping = gather_rows(grouping, seed_indices)
        assignment_logits = self.assignment_scale * torch.matmul(
            F.normalize(grouping, dim=-1), F.normalize(seed_grouping, dim=-1).transpose(1, 2)
        )  # (B, N, K)
        empty_segment = ~segment_mask.unsqueeze(1)
        assignment_logits = assignment_logits.masked_fill(empty_segment, torch.finfo(assignment_logits.dtype).min)
        assignment_logits = assignment_logits.masked_fill(~token_mask.unsqueeze(-1), 0.0)
        if not self.pool_features:
            return CastGroupingOutput(
                assignment_logits=assignment_logits, seed_indices=seed_indices, segment_mask=segment_mask
            )

        assignment = assignment_logits.softmax(dim=-1) * weights
        # (the class token and the tokens together, as they already lie in `hidden_states`: no concatenated copy)
        rows = hidden_states if packed_rows is None else packed_rows.pack(hidden_states)
        pooled = self.dropout(self.activation(self.feature_projection(self.feature_norm(rows))))
        if packed_rows is not None:
            pooled = packed_rows.unpack(pooled)
        pooled_class, pooled_tokens = pooled[:, :1], pooled[:, 1:]
        assigned = assignment.sum(dim=1).unsqueeze(-1).clamp(min=torch.finfo(assignment.dtype).tiny)  # 0: empty
        segments = torch.matmul(assignment.transpose(1, 2), pooled_tokens.to(assignment.dtype)) / assigned
        segments = segments.to(pooled_tokens.dtype)
        projected = self.output_projection(self.output_norm(torch.cat([pooled_class, segments], 1)))
        segment_tokens = projected[:, 1:] + gather_rows(tokens, seed_indices)
        return CastGroupingOutput(
            assignment_logits=assignment_logits,
            seed_indices=seed_indices,
            segment_tokens=segment_tokens,
            class_token=projected[:, :1] + class_token,
            segment_mask=segment_mask,
        )


def _attention_mask(config: CastConfig, hidden_states: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """The attention-implementation form of `token_mask` (B, N), True for real tokens: keys that are False are
    masked for every query.

    Always a mask: transformers would otherwise read the mask back to the host to see whether it can be dropped (one
    synchronization per call, and a data-dependent branch when tracing). For sdpa and eager attention (which both
    take a boolean mask, True = attend) it is the (B, 1, 1, N) view that every query and head broadcasts, the same
    values as `create_bidirectional_mask`'s (B, 1, N, N) mask at a fraction of the cost; other implementations get
    transformers' own format.
    """
    if config._attn_implementation in ("sdpa", "eager"):
        return token_mask[:, None, None, :]
    return create_bidirectional_mask(config, hidden_states, token_mask, allow_is_bidirectional_skip=False)


# Packing the real rows costs a gather and a scatter per block; below this share of padding rows it saves less.
_MIN_PADDING_TO_PACK = 0.05


class CastStage(nn.Module):
    """Transformer blocks followed by graph pooling. Padding tokens (beyond an image's own superpixel count at the
    first stage, empty segments later) are masked out of attention and pooling."""

    def __init__(self, config: CastConfig, stage_index: int, pool_features: bool):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList([CastLayer(config) for _ in range(config.depths[stage_index])])
        self.pooling = CastGraphPooling(config, config.num_segments[stage_index], pool_features=pool_features)

    def forward(
        self,
        hidden_states: torch.Tensor,
        token_mask: torch.Tensor,
        seed_candidate_mask: torch.Tensor,
        token_counts: list[int] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, CastGroupingOutput]:
        """`hidden_states` = `[class token, tokens]` (B, 1 + N, C) after the blocks, and the grouping of the tokens.

        `token_mask` (B, N): True for real tokens; `seed_candidate_mask` (B, N): tokens that may become segment seeds.
        `token_counts`: each image's real tokens (its first entries of `token_mask`), where the eager forward knows
        them on the host (the first stage); if the padding is a sizeable share of the rows, the row-wise layers then
        run on the real rows only ([`PackedRows`]). Padding rows of the output are then zero; no real row changes.
        """
        with_class = F.pad(token_mask, (1, 0), value=True)
        block_mask = _attention_mask(self.config, hidden_states, with_class)
        pooling_mask = _attention_mask(self.config, hidden_states[:, 1:], token_mask)
        packed_rows = packed_tokens = None  # ([class token, tokens] rows; token rows)
        if token_counts is not None and sum(token_counts) <= (1 - _MIN_PADDING_TO_PACK) * token_mask.numel():
            num_tokens, device = token_mask.shape[1], token_mask.device
            packed_rows = PackedRows.from_counts([1 + count for count in token_counts], 1 + num_tokens, device)
            packed_tokens = PackedRows.from_counts(token_counts, num_tokens, device)
        for layer in self.layers:
            hidden_states = layer(hidden_states, block_mask, packed_rows, **kwargs)
        grouping = self.pooling(
            hidden_states, token_mask, seed_candidate_mask, pooling_mask, packed_rows, packed_tokens
        )
        return hidden_states, grouping


class CastEncoder(nn.Module):
    """Stages of transformer blocks, each followed by graph pooling; each stage runs on the previous one's segments.

    The last stage's pooling only yields the coarsest level of the hierarchy unless `pool_last_stage` (the
    segmentation head reads the class token it pools); otherwise its pooled tokens would reach no output.
    """

    def __init__(self, config: CastConfig, pool_last_stage: bool = False):
        super().__init__()
        last = config.num_stages - 1
        self.stages = nn.ModuleList(
            [CastStage(config, index, pool_features=index < last or pool_last_stage) for index in range(last + 1)]
        )

    def forward(
        self,
        embeddings: torch.Tensor,
        superpixel_tokens: SuperpixelTokens,
        token_counts: list[int] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[list[torch.Tensor], list[CastGroupingOutput]]:
        """Runs the stages on the `embeddings` (B, 1 + N, C) of `superpixel_tokens`' mapping. Returns each stage's
        `[class token, tokens]` after its blocks, and each stage's grouping. `token_counts`: each image's token
        count where an eager forward has read them (the first stage may then skip the padding rows)."""
        hidden_states = embeddings
        token_mask = superpixel_tokens.token_mask
        seed_candidate_mask = superpixel_tokens.seed_candidate_mask
        stage_hidden_states, groupings = [], []
        for stage in self.stages:
            stage_output, grouping = stage(hidden_states, token_mask, seed_candidate_mask, token_counts, **kwargs)
            token_counts = None  # (later stages' segment counts are not known on the host)
            stage_hidden_states.append(stage_output)
            groupings.append(grouping)
            if grouping.segment_tokens is not None:
                hidden_states = torch.cat([grouping.class_token, grouping.segment_tokens], dim=1)
                token_mask = seed_candidate_mask = grouping.segment_mask
        return stage_hidden_states, groupings


class CastPreTrainedModel(PreTrainedModel):
    config: CastConfig
    config_class = CastConfig
    base_model_prefix = "cast"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["CastEmbeddings", "CastLayer", "CastGraphPooling"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = True
    _can_record_outputs = {
        "hidden_states": CastLayer,
        # only the transformer blocks' attention, not the one inside graph pooling
        "attentions": OutputRecorder(CastAttention, index=1, layer_name="attention"),
    }

    # code saved with every folder besides the model's own (`import modeling_cast` adds the pipeline class)
    remote_code_companions: tuple[type, ...] = ()

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.config.auto_map = cast_auto_map(getattr(self.config, "auto_map", None))
        # the backbone entry only where its code file is saved too (remote code re-saving a model has no copy)
        if "CastBackbone" not in {type(self).__name__, *(companion.__name__ for companion in self.remote_code_companions)}:
            self.config.auto_map.pop("AutoBackbone", None)
        # the pipeline entry only where its code file is saved too (remote code re-saving a model has no copy)
        if self.remote_code_companions:
            self.config.custom_pipelines = CAST_CUSTOM_PIPELINES
        elif hasattr(self.config, "custom_pipelines"):
            del self.config.custom_pipelines
        os.makedirs(save_directory, exist_ok=True)
        for companion in self.remote_code_companions:  # before the save: `push_to_hub=True` uploads at its end
            custom_object_save(companion, save_directory)
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Official initialization (MoCo-v3 ViT recipe used by CAST); children are visited before parents."""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))  # PyTorch's default Conv2d initialization
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, CastAttention):
            # fused qkv: Xavier bound of each of q, k, v separately
            bound = math.sqrt(6.0 / (module.qkv.out_features / 3 + module.qkv.in_features))
            init.uniform_(module.qkv.weight, -bound, bound)
        elif isinstance(module, CastEmbeddings):
            init.normal_(module.cls_token, std=_CLASS_TOKEN_INIT_STD)
            if module.learned_positions:
                init.trunc_normal_(module.position_embeddings, std=_LEARNED_POSITION_INIT_STD)
            else:
                table = sincos_position_embedding(*module.training_grid, self.config.hidden_size)
                init.copy_(module.position_embeddings, table.to(module.position_embeddings.device))
        elif isinstance(module, CastGraphPooling):
            init.normal_(module.centering_bias, std=self.config.initializer_range)

    def compute_superpixels(self, pixel_values: torch.Tensor) -> torch.LongTensor:
        """
        The superpixels the model computes itself when a forward pass gets no `superpixels`: `torch_slic` on the
        un-normalized `pixel_values` (`superpixel_*` fields of the config), on their device, within the token budget.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                Images as returned by [`CastImageProcessor`] (normalized with `config.superpixel_image_mean` and
                `config.superpixel_image_std`).

        Returns:
            `torch.LongTensor` of shape `(batch_size, height, width)`: ids `0..K-1` per image, with
            `K <= config.max_superpixel_tokens`.
        """
        config = self.config
        height, width = _check_pixel_values(pixel_values, config)
        try:
            slic_grid(height, width, config.superpixel_n_segments, config.max_superpixel_tokens)
        except ValueError as error:
            raise ValueError(
                f"`pixel_values` of height {height} and width {width} are too small for the superpixels the model "
                f"computes itself (`superpixel_n_segments`={config.superpixel_n_segments}): {error}"
            ) from None
        shape = (1, -1, 1, 1)
        mean = torch.tensor(config.superpixel_image_mean, dtype=torch.float32, device=pixel_values.device)
        std = torch.tensor(config.superpixel_image_std, dtype=torch.float32, device=pixel_values.device)
        images = (pixel_values.float() * std.view(shape) + mean.view(shape)) * config.superpixel_rescale_factor
        with torch.no_grad():  # ids: nothing to differentiate
            return torch_slic(
                images.clamp(0, 1),
                config.superpixel_n_segments,
                compactness=float(config.superpixel_compactness),
                num_iterations=config.superpixel_iterations,
                max_segments=config.max_superpixel_tokens,
            )

    def adapt(self, pixel_values: torch.Tensor, superpixels: torch.Tensor | None = None, **options) -> AdaptationOutput:
        """Test-time adaptation: adapt a copy of this model's state to each image with a recognition objective and
        return the outputs (weights, buffers, modes and RNG restored afterwards); see
        [`~adaptation_cast.adapt_to_images`] for the options (`steps`, `objective`, `learning_rate`, ...)."""
        return adapt_to_images(self, pixel_values, superpixels, **options)

    def _resolve_output_hierarchy(self, output_hierarchy: bool | None) -> bool:
        """`output_hierarchy` defaults to eval mode: the pixel hierarchy feeds no training loss, and each forward in
        training would otherwise write two (B, L, H, W) maps (about 150 MB for a batch of 64 at 224x224)."""
        return not self.training if output_hierarchy is None else output_hierarchy


def _check_pixel_values(pixel_values: torch.Tensor | None, config: CastConfig) -> tuple[int, int]:
    """`pixel_values`' type and shape (known on the host, free, also while tracing); returns (height, width)."""
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"`pixel_values` must be a torch.Tensor of shape (batch, channels, height, width), got {type(pixel_values).__name__}")
    if not pixel_values.is_floating_point():
        raise TypeError(f"`pixel_values` must be a floating point tensor, got dtype {pixel_values.dtype}")
    if pixel_values.ndim != 4 or pixel_values.shape[1] != config.num_channels:
        raise ValueError(
            f"`pixel_values` must have shape (batch, {config.num_channels}, height, width), got {tuple(pixel_values.shape)}"
        )
    if pixel_values.shape[0] == 0:  # a shape, known without reading values: free, also while tracing
        raise ValueError("`pixel_values` must hold at least one image, got batch size 0")
    height, width = pixel_values.shape[-2:]
    patch = config.patch_size
    if height < patch or width < patch or height % patch or width % patch:
        raise ValueError(
            f"`pixel_values` height and width must be positive multiples of patch_size={patch} (CastImageProcessor "
            f"resizes to such sizes), got {height}x{width}"
        )
    return height, width


def _check_inputs(pixel_values: torch.Tensor | None, superpixels: torch.Tensor | None, config: CastConfig) -> None:
    """Model entry, part one: the inputs' types and shapes (known on the host: free, also while tracing)."""
    height, width = _check_pixel_values(pixel_values, config)
    if superpixels is None:  # the model computes them (`compute_superpixels`)
        return
    if not isinstance(superpixels, torch.Tensor):
        raise TypeError(f"`superpixels` must be a torch.Tensor, got {type(superpixels).__name__}")
    if superpixels.is_floating_point() or superpixels.is_complex() or superpixels.dtype == torch.bool:
        raise TypeError(f"`superpixels` must be an integer tensor (int64), got dtype {superpixels.dtype}")
    expected = (pixel_values.shape[0], height, width)
    if tuple(superpixels.shape) != expected:
        raise ValueError(
            f"`superpixels` must have shape (batch, height, width) = {expected} to match `pixel_values`, "
            f"got {tuple(superpixels.shape)}"
        )


def _read_input_values(
    pixel_values: torch.Tensor, superpixels: torch.Tensor, config: CastConfig
) -> list[int] | None:
    """Model entry, part two: the values, in one host read of a few numbers, in eager mode only (compiling,
    exporting or tracing, the values are not known and reading them would break the graph: returns None).

    Returns each image's superpixel token count, its largest id on the pooling grid plus one, by which the eager
    forward sizes and packs its first-stage token rows. The superpixels are the caller's or the model's own
    (`compute_superpixels`, valid by construction: checking them as well costs one pass over the map, and both paths
    then run alike)."""
    if is_tracing(superpixels):
        return None
    # Worth the read: non-finite pixels make every token NaN, after which farthest point sampling picks arbitrary
    # seeds; a negative id would be pooled into a batch-mate's tokens or index out of bounds (a device-side assert on
    # CUDA), an id of height*width or more cannot come from a map of that size, and a token id at or above the budget
    # has no row in the token tensors. CastImageProcessor's ids are valid by construction; users' maps may not be.
    height, width = superpixels.shape[-2:]
    stride = 1 if config.token_pooling_resolution == "pixel" else config.patch_size
    # (one pass per tensor: `aminmax` gives both ends, and NaN or an infinity in the pixels shows in their extremes)
    smallest, largest = torch.aminmax(superpixels)
    darkest, brightest = torch.aminmax(pixel_values)
    finite = torch.isfinite(darkest) & torch.isfinite(brightest)
    image_largest_tokens = superpixels[:, ::stride, ::stride].flatten(1).amax(dim=1).long()
    smallest, largest, finite, *image_largest_tokens = torch.cat(
        [torch.stack([smallest.long(), largest.long(), finite.long()]), image_largest_tokens]
    ).tolist()
    largest_token = max(image_largest_tokens)
    if not finite:
        raise ValueError("`pixel_values` must be finite, got NaN or infinite values")
    if smallest < 0 or largest >= height * width:
        raise ValueError(
            f"`superpixels` ids must lie in [0, height*width) = [0, {height * width}), got ids from {smallest} to {largest}"
        )
    budget = config.max_superpixel_tokens
    if largest_token >= budget:
        raise ValueError(
            f"`superpixels` give an image {largest_token + 1} superpixel tokens (its largest id found on the pooling "
            f"grid plus one), more than the model's static token budget `max_superpixel_tokens`={budget}: ask the "
            f"image processor for fewer superpixels (`n_segments`) or build the model with a larger "
            f"`max_superpixel_tokens`"
        )
    return [token + 1 for token in image_largest_tokens]


class CastModel(CastPreTrainedModel):
    """The bare CAST encoder: superpixel tokens, transformer stages with graph pooling, final LayerNorm. Returns
    the image feature (`pooler_output`) and, in eval mode or when asked, the hierarchical segmentation of each image
    (`hierarchy`).

    `add_final_layernorm` and `pool_last_stage` let heads that read other features (the segmentation head fuses
    every stage) build exactly the modules they use.
    """

    # The hierarchy is read from the backbone of any CAST checkpoint (pipelines load every head's folder this way):
    # the heads' own weights are left out silently; any other unexpected key is still reported.
    _keys_to_ignore_on_load_unexpected = [
        r"^classifier\.", r"^fusion\.", r"^projector\.", r"^predictor\.", r"^momentum_cast\.", r"^momentum_projector\."
    ]

    def __init__(self, config: CastConfig, add_final_layernorm: bool = True, pool_last_stage: bool = False):
        super().__init__(config)
        self.embeddings = CastEmbeddings(config)
        self.encoder = CastEncoder(config, pool_last_stage=pool_last_stage)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if add_final_layernorm else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    def encode(
        self,
        pixel_values: torch.Tensor,
        superpixels: torch.Tensor,
        output_hierarchy: bool = False,
        output_pixel_tokens: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CastEncoding:
        """Validate the inputs, compute the superpixels if none are given, map them to tokens, run the embeddings
        and the stages, and compose the pixel hierarchy if `output_hierarchy` (shared by every head).
        `output_pixel_tokens` keeps the token of every pixel in the mapping (the hierarchy builds it anyway)."""
        _check_inputs(pixel_values, superpixels, self.config)
        if superpixels is None:
            superpixels = self.compute_superpixels(pixel_values)
        token_counts = _read_input_values(pixel_values, superpixels, self.config)
        # Traced, compiled and exported graphs run every image at the static budget. An eager forward has read each
        # image's token count with the input values, so it leaves out the token rows that would be padding in every
        # image (up to ~20% of the first stage's work with 196 SLIC superpixels), and its first stage runs the
        # row-wise layers on each image's own rows only (`CastStage`). Neither changes a result: padding is masked
        # everywhere (tests/test_modeling_cast.py checks both). Never fewer rows than first-level segments, for
        # which farthest point sampling needs candidates.
        num_tokens = self.config.max_superpixel_tokens
        if token_counts is not None:
            num_tokens = min(num_tokens, max(max(token_counts), self.config.num_segments[0]))
        superpixel_tokens = self.embeddings.map_superpixels(
            superpixels.long(), num_tokens, with_pixel_tokens=output_hierarchy or output_pixel_tokens
        )
        embeddings = self.embeddings(pixel_values, superpixel_tokens)
        stage_hidden_states, groupings = self.encoder(embeddings, superpixel_tokens, token_counts, **kwargs)
        encoding = CastEncoding(stage_hidden_states, groupings, superpixel_tokens, embeddings=embeddings)
        if output_hierarchy:
            assignment_logits = [grouping.assignment_logits for grouping in groupings]
            encoding.hierarchy, encoding.hierarchy_scores = compose_hierarchy(
                assignment_logits, superpixel_tokens.pixel_tokens
            )
        return encoding

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        superpixels: torch.Tensor | None = None,
        output_assignments: bool | None = None,
        output_hierarchy: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CastModelOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Images as returned by [`CastImageProcessor`]; height and width must be multiples of `config.patch_size`.
        superpixels (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            Superpixel id of every pixel (non-negative; [`CastImageProcessor`] returns contiguous ids from 0). An
            image's tokens are the ids up to its largest id found on the stem grid, as in the official model (the
            full rule, with ids that vanish from the grid, is that of [`SuperpixelTokens`]). Without them the model
            computes them from `pixel_values` on its device ([`~CastPreTrainedModel.compute_superpixels`]).
        output_assignments (`bool`, *optional*, defaults to `False`):
            Also return the per-level `assignment_logits` and `seed_indices`.
        output_hierarchy (`bool`, *optional*, defaults to `not self.training`):
            Also return the pixel hierarchy, `hierarchy` and `hierarchy_scores`. Off in training by default: these
            full-resolution maps (about 150 MB for a batch of 64 at 224x224) feed no loss.
        """
        output_hierarchy = self._resolve_output_hierarchy(output_hierarchy)
        encoding = self.encode(pixel_values, superpixels, output_hierarchy=output_hierarchy, **kwargs)
        last_hidden_state = encoding.stage_hidden_states[-1]
        if self.layernorm is not None:
            last_hidden_state = self.layernorm(last_hidden_state)
        groupings = encoding.groupings
        assignment_logits = seed_indices = None
        if output_assignments:
            assignment_logits = [grouping.assignment_logits for grouping in groupings]
            # the documented shape, one for every batch: the first level's rows at the static budget (an eager
            # forward computed only the batch's own; the others are padding, 0 as in a traced graph)
            missing_rows = self.config.max_superpixel_tokens - assignment_logits[0].shape[1]
            if missing_rows:
                assignment_logits[0] = F.pad(assignment_logits[0], (0, 0, 0, missing_rows))
            assignment_logits = tuple(assignment_logits)
            seed_indices = tuple(grouping.seed_indices for grouping in groupings)
        return CastModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=last_hidden_state[:, 0],
            hierarchy=encoding.hierarchy,
            hierarchy_scores=encoding.hierarchy_scores,
            assignment_logits=assignment_logits,
            seed_indices=seed_indices,
        )


class CastForImageClassification(CastPreTrainedModel):
    """CAST with a linear classifier on the final class token."""

    def __init__(self, config: CastConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.cast = CastModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is getattr(self, "classifier", None) and isinstance(module, nn.Linear):
            # the official linear-probing head: N(0, 0.01^2) weights, zero bias
            init.normal_(module.weight, std=self.config.initializer_range)
            init.zeros_(module.bias)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        superpixels: torch.Tensor | None = None,
        labels: torch.LongTensor | torch.FloatTensor | None = None,
        output_assignments: bool | None = None,
        output_hierarchy: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CastImageClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Labels for the classification loss, in `[0, config.num_labels)`; with `config.num_labels == 1` a
            regression loss (mean squared error) is computed (float labels).
        output_hierarchy (`bool`, *optional*, defaults to `not self.training`):
            Also return the pixel hierarchy (`hierarchy`, `hierarchy_scores`); training needs neither.
        See [`CastModel.forward`] for the other arguments.
        """
        output_hierarchy = self._resolve_output_hierarchy(output_hierarchy)
        outputs: CastModelOutput = self.cast(
            pixel_values,
            superpixels,
            output_assignments=output_assignments,
            output_hierarchy=output_hierarchy,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        # every field of the backbone's output but the features themselves
        features = ("last_hidden_state", "pooler_output")
        segmentation = {key: value for key, value in outputs.items() if key not in features}
        return CastImageClassifierOutput(loss=loss, logits=logits, **segmentation)


class CastMaskedBatchNorm(nn.BatchNorm1d):
    """`nn.BatchNorm1d` over the rows of `(rows, channels)` features that `row_mask` marks True.

    In training, the statistics are those of the marked rows only (padding, present only because of the token budget,
    changes nothing) and the running statistics are updated exactly as `nn.BatchNorm1d` updates them (unbiased
    variance, `momentum`, or a cumulative average when it is None); in eval the running statistics normalize every
    row. Unmarked rows come out as zeros. Selecting the rows instead (`features[row_mask]`) would give a shape that
    depends on the data, which neither exports nor compiles without a graph break. Same parameters and buffers
    as `nn.BatchNorm1d`, so checkpoints load unchanged.
    """

    def forward(self, features: torch.Tensor, row_mask: torch.Tensor) -> torch.Tensor:
        weights = row_mask.unsqueeze(-1).to(features.dtype)
        if not self.training and self.track_running_stats:
            normalized = F.batch_norm(
                features, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
            )
            return normalized * weights
        count = weights.sum()
        mean = (features * weights).sum(dim=0) / count.clamp(min=1)
        variance = ((features - mean).square() * weights).sum(dim=0) / count.clamp(min=1)
        if self.training and self.track_running_stats:
            self._update_running_statistics(mean, variance, count)
        normalized = (features - mean) * torch.rsqrt(variance + self.eps)
        if self.affine:
            normalized = normalized * self.weight + self.bias
        return normalized * weights

    @torch.no_grad()
    def _update_running_statistics(self, mean: torch.Tensor, variance: torch.Tensor, count: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
        unbiased = variance * count / (count - 1).clamp(min=1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


class CastLevelFusion(nn.Module):
    """Fuses every stage onto the finest tokens (official segmentation variant): each stage's tokens are copied
    back to the superpixel tokens they grouped (hard assignment), concatenated with the superpixel tokens, and
    normalized (BatchNorm over channels, class tokens included), dropped out and projected back to `hidden_size`."""

    def __init__(self, config: CastConfig):
        super().__init__()
        width = config.hidden_size * config.num_stages
        self.norm = CastMaskedBatchNorm(width, eps=config.batch_norm_eps)
        self.dropout = nn.Dropout(config.fusion_dropout_prob)
        self.projection = nn.Linear(width, config.hidden_size)

    def forward(self, encoding: CastEncoding) -> torch.Tensor:
        """Fused superpixel tokens (B, N, C)."""
        token_labels, _ = compose_token_labels([grouping.assignment_logits for grouping in encoding.groupings])
        stage_tokens = [encoding.stage_hidden_states[0][:, 1:]]
        for level, hidden_states in enumerate(encoding.stage_hidden_states[1:]):
            # stage `level + 1` holds the segments of `level`: give every superpixel token its segment's features
            stage_tokens.append(gather_rows(hidden_states[:, 1:], token_labels[:, level]))
        class_tokens = torch.cat([grouping.class_token for grouping in encoding.groupings], dim=-1)
        fused = torch.cat([class_tokens, torch.cat(stage_tokens, dim=-1)], dim=1)  # (B, 1 + N, L * C)
        # statistics over real tokens only, so padding (present only because of the budget) changes nothing
        rows = F.pad(encoding.superpixel_tokens.token_mask, (1, 0), value=True)
        normalized = self.norm(fused.flatten(0, 1), rows.flatten()).view_as(fused)
        return self.projection(self.dropout(normalized))[:, 1:]


class CastForSemanticSegmentation(CastPreTrainedModel):
    """CAST for semantic segmentation (the official segmentation variant): every stage is fused back onto the
    superpixel tokens, a linear classifier scores each superpixel, and the scores are painted onto its pixels.

    Fine-tuning follows the official recipe with more segments per stage than pretraining (e.g.
    `num_segments=[320, 160, 80, 40]`) and `token_pooling_resolution="pixel"`; any CAST backbone checkpoint
    initializes it (`from_pretrained(..., num_labels=K)`).
    """

    accepts_loss_kwargs = False  # the loss is a plain mean over labeled pixels

    def __init__(self, config: CastConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.cast = CastModel(config, add_final_layernorm=False, pool_last_stage=True)
        self.fusion = CastLevelFusion(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs  # (its output has no `last_hidden_state` to tie to the last recorded hidden state)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        superpixels: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hierarchy: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CastSemanticSegmenterOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            Class of every pixel, in `[0, config.num_labels)`, or `config.semantic_loss_ignore_index`.
        output_hierarchy (`bool`, *optional*, defaults to `not self.training`):
            Also return the pixel hierarchy (`hierarchy`, `hierarchy_scores`). The logits are painted onto the
            pixels in any case.
        See [`CastModel.forward`] for the other arguments.
        """
        output_hierarchy = self._resolve_output_hierarchy(output_hierarchy)
        encoding = self.cast.encode(
            pixel_values, superpixels, output_hierarchy=output_hierarchy, output_pixel_tokens=True, **kwargs
        )
        token_logits = self.classifier(self.fusion(encoding))  # (B, N, num_labels)
        pixel_tokens = encoding.superpixel_tokens.pixel_tokens  # (B, H, W)
        batch_size, height, width = pixel_tokens.shape
        painted = gather_rows(token_logits, pixel_tokens.view(batch_size, -1))  # (B, H * W, num_labels)
        logits = painted.transpose(1, 2).reshape(batch_size, self.num_labels, height, width)
        loss = None
        if labels is not None:
            loss = self._superpixel_cross_entropy(token_logits, pixel_tokens, labels)
        return CastSemanticSegmenterOutput(
            loss=loss, logits=logits, hierarchy=encoding.hierarchy, hierarchy_scores=encoding.hierarchy_scores
        )

    def _superpixel_cross_entropy(
        self, token_logits: torch.Tensor, pixel_tokens: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Mean cross-entropy over labeled pixels, computed per superpixel: a pixel's logits are its superpixel's,
        so the sum over pixels is a sum over (superpixel, class) pairs weighted by pixel counts. Equal to
        `cross_entropy(logits, labels, ignore_index=...)` on the painted logits, without a softmax per pixel."""
        ignore_index = self.config.semantic_loss_ignore_index
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
            raise TypeError(f"`labels` must be an integer tensor, got {getattr(labels, 'dtype', type(labels))}")
        if labels.shape != pixel_tokens.shape:
            raise ValueError(
                f"`labels` must have shape (batch, height, width) = {tuple(pixel_tokens.shape)} like the inputs, "
                f"got {tuple(labels.shape)}"
            )
        labels = labels.long()
        labeled = labels != ignore_index
        # Worth its one host read (skipped when compiling): an out-of-range label would count towards another
        # (superpixel, class) pair below, a silently wrong loss.
        out_of_range = ((labels < 0) | (labels >= self.num_labels)) & labeled
        if not is_tracing(labels) and bool(out_of_range.any()):
            raise ValueError(
                f"`labels` must lie in [0, {self.num_labels}) or equal semantic_loss_ignore_index={ignore_index}"
            )
        batch_size, num_tokens, num_labels = token_logits.shape
        offsets = torch.arange(batch_size, device=labels.device).view(-1, 1, 1) * num_tokens
        # ignored pixels count with weight 0 (their label clamped into range), so no data-dependent indexing
        pair = ((pixel_tokens + offsets) * num_labels + labels.clamp(0, num_labels - 1)).flatten()
        counts = torch.zeros(token_logits.numel(), dtype=torch.long, device=labels.device)
        counts = counts.scatter_add_(0, pair, labeled.flatten().long()).view_as(token_logits)
        log_probabilities = token_logits.float().log_softmax(dim=-1)
        return -(counts * log_probabilities).sum() / counts.sum().clamp(min=1)


class CastForImageSegmentation:
    """Auto-class entry of `pipeline("image-segmentation")` and `pipeline("hierarchical-segmentation")`, which load
    through `AutoModelForImageSegmentation` first: builds the architecture a checkpoint was saved with,
    [`CastForSemanticSegmentation`] for segmentation checkpoints, [`CastForImageClassification`] for classifiers (its
    head is what test-time adaptation optimizes, `adaptation_steps`; one linear layer more than the backbone, so
    segmenting without adaptation costs the same) and [`CastModel`] (segments from the hierarchy) for every other CAST
    checkpoint."""

    config_class = CastConfig

    @staticmethod
    def architecture(config: CastConfig) -> type[CastPreTrainedModel]:
        architectures = getattr(config, "architectures", None) or []
        if "CastForSemanticSegmentation" in architectures:
            return CastForSemanticSegmentation
        if "CastForImageClassification" in architectures:
            return CastForImageClassification
        return CastModel

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, config=None, **kwargs):
        # (the auto classes pass the config they loaded; as remote code it is an instance of another module's class)
        if config is None:
            config, kwargs = CastConfig.from_pretrained(pretrained_model_name_or_path, return_unused_kwargs=True, **kwargs)
        return cls.architecture(config).from_pretrained(pretrained_model_name_or_path, *args, config=config, **kwargs)

    @classmethod
    def from_config(cls, config: CastConfig, **kwargs):
        return cls.architecture(config)._from_config(config, **kwargs)

    _from_config = from_config

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModelForImageSegmentation") -> None:
        # transformers calls this on classes loaded as remote code; the built model saves its own auto_map
        cls._auto_class = auto_class
