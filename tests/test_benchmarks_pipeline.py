# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The end-to-end pipeline benchmark (`benchmarks/bench_pipeline.py`) on tiny models, one photo, one round."""

from __future__ import annotations

import pytest
import torch
from conftest import import_script

import processing.image_processing_cast as cast_processing_module

benchmark = import_script("benchmarks", "bench_pipeline")
pytestmark = pytest.mark.usefixtures("restore_torch_threads")

TINY_RUN = ["--tiny", "--models", "cast-small", "--methods", "slic", "in-model", "--photos", "2", "--repeats", "1",
            "--warmup", "0", "--batch-sizes", "2", "--threads", "1", "--no-cuda"]


def test_bench_pipeline_smoke_run_reports_rates_parts_and_superpixels(capsys):
    superpixel_function = cast_processing_module.compute_superpixels

    rows = benchmark.main(TINY_RUN)

    assert [(row["model"], row["method"], row["device"], row["batch"]) for row in rows] == [
        ("cast-small", "slic", "cpu", 2), ("cast-small", "in-model", "cpu", 2)
    ]
    for row in rows:
        assert row["rate"] > 0 and row["vit_rate"] > 0
        assert row["ratio"] == pytest.approx(row["rate"] / row["vit_rate"])
        parts = row["parts"]
        assert parts["superpixels"] > 0 and parts["forward"] > 0 and parts["postprocess"] > 0
        assert parts["preprocess"] + parts["forward"] + parts["postprocess"] + parts["pipeline other"] + (
            parts["superpixels"] if row["method"] == "in-model" else 0.0
        ) == pytest.approx(parts["total"])
        assert row["superpixels_alone"][0] > 0
    slic, in_model = (row["parts"] for row in rows)
    assert slic["superpixels"] < slic["preprocess"]  # the processor's superpixels are part of preprocessing
    assert in_model["superpixels"] > in_model["preprocess"] - in_model["decode+resize+normalize"] == 0.0
    # the timing wrappers are gone after the run
    assert cast_processing_module.compute_superpixels is superpixel_function
    printed = capsys.readouterr().out
    assert "Superpixels alone" in printed and "cast-small  slic" in printed and "all photos in one call" in printed


def test_bench_pipeline_part_timer_records_one_superpixel_call_per_image():
    segmenters, _ = benchmark.build_pipelines("cast-small", ["slic"], tiny=True)
    segmenter = segmenters["slic"]
    photos = benchmark.Image.new("RGB", (40, 30), (200, 30, 30)), benchmark.Image.new("RGB", (20, 50), (0, 90, 200))

    parts, calls = benchmark.split_parts(segmenter, list(photos), batch_size=2)

    assert len(calls) == 2 and calls[0][1][0].shape == (32, 32, 3)  # the resized view the processor segments
    assert "preprocess" not in segmenter.__dict__ and "_forward" not in segmenter.__dict__
    assert "compute_superpixels" not in segmenter.model.__dict__
    assert parts["total"] > 0


def test_bench_pipeline_pixels_only_processor_gives_the_processor_pixels():
    images = [benchmark.Image.new("RGB", (40, 30), (200, 30, 30)), benchmark.Image.new("RGB", (20, 50), (0, 90, 200))]
    options = {"size": {"height": 32, "width": 32}}

    pixels_only = benchmark.PixelsOnlyProcessor(**options)(images, return_tensors="pt")
    full = benchmark.CastImageProcessor(**options)(images, return_tensors="pt")

    assert set(pixels_only) == {"pixel_values"}
    assert torch.equal(pixels_only["pixel_values"], full["pixel_values"])


def test_bench_pipeline_rejects_unknown_methods():
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--methods", "watershed"])
