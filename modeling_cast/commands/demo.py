# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""`cast-demo`: an interactive app (Gradio, in a browser) that shows a CAST model's hierarchy on a photo.

Upload a photo or pick a sample, choose a model folder or installed name, and the app shows every level overlaid on
the photo; a slider moves over the levels; clicking a segment highlights it in every finer level (its descendants
tile it) and its ancestors in every coarser one; the label maps download as a zip (raw ids and color views, as
`cast-segment` writes them, plus the segment scores).

    pip install "cast-transformers[demo]"
    cast-demo                                  # the default model (below), on http://127.0.0.1:7860
    cast-demo --model path/to/cast-folder      # any CAST folder or installed released name

Default model, when `--model` is not given: the `make demo` model (`outputs/demo/cast-part-whole`, looked up in the
working directory and in a source checkout) when it exists, because it is the best-trained model the package can
make offline; else a tiny CAST trained here on first use on the package's generated part-whole images
(`processing.synthetic.part_whole`, about a minute on 2 CPU cores) and kept in `~/.cache/cast-transformers/`. No
released CAST checkpoint can be fetched offline, and an untrained model's segments would mean nothing. Both default
models learned from synthetic objects, so on photos their segments follow color and texture more than objects;
give a converted released checkpoint (`cast-convert`) for real photos.

The server binds to 127.0.0.1 unless `--host` says otherwise, refuses uploads over `--max-upload-mb` and images over
`MAX_PIXELS`, and segments large photos at `WORKING_SIDE` pixels on their long side.

Test-time adaptation (refining the model on the shown image, the paper's section 4.3) is not part of the package yet;
it belongs in `DemoSession.segment`, between reading the image and drawing the levels.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from processing.image_inputs_cast import rgb_uint8_image
from processing.visualization_cast import (
    DEFAULT_GAP,
    draw_hierarchy,
    hierarchy_colors,
    hierarchy_label_maps,
    level_caption,
    segment_lineage,
)

from . import segment as segment_command


try:
    import gradio as gr
except ImportError:  # reported with an install hint when the app is built
    gr = None


__all__ = [
    "DEFAULT_HOST",
    "DemoSession",
    "SegmentedImage",
    "build_app",
    "build_parser",
    "default_model",
    "main",
    "read_image_file",
    "train_quick_model",
]

logger = logging.getLogger(__name__)

PROGRAM = "cast-demo"
DEFAULT_HOST = "127.0.0.1"  # only this machine can reach the app unless the user asks for more
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 10
# Images above this many pixels are refused before their pixels are decoded (a 40-megapixel photo decodes to 120 MB).
MAX_PIXELS = 40_000_000
# Photos are segmented and drawn at most this large on their long side: the model sees a few hundred pixels anyway,
# and full-size label maps of every level would not fit a browser.
WORKING_SIDE = 768
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
MAKE_DEMO_MODEL = Path("outputs") / "demo" / "cast-part-whole"
_SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]
QUICK_MODEL_NAME = "cast-part-whole-quick"
# The quick model: the `make demo` architecture with fewer steps, enough for segments that follow the objects of the
# generated images.
QUICK_TRAIN_STEPS = 200
QUICK_TRAIN_SAMPLES = 800
_QUICK_IMAGE_SIZE = 96
_QUICK_SEGMENTS = 64  # superpixels requested, as `make demo` does
_QUICK_BATCH_SIZE = 32
_QUICK_LEARNING_RATE = 5e-4
_QUICK_WEIGHT_DECAY = 0.05
_BYTES_PER_MB = 1024 * 1024


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    r"""
    Read an uploaded image file as the app shows it: 8-bit RGB (grayscale repeated, 16-bit scaled, alpha dropped),
    upright (EXIF orientation applied), at most `WORKING_SIDE` pixels on its long side.

    Args:
        path (`str` or `os.PathLike`): the uploaded file.

    Returns:
        `np.ndarray` of shape `(height, width, 3)` and dtype uint8.

    Raises:
        ValueError: when the file is not an image Pillow can read, is truncated, or has more than `MAX_PIXELS`
            pixels.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a file path, got {type(path).__name__}")
    name = Path(path).name
    try:
        with Image.open(path) as opened:
            # the header gives the size: refuse huge images before decoding their pixels
            if opened.width * opened.height > MAX_PIXELS:
                raise ValueError(
                    f"the image {name} has {opened.width} x {opened.height} pixels; at most {MAX_PIXELS:,} are "
                    "accepted"
                )
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise ValueError(f"{name} is not an image that can be read ({error})") from None
    pixels = rgb_uint8_image(image, argument="upload")
    height, width = pixels.shape[:2]
    scale = WORKING_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
    return pixels


@dataclass
class SegmentedImage:
    """What the app keeps of one segmented photo between events (a slider move, a click)."""

    pixels: np.ndarray  # (H, W, 3) uint8
    hierarchy: np.ndarray  # (levels, H, W) int64, finest first
    segments_info: list[list[dict]]
    model_name: str

    @property
    def num_levels(self) -> int:
        return self.hierarchy.shape[0]


class DemoSession:
    """The app's work, independent of Gradio (tests call it directly): load models, segment, draw, export."""

    def __init__(self, default_model_name: str, device: str = "cpu"):
        self.default_model_name = default_model_name
        self.device = device
        self._models: dict[str, tuple] = {}
        self._lock = threading.Lock()  # Gradio runs events in threads; load each model once

    def model(self, name: str) -> tuple:
        """The (model, processor) for a CAST folder or installed name, loaded once."""
        name = (name or "").strip() or self.default_model_name
        with self._lock:
            if name not in self._models:
                try:
                    model, processor = segment_command.load_cast_model(name)
                except ValueError as error:
                    raise ValueError(f"{name!r}: {error}") from None
                self._models[name] = (model.to(self.device).eval(), processor)
            return self._models[name]

    def segment(self, image_path: str | os.PathLike, model_name: str) -> SegmentedImage:
        """Read an uploaded file and segment it with the chosen model."""
        if image_path is None:
            raise ValueError("upload an image or pick a sample first")
        pixels = read_image_file(image_path)
        model, processor = self.model(model_name)
        inputs = processor(images=pixels, input_data_format="channels_last", return_tensors="pt")
        with torch.inference_mode():
            outputs = model(**inputs.to(self.device))
        result = processor.post_process_hierarchical_segmentation(
            outputs, target_sizes=[pixels.shape[:2]], return_scores=True
        )[0]
        return SegmentedImage(
            pixels=pixels,
            hierarchy=result["segmentation"].cpu().numpy(),
            segments_info=result["segments_info"],
            model_name=(model_name or "").strip() or self.default_model_name,
        )

    @staticmethod
    def draw(segmented: SegmentedImage, level: int, selected: tuple[int, int, int] | None = None):
        """The chosen level overlaid on the photo, and every level side by side with captions; with `selected`
        (level, row, column), the lineage of the segment there stays bright and the rest is dimmed."""
        if not 0 <= level < segmented.num_levels:
            raise ValueError(f"`level` must be in [0, {segmented.num_levels - 1}], got {level}")
        highlight = None if selected is None else segment_lineage(segmented.hierarchy, *selected)
        overlay = draw_hierarchy(
            segmented.pixels, segmented.hierarchy, mode="overlay", captions=True, highlight=highlight
        )
        height, width = segmented.pixels.shape[:2]
        left = (level + 1) * (width + DEFAULT_GAP)
        level_view = overlay.crop((left, 0, left + width, height))
        return level_view, overlay

    @staticmethod
    def summary(segmented: SegmentedImage) -> str:
        """Markdown: the model and the segment count of every level."""
        counts = ", ".join(
            level_caption(level, len(np.unique(labels))) for level, labels in enumerate(segmented.hierarchy)
        )
        height, width = segmented.pixels.shape[:2]
        return f"**{segmented.model_name}** on a {width} x {height} image: {counts}. Click a segment to follow it."

    @staticmethod
    def export(segmented: SegmentedImage, folder: str | os.PathLike) -> Path:
        """A zip of every level's label map (raw ids and color view, as `cast-segment` names them) and the
        segment scores."""
        folder = Path(folder)
        path = folder / "cast_label_maps.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            max_id = int(segmented.hierarchy.max())
            color_maps = (
                hierarchy_label_maps(segmented.hierarchy)
                if max_id < segment_command._UINT8_LABELS
                else [Image.fromarray(colors) for colors in hierarchy_colors(segmented.hierarchy)]
            )
            for level, (labels, color_map) in enumerate(zip(segmented.hierarchy, color_maps, strict=True)):
                raw = segment_command._label_map_image(labels, max_id + 1)
                for name, image in ((f"level{level}.png", raw), (f"level{level}_color.png", color_map)):
                    image.save(folder / name)
                    archive.write(folder / name, arcname=name)
            segments = [[segment_command._json_segment(s) for s in level] for level in segmented.segments_info]
            archive.writestr("segments.json", _json_dump({"model": segmented.model_name, "levels": segments}))
        return path


def _json_dump(value) -> str:
    return json.dumps(value, indent=2) + "\n"


def sample_photos(folder: str | os.PathLike) -> list[Path]:
    """Write the sample photos (scikit-image's `data` module) as PNG files into `folder`, once."""
    from skimage import data as skimage_data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_PHOTOS:
        path = folder / f"{name}.png"
        if not path.exists():
            Image.fromarray(getattr(skimage_data, name)()).save(path)
        paths.append(path)
    return paths


def build_app(session: DemoSession, samples_dir: str | os.PathLike | None = None):
    """The Gradio Blocks of the app (not launched)."""
    if gr is None:
        raise ImportError('The CAST demo app needs Gradio: pip install "cast-transformers[demo]"')
    samples_dir = Path(samples_dir or tempfile.mkdtemp(prefix="cast-demo-samples-"))
    exports_root = Path(tempfile.mkdtemp(prefix="cast-demo-exports-"))

    def run_segmentation(image_path, model_name):
        try:
            segmented = session.segment(image_path, model_name)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        coarsest = segmented.num_levels - 1
        level_view, overlay = session.draw(segmented, coarsest)
        export = session.export(segmented, tempfile.mkdtemp(dir=exports_root))
        slider = gr.Slider(minimum=0, maximum=coarsest, value=coarsest, step=1, interactive=True)
        return segmented, None, slider, level_view, overlay, str(export), session.summary(segmented)

    def show_level(segmented, level, selected):
        if segmented is None:
            return None, None
        return session.draw(segmented, int(level), selected)

    def select_segment(segmented, level, event: gr.SelectData):
        if segmented is None:
            return None, None, None
        column, row = (int(value) for value in event.index)
        selected = (int(level), row, column)
        return (selected, *session.draw(segmented, int(level), selected))

    with gr.Blocks(title="CAST: hierarchical segmentation") as app:
        gr.Markdown(
            "# CAST: see the hierarchy\nUpload a photo (or pick a sample), then move the slider over the levels "
            "(0 = finest) and click a segment to see its parts and the wholes it belongs to."
        )
        segmented_state = gr.State(None)
        selected_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="image", file_types=["image"], type="filepath", elem_id="upload")
                model_name = gr.Textbox(
                    label="model folder or installed name", value=session.default_model_name, elem_id="model"
                )
                run = gr.Button("Segment", variant="primary", elem_id="segment")
                gr.Examples([[str(path)] for path in sample_photos(samples_dir)], inputs=[upload], label="samples")
            with gr.Column(scale=2):
                level = gr.Slider(0, 1, value=0, step=1, label="level (0 = finest)", elem_id="level-slider")
                level_view = gr.Image(
                    label="level over the photo (click a segment)", format="png", interactive=False,
                    elem_id="level-view",
                )
                summary = gr.Markdown(elem_id="summary")
        overlay = gr.Image(label="every level", format="png", interactive=False, elem_id="all-levels")
        downloads = gr.File(label="label maps (zip)", elem_id="label-maps")

        outputs = [segmented_state, selected_state, level, level_view, overlay, downloads, summary]
        run.click(run_segmentation, inputs=[upload, model_name], outputs=outputs)
        upload.upload(run_segmentation, inputs=[upload, model_name], outputs=outputs)
        level.change(show_level, inputs=[segmented_state, level, selected_state], outputs=[level_view, overlay])
        level_view.select(
            select_segment, inputs=[segmented_state, level], outputs=[selected_state, level_view, overlay]
        )
    return app


# ---------------------------------------------------------------------------------------------------------------
# The default model
# ---------------------------------------------------------------------------------------------------------------


def default_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """The `make demo` model if it exists (working directory first, then a source checkout), else the quick model,
    trained into `cache_dir` (default `~/.cache/cast-transformers`) on first use."""
    for root in (Path.cwd(), _SOURCE_CHECKOUT):
        candidate = root / MAKE_DEMO_MODEL
        if (candidate / "config.json").is_file():
            return candidate
    cache_dir = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "cast-transformers"
    folder = cache_dir / QUICK_MODEL_NAME
    if not (folder / "config.json").is_file():
        logger.warning("%s: no `make demo` model found; training a tiny CAST into %s (about a minute)", PROGRAM, folder)
        train_quick_model(folder)
    return folder


def train_quick_model(
    folder: str | os.PathLike, steps: int = QUICK_TRAIN_STEPS, num_samples: int = QUICK_TRAIN_SAMPLES, seed: int = 0
) -> Path:
    """Train the `make demo` architecture on `num_samples` generated part-whole images (class labels only) for `steps`
    steps and save it (weights, config, image processor) into `folder`, written atomically."""
    from modeling_cast import CastConfig, CastForImageClassification, CastImageProcessor
    from modeling_cast.configuration_cast import superpixel_token_budget
    from processing.synthetic.part_whole import PART_WHOLE_CLASSES, render_part_whole_sample

    folder = Path(folder)
    size = {"height": _QUICK_IMAGE_SIZE, "width": _QUICK_IMAGE_SIZE}
    processor = CastImageProcessor(size=size, n_segments=_QUICK_SEGMENTS)
    samples = [render_part_whole_sample(index, _QUICK_IMAGE_SIZE, seed) for index in range(num_samples)]
    inputs = processor([sample.image for sample in samples], return_tensors="pt")
    labels = torch.tensor([sample.label for sample in samples])
    torch.manual_seed(seed)
    config = CastConfig(
        hidden_size=96,
        num_attention_heads=3,
        pooling_num_attention_heads=3,
        depths=[2, 2, 2, 1],
        num_segments=[32, 16, 8, 4],
        image_size=_QUICK_IMAGE_SIZE,
        num_labels=len(PART_WHOLE_CLASSES),
        max_superpixel_tokens=superpixel_token_budget(_QUICK_SEGMENTS, _QUICK_IMAGE_SIZE),
        id2label=dict(enumerate(PART_WHOLE_CLASSES)),
        label2id={name: index for index, name in enumerate(PART_WHOLE_CLASSES)},
    )
    model = CastForImageClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=_QUICK_LEARNING_RATE, weight_decay=_QUICK_WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(len(labels), (_QUICK_BATCH_SIZE,), generator=generator)
        loss = model(
            pixel_values=inputs["pixel_values"][batch], superpixels=inputs["superpixels"][batch], labels=labels[batch]
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    # written next to the target and renamed, so that an interrupted run never leaves a half-written model
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    model.eval().save_pretrained(staging)
    processor.save_pretrained(staging)
    os.replace(staging, folder)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The `cast-demo` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Start the CAST hierarchy app in the browser (Gradio).",
    )
    parser.add_argument(
        "--model",
        metavar="PATH_OR_NAME",
        help="a CAST model folder or installed name (default: the `make demo` model, else a tiny model trained on "
        "first use)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 opens it to the network)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--max-upload-mb",
        type=segment_command._positive_int,
        default=DEFAULT_MAX_UPLOAD_MB,
        metavar="MB",
        help=f"largest accepted upload in megabytes (default: {DEFAULT_MAX_UPLOAD_MB})",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run the model")
    return parser


def launch(
    session: DemoSession,
    host: str = DEFAULT_HOST,
    port: int | None = DEFAULT_PORT,
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
    block: bool = True,
):
    """Build and start the app; with `block=False` return the running app (tests, notebooks)."""
    app = build_app(session)
    app.launch(
        server_name=host,
        server_port=port,
        max_file_size=max_upload_mb * _BYTES_PER_MB,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=not block,
    )
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cast-demo` (blocks until the server stops)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    if gr is None:
        parser.error('the app needs Gradio: pip install "cast-transformers[demo]"')
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    model_name = args.model or str(default_model())
    session = DemoSession(model_name, device=args.device)
    try:
        session.model(model_name)  # fail now, not at the first upload, when the model cannot be loaded
    except ValueError as error:
        parser.error(f"--model: {error}")
    launch(session, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0
