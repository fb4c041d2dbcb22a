"""The pure tensor helpers of graph_pooling_cast on their own, each against answers worked out by hand."""

from __future__ import annotations

import math

import torch

from modeling_cast.graph_pooling_cast import (
    compose_hierarchy,
    compose_token_labels,
    farthest_point_sampling,
    gather_rows,
    map_superpixels_to_tokens,
    segment_mean,
    segment_sizes,
)

# Ids 0..4 on the 2x2 stem grid of stride 2 (top-left pixels: 0, 1, 2, 4); id 3 lies off the grid below the largest
# grid id (an empty token), id 5 off the grid above it (no token: its pixel takes its grid cell's token, 4).
SUPERPIXELS = torch.tensor(
    [
        [
            [0, 0, 1, 1],
            [0, 3, 1, 1],
            [2, 2, 4, 4],
            [2, 2, 4, 5],
        ]
    ]
)


def test_map_superpixels_to_tokens_on_the_stem_grid():
    mapping = map_superpixels_to_tokens(SUPERPIXELS, stride=2, num_tokens=5, with_pixel_tokens=True)
    assert mapping.pooling_ids.tolist() == [[[0, 1], [2, 4]]]
    assert mapping.token_counts.tolist() == [5] and mapping.num_tokens == 5
    assert mapping.cell_counts.tolist() == [[1, 1, 1, 0, 1]]
    assert mapping.seed_candidate_mask.tolist() == [[True, True, True, False, True]]
    assert mapping.token_mask.all()
    assert mapping.pixel_tokens.tolist() == [[[0, 0, 1, 1], [0, 3, 1, 1], [2, 2, 4, 4], [2, 2, 4, 4]]]


def test_map_superpixels_to_tokens_pads_images_with_fewer_tokens():
    superpixels = torch.cat([SUPERPIXELS, torch.zeros_like(SUPERPIXELS)])  # the second image: one superpixel
    mapping = map_superpixels_to_tokens(superpixels, stride=2, num_tokens=5)
    assert mapping.token_counts.tolist() == [5, 1]
    assert mapping.token_mask.tolist() == [[True] * 5, [True, False, False, False, False]]
    assert mapping.cell_counts[1].tolist() == [4, 0, 0, 0, 0]
    assert mapping.pixel_tokens is None  # not asked for


def test_map_superpixels_to_tokens_at_pixel_resolution_keeps_every_id():
    mapping = map_superpixels_to_tokens(SUPERPIXELS, stride=1, num_tokens=6, with_pixel_tokens=True)
    assert mapping.num_tokens == 6
    assert mapping.cell_counts.tolist() == [[3, 4, 4, 1, 3, 1]]
    assert torch.equal(mapping.pixel_tokens, SUPERPIXELS)


def test_map_superpixels_to_tokens_pads_every_image_to_the_budget():
    """The token count is the static budget, whatever the data: the tokens past an image's own are padding."""
    mapping = map_superpixels_to_tokens(SUPERPIXELS, stride=2, num_tokens=8, with_pixel_tokens=True)
    assert mapping.num_tokens == 8 and mapping.token_counts.tolist() == [5]
    assert mapping.token_mask.tolist() == [[True] * 5 + [False] * 3]
    assert mapping.cell_counts.tolist() == [[1, 1, 1, 0, 1, 0, 0, 0]]
    assert mapping.pixel_tokens.tolist() == [[[0, 0, 1, 1], [0, 3, 1, 1], [2, 2, 4, 4], [2, 2, 4, 4]]]


def test_segment_sizes_count_cells_per_image():
    segment_ids = torch.tensor([[0, 0, 2, 1], [1, 1, 1, 0]])
    assert segment_sizes(segment_ids, 3).tolist() == [[2, 1, 1], [1, 3, 0]]


def test_segment_mean_averages_within_each_image():
    features = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]])
    features = torch.cat([features, 10 * features])
    segment_ids = torch.tensor([[0, 0, 2, 2], [1, 0, 1, 1]])
    means = segment_mean(features, segment_ids, segment_sizes(segment_ids, 3))
    # image 0: segment 1 has no cells (zero); image 1: segment 0 is cell 1 alone, segment 1 cells 0, 2, 3
    expected = torch.tensor([[[2.0, 3.0], [0.0, 0.0], [6.0, 7.0]], [[30.0, 40.0], [130 / 3, 160 / 3], [0.0, 0.0]]])
    torch.testing.assert_close(means, expected)


def test_farthest_point_sampling_starts_from_the_mean():
    points = torch.tensor([[[0.0], [1.0], [5.0], [6.0]]])
    # from the mean 3: squared distances 9, 4, 4, 9 -> index 0 (lowest of the tie); nearest-seed distances then
    # 0, 1, 4, 9 -> index 3; then 0, 1, 1, 0 -> index 1 (lowest of the tie)
    seeds, real = farthest_point_sampling(points, None, 3)
    assert seeds.tolist() == [[0, 3, 1]] and real.tolist() == [[True, True, True]]


def test_farthest_point_sampling_takes_only_candidates():
    points = torch.tensor([[[0.0], [1.0], [5.0], [6.0]]])
    candidates = torch.tensor([[False, True, True, True]])
    # from the candidates' mean 4: distances -, 9, 1, 4 -> index 1; then -, 0, 1, 4 -> 3; then -, 0, 1, 0 -> 2
    seeds, real = farthest_point_sampling(points, candidates, 3)
    assert seeds.tolist() == [[1, 3, 2]] and real.all()


def test_farthest_point_sampling_marks_repeated_seeds():
    points = torch.tensor([[[0.0], [0.0], [5.0]]])  # two distinct points, three seeds wanted
    # from the mean 5/3: index 2; then distances 25/9, 25/9, 0 -> index 0; then all 0 -> index 0 again, not real
    seeds, real = farthest_point_sampling(points, None, 3)
    assert seeds.tolist() == [[2, 0, 0]] and real.tolist() == [[True, True, False]]


def test_farthest_point_sampling_eager_cpu_steps_equal_the_traced_steps():
    """An eager call on CPU runs the sequential steps in numpy, a traced one in PyTorch: the same seeds and real
    flags bit for bit, with candidate masks, exact ties (duplicated points) and fewer distinct points than seeds."""
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(4, 40, 16, generator=generator)
    points[1, 20:] = points[1, :20]  # every point twice: ties at every step
    points[2, 5:] = points[2, 0]  # five distinct points, twelve seeds wanted
    candidates = torch.rand(4, 40, generator=generator) > 0.3
    candidates[2] = True
    traced = torch.compile(farthest_point_sampling, backend="eager", fullgraph=True)
    for mask in (None, candidates):
        eager_seeds, eager_real = farthest_point_sampling(points, mask, 12)
        torch._dynamo.reset()
        traced_seeds, traced_real = traced(points, mask, 12)
        assert torch.equal(eager_seeds, traced_seeds) and torch.equal(eager_real, traced_real)
        assert not eager_real[2, 5:].any() and eager_real[2, :5].all()


def _two_level_logits() -> list[torch.Tensor]:
    # level 1: tokens 0 and 1 go to segment 1 with probability 3/4 (softmax of [0, ln 3]), token 2 to segment 0
    fine = torch.tensor([[[0.0, math.log(3)], [0.0, math.log(3)], [math.log(3), 0.0]]])
    # level 2: segment 0 goes to coarse segment 1 with probability 4/5, segment 1 to coarse segment 0 with 9/10
    coarse = torch.tensor([[[0.0, math.log(4)], [math.log(9), 0.0]]])
    return [fine, coarse]


def test_compose_token_labels_follows_each_token_up_the_levels():
    labels, scores = compose_token_labels(_two_level_logits())
    assert labels.tolist() == [[[1, 1, 0], [0, 0, 1]]]
    torch.testing.assert_close(scores, torch.tensor([[[0.75, 0.75, 0.75], [0.9, 0.9, 0.8]]]))


def test_compose_token_labels_breaks_ties_towards_the_first_segment():
    labels, scores = compose_token_labels([torch.zeros(1, 2, 3)])
    assert labels.tolist() == [[[0, 0]]]
    torch.testing.assert_close(scores, torch.full((1, 1, 2), 1 / 3))


def test_compose_hierarchy_paints_token_labels_onto_pixels():
    pixel_tokens = torch.tensor([[[0, 2], [1, 2]]])
    hierarchy, scores = compose_hierarchy(_two_level_logits(), pixel_tokens)
    assert hierarchy.tolist() == [[[[1, 0], [1, 0]], [[0, 1], [0, 1]]]]
    torch.testing.assert_close(scores, torch.tensor([[[[0.75, 0.75], [0.75, 0.75]], [[0.9, 0.8], [0.9, 0.8]]]]))


def test_gather_rows_equals_torch_gather():
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(3, 7, 4, 2, generator=generator)
    indices = torch.randint(0, 7, (3, 5), generator=generator)
    expected = torch.gather(values, 1, indices.view(3, 5, 1, 1).expand(-1, -1, 4, 2))
    assert torch.equal(gather_rows(values, indices), expected)
    # gradients reach the gathered rows, summed over repeats
    values.requires_grad_(True)
    gather_rows(values, torch.tensor([[1, 1], [0, 6], [2, 3]])).sum().backward()
    assert values.grad[0, 1].eq(2).all() and values.grad[0, 0].eq(0).all() and values.grad[1, 6].eq(1).all()
