"""CastForPreTraining (MoCo v3) and MomentumUpdateCallback: transformers' common model tests plus the recipe."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import unittest

import numpy as np
import pytest
import torch
from conftest import REMOTE_CODE_PRELUDE, REPO_ROOT, block_superpixels, tiny_config_kwargs
from hf_common_tests import CastModelTestMixin, CastModelTesterBase, import_common
from torch.nn import functional as F

from modeling_cast import CastConfig, CastForPreTraining, CastModel, MomentumUpdateCallback
from modeling_cast.pretraining_cast import cosine_momentum
from transformers import AutoModelForPreTraining, TrainerControl, TrainerState, TrainingArguments
from transformers.utils.generic import can_return_loss

common = import_common("test_modeling_common")

# The mixin recognizes base and pre-training models from transformers' static names; extend them (as
# test_modeling_cast does for the base model, so that the tests see the same mapping alone or in the full suite).
common.MODEL_MAPPING_NAMES = {**common.MODEL_MAPPING_NAMES, "cast": "CastModel"}
common.MODEL_FOR_PRETRAINING_MAPPING_NAMES = {
    **common.MODEL_FOR_PRETRAINING_MAPPING_NAMES,
    "cast": "CastForPreTraining",
}

PRETRAINING_OVERRIDES = {"pretraining_projection_dim": 16, "pretraining_hidden_dim": 24}


def _tiny_pretraining_config(**overrides) -> CastConfig:
    return CastConfig(**tiny_config_kwargs(**{**PRETRAINING_OVERRIDES, **overrides}))


def _two_views(batch_size: int, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
        "superpixels": block_superpixels(batch_size, size, size, seed=seed),
        "pixel_values_2": torch.randn(batch_size, 3, size, size, generator=generator),
        "superpixels_2": block_superpixels(batch_size, size, size, seed=seed + 1),
    }


class CastForPreTrainingTester(CastModelTesterBase):
    def __init__(self, parent, **kwargs):
        super().__init__(parent, **PRETRAINING_OVERRIDES, **kwargs)

    def prepare_config_and_inputs_for_common(self):
        return self.get_config(), _two_views(self.batch_size, self.image_size)


class CastForPreTrainingTest(CastModelTestMixin, common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (CastForPreTraining,)
    additional_model_inputs = ["superpixels", "pixel_values_2", "superpixels_2"]
    # (test_all_params_have_gradient stays off for the momentum encoder too: by definition no gradient trains it)

    def setUp(self):
        self.model_tester = CastForPreTrainingTester(self)

    @unittest.skip(
        reason="contrastive logits and loss of an image depend on its batch-mates (they are its negatives); the "
        "per-image encoder is covered by test_modeling_cast"
    )
    def test_batching_equivalence(self):
        pass

    @unittest.skip(
        reason="MoCo holds a second CastModel child, the momentum encoder, by design; the base encoder is `cast` (the "
        "base_model_prefix), and test_pretraining_from_backbone_copies_momentum_encoder covers loading base weights"
    )
    def test_base_model_prefix_loads_base_weights(self):
        pass


# ----------------------------------------------------------------------------------------------------------------
# MoCo v3 recipe


def _tiny_model(**overrides) -> CastForPreTraining:
    torch.manual_seed(0)
    return CastForPreTraining(_tiny_pretraining_config(**overrides))


def test_pretraining_heads_have_official_layout():
    model = _tiny_model()
    projector_types = [type(layer).__name__ for layer in model.projector]
    assert projector_types == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear", "BatchNorm1d"]
    assert [type(layer).__name__ for layer in model.predictor] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert all(
        layer.bias is None for layer in (*model.projector, *model.predictor) if isinstance(layer, torch.nn.Linear)
    )
    assert not model.projector[-1].affine and not model.predictor[-1].affine
    assert (model.projector[0].in_features, model.projector[0].out_features) == (32, 24)
    assert model.projector[-2].out_features == model.predictor[-2].out_features == 16
    assert model.config.pretraining_hidden_dim == 24
    defaults = CastConfig()
    assert (defaults.pretraining_hidden_dim, defaults.pretraining_projection_dim) == (4096, 256)


def test_pretraining_momentum_encoder_is_frozen_copy_in_state_dict():
    model = _tiny_model()
    state = model.state_dict()
    assert any(key.startswith("momentum_cast.") for key in state) and any(
        k.startswith("momentum_projector.") for k in state
    )
    for momentum_parameter, base_parameter in model._momentum_pairs():
        assert torch.equal(momentum_parameter, base_parameter) and momentum_parameter is not base_parameter
        assert not momentum_parameter.requires_grad and base_parameter.requires_grad


def test_pretraining_loss_matches_moco_v3_formula():
    model = _tiny_model().train()
    inputs = _two_views(4)
    torch.manual_seed(1)
    outputs = model(**inputs)
    # recompute from the encoders with the same dropout draws
    torch.manual_seed(1)
    q1 = model.predictor(model.projector(model.cast(inputs["pixel_values"], inputs["superpixels"]).pooler_output))
    q2 = model.predictor(model.projector(model.cast(inputs["pixel_values_2"], inputs["superpixels_2"]).pooler_output))
    with torch.no_grad():
        k1 = model.momentum_projector(model.momentum_cast(inputs["pixel_values"], inputs["superpixels"]).pooler_output)
        k2 = model.momentum_projector(
            model.momentum_cast(inputs["pixel_values_2"], inputs["superpixels_2"]).pooler_output
        )
    temperature = model.config.pretraining_temperature

    def contrastive(q, k):
        logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / temperature
        return F.cross_entropy(logits, torch.arange(4)) * 2 * temperature, logits

    (loss_12, logits_12), (loss_21, logits_21) = contrastive(q1, k2), contrastive(q2, k1)
    torch.testing.assert_close(outputs.logits, logits_12, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs.logits_2, logits_21, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs.loss, loss_12 + loss_21, atol=1e-5, rtol=1e-5)
    assert outputs.logits.shape == (4, 4) and torch.isfinite(outputs.loss)


def test_pretraining_gradients_reach_base_not_momentum():
    model = _tiny_model().train()
    model(**_two_views(3)).loss.backward()
    last = f"cast.encoder.stages.{len(model.config.depths) - 1}.pooling."
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    without_grad = [name for name, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert all(name.startswith(last) for name in without_grad), without_grad
    assert any(name.startswith("predictor.") for name in trainable) and any(
        n.startswith("projector.") for n in trainable
    )
    assert all(not name.startswith("momentum_") for name in trainable)
    assert all(p.grad is None for name, p in model.named_parameters() if name.startswith("momentum_"))


def test_pretraining_returns_loss_in_eval_without_labels():
    assert can_return_loss(CastForPreTraining)
    assert CastForPreTraining.accepts_loss_kwargs is False
    model = _tiny_model().eval()
    with torch.no_grad():
        first, second = model(**_two_views(3)), model(**_two_views(3))
    assert first.loss is not None and torch.isfinite(first.loss)
    assert torch.equal(first.loss, second.loss)  # deterministic in eval
    with torch.no_grad():
        features = model(**_two_views(3), return_loss=False)
        single_view = model(
            pixel_values=_two_views(3)["pixel_values"], superpixels=_two_views(3)["superpixels"], return_loss=False
        )
    assert features.loss is None and features.logits.shape == (3, 3)
    assert single_view.logits is None and single_view.pooler_output.shape == (3, 32)


def test_pretraining_builds_a_hierarchy_for_the_first_view_only(monkeypatch):
    """Of the four encoder passes (two views, base and momentum encoders) only the base encoder's pass on view 1
    may compose a pixel hierarchy, and only in eval mode or when asked."""
    from modeling_cast import modeling_cast

    composed, compose = [], modeling_cast.compose_hierarchy

    def counting_compose(*args):
        composed.append(args)
        return compose(*args)

    monkeypatch.setattr(modeling_cast, "compose_hierarchy", counting_compose)
    model = _tiny_model()
    with torch.no_grad():
        trained = model.train()(**_two_views(2))
        assert not composed and trained.hierarchy is None
        evaluated = model.eval()(**_two_views(2))
        assert len(composed) == 1 and evaluated.hierarchy.shape == (2, 2, 32, 32)
        declined = model(**_two_views(2), output_hierarchy=False)
        assert len(composed) == 1 and declined.hierarchy is None
    torch.testing.assert_close(declined.loss, evaluated.loss)


def test_pretraining_requires_second_view_for_loss():
    model = _tiny_model()
    views = _two_views(2)
    with pytest.raises(ValueError, match="pixel_values_2"):
        model(pixel_values=views["pixel_values"], superpixels=views["superpixels"])


def test_pretraining_rejects_second_view_of_other_batch_size():
    model = _tiny_model()
    views = _two_views(2)
    views["pixel_values_2"], views["superpixels_2"] = views["pixel_values_2"][:1], views["superpixels_2"][:1]
    with pytest.raises(ValueError, match=r"`pixel_values_2` must be the second view.*batch_size 2.*\(1, 3,"):
        model(**views)


def test_pretraining_momentum_update_rule():
    model = _tiny_model()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter))
    before = [(m.clone(), b.clone()) for m, b in model._momentum_pairs()]
    model.momentum_update(0.9)
    for (momentum_parameter, base_parameter), (old_momentum, base) in zip(model._momentum_pairs(), before):
        torch.testing.assert_close(momentum_parameter, 0.9 * old_momentum + 0.1 * base, atol=1e-6, rtol=1e-6)
        assert torch.equal(base_parameter, base)
    model.momentum_update(1.0)  # momentum 1 keeps the momentum encoder
    for (momentum_parameter, _), (old_momentum, base) in zip(model._momentum_pairs(), before):
        torch.testing.assert_close(momentum_parameter, 0.9 * old_momentum + 0.1 * base, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="momentum"):
        model.momentum_update(1.5)


def test_cosine_momentum_schedule_values():
    assert cosine_momentum(0.0, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(0.5, 0.99) == pytest.approx(0.995)
    assert cosine_momentum(1.0, 0.99) == pytest.approx(1.0)
    # the official per-iteration form, fractional epoch e of E epochs, equals progress = step / total steps
    epochs, iterations = 3, 7
    for epoch in range(epochs):
        for iteration in range(iterations):
            fractional = epoch + iteration / iterations
            official = 1 - 0.5 * (1 + math.cos(math.pi * fractional / epochs)) * (1 - 0.99)
            step = epoch * iterations + iteration
            assert cosine_momentum(step / (epochs * iterations), 0.99) == pytest.approx(official, abs=1e-12)


def test_momentum_callback_updates_with_schedule(tmp_path):
    model = _tiny_model()
    with torch.no_grad():
        for parameter in model.cast.parameters():
            if parameter.requires_grad:
                parameter.add_(1.0)
    base = {name: p.clone() for name, p in model.cast.named_parameters()}
    momentum = {name: p.clone() for name, p in model.momentum_cast.named_parameters()}
    callback = MomentumUpdateCallback()
    state = TrainerState(global_step=3, max_steps=12)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    callback.on_step_end(args, state, TrainerControl(), model=model)
    expected_momentum = 1 - 0.5 * (1 + math.cos(math.pi * 3 / 12)) * (1 - 0.99)
    for name, parameter in model.momentum_cast.named_parameters():
        expected = expected_momentum * momentum[name] + (1 - expected_momentum) * base[name]
        torch.testing.assert_close(parameter, expected, atol=1e-6, rtol=1e-6)
    assert MomentumUpdateCallback(base_momentum=0.9, cosine=False).momentum(5, 10, 0.9) == 0.9
    with pytest.raises(TypeError, match="momentum_update"):
        callback.on_step_end(args, state, TrainerControl(), model=CastModel(_tiny_pretraining_config()))


def test_pretraining_save_load_keeps_momentum_encoder(tmp_path):
    model = _tiny_model()
    model.momentum_update(0.0)  # no-op on equal encoders; now perturb the base to make them differ
    with torch.no_grad():
        for parameter in model.cast.parameters():
            parameter.add_(0.5)
    model.save_pretrained(tmp_path / "pretraining")
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path / "pretraining")
    assert isinstance(loaded, CastForPreTraining)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert not all(torch.equal(m, b) for m, b in loaded._momentum_pairs())
    assert not any(p.requires_grad for name, p in loaded.named_parameters() if name.startswith("momentum_"))


def test_pretraining_from_backbone_copies_momentum_encoder(tmp_path):
    backbone = CastModel(_tiny_pretraining_config())
    backbone.save_pretrained(tmp_path / "backbone")
    model = CastForPreTraining.from_pretrained(tmp_path / "backbone")
    for name, parameter in backbone.named_parameters():
        assert torch.equal(model.cast.get_parameter(name), parameter)
    for momentum_parameter, base_parameter in model._momentum_pairs():
        assert torch.equal(momentum_parameter, base_parameter)
        assert not momentum_parameter.requires_grad


# ----------------------------------------------------------------------------------------------------------------
# keys gathered across processes (torchrun, 2 CPU processes, gloo)

_GATHER_WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from torch import distributed as dist
    sys.path[:0] = [{repo!r}, {tests!r}]
    from conftest import block_superpixels, tiny_config_kwargs
    from modeling_cast import CastConfig, CastForPreTraining

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    config = CastConfig(**tiny_config_kwargs(pretraining_projection_dim=16, pretraining_hidden_dim=24))
    model = CastForPreTraining(config).eval()
    sizes = [3, 2]  # uneven on purpose
    generator = torch.Generator().manual_seed(100)
    views = [
        (torch.randn(size, 3, 32, 32, generator=generator), torch.randn(size, 3, 32, 32, generator=generator))
        for size in sizes
    ]
    superpixels = block_superpixels(sum(sizes), 32, 32)
    start = sum(sizes[:rank])
    local = slice(start, start + sizes[rank])
    with torch.no_grad():
        out = model(views[rank][0], superpixels[local], views[rank][1], superpixels[local])
        # the same images in one process, all keys local: rows of this rank must match
        first, second = torch.cat([v[0] for v in views]), torch.cat([v[1] for v in views])
        everything = model(first, superpixels, second, superpixels, gather_keys=False)
    result = {{
        "rank": rank, "width": out.logits.shape[1],
        "match": bool(torch.allclose(out.logits, everything.logits[local], atol=1e-5)),
        "match_2": bool(torch.allclose(out.logits_2, everything.logits_2[local], atol=1e-5)),
    }}
    with open(os.path.join({out!r}, f"rank{{rank}}.json"), "w") as handle:
        json.dump(result, handle)
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_pretraining_gathers_keys_of_all_processes(tmp_path):
    """Under torchrun with 2 processes (CPU, gloo) every query sees the keys of both processes, positives included,
    also with uneven batch sizes."""
    script = tmp_path / "worker.py"
    script.write_text(_GATHER_WORKER.format(repo=str(REPO_ROOT), tests=str(REPO_ROOT / "tests"), out=str(tmp_path)))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in range(2):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert report == {"rank": rank, "width": 5, "match": True, "match_2": True}


# ----------------------------------------------------------------------------------------------------------------
# Hub remote code

_REMOTE_SCRIPT = REMOTE_CODE_PRELUDE + textwrap.dedent(
    """
    import sys, numpy as np, torch

    from transformers import AutoModel, AutoModelForPreTraining
    folder, inputs_path, out_path = sys.argv[1:4]
    inputs = {key: torch.from_numpy(value) for key, value in np.load(inputs_path).items()}
    model = AutoModelForPreTraining.from_pretrained(folder, trust_remote_code=True).eval()
    backbone = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        out = model(**inputs)
        pooled = backbone(pixel_values=inputs["pixel_values"], superpixels=inputs["superpixels"]).pooler_output
    frozen = not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("momentum_"))
    np.savez(out_path, loss=out.loss.numpy(), logits=out.logits.numpy(), pooled=pooled.numpy(), frozen=frozen)
    print(type(model).__module__)
    """
)


def test_pretraining_remote_code_round_trip_without_package(tmp_path):
    model = _tiny_model().eval()
    model.save_pretrained(tmp_path / "checkpoint")
    assert (tmp_path / "checkpoint" / "pretraining_cast.py").exists()
    config = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForPreTraining"] == "pretraining_cast.CastForPreTraining"
    inputs = _two_views(3)
    np.savez(tmp_path / "inputs.npz", **{key: value.numpy() for key, value in inputs.items()})
    (tmp_path / "load_remote.py").write_text(_REMOTE_SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            str(tmp_path / "load_remote.py"),
            str(tmp_path / "checkpoint"),
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "out.npz"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "transformers_modules" in result.stdout
    out = np.load(tmp_path / "out.npz")
    with torch.no_grad():
        expected = model(**inputs)
    np.testing.assert_allclose(out["loss"], expected.loss.numpy(), atol=1e-6)
    np.testing.assert_allclose(out["logits"], expected.logits.numpy(), atol=1e-6)
    np.testing.assert_allclose(out["pooled"], expected.pooler_output.numpy(), atol=1e-6)
    assert bool(out["frozen"])
