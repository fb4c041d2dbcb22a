"""Numerical parity with the official CAST implementation (golden vectors in tests/fixtures and ../shared/reference).

Every case stores the official state dict, the inputs and every intermediate output. The converted weights are
loaded into `CastForImageClassification` and compared at 1e-4 (float tensors, float32) and exactly (seeds and
segmentations). Where a batch mixes images with different superpixel counts, the official model's outputs depend
on the batch (it never masks padding); this package is batch-invariant, so each image of the batched run is
compared with the official run of that image alone (`*_alone.safetensors`). An official MoCo-v3 training checkpoint
is checked as a backbone and with its MoCo heads.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FIXTURES, SHARED_REFERENCE
from safetensors.torch import load_file

from modeling_cast import CastConfig, CastForImageClassification, CastForPreTraining, CastModel
from modeling_cast.conversion import convert_state_dict, infer_config

ATOL = RTOL = 1e-4
STATE_PREFIX = "state_dict."


def _locate(name: str):
    for folder in (FIXTURES, SHARED_REFERENCE):
        if (folder / name).exists():
            return folder / name
    return None


def _load_case(case: str):
    path = _locate(f"{case}.safetensors")
    if path is None:
        pytest.skip(f"golden vectors {case}.safetensors not found in tests/fixtures or {SHARED_REFERENCE}")
    data = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    alone_path = _locate(f"{case}_alone.safetensors")
    alone = load_file(str(alone_path)) if alone_path is not None else None
    return data, meta, alone


def _official_config_kwargs(meta: dict) -> dict:
    args = meta["constructor_args"]
    return {"num_attention_heads": args["num_heads"], "num_segments": args["num_clusters"]}


def _run_case(case: str, attn_implementation: str):
    data, meta, alone = _load_case(case)
    # small_224 stores float16-representable weights: casting to float32 gives exactly the official model
    state_dict = {k[len(STATE_PREFIX):]: v.float() for k, v in data.items() if k.startswith(STATE_PREFIX)}
    config = infer_config(state_dict, attn_implementation=attn_implementation, **_official_config_kwargs(meta))
    model = CastForImageClassification(config).eval()
    model.load_state_dict(convert_state_dict(state_dict, config), strict=True)
    pixel_values, superpixels = data["inputs.pixel_values"], data["inputs.superpixels"]
    with torch.no_grad():
        outputs = model(pixel_values, superpixels, output_assignments=True, output_hidden_states=True)
    return data, alone, config, superpixels, outputs


def _reference(data, alone, image: int, name: str) -> torch.Tensor:
    if alone is not None:
        return alone[f"image{image}.{name}"]
    return data[f"outputs.{name}"][image : image + 1]


CASES = ["tiny", "tiny_empty", "small_224"]


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("case", CASES)
def test_parity_with_official_outputs(case, attn_implementation):
    data, alone, config, superpixels, outputs = _run_case(case, attn_implementation)
    num_levels = len(config.num_segments)
    stage_ends = torch.tensor(config.depths).cumsum(0).tolist()
    for image in range(superpixels.shape[0]):
        ref = lambda name: _reference(data, alone, image, name)  # noqa: E731
        torch.testing.assert_close(outputs.logits[image : image + 1], ref("logits"), atol=ATOL, rtol=RTOL)
        # the first hidden state is [class token, stage-1 tokens]: the tokens are the official embeddings
        num_tokens = ref("embeddings").shape[1]
        torch.testing.assert_close(
            outputs.hidden_states[0][image : image + 1, 1 : 1 + num_tokens], ref("embeddings"), atol=ATOL, rtol=RTOL
        )
        for level in range(1, num_levels + 1):
            expected_logits = ref(f"assign_logits_{level}")
            rows = expected_logits.shape[1]
            torch.testing.assert_close(
                outputs.assignment_logits[level - 1][image : image + 1, :rows], expected_logits, atol=ATOL, rtol=RTOL
            )
            assert torch.equal(outputs.seed_indices[level - 1][image : image + 1], ref(f"sampled_inds_{level}"))
            block = outputs.hidden_states[stage_ends[level - 1]][image : image + 1, 1 : 1 + rows]
            torch.testing.assert_close(block, ref(f"block_{level}"), atol=ATOL, rtol=RTOL)
            # segmentation parity on every pixel whose superpixel has a token (the official code has no rule for
            # ids above an image's largest surviving id; see SuperpixelTokens)
            own = superpixels[image] < ref("assign_logits_1").shape[1]
            expected_segmentation = ref(f"segmentation_{level}")[0]
            assert torch.equal(outputs.hierarchy[image, level - 1][own], expected_segmentation[own])


def test_parity_pooled_feature_and_token_labels():
    data, alone, config, superpixels, outputs = _run_case("tiny", "sdpa")
    with torch.no_grad():
        base = CastModel(config).eval()
        base.load_state_dict({k[len("cast."):]: v for k, v in _converted("tiny", config).items() if k.startswith("cast.")})
        pooled = base(data["inputs.pixel_values"], superpixels).pooler_output
    torch.testing.assert_close(pooled, data["outputs.pooled"], atol=ATOL, rtol=RTOL)


def _converted(case, config):
    data, _, _ = _load_case(case)
    return convert_state_dict({k[len(STATE_PREFIX):]: v.float() for k, v in data.items() if k.startswith(STATE_PREFIX)}, config)


def test_parity_vanished_ids_follow_their_grid_cell():
    """tiny_empty image 0 has ids above its largest surviving id (1-pixel slivers): their pixels take the segment
    of the stem grid cell they lie in (documented rule; the official notebook copies the last label instead)."""
    data, alone, config, superpixels, outputs = _run_case("tiny_empty", "sdpa")
    image = 0
    own_count = alone[f"image{image}.assign_logits_1"].shape[1]
    vanished = superpixels[image] >= own_count
    assert vanished.any()
    rows, cols = torch.nonzero(vanished, as_tuple=True)
    for level in range(len(config.num_segments)):
        cell_pixels = outputs.hierarchy[image, level, (rows // 8) * 8, (cols // 8) * 8]
        assert torch.equal(outputs.hierarchy[image, level, rows, cols], cell_pixels)


def test_parity_batched_official_outputs_depend_on_batch():
    """Documents why the alone files are the target: the official batched run differs from the alone run."""
    data, _, alone = _load_case("tiny_empty")
    assert not torch.allclose(data["outputs.pooled"][1:2], alone["image1.pooled"], atol=1e-2)


# ----------------------------------------------------------------------------------------------------------------
# an official MoCo-v3 training checkpoint (base and momentum encoders, projector, predictor, optimizer, scaler)


@pytest.fixture(scope="module")
def moco_reference():
    """The official checkpoint (loaded with weights_only=True), its meta data and the official outputs."""
    checkpoint_path = SHARED_REFERENCE / "moco_tiny_checkpoint.pth.tar"
    if not checkpoint_path.exists():
        pytest.skip(f"{checkpoint_path} not found (the MoCo checkpoint is read from ../shared/reference)")
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    meta = json.loads((FIXTURES / "moco_tiny_checkpoint.json").read_text())
    return checkpoint, meta, load_file(str(FIXTURES / "moco_tiny_expected.safetensors"))


def test_parity_moco_checkpoint_backbone(moco_reference):
    """The checkpoint's base encoder converts to a CastModel that reproduces the official outputs."""
    checkpoint, meta, expected = moco_reference
    config = infer_config(checkpoint["state_dict"], **_official_config_kwargs(meta))
    converted = convert_state_dict(checkpoint["state_dict"], config)
    assert not any(key.startswith("classifier.") for key in converted)  # the MoCo projector is not a classifier
    model = CastModel(config).eval()
    model.load_state_dict({k[len("cast."):]: v for k, v in converted.items()}, strict=True)
    with torch.no_grad():
        outputs = model(expected["inputs.pixel_values"], expected["inputs.superpixels"], output_assignments=True)
    torch.testing.assert_close(outputs.pooler_output, expected["outputs.pooled"], atol=ATOL, rtol=RTOL)
    for level in range(1, len(config.num_segments) + 1):
        expected_logits = expected[f"outputs.assign_logits_{level}"]
        # rows beyond the official token count are the padding up to the token budget (zero logits)
        rows = expected_logits.shape[1]
        logits = outputs.assignment_logits[level - 1]
        torch.testing.assert_close(logits[:, :rows], expected_logits, atol=ATOL, rtol=RTOL)
        assert not logits[:, rows:].any()
        assert torch.equal(outputs.hierarchy[:, level - 1], expected[f"outputs.segmentation_{level}"])


def _official_moco_to_pretraining(state_dict: dict, config: CastConfig) -> dict[str, torch.Tensor]:
    """Official MoCo-v3 training state dict -> CastForPreTraining keys (encoders via the converter, heads by index)."""
    converted = {}
    for official_prefix, target, head_target in (
        ("module.base_encoder.", "cast.", "projector."),
        ("module.momentum_encoder.", "momentum_cast.", "momentum_projector."),
    ):
        encoder = {
            "module.base_encoder." + k[len(official_prefix) :]: v
            for k, v in state_dict.items()
            if k.startswith(official_prefix)
        }
        for key, value in convert_state_dict(encoder, config).items():
            converted[target + key[len("cast.") :]] = value
        for key, value in encoder.items():
            if key.startswith("module.base_encoder.head."):
                converted[head_target + key[len("module.base_encoder.head.") :]] = value
    for key, value in state_dict.items():
        if key.startswith("module.predictor."):
            converted["predictor." + key[len("module.predictor.") :]] = value
    return converted


def test_parity_moco_checkpoint_pretraining_heads(moco_reference):
    """The whole checkpoint loads strictly into CastForPreTraining (both encoders, projector, predictor) and
    reproduces the official projector and predictor outputs."""
    checkpoint, meta, expected = moco_reference
    args, moco = meta["constructor_args"], meta["moco_args"]
    config = CastConfig(
        hidden_size=args["embed_dim"],
        depths=args["depth"],
        num_segments=args["num_clusters"],
        num_attention_heads=args["num_heads"],
        image_size=args["img_size"],
        patch_size=args["patch_size"],
        pretraining_projection_dim=moco["dim"],
        pretraining_hidden_dim=moco["mlp_dim"],
        pretraining_temperature=moco["T"],
    )
    model = CastForPreTraining(config).eval()
    model.load_state_dict(_official_moco_to_pretraining(checkpoint["state_dict"], config), strict=True)
    with torch.no_grad():
        features = model.cast(expected["inputs.pixel_values"], expected["inputs.superpixels"]).pooler_output
        projected = model.projector(features)
        predicted = model.predictor(projected)
    torch.testing.assert_close(features, expected["outputs.pooled"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(projected, expected["outputs.projector"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(predicted, expected["outputs.predictor"], atol=ATOL, rtol=RTOL)
    assert not all(torch.equal(m, b) for m, b in model._momentum_pairs())  # one AdamW step after the copy
