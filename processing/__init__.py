"""CAST image processing: the image processor that computes superpixels next to the pixel values."""

from .image_processing_cast import CastImageProcessor, CastImageProcessorKwargs


__all__ = ["CastImageProcessor", "CastImageProcessorKwargs"]
