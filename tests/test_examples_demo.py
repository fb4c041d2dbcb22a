# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`make demo` (`examples/demo.py`) and the quickstart (`examples/quickstart.py`), each at a tiny size."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, TINY_SCRIPT_OPTIONS, script_argv

EXAMPLES = REPO_ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

demo = importlib.import_module("demo")
quickstart = importlib.import_module("quickstart")
pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def test_demo_tiny_run_trains_saves_reloads_and_segments(tmp_path, capsys):
    output_dir = tmp_path / "demo"
    argv = script_argv({**TINY_SCRIPT_OPTIONS, "--output_dir": output_dir, "--train_samples": 8, "--eval_samples": 3, "--pictures": 2})

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
