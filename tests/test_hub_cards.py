"""Model cards (`modeling_cast.hub.cards`): the released models' cards in hub_configs/ and the cards of trained
models."""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT
from huggingface_hub import ModelCard
from transformers import TrainingArguments

from modeling_cast.hub.cards import named_model_card, save_model_card, training_model_card
from modeling_cast.hub.registry import NAMED_MODELS

HUB_CONFIGS = REPO_ROOT / "hub_configs"
EXPECTED_MODEL_INDEX = {
    "cast-small": [68.1],
    "cast-small-deep": [69.1],
    "cast-base": [72.4, 29.67, 13.21],
    "cast-base-deep": [],
    "cast-small-deit": [80.4],
    "cast-small-coco": [38.4],
}


@pytest.mark.parametrize("name", sorted(NAMED_MODELS))
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
                    "## License", "## Citation"):
        assert heading in card.text
    assert "@inproceedings{ke2024cast" in card.text and "MIT" in card.text and "SEEDS" in card.text
    assert "AutoImageProcessor.from_pretrained(name)" in card.text and "pipeline(" in card.text


def test_named_model_card_round_trips_through_the_folder(tmp_path):
    card = named_model_card("cast-base")
    path = save_model_card(card, tmp_path)
    assert path == tmp_path / "README.md"
    assert ModelCard.load(path).content == card.content


def test_training_model_card_records_hub_base_model_and_final_metrics(tmp_path):
    arguments = TrainingArguments(output_dir=str(tmp_path), max_steps=3, learning_rate=0.01, report_to="none")
    local_start = tmp_path / "my-backbone"
    local_start.mkdir()
    for base_model, expected in (("someone/cast-small", "someone/cast-small"), (str(local_start), None)):
        card = training_model_card(
            arguments, title="run", summary=f"Fine-tuned from `{base_model}`.", pipeline_tag="image-classification",
            tags=["cast"], dataset="synthetic shapes", base_model=base_model, results={"accuracy": 0.75},
            metrics={"eval_accuracy": 0.75, "eval_runtime": 1.5}, details=["image processor: 196 superpixels"],
        )
        card = ModelCard(card.content)  # what a reader of README.md gets
        assert card.data.base_model == expected and card.data.pipeline_tag == "image-classification"
        assert "generated_from_trainer" in card.data.tags
        (result,) = card.data.eval_results
        assert (result.metric_type, result.metric_value, result.dataset_type) == ("accuracy", 0.75, "synthetic-shapes")
        assert "| eval_accuracy | 0.7500 |" in card.text and "eval_runtime" not in card.text
        assert "3 steps" in card.text and "196 superpixels" in card.text and base_model in card.text


@pytest.mark.parametrize("name", sorted(NAMED_MODELS))
def test_model_card_has_hub_widget_real_dataset_ids_and_weight_source(name):
    card = ModelCard.load(HUB_CONFIGS / name / "README.md")
    assert card.data.widget and card.data.widget[0]["src"].startswith("https://huggingface.co/")
    assert set(card.data.datasets or []) <= {"imagenet-1k"}  # "coco" is no Hub dataset id: named in the text only
    entry = NAMED_MODELS[name]
    if entry.official_file is None:
        assert "published no checkpoint" in card.text
    else:
        assert f"twke/CAST/{entry.official_file}" in card.text and "--download" in card.text


def test_training_model_card_says_where_training_started(tmp_path):
    arguments = TrainingArguments(output_dir=str(tmp_path), max_steps=3, learning_rate=0.01, report_to="none")
    local_start = tmp_path / "my-backbone"
    local_start.mkdir()
    common = dict(title="run", summary="A run.", pipeline_tag="image-classification", tags=["cast"],
                  dataset="synthetic shapes")
    fine_tuned = ModelCard(training_model_card(arguments, start=str(local_start), **common).content)
    assert f"Trained from the weights of `{local_start}`" in fine_tuned.text and "scratch" not in fine_tuned.text
    assert fine_tuned.data.license == "other" and fine_tuned.data.base_model is None
    assert fine_tuned.data.datasets is None  # "synthetic shapes" is not a Hub dataset
    scratch = ModelCard(training_model_card(arguments, **common).content)
    assert "Trained from scratch" in scratch.text and scratch.data.license == "apache-2.0"
    assert scratch.data.widget and scratch.data.library_name == "transformers"
