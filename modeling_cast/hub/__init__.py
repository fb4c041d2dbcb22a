"""The released CAST models: their registry, model cards and the local Hugging Face cache."""
