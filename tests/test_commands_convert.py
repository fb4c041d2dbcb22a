"""`cast-convert`: official checkpoint files (MoCo-v3, DeiT, bare state dicts) -> model folders, refused and broken
files, atomic output, installation into the local Hugging Face cache, and upload to a fake Hub."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from conftest import FIXTURES, REMOTE_CODE_PRELUDE, REPO_ROOT, SHARED_REFERENCE, block_superpixels
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from modeling_cast import CastForImageClassification, CastForSemanticSegmentation, CastModel
from modeling_cast.commands import convert as convert_command
from modeling_cast.conversion import convert_cast_original_to_hf as converter
from modeling_cast.conversion import convert_state_dict, infer_config

TINY_ARCHITECTURE = {"num_attention_heads": 6, "num_segments": [16, 8, 4, 2]}
CUSTOM_NAME = "cast-tiny-test"
MOCO_CHECKPOINT = SHARED_REFERENCE / "moco_tiny_checkpoint.pth.tar"
ATOL = RTOL = 1e-4


@pytest.fixture(scope="module")
def official():
    """The official tiny CAST state dict (10-class head), as the official code saves it."""
    data = load_file(str(FIXTURES / "tiny.safetensors"))
    return {key[len("state_dict."):]: value for key, value in data.items() if key.startswith("state_dict.")}


@pytest.fixture
def architecture_json(tmp_path):
    path = tmp_path / "tiny_architecture.json"
    path.write_text(json.dumps(TINY_ARCHITECTURE))
    return path


def _save(tmp_path, checkpoint, name="checkpoint.pth"):
    path = tmp_path / name
    torch.save(checkpoint, path)
    return path


def _convert(tmp_path, checkpoint_path, *extra, model_name=CUSTOM_NAME, config=None, output="out"):
    argv = ["--checkpoint", str(checkpoint_path), "--model-name", model_name, "--output-dir", str(tmp_path / output)]
    if config is not None:
        argv += ["--config", str(config)]
    return convert_command.main([*argv, *extra])


def test_cli_converts_moco_checkpoint_and_reproduces_reference(tmp_path, architecture_json, capsys):
    if not MOCO_CHECKPOINT.exists():
        pytest.skip(f"{MOCO_CHECKPOINT} not found (the official-format MoCo checkpoint lives in ../shared/reference)")
    expected = load_file(str(FIXTURES / "moco_tiny_expected.safetensors"))
    status = _convert(tmp_path, MOCO_CHECKPOINT, "--reference", str(FIXTURES / "moco_tiny_expected.safetensors"),
                      config=architecture_json)
    assert status == 0
    summary = capsys.readouterr().out
    assert "MoCo-v3 training checkpoint" in summary and "arch 'cast_tiny_test'" in summary
    assert "203  MoCo momentum encoder" in summary and "10  MoCo predictor" in summary
    assert "16  MoCo projector head" in summary and "reference" in summary
    model = CastModel.from_pretrained(tmp_path / "out").eval()
    assert sorted(path.name for path in (tmp_path / "out").glob("*.safetensors")) == ["model.safetensors"]
    with torch.no_grad():
        outputs = model(expected["inputs.pixel_values"], expected["inputs.superpixels"], output_assignments=True)
    torch.testing.assert_close(outputs.pooler_output, expected["outputs.pooled"], atol=ATOL, rtol=RTOL)
    for level in range(1, 5):
        official = expected[f"outputs.assign_logits_{level}"]
        # the first level has a row per token of the static budget: the official tokens, then zero padding rows
        logits = outputs.assignment_logits[level - 1]
        torch.testing.assert_close(logits[:, : official.shape[1]], official, atol=ATOL, rtol=RTOL)
        assert not logits[:, official.shape[1]:].any()
        assert torch.equal(outputs.hierarchy[:, level - 1], expected[f"outputs.segmentation_{level}"])


def test_cli_converts_whole_moco_pretraining_model(tmp_path, architecture_json, capsys):
    """--with-pretraining-heads keeps both encoders, the projectors and the predictor (CastForPreTraining), and the
    projector/predictor reproduce the official MoCo heads."""
    if not MOCO_CHECKPOINT.exists():
        pytest.skip(f"{MOCO_CHECKPOINT} not found (the official-format MoCo checkpoint lives in ../shared/reference)")
    from modeling_cast import CastForPreTraining

    status = _convert(tmp_path, MOCO_CHECKPOINT, "--with-pretraining-heads", "--reference",
                      str(FIXTURES / "moco_tiny_expected.safetensors"), config=architecture_json)
    assert status == 0
    summary = capsys.readouterr().out
    assert "(CastForPreTraining)" in summary and "projector" in summary and "predictor" in summary
    assert "MoCo momentum encoder" not in summary  # kept, not dropped
    model = CastForPreTraining.from_pretrained(tmp_path / "out").eval()
    official = torch.load(MOCO_CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    torch.testing.assert_close(model.momentum_cast.embeddings.cls_token, official["module.momentum_encoder.cls_token"],
                               rtol=0, atol=0)
    torch.testing.assert_close(model.predictor[3].weight, official["module.predictor.3.weight"], rtol=0, atol=0)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["pretraining_projection_dim"] == 32
    assert isinstance(CastModel.from_pretrained(tmp_path / "out"), CastModel)  # the backbone alone still loads


def test_cli_with_pretraining_heads_needs_moco_checkpoint(tmp_path, official, architecture_json, capsys):
    assert _convert(tmp_path, _save(tmp_path, official), "--with-pretraining-heads", config=architecture_json) == 1
    assert "--with-pretraining-heads needs a MoCo-v3 training checkpoint" in capsys.readouterr().err


def test_cli_converts_released_cast_small_weights_to_named_config(tmp_path):
    """Real `cast_small` weights (from the official small_224 vectors) wrapped as a MoCo checkpoint convert with the
    named configuration, which equals hub_configs/cast-small, and reproduce the official features."""
    reference = SHARED_REFERENCE / "small_224.safetensors"
    if not reference.exists():
        pytest.skip(f"{reference} not found (real cast_small weights live in ../shared/reference)")
    data = load_file(str(reference))
    alone = load_file(str(SHARED_REFERENCE / "small_224_alone.safetensors"))
    backbone = {f"module.base_encoder.{key[len('state_dict.'):]}": value.float() for key, value in data.items()
                if key.startswith("state_dict.") and not key.startswith("state_dict.head.")}
    path = _save(tmp_path, {"arch": "cast_small", "epoch": 100, "state_dict": backbone, "optimizer": {}})
    assert _convert(tmp_path, path, model_name="cast-small") == 0
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    saved.pop("transformers_version")
    assert saved == json.loads((REPO_ROOT / "hub_configs" / "cast-small" / "config.json").read_text())
    for filename in ("preprocessor_config.json", "README.md"):
        expected = (REPO_ROOT / "hub_configs" / "cast-small" / filename).read_text()
        assert (tmp_path / "out" / filename).read_text() == expected
    model = CastModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        pooled = model(data["inputs.pixel_values"][:1], data["inputs.superpixels"][:1]).pooler_output
    torch.testing.assert_close(pooled, alone["image0.pooled"], atol=ATOL, rtol=RTOL)


class _RunsCode:
    """Pickles as a call to os.system: loading it with pickle would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cli_refuses_pickle_that_needs_code_execution(tmp_path, official, capsys):
    marker = tmp_path / "code_ran"
    path = _save(tmp_path, {"state_dict": official, "payload": _RunsCode(marker)})
    assert _convert(tmp_path, path, model_name="cast-small") == convert_command.EXIT_CONVERSION_FAILED
    error = capsys.readouterr().err
    assert "refused to load checkpoint" in error and "needs to run code" in error and "system" in error
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_cli_reports_truncated_checkpoint(tmp_path, official, capsys):
    path = _save(tmp_path, official)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert _convert(tmp_path, path, model_name="cast-small") == convert_command.EXIT_CONVERSION_FAILED
    error = capsys.readouterr().err
    assert f"checkpoint '{path}' is truncated or corrupt" in error
    assert not (tmp_path / "out").exists()


def test_cli_reports_missing_and_non_checkpoint_files(tmp_path, capsys):
    assert _convert(tmp_path, tmp_path / "absent.pth", model_name="cast-small") == 1
    assert "is not a file" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert _convert(tmp_path, tmp_path / "notes.txt", model_name="cast-small") == 1
    assert "truncated or corrupt, or not a PyTorch checkpoint" in capsys.readouterr().err


def test_cli_checks_name_and_output_folder_before_reading_the_checkpoint(tmp_path, capsys):
    # the checkpoint does not even exist: the argument errors must come first (official files reach 2 GB)
    missing = tmp_path / "not-there.pth"
    assert _convert(tmp_path, missing, model_name="my-cast") == 1
    assert "--model-name 'my-cast' is not a named model" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    assert _convert(tmp_path, missing, model_name="cast-base", output="full") == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and "reading" not in err
    assert (tmp_path / "full" / "keep.txt").read_text() == "user data"


def test_cli_rejects_checkpoint_with_wrong_shape(tmp_path, official, architecture_json, capsys):
    path = _save(tmp_path, {**official, "norm.weight": torch.ones(95)})
    assert _convert(tmp_path, path, config=architecture_json) == 1
    assert "shapes do not fit" in capsys.readouterr().err
    # right layout, wrong named model: the tiny weights are not cast-small
    assert _convert(tmp_path, _save(tmp_path, official, "tiny.pth"), model_name="cast-small") == 1
    error = capsys.readouterr().err
    assert "does not fit cast-small (hidden_size=384" in error and not (tmp_path / "out").exists()


def test_cli_rejects_arch_of_another_named_model(tmp_path, official, capsys):
    moco = {"arch": "cast_base", "state_dict": {f"module.base_encoder.{k}": v for k, v in official.items()}}
    assert _convert(tmp_path, _save(tmp_path, moco), model_name="cast-small") == 1
    assert "arch 'cast_base' does not match --model-name cast-small" in capsys.readouterr().err
    assert _convert(tmp_path, _save(tmp_path, moco), model_name="cast-small-deit") == 1
    assert "is a moco checkpoint but cast-small-deit is converted from a deit checkpoint" in capsys.readouterr().err


def _segmentation_variant(official):
    """The tiny weights laid out like the official segmentation variant: no `blocks.*` copies and no final norm,
    stage-local block numbers, and the level fusion `block_fusion.*` (BatchNorm1d -> Dropout -> Linear)."""
    weights = {}
    for key, value in official.items():
        if not re.match(r"(blocks\.\d+|norm|head)\.", key):
            weights[re.sub(r"^blocks(\d+)\.\d+\.", r"blocks\1.0.", key)] = value
    width = 4 * 96
    generator = torch.Generator().manual_seed(0)
    weights.update({
        "block_fusion.proj_blocks.0.norm.weight": torch.rand(width, generator=generator) + 0.5,
        "block_fusion.proj_blocks.0.norm.bias": torch.randn(width, generator=generator),
        "block_fusion.proj_blocks.0.norm.running_mean": torch.randn(width, generator=generator),
        "block_fusion.proj_blocks.0.norm.running_var": torch.rand(width, generator=generator) + 0.5,
        "block_fusion.proj_blocks.0.norm.num_batches_tracked": torch.tensor(7),
        "block_fusion.proj_blocks.2.weight": torch.randn(96, width, generator=generator) * 0.02,
        "block_fusion.proj_blocks.2.bias": torch.randn(96, generator=generator),
    })
    return weights


def test_cli_converts_segmentation_variant_moco_checkpoint(tmp_path, official, architecture_json, capsys):
    weights = _segmentation_variant(official)
    moco = {"arch": "cast_seg_small_pretrain", "epoch": 99, "state_dict": {
        **{f"module.base_encoder.{key}": value for key, value in weights.items()},
        "module.base_encoder.head.0.weight": torch.zeros(64, 96), "module.predictor.0.weight": torch.zeros(64, 32),
    }}
    path = _save(tmp_path, moco)
    assert _convert(tmp_path, path, model_name="cast-small") == 1  # a backbone name for segmentation weights
    assert "has `block_fusion.*` weights" in capsys.readouterr().err
    assert _convert(tmp_path, path, model_name="cast-small-coco") == 1  # right variant, tiny shapes
    assert "does not fit cast-small-coco" in capsys.readouterr().err
    assert _convert(tmp_path, path, config=architecture_json) == 0
    summary = capsys.readouterr().out
    assert "CastForSemanticSegmentation" in summary and "classifier: not in the checkpoint" in summary
    model = CastForSemanticSegmentation.from_pretrained(tmp_path / "out", num_labels=5).eval()
    torch.testing.assert_close(model.fusion.projection.weight, weights["block_fusion.proj_blocks.2.weight"])
    torch.testing.assert_close(model.fusion.norm.running_var, weights["block_fusion.proj_blocks.0.norm.running_var"])
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), block_superpixels(1, 64, 64)).logits
    assert logits.shape == (1, 5, 64, 64)


def test_cli_rejects_backbone_weights_for_segmentation_name(tmp_path, official, capsys):
    moco = {"arch": "cast_small", "state_dict": {f"module.base_encoder.{k}": v for k, v in official.items()}}
    assert _convert(tmp_path, _save(tmp_path, moco), model_name="cast-small-coco") == 1
    assert "has no `block_fusion.*` weights" in capsys.readouterr().err


def test_cli_custom_name_needs_architecture(tmp_path, official, capsys):
    assert _convert(tmp_path, _save(tmp_path, official)) == 1
    assert "pass its architecture with --config" in capsys.readouterr().err


def test_cli_converts_deit_checkpoint_with_training_arguments(tmp_path, official, architecture_json, capsys):
    """DeiT checkpoints store `model`, `model_ema`, optimizer state and the argparse namespace of the run."""
    weights = {key: value for key, value in official.items() if key != "pe_token"}
    weights["pos_embed"] = torch.randn(1, 1 + 64, 96) * 0.02  # learned table with a class-token row
    checkpoint = {"model": weights, "model_ema": weights, "optimizer": {"state": {}}, "epoch": 299,
                  "args": argparse.Namespace(model="cast_tiny", lr=5e-4)}
    assert _convert(tmp_path, _save(tmp_path, checkpoint), config=architecture_json) == 0
    summary = capsys.readouterr().out
    assert "DeiT training checkpoint" in summary and "arch 'cast_tiny'" in summary and "model_ema" in summary
    model = CastForImageClassification.from_pretrained(tmp_path / "out").eval()
    config = infer_config(weights, **TINY_ARCHITECTURE)
    assert model.config.position_embedding_type == "learned" and model.config.num_labels == 10
    direct = CastForImageClassification(config).eval()
    direct.load_state_dict(convert_state_dict(weights, config), strict=True)
    inputs = (torch.randn(2, 3, 64, 64), block_superpixels(2, 64, 64))
    with torch.no_grad():
        assert torch.equal(model(*inputs).logits, direct(*inputs).logits)


def test_cli_output_folder_is_written_atomically(tmp_path, official, architecture_json, capsys):
    path = _save(tmp_path, official)
    failing = mock.patch.object(converter, "write_model_folder", side_effect=KeyboardInterrupt)
    with failing, pytest.raises(KeyboardInterrupt):
        _convert(tmp_path, path, config=architecture_json)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth", "tiny_architecture.json"]
    assert _convert(tmp_path, path, config=architecture_json) == 0
    assert _convert(tmp_path, path, config=architecture_json) == 1  # no silent overwrite
    assert "not empty: pass --overwrite" in capsys.readouterr().err
    assert _convert(tmp_path, path, "--overwrite", config=architecture_json) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth", "out", "tiny_architecture.json"]


@pytest.mark.parametrize("option", ["--checkpoint", "--config", "--reference", "--cache-dir"])
def test_cli_overwrite_never_deletes_its_own_inputs(tmp_path, official, architecture_json, option, capsys):
    """Issue 17 item 3: `--overwrite` replaced the output folder, deleting a checkpoint (or `--config`,
    `--reference`) that lay inside it."""
    output = tmp_path / "out"
    output.mkdir()
    inputs = {
        "--checkpoint": _save(tmp_path, official),
        "--config": architecture_json,
        "--reference": tmp_path / "reference.safetensors",
    }
    inputs["--reference"].write_bytes(b"kept")
    inside = output / "nested" / "input"
    inside.parent.mkdir()
    if option == "--cache-dir":
        inside.mkdir()
        inputs[option] = inside
    else:
        shutil.copyfile(inputs[option], inside)
        # reached through a symbolic link and `..`, which must not hide where the file is
        (tmp_path / "link").symlink_to(output)
        inputs[option] = tmp_path / "link" / "nested" / ".." / "nested" / "input"
    argv = ["--model-name", CUSTOM_NAME, "--output-dir", str(output), "--overwrite"]
    argv += [item for name, path in inputs.items() for item in (name, str(path))]
    if option == "--cache-dir":
        argv.append("--install-to-cache")
    assert convert_command.main(argv) == 1
    err = capsys.readouterr().err
    assert f"`{option}` {str(inputs[option])!r} lies inside `--output-dir` {str(output)!r}" in err
    assert "reading" not in err  # refused before the checkpoint is read
    assert inside.exists() and sorted(p.name for p in output.iterdir()) == ["nested"]


def test_cli_writes_float32_weights_with_save_pretrained(tmp_path, official, architecture_json):
    """Half-precision official weights are stored in float32, like the official ones; integer tensors unchanged."""
    half = {key: value.half() if value.is_floating_point() else value for key, value in official.items()}
    assert _convert(tmp_path, _save(tmp_path, half), config=architecture_json) == 0
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    expected = convert_state_dict(half, infer_config(half, **TINY_ARCHITECTURE))
    assert written.keys() == expected.keys()
    for name, tensor in expected.items():
        assert written[name].dtype == (torch.float32 if tensor.is_floating_point() else tensor.dtype), name
        assert torch.equal(written[name], tensor.to(written[name].dtype)), name
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "float32"


def test_cli_progress_options_control_library_progress_bars(tmp_path, official, architecture_json, capsys):
    """--progress / --no-progress switch the progress bars of writing the weights (transformers) and uploading
    (huggingface_hub) for the run only."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as transformers_logging

    before = (transformers_logging.is_progress_bar_enabled(), are_progress_bars_disabled())
    path = _save(tmp_path, official)
    assert _convert(tmp_path, path, "--progress", config=architecture_json, output="shown") == 0
    assert "Writing model shards" in capsys.readouterr().err
    assert _convert(tmp_path, path, "--no-progress", config=architecture_json, output="hidden") == 0
    assert "Writing model shards" not in capsys.readouterr().err
    assert (transformers_logging.is_progress_bar_enabled(), are_progress_bars_disabled()) == before


NAMED_LOADING_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, torch
    from PIL import Image
    import modeling_cast
    from transformers import AutoImageProcessor, AutoModel, pipeline

    name, inputs_path, out_path = sys.argv[1:4]
    inputs = dict(np.load(inputs_path))
    model = AutoModel.from_pretrained(name).eval()
    processor = AutoImageProcessor.from_pretrained(name)
    segments = pipeline("image-segmentation", model=name)(Image.fromarray(inputs["image"]))
    with torch.no_grad():
        pooled = model(torch.from_numpy(inputs["pixel_values"]), torch.from_numpy(inputs["superpixels"])).pooler_output
    missing = []  # a released name that is not installed: every entry point says how to get it
    for load in (AutoModel.from_pretrained, AutoImageProcessor.from_pretrained,
                 lambda name: pipeline("image-segmentation", model=name)):
        try:
            load("cast-base")
            missing.append("")
        except OSError as error:
            missing.append(str(error))
    np.savez(out_path, pooled=pooled.numpy(), method=processor.superpixel_method, segments=len(segments),
             missing=np.array(missing))
    """
)


def test_cli_install_to_cache_enables_offline_named_loading(tmp_path, official, architecture_json, monkeypatch):
    cache = tmp_path / "hub_cache"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))  # what HF_HUB_CACHE=... sets
    assert _convert(tmp_path, _save(tmp_path, official), "--install-to-cache", config=architecture_json) == 0
    assert (cache / f"models--{CUSTOM_NAME}" / "refs" / "main").exists()
    inputs = {"pixel_values": torch.randn(2, 3, 64, 64), "superpixels": block_superpixels(2, 64, 64)}
    image = (np.random.default_rng(0).random((48, 56, 3)) * 255).astype(np.uint8)
    np.savez(tmp_path / "inputs.npz", image=image, **{key: value.numpy() for key, value in inputs.items()})
    (tmp_path / "named.py").write_text(NAMED_LOADING_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, str(tmp_path / "named.py"), CUSTOM_NAME, str(tmp_path / "inputs.npz"),
         str(tmp_path / "out.npz")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = np.load(tmp_path / "out.npz")
    with torch.no_grad():
        expected = CastModel.from_pretrained(tmp_path / "out").eval()(**inputs).pooler_output
    np.testing.assert_array_equal(out["pooled"], expected.numpy())
    assert str(out["method"]) == "seeds" and int(out["segments"]) > 0
    assert len(out["missing"]) == 3
    for message in out["missing"]:
        assert "cast-convert --checkpoint <official file> --model-name cast-base" in str(message)


REMOTE_SCRIPT = REMOTE_CODE_PRELUDE + textwrap.dedent(
    """
    import sys, numpy as np, torch

    from transformers import (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification,
                              AutoModelForImageSegmentation, AutoModelForSemanticSegmentation)
    folder, inputs_path, out_path = sys.argv[1:4]
    inputs = {k: torch.from_numpy(v) for k, v in np.load(inputs_path).items()}
    loaded = {}
    for auto_class in (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification,
                       AutoModelForImageSegmentation, AutoModelForSemanticSegmentation):
        loaded[auto_class.__name__] = type(auto_class.from_pretrained(folder, trust_remote_code=True)).__name__
    classifier = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
    backbone = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = classifier(**inputs).logits
        pooled = backbone(**inputs).pooler_output
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("modeling_cast", "processing"))
    np.savez(out_path, logits=logits.numpy(), pooled=pooled.numpy(), leaked=np.array(leaked, dtype=object),
             loaded=np.array(sorted(loaded.items()), dtype=object))
    """
)


class FakeHfApi:
    """Stands in for transformers' Hub client: uploaded folders are copied into a local folder."""

    def __init__(self, remote: Path):
        self.remote = remote
        self.commits = []

    def create_repo(self, repo_id, **kwargs):
        (self.remote / repo_id).mkdir(parents=True, exist_ok=True)
        return argparse.Namespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, commit_message=None, **kwargs):
        self.commits.append(commit_message)
        shutil.copytree(folder_path, self.remote / repo_id, dirs_exist_ok=True)


def test_cli_push_to_fake_hub_loads_with_remote_code_only(tmp_path, official, architecture_json):
    remote = tmp_path / "remote"
    path = _save(tmp_path, official)
    hub = FakeHfApi(remote)
    with mock.patch("transformers.utils.hub.hf_api", return_value=hub):
        assert _convert(tmp_path, path, "--push-to-hub", f"someone/{CUSTOM_NAME}", config=architecture_json) == 0
    assert len(hub.commits) == 1  # one commit
    uploaded = remote / "someone" / CUSTOM_NAME
    files = sorted(p.name for p in uploaded.iterdir())
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "configuration_cast.py",
            "modeling_cast.py", "image_processing_cast.py"} <= set(files)
    assert json.loads((uploaded / "config.json").read_text())["auto_map"]["AutoModelForImageClassification"]
    assert ModelCard.load(uploaded / "README.md").data.library_name == "transformers"

    inputs = {"pixel_values": torch.randn(2, 3, 64, 64), "superpixels": block_superpixels(2, 64, 64)}
    np.savez(tmp_path / "inputs.npz", **{key: value.numpy() for key, value in inputs.items()})
    (tmp_path / "remote.py").write_text(REMOTE_SCRIPT)
    (tmp_path / "empty").mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "remote.py"), str(uploaded), str(tmp_path / "inputs.npz"),
         str(tmp_path / "out.npz")],
        cwd=tmp_path / "empty", env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = np.load(tmp_path / "out.npz", allow_pickle=True)
    assert list(out["leaked"]) == []
    assert dict(out["loaded"].tolist()) == {
        "AutoConfig": "CastConfig", "AutoImageProcessor": "CastImageProcessor", "AutoModel": "CastModel",
        "AutoModelForImageClassification": "CastForImageClassification",
        "AutoModelForImageSegmentation": "CastForImageClassification",  # (a classifier folder keeps its head)
        "AutoModelForSemanticSegmentation": "CastForSemanticSegmentation",
    }
    original = CastForImageClassification.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        np.testing.assert_array_equal(out["logits"], original(**inputs).logits.numpy())
        np.testing.assert_array_equal(out["pooled"], original.cast(**inputs).pooler_output.numpy())
