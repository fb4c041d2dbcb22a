"""`torch.export`, ONNX (dynamo exporter + onnxruntime) and the `cast-export` command: one graph per model serves three
real photos with different superpixel counts, alone and batched, and agrees with eager (1e-4 on the float outputs,
exactly on the hierarchy)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config_kwargs

from modeling_cast import (
    CastConfig,
    CastForImageClassification,
    CastForSemanticSegmentation,
    CastImageProcessor,
    CastModel,
)
from modeling_cast.commands import export as export_command
from modeling_cast.commands.export import CastExportModule, export_onnx, export_program, sample_photos, verify_onnx

pytest.importorskip("onnxruntime", reason="the `export` extra (onnx, onnxruntime, onnxscript) is not installed")
pytest.importorskip("onnxscript", reason="the `export` extra (onnx, onnxruntime, onnxscript) is not installed")

ATOL = 1e-4
IMAGE_SIZE = 64
# at 64x64, SLIC with 20 segments gives the three photos 11, 23 and 17 tokens: three counts, one graph
N_SEGMENTS = 20
BUDGET = 32


@pytest.fixture(scope="module")
def photo_inputs():
    processor = CastImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, n_segments=N_SEGMENTS, superpixel_method="slic"
    )
    inputs = processor(sample_photos(), return_tensors="pt")
    counts = (inputs["superpixels"][:, ::8, ::8].flatten(1).amax(dim=1) + 1).tolist()
    assert len(set(counts)) == 3, counts  # the test is about different counts through one graph
    return processor, inputs["pixel_values"], inputs["superpixels"]


def _tiny(model_class, **overrides):
    torch.manual_seed(0)
    settings = {"image_size": IMAGE_SIZE, "num_segments": [8, 4], "max_superpixel_tokens": BUDGET, **overrides}
    config = CastConfig(**tiny_config_kwargs(**settings))
    return model_class(config).eval()


def _batches(pixel_values, superpixels):
    """The three photos batched, then each alone."""
    alone = [(pixel_values[index : index + 1], superpixels[index : index + 1]) for index in range(len(pixel_values))]
    return [(pixel_values, superpixels), *alone]


def _assert_outputs_agree(names, exported, eager):
    for name, graph_value, eager_value in zip(names, exported, eager):
        if name == "hierarchy":
            assert torch.equal(graph_value, eager_value), name
        else:
            torch.testing.assert_close(graph_value, eager_value, atol=ATOL, rtol=ATOL, msg=name)


@pytest.mark.parametrize("model_class", [CastModel, CastForImageClassification, CastForSemanticSegmentation])
def test_torch_export_one_program_serves_every_superpixel_count_and_batch_size(model_class, photo_inputs):
    _, pixel_values, superpixels = photo_inputs
    model = _tiny(model_class)
    program = export_program(model, pixel_values[:2], superpixels[:2])
    module = CastExportModule(model)
    for batch_pixels, batch_superpixels in _batches(pixel_values, superpixels):
        with torch.no_grad():
            exported = program.module()(batch_pixels, batch_superpixels)
            eager = module(batch_pixels, batch_superpixels)
        _assert_outputs_agree(module.output_names, exported, eager)


def test_onnx_graph_agrees_with_eager_on_three_photos(photo_inputs, tmp_path):
    """Pooled features, assignment logits and the hierarchy of the base model through one ONNX graph."""
    _, pixel_values, superpixels = photo_inputs
    model = _tiny(CastModel)
    path = tmp_path / "cast.onnx"
    names = export_onnx(model, pixel_values[:2], superpixels[:2], path)
    assert {"pooler_output", "hierarchy", "hierarchy_scores", "assignment_logits_0", "assignment_logits_1"} <= set(names)
    differences = verify_onnx(path, model, _batches(pixel_values, superpixels))
    assert differences["hierarchy"] == 0
    assert all(difference <= ATOL for name, difference in differences.items() if name != "hierarchy"), differences


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory, photo_inputs):
    processor, _, _ = photo_inputs
    folder = tmp_path_factory.mktemp("classifier")
    _tiny(CastForImageClassification).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_cast_export_writes_and_verifies_the_graph(classifier_folder, tmp_path, capsys):
    output, program = tmp_path / "out" / "model.onnx", tmp_path / "model.pt2"
    status = export_command.main([str(classifier_folder), "--output", str(output), "--program", str(program)])
    assert status == export_command.EXIT_OK
    assert output.is_file() and program.is_file()
    report = json.loads(capsys.readouterr().out)
    assert len(set(report["superpixel_counts"])) == 3
    assert report["max_abs_difference"]["hierarchy"] == 0 and report["max_abs_difference"]["logits"] <= ATOL
    assert torch.export.load(str(program)).module() is not None


def test_cast_export_rejects_images_over_the_budget(tmp_path, photo_inputs, capsys):
    processor, _, _ = photo_inputs
    folder = tmp_path / "small_budget"
    _tiny(CastModel, max_superpixel_tokens=12).save_pretrained(folder)
    processor.save_pretrained(folder)
    with pytest.raises(SystemExit) as exit_info:
        export_command.main([str(folder), "--output", str(tmp_path / "model.onnx")])
    assert exit_info.value.code == export_command.EXIT_BAD_ARGUMENTS
    assert "max_superpixel_tokens" in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


def test_cast_export_needs_two_images(classifier_folder, tmp_path, capsys):
    image = tmp_path / "one.png"
    from PIL import Image

    Image.fromarray(sample_photos()[0]).save(image)
    with pytest.raises(SystemExit) as exit_info:
        export_command.main([str(classifier_folder), "--output", str(tmp_path / "m.onnx"), "--images", str(image)])
    assert exit_info.value.code == export_command.EXIT_BAD_ARGUMENTS
    assert "at least two images" in capsys.readouterr().err
