"""Official CAST checkpoints -> transformers model folders: the key mapping (`convert_state_dict`, `infer_config`),
safe loading and layout detection of the official files, and the checks and folder writing of `cast-convert`."""

from .convert_cast_original_to_hf import convert_state_dict, infer_config

__all__ = ["convert_state_dict", "infer_config"]
