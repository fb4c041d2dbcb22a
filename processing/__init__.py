"""CAST image processing: the image processor that computes superpixels next to the pixel values, and pictures of
hierarchies."""

from .image_processing_cast import CastImageProcessor, CastImageProcessorKwargs
from .visualization_cast import draw_hierarchy, hierarchy_colors, save_hierarchy_picture


__all__ = [
    "CastImageProcessor",
    "CastImageProcessorKwargs",
    "draw_hierarchy",
    "hierarchy_colors",
    "save_hierarchy_picture",
]
