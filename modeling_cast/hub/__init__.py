"""The released CAST models: their registry (`registry`), model cards (`cards`), model folders and `hub_configs/`
(`folders`), and the local Hugging Face cache (`cache`)."""

from .cache import hub_cache_dir, install_to_cache, make_shareable
from .cards import model_card, named_model_card, save_model_card, training_model_card
from .folders import generate_hub_configs, hub_config_files, write_model_folder
from .registry import (
    CHECKPOINT_LAYOUTS,
    NAMED_MODELS,
    MissingModelError,
    NamedModel,
    ReportedResult,
    check_named_model,
    custom_named_model,
    empty_model,
    explain_missing_models,
    get_named_model,
    missing_model_message,
    model_class,
    named_config,
    named_model_for_arch,
    named_processor,
)

__all__ = [
    "CHECKPOINT_LAYOUTS",
    "MissingModelError",
    "NAMED_MODELS",
    "NamedModel",
    "ReportedResult",
    "check_named_model",
    "custom_named_model",
    "empty_model",
    "explain_missing_models",
    "generate_hub_configs",
    "get_named_model",
    "hub_cache_dir",
    "hub_config_files",
    "install_to_cache",
    "make_shareable",
    "missing_model_message",
    "model_card",
    "model_class",
    "named_config",
    "named_model_card",
    "named_model_for_arch",
    "named_processor",
    "save_model_card",
    "training_model_card",
    "write_model_folder",
]
