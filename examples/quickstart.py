"""Quickstart: official CAST weights -> transformers folder -> AutoModel -> hierarchical segmentation of a photo.

Run it with `.venv/bin/python examples/quickstart.py [--image PATH]`. Offline: the embedded default
is the tiny official CAST checkpoint shipped with the tests (tests/fixtures/tiny.safetensors, produced by the
official implementation) and the astronaut photo from scikit-image. The script

1. converts the official state dict with `convert_state_dict` and saves a safetensors model folder plus processor;
2. reloads it with `AutoModel` / `AutoImageProcessor`, exactly as a Hub checkpoint would load;
3. segments the photo and prints the class-token feature and the segments found at every level of the hierarchy;
4. writes the label map of every level as a PNG next to the model folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModel

# importing modeling_cast registers the "cast" model type with the Auto classes
from modeling_cast import CastForImageClassification, CastImageProcessor
from modeling_cast.conversion import convert_state_dict, infer_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO_ROOT / "tests" / "fixtures" / "tiny.safetensors"


def build_folder(weights: Path, output_dir: Path) -> None:
    """Convert the official tiny checkpoint into a transformers model folder."""
    data = load_file(str(weights))
    state_dict = {k[len("state_dict."):]: v for k, v in data.items() if k.startswith("state_dict.")}
    official_args = json.loads(weights.with_suffix(".json").read_text())["constructor_args"]
    config = infer_config(
        state_dict, num_attention_heads=official_args["num_heads"], num_segments=official_args["num_clusters"]
    )
    model = CastForImageClassification(config)
    model.load_state_dict(convert_state_dict(state_dict, config), strict=True)
    model.save_pretrained(output_dir)
    side = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    CastImageProcessor(size={"height": side, "width": side}, n_segments=32).save_pretrained(output_dir)


def label_map_to_png(labels: np.ndarray, path: Path) -> None:
    palette = np.random.default_rng(0).integers(0, 256, size=(int(labels.max()) + 1, 3), dtype=np.uint8)
    Image.fromarray(palette[labels]).resize((256, 256), Image.NEAREST).save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="an image file (default: skimage.data.astronaut())")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "outputs" / "quickstart")
    args = parser.parse_args(argv)

    model_dir = args.output_dir / "cast-tiny-official"
    build_folder(DEFAULT_WEIGHTS, model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    if args.image is None:
        from skimage.data import astronaut

        image = Image.fromarray(astronaut())
    else:
        image = Image.open(args.image)

    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    print(f"model: {type(model).__name__} loaded with AutoModel from {model_dir}")
    print(f"superpixels: {int(inputs['superpixels'].max()) + 1} on a {tuple(inputs['pixel_values'].shape[-2:])} input")
    print(f"image feature (pooler_output): shape {tuple(outputs.pooler_output.shape)}")
    for level, labels in enumerate(outputs.hierarchy[0].numpy()):  # level 0 is the finest
        path = args.output_dir / f"level{level}.png"
        label_map_to_png(labels, path)
        print(f"level {level}: {len(np.unique(labels))} segments -> {path}")


if __name__ == "__main__":
    main()
