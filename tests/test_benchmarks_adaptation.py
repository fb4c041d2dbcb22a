# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The test-time adaptation benchmark (`benchmarks/part_whole/run_adaptation_benchmark.py`): a tiny end-to-end run
(its metrics and intervals are `processing.evaluation.segment_scores`, tested there)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_SCRIPT_OPTIONS, import_script, script_argv

benchmark = import_script("benchmarks/part_whole", "run_adaptation_benchmark")
pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def test_adaptation_benchmark_tiny_run_checks_the_lr0_control(tmp_path):
    output_dir = tmp_path / "adaptation"
    options = {**TINY_SCRIPT_OPTIONS, "--output_dir": output_dir, "--train_samples": 8, "--eval_samples": 2,
               "--tuning_samples": 1, "--lr0_samples": 1, "--adaptation_steps": 1, "--num_views": 2,
               "--bootstrap_samples": 20, "--sweep_learning_rates": "1e-3", "--kmeans_iterations": 3,
               "--warmup_steps": 0, "--sweep_steps": 2, "--sweep_views": 4, "--recognizer_samples": 5,
               "--recognizer_epochs": 1}
    report = benchmark.main(script_argv(options))

    saved = json.loads((output_dir / "results.json").read_text())
    assert set(saved["splits"]) == {"held_out", "shifted"}
    for split in saved["splits"].values():
        assert split["lr0_identical"] == {"cast": True, "vit": True}
        for model in ("cast", "vit"):
            summary = split[model]["summary"]
            assert set(summary) == {"best_segment_iou", "recognized_object_miou", "object_miou", "object_boundary_f",
                                    "accuracy"}
            assert all(0 <= value <= 1 for value in summary["recognized_object_miou"]["before"])
            for condition in ("entropy", "true_label", "wrong_label"):
                for mean, low, high in summary["best_segment_iou"][condition]:
                    assert low <= mean <= high
            assert all(0 <= value <= 1 for value in summary["best_segment_iou"]["before"])
    assert "| cast | best_segment_iou |" in (output_dir / "results.md").read_text()
    assert report["sweep"].keys() == {"learning_rate=0.001", "steps=2", "num_views=4"}
    assert report["recognizer"]["num_segments"] > 0


def test_adaptation_benchmark_rejects_an_unknown_data_mode():
    with pytest.raises(ValueError, match="--data_mode must be one of"):
        benchmark.AdaptationBenchmarkArguments(data_mode="soup")
