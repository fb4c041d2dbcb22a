# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Pure tensor helpers of CAST: superpixel pooling, farthest point sampling and hierarchy composition.

Shape legend: B = batch, P = stem grid cells (h * w), N = tokens of a level, K = segments of the next level,
C = channels, L = levels, H/W = input pixels.

Each helper is the single implementation of its concept; the modules in `modeling_cast.py` and every head use
these. The behaviour follows the official implementation (github.com/twke18/CAST) as described in this project's
reference notes, with one deliberate difference: tokens beyond an image's own superpixel count (padding that only
exists because of other images in the batch) take part in nothing, so results never depend on batch-mates.
"""

from __future__ import annotations

import torch

__all__ = [
    "segment_mean",
    "farthest_point_sampling",
    "compose_token_labels",
    "pixels_to_tokens",
    "sincos_position_embedding",
]

_SINCOS_TEMPERATURE = 10000.0


def segment_mean(features: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average `features` (B, P, C) over the cells of each segment id in `segment_ids` (B, P), ids < num_segments.

    Returns the means (B, num_segments, C), zero for ids without cells, and the cell counts (B, num_segments).
    """
    batch_size, num_cells, channels = features.shape
    offsets = torch.arange(batch_size, device=segment_ids.device).unsqueeze(1) * num_segments
    flat_ids = (segment_ids + offsets).reshape(-1)
    sums = features.new_zeros(batch_size * num_segments, channels).index_add_(0, flat_ids, features.reshape(-1, channels))
    counts = torch.bincount(flat_ids, minlength=batch_size * num_segments).view(batch_size, num_segments)
    means = sums.view(batch_size, num_segments, channels) / counts.clamp(min=1).unsqueeze(-1).to(features.dtype)
    return means, counts


def farthest_point_sampling(
    points: torch.Tensor, candidate_mask: torch.Tensor | None, num_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick `num_samples` seed indices per image among `points` (B, N, C) by farthest point sampling.

    As in the official code, sampling starts from the mean of the candidate points (which is not returned) and
    repeatedly takes the point with the largest squared euclidean distance, in float64, to the nearest point taken
    so far; ties go to the lowest index. Points where `candidate_mask` (B, N) is False are never taken.

    Returns the seeds (B, num_samples) and which of them are real (B, num_samples), True for a seed at positive
    distance from every earlier one (and for the first seed). The official code needs `num_samples` distinct
    candidates per image (it fails an assertion otherwise) and then every seed is real, so the official seeds are
    reproduced exactly. With fewer distinct candidates, the remaining seeds repeat earlier ones and are marked
    False: the segments they would start stay empty.
    """
    if candidate_mask is None:
        start = points.mean(dim=1, keepdim=True)
    else:
        weights = candidate_mask.unsqueeze(-1).to(points.dtype)
        start = (points * weights).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True).clamp(min=1)
    # Distances in float64 like the official DGL sampler, so near-ties resolve the same way. All pairwise
    # distances come from one Gram matrix (|a|^2 + |b|^2 - 2ab), so each sampling step is an argmax, a row lookup
    # and a minimum; the cancellation error (~1e-13 here) is far below any real gap between distinct tokens.
    points64 = points.detach().double()
    min_distance = (points64 - start.detach().double()).square().sum(-1)
    if candidate_mask is not None:
        min_distance = min_distance.masked_fill(~candidate_mask, float("-inf"))
    gram = torch.bmm(points64, points64.transpose(1, 2))
    squared_norms = gram.diagonal(dim1=1, dim2=2)
    distances = (squared_norms.unsqueeze(2) + squared_norms.unsqueeze(1) - 2 * gram).clamp_(min=0)
    distances.diagonal(dim1=1, dim2=2).zero_()
    batch_index = torch.arange(points.shape[0], device=points.device)
    chosen_per_step, gap_per_step = [], []
    for _ in range(num_samples):
        gap, chosen = min_distance.max(dim=-1)  # first index among equal maxima, like argmax
        chosen_per_step.append(chosen)
        gap_per_step.append(gap)
        min_distance = torch.minimum(min_distance, distances[batch_index, chosen])
    seed_is_real = torch.stack(gap_per_step, dim=1) > 0
    seed_is_real[:, 0] = True  # the farthest point from the mean starts a segment even if it is the mean
    return torch.stack(chosen_per_step, dim=1), seed_is_real


def compose_token_labels(
    assignment_logits: list[torch.Tensor] | tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard segment id of every finest-level token at every level, (B, L, N1), from the per-level logits
    (B, N_l, K_l): level 1 is the argmax of its logits (first maximum on ties); each coarser level looks up the
    argmax of its logits at the token's label of the level below.

    Also returns the matching assignment probabilities (B, L, N1): the softmax probability with which the token
    (level 1) or its parent segment (coarser levels) was assigned to its segment.
    """
    labels = scores = None
    per_level_labels, per_level_scores = [], []
    for logits in assignment_logits:
        probabilities, best = logits.softmax(dim=-1).max(dim=-1)
        if labels is None:
            labels, scores = best, probabilities
        else:
            labels, scores = torch.gather(best, 1, labels), torch.gather(probabilities, 1, labels)
        per_level_labels.append(labels)
        per_level_scores.append(scores)
    return torch.stack(per_level_labels, dim=1), torch.stack(per_level_scores, dim=1)


def pixels_to_tokens(superpixels: torch.Tensor, grid_ids: torch.Tensor, token_counts: torch.Tensor) -> torch.Tensor:
    """Token index of every pixel, (B, H, W).

    A pixel belongs to its superpixel's token. A superpixel id at or above its image's token count has no token
    (it vanished on the stem grid and is larger than every id that survived); such pixels take the token of the
    stem grid cell they lie in. (The official notebooks instead copy the last token's label, an artefact of
    padding a label list.)
    """
    height, width = superpixels.shape[-2:]
    stride_h, stride_w = height // grid_ids.shape[-2], width // grid_ids.shape[-1]
    cell_ids = grid_ids.repeat_interleave(stride_h, dim=1).repeat_interleave(stride_w, dim=2)
    has_token = superpixels < token_counts.view(-1, 1, 1)
    return torch.where(has_token, superpixels, cell_ids)


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
