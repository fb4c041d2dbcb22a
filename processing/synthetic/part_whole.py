# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Part-whole images: a seeded generator of objects made of parts, with per-pixel ground truth at two levels.

CAST's claim is that recognition training alone teaches it to segment objects *and their parts*. The real test
(PartImageNet) needs ImageNet-scale training; these images make a small, honest version of it that runs on a CPU:

* four object classes (`PART_WHOLE_CLASSES`), each assembled from parts that differ in shape, color and texture:
  a quadruped (torso, head, legs, tail), a bird (body, head, wing, beak, tail), a vehicle (body, windows, wheels)
  and a house (wall, roof, door, window);
* every part takes a random color and texture from one distribution shared by all classes, so the global color of
  an image says nothing about its class: the classes differ only in which parts they have and how they are arranged;
* one object per image at a random scale, position, rotation and mirroring, drawn over a textured color gradient
  with clutter (random textured shapes that belong to the background);
* ground truth: the class label, an object mask (0 = background, `label + 1` on the object) and a part mask
  (0 = background, otherwise a part id of `PART_NAMES`, unique across classes as in PartImageNet).

Sample `index` of seed `seed` depends only on `(seed, index, image_size)`, never on how many samples are drawn, so
splits made from different seeds never share an image and any sample can be regenerated alone.

```python
>>> from processing.synthetic.part_whole import make_part_whole_dataset
>>> dataset = make_part_whole_dataset(4, image_size=64, seed=0)
>>> dataset.column_names
['image', 'label', 'object_mask', 'part_mask']
```
"""

from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


__all__ = [
    "HELD_OUT_SEED_OFFSET",
    "MODES",
    "PART_NAMES",
    "PART_WHOLE_CLASSES",
    "PARTS_OF_CLASS",
    "PartWholeSample",
    "RECOGNITION_CLASSES",
    "SOUP_LABEL",
    "classes_of_mode",
    "load_part_whole_imagefolder",
    "make_part_whole_dataset",
    "render_part_whole_sample",
    "write_part_whole_imagefolder",
]

PART_WHOLE_CLASSES = ("quadruped", "bird", "vehicle", "house")
PART_NAMES = (
    "background",
    "quadruped torso", "quadruped head", "quadruped leg", "quadruped tail",
    "bird body", "bird head", "bird wing", "bird beak", "bird tail",
    "vehicle body", "vehicle window", "vehicle wheel",
    "house wall", "house roof", "house door", "house window",
)
# class index -> its part ids (indices into PART_NAMES), derived from the names so the two never disagree
PARTS_OF_CLASS = {
    label: tuple(index for index, name in enumerate(PART_NAMES) if name.split(" ")[0] == class_name)
    for label, class_name in enumerate(PART_WHOLE_CLASSES)
}
_PART_ID = {name: index for index, name in enumerate(PART_NAMES)}

# "classic": the first version (each part its own hue on a gradient background; color grouping solves it).
# "recognition": appearances shared by the object, the background and distractor parts, plus a part-soup class.
MODES = ("classic", "recognition")
RECOGNITION_CLASSES = PART_WHOLE_CLASSES + ("part soup",)
SOUP_LABEL = RECOGNITION_CLASSES.index("part soup")

# Held-out splits use `seed + HELD_OUT_SEED_OFFSET`: samples depend only on (seed, index), so no held-out image is a
# training image of a run seeded in the usual small range.
HELD_OUT_SEED_OFFSET = 1_000_003
MIN_IMAGE_SIZE = 32  # below this the thin parts (legs, beaks) vanish
_MAX_UINT8 = 255

# Pose: the object's canonical frame spans about [-1, 1]^2; one frame unit is `scale * image_size / 2` pixels.
_SCALE_RANGE = (0.55, 0.85)
_MAX_ROTATION_DEGREES = 25.0
_CENTER_MARGIN = 0.55  # the center stays this many frame units inside the borders: parts may touch the border
_SHAPE_JITTER = (0.85, 1.15)  # every part dimension is multiplied by a factor from this range
_POSITION_JITTER = 0.05  # frame units

# Appearance, shared by every class (so color carries no class information)
_SATURATION_RANGE = (0.35, 0.9)
_VALUE_RANGE = (0.4, 0.95)
_GOLDEN_RATIO_CONJUGATE = (5**0.5 - 1) / 2  # hue step between the parts of one object: neighbors never share a hue
_TEXTURE_KINDS = ("flat", "stripes", "checker", "blotches")
_TEXTURE_AMPLITUDE_RANGE = (10.0, 35.0)  # in 0-255 units
_TEXTURE_PERIOD_RANGE = (0.08, 0.25)  # frame units for parts, image fractions for the background
_NOISE_STD = 6.0
_BLOTCH_GRID = 6  # cells of the low-resolution noise that is upsampled into blotches

# Background: a gradient between two colors, a texture and clutter shapes
_CLUTTER_COUNT_RANGE = (2, 5)
_CLUTTER_SIZE_RANGE = (0.06, 0.16)  # radius, as a fraction of the image side

# Recognition mode: one palette of appearances per image, shared by the object's parts, a patchwork background
# and loose distractor parts, so that no color or texture marks what belongs to the object.
_PALETTE_SIZE = 4
_RECOGNITION_TEXTURES = ("stripes", "checker", "blotches")  # no flat texture: every seam keeps an orientation cue
_PATCHWORK_CELL_RANGE = (5, 9)
_DISTRACTOR_COUNT_RANGE = (2, 4)
_REGION_VALUE_JITTER = 0.06  # each region's brightness varies this much (fraction of 255) around its appearance's


@dataclass
class PartWholeSample:
    """One generated image and its ground truth.

    Args:
        image (`np.ndarray` of shape `(height, width, 3)`, dtype `uint8`): the RGB image.
        label (`int`): the class, an index into `PART_WHOLE_CLASSES` (classic mode) or `RECOGNITION_CLASSES`
            (recognition mode, where `SOUP_LABEL` marks part soup: parts of one class scattered, no object).
        object_mask (`np.ndarray` of shape `(height, width)`, dtype `uint8`): 0 on the background, `label + 1` on
            the object; all 0 for part soup (there is no whole).
        part_mask (`np.ndarray` of shape `(height, width)`, dtype `uint8`): 0 on the background (distractor parts
            included), otherwise the part id (an index into `PART_NAMES`, one of `PARTS_OF_CLASS[label]`; for part
            soup, of `PARTS_OF_CLASS[source_class]`).
        source_class (`int`): the class whose parts are drawn (equal to `label` except for part soup).
    """

    image: np.ndarray
    label: int
    object_mask: np.ndarray
    part_mask: np.ndarray
    source_class: int | None = None

    def __post_init__(self):
        if self.source_class is None:
            self.source_class = self.label


def classes_of_mode(mode: str) -> tuple[str, ...]:
    """The class names of a generator mode: `PART_WHOLE_CLASSES` or `RECOGNITION_CLASSES`."""
    _check_mode(mode)
    return PART_WHOLE_CLASSES if mode == "classic" else RECOGNITION_CLASSES


def render_part_whole_sample(index: int, image_size: int = 128, seed: int = 0, mode: str = "classic") -> PartWholeSample:
    """
    Draw sample `index` of the part-whole set with seed `seed`: the class is `index % num_classes` (balanced
    classes), and everything else (shape jitter, pose, colors, textures, background, clutter) comes from a random
    generator seeded with `(seed, index)`.

    Modes:

    * `"classic"` (the first version, bit-identical): every part its own hue (golden-ratio steps), on a gradient
      background with random clutter shapes. Grouping pixels by color already finds the parts.
    * `"recognition"`: what color or texture grouping cannot solve. Each image has a palette of four appearances
      (color plus stripes, checker or blotches); the object's parts take different palette entries, the background
      is a patchwork of the same entries, and 2-4 loose distractor parts (of any class, ground truth background) are
      drawn with them too. A fifth class, part soup (`SOUP_LABEL`), scatters the parts of one class at random poses:
      the same parts, no object. Regions of one appearance differ only in texture orientation and phase and a
      little brightness, so their seams stay visible.

    Args:
        index (`int`): non-negative sample index.
        image_size (`int`, *optional*, defaults to 128): side of the square image, at least 32.
        seed (`int`, *optional*, defaults to 0): non-negative seed of the set.
        mode (`str`, *optional*, defaults to `"classic"`): one of `MODES`.

    Returns:
        [`PartWholeSample`]
    """
    _check_non_negative_int(index, "index")
    _check_non_negative_int(seed, "seed")
    _check_image_size(image_size)
    _check_mode(mode)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    rows, cols = np.mgrid[0:image_size, 0:image_size].astype(np.float64) + 0.5  # pixel centers
    if mode == "recognition":
        return _render_recognition(rng, index, image_size, rows, cols)
    label = index % len(PART_WHOLE_CLASSES)

    image = _background(rng, rows / image_size, cols / image_size)
    for _ in range(int(rng.integers(_CLUTTER_COUNT_RANGE[0], _CLUTTER_COUNT_RANGE[1] + 1))):
        inside = _clutter_shape(rng, rows / image_size, cols / image_size)
        image[inside] = _appearance(rng, rng.uniform(0, 1), rows / image_size, cols / image_size)[inside]

    across, down, unit = _object_frame(rng, rows, cols, image_size)
    part_mask = np.zeros((image_size, image_size), dtype=np.uint8)
    first_hue = rng.uniform(0, 1)
    drawn_parts = _CLASS_BUILDERS[label](rng, across, down)
    # one appearance per part *type* (all legs of an animal look alike), hues a golden-ratio step apart
    appearance = {}
    for part_id, inside in drawn_parts:
        if part_id not in appearance:
            hue = (first_hue + len(appearance) * _GOLDEN_RATIO_CONJUGATE) % 1.0
            appearance[part_id] = _appearance(rng, hue, down / unit, across / unit)
        image[inside] = appearance[part_id][inside]
        part_mask[inside] = part_id

    image += rng.normal(0.0, _NOISE_STD, image.shape)
    object_mask = np.where(part_mask > 0, label + 1, 0).astype(np.uint8)
    pixels = np.clip(np.rint(image), 0, _MAX_UINT8).astype(np.uint8)
    return PartWholeSample(image=pixels, label=label, object_mask=object_mask, part_mask=part_mask)


def make_part_whole_dataset(num_samples: int, image_size: int = 128, seed: int = 0, mode: str = "classic"):
    """
    A `datasets.Dataset` of `num_samples` part-whole samples ([`render_part_whole_sample`] with indices
    `0..num_samples-1` and the given `mode`).

    Returns:
        `datasets.Dataset` with columns `image` (RGB), `label` (`ClassLabel` with the names of
        [`classes_of_mode`]), `object_mask` and `part_mask` (mode "L" images of the masks described in
        [`PartWholeSample`]).
    """
    import datasets

    _check_non_negative_int(num_samples, "num_samples")
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be >= 1, got {num_samples}")
    samples = [render_part_whole_sample(index, image_size, seed, mode) for index in range(num_samples)]
    columns = {
        "image": [Image.fromarray(sample.image, mode="RGB") for sample in samples],
        "label": [sample.label for sample in samples],
        "object_mask": [Image.fromarray(sample.object_mask, mode="L") for sample in samples],
        "part_mask": [Image.fromarray(sample.part_mask, mode="L") for sample in samples],
    }
    return datasets.Dataset.from_dict(columns, features=_features(classes_of_mode(mode)))


def write_part_whole_imagefolder(dataset, folder: str | os.PathLike, split: str = "train") -> Path:
    """
    Write a part-whole dataset as an `imagefolder`: `folder/split/images/NNNNN.png`, `object_masks/NNNNN.png`,
    `part_masks/NNNNN.png` and `metadata.jsonl` (whose `object_mask_file_name` and `part_mask_file_name` columns
    make `datasets` load the masks as images), plus `folder/split/part_names.json`.

    Args:
        dataset (`datasets.Dataset`): columns `image`, `label`, `object_mask`, `part_mask` (from
            [`make_part_whole_dataset`]).
        folder (`str` or `os.PathLike`): the dataset root; created if needed.
        split (`str`, *optional*, defaults to `"train"`): name of the split folder.

    Returns:
        `Path`: the split folder. Load it with [`load_part_whole_imagefolder`] or
        `datasets.load_dataset("imagefolder", data_dir=folder)`.
    """
    missing = {"image", "label", "object_mask", "part_mask"} - set(getattr(dataset, "column_names", []))
    if missing:
        raise ValueError(f"`dataset` must have the part-whole columns, missing {sorted(missing)}")
    if not isinstance(split, str) or not split or os.sep in split:
        raise ValueError(f"`split` must be a non-empty folder name, got {split!r}")
    root = Path(folder) / split
    for sub_folder in ("images", "object_masks", "part_masks"):
        (root / sub_folder).mkdir(parents=True, exist_ok=True)
    with open(root / "metadata.jsonl", "w", encoding="utf-8") as metadata:
        for index, example in enumerate(dataset):
            name = f"{index:05d}.png"
            example["image"].convert("RGB").save(root / "images" / name)
            example["object_mask"].save(root / "object_masks" / name)
            example["part_mask"].save(root / "part_masks" / name)
            row = {
                "file_name": f"images/{name}",
                "object_mask_file_name": f"object_masks/{name}",
                "part_mask_file_name": f"part_masks/{name}",
                "label": int(example["label"]),
            }
            metadata.write(json.dumps(row) + "\n")
    written = len(dataset)
    for sub_folder in ("images", "object_masks", "part_masks"):  # files of an earlier, larger set in this folder
        for stale in (root / sub_folder).glob("[0-9][0-9][0-9][0-9][0-9].png"):
            if int(stale.stem) >= written:
                stale.unlink()
    classes = dataset.features["label"].names if hasattr(dataset.features["label"], "names") else PART_WHOLE_CLASSES
    (root / "part_names.json").write_text(json.dumps({"classes": list(classes), "parts": PART_NAMES}, indent=1))
    return root


def load_part_whole_imagefolder(folder: str | os.PathLike, split: str = "train"):
    """Load a split written by [`write_part_whole_imagefolder`] (offline) with the part-whole features."""
    import datasets

    root = Path(folder) / split
    if not (root / "metadata.jsonl").is_file():
        raise ValueError(f"`folder` must hold `{split}/metadata.jsonl` (see write_part_whole_imagefolder), got {folder!r}")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(root), split="train")
    names_file = root / "part_names.json"
    classes = json.loads(names_file.read_text())["classes"] if names_file.is_file() else PART_WHOLE_CLASSES
    return loaded.select_columns(["image", "label", "object_mask", "part_mask"]).cast(_features(classes))


def _features(classes=PART_WHOLE_CLASSES):
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(classes)),
            "object_mask": datasets.Image(),
            "part_mask": datasets.Image(),
        }
    )


# ---------------------------------------------------------------------------------------------------------------
# Geometry: masks of primitives in the object's frame (`across` to the right, `down` downwards, in frame units)
# ---------------------------------------------------------------------------------------------------------------


def _ellipse(across, down, center, radii, angle: float = 0.0) -> np.ndarray:
    along, normal = _rotate(across - center[0], down - center[1], angle)
    return (along / radii[0]) ** 2 + (normal / radii[1]) ** 2 <= 1.0


def _rectangle(across, down, center, size, angle: float = 0.0) -> np.ndarray:
    along, normal = _rotate(across - center[0], down - center[1], angle)
    return (np.abs(along) <= size[0] / 2) & (np.abs(normal) <= size[1] / 2)


def _polygon(across, down, vertices) -> np.ndarray:
    """Inside a convex polygon: on the same side of every edge (either orientation)."""
    sides = []
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]):
        sides.append((x1 - x0) * (down - y0) - (y1 - y0) * (across - x0))
    sides = np.stack(sides)
    return (sides >= 0).all(axis=0) | (sides <= 0).all(axis=0)


def _bar(across, down, start, angle: float, length: float, width: float) -> np.ndarray:
    """A rectangle of `length` x `width` starting at `start` and pointing along `angle` (radians)."""
    center = (start[0] + np.cos(angle) * length / 2, start[1] + np.sin(angle) * length / 2)
    return _rectangle(across, down, center, (length, width), angle)


def _rotate(across, down, angle: float):
    cosine, sine = np.cos(angle), np.sin(angle)
    return across * cosine + down * sine, -across * sine + down * cosine


# ---------------------------------------------------------------------------------------------------------------
# Object classes: each builder returns its parts as (part id, mask) in drawing order (later parts on top)
# ---------------------------------------------------------------------------------------------------------------


def _jitter(rng: np.random.Generator, value: float) -> float:
    return value * rng.uniform(*_SHAPE_JITTER)


def _shift(rng: np.random.Generator, value: float) -> float:
    return value + rng.uniform(-_POSITION_JITTER, _POSITION_JITTER)


def _quadruped(rng, across, down) -> list:
    torso_radii = (_jitter(rng, 0.6), _jitter(rng, 0.27))
    leg_top, leg_length, leg_width = 0.1, _jitter(rng, 0.62), _jitter(rng, 0.1)
    legs = np.zeros(across.shape, dtype=bool)
    for position in (-0.48, -0.3, 0.3, 0.48):
        legs |= _bar(across, down, (_shift(rng, position), leg_top), np.pi / 2 + rng.uniform(-0.2, 0.2), leg_length, leg_width)
    tail_angle = np.pi + rng.uniform(0.35, 0.9)  # pointing back and up
    tail = _bar(across, down, (-torso_radii[0] * 0.85, -0.05), tail_angle, _jitter(rng, 0.45), _jitter(rng, 0.07))
    torso = _ellipse(across, down, (0.0, 0.0), torso_radii)
    head = _ellipse(across, down, (_shift(rng, 0.72), _shift(rng, -0.32)), (_jitter(rng, 0.24), _jitter(rng, 0.19)), -0.3)
    return [
        (_PART_ID["quadruped tail"], tail),
        (_PART_ID["quadruped leg"], legs),
        (_PART_ID["quadruped torso"], torso),
        (_PART_ID["quadruped head"], head),
    ]


def _bird(rng, across, down) -> list:
    body = _ellipse(across, down, (0.0, 0.1), (_jitter(rng, 0.5), _jitter(rng, 0.3)), -0.15)
    tail_length = _jitter(rng, 0.42)
    tail = _polygon(across, down, [(-0.35, 0.1), (-0.35 - tail_length, -0.12), (-0.35 - tail_length, 0.34)])
    head_center = (_shift(rng, 0.5), _shift(rng, -0.3))
    head_radius = _jitter(rng, 0.2)
    head = _ellipse(across, down, head_center, (head_radius, head_radius))
    beak_start = head_center[0] + head_radius * 0.8
    beak_length, beak_height = _jitter(rng, 0.28), _jitter(rng, 0.14)
    beak = _polygon(
        across,
        down,
        [(beak_start, head_center[1] - beak_height / 2), (beak_start + beak_length, head_center[1]),
         (beak_start, head_center[1] + beak_height / 2)],
    )
    wing_tip = (_shift(rng, -0.2), -_jitter(rng, 0.75))
    wing = _polygon(across, down, [(-0.3, 0.05), (0.25, 0.0), wing_tip])
    return [
        (_PART_ID["bird tail"], tail),
        (_PART_ID["bird body"], body),
        (_PART_ID["bird beak"], beak),
        (_PART_ID["bird head"], head),
        (_PART_ID["bird wing"], wing),
    ]


def _vehicle(rng, across, down) -> list:
    length, height = _jitter(rng, 1.8), _jitter(rng, 0.45)
    body = _rectangle(across, down, (0.0, 0.12), (length, height))
    roof, cabin_bottom = -_jitter(rng, 0.5), 0.12 - height / 2
    cabin_front, cabin_back = _jitter(rng, 0.45), -_jitter(rng, 0.5)
    cabin = _polygon(
        across,
        down,
        [(cabin_back - 0.12, cabin_bottom), (cabin_front + 0.15, cabin_bottom), (cabin_front - 0.05, roof), (cabin_back, roof)],
    )
    window_height = (cabin_bottom - roof) * 0.6
    window_center = (roof + cabin_bottom) / 2
    windows = np.zeros(across.shape, dtype=bool)
    window_width = (cabin_front - cabin_back) * 0.38
    for center in (cabin_back + window_width * 0.7, cabin_front - window_width * 0.7):
        windows |= _rectangle(across, down, (center, window_center), (window_width, window_height))
    wheel_radius = _jitter(rng, 0.22)
    wheels = np.zeros(across.shape, dtype=bool)
    for position in (-length * 0.3, length * 0.3):
        wheels |= _ellipse(across, down, (position, 0.12 + height / 2), (wheel_radius, wheel_radius))
    return [
        (_PART_ID["vehicle body"], body | cabin),
        (_PART_ID["vehicle window"], windows),
        (_PART_ID["vehicle wheel"], wheels),
    ]


def _house(rng, across, down) -> list:
    width, height = _jitter(rng, 1.2), _jitter(rng, 0.85)
    wall_top = -0.2
    wall = _rectangle(across, down, (0.0, wall_top + height / 2), (width, height))
    overhang = _jitter(rng, 0.15)
    roof = _polygon(
        across, down, [(-width / 2 - overhang, wall_top), (width / 2 + overhang, wall_top), (_shift(rng, 0.0), -_jitter(rng, 0.85))]
    )
    door_size = (_jitter(rng, 0.26), _jitter(rng, 0.42))
    door = _rectangle(across, down, (_shift(rng, width * 0.2), wall_top + height - door_size[1] / 2), door_size)
    window = _rectangle(
        across, down, (_shift(rng, -width * 0.22), wall_top + height * 0.4), (_jitter(rng, 0.26), _jitter(rng, 0.24))
    )
    return [
        (_PART_ID["house wall"], wall),
        (_PART_ID["house roof"], roof),
        (_PART_ID["house door"], door),
        (_PART_ID["house window"], window),
    ]


_CLASS_BUILDERS = (_quadruped, _bird, _vehicle, _house)


def _object_frame(rng: np.random.Generator, rows, cols, image_size: int, max_rotation: float = _MAX_ROTATION_DEGREES):
    """Pixel coordinates in a random pose's object frame: (`across`, `down`) and the pixels per frame unit."""
    unit = rng.uniform(*_SCALE_RANGE) * image_size / 2
    margin = _CENTER_MARGIN * unit
    center_row, center_col = rng.uniform(margin, image_size - margin, size=2)
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
    across, down = _rotate((cols - center_col) / unit, (rows - center_row) / unit, angle)
    if rng.uniform() < 0.5:  # mirrored: facing left
        across = -across
    return across, down, unit


# ---------------------------------------------------------------------------------------------------------------
# Appearance
# ---------------------------------------------------------------------------------------------------------------


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """One HSV color (all in [0, 1]) as RGB in 0-255 (the standard hexcone formula)."""
    channel = np.array([5.0, 3.0, 1.0])
    k = (channel + hue * 6.0) % 6.0
    return _MAX_UINT8 * (value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


def _appearance(rng: np.random.Generator, hue: float, rows, cols) -> np.ndarray:
    """An (H, W, 3) float image: one color of hue `hue` plus a random texture in the given coordinates."""
    color = _hsv_to_rgb(hue, rng.uniform(*_SATURATION_RANGE), rng.uniform(*_VALUE_RANGE))
    return color + _texture(rng, rows, cols)[..., None]


def _texture(rng: np.random.Generator, rows, cols) -> np.ndarray:
    return _render_texture(_texture_spec(rng), rows, cols)


def _texture_spec(rng: np.random.Generator, kinds: tuple[str, ...] = _TEXTURE_KINDS) -> dict:
    """The random parameters of a texture. The draws (kind, amplitude, period, angle, then the blotch grid) keep
    the order of the first version of this generator, so classic samples stay bit-identical."""
    spec = {
        "kind": kinds[int(rng.integers(len(kinds)))],
        "amplitude": rng.uniform(*_TEXTURE_AMPLITUDE_RANGE),
        "period": rng.uniform(*_TEXTURE_PERIOD_RANGE),
        "angle": rng.uniform(0, np.pi),
    }
    if spec["kind"] == "blotches":
        spec["grid"] = rng.normal(0.0, spec["amplitude"], (_BLOTCH_GRID + 1, _BLOTCH_GRID + 1))
    return spec


def _render_texture(spec: dict, rows, cols, angle: float | None = None, offset: float = 0.0) -> np.ndarray:
    """The texture of `spec` in the given coordinates; `angle` and `offset` (in periods) override its orientation
    and shift its phase, so that two regions of one appearance still meet at a visible seam."""
    along, normal = _rotate(cols, rows, spec["angle"] if angle is None else angle)
    along = along + offset * spec["period"]
    kind, amplitude, period = spec["kind"], spec["amplitude"], spec["period"]
    if kind == "flat":
        return np.zeros(rows.shape)
    if kind == "stripes":
        return amplitude * np.sign(np.sin(2 * np.pi * along / period))
    if kind == "checker":
        return amplitude * np.sign(np.sin(2 * np.pi * along / period) * np.sin(2 * np.pi * normal / period))
    # blotches: smooth noise, bilinear interpolation of a coarse random grid indexed by the coordinates
    grid = spec["grid"]
    scaled_rows = np.mod(along / (period * 2), 1.0) * _BLOTCH_GRID
    scaled_cols = np.mod(normal / (period * 2), 1.0) * _BLOTCH_GRID
    top, left = np.floor(scaled_rows).astype(int), np.floor(scaled_cols).astype(int)
    down_weight, right_weight = scaled_rows - top, scaled_cols - left
    upper = grid[top, left] * (1 - right_weight) + grid[top, left + 1] * right_weight
    lower = grid[top + 1, left] * (1 - right_weight) + grid[top + 1, left + 1] * right_weight
    return upper * (1 - down_weight) + lower * down_weight


def _background(rng: np.random.Generator, rows, cols) -> np.ndarray:
    """A gradient between two random colors along a random direction, plus a texture (image-fraction units)."""
    start = _hsv_to_rgb(rng.uniform(), rng.uniform(*_SATURATION_RANGE), rng.uniform(*_VALUE_RANGE))
    end = _hsv_to_rgb(rng.uniform(), rng.uniform(*_SATURATION_RANGE), rng.uniform(*_VALUE_RANGE))
    angle = rng.uniform(0, 2 * np.pi)
    position = np.clip((np.cos(angle) * (cols - 0.5) + np.sin(angle) * (rows - 0.5)) / np.sqrt(2) + 0.5, 0, 1)
    return start + (end - start) * position[..., None] + _texture(rng, rows, cols)[..., None]


def _clutter_shape(rng: np.random.Generator, rows, cols) -> np.ndarray:
    """A random disc, ellipse, rectangle or triangle (image-fraction units)."""
    center = (rng.uniform(0, 1), rng.uniform(0, 1))
    radius = rng.uniform(*_CLUTTER_SIZE_RANGE)
    kind = int(rng.integers(3))
    if kind == 0:
        return _ellipse(cols, rows, center, (radius, radius * rng.uniform(0.4, 1.0)), rng.uniform(0, np.pi))
    if kind == 1:
        return _rectangle(cols, rows, center, (2 * radius, 2 * radius * rng.uniform(0.3, 1.0)), rng.uniform(0, np.pi))
    angles = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2.1, 4.2])
    vertices = [(center[0] + radius * np.cos(a), center[1] + radius * np.sin(a)) for a in angles]
    return _polygon(cols, rows, vertices)


# ---------------------------------------------------------------------------------------------------------------
# Recognition mode: shared appearances, patchwork background, distractor parts and part soup
# ---------------------------------------------------------------------------------------------------------------


def _render_recognition(rng: np.random.Generator, index: int, image_size: int, rows, cols) -> PartWholeSample:
    label = index % len(RECOGNITION_CLASSES)
    # part soup cycles through the classes whose parts it scatters, so each class's parts appear equally often
    source_class = (index // len(RECOGNITION_CLASSES)) % len(PART_WHOLE_CLASSES) if label == SOUP_LABEL else label
    unit_rows, unit_cols = rows / image_size, cols / image_size
    first_hue = rng.uniform(0, 1)
    palette = [
        {
            "color": _hsv_to_rgb((first_hue + entry * _GOLDEN_RATIO_CONJUGATE) % 1.0,
                                 rng.uniform(*_SATURATION_RANGE), rng.uniform(*_VALUE_RANGE)),
            "texture": _texture_spec(rng, _RECOGNITION_TEXTURES),
        }
        for entry in range(_PALETTE_SIZE)
    ]

    def paint(inside: np.ndarray, entry: int) -> None:
        # every region draws its own texture orientation, phase and brightness: same appearance, visible seams
        appearance = palette[entry]
        texture = _render_texture(appearance["texture"], unit_rows, unit_cols, rng.uniform(0, np.pi), rng.uniform(0, 1))
        shade = appearance["color"] * (1.0 + rng.uniform(-_REGION_VALUE_JITTER, _REGION_VALUE_JITTER))
        image[inside] = (shade + texture[..., None])[inside]

    image = np.zeros((image_size, image_size, 3))
    # background: a patchwork of palette cells (nearest of a few random sites)
    sites = rng.uniform(0, 1, (int(rng.integers(_PATCHWORK_CELL_RANGE[0], _PATCHWORK_CELL_RANGE[1] + 1)), 2))
    cell = np.argmin((unit_rows[..., None] - sites[:, 0]) ** 2 + (unit_cols[..., None] - sites[:, 1]) ** 2, axis=-1)
    for site in range(len(sites)):
        paint(cell == site, int(rng.integers(_PALETTE_SIZE)))
    # distractors: loose parts of any class, background in the ground truth
    for _ in range(int(rng.integers(_DISTRACTOR_COUNT_RANGE[0], _DISTRACTOR_COUNT_RANGE[1] + 1))):
        parts = _loose_part_masks(rng, int(rng.integers(len(PART_WHOLE_CLASSES))), rows, cols, image_size)
        _, inside = parts[int(rng.integers(len(parts)))]
        paint(inside, int(rng.integers(_PALETTE_SIZE)))

    part_mask = np.zeros((image_size, image_size), dtype=np.uint8)
    if label == SOUP_LABEL:
        # each part type at its own random pose (any rotation): the parts of a whole, not arranged as one
        drawn_parts = [
            next(item for item in _loose_part_masks(rng, source_class, rows, cols, image_size) if item[0] == part_id)
            for part_id in PARTS_OF_CLASS[source_class]
        ]
    else:
        across, down, _ = _object_frame(rng, rows, cols, image_size)
        drawn_parts = _CLASS_BUILDERS[label](rng, across, down)
    # part types take palette entries in a random order: the parts of one object differ in appearance (a class
    # with more part types than entries repeats one)
    order = rng.permutation(_PALETTE_SIZE)
    part_types = list(dict.fromkeys(part_id for part_id, _ in drawn_parts))
    for part_id, inside in drawn_parts:
        paint(inside, int(order[part_types.index(part_id) % _PALETTE_SIZE]))
        part_mask[inside] = part_id

    image += rng.normal(0.0, _NOISE_STD, image.shape)
    object_mask = np.where(part_mask > 0, label + 1, 0).astype(np.uint8) if label != SOUP_LABEL else np.zeros_like(part_mask)
    pixels = np.clip(np.rint(image), 0, _MAX_UINT8).astype(np.uint8)
    return PartWholeSample(image=pixels, label=label, object_mask=object_mask, part_mask=part_mask, source_class=source_class)


def _loose_part_masks(rng: np.random.Generator, label: int, rows, cols, image_size: int) -> list:
    """The parts of class `label` built in a frame of any rotation (part soup and distractors use one part each)."""
    across, down, _ = _object_frame(rng, rows, cols, image_size, max_rotation=180.0)
    return _CLASS_BUILDERS[label](rng, across, down)


def _check_mode(mode) -> None:
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")


def _check_non_negative_int(value, argument: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{argument}` must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"`{argument}` must be >= 0, got {value}")


def _check_image_size(image_size) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral):
        raise TypeError(f"`image_size` must be an int, got {type(image_size).__name__}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"`image_size` must be >= {MIN_IMAGE_SIZE} (thin parts vanish below it), got {image_size}")
