# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The part-whole experiment (`examples/run_part_whole_benchmark.py`), `make demo` (`examples/demo.py`) and the
quickstart, each run at a tiny size for a few steps, and the ViT baseline's spherical k-means on hand-made features."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

benchmark = importlib.import_module("run_part_whole_benchmark")
demo = importlib.import_module("demo")
quickstart = importlib.import_module("quickstart")

# small enough for seconds on a loaded 2-core machine, large enough for two levels of 8 and 4 segments
TINY = {
    "--image_size": 48, "--n_segments": 24, "--hidden_size": 24, "--num_attention_heads": 2, "--depths": "1 1",
    "--num_segments": "8 4", "--max_steps": 2, "--batch_size": 4,
}


def _argv(options: dict) -> list[str]:
    argv = []
    for key, value in options.items():
        argv.append(key)
        argv.extend(str(value).split())
    return argv


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models run fastest on one thread, above all on a machine shared with other jobs
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_spherical_kmeans_separates_directions_whatever_their_norms():
    generator = torch.Generator().manual_seed(0)
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # each point is a direction scaled by a random norm plus a little noise: k-means on raw vectors would split by norm
    norms = torch.rand(60, generator=generator) * 10 + 0.1
    labels = torch.arange(60) % 3
    points = directions[labels] * norms[:, None] + 0.01 * torch.randn(60, 3, generator=generator)

    assignments, centroids = benchmark.spherical_kmeans(points, 3, generator=torch.Generator().manual_seed(1))

    # the clustering equals the true grouping up to a renaming of the clusters
    pairs = {(int(a), int(b)) for a, b in zip(assignments, labels)}
    assert len(pairs) == 3 and len({a for a, _ in pairs}) == 3
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(3))


def test_feature_hierarchy_is_nested_with_the_requested_counts():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(8, 12, 10, generator=generator)

    hierarchy = benchmark.feature_hierarchy(features, [6, 3, 2], iterations=10, generator=generator)

    assert hierarchy.shape == (3, 12, 10)
    assert [len(torch.unique(level)) for level in hierarchy] == [6, 3, 2]
    for fine, coarse in zip(hierarchy[:-1], hierarchy[1:]):
        for segment in torch.unique(fine):
            assert len(torch.unique(coarse[fine == segment])) == 1  # every fine segment inside one coarse segment


def test_vit_baseline_matches_cast_parameters_width_and_depth():
    args = benchmark.BenchmarkArguments(hidden_size=48, num_attention_heads=2, depths=[2, 1], num_segments=[8, 4], image_size=64)

    cast, vit = benchmark.build_models(args)

    cast_parameters = sum(p.numel() for p in cast.parameters() if p.requires_grad)
    vit_parameters = sum(p.numel() for p in vit.parameters() if p.requires_grad)
    assert vit.config.hidden_size == cast.config.hidden_size == 48
    assert vit.config.num_hidden_layers == sum(cast.config.depths) == 3
    assert vit.config.patch_size == 8
    # the MLP width moves the count by 2 * hidden + 1 per unit and layer, so the match is within one unit's worth
    assert abs(vit_parameters - cast_parameters) <= vit.config.num_hidden_layers * (2 * 48 + 1)


def test_benchmark_tiny_run_writes_results_and_figure(tmp_path):
    output_dir = tmp_path / "benchmark"
    argv = _argv({**TINY, "--output_dir": output_dir, "--train_samples": 8, "--eval_samples": 3, "--figure_images": 2,
                  "--kmeans_iterations": 3})

    report = benchmark.main(argv)

    for name in ("results.json", "results.md", "figure_grid.png"):
        assert (output_dir / name).is_file(), name
    saved = json.loads((output_dir / "results.json").read_text())
    assert set(saved["results"]) == {"trained", "untrained"}
    for run in saved["results"].values():
        for model in ("cast", "vit"):
            assert 0 <= run[model]["accuracy"] <= 1
            assert len(run[model]["levels"]) == 2
            for level in run[model]["levels"]:
                assert 0 <= level["object_miou"] <= 1 and 0 <= level["part_boundary_f"] <= 1
    assert saved["results"]["trained"]["vit"]["levels"][0]["mean_segments"] <= 8
    assert set(saved["runtime_s"]) >= {"train_cast", "train_vit", "evaluation", "total"}
    assert saved["machine"]["cpu_count"] >= 1
    markdown = (output_dir / "results.md").read_text()
    assert "| CAST, trained |" in markdown and "| ViT + k-means, trained |" in markdown
    assert report["token_quality"]["superpixels"]["mean_num_superpixels"] > 1


def test_benchmark_rejects_mismatched_levels():
    with pytest.raises(ValueError, match="--depths and --num_segments need one entry per stage"):
        benchmark.BenchmarkArguments(depths=[1, 1], num_segments=[8, 4, 2])
    with pytest.raises(ValueError, match="--object_level must index one of the 2 levels"):
        benchmark.BenchmarkArguments(depths=[1, 1], num_segments=[8, 4], object_level=3)


def test_demo_tiny_run_trains_saves_reloads_and_segments(tmp_path, capsys):
    output_dir = tmp_path / "demo"
    argv = _argv({**TINY, "--output_dir": output_dir, "--train_samples": 8, "--eval_samples": 3, "--pictures": 2})

    results = demo.main(argv)

    printed = capsys.readouterr().out
    model_dir = output_dir / "cast-part-whole"
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        assert (model_dir / name).is_file(), name
    assert (output_dir / "part_whole" / "train" / "metadata.jsonl").is_file()
    assert (output_dir / "part_whole" / "test" / "metadata.jsonl").is_file()
    assert len(results["pictures"]) == 2 and all(path.is_file() for path in results["pictures"])
    assert (output_dir / "pictures" / "pipeline_coarsest_level.png").is_file()
    assert 1 <= results["pipeline_segments"] <= 4
    # the metrics and the file paths are printed
    assert "object mIoU" in printed and "boundary recall" in printed
    assert str(model_dir) in printed and str(results["pictures"][0]) in printed
    assert [level["segments"] for level in results["levels"]] == [8, 4]
    assert all(0 <= level["part_miou"] <= 1 for level in results["levels"])
    assert np.isfinite(results["accuracy"])


def test_quickstart_converts_the_official_tiny_checkpoint_and_writes_every_level(tmp_path, capsys):
    quickstart.main(["--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "loaded with AutoModel" in out
    levels = sorted(tmp_path.glob("level*.png"))
    assert [path.name for path in levels] == [f"level{level}.png" for level in range(len(levels))] and len(levels) >= 2
    assert (tmp_path / "cast-tiny-official" / "model.safetensors").is_file()
