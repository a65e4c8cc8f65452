"""A LoRA encoder classifier cut between a device and the edge server, and one split iteration
(docs/sft.md sections 1 and 2).

At cut c (1..L-1) the **device part** is the embeddings and layers 0..c-1; it returns the
activation at the cut, ``A`` (B x S x H). The **server part** is layers c..L-1, the pooling,
the head and the loss. Both parts run the model's own forward (:class:`SplitModel`), with the
modules of the other side swapped out for the call:

- device: the encoder's layer list is cut to ``layers[:c]`` and the pooler removed, so the
  model's own embeddings and attention mask (``create_bidirectional_mask`` in transformers 5)
  are used;
- server: the embeddings are replaced by a pass-through and the activation enters as
  ``inputs_embeds``, the layer list is ``layers[c:]``; the model builds the same extended mask
  from the 2-D ``attention_mask`` (its dtype and shape come from the activation), and its own
  pooler (or :class:`~edgeft.train.models.MaskedMeanPooler`, whose hook sees the mask), head,
  loss and class-weights hook all run unchanged.

One frozen model is shared by every device. A device's LoRA tensors live in its
:class:`DeviceState` and are swapped into the model's LoRA modules only for that device's
forward call (the autograd graph keeps the device's own tensors, so their gradients land there).
The server's tensors (its layers' LoRA and the head) are the model's own parameters.

:func:`split_step` is section 2's steps 1-5 for one device and one batch: forward to the cut,
encode/decode the activation, server forward, loss and backward to the (decoded) activation,
encode/decode the gradient at the cut, device backward. It returns both sides' gradients and
steps nothing (as :func:`edgeft.train.blockgrad.block_gradient` does).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from edgeft.errors import InputError
from edgeft.train.loop import param_groups
from edgeft.train.models import LoraBlocks

#: Batch keys the device part reads (the tokens never leave the device).
DEVICE_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


class TensorCodec(Protocol):
    """What a codec at the cut provides (``edgeft.compress.Codec`` is one, docs/sft.md §4)."""

    def encode(self, tensor: torch.Tensor, generator: torch.Generator | None) -> bytes: ...

    def decode(self, payload: bytes) -> torch.Tensor: ...


def layer_of_parameters(blocks: LoraBlocks) -> dict[str, int | None]:
    """The encoder layer index (0 = nearest the input) of every trainable tensor; ``None`` for
    the head (and the pooler when it trains), which is always on the server."""
    owner = {id(p): index for index, layer in enumerate(blocks.layers)
             for p in layer.parameters()}
    return {n: owner.get(id(p)) for n, p in blocks.trainable_parameters().items()}


def check_cut(cut, num_layers: int) -> int:
    """The cut as an int, or :class:`InputError` naming ``cut`` and 1..L-1 (sft.md §1)."""
    if isinstance(cut, bool) or not isinstance(cut, int) or not 1 <= cut <= num_layers - 1:
        raise InputError("cut", cut, f"1..{num_layers - 1} (layers on the device; the model "
                         f"has {num_layers} layers)")
    return int(cut)


class _PassThrough(nn.Module):
    """Stands in for the embeddings on the server: the activation at the cut is the input."""

    def forward(self, *args, inputs_embeds=None, **kwargs):
        return inputs_embeds


@contextlib.contextmanager
def _replaced(swaps: list[tuple[nn.Module, str, object]]) -> Iterator[None]:
    """Set ``owner.name = value`` for each swap (submodules or parameters) for the block's
    duration, then put the originals back."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in swaps]
    try:
        for owner, name, value in swaps:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


@dataclass
class DeviceState:
    """Device n's side (sft.md §2): its cut, its own LoRA tensors (layers 0..cut-1, named as in
    :meth:`LoraBlocks.trainable_parameters`) and the optimiser over them."""

    cut: int
    lora: dict[str, nn.Parameter]
    optimizer: torch.optim.Optimizer | None = None

    def payload_bits(self, bits_per_param: int = 32) -> int:
        """The LoRA upload at aggregation, ``P(c) = 32 c r_lora`` bits (sft.md §3)."""
        return sum(p.numel() for p in self.lora.values()) * bits_per_param

    def load_lora(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy the values of the names this device holds (others are ignored)."""
        with torch.no_grad():
            for n, p in self.lora.items():
                if n in tensors:
                    p.copy_(tensors[n])

    def state_dict(self) -> dict:
        # A copy, not references: the loop keeps the last completed round's state while the
        # next round updates the optimiser in place (an interrupt mid-round saves that copy).
        return {"cut": self.cut, "lora": {n: p.detach().clone() for n, p in self.lora.items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict())
                if self.optimizer else None}

    def load_state_dict(self, state: dict) -> None:
        if int(state["cut"]) != self.cut or set(state["lora"]) != set(self.lora):
            raise InputError("checkpoint", f"cut {state['cut']}",
                             f"the LoRA of a device cut at {self.cut}")
        self.load_lora(state["lora"])
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])


def device_adam(lr: float) -> Callable[[dict[str, nn.Parameter]], torch.optim.Optimizer]:
    """An optimiser factory for :meth:`SplitModel.new_device`: Adam at ``lr`` with the loops'
    parameter groups (:func:`edgeft.train.loop.param_groups`)."""
    return lambda params: torch.optim.Adam(param_groups(params, lr, 1.0))


class SplitModel:
    """A LoRA classifier (:func:`edgeft.train.models.add_lora`) cut at ``cut`` (sft.md §1).

    Several cuts of one model may exist at once (one per device cut); they share the model.
    Forward calls swap modules for their duration, so one model serves one call at a time.
    """

    def __init__(self, blocks: LoraBlocks, cut: int):
        self.blocks = blocks
        self.num_layers = blocks.num_layers
        self.cut = check_cut(cut, self.num_layers)
        model = blocks.model
        hf = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.encoder_model = getattr(hf, getattr(hf, "base_model_prefix", ""), None)
        if getattr(self.encoder_model, "embeddings", None) is None:
            raise InputError("model", type(hf).__name__,
                             "an encoder classifier with embeddings (BERT, RoBERTa)")
        path = next((n for n, m in self.encoder_model.named_modules() if m is blocks.layers),
                    None)
        if not path:
            raise InputError("model", type(hf).__name__, "an encoder with its layer list")
        owner, _, self._layers_attr = path.rpartition(".")
        self._layers_owner = self.encoder_model.get_submodule(owner)
        self._pass_through = _PassThrough()
        layer = layer_of_parameters(blocks)
        params = blocks.trainable_parameters()
        self.device_names = [n for n, i in layer.items() if i is not None and i < self.cut]
        on_device = set(self.device_names)
        self.server_names = [n for n in params if n not in on_device]
        self._slots = {}  # name -> (owning module, attribute) of each device tensor
        for n in self.device_names:
            module, _, attr = n.rpartition(".")
            self._slots[n] = (model.get_submodule(module), attr)

    # -- the two parts ---------------------------------------------------------------------
    def device_forward(self, batch: dict, lora: dict[str, torch.Tensor] | None = None
                       ) -> torch.Tensor:
        """The activation at the cut, ``A`` (B x S x H): embeddings and layers 0..cut-1 with
        ``lora`` (a device's tensors; default: the model's own) swapped in."""
        base = self.encoder_model
        swaps = [(self._layers_owner, self._layers_attr, self.blocks.layers[: self.cut])]
        if getattr(base, "pooler", None) is not None:
            swaps.append((base, "pooler", None))
        for n, t in (lora or {}).items():
            swaps.append((*self._slots[n], t))
        inputs = {k: batch[k] for k in DEVICE_INPUTS if k in batch}
        with _replaced(swaps):
            return base(**inputs).last_hidden_state

    def server_forward(self, activation: torch.Tensor, attention_mask: torch.Tensor | None,
                       labels: torch.Tensor | None = None):
        """Layers cut..L-1, pooling, head and (with ``labels``) the loss, from the activation
        at the cut: the model's own output (``logits``, ``loss``)."""
        swaps = [(self.encoder_model, "embeddings", self._pass_through),
                 (self._layers_owner, self._layers_attr, self.blocks.layers[self.cut:])]
        with _replaced(swaps):
            return self.blocks.model(inputs_embeds=activation, attention_mask=attention_mask,
                                     labels=labels)

    # -- state -----------------------------------------------------------------------------
    def server_parameters(self) -> dict[str, nn.Parameter]:
        """The server's tensors at this cut: its layers' LoRA and the head (the model's own)."""
        params = self.blocks.trainable_parameters()
        return {n: params[n] for n in self.server_names}

    def new_device(self, optimizer: Callable[[dict[str, nn.Parameter]],
                                             torch.optim.Optimizer] | None = None
                   ) -> DeviceState:
        """A device's state at this cut, its LoRA copied from the model's current tensors;
        ``optimizer`` makes its optimiser from them (e.g. :func:`device_adam`)."""
        params = self.blocks.trainable_parameters()
        lora = {n: nn.Parameter(params[n].detach().clone()) for n in self.device_names}
        return DeviceState(self.cut, lora, optimizer(lora) if optimizer else None)


@dataclass
class StepResult:
    """One device's split iteration (sft.md §2 steps 1-5): the server's loss on its batch, the
    bytes each way (``len`` of what the codecs' ``encode`` returned), both sides' gradients by
    name, and host seconds (device forward + backward, server forward + backward, codecs)."""

    loss: float
    up_bytes: int
    down_bytes: int
    device_grads: dict[str, torch.Tensor]
    server_grads: dict[str, torch.Tensor]
    num_samples: int
    device_s: float = 0.0
    server_s: float = 0.0
    codec_s: float = 0.0


def _received(decoded: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if decoded.numel() != like.numel():
        raise ValueError(f"codec: decoded {tuple(decoded.shape)}, expected {tuple(like.shape)}")
    return decoded.detach().reshape(like.shape).to(like.dtype)


def _take_grads(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    grads = {}
    for n, p in params.items():
        grads[n] = p.grad if p.grad is not None else torch.zeros_like(p)
        p.grad = None
    return grads


def split_step(split: SplitModel, device: DeviceState, batch: dict, codec_up: TensorCodec,
               codec_down: TensorCodec, generator: torch.Generator | None = None) -> StepResult:
    """One split iteration of one device on ``batch`` (sft.md §2 steps 1-5).

    Device forward with its LoRA; the detached activation goes through ``codec_up``; the server
    runs its part and the loss from the decoded activation (a leaf requiring grad) and
    back-propagates to it; that gradient goes through ``codec_down``; the device
    back-propagates it. Gradients are returned (``p.grad`` is left ``None``), nothing steps;
    the model's train/eval mode is the caller's.
    """
    if device.cut != split.cut:
        raise InputError("cut", device.cut, f"the split's cut {split.cut}")
    server_params = split.server_parameters()
    for p in (*server_params.values(), *device.lora.values()):
        p.grad = None
    # 1. Device forward to the cut.
    tick = time.perf_counter()
    activation = split.device_forward(batch, device.lora)
    device_s = time.perf_counter() - tick
    # 2. Upload: encode, count, decode.
    tick = time.perf_counter()
    up = codec_up.encode(activation.detach(), generator)
    received = _received(codec_up.decode(up), activation).requires_grad_(True)
    codec_s = time.perf_counter() - tick
    # 3. Server forward, loss, backward to the cut.
    tick = time.perf_counter()
    out = split.server_forward(received, batch.get("attention_mask"), batch["labels"])
    out.loss.backward()
    server_grads = _take_grads(server_params)
    server_s = time.perf_counter() - tick
    # 4. Download: the gradient at the cut.
    tick = time.perf_counter()
    down = codec_down.encode(received.grad, generator)
    grad_at_cut = _received(codec_down.decode(down), activation)
    codec_s += time.perf_counter() - tick
    # 5. Device backward.
    tick = time.perf_counter()
    if activation.requires_grad:  # no LoRA below the cut: nothing to back-propagate
        activation.backward(grad_at_cut)
    device_grads = _take_grads(device.lora)
    device_s += time.perf_counter() - tick
    return StepResult(float(out.loss.detach()), len(up), len(down), device_grads, server_grads,
                      int(batch["labels"].shape[0]), device_s, server_s, codec_s)
