# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Pure tensor helpers of CAST: the superpixel-to-token mapping, segment means, farthest point sampling and the
composition of the hierarchy.

Shape legend: B = batch, P = pooling cells (stem grid cells h * w, or pixels H * W), N = tokens of a level,
K = segments of the next level, C = channels, L = levels, H/W = input pixels, h/w = stem grid.

Each helper is the single implementation of its concept; the modules in `modeling_cast.py` and every head use
these. The behavior follows the official implementation (github.com/twke18/CAST) as described in this project's
reference notes, with one deliberate difference: tokens beyond an image's own superpixel count (padding up to the
model's static token budget) take part in nothing, so results never depend on batch-mates or on the budget.

Every helper keeps its shapes static (sizes come from arguments, never from tensor values) and reads nothing back
to the host, so that the forward pass exports (`torch.export`, ONNX) and compiles without graph breaks. (An eager
call of `farthest_point_sampling` on CPU, where the tensors already are in host memory, runs what follows its sums
in numpy.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.utils import is_tracing

__all__ = [
    "SuperpixelTokens",
    "PackedRows",
    "map_superpixels_to_tokens",
    "segment_sizes",
    "segment_mean",
    "gather_rows",
    "farthest_point_sampling",
    "compose_token_labels",
    "compose_hierarchy",
]


@dataclass
class SuperpixelTokens:
    """Which token every pooling cell and pixel belongs to: the superpixel-to-token rule, applied once per batch.

    The rule (as in the official model): the features are averaged per superpixel id over pooling cells, which are
    the cells of the stem grid (each taking the id of its top-left pixel) or, for pixel-resolution pooling, the
    pixels themselves. An image's tokens are the ids `0 .. m`, where `m` is its largest id found on a pooling cell.
    An id below `m` that no cell carries is an *empty* token: zero features, never a segment seed. An id above `m`
    has no token; its pixels belong to the token of the stem grid cell they lie in. (The official notebooks instead
    copy the last token's label, an artifact of padding a label list.)

    Attributes:
        pooling_ids (`torch.LongTensor` of shape `(batch_size, cells_height, cells_width)`):
            Token of every pooling cell.
        token_counts (`torch.LongTensor` of shape `(batch_size,)`):
            Number of tokens of each image (`m + 1`).
        cell_counts (`torch.LongTensor` of shape `(batch_size, num_tokens)`):
            Pooling cells of every token; 0 for empty tokens and for padding.
        token_mask (`torch.BoolTensor` of shape `(batch_size, num_tokens)`):
            True for an image's own tokens, False for padding (the tokens between its own count and the budget).
        pixel_tokens (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            Token of every input pixel; built only when asked (the pixel hierarchy and the segmentation logits).
    """

    pooling_ids: torch.LongTensor
    token_counts: torch.LongTensor
    cell_counts: torch.LongTensor
    token_mask: torch.BoolTensor
    pixel_tokens: torch.LongTensor | None = None

    @property
    def num_tokens(self) -> int:
        return self.token_mask.shape[1]

    @property
    def seed_candidate_mask(self) -> torch.BoolTensor:
        """`(batch_size, num_tokens)`, True for tokens that may seed a segment: empty tokens and padding never do."""
        return self.cell_counts > 0


@dataclass
class PackedRows:
    """The real rows of a padded batch (B, R, ...) as one (M, ...) tensor, and the way back.

    Row-wise layers (norms, linear layers, MLPs) give every row the same result whether it is computed padded or
    packed, so an eager forward runs them on the M real rows only; attention, which mixes the rows of an image, runs
    padded. Packing needs M on the host, so only an eager forward that has read the token counts builds one; traced
    and compiled graphs keep the padded shapes.

    Attributes:
        index (`torch.LongTensor` of shape `(M,)`): Flat index (b * R + r) of every real row, in order.
        batch_size (`int`): B.
        num_rows (`int`): R.
    """

    index: torch.LongTensor
    batch_size: int
    num_rows: int

    @classmethod
    def from_counts(cls, row_counts: list[int], num_rows: int, device: torch.device) -> "PackedRows":
        """The first `row_counts[b]` of the `num_rows` rows of every image b, from counts known on the host (the
        index is built there and copied over: nothing is read back from the device)."""
        index = torch.cat([torch.arange(count) + image * num_rows for image, count in enumerate(row_counts)])
        return cls(index=index.to(device, non_blocking=True), batch_size=len(row_counts), num_rows=num_rows)

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """(B, R, ...) -> the real rows (M, ...)."""
        return padded.flatten(0, 1).index_select(0, self.index)

    def unpack(self, rows: torch.Tensor) -> torch.Tensor:
        """The real rows (M, ...) -> (B, R, ...), zero in the padding rows."""
        padded = rows.new_zeros(self.batch_size * self.num_rows, *rows.shape[1:])
        return padded.index_copy(0, self.index, rows).view(self.batch_size, self.num_rows, *rows.shape[1:])


def map_superpixels_to_tokens(
    superpixels: torch.Tensor, stride: int, num_tokens: int, with_pixel_tokens: bool = False
) -> SuperpixelTokens:
    """Apply the superpixel-to-token rule (see [`SuperpixelTokens`]) to `superpixels` (B, H, W), int64 ids >= 0.

    `stride` is the pooling cell size: the stem stride (`patch_size`) for pooling on the stem grid, 1 for pooling at
    the superpixel map's resolution. `num_tokens` is the static token budget: every image gets that many tokens, its
    own followed by padding; every id found on a pooling cell must be below it (the model checks this in eager
    mode). `with_pixel_tokens` also builds the token of every pixel.
    """
    # The cell of the stem grid takes the id of its top-left pixel (PyTorch's legacy "nearest" downsampling, as in
    # the official code); ids that never fall on that lattice vanish from the grid.
    pooling_ids = superpixels[:, ::stride, ::stride] if stride > 1 else superpixels
    flat_ids = pooling_ids.flatten(1)
    token_counts = flat_ids.amax(dim=1) + 1
    # The token count is the static budget, never read from the data: no host read, and one shape for every batch.
    token_mask = torch.arange(num_tokens, device=superpixels.device) < token_counts.unsqueeze(1)
    pixel_tokens = None
    if with_pixel_tokens:
        pixel_tokens = superpixels
        if stride > 1:  # (at stride 1 every id is below its image's count: each pixel is its own token's cell)
            cell_tokens = pooling_ids.repeat_interleave(stride, dim=1).repeat_interleave(stride, dim=2)
            pixel_tokens = torch.where(superpixels < token_counts.view(-1, 1, 1), superpixels, cell_tokens)
    return SuperpixelTokens(
        pooling_ids=pooling_ids,
        token_counts=token_counts,
        cell_counts=segment_sizes(flat_ids, num_tokens),
        token_mask=token_mask,
        pixel_tokens=pixel_tokens,
    )


def _flat_segment_ids(segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Ids (B, P) -> one id space for the whole batch (image b's segment k is b * num_segments + k), flat (B * P)."""
    offsets = torch.arange(segment_ids.shape[0], device=segment_ids.device).unsqueeze(1) * num_segments
    return (segment_ids + offsets).reshape(-1)


def segment_sizes(segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Number of cells of every segment, (B, num_segments), from `segment_ids` (B, P) with ids < num_segments."""
    flat_ids = _flat_segment_ids(segment_ids, num_segments)
    # a scatter-add of ones rather than `bincount`, whose output size depends on the data (a graph break when
    # compiling, an unbacked size when exporting)
    counts = flat_ids.new_zeros(segment_ids.shape[0] * num_segments)
    return counts.scatter_add_(0, flat_ids, torch.ones_like(flat_ids)).view(-1, num_segments)


def segment_mean(features: torch.Tensor, segment_ids: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Average `features` (B, P, C) over the cells of each segment id in `segment_ids` (B, P).

    `sizes` (B, K) are the cell counts of the K segments ([`segment_sizes`]). Returns the means (B, K, C), zero for
    segments without cells.
    """
    batch_size, num_segments = sizes.shape
    channels = features.shape[-1]
    flat_ids = _flat_segment_ids(segment_ids, num_segments)
    sums = features.new_zeros(batch_size * num_segments, channels).index_add_(0, flat_ids, features.reshape(-1, channels))
    return sums.view(batch_size, num_segments, channels) / sizes.clamp(min=1).unsqueeze(-1).to(features.dtype)


def gather_rows(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Row `indices[b, k]` of image b for every k: `values` (B, N, ...) and `indices` (B, K) -> (B, K, ...).

    The same as `torch.gather` along dim 1 with the index expanded over the trailing dims, as one `index_select` on
    the flattened rows: about 3x (at the sizes of the seeds) to 2x (painting every pixel) faster on CPU.
    """
    batch_size, num_rows = values.shape[:2]
    offsets = torch.arange(batch_size, device=indices.device).unsqueeze(1) * num_rows
    rows = values.flatten(0, 1).index_select(0, (indices + offsets).flatten())
    return rows.view(batch_size, indices.shape[1], *values.shape[2:])


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
    batch_size, num_points = points.shape[:2]
    # Distances in float64 like the official DGL sampler, so near-ties resolve the same way. All pairwise
    # distances come from one Gram matrix (|a|^2 + |b|^2 - 2ab), so each sampling step is an argmax, a row lookup
    # and a minimum; the cancellation error (~1e-13 here) is far below any real gap between distinct tokens.
    points64 = points.detach().double()
    offsets = points64 - start.detach().double()
    start_distance = (offsets * offsets).sum(-1)  # (a product, not `square()`: same bits, a faster kernel)
    gram = torch.bmm(points64, points64.transpose(1, 2))
    if gram.device.type == "cpu" and not is_tracing(gram):
        return _sample_in_numpy(gram, start_distance, candidate_mask, num_samples)
    if candidate_mask is not None:
        start_distance = start_distance.masked_fill(~candidate_mask, float("-inf"))
    squared_norms = gram.diagonal(dim1=1, dim2=2)
    # `alpha=2` scales by a power of two (exact), so this is |a|^2 + |b|^2 - 2ab bit for bit, in one pass fewer. The
    # diagonal is exactly 0 without a mask: |a|^2 is read from the Gram diagonal, so 2|a|^2 - 2|a|^2 cancels exactly.
    distances = torch.sub(squared_norms.unsqueeze(2) + squared_norms.unsqueeze(1), gram, alpha=2).clamp(min=0)
    # One row per (image, point): a step looks its rows up with one `index_select`, cheaper than advanced indexing.
    flat_distances = distances.view(batch_size * num_points, num_points)
    row_offsets = torch.arange(batch_size, device=points.device) * num_points
    min_distance = start_distance
    chosen_per_step = []
    for _ in range(num_samples):  # the sequential part: three small ops per step
        chosen = min_distance.argmax(dim=-1)  # first index among equal maxima
        chosen_per_step.append(chosen)
        min_distance = torch.minimum(min_distance, flat_distances.index_select(0, chosen + row_offsets))
    seeds = torch.stack(chosen_per_step, dim=1)
    # The gap of step t (the distance it was taken at) from the same numbers, after the loop rather than once per
    # step: the smaller of the seed's start distance and its distances D[s, t] from every earlier seed s.
    seed_rows = flat_distances.index_select(0, (seeds + row_offsets.unsqueeze(1)).flatten())
    seed_rows = seed_rows.view(batch_size, num_samples, num_points)
    pair_distances = torch.gather(seed_rows, 2, seeds.unsqueeze(1).expand(-1, num_samples, -1))  # [b, s, t]
    earlier = torch.ones(num_samples, num_samples, dtype=torch.bool, device=points.device).triu(diagonal=1)
    nearest_earlier = pair_distances.masked_fill(~earlier, float("inf")).amin(dim=1)
    seed_is_real = torch.minimum(torch.gather(start_distance, 1, seeds), nearest_earlier) > 0
    # the farthest point from the mean starts a segment even if it is the mean
    seed_is_real = torch.cat([torch.ones_like(seed_is_real[:, :1]), seed_is_real[:, 1:]], dim=1)
    return seeds, seed_is_real


def _sample_in_numpy(
    gram: torch.Tensor, start_distance: torch.Tensor, candidate_mask: torch.Tensor | None, num_samples: int
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """[`farthest_point_sampling`] from its Gram matrix (B, N, N) and start distances (B, N) on, in numpy: for an
    eager forward on CPU, where these tensors already lie in host memory. The sums (Gram matrix, start distances)
    stay PyTorch's; everything after them is elementwise, a lookup, a minimum or a comparison, which are exact, so
    the seeds and their flags equal the PyTorch steps' bit for bit (`argmax` takes the first of equal maxima in both).
    Each step is three operations on a (B, N) array, ~3 us in numpy against ~25 us as PyTorch calls (1.9 ms for 64
    seeds among 131 tokens at batch 1), and the gap of every step is read in the loop rather than recomputed."""
    gram = gram.numpy()
    batch_size, num_points = start_distance.shape
    min_distance = start_distance.numpy().copy()
    if candidate_mask is not None:
        min_distance[~candidate_mask.numpy()] = -np.inf
    squared_norms = np.diagonal(gram, axis1=1, axis2=2)
    distances = squared_norms[:, :, None] + squared_norms[:, None, :]
    distances -= 2 * gram  # (|a|^2 + |b|^2 - 2ab, rounded as in PyTorch: the doubling is exact)
    np.maximum(distances, 0, out=distances)
    distances = distances.reshape(batch_size * num_points, num_points)  # one row per (image, point)
    row_offsets = np.arange(batch_size) * num_points
    images = np.arange(batch_size)
    seeds = np.empty((batch_size, num_samples), dtype=np.int64)
    gaps = np.empty((batch_size, num_samples))
    for step in range(num_samples):
        chosen = min_distance.argmax(axis=1)
        seeds[:, step] = chosen
        gaps[:, step] = min_distance[images, chosen]  # the distance the seed was taken at
        np.minimum(min_distance, distances[chosen + row_offsets], out=min_distance)
    seed_is_real = gaps > 0
    seed_is_real[:, 0] = True  # the farthest point from the mean starts a segment even if it is the mean
    return torch.from_numpy(seeds), torch.from_numpy(seed_is_real)


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


def compose_hierarchy(
    assignment_logits: list[torch.Tensor] | tuple[torch.Tensor, ...], pixel_tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel hierarchy: segment id (B, L, H, W) of every pixel at every level and its assignment probability
    (B, L, H, W), from the per-level logits (see [`compose_token_labels`]) and the token of every pixel (B, H, W)."""
    token_labels, token_scores = compose_token_labels(assignment_logits)
    batch_size, num_levels = token_labels.shape[:2]
    pixel_index = pixel_tokens.flatten(1).unsqueeze(1).expand(-1, num_levels, -1)
    pixel_shape = (batch_size, num_levels, *pixel_tokens.shape[-2:])
    hierarchy = torch.gather(token_labels, 2, pixel_index).view(pixel_shape)
    return hierarchy, torch.gather(token_scores, 2, pixel_index).view(pixel_shape)
