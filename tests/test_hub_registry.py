"""The released-model table (`modeling_cast.hub.registry`): the names and their architectures, processor settings
and cited numbers, and the one message that says how to get a model missing from the local cache."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO_ROOT
from transformers import AutoConfig, AutoImageProcessor, AutoModel

from modeling_cast import modeling_cast as modeling
from modeling_cast.hub.cache import install_to_cache
from modeling_cast.hub.registry import (
    NAMED_MODELS,
    MissingModelError,
    check_named_model,
    named_config,
    named_model_for_arch,
    named_processor,
)

HUB_CONFIGS = REPO_ROOT / "hub_configs"
RELEASED = {"cast-small", "cast-small-deep", "cast-base", "cast-base-deep", "cast-small-deit", "cast-small-coco"}
# The only numbers the cards may cite: the results table of the official README (see ../shared/reference/README.md).
OFFICIAL_README_NUMBERS = {67.9, 68.1, 69.1, 72.5, 72.4, 38.4, 67.6, 80.4, 43.1, 49.1, 29.67, 13.21}


def test_named_models_cover_released_checkpoints():
    assert set(NAMED_MODELS) == RELEASED
    assert named_model_for_arch("cast_base", "moco") == "cast-base"
    assert named_model_for_arch("cast_small", "deit") == "cast-small-deit"
    assert named_model_for_arch("cast_seg_small_pretrain", "moco-segmentation") == "cast-small-coco"
    assert named_model_for_arch("cast_tiny_test", "moco") is None


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


def test_model_cards_cite_only_official_readme_numbers():
    for entry in NAMED_MODELS.values():
        assert {result.value for result in entry.results} <= OFFICIAL_README_NUMBERS, entry.name


def _install_config_only(name, cache):
    """A cache entry with the configuration of `name` but no weights."""
    folder = cache.parent / f"{name}-config-only"
    named_config(name).save_pretrained(folder)
    return install_to_cache(folder, name, cache)


def test_check_named_model_missing_says_how_to_convert(tmp_path):
    with pytest.raises(OSError, match=r"cast-convert --checkpoint <official file> --model-name cast-base"):
        check_named_model("cast-base", tmp_path)
    snapshot = _install_config_only("cast-base", tmp_path / "cache")
    assert check_named_model("cast-base", tmp_path / "cache") == snapshot


def test_missing_released_model_raises_helpful_oserror(tmp_path):
    with pytest.raises(OSError, match=r"(?s)'cast-small' is not in the local Hugging Face cache.*--install-to-cache"):
        AutoModel.from_pretrained("cast-small", cache_dir=str(tmp_path))


def test_auto_classes_explain_only_missing_released_names(tmp_path, monkeypatch):
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


def test_missing_model_is_explained_once(tmp_path, monkeypatch):
    """The Auto classes and the CAST classes both explain: an error explained by the inner call is not wrapped again,
    also when the config is cached but the weights are not."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as raised:
        AutoModel.from_pretrained("cast-base", cache_dir=str(tmp_path))
    assert str(raised.value).count("is not in the local Hugging Face cache") == 1
    assert "--model-name cast-base" in str(raised.value)
    _install_config_only("cast-base", tmp_path / "cache")
    with pytest.raises(MissingModelError) as raised:
        AutoModel.from_pretrained("cast-base", cache_dir=str(tmp_path / "cache"))
    assert str(raised.value).count("is not in the local Hugging Face cache") == 1
