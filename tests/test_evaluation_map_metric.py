# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The local `evaluate` modules (`processing/evaluation/evaluate_metrics/<name>/<name>.py`, built on
`processing.evaluation.map_metric.MapMetric`), loaded by path offline (conftest sets HF_HUB_OFFLINE=1)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from processing.evaluation.metrics import boundary_f_score

EVALUATE_MODULES = REPO_ROOT / "processing" / "evaluation" / "evaluate_metrics"


def _halves(height: int = 8, width: int = 8, column: int = 4) -> np.ndarray:
    """Columns left of `column` hold 0, the others 1."""
    return (np.arange(width) >= column).astype(np.int64)[None].repeat(height, axis=0)


@pytest.fixture(scope="module")
def evaluate_module():
    evaluate = pytest.importorskip("evaluate", reason="evaluate is part of the `train` extra")
    return lambda name: evaluate.load(str(EVALUATE_MODULES / name))


def test_evaluate_region_miou_module(evaluate_module):
    metric = evaluate_module("region_miou")

    result = metric.compute(predictions=[np.array([[7, 3, 3, 3]])], references=[np.array([[0, 0, 1, 1]])])

    assert result["mean_iou"] == pytest.approx(7 / 12)
    assert result["per_image_iou"] == [pytest.approx(7 / 12)]


def test_evaluate_hungarian_miou_module_split_and_per_image(evaluate_module):
    metric = evaluate_module("hungarian_miou")
    references = [[[0, 0, 1, 1]], [[0, 0, 1, 1]]]
    predictions = [[[0, 0, 1, 1]], [[1, 1, 0, 0]]]

    assert metric.compute(predictions=predictions, references=references)["mean_iou"] == pytest.approx(1 / 3)
    assert metric.compute(predictions=predictions, references=references, per_image=True)["mean_iou"] == 1.0


def test_evaluate_boundary_f_score_module_matches_the_function(evaluate_module):
    metric = evaluate_module("boundary_f_score")
    reference, prediction = _halves(), _halves()
    prediction[4:, 4:] = 2

    metric.add_batch(predictions=[prediction], references=[reference])
    metric.add_batch(predictions=[reference], references=[reference])
    result = metric.compute(tolerance=0.0)

    assert result == boundary_f_score([prediction, reference], [reference, reference], tolerance=0.0)
    assert result["precision"] == pytest.approx(16 / 20)


def test_evaluate_superpixel_quality_module(evaluate_module):
    metric = evaluate_module("superpixel_quality")

    result = metric.compute(predictions=[np.array([[0, 1, 1, 2]] * 4)], references=[_halves(4, 4, 2)], tolerance=0.2)

    assert result["undersegmentation_error"] == pytest.approx(0.5)
    assert result["achievable_segmentation_accuracy"] == pytest.approx(0.75)
    assert result["boundary_recall"] == 1.0


def test_evaluate_modules_each_have_their_script():
    for name in ("region_miou", "hungarian_miou", "boundary_f_score", "superpixel_quality"):
        assert (EVALUATE_MODULES / name / f"{name}.py").is_file(), name
    assert Path(EVALUATE_MODULES / "README.md").is_file()
