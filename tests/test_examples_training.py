"""Training with the examples: MoCo-v3 pre-training (momentum rule, resume, 2 processes), fine-tuning, linear probing,
gradient-accumulation loss scaling and an overfitting check. Every run is tiny and offline (generated shapes)."""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO_ROOT, tiny_config_kwargs
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

from modeling_cast import CastForImageClassification, CastForPreTraining, CastModel
from transformers import TrainerCallback, pipeline

EXAMPLES = REPO_ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

run_pretraining_moco = importlib.import_module("run_pretraining_moco")
run_image_classification = importlib.import_module("run_image_classification")
make_shapes_dataset = importlib.import_module("cast_example_utils").make_shapes_dataset
SHAPE_NAMES = importlib.import_module("cast_example_utils").SHAPE_NAMES

_BASE_MOMENTUM = 0.99


def _tiny_config_json(**overrides) -> str:
    kwargs = tiny_config_kwargs(pretraining_projection_dim=16, pretraining_hidden_dim=24, **overrides)
    kwargs.pop("num_labels")  # the classification example sets it from the dataset
    return json.dumps(kwargs)


def _common_args(output_dir, samples: int, **overrides) -> list[str]:
    args = {
        "--synthetic_samples": samples,
        "--synthetic_image_size": 32,
        "--image_size": 32,
        "--n_segments": 16,
        "--output_dir": output_dir,
        "--use_cpu": None,
        "--report_to": "none",
        "--disable_tqdm": "true",
        "--log_level": "error",
        "--do_train": None,
        "--dataloader_num_workers": 0,
    }
    args.update(overrides)
    argv = []
    for key, value in args.items():
        if value is False:
            continue
        argv.append(key)
        if value is not None:
            argv.append(str(value))
    return argv


def _pretraining_args(output_dir, **overrides) -> list[str]:
    defaults = {
        "--config_overrides": _tiny_config_json(),
        "--per_device_train_batch_size": 2,
        "--per_device_eval_batch_size": 2,
        "--gradient_accumulation_steps": 2,
        "--max_steps": 4,
        "--save_steps": 2,
        "--learning_rate": 1e-3,
        "--logging_steps": 1,
        "--seed": 0,
        # superpixels of the views are computed in a DataLoader worker process
        "--dataloader_num_workers": 1,
    }
    return _common_args(output_dir, 8, **{**defaults, **overrides})


class MomentumRuleRecorder(TrainerCallback):
    """Checks, at every optimizer step, that the momentum encoder moved exactly by the MoCo-v3 rule with the cosine
    schedule (MomentumUpdateCallback runs before this callback), and keeps the first weights and the momentum
    weights after every step."""

    def __init__(self):
        self.errors, self.momentum_weights, self.steps = [], {}, 0
        self.initial = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.initial is None:
            self.initial = {name: value.detach().clone() for name, value in model.state_dict().items()}

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        pairs = model._momentum_pairs()
        self.before = [(momentum.detach().clone(), base.detach().clone()) for momentum, base in pairs]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.steps += 1
        progress = state.global_step / state.max_steps
        momentum = 1 - 0.5 * (1 + math.cos(math.pi * progress)) * (1 - _BASE_MOMENTUM)
        for (momentum_parameter, _), (old, base) in zip(model._momentum_pairs(), self.before):
            expected = momentum * old + (1 - momentum) * base
            self.errors.append(float((momentum_parameter - expected).abs().max()))
        self.momentum_weights[state.global_step] = {
            name: value.detach().clone() for name, value in model.state_dict().items() if name.startswith("momentum_")
        }


@pytest.fixture(scope="module")
def pretraining_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("pretraining")
    recorder = MomentumRuleRecorder()
    trainer = run_pretraining_moco.main(_pretraining_args(output_dir, **{"--do_eval": None}), callbacks=[recorder])
    return trainer, recorder, output_dir


def test_pretraining_example_trains_with_momentum_rule(pretraining_run):
    trainer, recorder, output_dir = pretraining_run
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses)
    final = trainer.model.state_dict()
    changed = [
        name
        for name, value in recorder.initial.items()
        if name.startswith("cast.") and not torch.equal(value, final[name])
    ]
    assert any("layers" in name for name in changed) and any(name.startswith("cast.embeddings") for name in changed)
    assert any(
        not torch.equal(value, final[name])
        for name, value in recorder.initial.items()
        if name.startswith("momentum_cast.")
    )
    # one update per optimizer step (gradient accumulation 2), each by the rule
    assert recorder.steps == 4 and max(recorder.errors) < 1e-6
    assert trainer.model_accepts_loss_kwargs is False  # plain-mean loss: the Trainer divides by the accumulation steps
    # evaluation computes the contrastive loss without labels
    metrics = json.loads((output_dir / "eval_results.json").read_text())
    assert math.isfinite(metrics["eval_loss"])


def test_pretraining_example_output_loads_and_has_card(pretraining_run):
    trainer, recorder, output_dir = pretraining_run
    model = CastForPreTraining.from_pretrained(output_dir)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("momentum_"))
    CastModel.from_pretrained(output_dir)
    CastForImageClassification.from_pretrained(output_dir, num_labels=3)
    assert (output_dir / "preprocessor_config.json").exists()
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.pipeline_tag == "image-feature-extraction" and card.data.library_name == "transformers"
    assert card.data.eval_results[0].metric_type == "contrastive_loss"
    assert "fine-tuned version of []" not in card.text
    # the checkpoint holds the momentum encoder of its step
    checkpoint = load_file(str(output_dir / "checkpoint-2" / "model.safetensors"))
    for name, value in recorder.momentum_weights[2].items():
        assert torch.equal(checkpoint[name], value), name


def test_pretraining_resume_gives_identical_momentum_encoder(pretraining_run, tmp_path):
    """Resuming from checkpoint-2 (an epoch boundary) reproduces the uninterrupted run's final momentum encoder."""
    trainer, recorder, output_dir = pretraining_run
    resumed_recorder = MomentumRuleRecorder()
    resumed = run_pretraining_moco.main(
        _pretraining_args(tmp_path / "resumed", **{"--resume_from_checkpoint": output_dir / "checkpoint-2"}),
        callbacks=[resumed_recorder],
    )
    assert resumed_recorder.steps == 2 and max(resumed_recorder.errors) < 1e-6
    # right after loading, the momentum encoder is the checkpoint's
    for name, value in recorder.momentum_weights[2].items():
        assert torch.equal(resumed_recorder.initial[name], value), name
    final = resumed.model.state_dict()
    for name, value in recorder.momentum_weights[4].items():
        torch.testing.assert_close(final[name], value, atol=1e-6, rtol=1e-6, msg=name)


def _classification_args(output_dir, **overrides) -> list[str]:
    defaults = {
        "--config_overrides": _tiny_config_json(pooling_dropout_prob=0.0),
        "--per_device_train_batch_size": 4,
        "--max_steps": 2,
        "--learning_rate": 1e-2,
        "--save_strategy": "no",
        "--seed": 0,
        "--crop_min_scale": 1.0,
    }
    return _common_args(output_dir, 16, **{**defaults, **overrides})


class InitialWeights(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.initial = {name: value.detach().clone() for name, value in model.state_dict().items()}


def test_classification_example_fine_tunes_and_writes_card(tmp_path):
    recorder = InitialWeights()
    trainer = run_image_classification.main(
        _classification_args(tmp_path / "ft", **{"--do_eval": None, "--base_model_id": "someone/cast-small-moco"}),
        callbacks=[recorder],
    )
    losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses)
    final = trainer.model.state_dict()
    assert not torch.equal(recorder.initial["classifier.weight"], final["classifier.weight"])
    assert any(
        not torch.equal(value, final[name])
        for name, value in recorder.initial.items()
        if name.startswith("cast.encoder")
    )
    model = CastForImageClassification.from_pretrained(tmp_path / "ft")
    assert model.config.id2label[0] == "circle" and model.config.num_labels == 3
    classifier = pipeline("image-classification", model=str(tmp_path / "ft"))
    predictions = classifier(Image.new("RGB", (32, 32), (200, 40, 40)))
    assert {prediction["label"] for prediction in predictions} <= {"circle", "square", "triangle"}
    card = ModelCard.load(tmp_path / "ft" / "README.md")
    assert card.data.pipeline_tag == "image-classification"
    assert card.data.base_model == "someone/cast-small-moco"
    assert card.data.eval_results[0].metric_type == "accuracy"


@pytest.mark.parametrize("script", ["classification", "pretraining"])
def test_examples_compute_superpixels_on_the_training_device(tmp_path, script, monkeypatch):
    """`--superpixels_on_device`: the DataLoader batches carry no superpixels, the model computes them from the
    pixels (its config set from the processor), and training runs."""
    from processing.training import augmentation

    batches = []
    original = augmentation.processor_outputs

    def recording(*args, **kwargs):
        outputs = original(*args, **kwargs)
        batches.append(sorted(outputs))
        return outputs

    monkeypatch.setattr(augmentation, "processor_outputs", recording)
    if script == "classification":
        args = _classification_args(tmp_path / "run", **{"--superpixels_on_device": None, "--max_steps": 2})
        trainer = run_image_classification.main(args)
    else:
        args = _pretraining_args(
            tmp_path / "run", **{"--superpixels_on_device": None, "--max_steps": 2, "--dataloader_num_workers": 0}
        )
        trainer = run_pretraining_moco.main(args)
    assert batches and all("superpixels" not in keys and "superpixels_2" not in keys for keys in batches)
    losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses)
    config = trainer.model.config
    assert config.superpixel_n_segments == 16 and config.superpixel_image_mean == [0.485, 0.456, 0.406]


def test_classification_example_reads_image_folders(tmp_path):
    """`--train_dir` / `--validation_dir` image folders (one sub-folder per class), as in the README."""
    shapes = make_shapes_dataset(12, image_size=32, num_classes=3, seed=0)
    for split, indices in (("train", range(9)), ("val", range(9, 12))):
        for index in indices:
            example = shapes[index]
            folder = tmp_path / split / SHAPE_NAMES[example["label"]]
            folder.mkdir(parents=True, exist_ok=True)
            example["image"].save(folder / f"{index}.png")
    args = _classification_args(tmp_path / "out", **{"--do_eval": None, "--max_steps": 1})
    position = args.index("--synthetic_samples")
    del args[position : position + 2]
    trainer = run_image_classification.main(
        [*args, "--train_dir", str(tmp_path / "train"), "--validation_dir", str(tmp_path / "val")]
    )
    assert trainer.model.config.id2label == {0: "circle", 1: "square", 2: "triangle"}
    assert len(trainer.train_dataset) == 9 and len(trainer.eval_dataset) == 3
    assert math.isfinite(json.loads((tmp_path / "out" / "eval_results.json").read_text())["eval_loss"])


def test_linear_probe_leaves_backbone_unchanged(pretraining_run, tmp_path):
    _, _, pretrained_dir = pretraining_run
    recorder = InitialWeights()
    trainer = run_image_classification.main(
        _classification_args(
            tmp_path / "probe",
            **{
                "--model_name_or_path": pretrained_dir,
                "--linear_probe": None,
                "--config_overrides": False,
                "--optim": "sgd",
            },
        ),
        callbacks=[recorder],
    )
    final = trainer.model.state_dict()
    backbone = [name for name in recorder.initial if name.startswith("cast.")]
    # parameters and BatchNorm statistics alike: the backbone stays frozen and in eval mode
    assert backbone and all(torch.equal(recorder.initial[name], final[name]) for name in backbone)
    assert not torch.equal(recorder.initial["classifier.weight"], final["classifier.weight"])
    assert [name for name, p in trainer.model.named_parameters() if p.requires_grad] == [
        "classifier.weight",
        "classifier.bias",
    ]


def test_gradient_accumulation_scales_classification_loss(tmp_path):
    """One optimizer step on 4 images equals two accumulated micro-batches of 2 (transformers' num_items_in_batch
    convention: summed loss over the count of the whole accumulated batch)."""
    weights = []
    for name, batch_size, accumulation in (("full", 4, 1), ("accumulated", 2, 2)):
        trainer = run_image_classification.main(
            _classification_args(
                tmp_path / name,
                **{
                    "--linear_probe": None,
                    "--per_device_train_batch_size": batch_size,
                    "--gradient_accumulation_steps": accumulation,
                    "--max_steps": 1,
                    "--optim": "sgd",
                    "--max_grad_norm": 0,
                    "--learning_rate": 1.0,
                },
            )
        )
        assert trainer.model_accepts_loss_kwargs is True
        weights.append(trainer.model.classifier.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], atol=1e-6, rtol=1e-5)


def test_fine_tuning_overfits_small_set(tmp_path):
    """The whole path learns: a tiny CAST fits 16 generated shape images (3 classes) within 60 optimizer steps."""
    trainer = run_image_classification.main(
        _classification_args(
            tmp_path / "overfit",
            **{
                "--num_train_epochs": 30,
                "--max_steps": -1,
                "--per_device_train_batch_size": 8,
                "--learning_rate": 3e-3,
                "--lr_scheduler_type": "constant",
                "--weight_decay": 0.0,
                "--train_val_split": 0,
            },
        )
    )
    assert trainer.state.global_step == 60
    # the training images with the training transform (crop_min_scale 1: whole image, random flip)
    metrics = trainer.evaluate(eval_dataset=trainer.train_dataset)
    assert metrics["eval_accuracy"] >= 0.9, metrics


# ----------------------------------------------------------------------------------------------------------------
# two processes (accelerate launch, CPU, gloo)

_LAUNCHED = textwrap.dedent(
    """
    import json, sys
    import torch
    sys.path[:0] = [{repo!r}, {examples!r}]
    from transformers import TrainerCallback, pipeline
    from run_pretraining_moco import main

    widths = []

    class RecordLogitsWidth(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            model.register_forward_hook(lambda module, inputs, outputs: widths.append(outputs.logits.shape[1]))

    trainer = main(sys.argv[1:], callbacks=[RecordLogitsWidth()])
    rank = trainer.args.process_index
    torch.save(
        {{"parameters": dict(trainer.model.named_parameters()), "widths": widths, "world_size": trainer.args.world_size,
          "distributed_type": str(trainer.accelerator.distributed_type)}},
        f"{out}/rank{{rank}}.pt",
    )
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(
    shutil.which("accelerate", path=os.path.dirname(sys.executable)) is None, reason="accelerate CLI not installed"
)
def test_pretraining_two_processes_accelerate_launch(tmp_path):
    script = tmp_path / "launched.py"
    script.write_text(_LAUNCHED.format(repo=str(REPO_ROOT), examples=str(EXAMPLES), out=str(tmp_path)))
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    command = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(script),
        *_pretraining_args(
            tmp_path / "output", **{"--gradient_accumulation_steps": 1, "--max_steps": 2, "--save_strategy": "no"}
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["distributed_type"] == "DistributedType.MULTI_CPU"
        # each process contrasts its 2 queries with the keys of both processes: 2 x 2 columns
        assert rank["widths"] == [4, 4]
    # every parameter, the momentum encoder's included (BatchNorm running statistics are per process without
    # SyncBatchNorm, as DDP only broadcasts rank 0's before each forward pass)
    assert ranks[0]["parameters"].keys() == ranks[1]["parameters"].keys()
    assert any(name.startswith("momentum_cast.") for name in ranks[0]["parameters"])
    for name, value in ranks[0]["parameters"].items():
        assert torch.equal(value, ranks[1]["parameters"][name]), name
    assert (tmp_path / "output" / "model.safetensors").exists()
