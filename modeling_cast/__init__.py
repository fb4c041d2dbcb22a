"""cast-transformers: CAST (Ke, Mo, Yu, ICLR 2024) for Hugging Face Transformers.

`import modeling_cast` registers the "cast" model type with the Auto classes and re-exports the image processor,
so that `AutoModel.from_pretrained(...)`, `AutoImageProcessor.from_pretrained(...)` and `pipeline(...)` find CAST.
"""

import functools
import os

import huggingface_hub
from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForImageSegmentation,
    AutoModelForPreTraining,
    AutoModelForSemanticSegmentation,
)
# the real class (the top-level `transformers.AutoVideoProcessor` is a stub when torchvision is absent)
from transformers.models.auto.video_processing_auto import AutoVideoProcessor
from transformers import PretrainedConfig
from transformers.pipelines import PIPELINE_REGISTRY

from processing import CastImageProcessor
from processing.pipeline_cast import (
    CastImageClassificationPipeline,
    CastImageSegmentationPipeline,
    HierarchicalSegmentationPipeline,
    model_dispatching_pipeline,
)
from processing.visualization_cast import draw_hierarchy, hierarchy_colors, save_hierarchy_picture

from .backbone_cast import CastBackbone
from .configuration_cast import CAST_PRESETS, CastConfig
from .modeling_cast import (
    CastForImageClassification,
    CastForImageSegmentation,
    CastForSemanticSegmentation,
    CastSemanticSegmenterOutput,
    CastImageClassifierOutput,
    CastModel,
    CastModelOutput,
    CastPreTrainedModel,
)
from .pretraining_cast import CastForPreTraining, CastPreTrainingOutput, MomentumUpdateCallback
from .hub.registry import explain_missing_models

__all__ = [
    "CAST_PRESETS",
    "CastBackbone",
    "CastConfig",
    "CastForImageClassification",
    "CastForPreTraining",
    "CastPreTrainingOutput",
    "MomentumUpdateCallback",
    "CastForImageSegmentation",
    "CastForSemanticSegmentation",
    "CastImageClassifierOutput",
    "CastSemanticSegmenterOutput",
    "CastImageClassificationPipeline",
    "CastImageSegmentationPipeline",
    "HierarchicalSegmentationPipeline",
    "CastImageProcessor",
    "CastModel",
    "CastModelOutput",
    "CastPreTrainedModel",
    "draw_hierarchy",
    "hierarchy_colors",
    "save_hierarchy_picture",
]

AutoConfig.register(CastConfig.model_type, CastConfig, exist_ok=True)
AutoModel.register(CastConfig, CastModel, exist_ok=True)
AutoModelForImageClassification.register(CastConfig, CastForImageClassification, exist_ok=True)
AutoModelForPreTraining.register(CastConfig, CastForPreTraining, exist_ok=True)
AutoModelForSemanticSegmentation.register(CastConfig, CastForSemanticSegmentation, exist_ok=True)
# AutoBackbone: transformers' dense heads (UperNet, DPT, Depth Anything) build CAST from a `backbone_config`
AutoBackbone.register(CastConfig, CastBackbone, exist_ok=True)
# pipeline("image-segmentation") loads through AutoModelForImageSegmentation first: CastForImageSegmentation builds
# CastForSemanticSegmentation for segmentation checkpoints, CastForImageClassification for classifiers (so that
# `adaptation_steps` has a head to optimize) and the backbone (hierarchy segments) for the others
AutoModelForImageSegmentation.register(CastConfig, CastForImageSegmentation, exist_ok=True)
AutoImageProcessor.register(CastConfig, image_processor_classes={"pil": CastImageProcessor}, exist_ok=True)
# CAST has no video processor. Saying so stops every pipeline from guessing one from the image processor's
# `auto_map` and asking whether to run custom code (transformers derives "CastVideoProcessor" from it).
AutoVideoProcessor.register(CastConfig, video_processor_classes={}, exist_ok=True)
# pipeline("hierarchical-segmentation"): every level of the hierarchy, with segment scores and an optional picture
PIPELINE_REGISTRY.register_pipeline(
    "hierarchical-segmentation",
    pipeline_class=HierarchicalSegmentationPipeline,
    pt_model=AutoModelForImageSegmentation,
    type="image",
)
# pipeline("image-segmentation") and pipeline("image-classification") open image files with transformers'
# `load_image`, which saturates 16-bit files; the registered class builds the CAST versions, which keep the bit depth
# (and draw segmentation masks in one pass, and adapt to the image when asked), for CAST models and transformers' own
# class for every other model. Only transformers' own entries are replaced.
for _task, _cast_class in (
    ("image-segmentation", CastImageSegmentationPipeline),
    ("image-classification", CastImageClassificationPipeline),
):
    _entry = PIPELINE_REGISTRY.supported_tasks[_task]
    _transformers_class = _cast_class.__mro__[1]
    if _entry["impl"] in (_transformers_class, f"{_transformers_class.__module__}.{_transformers_class.__name__}"):
        _entry["impl"] = model_dispatching_pipeline(_transformers_class, _cast_class)
del _task, _cast_class, _entry, _transformers_class

# Saved folders carry the flat code files and an `auto_map`, so they load with `trust_remote_code=True` where this
# package is not installed.
CastConfig.register_for_auto_class()
CastModel.register_for_auto_class("AutoModel")
CastForImageClassification.register_for_auto_class("AutoModelForImageClassification")
CastForSemanticSegmentation.register_for_auto_class("AutoModelForSemanticSegmentation")
CastImageProcessor.register_for_auto_class("AutoImageProcessor")
CastForPreTraining.register_for_auto_class("AutoModelForPreTraining")
CastBackbone.register_for_auto_class("AutoBackbone")


# ... and the "hierarchical-segmentation" pipeline's code with its `custom_pipelines` entry (also as remote code), and
# the backbone's code, so that every folder also loads with AutoBackbone (UperNet, DPT, ...) as remote code
CastPreTrainedModel.remote_code_companions = (HierarchicalSegmentationPipeline, CastBackbone)



def _load_cast_backbones_locally(auto_class) -> None:
    """`AutoBackbone.from_pretrained` asks the Hub whether the name is a repository before anything else (transformers
    5.24: to tell timm names apart), which fails for every local folder (a path is no repository id) and offline. A
    CAST folder or cached model that is available locally loads as [`CastBackbone`] without that question."""
    original = auto_class.from_pretrained.__func__

    @functools.wraps(original)
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        name = str(pretrained_model_name_or_path)
        if os.path.isdir(name) or kwargs.get("local_files_only") or huggingface_hub.is_offline_mode():
            locations = {key: kwargs[key] for key in ("cache_dir", "subfolder", "revision") if key in kwargs}
            try:
                config_dict, _ = PretrainedConfig.get_config_dict(name, local_files_only=True, **locations)
            except OSError:  # not available locally: transformers' own path (and its error) decides
                config_dict = {}
            if config_dict.get("model_type") == CastConfig.model_type:
                return CastBackbone.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        return original(cls, pretrained_model_name_or_path, *args, **kwargs)

    auto_class.from_pretrained = classmethod(from_pretrained)


_load_cast_backbones_locally(AutoBackbone)

# `AutoModel.from_pretrained("cast-base")` loads the released model from the cache, fetching and converting the
# official checkpoint on first use when online, and says how to get it otherwise: the Auto classes for the released
# names (they load any model type), the CAST classes for every name they cannot find
explain_missing_models(
    AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, AutoModelForImageSegmentation,
    AutoModelForPreTraining, AutoModelForSemanticSegmentation, AutoBackbone,
)
explain_missing_models(CastConfig, CastPreTrainedModel, CastForImageSegmentation, any_name=True)
