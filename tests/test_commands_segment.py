# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of the `cast-segment` command line (`modeling_cast.commands.segment`)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file
from skimage import data as skimage_data

from modeling_cast.commands import segment as segment_command
from conftest import REPO_ROOT, TINY_CLASSIFIER_NUM_SEGMENTS as NUM_SEGMENTS
from processing.visualization_cast import DEFAULT_GAP


CORRUPT_NAME = "broken.png"


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> dict[str, Path]:
    """Two real images (PNG and JPEG, different sizes) and a file that is no image at all."""
    folder = tmp_path_factory.mktemp("images")
    files = {
        "astronaut": folder / "astronaut.png",
        "chelsea": folder / "chelsea.jpg",
        "broken": folder / CORRUPT_NAME,
    }
    Image.fromarray(skimage_data.astronaut()).save(files["astronaut"])
    Image.fromarray(skimage_data.chelsea()).save(files["chelsea"], quality=90)
    files["broken"].write_bytes(b"this is not a PNG file\n" * 10)
    return files


def _run_cli_subprocess(*args: str) -> subprocess.CompletedProcess:
    """Run the console script's function in a fresh interpreter, as the installed `cast-segment` does."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1")
    command = [sys.executable, "-c", "import sys; from modeling_cast.commands.segment import main; sys.exit(main())", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def subprocess_run(model_dir, image_files, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("outputs")
    images = [str(image_files[name]) for name in ("astronaut", "broken", "chelsea")]
    result = _run_cli_subprocess(*images, "--model", str(model_dir), "--output-dir", str(output_dir))
    return result, output_dir


def test_cast_segment_subprocess_writes_outputs_for_good_images_and_reports_the_corrupt_one(
    subprocess_run, image_files
):
    result, output_dir = subprocess_run
    assert result.returncode == 1, result.stderr

    expected = set()
    for stem in ("astronaut", "chelsea"):
        expected |= {f"{stem}_hierarchy.png", f"{stem}_overlay.png", f"{stem}_segments.json"}
        expected |= {f"{stem}_level{level}.png" for level in range(len(NUM_SEGMENTS))}
        expected |= {f"{stem}_level{level}_color.png" for level in range(len(NUM_SEGMENTS))}
    assert {path.name for path in output_dir.iterdir()} == expected

    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, result.stderr
    assert str(image_files["broken"]) in error_lines[0]
    assert "cannot read the image" in error_lines[0]
    assert "1 failed" in result.stderr
    assert "chelsea" not in result.stderr and "astronaut" not in result.stderr


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_cast_segment_outputs_are_at_the_original_size(subprocess_run, image_files, name):
    _, output_dir = subprocess_run
    with Image.open(image_files[name]) as image:
        width, height = image.size
    num_levels = len(NUM_SEGMENTS)

    with Image.open(output_dir / f"{name}_hierarchy.png") as picture:
        assert picture.size == ((num_levels + 1) * width + num_levels * DEFAULT_GAP, height)
    summary = json.loads((output_dir / f"{name}_segments.json").read_text())
    assert summary["image_size"] == {"height": height, "width": width}
    assert summary["image"] == str(image_files[name])
    assert summary["picture"] == f"{name}_hierarchy.png"
    assert [level["level"] for level in summary["levels"]] == list(range(num_levels))

    label_maps = []
    for level, level_summary in enumerate(summary["levels"]):
        with Image.open(output_dir / level_summary["label_map"]) as label_map:
            assert label_map.mode == "L"  # fewer than 256 segments: 8-bit
            labels = np.asarray(label_map)
        assert labels.shape == (height, width)
        ids, areas = np.unique(labels, return_counts=True)
        segments = level_summary["segments"]
        assert [segment["id"] for segment in segments] == ids.tolist()
        assert [segment["area"] for segment in segments] == areas.tolist()
        assert all(0.0 <= segment["score"] <= 1.0 for segment in segments)
        assert ids.max() < NUM_SEGMENTS[level]
        label_maps.append(labels)
    # the levels are nested at the original size: each fine segment lies in one coarse segment
    pairs = np.unique(np.stack([label_maps[0].ravel(), label_maps[1].ravel()]), axis=1)
    assert len(pairs[0]) == len(np.unique(pairs[0]))


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_cast_segment_color_label_maps_keep_the_ids_and_show_the_picture_colors(subprocess_run, image_files, name):
    _, output_dir = subprocess_run
    summary = json.loads((output_dir / f"{name}_segments.json").read_text())
    with Image.open(output_dir / f"{name}_hierarchy.png") as picture:
        panels = np.asarray(picture.convert("RGB"))
    width = summary["image_size"]["width"]
    for level_summary in summary["levels"]:
        level = level_summary["level"]
        with Image.open(output_dir / level_summary["label_map"]) as raw, Image.open(
            output_dir / level_summary["color_label_map"]
        ) as color:
            assert color.mode == "P"
            np.testing.assert_array_equal(np.asarray(color), np.asarray(raw))  # the indices are the segment ids
            rgb = np.asarray(color.convert("RGB"))
        # the viewer's colors are the picture's flat colors (boundaries aside)
        left = (level + 1) * (width + DEFAULT_GAP)
        panel = panels[:, left : left + width]
        inside = (panel != 255).any(axis=-1)
        np.testing.assert_array_equal(rgb[inside], panel[inside])
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == level_summary["num_segments"]


def test_cast_segment_overlay_picture_is_captioned_and_shows_the_photo(subprocess_run, image_files):
    _, output_dir = subprocess_run
    summary = json.loads((output_dir / "astronaut_segments.json").read_text())
    assert summary["overlay_picture"] == "astronaut_overlay.png"
    photo = np.asarray(Image.open(image_files["astronaut"]).convert("RGB")).astype(np.float64)
    height, width = photo.shape[:2]
    with Image.open(output_dir / "astronaut_overlay.png") as overlay:
        assert overlay.width == (len(NUM_SEGMENTS) + 1) * width + len(NUM_SEGMENTS) * DEFAULT_GAP
        assert overlay.height > height  # the caption strip
        pixels = np.asarray(overlay.convert("RGB")).astype(np.float64)
    caption_strip = pixels[height:]
    assert (caption_strip < 128).any()  # dark caption text on the white strip
    level_panel = pixels[:height, width + DEFAULT_GAP : 2 * width + DEFAULT_GAP]
    # half the photo shows through: the panel follows the photo's brightness, unlike the flat-color panels
    correlation = np.corrcoef(level_panel.mean(axis=-1).ravel(), photo.mean(axis=-1).ravel())[0, 1]
    assert correlation > 0.5


def test_cast_segment_level_and_n_segments_options(model_dir, image_files, tmp_path):
    arguments = [str(image_files["chelsea"]), "--model", str(model_dir), "--output-dir", str(tmp_path / "out")]
    status = segment_command.main([*arguments, "--level", "-1", "--n-segments", "12"])
    assert status == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "chelsea_hierarchy.png",
        "chelsea_level1.png",
        "chelsea_level1_color.png",
        "chelsea_overlay.png",
        "chelsea_segments.json",
    ]
    summary = json.loads((tmp_path / "out" / "chelsea_segments.json").read_text())
    assert [level["level"] for level in summary["levels"]] == [1]
    assert summary["num_superpixels"] <= 2 * 12


def test_cast_segment_reads_16_bit_images_like_their_8_bit_versions(model_dir, tmp_path):
    gray = np.ascontiguousarray(skimage_data.camera()[::4, ::4])  # 128 x 128, uint8
    Image.fromarray(gray).save(tmp_path / "eight.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")  # v = 257 u: u in 16 bits
    with Image.open(tmp_path / "sixteen.png") as written:
        assert written.mode in ("I;16", "I"), written.mode  # Pillow reads it back as a 16-bit image
    output_dir = tmp_path / "out"

    status = segment_command.main(
        [str(tmp_path / "eight.png"), str(tmp_path / "sixteen.png"), "--model", str(model_dir), "--output-dir",
         str(output_dir)]
    )

    assert status == 0
    width = gray.shape[1]
    for stem in ("eight", "sixteen"):
        # the first panel of the picture is the image itself: 16-bit pixels scaled to 8 bits, not saturated to 255
        with Image.open(output_dir / f"{stem}_hierarchy.png") as picture:
            np.testing.assert_array_equal(np.asarray(picture)[:, :width], np.repeat(gray[..., None], 3, axis=-1))
    for level in range(len(NUM_SEGMENTS)):
        with Image.open(output_dir / f"eight_level{level}.png") as eight, Image.open(
            output_dir / f"sixteen_level{level}.png"
        ) as sixteen:
            np.testing.assert_array_equal(np.asarray(eight), np.asarray(sixteen))


def test_cast_segment_reports_truncated_files_and_keeps_same_stems_apart(model_dir, image_files, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    same_stem = other / "astronaut.jpg"
    Image.open(image_files["astronaut"]).convert("RGB").save(same_stem)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(same_stem.read_bytes()[:2000])
    missing = tmp_path / "missing.png"

    images = [str(image_files["astronaut"]), str(same_stem), str(truncated), str(missing)]
    status = segment_command.main([*images, "--model", str(model_dir), "--output-dir", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert status == 1
    names = {path.name for path in (tmp_path / "out").iterdir()}
    assert {"astronaut_hierarchy.png", "astronaut-2_hierarchy.png"} <= names
    assert not any(name.startswith(("truncated", "missing")) for name in names)
    assert "2 of 4 image(s) segmented; 2 failed" in stderr
    assert f"error: {truncated}: cannot read the image" in stderr
    assert f"error: {missing}: cannot read the image" in stderr


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        (["--level", "2"], r"--level must be in \[-2, 1\] for this 2-level model, got 2"),
        (["--n-segments", "0"], "--n-segments: expected a positive integer, got 0"),
        (["--device", "tpu"], "--device: invalid choice"),
    ],
)
def test_cast_segment_bad_arguments_exit_2(model_dir, image_files, tmp_path, capsys, extra_args, message):
    with pytest.raises(SystemExit) as exit_info:
        segment_command.main(
            [str(image_files["chelsea"]), "--model", str(model_dir), "--output-dir", str(tmp_path), *extra_args]
        )
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_cast_segment_unloadable_model_exits_2(image_files, tmp_path, capsys):
    missing_model = tmp_path / "no-such-model"
    with pytest.raises(SystemExit) as exit_info:
        segment_command.main(
            [str(image_files["chelsea"]), "--model", str(missing_model), "--output-dir", str(tmp_path / "out")]
        )
    assert exit_info.value.code == 2
    assert f"--model {missing_model}: cannot load a CAST model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cast_segment_checkpoint_missing_backbone_weights_exits_2(model_dir, image_files, tmp_path, capsys):
    incomplete = tmp_path / "incomplete"
    shutil.copytree(model_dir, incomplete)
    weights = load_file(incomplete / "model.safetensors")
    missing_key = next(key for key in sorted(weights) if key.startswith("cast.encoder."))
    del weights[missing_key]
    save_file(weights, incomplete / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SystemExit) as exit_info:
        segment_command.main(
            [str(image_files["chelsea"]), "--model", str(incomplete), "--output-dir", str(tmp_path / "out")]
        )
    assert exit_info.value.code == 2
    assert "the checkpoint lacks 1 weight(s) of the CAST backbone" in capsys.readouterr().err


def test_cast_segment_weights_that_do_not_fit_the_config_are_named(model_dir, image_files, tmp_path, capsys):
    """Issue 17 item 7: the error used to say "For details look at the above report!" with the report hidden."""
    edited = tmp_path / "edited"
    shutil.copytree(model_dir, edited)
    config = json.loads((edited / "config.json").read_text())
    config["mlp_ratio"] = 2.0  # the saved MLPs are wider
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as exit_info:
        segment_command.main([str(image_files["chelsea"]), "--model", str(edited), "--output-dir", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--model {edited}: its weights do not fit its config.json:" in err
    assert re.search(r"weight\(s\) have other shapes, e\.g\. 'encoder\.stages\.\d\.layers\.\d\.mlp\.fc1\.(bias|weight)' is "
                     r"\([\d, ]+\) in the checkpoint but \([\d, ]+\) for the config", err), err
    assert "above report" not in err and not (tmp_path / "o").exists()


def test_cast_segment_console_script_is_installed():
    script = Path(sys.executable).parent / "cast-segment"
    if not script.exists():
        pytest.skip(
            f"no `cast-segment` next to {sys.executable}: `pip install -e .` (which `make test` runs) installs it"
        )
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage: cast-segment" in result.stdout
    assert "--n-segments" in result.stdout


def test_cast_segment_adaptation_steps_adapt_each_image_deterministically(model_dir, image_files, tmp_path):
    arguments = [str(image_files["chelsea"]), "--model", str(model_dir), "--n-segments", "12", "--adaptation-steps", "1"]
    for run in ("first", "second"):
        assert segment_command.main([*arguments, "--output-dir", str(tmp_path / run)]) == 0
    summaries = [json.loads((tmp_path / run / "chelsea_segments.json").read_text()) for run in ("first", "second")]
    adaptation = summaries[0]["adaptation"]
    assert adaptation["steps"] == 1 and len(adaptation["losses"]) == 1
    assert set(adaptation["changed_levels"]) <= set(range(len(NUM_SEGMENTS)))
    assert summaries[0] == summaries[1]
    for level in range(len(NUM_SEGMENTS)):
        first, second = (np.array(Image.open(tmp_path / run / f"chelsea_level{level}.png")) for run in ("first", "second"))
        assert np.array_equal(first, second)
    # without the option the summary has no adaptation
    assert segment_command.main([*arguments[:-2], "--output-dir", str(tmp_path / "plain")]) == 0
    assert "adaptation" not in json.loads((tmp_path / "plain" / "chelsea_segments.json").read_text())


def test_cast_segment_adaptation_needs_a_recognition_head_and_a_valid_step_count(
    model_dir, image_files, tmp_path, capsys
):
    from modeling_cast import CastModel

    backbone_dir = tmp_path / "backbone"
    CastModel.from_pretrained(model_dir).save_pretrained(backbone_dir)
    shutil.copy(model_dir / "preprocessor_config.json", backbone_dir)
    arguments = [str(image_files["chelsea"]), "--output-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        segment_command.main([*arguments, "--model", str(backbone_dir), "--adaptation-steps", "2"])
    assert exit_info.value.code == 2
    assert "test-time adaptation needs a classifier or pretraining checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        segment_command.main([*arguments, "--model", str(model_dir), "--adaptation-steps", "-1"])
    assert exit_info.value.code == 2
    assert "--adaptation-steps: expected a non-negative integer, got -1" in capsys.readouterr().err
