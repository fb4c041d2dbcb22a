# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The recognition benchmark (`benchmarks/part_whole/run_recognition_benchmark.py`): the per-image scoring on
hand-made hierarchies, and a tiny end-to-end run (two seeds, a checkpoint, the MoCo arm) that writes every output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import import_script

benchmark = import_script("benchmarks/part_whole", "run_recognition_benchmark")
pytestmark = pytest.mark.usefixtures("restore_torch_threads")

from processing.synthetic.part_whole import SOUP_LABEL, render_part_whole_sample  # noqa: E402


def test_score_hierarchies_on_the_ground_truth_and_on_one_segment():
    samples = [render_part_whole_sample(index, 48, seed=0, mode="recognition") for index in range(5)]
    # the ground truth as a 3-level hierarchy: parts, then the object against the background twice
    exact = [np.stack([s.part_mask, s.object_mask > 0, s.object_mask > 0]).astype(np.int64) for s in samples]
    one = [np.zeros((3, 48, 48), np.int64) for _ in samples]

    perfect, flat = benchmark.score_hierarchies(exact, samples), benchmark.score_hierarchies(one, samples)

    objects = np.array([s.label != SOUP_LABEL for s in samples])
    np.testing.assert_allclose(perfect["best_iou_L-1"][objects], 1.0)
    np.testing.assert_allclose(perfect["oracle_part_miou_L-3"][objects], 1.0)
    assert np.isnan(perfect["best_iou_L-1"][~objects]).all() and np.isnan(perfect["soup_whole_iou_L-1"][objects]).all()
    # one segment: best IoU is the object's share of the image, and the oracle labels it all background
    shares = np.array([(s.object_mask > 0).mean() for s in samples])
    np.testing.assert_allclose(flat["best_iou_L-1"][objects], shares[objects])
    np.testing.assert_allclose(flat["components_L-1"], 1.0)
    assert (flat["oracle_object_miou_L-1"][objects] < 1).all()


def test_recognition_benchmark_tiny_run_writes_every_output(tmp_path):
    output_dir = tmp_path / "recognition"
    argv = [
        "--output_dir", str(output_dir), "--train_samples", "8", "--eval_samples", "10", "--recognizer_samples", "5",
        "--recognizer_epochs", "1", "--image_size", "48", "--n_segments", "24", "--hidden_size", "24",
        "--depths", "1", "1", "1", "--num_segments", "8", "4", "2", "--max_steps", "2", "--checkpoint_steps", "1",
        "--batch_size", "4", "--warmup_steps", "1", "--seeds", "0", "1", "--moco_steps", "1", "--moco_batch_size", "4",
        "--kmeans_iterations", "2", "--bootstrap_resamples", "20", "--figure_images", "2",
    ]

    report = benchmark.main(argv)

    for name in ("results.json", "results.md", "per_image.csv", "figure_grid.png"):
        assert (output_dir / name).is_file(), name
    saved = json.loads((output_dir / "results.json").read_text())
    summaries = saved["summaries"]
    for method in ("CAST", "ViT + k-means", "CAST, untrained, no position embedding", "pixel Lab k-means",
                   "color merge of the superpixels (Ward)", "CAST, k-means of last-stage tokens (ablation)",
                   "ViT features pooled on the superpixels (ablation)", "CAST, MoCo-v3 (no labels)"):
        assert method in summaries, method
    assert set(summaries["CAST"]["0"]) == {"1", "2"}  # the checkpoint and the last step
    interval = saved["intervals"]["best_iou_L-1"]["CAST - ViT"]
    assert interval["low"] <= interval["estimate"] <= interval["high"] and len(interval["seed_means"]) == 2
    assert set(saved["classic_data_controls"]) == {"one segment", "regular grid", "pixel Lab k-means",
                                                   "color merge of the superpixels (Ward)"}
    with open(output_dir / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {"method", "seed", "step", "image", "best_iou_L-1", "recognized_object_miou_L-1"} <= set(rows[0])
    assert len({row["image"] for row in rows}) == 10
    markdown = (output_dir / "results.md").read_text()
    assert "| CAST - ViT |" in markdown and "Dose-response" in markdown
    assert report["reached_target_accuracy"]["CAST"].keys() == {"0", "1"}


def test_recognition_benchmark_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"--checkpoint_steps must lie in \(0, max_steps=10\)"):
        benchmark.RecognitionBenchmarkArguments(max_steps=10, checkpoint_steps=[10])
    with pytest.raises(ValueError, match="--depths and --num_segments need one entry per stage"):
        benchmark.RecognitionBenchmarkArguments(depths=[1, 1], num_segments=[8, 4, 2])
