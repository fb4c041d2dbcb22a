"""Auto classes, safetensors round trips and Hub remote code (`trust_remote_code=True` without this package)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import REMOTE_CODE_PRELUDE, block_superpixels, tiny_config_kwargs
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor, CastModel

def _save_tiny(folder):
    torch.manual_seed(0)
    model = CastForImageClassification(CastConfig(**tiny_config_kwargs())).eval()
    model.save_pretrained(folder)
    CastImageProcessor(size={"height": 32, "width": 32}, n_segments=12).save_pretrained(folder)
    return model


def _inputs():
    return {"pixel_values": torch.randn(2, 3, 32, 32), "superpixels": block_superpixels(2, 32, 32)}


def test_auto_classes_resolve_cast(tmp_path):
    model = _save_tiny(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), CastConfig)
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), CastImageProcessor)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is CastForImageClassification and type(backbone) is CastModel
    inputs = _inputs()
    with torch.no_grad():
        expected = model(**inputs)
        torch.testing.assert_close(loaded(**inputs).logits, expected.logits, rtol=0, atol=0)
        assert torch.equal(backbone(**inputs).hierarchy, expected.hierarchy)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))


def test_truncated_checkpoint_fails_clearly(tmp_path):
    _save_tiny(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"pretrained_model_name_or_path.*corrupt or truncated"):
        CastForImageClassification.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"corrupt or truncated"):
        AutoModel.from_pretrained(tmp_path)


def test_missing_named_checkpoint_says_how_to_get_it():
    with pytest.raises(OSError, match=r"cast-convert --checkpoint .* --model-name cast-nonexistent .*--install-to-cache"):
        CastModel.from_pretrained("cast-nonexistent")


def test_auto_model_from_config():
    config = AutoConfig.for_model("cast", **tiny_config_kwargs())
    assert isinstance(AutoModel.from_config(config), CastModel)


def test_saved_folder_carries_code_and_full_auto_map(tmp_path):
    _save_tiny(tmp_path)
    for name in ("configuration_cast.py", "modeling_cast.py", "graph_pooling_cast.py", "image_processing_cast.py",
                 "post_processing_cast.py", "superpixels_cast.py", "tensor_slic_cast.py", "backbone_cast.py"):
        assert (tmp_path / name).exists(), name
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_cast.CastConfig",
        "AutoModel": "modeling_cast.CastModel",
        "AutoModelForImageClassification": "modeling_cast.CastForImageClassification",
        "AutoModelForSemanticSegmentation": "modeling_cast.CastForSemanticSegmentation",
        "AutoModelForImageSegmentation": "modeling_cast.CastForImageSegmentation",
        "AutoBackbone": "backbone_cast.CastBackbone",
    }
    processor_map = json.loads((tmp_path / "preprocessor_config.json").read_text())["auto_map"]
    assert processor_map == {"AutoImageProcessor": "image_processing_cast.CastImageProcessor"}


REMOTE_SCRIPT = REMOTE_CODE_PRELUDE + textwrap.dedent(
    """
    import sys, numpy as np, torch
    from PIL import Image

    from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline
    folder, inputs_path, out_path = sys.argv[1:4]
    inputs = dict(np.load(inputs_path))
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
    backbone = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(inputs["pixel_values"]), superpixels=torch.from_numpy(inputs["superpixels"]))
        pooled = backbone(pixel_values=torch.from_numpy(inputs["pixel_values"]), superpixels=torch.from_numpy(inputs["superpixels"])).pooler_output
        # no superpixels: the model computes them with the tensor back-end that its folder carries
        in_model = model(pixel_values=torch.from_numpy(inputs["pixel_values"])).logits
    processed = processor(images=inputs["image"], return_tensors="pt")
    classify = pipeline("image-classification", model=folder, trust_remote_code=True)
    labels = [p["label"] for p in classify(Image.fromarray(inputs["image"]))]
    segmenter = pipeline("image-segmentation", model=folder, trust_remote_code=True)
    segments = segmenter(Image.fromarray(inputs["image"]))
    assert segments and all(s["label"].startswith("level ") for s in segments), segments
    # the saved custom_pipelines entries: the CAST versions of transformers' pipelines, which keep 16-bit files' depth
    assert type(segmenter).__name__ == "CastImageSegmentationPipeline", type(segmenter)
    assert type(classify).__name__ == "CastImageClassificationPipeline", type(classify)
    gray = np.maximum(inputs["image"][..., 0], 1)
    Image.fromarray(gray.astype(np.uint16) * 257).save("sixteen.png")
    Image.fromarray(gray).save("eight.png")
    masks = [[np.asarray(s["mask"]).tobytes() for s in segmenter(name)] for name in ("sixteen.png", "eight.png")]
    assert masks[0] == masks[1]
    # the saved config's custom_pipelines entry and the pipeline's code file make the CAST task work as remote code
    hierarchy = pipeline("hierarchical-segmentation", model=folder, trust_remote_code=True)(Image.fromarray(inputs["image"]))
    assert len(hierarchy["levels"]) == 2 and hierarchy["levels"][0].shape == inputs["image"].shape[:2], hierarchy
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("modeling_cast", "processing"))
    np.savez(out_path, logits=out.logits.numpy(), hierarchy=out.hierarchy.numpy(), pooled=pooled.numpy(),
             in_model=in_model.numpy(),
             superpixels=processed["superpixels"].numpy(), leaked=np.array(leaked, dtype=object), labels=np.array(labels))
    print(type(model).__module__)
    """
)


def test_remote_code_round_trip_without_package(tmp_path):
    folder = tmp_path / "checkpoint"
    model = _save_tiny(folder)
    inputs = _inputs()
    image = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    np.savez(tmp_path / "inputs.npz", image=image, **{k: v.numpy() for k, v in inputs.items()})
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    # run from an empty folder so that neither the repository nor an installed copy is importable as code source
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(folder), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "transformers_modules" in result.stdout
    assert "is not supported" not in result.stderr  # transformers' false "model not supported" log line
    out = np.load(tmp_path / "out.npz", allow_pickle=True)
    assert list(out["leaked"]) == []
    with torch.no_grad():
        expected = model(**inputs)
    np.testing.assert_array_equal(out["logits"], expected.logits.numpy())
    np.testing.assert_array_equal(out["hierarchy"], expected.hierarchy.numpy())
    with torch.no_grad():
        in_model = model(pixel_values=inputs["pixel_values"]).logits
    np.testing.assert_array_equal(out["in_model"], in_model.numpy())
    local_superpixels = CastImageProcessor.from_pretrained(folder)(images=image, return_tensors="pt")["superpixels"]
    np.testing.assert_array_equal(out["superpixels"], local_superpixels.numpy())
    assert set(out["labels"]) <= set(model.config.id2label.values())
