# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""A batched SLIC in torch (`superpixel_method="torch_slic"`), on any device and inside the model's graph.

SLIC (Achanta et al., TPAMI 2012) clusters pixels in (Lab color, position): seeds on a regular grid, each pixel
assigned to the nearest of the 3x3 seeds around its own grid cell, centers moved to their pixels' means, a fixed
number of times, then a connectivity rule. This version is written for static shapes, so that it runs batched on CPU
and CUDA and exports (`torch.export`, ONNX) and compiles (`fullgraph=True`) as part of the CAST forward:

- It clusters a *working image* resampled (area averaging) so that every grid cell is exactly `cell_height x
  cell_width` pixels (at most `WORKING_CELL_SIZE` on a side: 8x8 for 196 seeds at 224x224, a quarter of the pixels).
  Each pixel's 9 candidate centers are then those of its cell's 3x3 neighborhood, found by reshaping the image into
  cells (no gather), and the distances of a cell's pixels to its 9 candidates, as well as the sums that move the
  centers, are small batched matrix products. The labels are brought back to the input size by nearest sampling.
- Connectivity: each cluster keeps the part connected to its best-fitting pixel (found by a fixed number of
  4-neighbor propagation steps); the other fragments are absorbed, pixel by pixel, into the clusters next to them.
  So an image never has more ids than seeds, and the grid is laid out with at most `max_segments` seeds: the ids of
  an image stay below the model's static token budget whatever the image.
- Ids are renumbered contiguously from 0 (in raster order of their seeds) with a presence count and a cumulative sum
  over the static number of seeds; an image whose pixels are all equal is one superpixel, id 0.

No Python branch reads a tensor value, every loop runs a number of times fixed by the arguments and shapes, and no
scatter accumulates floats, so the result is deterministic (CPU and CUDA agree up to float rounding of near ties).

Shape legend: B = batch, H/W = input pixels, R/C = rows/columns of seeds, Q = pixels of a working cell,
O = the 9 candidate offsets, F = features (Lab, scaled y and x, and a constant 1).

Hub-flat: imports only torch and the standard library.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = [
    "TORCH_SLIC_DEFAULT_ITERATIONS",
    "WORKING_CELL_SIZE",
    "check_torch_slic_settings",
    "slic_grid",
    "torch_slic",
    "rgb_to_lab",
]

# Iterations of assignment and center update. SLIC's assignments hardly move after a handful of iterations on a
# regular seed grid; scikit-image's default is 10.
TORCH_SLIC_DEFAULT_ITERATIONS = 10
# Largest working cell side, in pixels: 8 keeps boundaries within a pixel or two of a full-resolution SLIC at
# 224x224 while clustering a quarter of the pixels.
WORKING_CELL_SIZE = 8
# Distance of the candidates outside the seed grid: above any real (Lab, position) distance, finite in float32.
_OUTSIDE_DISTANCE = 1e10
_RGB_CHANNELS = 3
# the non-Lab channels are scaled to Lab's lightness range, so that `compactness` means the same for them
_LAB_LIGHTNESS_RANGE = 100.0
# sRGB (D65) to XYZ, and the D65 white point (the conversion scikit-image's `rgb2lab` uses, written out here)
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_D65_WHITE = (0.95047, 1.0, 1.08883)
_OFFSETS = tuple((row, column) for row in (-1, 0, 1) for column in (-1, 0, 1))
_OWN_CELL = _OFFSETS.index((0, 0))
# 4-neighbor shifts (row, column) used by the connectivity propagation, in a fixed order (ties take the first)
_NEIGHBOR_SHIFTS = ((-1, 0), (0, -1), (0, 1), (1, 0))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65) of sRGB images `rgb` (B, 3, H, W) with values in [0, 1]; L in [0, 100]."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_D65_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear) / white
    cube_root = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = cube_root.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def check_torch_slic_settings(n_segments, compactness, num_iterations, max_segments=None) -> None:
    """Validate `torch_slic`'s settings (types and ranges), naming the argument: shared by the function, the image
    processor and the model configuration."""
    for name, value, minimum in (("n_segments", n_segments, 1), ("num_iterations", num_iterations, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}")
        if value < minimum:
            raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    if max_segments is not None:
        if isinstance(max_segments, bool) or not isinstance(max_segments, int):
            raise TypeError(f"`max_segments` must be an int or None, got {type(max_segments).__name__} {max_segments!r}")
        if max_segments < 1:
            raise ValueError(f"`max_segments` must be >= 1, got {max_segments}")
    if isinstance(compactness, bool) or not isinstance(compactness, (int, float)):
        raise TypeError(f"`compactness` must be a number, got {type(compactness).__name__} {compactness!r}")
    if not math.isfinite(compactness) or compactness <= 0:
        raise ValueError(f"`compactness` must be a positive finite number, got {compactness}")


def slic_grid(height: int, width: int, n_segments: int, max_segments: int | None = None) -> tuple[int, int]:
    """The (rows, columns) of seeds `torch_slic` lays on a `height x width` image for about `n_segments`
    superpixels: square cells of side `sqrt(height * width / n_segments)`, shrunk (keeping the aspect) until there
    are at most `max_segments` seeds.

    Raises:
        ValueError: when the grid has more rows than the image has pixel rows, or more columns than pixel columns.
    """
    step = math.sqrt(height * width / n_segments)
    rows, columns = max(1, round(height / step)), max(1, round(width / step))
    if max_segments is not None and rows * columns > max_segments:
        scale = math.sqrt(max_segments / (rows * columns))
        rows, columns = max(1, math.floor(rows * scale)), max(1, math.floor(columns * scale))
        while rows * columns > max_segments:  # host integers: the grid is fixed before anything runs
            if rows >= columns:
                rows -= 1
            else:
                columns -= 1
    if rows > height or columns > width:
        raise ValueError(
            f"`n_segments`={n_segments} lays out a {rows}x{columns} grid of seeds, larger than the images "
            f"(height {height}, width {width}): torch_slic needs at least one pixel per seed in each direction; ask "
            f"for fewer superpixels or pass larger images"
        )
    return rows, columns


def torch_slic(
    images: torch.Tensor,
    n_segments: int,
    compactness: float = 10.0,
    num_iterations: int = TORCH_SLIC_DEFAULT_ITERATIONS,
    max_segments: int | None = None,
) -> torch.Tensor:
    """
    SLIC superpixels of a batch of images, computed in torch on the images' device.

    Args:
        images (`torch.Tensor` of shape `(batch_size, channels, height, width)`):
            Floating point pixels in [0, 1] (un-normalized). Three channels are read as sRGB and converted to Lab;
            other channel counts are clustered as they are, scaled to Lab's range.
        n_segments (`int`):
            Approximate number of superpixels (seeds of the grid; an image can end with fewer).
        compactness (`float`, *optional*, defaults to 10.0):
            Balance between color and space proximity (SLIC's `m`); higher gives more square superpixels.
        num_iterations (`int`, *optional*, defaults to `TORCH_SLIC_DEFAULT_ITERATIONS`):
            Assignment and update iterations.
        max_segments (`int`, *optional*):
            Upper bound on the number of superpixels of every image (e.g. a model's `max_superpixel_tokens`): the
            seed grid is laid out with at most this many seeds.

    Returns:
        `torch.LongTensor` of shape `(batch_size, height, width)`: ids `0..K-1` per image, each id one superpixel.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"`images` must be a torch.Tensor of shape (batch, channels, height, width), got {type(images).__name__}")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"`images` must be a floating point tensor of shape (batch, channels, height, width), got shape "
            f"{tuple(images.shape)} and dtype {images.dtype}"
        )
    check_torch_slic_settings(n_segments, compactness, num_iterations, max_segments)
    batch_size, num_channels, height, width = images.shape
    rows, columns = slic_grid(height, width, n_segments, max_segments)
    cell_height = min(WORKING_CELL_SIZE, height // rows)
    cell_width = min(WORKING_CELL_SIZE, width // columns)
    working_height, working_width = rows * cell_height, columns * cell_width

    images = images.float()
    working = F.adaptive_avg_pool2d(images, (working_height, working_width))
    if num_channels == _RGB_CHANNELS:
        colors = rgb_to_lab(working.clamp(0, 1))
    else:
        colors = working * _LAB_LIGHTNESS_RANGE
    # positions in input pixels, weighted so that squared distances add up as SLIC's D = d_lab^2 + (m / S)^2 d_xy^2
    step = math.sqrt(height * width / n_segments)
    spatial_weight = float(compactness) / step
    y = (torch.arange(working_height, device=images.device, dtype=torch.float32) + 0.5) * (height / working_height)
    x = (torch.arange(working_width, device=images.device, dtype=torch.float32) + 0.5) * (width / working_width)
    positions = torch.stack(torch.meshgrid(y, x, indexing="ij")) * spatial_weight
    features = torch.cat(
        [colors, positions.expand(batch_size, 2, working_height, working_width), torch.ones_like(colors[:, :1])], dim=1
    )
    pixels = _to_cells(features, rows, cell_height, columns, cell_width)  # (B, R, C, Q, F)

    choice = torch.full(pixels.shape[:-1], _OWN_CELL, dtype=torch.long, device=images.device)
    centers = _updated_centers(pixels, choice, None)
    outside = _outside_cells(rows, columns, images.device)
    for _ in range(num_iterations):
        choice, _ = _nearest_candidate(_candidate_distances(pixels, centers, outside))
        centers = _updated_centers(pixels, choice, centers)
    choice, best = _nearest_candidate(_candidate_distances(pixels, centers, outside))
    best = best + (pixels[..., :-1] ** 2).sum(-1)

    cell_ids = torch.arange(rows * columns, device=images.device).view(1, 1, rows, columns).float()
    candidate_ids = _neighbor_stack(cell_ids, -1.0)[0, ..., 0].long()  # (R, C, O)
    labels = candidate_ids.expand(batch_size, rows, columns, len(_OFFSETS)).gather(-1, choice)
    anchors = best <= _cluster_minimum(best, choice, rows, columns)  # each cluster's best-fitting pixels

    labels = _from_cells(labels, rows, cell_height, columns, cell_width)
    anchors = _from_cells(anchors, rows, cell_height, columns, cell_width)
    # a cluster lies within the 3x3 cells around its seed: two cell sides of 4-neighbor steps reach nearly all of its
    # connected part; orphan fragments are thin, and one cell side of steps absorbs them
    side = max(cell_height, cell_width)
    labels = _keep_anchored_parts(labels, anchors, reach_steps=2 * side, absorb_steps=side)
    labels = _contiguous_ids(labels, rows * columns)
    # back to the input size by nearest sampling (each input pixel takes the working pixel it lies in)
    row_index = torch.arange(height, device=images.device) * working_height // height
    column_index = torch.arange(width, device=images.device) * working_width // width
    labels = labels.index_select(1, row_index).index_select(2, column_index)
    uniform = (images == images[..., :1, :1]).flatten(1).all(1)
    return labels.masked_fill(uniform.view(batch_size, 1, 1), 0)


def _to_cells(maps: torch.Tensor, rows: int, cell_height: int, columns: int, cell_width: int) -> torch.Tensor:
    """(B, F, R * ch, C * cw) maps as (B, R, C, Q, F) cells."""
    batch_size, num_features = maps.shape[:2]
    cells = maps.reshape(batch_size, num_features, rows, cell_height, columns, cell_width)
    return cells.permute(0, 2, 4, 3, 5, 1).reshape(batch_size, rows, columns, cell_height * cell_width, num_features)


def _from_cells(cells: torch.Tensor, rows: int, cell_height: int, columns: int, cell_width: int) -> torch.Tensor:
    """(B, R, C, Q) cells as (B, R * ch, C * cw) maps."""
    batch_size = cells.shape[0]
    maps = cells.reshape(batch_size, rows, columns, cell_height, cell_width).permute(0, 1, 3, 2, 4)
    return maps.reshape(batch_size, rows * cell_height, columns * cell_width)


def _neighbor_stack(grid: torch.Tensor, fill: float) -> torch.Tensor:
    """For a (B, D, R, C) grid of cell values, the values of each cell's 9 neighbors (B, R, C, O, D), `fill`
    outside the grid."""
    rows, columns = grid.shape[-2:]
    padded = F.pad(grid, (1, 1, 1, 1), value=fill)
    shifted = [padded[..., 1 + row:1 + row + rows, 1 + column:1 + column + columns] for row, column in _OFFSETS]
    return torch.stack(shifted, dim=-1).permute(0, 2, 3, 4, 1)


def _gather_from_sources(per_source: torch.Tensor, fill: float) -> torch.Tensor:
    """For (B, R, C, O, D) values that the pixels of cell `s` send to the cell `s + offset`, the values each cell
    receives, stacked by offset (B, R, C, O, D): the reverse of `_neighbor_stack`."""
    batch_size, rows, columns, num_offsets, depth = per_source.shape
    grid = per_source.permute(0, 3, 4, 1, 2).reshape(batch_size, num_offsets * depth, rows, columns)
    padded = F.pad(grid, (1, 1, 1, 1), value=fill).view(batch_size, num_offsets, depth, rows + 2, columns + 2)
    received = [
        padded[:, index, :, 1 - row:1 - row + rows, 1 - column:1 - column + columns]
        for index, (row, column) in enumerate(_OFFSETS)
    ]
    return torch.stack(received, dim=-1).permute(0, 2, 3, 4, 1)


def _outside_cells(rows: int, columns: int, device: torch.device) -> torch.Tensor:
    """(R, C, O) distance added to the candidates that lie outside the seed grid."""
    inside = torch.ones(1, 1, rows, columns, device=device)
    return (1 - _neighbor_stack(inside, 0.0)).view(rows, columns, len(_OFFSETS)) * _OUTSIDE_DISTANCE


def _candidate_distances(pixels: torch.Tensor, centers: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Squared distances of every pixel to its cell's 9 candidate centers, less the pixel's own squared norm (the
    same for all candidates), (B, R, C, O, Q): |p - c|^2 - |p|^2 = p . (-2c) + |c|^2, one matrix product per cell."""
    weights = torch.cat([-2 * centers, (centers**2).sum(1, keepdim=True)], dim=1)  # (B, F, R, C)
    candidates = _neighbor_stack(weights, 0.0)  # (B, R, C, O, F)
    return candidates @ pixels.transpose(-1, -2) + outside.unsqueeze(-1)


def _nearest_candidate(distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest candidate (B, R, C, Q) of every pixel (the first of equally near ones) and its distance, from
    (B, R, C, O, Q) distances."""
    best, choice = distances.min(-2)
    return choice, best


def _updated_centers(pixels: torch.Tensor, choice: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """The mean features (B, F - 1, R, C) of each cluster's pixels (a fixed-order sum: per cell and offset, then
    over the 9 cells that can send pixels); a cluster without pixels keeps its `previous` center."""
    offsets = torch.arange(len(_OFFSETS), device=choice.device).view(-1, 1)
    one_hot = (choice.unsqueeze(-2) == offsets).to(pixels.dtype)  # (B, R, C, O, Q)
    sums = one_hot @ pixels  # (B, R, C, O, F): what each cell's pixels send to each offset
    totals = _gather_from_sources(sums, 0.0).sum(-2)  # (B, R, C, F); the last feature counts the pixels
    counts = totals[..., -1:]
    means = (totals[..., :-1] / counts.clamp_min(1)).permute(0, 3, 1, 2)
    if previous is None:
        return means
    return torch.where(counts.permute(0, 3, 1, 2) > 0, means, previous)


def _cluster_minimum(best: torch.Tensor, choice: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """For each pixel, the smallest distance of any pixel of its cluster to the cluster's center (B, R, C, Q)."""
    offsets = torch.arange(len(_OFFSETS), device=choice.device).view(-1, 1)
    per_offset = torch.where(choice.unsqueeze(-2) == offsets, best.unsqueeze(-2), math.inf).amin(-1)  # (B, R, C, O)
    cluster_best = _gather_from_sources(per_offset.unsqueeze(-1), math.inf).amin(-2).squeeze(-1)  # (B, R, C)
    around = _neighbor_stack(cluster_best.unsqueeze(1), math.inf).squeeze(-1)  # (B, R, C, O)
    return around.gather(-1, choice)


def _shifted(maps: torch.Tensor, fill: float) -> list[torch.Tensor]:
    """The 4-neighbor values of a (B, H, W) map, one (B, H, W) view per shift of `_NEIGHBOR_SHIFTS`, `fill` beyond
    the border."""
    height, width = maps.shape[-2:]
    padded = F.pad(maps.unsqueeze(1), (1, 1, 1, 1), value=fill).squeeze(1)
    return [padded[:, 1 + row:1 + row + height, 1 + column:1 + column + width] for row, column in _NEIGHBOR_SHIFTS]


def _keep_anchored_parts(
    labels: torch.Tensor, anchors: torch.Tensor, reach_steps: int, absorb_steps: int
) -> torch.Tensor:
    """Each cluster keeps the pixels 4-connected to its anchors within `reach_steps` propagation steps; the others
    are orphans, which take the label of an adjacent kept pixel (first neighbor in `_NEIGHBOR_SHIFTS` order), a ring
    per step for `absorb_steps` steps. Orphans still left keep their label.

    (Elementwise chains over the 4 neighbors instead of reductions over a stacked neighbor dimension: a reduction
    over a short outer dimension runs far slower on CPU.)"""
    float_labels = labels.float()  # ids below 2^24: exact in float32, which F.pad needs
    same = [(neighbor == float_labels).float() for neighbor in _shifted(float_labels, -1.0)]
    reached = anchors.float()
    for _ in range(reach_steps):
        grown = reached
        for neighbor, same_label in zip(_shifted(reached, 0.0), same):
            grown = torch.maximum(grown, neighbor * same_label)
        reached = grown
    for _ in range(absorb_steps):
        neighbor_kept = _shifted(reached, 0.0)
        neighbor_labels = _shifted(float_labels, 0.0)
        # the label of the first kept neighbor: chosen from the last shift to the first, so the first wins
        taken, any_kept = float_labels, torch.zeros_like(reached)
        for kept, label in zip(reversed(neighbor_kept), reversed(neighbor_labels)):
            taken = torch.where(kept > 0, label, taken)
            any_kept = torch.maximum(any_kept, kept)
        adopt = any_kept * (1 - reached)
        float_labels = torch.where(adopt > 0, taken, float_labels)
        reached = torch.maximum(reached, adopt)
    return float_labels.long()


def _contiguous_ids(labels: torch.Tensor, num_seeds: int) -> torch.Tensor:
    """Ids renumbered `0..K-1` per image, keeping their order: a presence count over the static number of seeds and
    its cumulative sum."""
    batch_size = labels.shape[0]
    flat = labels.reshape(batch_size, -1)
    presence = torch.zeros(batch_size, num_seeds, device=labels.device).scatter_add_(
        1, flat, torch.ones_like(flat, dtype=torch.float32)
    )
    new_ids = (presence > 0).long().cumsum(1) - 1
    return new_ids.gather(1, flat).view_as(labels)
