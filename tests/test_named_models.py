"""The named-model table: generated hub_configs, model cards, processor settings, and the local Hugging Face cache
layout that makes `from_pretrained("<name>")` work offline."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import REPO_ROOT
from huggingface_hub import ModelCard, hf_hub_download

from modeling_cast import modeling_cast as modeling
from modeling_cast.hub.named_models import (
    NAMED_MODELS,
    check_named_model,
    generate_hub_configs,
    install_to_cache,
    load_named,
    main,
    named_config,
    named_model_for_arch,
    named_processor,
)

HUB_CONFIGS = REPO_ROOT / "hub_configs"
RELEASED = {"cast-small", "cast-small-deep", "cast-base", "cast-base-deep", "cast-small-deit", "cast-small-coco"}
# The only numbers the cards may cite: the results table of the official README (see ../shared/reference/README.md).
OFFICIAL_README_NUMBERS = {67.9, 68.1, 69.1, 72.5, 72.4, 38.4, 67.6, 80.4, 43.1, 49.1, 29.67, 13.21}
EXPECTED_MODEL_INDEX = {
    "cast-small": [68.1],
    "cast-small-deep": [69.1],
    "cast-base": [72.4, 29.67, 13.21],
    "cast-base-deep": [],
    "cast-small-deit": [80.4],
    "cast-small-coco": [38.4],
}


def test_named_models_cover_released_checkpoints():
    assert set(NAMED_MODELS) == RELEASED
    assert named_model_for_arch("cast_base", "moco") == "cast-base"
    assert named_model_for_arch("cast_small", "deit") == "cast-small-deit"
    assert named_model_for_arch("cast_seg_small_pretrain", "moco-segmentation") == "cast-small-coco"
    assert named_model_for_arch("cast_tiny_test", "moco") is None


def test_hub_configs_are_up_to_date(tmp_path):
    """hub_configs/ is generated from the table: regenerate with `python -m modeling_cast.hub.named_models --output
    hub_configs` when this fails."""
    generate_hub_configs(tmp_path)
    assert sorted(path.name for path in HUB_CONFIGS.iterdir()) == sorted(NAMED_MODELS)
    for name in NAMED_MODELS:
        for filename in ("config.json", "preprocessor_config.json", "README.md"):
            expected = (tmp_path / name / filename).read_text()
            assert (HUB_CONFIGS / name / filename).read_text() == expected, f"hub_configs/{name}/{filename} is stale"
        assert sorted(path.name for path in (HUB_CONFIGS / name).iterdir()) == [
            "README.md", "config.json", "preprocessor_config.json"
        ]


def test_named_models_generator_cli_writes_one_model(tmp_path):
    assert main(["--output", str(tmp_path), "--name", "cast-small"]) == 0
    assert sorted(path.name for path in (tmp_path / "cast-small").iterdir()) == [
        "README.md", "config.json", "preprocessor_config.json"
    ]


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_named_config_builds_model_with_preset_architecture(name):
    entry = NAMED_MODELS[name]
    config = named_config(name)
    with torch.device("meta"):
        model = getattr(modeling, entry.architecture)(config)
    hub_config = json.loads((HUB_CONFIGS / name / "config.json").read_text())
    assert hub_config["architectures"] == [entry.architecture]
    assert set(hub_config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
    assert (config.hidden_size, config.depths, config.num_segments) == (
        hub_config["hidden_size"], hub_config["depths"], [64, 32, 16, 8]
    )
    assert sum(parameter.numel() for parameter in model.parameters()) > 0


def test_named_config_parameter_counts_follow_architecture():
    def count(name):
        with torch.device("meta"):
            model = getattr(modeling, NAMED_MODELS[name].architecture)(named_config(name))
        return sum(parameter.numel() for parameter in model.parameters())

    small, small_deep, base, base_deep = (
        count(name) for name in ("cast-small", "cast-small-deep", "cast-base", "cast-base-deep")
    )
    assert small < small_deep < base < base_deep
    # the DeiT classifier adds a learned position table with a class row (785 x 384) and a 1000-class head
    assert count("cast-small-deit") - small == (28 * 28 + 1) * 384 + 1000 * 384 + 1000


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_named_processor_uses_training_superpixels(name):
    processor = named_processor(name)
    assert (processor.superpixel_method, processor.n_segments) == ("seeds", 196)
    stored = json.loads((HUB_CONFIGS / name / "preprocessor_config.json").read_text())
    assert stored["superpixel_method"] == "seeds" and stored["n_segments"] == 196
    assert stored["image_processor_type"] == "CastImageProcessor"
    final_size = stored["crop_size"] if stored["do_center_crop"] else stored["size"]
    assert final_size == {"height": 224, "width": 224}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_model_card_parses_and_carries_metadata(name):
    entry = NAMED_MODELS[name]
    card = ModelCard.load(HUB_CONFIGS / name / "README.md")
    data = card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == entry.pipeline_tag
    assert "cast" in data.tags and "superpixels" in data.tags
    assert data.license == "other" and data.license_link
    values = [result.metric_value for result in data.eval_results or []]
    assert values == EXPECTED_MODEL_INDEX[name]
    if values:
        assert all(result.source_url == "https://github.com/twke18/CAST" for result in data.eval_results)
    for heading in ("## How to use", "## Training data", "## Training recipe", "## Results", "## Limitations",
                    "## Licence", "## Citation"):
        assert heading in card.text
    assert "@inproceedings{ke2024cast" in card.text and "MIT" in card.text and "SEEDS" in card.text
    assert "AutoImageProcessor.from_pretrained(name)" in card.text and "pipeline(" in card.text


def test_model_cards_cite_only_official_readme_numbers():
    for entry in NAMED_MODELS.values():
        assert {result.value for result in entry.results} <= OFFICIAL_README_NUMBERS, entry.name


def _fake_model_folder(folder):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "cast"}))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_install_to_cache_lays_out_hub_snapshot(tmp_path):
    folder = _fake_model_folder(tmp_path / "model")
    cache = tmp_path / "cache"
    snapshot = install_to_cache(folder, "cast-base", cache)
    repo = cache / "models--cast-base"
    commit = (repo / "refs" / "main").read_text()
    assert snapshot == repo / "snapshots" / commit and len(commit) == 40
    weights = snapshot / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent == (repo / "blobs").resolve()
    assert weights.read_bytes() == b"weights"
    resolved = hf_hub_download("cast-base", "config.json", cache_dir=cache, local_files_only=True)
    assert os.path.samefile(resolved, snapshot / "config.json")
    assert install_to_cache(folder, "cast-base", cache) == snapshot  # deterministic commit hash
    assert not [path for path in repo.rglob("*") if "incomplete" in path.name]


def test_install_to_cache_rejects_invalid_name_and_non_model_folder(tmp_path):
    folder = _fake_model_folder(tmp_path / "model")
    with pytest.raises(ValueError, match=r"`name`.*not a valid Hugging Face repo id"):
        install_to_cache(folder, "cast base!", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"`folder`.*no config.json"):
        install_to_cache(tmp_path / "empty", "cast-base", tmp_path / "cache")


def test_check_named_model_missing_says_how_to_convert(tmp_path):
    with pytest.raises(OSError, match=r"cast-convert --checkpoint <official file> --model-name cast-base"):
        check_named_model("cast-base", tmp_path)
    snapshot = install_to_cache(_fake_model_folder(tmp_path / "model"), "cast-base", tmp_path / "cache")
    assert check_named_model("cast-base", tmp_path / "cache") == snapshot


def test_load_named_missing_model_raises_helpful_oserror(tmp_path):
    with pytest.raises(OSError, match=r"(?s)'cast-small' is not in the local Hugging Face cache.*--install-to-cache"):
        load_named("cast-small", cache_dir=str(tmp_path))


def test_auto_classes_explain_only_missing_released_names(tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for load in (AutoModel.from_pretrained, AutoConfig.from_pretrained, AutoImageProcessor.from_pretrained):
        with pytest.raises(OSError, match=r"(?s)'cast-small-deep' is not in the local.*--model-name cast-small-deep"):
            load("cast-small-deep", cache_dir=str(tmp_path))
    # any other name keeps transformers' own error
    with pytest.raises(OSError) as raised:
        AutoModel.from_pretrained("someone-else/not-a-cast-model", cache_dir=str(tmp_path))
    assert "cast-convert" not in str(raised.value)
    # a folder with a released name loads as a folder, with its own errors
    (tmp_path / "cast-base").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises((OSError, ValueError)) as raised:
        AutoConfig.from_pretrained("cast-base")
    assert "cast-convert" not in str(raised.value)


def test_load_named_says_how_to_get_a_released_model_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as raised:
        load_named("cast-base", cache_dir=str(tmp_path))
    assert str(raised.value).count("is not in the local Hugging Face cache") == 1
    assert "--model-name cast-base" in str(raised.value)
