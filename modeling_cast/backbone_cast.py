# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""CAST as a transformers backbone ([`CastBackbone`], for `AutoBackbone` and the dense heads built on it: UperNet,
DPT, Depth Anything).

A CAST stage holds segment tokens, not a grid, so a dense head cannot read it directly: every chosen stage's tokens
are painted back onto the stem grid through the hierarchy, which gives each stage a feature map that follows the
image's segments at that stage's granularity instead of a coarse, blocky grid.

Shape legend for comments: B = batch, N = superpixel tokens (the static budget), K = segments of a level, C = hidden
size, h/w = stem grid (H / patch_size, W / patch_size).
"""

from __future__ import annotations

import torch
from transformers.backbone_utils import BackboneMixin
from transformers.modeling_outputs import BackboneOutput
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_cast import CastConfig
from .graph_pooling_cast import gather_rows
from .modeling_cast import CastModel, CastPreTrainedModel

__all__ = ["CastBackbone", "soft_token_assignments", "paint_cells"]


def soft_token_assignments(assignment_logits: list[torch.Tensor]) -> list[torch.Tensor]:
    """Soft membership of every superpixel token in the segments of every level, one `(B, N, K_l)` tensor per level:
    the level-1 assignment probabilities, then their products with each coarser level's (a token belongs to a
    coarse segment with the probability summed over the fine segments it passes through). Empty segments have
    probability 0 (their logits are the dtype's lowest value); rows of padding tokens are uniform and never read.
    In at least float32, like the grouping logits."""
    composed, per_level = None, []
    for logits in assignment_logits:
        probabilities = logits.softmax(dim=-1)
        composed = probabilities if composed is None else torch.bmm(composed, probabilities)
        per_level.append(composed)
    return per_level


def paint_cells(token_features: torch.Tensor, cell_tokens: torch.Tensor) -> torch.Tensor:
    """The features (B, h * w, C) of every stem grid cell: those of its token, from `token_features` (B, N, C) and
    the token of every cell `cell_tokens` (B, h, w)."""
    return gather_rows(token_features, cell_tokens.flatten(1))


class CastBackbone(BackboneMixin, CastPreTrainedModel):
    """CAST backbone for transformers' dense heads (`AutoBackbone`, `UperNetForSemanticSegmentation`, ...).

    Stages (`config.stage_names`): `"stem"` (the superpixel tokens that enter the first stage) and `"stage1"` ...
    `"stageN"` (the tokens after each stage's transformer blocks: superpixel tokens for `stage1`, then the segments
    of the previous stage's graph pooling). For every stage of `config.out_features` the backbone returns a feature
    map on the stem grid, `(batch_size, hidden_size, height / patch_size, width / patch_size)`: every grid cell gets
    the features of its superpixel token (the cell's top-left pixel's superpixel, the model's own superpixel-to-token
    rule), and for coarser stages the features of the segments that token belongs to. The maps are therefore
    segment-shaped at every stage: coarse stages hold a few regions that follow the image's segments, never blocks.

    Soft assignment: a token's features at a coarse stage are the segment tokens weighted by its soft membership
    (the product of the per-level assignment probabilities, [`soft_token_assignments`]), not those of its argmax
    segment. Dense heads are trained through the maps, and only the soft weights pass their gradients on to the
    grouping (the argmax has none), so fine-tuning a dense head also refines the segmentation it rests on. The
    grouping's temperature (`assignment_temperature`) makes most weights nearly one-hot, so the maps stay close to
    piecewise constant on the hard hierarchy; where a token is ambiguous its features blend its candidate segments
    instead of jumping.

    No final LayerNorm is applied (the heads normalize their inputs themselves), so the backbone holds exactly the
    modules that every CAST checkpoint has: it loads the encoder of any CAST folder (a backbone, an image classifier,
    a pretraining or segmentation model, a converted official checkpoint) without missing weights; the other heads'
    weights are left out silently.
    """

    # every other CAST head's own weights (and the final LayerNorm the backbone does not use)
    _keys_to_ignore_on_load_unexpected = [
        *CastModel._keys_to_ignore_on_load_unexpected,
        r"^(cast\.)?layernorm\.",
        # the segmentation head pools the last stage's features too (its fusion reads the pooled class token)
        r"^(cast\.)?encoder\.stages\.\d+\.pooling\.(feature_norm|feature_projection|output_norm|output_projection)\.",
    ]

    def __init__(self, config: CastConfig):
        super().__init__(config)
        self.cast = CastModel(config, add_final_layernorm=False)
        # every stage keeps the hidden size (the mixin reads `num_features` for `channels`)
        self.num_features = [config.hidden_size] * len(config.stage_names)
        self.post_init()

    def get_input_embeddings(self):
        return self.cast.get_input_embeddings()

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        superpixels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BackboneOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Images as returned by [`CastImageProcessor`]; height and width must be multiples of `config.patch_size`.
        superpixels (`torch.LongTensor` of shape `(batch_size, height, width)`):
            Superpixel id of every pixel, as for [`CastModel`].

        Returns `BackboneOutput` with `feature_maps`: one tensor per stage of `config.out_features`, of shape
        `(batch_size, hidden_size, height / patch_size, width / patch_size)` (with `config.reshape_hidden_states=False`:
        `(batch_size, 1 + height / patch_size * width / patch_size, hidden_size)`, the stage's class token first);
        `hidden_states` and `attentions` as [`CastModel`] returns them, when asked.
        """
        encoding = self.cast.encode(pixel_values, superpixels, **kwargs)
        # the token of every stem grid cell: pooling cells are grid cells, or pixels (pixel-resolution pooling),
        # whose top-left one in each grid cell gives the cell's token, as on the grid
        step = self.config.patch_size // self.cast.embeddings.pooling_stride
        cell_tokens = encoding.superpixel_tokens.pooling_ids[:, ::step, ::step]  # (B, h, w)
        stage_indices = [self.stage_names.index(stage) for stage in self.out_features]
        # stage s >= 2 holds the segments of level s - 1: memberships of the levels up to the deepest stage asked
        levels = [grouping.assignment_logits for grouping in encoding.groupings[: max(stage_indices) - 1]]
        memberships = soft_token_assignments(levels)
        feature_maps = []
        for stage_index in stage_indices:
            hidden_states = encoding.embeddings if stage_index == 0 else encoding.stage_hidden_states[stage_index - 1]
            class_token, tokens = hidden_states[:, :1], hidden_states[:, 1:]
            if stage_index >= 2:  # carry the segment tokens back to the superpixel tokens, softly: (B, N, C)
                membership = memberships[stage_index - 2]
                tokens = torch.bmm(membership, tokens.to(membership.dtype)).to(hidden_states.dtype)
            feature_maps.append(self._grid_map(paint_cells(tokens, cell_tokens), class_token, cell_tokens.shape))
        return BackboneOutput(feature_maps=tuple(feature_maps))

    def _grid_map(self, cells: torch.Tensor, class_token: torch.Tensor, grid_shape: torch.Size) -> torch.Tensor:
        """The painted `cells` (B, h * w, C) in the layout `config.reshape_hidden_states` asks for."""
        if not self.config.reshape_hidden_states:
            return torch.cat([class_token, cells], dim=1)
        batch_size, grid_height, grid_width = grid_shape
        return cells.transpose(1, 2).reshape(batch_size, -1, grid_height, grid_width)
