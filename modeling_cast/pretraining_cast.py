# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Self-supervised pre-training of CAST with MoCo v3, the recipe the paper's ImageNet backbones were trained with.

Two augmented views of each image go through a base encoder (CAST + projector + predictor) and a momentum encoder
(an exponential moving average of CAST + projector, never trained by gradients). Each view's query is pulled towards
the other view's key and pushed away from the keys of every other image in the global batch.

Shape legend for comments: B = local batch (this process), G = global batch (all processes), C = hidden size,
D = projection width.

Hub-flat: imports only torch, the public `transformers` API and the sibling CAST modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import distributed as dist
from torch import nn
from torch.nn import functional as F

from transformers import TrainerCallback
from transformers import initialization as init
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, can_return_tuple, logging

from .configuration_cast import CastConfig
from .modeling_cast import CastModel, CastModelOutput, CastPreTrainedModel

logger = logging.get_logger(__name__)

__all__ = ["CastForPreTraining", "CastPreTrainingOutput", "MomentumUpdateCallback", "cosine_momentum"]

# MoCo v3 projector: 3 layers, predictor: 2 layers; every layer but the last is Linear-BN-ReLU, the last is
# Linear-BN without affine parameters. All linears are bias-free (the BatchNorms follow them).
_PROJECTOR_LAYERS = 3
_PREDICTOR_LAYERS = 2
_MOMENTUM_PREFIXES = ("momentum_cast.", "momentum_projector.")


@dataclass
class CastPreTrainingOutput(ModelOutput):
    r"""
    Output of [`CastForPreTraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `return_loss=True` (the default)):
            Symmetric MoCo v3 contrastive loss: `ctr(q1, k2) + ctr(q2, k1)`, each term a cross-entropy over the keys
            of the whole (global) batch multiplied by `2 * temperature`.
        logits (`torch.FloatTensor` of shape `(batch_size, global_batch_size)`, *optional*, returned when the second
            view is given):
            Cosine similarities between the queries of view 1 and the keys of view 2, divided by the temperature.
            Columns cover the keys of every process (`global_batch_size` is the sum of the batch sizes of all
            processes when keys are gathered); the positive of row `i` is column `i + offset`, where `offset` is the
            number of images of the lower-ranked processes.
        logits_2 (`torch.FloatTensor` of shape `(batch_size, global_batch_size)`, *optional*, returned when the
            second view is given):
            The same for the queries of view 2 against the keys of view 1.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            Image feature of view 1 from the base encoder (see [`CastModelOutput`]): what downstream tasks use.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            Hidden states of the base encoder on view 1, see [`CastModelOutput`].
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Attention probabilities of the base encoder on view 1, see [`CastModelOutput`].
        hierarchy, hierarchy_scores (*optional*, returned when `output_hierarchy=True`, the default in eval mode):
            The pixel hierarchy of view 1 from the base encoder, see [`CastModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    logits_2: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    hierarchy: torch.LongTensor | None = None
    hierarchy_scores: torch.FloatTensor | None = None


def _build_mlp(num_layers: int, input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    """MoCo v3 MLP. Module indices follow the official `nn.Sequential` (Linear at 3*l, BatchNorm at 3*l + 1), so
    converted official state dicts keep their numbering."""
    layers: list[nn.Module] = []
    for index in range(num_layers):
        in_features = input_dim if index == 0 else hidden_dim
        is_last = index == num_layers - 1
        out_features = output_dim if is_last else hidden_dim
        layers.append(nn.Linear(in_features, out_features, bias=False))
        if is_last:
            layers.append(nn.BatchNorm1d(out_features, affine=False))
        else:
            layers.extend([nn.BatchNorm1d(out_features), nn.ReLU(inplace=True)])
    return nn.Sequential(*layers)


def cosine_momentum(progress: float, base_momentum: float) -> float:
    """MoCo v3 momentum schedule: `1 - (1 + cos(pi * progress)) / 2 * (1 - base_momentum)`, rising from
    `base_momentum` at `progress=0` to 1 at `progress=1` (progress is clipped to [0, 1])."""
    progress = min(max(progress, 0.0), 1.0)
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - base_momentum)


def _distributed_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


@torch.no_grad()
def _gather_keys(keys: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate the keys of every process in rank order, (G, D), and return the offset of this process's keys.

    No gradient flows through the gathered keys (they come from the momentum encoder). Batch sizes may differ
    between processes (an uneven last batch): sizes are exchanged first and the keys padded to the largest.
    """
    world_size, rank = _distributed_world()
    local_size = torch.tensor([keys.shape[0]], device=keys.device, dtype=torch.long)
    sizes = [torch.empty_like(local_size) for _ in range(world_size)]
    dist.all_gather(sizes, local_size)
    sizes = torch.cat(sizes).tolist()
    padded = F.pad(keys.contiguous(), (0, 0, 0, max(sizes) - keys.shape[0]))
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    keys = torch.cat([chunk[:size] for chunk, size in zip(gathered, sizes)])
    return keys, sum(sizes[:rank])


class CastForPreTraining(CastPreTrainedModel):
    """CAST with the MoCo v3 heads used to pre-train the paper's backbones without labels.

    Holds the base encoder `cast` (the backbone that downstream models load), its `projector` and `predictor`, and the
    momentum encoder `momentum_cast` + `momentum_projector`: a copy of the base made when the model is built (and
    whenever a checkpoint lacks it), which never receives gradients and follows the base through
    [`~CastForPreTraining.momentum_update`], called once per optimizer step by [`MomentumUpdateCallback`]. The
    momentum encoder is part of the state dict, so checkpoints and resumed runs include it.

    The forward pass takes two augmented views of the same images and returns the contrastive loss, with or without
    labels, so `Trainer` computes it during evaluation as well. When `torch.distributed` is initialized with several
    processes, the keys of all processes are gathered (without gradient) and every query is contrasted with all of
    them, as in the official multi-GPU training.
    """

    # The loss is a plain mean over this batch's queries: the Trainer divides it by the gradient accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: CastConfig):
        super().__init__(config)
        projection_dim, hidden_dim = config.pretraining_projection_dim, config.pretraining_hidden_dim
        self.cast = CastModel(config)
        self.projector = _build_mlp(_PROJECTOR_LAYERS, config.hidden_size, hidden_dim, projection_dim)
        self.predictor = _build_mlp(_PREDICTOR_LAYERS, projection_dim, hidden_dim, projection_dim)
        self.momentum_cast = CastModel(config)
        self.momentum_projector = _build_mlp(_PROJECTOR_LAYERS, config.hidden_size, hidden_dim, projection_dim)
        self._freeze_momentum_encoder()
        self.post_init()
        # MoCo starts with the momentum encoder equal to the base encoder. (Not in `_init_weights`: transformers
        # skips it for a module without parameters of its own, such as this wrapper, in custom code.)
        self.reset_momentum_encoder()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load like any model; a checkpoint without momentum encoder (a `CastModel` backbone, or a classifier) gets
        the momentum encoder copied from the loaded base encoder, as at the start of MoCo training."""
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, loading_info = super().from_pretrained(
            pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
        )
        # loading materializes parameters anew (with requires_grad=True)
        model._freeze_momentum_encoder()
        missing_momentum = [key for key in loading_info["missing_keys"] if key.startswith(_MOMENTUM_PREFIXES)]
        if missing_momentum:
            logger.info(
                f"{len(missing_momentum)} momentum-encoder weights missing from {pretrained_model_name_or_path!r}: "
                "the momentum encoder starts as a copy of the base encoder"
            )
            model.reset_momentum_encoder()
        return (model, loading_info) if output_loading_info else model

    def _freeze_momentum_encoder(self) -> None:
        # The momentum encoder is defined as an average of the base encoder, never an optimization target.
        self.momentum_cast.requires_grad_(False)
        self.momentum_projector.requires_grad_(False)

    def _momentum_pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        """(momentum, base) parameter pairs, matched by name."""
        pairs = []
        for momentum_module, base_module in (
            (self.momentum_cast, self.cast),
            (self.momentum_projector, self.projector),
        ):
            base_parameters = dict(base_module.named_parameters())
            momentum_parameters = dict(momentum_module.named_parameters())
            if base_parameters.keys() != momentum_parameters.keys():
                raise ValueError(
                    "the momentum encoder must have the base encoder's parameters; got differing names "
                    f"{sorted(base_parameters.keys() ^ momentum_parameters.keys())[:10]}"
                )
            pairs.extend((momentum_parameters[name], base_parameters[name]) for name in base_parameters)
        return pairs

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            # Only the MoCo MLPs reach here (the encoders dispatch to CastModel's init): the official heads keep
            # PyTorch's default Linear initialization.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        elif isinstance(module, nn.BatchNorm1d):
            if module.affine:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        else:
            super()._init_weights(module)

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        """Move the momentum encoder towards the base encoder: `m_param = momentum * m_param + (1 - momentum) *
        param` for every parameter of CAST and the projector (buffers such as BatchNorm statistics are the momentum
        encoder's own, as in the official code)."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1], got {momentum}")
        momentum_parameters, base_parameters = zip(*self._momentum_pairs())
        # lerp(m, b, w) = m + w * (b - m) = (1 - w) * m + w * b
        torch._foreach_lerp_(list(momentum_parameters), list(base_parameters), 1.0 - momentum)

    def reset_momentum_encoder(self) -> None:
        """Make the momentum encoder an exact copy of the base encoder (as at the start of MoCo training), e.g. after
        loading a backbone into `cast` by hand."""
        with torch.no_grad():
            for momentum_parameter, base_parameter in self._momentum_pairs():
                momentum_parameter.copy_(base_parameter)

    def _contrastive_loss(
        self, queries: torch.Tensor, keys: torch.Tensor, offset: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MoCo v3 InfoNCE of local queries (B, D) against gathered keys (G, D); returns (loss, logits (B, G))."""
        temperature = self.config.pretraining_temperature
        # in float32 under autocast as well: cosine similarities / 0.2 in half precision lose the ranking margin
        queries = F.normalize(queries.float(), dim=1)
        keys = F.normalize(keys.float(), dim=1)
        logits = queries @ keys.T / temperature  # (B, G)
        targets = torch.arange(queries.shape[0], device=queries.device) + offset
        # scaled by 2T as the official loss: T cancels the 1/T that the logits put on the gradient's scale
        return F.cross_entropy(logits, targets) * (2 * temperature), logits

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        superpixels: torch.Tensor | None = None,
        pixel_values_2: torch.Tensor | None = None,
        superpixels_2: torch.Tensor | None = None,
        return_loss: bool = True,
        gather_keys: bool | None = None,
        output_hierarchy: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CastPreTrainingOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            First augmented view of each image, as returned by [`CastImageProcessor`].
        superpixels (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            Superpixels of the first view (computed on the augmented view). Without them the model computes them on
            its device ([`~CastPreTrainedModel.compute_superpixels`]), once for both encoders.
        pixel_values_2 (`torch.FloatTensor` of shape `(batch_size, num_channels, height', width')`, *optional*):
            Second augmented view of the same images, in the same order. Required for the loss and the logits.
        superpixels_2 (`torch.LongTensor` of shape `(batch_size, height', width')`, *optional*):
            Superpixels of the second view; computed by the model like `superpixels` when not given.
        return_loss (`bool`, *optional*, defaults to `True`):
            Whether to return the contrastive loss. The default lets `Trainer` compute an evaluation loss without
            labels.
        gather_keys (`bool`, *optional*):
            Whether to contrast with the keys of all processes. Defaults to `True` when `torch.distributed` is
            initialized with more than one process; then every process must call the forward pass (as under DDP).
        output_hidden_states / output_attentions (`bool`, *optional*):
            Return those of the base encoder on the first view.
        output_hierarchy (`bool`, *optional*, defaults to `not self.training`):
            Return the pixel hierarchy of the base encoder on the first view. The other passes (the second view, the
            momentum encoder's keys) never build one: only their image features enter the loss.
        """
        if return_loss and pixel_values_2 is None:
            raise ValueError(
                "`pixel_values_2` (the second augmented view) is required to compute the contrastive loss; pass it "
                "or `return_loss=False`"
            )
        if pixel_values_2 is not None and torch.is_tensor(pixel_values) and torch.is_tensor(pixel_values_2):
            if pixel_values_2.ndim != 4 or pixel_values_2.shape[0] != pixel_values.shape[0]:
                raise ValueError(
                    "`pixel_values_2` must be the second view of the same images, shape (batch_size, num_channels, "
                    f"height, width) with batch_size {pixel_values.shape[0]} as `pixel_values`, got shape "
                    f"{tuple(pixel_values_2.shape)}"
                )
        output_hierarchy = self._resolve_output_hierarchy(output_hierarchy)
        # superpixels computed here, not by each encoder: the momentum encoder reads the same views
        if superpixels is None and torch.is_tensor(pixel_values):
            superpixels = self.cast.compute_superpixels(pixel_values)
        if superpixels_2 is None and torch.is_tensor(pixel_values_2):
            superpixels_2 = self.cast.compute_superpixels(pixel_values_2)
        outputs: CastModelOutput = self.cast(
            pixel_values, superpixels, output_hierarchy=output_hierarchy, return_dict=True, **kwargs
        )
        view_1 = {
            "pooler_output": outputs.pooler_output,
            "hidden_states": outputs.hidden_states,
            "attentions": outputs.attentions,
            "hierarchy": outputs.hierarchy,
            "hierarchy_scores": outputs.hierarchy_scores,
        }
        if pixel_values_2 is None:
            return CastPreTrainingOutput(**view_1)
        queries_1 = self.predictor(self.projector(outputs.pooler_output))
        queries_2 = self.predictor(self.projector(self._image_features(self.cast, pixel_values_2, superpixels_2)))
        with torch.no_grad():
            keys_1 = self.momentum_projector(self._image_features(self.momentum_cast, pixel_values, superpixels))
            keys_2 = self.momentum_projector(self._image_features(self.momentum_cast, pixel_values_2, superpixels_2))
        offset = 0
        world_size, _ = _distributed_world()
        if gather_keys is None:
            gather_keys = world_size > 1
        if gather_keys and world_size > 1:
            keys_1, offset = _gather_keys(keys_1)
            keys_2, _ = _gather_keys(keys_2)
        loss_1, logits = self._contrastive_loss(queries_1, keys_2, offset)
        loss_2, logits_2 = self._contrastive_loss(queries_2, keys_1, offset)
        loss = loss_1 + loss_2 if return_loss else None
        return CastPreTrainingOutput(loss=loss, logits=logits, logits_2=logits_2, **view_1)

    @staticmethod
    def _image_features(encoder: CastModel, pixel_values: torch.Tensor, superpixels: torch.Tensor) -> torch.Tensor:
        """The image feature (`pooler_output`) of one of the passes that only feed the loss: no pixel hierarchy."""
        return encoder(pixel_values, superpixels, output_hierarchy=False).pooler_output


class MomentumUpdateCallback(TrainerCallback):
    """Update the momentum encoder of a [`CastForPreTraining`] once per optimizer step, with MoCo v3's cosine schedule.

    After optimizer step `t` (so once per `gradient_accumulation_steps` micro-batches), with
    `progress = t / max_steps`, the momentum is `1 - (1 + cos(pi * progress)) / 2 * (1 - base_momentum)`.

    Equivalence with the official code: it updates the momentum encoder at the start of every iteration `i` of epoch
    `e`, before computing the keys, with the fractional epoch `(e + i / iterations_per_epoch) / epochs`, which is
    `t / total_steps` where `t` optimizer steps have been taken. This callback runs `on_step_end` of step `t` with
    `state.global_step = t`, i.e. at the same point (after the t-th step, before the next forward) and with the same
    progress. The official update before the very first iteration is a no-op (the encoders are equal) and the one
    after the last step here uses momentum 1 (a no-op), so both produce the same sequence of momentum encoders.
    A resumed run restores `global_step`, hence continues the schedule where it stopped.

    Args:
        base_momentum (`float`, *optional*):
            Momentum at the start of training; defaults to the model's `config.pretraining_momentum` (0.99).
        cosine (`bool`, *optional*, defaults to `True`):
            Raise the momentum to 1 on the cosine schedule (official `--moco-m-cos`); `False` keeps it constant.
    """

    def __init__(self, base_momentum: float | None = None, cosine: bool = True):
        if base_momentum is not None and not 0.0 <= base_momentum <= 1.0:
            raise ValueError(f"`base_momentum` must be in [0, 1], got {base_momentum}")
        self.base_momentum = base_momentum
        self.cosine = cosine

    def momentum(self, global_step: int, max_steps: int, base_momentum: float) -> float:
        """Momentum applied after optimizer step `global_step` of `max_steps`."""
        if not self.cosine or max_steps <= 0:
            return base_momentum
        return cosine_momentum(global_step / max_steps, base_momentum)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or not hasattr(model, "momentum_update"):
            raise TypeError(
                "MomentumUpdateCallback needs a model with a `momentum_update(momentum)` method (CastForPreTraining), "
                f"got {type(model).__name__}"
            )
        base = self.base_momentum if self.base_momentum is not None else model.config.pretraining_momentum
        model.momentum_update(self.momentum(state.global_step, state.max_steps, base))
        return control
