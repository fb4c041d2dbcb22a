"""cast-transformers: CAST (Ke, Mo, Yu, ICLR 2024) for Hugging Face Transformers.

`import modeling_cast` registers the "cast" model type with the Auto classes and re-exports the image processor,
so that `AutoModel.from_pretrained(...)`, `AutoImageProcessor.from_pretrained(...)` and `pipeline(...)` find CAST.
"""

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
from transformers.pipelines import PIPELINE_REGISTRY

from processing import CastImageProcessor
from processing.pipeline_cast import CastImageSegmentationPipeline, HierarchicalSegmentationPipeline
from processing.visualization_cast import draw_hierarchy, hierarchy_colors, save_hierarchy_picture

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
    "CastConfig",
    "CastForImageClassification",
    "CastForPreTraining",
    "CastPreTrainingOutput",
    "MomentumUpdateCallback",
    "CastForImageSegmentation",
    "CastForSemanticSegmentation",
    "CastImageClassifierOutput",
    "CastSemanticSegmenterOutput",
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
# pipeline("image-segmentation") loads through AutoModelForImageSegmentation first: CastForImageSegmentation builds
# CastForSemanticSegmentation for segmentation checkpoints and the backbone (hierarchy segments) for the others
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
# pipeline("image-segmentation") gains CAST's `adaptation_steps`: the same task entry (models, default, type) with
# transformers' class extended by it (unchanged for every call without adaptation, and for every other model)
PIPELINE_REGISTRY.supported_tasks["image-segmentation"] = {
    **PIPELINE_REGISTRY.supported_tasks["image-segmentation"], "impl": CastImageSegmentationPipeline
}

# Saved folders carry the flat code files and an `auto_map`, so they load with `trust_remote_code=True` where this
# package is not installed.
CastConfig.register_for_auto_class()
CastModel.register_for_auto_class("AutoModel")
CastForImageClassification.register_for_auto_class("AutoModelForImageClassification")
CastForSemanticSegmentation.register_for_auto_class("AutoModelForSemanticSegmentation")
CastImageProcessor.register_for_auto_class("AutoImageProcessor")
CastForPreTraining.register_for_auto_class("AutoModelForPreTraining")


# ... and the "hierarchical-segmentation" pipeline's code with its `custom_pipelines` entry (also as remote code)
CastPreTrainedModel.remote_code_companions = (HierarchicalSegmentationPipeline,)

# `AutoModel.from_pretrained("cast-base")` loads the released model from the cache, fetching and converting the
# official checkpoint on first use when online, and says how to get it otherwise: the Auto classes for the released
# names (they load any model type), the CAST classes for every name they cannot find
explain_missing_models(
    AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, AutoModelForImageSegmentation,
    AutoModelForPreTraining, AutoModelForSemanticSegmentation, AutoBackbone,
)
explain_missing_models(CastConfig, CastPreTrainedModel, CastForImageSegmentation, any_name=True)
